//! A scalar subquery is NULL when it finds no row, whatever its column's nullability; and a
//! NULL is not NOT IN a subquery that has rows, whatever the subquery's column (`not_in`).
//!
//! DataFusion types `(SELECT k FROM t WHERE ...)` with the nullability of `k`: over a NOT NULL
//! column the optimizer folded `(SELECT ...) IS NULL` to false (PostgreSQL: true when no row
//! matches), and a select list holding such a subquery failed with "declared as non-nullable
//! but contains null values". Each such subquery is wrapped in `lalo_nullable(...)`, which
//! passes its value through as a nullable one.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{internal_err, Result};
use datafusion::logical_expr::expr::{Exists, ScalarFunction};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{ExprSchemable, Filter};
use datafusion::logical_expr::{ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

/// The plan with its non-nullable scalar subqueries made nullable (unchanged over upstreams:
/// PostgreSQL types them right, and the function would not unparse).
pub fn nullable(plan: LogicalPlan) -> Result<LogicalPlan> {
    // Most statements have no scalar subquery: one walk to find out.
    let mut any = false;
    plan.apply_with_subqueries(|node| {
        for e in node.expressions() {
            e.apply(|x| {
                any |= matches!(x, Expr::ScalarSubquery(s) if s.subquery.schema().fields().first().is_some_and(|f| !f.is_nullable()));
                Ok(if any { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
            })?;
        }
        Ok(if any { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })?;
    if !any || crate::governance::local_fns::reads_upstream(&plan) {
        return Ok(plan);
    }
    plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|e| {
            e.transform_down(|x| match x {
                Expr::ScalarFunction(f) if is_nullable(&f) => Ok(Transformed::new(Expr::ScalarFunction(f), false, TreeNodeRecursion::Jump)),
                Expr::ScalarSubquery(s) if s.subquery.schema().fields().first().is_some_and(|f| !f.is_nullable()) => {
                    let wrapped = ScalarFunction::new_udf(Arc::new(ScalarUDF::new_from_impl(Nullable::default())), vec![Expr::ScalarSubquery(s)]);
                    Ok(Transformed::new(Expr::ScalarFunction(wrapped), true, TreeNodeRecursion::Jump))
                }
                other => Ok(Transformed::no(other)),
            })
        })?
        .map_data(|n| n.recompute_schema())
    })
    .map(|t| t.data)
}

/// `x NOT IN (subquery)` where `x` can be NULL and the subquery's column cannot: DataFusion
/// plans a plain anti join, which keeps a row whose `x` is NULL; PostgreSQL keeps it only when
/// the subquery has no row (NULL NOT IN a non-empty set is unknown). Such a conjunct of a WHERE
/// gains `x IS NOT NULL OR NOT EXISTS (subquery)`: in a WHERE, unknown and false both drop the
/// row, so the pair answers as PostgreSQL does. (A nullable subquery column already gets a
/// NULL-aware join.)
pub fn not_in(plan: LogicalPlan) -> Result<LogicalPlan> {
    let mut any = false;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Filter(f) = node {
            any |= split_conjunction(&f.predicate).iter().any(|c| matches!(c, Expr::InSubquery(s) if s.negated));
        }
        Ok(if any { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })?;
    if !any || crate::governance::local_fns::reads_upstream(&plan) {
        return Ok(plan);
    }
    plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::Filter(f) = &node else { return Ok(Transformed::no(node)) };
        let input = f.input.schema();
        let mut guards = Vec::new();
        for c in split_conjunction(&f.predicate) {
            let Expr::InSubquery(s) = c else { continue };
            let column_nullable = s.subquery.subquery.schema().fields().first().is_none_or(|c| c.is_nullable());
            if s.negated && !column_nullable && s.expr.nullable(input.as_ref()).unwrap_or(false) {
                guards.push(s.expr.as_ref().clone().is_not_null().or(Expr::Exists(Exists::new(s.subquery.clone(), true))));
            }
        }
        if guards.is_empty() {
            return Ok(Transformed::no(node));
        }
        let predicate = guards.into_iter().fold(f.predicate.clone(), |p, g| p.and(g));
        Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(predicate, f.input.clone())?)))
    })
    .map(|t| t.data)
}

pub fn is_nullable(f: &ScalarFunction) -> bool {
    (f.func.inner().as_ref() as &dyn std::any::Any).downcast_ref::<Nullable>().is_some()
}

/// `lalo_nullable(x)`: `x`, typed nullable.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Nullable {
    signature: Signature,
}

impl Default for Nullable {
    fn default() -> Self {
        Nullable { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for Nullable {
    fn name(&self) -> &str {
        "lalo_nullable"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, types: &[DataType]) -> Result<DataType> {
        Ok(types.first().cloned().unwrap_or(DataType::Null))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        match args.arg_fields.first() {
            Some(f) => Ok(Arc::new(f.as_ref().clone().with_nullable(true))),
            None => internal_err!("lalo_nullable takes one value"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.into_iter().next() {
            Some(v) => Ok(v),
            None => internal_err!("lalo_nullable takes one value"),
        }
    }
}
