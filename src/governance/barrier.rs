//! A security barrier above a row-filtered table whose row filter stays a subquery (a correlated
//! `EXISTS`, `IN (…) OR …`, or an `IN` over more values than lalo inlines). DataFusion turns such
//! a filter into a semi join and pushes the user's predicates beneath it, onto the unfiltered
//! scan, where a predicate that can fail (a division, a cast) would fail on a hidden row and
//! reveal it by its error. Every column leaves the filtered table through an identity function
//! marked volatile: DataFusion never moves a predicate over a volatile expression, so the user's
//! predicates stay above the row filter, as behind PostgreSQL's security barrier views. Only
//! embedded tables take it, and such plans are planned for every execution (the statement cache
//! keeps only plans without volatile functions).
//!
//! Over an upstream table the statement goes to PostgreSQL as SQL, and PostgreSQL plans it anew:
//! it pulls a plain derived table up into the query and orders all conditions on a table by its
//! own cost estimates, so a cheap failing predicate of the caller's could run before a costly row
//! filter (a long IN list, a subquery) on a row the filter hides. There every row-filtered table
//! is a fence instead: `(SELECT … WHERE <row filter> OFFSET 0) AS t`. PostgreSQL neither pulls up
//! a subquery with an OFFSET nor pushes the caller's conditions into it (`is_simple_subquery`,
//! `subquery_is_pushdown_safe`), as in the PostgreSQL lane. DataFusion does not move predicates
//! across a Limit either, and the fence is sent as it is: the federation rule cuts upstream
//! subtrees out before `eliminate_limit` runs (engine/mod.rs).
//!
//! A fence keeps out the conditions that could leak along with the ones that could not, and a
//! lookup by key would scan the whole filtered table. So [`IntoFence`] moves the caller's
//! leakproof conditions (comparisons of columns with constants and parameters, `leakproof.rs`)
//! on a fenced table inside its fence, before federation writes the SQL: `WHERE id = $1` reaches
//! the table's index, as PostgreSQL lets leakproof conditions through a security barrier view.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Column, DFSchema, Result};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{ScalarValue, TableReference};
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    lit, ColumnarValue, Expr, Filter, Limit, LogicalPlan, Projection, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, SubqueryAlias, Volatility,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// `lalo_row_barrier(x)`: `x`, unchanged; volatile so that nothing is pushed through it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Barrier {
    signature: Signature,
}

impl Barrier {
    fn udf() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Barrier { signature: Signature::any(1, Volatility::Volatile) }))
    }
}

impl ScalarUDFImpl for Barrier {
    fn name(&self) -> &str {
        "lalo_row_barrier"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Null))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.into_iter().next() {
            Some(v) => Ok(v),
            None => exec_err!("lalo_row_barrier takes one argument"),
        }
    }
}

/// `input` with every column passed through the barrier, names and qualifiers kept.
pub fn above(input: LogicalPlan) -> Result<LogicalPlan> {
    let udf = Barrier::udf();
    let schema: &DFSchema = input.schema();
    let exprs: Vec<Expr> = schema
        .iter()
        .map(|(q, f)| {
            let col = Expr::Column(Column::new(q.cloned(), f.name()));
            udf.call(vec![col]).alias_qualified(q.cloned(), f.name())
        })
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(input))?))
}

/// `(input OFFSET 0) AS table`: a derived table under the scanned table's own name, so the
/// columns above keep their qualifiers and the unparser writes it as a subquery.
pub fn fence(input: LogicalPlan, table: TableReference) -> Result<LogicalPlan> {
    let limit = LogicalPlan::Limit(Limit { skip: Some(Box::new(lit(0i64))), fetch: None, input: Arc::new(input) });
    Ok(LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(limit), table)?))
}

/// A Limit that keeps every row: `OFFSET 0` and no fetch.
fn is_fence(limit: &Limit) -> bool {
    limit.fetch.is_none()
        && matches!(limit.skip.as_deref(), Some(Expr::Literal(ScalarValue::Int64(Some(0)), _)))
}

/// The caller's leakproof conditions on a fenced table, moved inside the fence (module docs).
#[derive(Debug, Default)]
pub struct IntoFence;

impl OptimizerRule for IntoFence {
    fn name(&self) -> &str {
        "lalo_into_fence"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Filter(filter) = &plan else { return Ok(Transformed::no(plan)) };
        // The fence, under the caller's own alias of the table if there is one.
        let (user_alias, fence) = match filter.input.as_ref() {
            LogicalPlan::SubqueryAlias(a) => match a.input.as_ref() {
                LogicalPlan::SubqueryAlias(inner) => (Some(a.alias.clone()), inner),
                _ => (None, a),
            },
            _ => return Ok(Transformed::no(plan)),
        };
        let LogicalPlan::Limit(limit) = fence.input.as_ref() else { return Ok(Transformed::no(plan)) };
        if !is_fence(limit) {
            return Ok(Transformed::no(plan));
        }
        let seen_as = user_alias.as_ref().unwrap_or(&fence.alias);
        let (inside, outside): (Vec<Expr>, Vec<Expr>) = split_conjunction_owned(filter.predicate.clone())
            .into_iter()
            .partition(|p| {
                super::leakproof::leakproof(p)
                    && !super::leakproof::has_subquery(p)
                    && p.column_refs().iter().all(|c| c.relation.as_ref() == Some(seen_as))
            });
        let Some(inside) = conjunction(inside) else { return Ok(Transformed::no(plan)) };
        // Inside the fence the columns are the table's own.
        let inside = inside
            .transform(|e| match e {
                Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new(Some(fence.alias.clone()), c.name)))),
                other => Ok(Transformed::no(other)),
            })?
            .data;
        let narrowed = LogicalPlan::Filter(Filter::try_new(inside, Arc::clone(&limit.input))?);
        let limit = LogicalPlan::Limit(Limit { skip: limit.skip.clone(), fetch: None, input: Arc::new(narrowed) });
        let mut rebuilt = LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(limit), fence.alias.clone())?);
        if let Some(alias) = user_alias {
            rebuilt = LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(rebuilt), alias)?);
        }
        Ok(Transformed::yes(match conjunction(outside) {
            Some(rest) => LogicalPlan::Filter(Filter::try_new(rest, Arc::new(rebuilt))?),
            None => rebuilt,
        }))
    }
}
