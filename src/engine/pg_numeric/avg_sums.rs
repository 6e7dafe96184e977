//! `avg(x)` of NUMERIC computed from `sum(x)` and `count(x)`, which the same aggregate often
//! computes anyway (TPC-H Q01 sums and averages the same columns and counts its rows).
//!
//! PostgreSQL's `avg(numeric)` is the NUMERIC division of the sum by the count, at
//! `select_div_scale`'s places; [`super::aggregate::PgStat`] computes it so, and its display
//! scale by a twin accumulator over the same column: two sums per `avg` beside the `sum`
//! DataFusion already keeps. After governance has checked the plan (its function rules see
//! the `avg` the statement wrote), this optimizer rule replaces each such pair by the group's
//! `sum(x)` and `count(x)`, shared with identical aggregates of the statement, and computes the
//! value and its display scale from them above the aggregate ([`AvgOfSums`], the same
//! arithmetic as the accumulator's last step). Only where the sum cannot leave `i128`:
//! declared NUMERIC of at most 18 digits (DataFusion sums them at precision + 10 without a
//! check); wider values, `DISTINCT`, values with per-row display scales and grouping sets keep
//! the accumulator.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Int32Array};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Int64Type};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{exec_err, plan_err, Column, DFSchema, ExprSchema, Result, ScalarValue};
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction};
use datafusion::logical_expr::{
    lit, Aggregate, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Projection, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use num_bigint::BigInt;

use super::aggregate::PgStat;
use super::arith::{self, Stat, Sums};
use super::scales::unaliased;
use super::scalar::{arith_err, row_scale_metadata, stored};

/// Widest declared NUMERIC whose sum DataFusion keeps exact: |x| < 10^18, so 10^20 rows stay
/// under `i128`'s 1.7·10^38.
const MAX_PRECISION: u8 = 18;

/// The optimizer rule.
#[derive(Debug, Default)]
pub struct AvgSums;

impl OptimizerRule for AvgSums {
    fn name(&self) -> &str {
        "lalo_avg_sums"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        match plan {
            LogicalPlan::Aggregate(a) => split(a),
            other => Ok(Transformed::no(other)),
        }
    }
}

/// An `avg` this rule computes from sums: whether it is the display-scale twin, its argument
/// and its FILTER.
struct Avg {
    scale_only: bool,
    arg: Expr,
    filter: Option<Box<Expr>>,
}

fn avg_of(e: &Expr, input: &DFSchema) -> Option<Avg> {
    let Expr::AggregateFunction(f) = unaliased(e) else { return None };
    let stat = (f.func.inner().as_ref() as &dyn Any).downcast_ref::<PgStat>()?;
    let scale_only = stat.avg_twin()?;
    if f.params.distinct || f.params.args.len() != 1 {
        return None;
    }
    // An ORDER BY inside `avg(x ORDER BY y)` changes no sum or count: the sums drop it.
    let arg = f.params.args[0].clone();
    let t = arg.get_type(input).ok()?;
    match t {
        DataType::Decimal128(p, s) if p <= MAX_PRECISION && s >= 0 && !crate::pgtypes::numeric::is_unconstrained(&t) => {}
        _ => return None,
    }
    Some(Avg { scale_only, arg, filter: f.params.filter.clone() })
}

fn aggregate(func: Arc<datafusion::logical_expr::AggregateUDF>, arg: Expr, filter: Option<Box<Expr>>) -> Expr {
    Expr::AggregateFunction(AggregateFunction::new_udf(func, vec![arg], false, filter, vec![], None))
}

/// `count(*)` as DataFusion plans it: a count of a constant that is never NULL.
fn counts_rows(e: &Expr, filter: &Option<Box<Expr>>) -> bool {
    matches!(unaliased(e), Expr::AggregateFunction(f)
        if f.func.name() == "count" && !f.params.distinct && &f.params.filter == filter && f.params.order_by.is_empty()
            && matches!(f.params.args.as_slice(), [Expr::Literal(v, _)] if !v.is_null()))
}

fn split(a: Aggregate) -> Result<Transformed<LogicalPlan>> {
    if a.group_expr.iter().any(|g| matches!(g, Expr::GroupingSet(_))) {
        return Ok(Transformed::no(LogicalPlan::Aggregate(a)));
    }
    let input = a.input.schema().clone();
    let avgs: Vec<Option<Avg>> = a.aggr_expr.iter().map(|e| avg_of(e, &input)).collect();
    if avgs.iter().all(Option::is_none) {
        return Ok(Transformed::no(LogicalPlan::Aggregate(a)));
    }
    let n_group = a.group_expr.len();
    let old = a.schema.clone();
    // The aggregates kept, then each sum and count the averages need, shared with an equal one.
    let mut aggr: Vec<Expr> = Vec::with_capacity(a.aggr_expr.len());
    let mut kept_at = vec![None; a.aggr_expr.len()];
    for (j, (e, avg)) in a.aggr_expr.iter().zip(&avgs).enumerate() {
        if avg.is_none() {
            kept_at[j] = Some(aggr.len());
            aggr.push(e.clone());
        }
    }
    let mut names: std::collections::HashSet<String> = old.fields().iter().map(|f| f.name().clone()).collect();
    let mut find_or_add = |aggr: &mut Vec<Expr>, want: Expr, same: &dyn Fn(&Expr) -> bool| -> usize {
        if let Some(i) = aggr.iter().position(|e| unaliased(e) == &want || same(e)) {
            return i;
        }
        let mut name = format!("{}{}", super::values::COMPANION, want.schema_name());
        while !names.insert(name.clone()) {
            name.push('\'');
        }
        aggr.push(want.alias(name));
        aggr.len() - 1
    };
    let mut parts = vec![None; a.aggr_expr.len()];
    for (j, avg) in avgs.iter().enumerate() {
        let Some(avg) = avg else { continue };
        let sum = find_or_add(&mut aggr, aggregate(sum_udaf(), avg.arg.clone(), avg.filter.clone()), &|_| false);
        let never_null = matches!(&avg.arg, Expr::Column(c) if input.field_from_column(c).is_ok_and(|f| !f.is_nullable()));
        let count = find_or_add(&mut aggr, aggregate(count_udaf(), avg.arg.clone(), avg.filter.clone()), &|e| never_null && counts_rows(e, &avg.filter));
        parts[j] = Some((sum, count));
    }
    let agg = Aggregate::try_new(a.input.clone(), a.group_expr.clone(), aggr)?;
    let new = agg.schema.clone();
    let col = |i: usize| Expr::Column(Column::from(new.qualified_field(i)));
    let mut exprs: Vec<Expr> = (0..n_group).map(col).collect();
    for (j, avg) in avgs.iter().enumerate() {
        let (q, f) = old.qualified_field(n_group + j);
        match (avg, parts[j], kept_at[j]) {
            (Some(avg), Some((sum, count)), _) => {
                let out = match f.data_type() {
                    DataType::Decimal128(_, s) => *s,
                    _ => 0,
                };
                let udf = Arc::new(ScalarUDF::new_from_impl(AvgOfSums::new(avg.scale_only)));
                let call = Expr::ScalarFunction(ScalarFunction::new_udf(udf, vec![col(n_group + sum), col(n_group + count), lit(out as i32)]));
                exprs.push(call.alias_qualified(q.cloned(), f.name()));
            }
            (_, _, Some(k)) => exprs.push(col(n_group + k).alias_qualified(q.cloned(), f.name())),
            _ => return plan_err!("aggregate {} lost its place", f.name()),
        }
    }
    let plan = LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(LogicalPlan::Aggregate(agg)))?);
    Ok(Transformed::yes(plan))
}

/// `avg` from a group's sum and count: `pg_numeric_avg(sum, count, out)` is the value stored at
/// `out` places, or (the twin) its display scale; NULL over no rows.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AvgOfSums {
    scale_only: bool,
    signature: Signature,
}

impl AvgOfSums {
    pub fn new(scale_only: bool) -> Self {
        AvgOfSums { scale_only, signature: Signature::any(3, Volatility::Immutable) }
    }

    fn one(&self, sum: i128, scale: i8, n: i64, out: i8) -> Result<(Option<i128>, Option<i32>)> {
        let sums = Sums { sum: BigInt::from(sum), sum2: BigInt::from(0), n, dscale: scale.max(0) as u32 };
        let Some(v) = arith::finish(Stat::Avg, &sums, scale.max(0) as u32).map_err(arith_err)? else { return Ok((None, None)) };
        if self.scale_only {
            return Ok((None, Some(v.dscale as i32)));
        }
        Ok((Some(stored(&v, out)?), None))
    }
}

impl ScalarUDFImpl for AvgOfSums {
    fn name(&self) -> &str {
        if self.scale_only {
            "pg_numeric_avg_scale"
        } else {
            "pg_numeric_avg"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        datafusion::common::internal_err!("return_field_from_args should be called instead")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if self.scale_only {
            return Ok(Arc::new(Field::new(self.name(), DataType::Int32, true)));
        }
        let Some(Some(ScalarValue::Int32(Some(out)))) = args.scalar_arguments.get(2) else {
            return plan_err!("{} takes the result's scale as a constant", self.name());
        };
        let t = DataType::Decimal128(38, (*out).clamp(0, 38) as i8);
        Ok(Arc::new(Field::new(self.name(), t, true).with_metadata(row_scale_metadata())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let n = if scalar { 1 } else { args.number_rows };
        let [sum, count, _] = args.args.as_slice() else { return exec_err!("{} takes three arguments", self.name()) };
        let (sum, count) = (sum.to_array(n)?, count.to_array(n)?);
        let (Some(sum), Some(count)) = (sum.as_primitive_opt::<Decimal128Type>(), count.as_primitive_opt::<Int64Type>()) else {
            return exec_err!("{} takes a decimal sum and a count", self.name());
        };
        let out = match args.return_field.data_type() {
            DataType::Decimal128(_, s) => *s,
            _ => 0,
        };
        let mut values = Vec::with_capacity(if self.scale_only { 0 } else { n });
        let mut scales = Vec::with_capacity(if self.scale_only { n } else { 0 });
        for r in 0..n {
            let (v, s) = if sum.is_null(r) || count.is_null(r) { (None, None) } else { self.one(sum.value(r), sum.scale(), count.value(r), out)? };
            values.push(v);
            scales.push(s);
        }
        let out: ArrayRef = if self.scale_only {
            Arc::new(Int32Array::from(scales))
        } else {
            Arc::new(Decimal128Array::from(values).with_precision_and_scale(38, out)?)
        };
        Ok(if scalar { ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?) } else { ColumnarValue::Array(out) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Decimal128Array, Int32Array};
    use datafusion::arrow::datatypes::Schema;
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::functions_aggregate::expr_fn::{count, sum};
    use datafusion::logical_expr::AggregateUDF;
    use datafusion::prelude::{col, SessionContext};

    fn stat(scale_only: bool, arg: Expr, filter: Option<Expr>) -> Expr {
        let f = Arc::new(AggregateUDF::new_from_impl(PgStat::new("avg", &[], Stat::Avg, scale_only)));
        Expr::AggregateFunction(AggregateFunction::new_udf(f, vec![arg], false, filter.map(Box::new), vec![], None))
    }

    /// Groups with NULLs, a group of NULLs only, values of 2 and 3 places, a FILTER that keeps
    /// nothing in some groups; `y` is never NULL.
    fn context(with_rule: bool) -> Result<SessionContext> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int32, false),
            Field::new("x", DataType::Decimal128(15, 2), true),
            Field::new("y", DataType::Decimal128(12, 3), false),
        ]));
        let g = Int32Array::from(vec![1, 1, 1, 2, 2, 3, 4, 4, 4]);
        let x = Decimal128Array::from(vec![Some(150), Some(225), Some(310), None, None, Some(-1), Some(99_999_999_999_999), Some(1), None])
            .with_precision_and_scale(15, 2)?;
        let y = Decimal128Array::from(vec![1, 2, 4, 1000, 3, 7, 10, 20, 1]).with_precision_and_scale(12, 3)?;
        let batch = RecordBatch::try_new(schema, vec![Arc::new(g), Arc::new(x), Arc::new(y)])?;
        let mut state = SessionStateBuilder::new().with_default_features();
        if with_rule {
            let mut rules = datafusion::optimizer::Optimizer::new().rules;
            rules.push(Arc::new(AvgSums));
            state = state.with_optimizer_rules(rules);
        }
        let ctx = SessionContext::new_with_state(state.build());
        ctx.register_batch("t", batch)?;
        Ok(ctx)
    }

    async fn run(with_rule: bool, filter_rows: bool) -> Result<(String, String)> {
        let ctx = context(with_rule)?;
        let mut df = ctx.table("t").await?;
        if filter_rows {
            df = df.filter(col("g").gt(lit(10)))?;
        }
        let keep = Some(col("x").gt(lit(ScalarValue::Decimal128(Some(200), 15, 2))));
        let df = df.aggregate(
            if filter_rows { vec![] } else { vec![col("g")] },
            vec![
                stat(false, col("x"), None).alias("ax"),
                stat(true, col("x"), None).alias("sx"),
                stat(false, col("x"), keep.clone()).alias("afx"),
                stat(true, col("x"), keep).alias("sfx"),
                stat(false, col("y"), None).alias("ay"),
                stat(true, col("y"), None).alias("sy"),
                sum(col("x")).alias("sum_x"),
                count(lit(1)).alias("n"),
            ],
        )?;
        let df = if filter_rows { df } else { df.sort(vec![col("g").sort(true, false)])? };
        let plan = df.clone().into_optimized_plan()?.display_indent().to_string();
        Ok((pretty_format_batches(&df.collect().await?)?.to_string(), plan))
    }

    #[tokio::test]
    async fn averages_from_sums_match_the_accumulator() -> Result<()> {
        for global in [false, true] {
            let (want, before) = run(false, global).await?;
            let (got, after) = run(true, global).await?;
            assert_eq!(got, want, "plan:\n{after}");
            assert!(before.contains("avg(t.x)"), "{before}");
            assert!(!after.contains("avg(t."), "every average is computed from sums:\n{after}");
            assert!(after.contains("pg_numeric_avg_scale("), "{after}");
        }
        // The values PostgreSQL gives: avg of 1.50, 2.25, 3.10 is 2.2833333333333333.
        let (got, _) = run(true, false).await?;
        assert!(got.contains("2.283333333333333300000000"), "{got}");
        Ok(())
    }

    #[tokio::test]
    async fn the_existing_sum_is_shared() -> Result<()> {
        let (_, after) = run(true, false).await?;
        let aggregate = after.lines().find(|l| l.contains("Aggregate:")).unwrap_or_default().to_string();
        let added = |name: &str| [",", "]"].iter().any(|end| aggregate.contains(&format!("AS __lalo_dscale:{name}{end}")));
        assert!(!added("sum(t.x)"), "{aggregate}");
        assert!(added("count(t.x)"), "{aggregate}");
        // y is never NULL: its count is the rows' count.
        assert!(!aggregate.contains("count(t.y)"), "{aggregate}");
        Ok(())
    }

    #[tokio::test]
    async fn wide_or_distinct_averages_keep_the_accumulator() -> Result<()> {
        let ctx = SessionContext::new_with_state(
            SessionStateBuilder::new().with_default_features().with_optimizer_rules(vec![Arc::new(AvgSums)]).build(),
        );
        let df = ctx.sql("select cast(1.5 as decimal(30, 2)) as w, cast(2.5 as decimal(10, 2)) as n").await?;
        let f = Arc::new(AggregateUDF::new_from_impl(PgStat::new("avg", &[], Stat::Avg, false)));
        let wide = Expr::AggregateFunction(AggregateFunction::new_udf(f.clone(), vec![col("w")], false, None, vec![], None));
        let distinct = Expr::AggregateFunction(AggregateFunction::new_udf(f, vec![col("n")], true, None, vec![], None));
        let plan = df.aggregate(vec![], vec![wide.alias("a"), distinct.alias("b")])?.into_optimized_plan()?.display_indent().to_string();
        assert!(!plan.contains("pg_numeric_avg"), "{plan}");
        Ok(())
    }
}
