//! Filters whose conjunction ends in cheap comparisons evaluate every conjunct on the whole
//! batch and combine the bitmaps. DataFusion's `AND` takes a short cut once its left side keeps
//! at most a fifth of a batch: it copies every column of the batch down to those rows, evaluates
//! the right side there and scatters the answer back value by value (`pre_selection_scatter`),
//! again at each further conjunct. Ahead of a costly right side (a `LIKE`, a function) that pays;
//! ahead of a comparison of a column with a constant it costs several times the comparison: in
//! TPC-H Q06 the copies and the scatter took three fifths of the query's CPU, the comparisons 6 %.
//! The right sides taken here cannot fail (no cast, no arithmetic, no function), so evaluating
//! them on rows the left side already rejected changes no answer and raises no error.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::kernels::boolean::and_kleene;
use datafusion::arrow::datatypes::{DataType, FieldRef, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{internal_err, Result};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::sort_properties::ExprProperties;
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::expressions::{BinaryExpr, Column, IsNotNullExpr, IsNullExpr, Literal, NotExpr};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::ExecutionPlan;

/// Puts [`DenseAnd`] into filters.
#[derive(Debug, Default)]
pub struct DenseConjunctions;

impl PhysicalOptimizerRule for DenseConjunctions {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        rewrite_filters(plan, |e, schema| {
            let Some(b) = e.downcast_ref::<BinaryExpr>() else { return None };
            if *b.op() != Operator::And || !cheap(b.right(), schema) {
                return None;
            }
            let inner = Arc::new(BinaryExpr::new(b.left().clone(), Operator::And, b.right().clone()));
            Some(Arc::new(DenseAnd { inner }) as Arc<dyn PhysicalExpr>)
        })
    }

    fn name(&self) -> &str {
        "lalo_dense_conjunctions"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` with every [`DenseAnd`] back in DataFusion's form (for plans sent to a cluster, whose
/// codec knows DataFusion's expressions).
pub fn undo(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    rewrite_filters(plan, |e, _| e.downcast_ref::<DenseAnd>().map(|d| d.inner.clone() as Arc<dyn PhysicalExpr>))
}

/// `plan` with each expression of its filters' predicates that `swap` answers for replaced,
/// bottom up.
fn rewrite_filters(
    plan: Arc<dyn ExecutionPlan>,
    swap: impl Fn(&Arc<dyn PhysicalExpr>, &Schema) -> Option<Arc<dyn PhysicalExpr>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(f) = node.downcast_ref::<FilterExec>() else { return Ok(Transformed::no(node)) };
        let schema = f.input().schema();
        let t = f.predicate().clone().transform_up(|e| match swap(&e, &schema) {
            Some(new) => Ok(Transformed::yes(new)),
            None => Ok(Transformed::no(e)),
        })?;
        if !t.transformed {
            return Ok(Transformed::no(node));
        }
        let exec: Arc<dyn ExecutionPlan> = Arc::new(FilterExecBuilder::from(f).with_predicate(t.data).build()?);
        Ok(Transformed::yes(exec))
    })
    .map(|t| t.data)
}

/// The conjuncts of `expr`, through DataFusion's `AND` and [`DenseAnd`] alike.
pub fn split(expr: &Arc<dyn PhysicalExpr>) -> Vec<&Arc<dyn PhysicalExpr>> {
    fn walk<'a>(e: &'a Arc<dyn PhysicalExpr>, out: &mut Vec<&'a Arc<dyn PhysicalExpr>>) {
        if let Some(d) = e.downcast_ref::<DenseAnd>() {
            walk(d.inner.left(), out);
            walk(d.inner.right(), out);
        } else if let Some(b) = e.downcast_ref::<BinaryExpr>().filter(|b| *b.op() == Operator::And) {
            walk(b.left(), out);
            walk(b.right(), out);
        } else {
            out.push(e);
        }
    }
    let mut out = Vec::new();
    walk(expr, &mut out);
    out
}

/// Whether `e` is a comparison of columns and constants of one fixed-width type (or `IS [NOT]
/// NULL`, `NOT`, `AND`, `OR` of such): a few instructions per row and no way to fail.
fn cheap(e: &Arc<dyn PhysicalExpr>, schema: &Schema) -> bool {
    if let Some(b) = e.downcast_ref::<BinaryExpr>() {
        return match b.op() {
            Operator::And | Operator::Or => cheap(b.left(), schema) && cheap(b.right(), schema),
            Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                let (l, r) = (b.left(), b.right());
                operand(l) && operand(r) && matches!((l.data_type(schema), r.data_type(schema)), (Ok(a), Ok(b)) if a == b && fixed_width(&a))
            }
            _ => false,
        };
    }
    if let Some(n) = e.downcast_ref::<NotExpr>() {
        return cheap(n.arg(), schema);
    }
    if let Some(n) = e.downcast_ref::<IsNullExpr>() {
        return n.arg().downcast_ref::<Column>().is_some();
    }
    if let Some(n) = e.downcast_ref::<IsNotNullExpr>() {
        return n.arg().downcast_ref::<Column>().is_some();
    }
    false
}

fn operand(e: &Arc<dyn PhysicalExpr>) -> bool {
    e.downcast_ref::<Column>().is_some() || e.downcast_ref::<Literal>().is_some()
}

/// Types compared in one pass over fixed-width values (strings and nested types are left to
/// DataFusion's short cut: their comparisons cost enough to make it pay).
fn fixed_width(t: &DataType) -> bool {
    t.is_integer()
        || t.is_floating()
        || matches!(
            t,
            DataType::Boolean
                | DataType::Decimal128(_, _)
                | DataType::Decimal256(_, _)
                | DataType::Date32
                | DataType::Date64
                | DataType::Timestamp(_, _)
                | DataType::Time32(_)
                | DataType::Time64(_)
        )
}

/// `l AND r` with `r` evaluated on the whole batch (see the module's note).
#[derive(Debug)]
pub struct DenseAnd {
    /// The same conjunction as DataFusion plans it: its type, display and estimates.
    inner: Arc<BinaryExpr>,
}

impl PhysicalExpr for DenseAnd {
    fn return_field(&self, input_schema: &Schema) -> Result<FieldRef> {
        self.inner.return_field(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let lhs = self.inner.left().evaluate(batch)?;
        let left = match &lhs {
            ColumnarValue::Array(a) => a.clone(),
            // A constant left side: DataFusion's own evaluation (it returns it or the right).
            ColumnarValue::Scalar(_) => return self.inner.evaluate(batch),
        };
        let Some(l) = left.as_boolean_opt() else { return internal_err!("AND of a {}", left.data_type()) };
        // Nothing kept: the right side cannot change that (DataFusion's short cut, kept).
        if l.null_count() == 0 && l.true_count() == 0 {
            return Ok(lhs);
        }
        let right = match self.inner.right().evaluate(batch)? {
            ColumnarValue::Array(a) => a,
            ColumnarValue::Scalar(s) => s.to_array_of_size(batch.num_rows())?,
        };
        let Some(r) = right.as_boolean_opt() else { return internal_err!("AND of a {}", right.data_type()) };
        Ok(ColumnarValue::Array(Arc::new(and_kleene(l, r)?)))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![self.inner.left(), self.inner.right()]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn PhysicalExpr>>) -> Result<Arc<dyn PhysicalExpr>> {
        let [l, r]: [Arc<dyn PhysicalExpr>; 2] = match children.try_into() {
            Ok(c) => c,
            Err(_) => return internal_err!("AND takes two operands"),
        };
        Ok(Arc::new(DenseAnd { inner: Arc::new(BinaryExpr::new(l, Operator::And, r)) }))
    }

    fn evaluate_bounds(&self, children: &[&Interval]) -> Result<Interval> {
        self.inner.evaluate_bounds(children)
    }

    fn propagate_constraints(&self, interval: &Interval, children: &[&Interval]) -> Result<Option<Vec<Interval>>> {
        self.inner.propagate_constraints(interval, children)
    }

    fn get_properties(&self, children: &[ExprProperties]) -> Result<ExprProperties> {
        self.inner.get_properties(children)
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_sql(f)
    }
}

impl fmt::Display for DenseAnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl PartialEq for DenseAnd {
    fn eq(&self, other: &Self) -> bool {
        self.inner.as_ref() == other.inner.as_ref()
    }
}

impl Eq for DenseAnd {}

impl Hash for DenseAnd {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Date32Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::Field;
    use datafusion::common::ScalarValue;
    use datafusion::physical_expr::expressions::{col, lit};

    fn batch() -> RecordBatch {
        let n: ArrayRef = Arc::new(Int64Array::from((0..100).map(|i| if i % 7 == 0 { None } else { Some(i) }).collect::<Vec<_>>()));
        let d: ArrayRef = Arc::new(Date32Array::from((0..100).map(|i| Some(9000 + (i * 37) % 100)).collect::<Vec<_>>()));
        let s: ArrayRef = Arc::new(StringArray::from((0..100).map(|i| Some(format!("s{i}"))).collect::<Vec<_>>()));
        let schema = Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("d", DataType::Date32, false),
            Field::new("s", DataType::Utf8, false),
        ]);
        RecordBatch::try_new(Arc::new(schema), vec![n, d, s]).unwrap()
    }

    fn cmp(l: Arc<dyn PhysicalExpr>, op: Operator, r: Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(l, op, r))
    }

    /// The dense form answers as DataFusion's, NULLs included, with the left side keeping few
    /// rows (its short cut's case), many, none and all.
    #[test]
    fn answers_as_datafusions_and() {
        let b = batch();
        let s = b.schema();
        let n = || col("n", &s).unwrap();
        let d = || col("d", &s).unwrap();
        for bound in [0i64, 5, 15, 60, 100] {
            let left = cmp(n(), Operator::Lt, lit(bound));
            let right = cmp(cmp(d(), Operator::GtEq, lit(ScalarValue::Date32(Some(9020)))), Operator::And, cmp(n(), Operator::NotEq, lit(3i64)));
            let slow = cmp(left.clone(), Operator::And, right.clone());
            assert!(cheap(&right, &s));
            let fast: Arc<dyn PhysicalExpr> = Arc::new(DenseAnd { inner: Arc::new(BinaryExpr::new(left, Operator::And, right)) });
            let got = fast.evaluate(&b).unwrap().into_array(b.num_rows()).unwrap();
            let want = slow.evaluate(&b).unwrap().into_array(b.num_rows()).unwrap();
            assert_eq!(got.as_ref(), want.as_ref(), "n < {bound}");
            assert_eq!(fast.to_string(), slow.to_string());
        }
    }

    /// Strings, casts and anything that can fail keep DataFusion's short cut.
    #[test]
    fn costly_or_fallible_right_sides_are_left_alone() {
        let b = batch();
        let s = b.schema();
        assert!(!cheap(&cmp(col("s", &s).unwrap(), Operator::Eq, lit("s1")), &s));
        assert!(!cheap(&cmp(cmp(col("n", &s).unwrap(), Operator::Divide, lit(0i64)), Operator::Gt, lit(1i64)), &s));
        let is_null: Arc<dyn PhysicalExpr> = Arc::new(IsNullExpr::new(col("n", &s).unwrap()));
        assert!(cheap(&is_null, &s));
    }

    /// A plan sent to a cluster gets DataFusion's form back, and the conjuncts split as before.
    #[test]
    fn conjuncts_split_through_both_forms() {
        let b = batch();
        let s = b.schema();
        let left = cmp(col("n", &s).unwrap(), Operator::Lt, lit(5i64));
        let right = cmp(col("d", &s).unwrap(), Operator::Gt, lit(ScalarValue::Date32(Some(9001))));
        let dense: Arc<dyn PhysicalExpr> = Arc::new(DenseAnd { inner: Arc::new(BinaryExpr::new(left, Operator::And, right)) });
        let both = cmp(dense, Operator::And, cmp(col("n", &s).unwrap(), Operator::IsNotDistinctFrom, lit(1i64)));
        assert_eq!(split(&both).len(), 3);
    }
}
