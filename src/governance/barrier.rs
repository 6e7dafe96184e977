//! A security barrier above a row-filtered table whose row filter stays a subquery (a correlated
//! `EXISTS`, `IN (…) OR …`, or an `IN` over more values than lalo inlines). DataFusion turns such
//! a filter into a semi join and pushes the user's predicates beneath it, onto the unfiltered
//! scan, where a predicate that can fail (a division, a cast) would fail on a hidden row and
//! reveal it by its error. Every column leaves the filtered table through an identity function
//! marked volatile: DataFusion never moves a predicate over a volatile expression, so the user's
//! predicates stay above the row filter, as behind PostgreSQL's security barrier views. Embedded
//! tables take it, and upstream tables whose filter's subquery reads another database (then the
//! semi join runs here, beside the upstream's part, above its fence); such plans are planned for
//! every execution (the statement cache keeps only plans without volatile functions).
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
//! What keeps the fence through the optimizer, and lets leakproof conditions through it, is
//! `fence.rs`.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Column, DFSchema, Result};
use datafusion::common::TableReference;
use datafusion::logical_expr::{
    lit, ColumnarValue, Expr, Limit, LogicalPlan, Projection, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    SubqueryAlias, Volatility,
};

/// `lalo_row_barrier(x)`: `x`, unchanged; volatile so that nothing is pushed through it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Barrier {
    signature: Signature,
}

impl Barrier {
    pub fn udf() -> Arc<ScalarUDF> {
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
    Ok(LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(offset_zero(input)), table)?))
}

/// `input OFFSET 0`.
pub fn offset_zero(input: LogicalPlan) -> LogicalPlan {
    LogicalPlan::Limit(Limit { skip: Some(Box::new(lit(0i64))), fetch: None, input: Arc::new(input) })
}
