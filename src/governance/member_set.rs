//! A row filter's evaluated `IN (subquery)` over an embedded table, as one function node,
//! `row_filter_in(col)`, holding the value set it tests against.
//!
//! Spelled as `col IN (v1, …, vN)`, the evaluated list is N literal nodes that every later step
//! walks, clones, hashes and rebuilds on every statement: binding parameters, the optimizer,
//! physical planning (a fresh hash set per plan), the physical optimizer's rules and the Parquet
//! pruning analysis. With a few dozen values that was most of what a row filter cost per
//! statement. Here the set is built once, when the subquery is evaluated (see `rewrite.rs`), and
//! shared by every plan until the filter is evaluated again. Membership is DataFusion's own
//! `InListExpr` (its typed hash sets and NULL semantics), built once over a one-column batch.
//!
//! Only embedded tables get this form: over upstream tables the literal list stays, because it
//! must unparse into the SQL pushed down to PostgreSQL. The function cannot fail on any row, so it
//! counts as leakproof (`leakproof.rs`).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::physical_expr::expressions::{Column, InListExpr};
use datafusion::physical_expr::PhysicalExpr;

/// The name EXPLAIN shows.
pub const NAME: &str = "row_filter_in";

/// Distinguishes one evaluation of a filter's subquery from the next (equality and hashing of
/// plans compare this, not the values).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
pub struct RowFilterIn {
    id: u64,
    len: usize,
    signature: Signature,
    /// One column, `v`, of the tested expression's type.
    schema: SchemaRef,
    /// `v IN (values)` (or NOT IN), with its static hash set.
    test: Arc<dyn PhysicalExpr>,
    /// What the set was built from (a distributed plan carries these to its executors).
    values: ArrayRef,
    negated: bool,
}

impl PartialEq for RowFilterIn {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for RowFilterIn {}

impl Hash for RowFilterIn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl RowFilterIn {
    /// `expr IN (values)` (`NOT IN` when `negated`) as one function call; `values` must have the
    /// type of `expr`.
    pub fn call(expr: Expr, values: ArrayRef, negated: bool) -> Result<Expr> {
        Ok(Self::udf(values, negated)?.call(vec![expr]))
    }

    /// The function testing membership in `values` (`NOT IN` when `negated`).
    pub fn udf(values: ArrayRef, negated: bool) -> Result<ScalarUDF> {
        let data_type = values.data_type().clone();
        let schema = Arc::new(Schema::new(vec![Field::new("v", data_type.clone(), true)]));
        let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new("v", 0));
        let len = values.len();
        let test = Arc::new(InListExpr::try_new_from_array(column, values.clone(), negated, &schema)?);
        let udf = RowFilterIn {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            len,
            signature: Signature::exact(vec![data_type], Volatility::Immutable),
            schema,
            test,
            values,
            negated,
        };
        Ok(ScalarUDF::new_from_impl(udf))
    }

    /// The values and whether the test is `NOT IN`: what [`RowFilterIn::udf`] rebuilds it from.
    pub fn parts(&self) -> (&ArrayRef, bool) {
        (&self.values, self.negated)
    }

    /// How many values the set holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl ScalarUDFImpl for RowFilterIn {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else { return exec_err!("{NAME} takes one argument") };
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let array = arg.to_array(if scalar { 1 } else { args.number_rows })?;
        let batch = RecordBatch::try_new(self.schema.clone(), vec![array])?;
        let out = self.test.evaluate(&batch)?;
        match out {
            // A constant argument: one answer for every row.
            ColumnarValue::Array(a) if scalar => {
                Ok(ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&a, 0)?))
            }
            out => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, BooleanArray, Int64Array};
    use datafusion::prelude::{col, SessionContext};

    #[tokio::test]
    async fn membership_matches_in_list() -> Result<()> {
        let ctx = SessionContext::new();
        let values: ArrayRef = Arc::new(Int64Array::from(vec![2, 4]));
        let pred = RowFilterIn::call(col("k"), values, false)?;
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(4)]))],
        )?;
        let df = ctx.read_batch(batch)?.filter(pred)?;
        let rows = df.collect().await?;
        let kept: Vec<i64> = rows
            .iter()
            .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().into_iter().flat_map(|a| a.values().to_vec()))
            .collect();
        assert_eq!(kept, vec![2, 4]);
        // NULL IN (…) is NULL, not false, as in PostgreSQL.
        let neg = RowFilterIn::call(col("k"), Arc::new(Int64Array::from(vec![2])), true)?;
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![Some(1), None]))],
        )?;
        let out = ctx.read_batch(batch)?.select(vec![neg.alias("t")])?.collect().await?;
        let t = out[0].column(0).as_any().downcast_ref::<BooleanArray>().cloned();
        let t = t.expect("boolean result");
        assert!(t.value(0));
        assert!(t.is_null(1));
        Ok(())
    }
}
