//! LIMIT and OFFSET given as parameters (`LIMIT $1`): bound into a plan that was optimized with
//! a placeholder there, the value sits under the cast to `bigint` the SQL planner put around the
//! placeholder, and DataFusion's physical planner takes only a `bigint` literal. The optimizer,
//! which would fold it, has already run, so the bound expressions are folded here, with
//! PostgreSQL's errors for negative values (NULL means no limit and no offset, as there).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::simplify_expressions::{ExprSimplifier, SimplifyContext};

use crate::error::LaloError;

/// `plan` with every LIMIT and OFFSET that folds to a constant as a `bigint` literal.
pub(super) fn fold(plan: LogicalPlan) -> Result<LogicalPlan, LaloError> {
    let folded = plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::Limit(mut limit) = node else { return Ok(Transformed::no(node)) };
        let skip = fold_one(&mut limit.skip, "OFFSET", "2201X")?;
        let fetch = fold_one(&mut limit.fetch, "LIMIT", "2201W")?;
        let node = LogicalPlan::Limit(limit);
        Ok(if skip || fetch { Transformed::yes(node) } else { Transformed::no(node) })
    });
    // A negative bound's LaloError comes back out of DataFusion's External as itself.
    Ok(folded?.data)
}

/// Fold one bound, if it is not already a `bigint` literal; whether it changed. An expression
/// that does not fold (a column, a subquery) is left for the physical planner to refuse.
fn fold_one(bound: &mut Option<Box<Expr>>, what: &str, code: &'static str) -> datafusion::error::Result<bool> {
    let Some(expr) = bound.as_deref() else { return Ok(false) };
    if matches!(expr, Expr::Literal(ScalarValue::Int64(_), _)) {
        return Ok(false);
    }
    let Expr::Literal(value, _) = ExprSimplifier::new(SimplifyContext::default()).simplify(expr.clone())? else { return Ok(false) };
    let value = value.cast_to(&DataType::Int64)?;
    if let ScalarValue::Int64(Some(n)) = value {
        if n < 0 {
            return Err(LaloError::Data { code, message: format!("{what} must not be negative") }.into());
        }
    }
    *bound = Some(Box::new(Expr::Literal(value, None)));
    Ok(true)
}
