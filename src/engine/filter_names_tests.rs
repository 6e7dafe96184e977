//! Tests of the guards: a condition on the second of two columns of one name narrows that
//! column, whatever node it passes on its way down; the answer is the one of the plan before
//! any pushdown.

use super::*;
use datafusion::arrow::array::Int32Array;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::catalog::TableProvider;
use datafusion::common::NullEquality;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{lit, BinaryExpr};
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_optimizer::filter_pushdown::FilterPushdown;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::PartitionMode;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::prelude::SessionContext;

type Plan = Arc<dyn ExecutionPlan>;

fn col(name: &str, at: usize) -> Arc<dyn PhysicalExpr> {
    Arc::new(Column::new(name, at))
}

fn cmp(l: Arc<dyn PhysicalExpr>, op: Operator, v: i32) -> Arc<dyn PhysicalExpr> {
    Arc::new(BinaryExpr::new(l, op, lit(v)))
}

/// Two int columns named as given, in batches of `per` rows.
fn batches(names: [&str; 2], first: Vec<i32>, second: Vec<i32>, per: usize) -> Result<Vec<RecordBatch>> {
    let schema = Arc::new(Schema::new(names.map(|n| Field::new(n, DataType::Int32, false)).to_vec()));
    let mut out = vec![];
    for at in (0..first.len()).step_by(per) {
        let end = (at + per).min(first.len());
        let cols = vec![Arc::new(Int32Array::from(first[at..end].to_vec())) as _, Arc::new(Int32Array::from(second[at..end].to_vec())) as _];
        out.push(RecordBatch::try_new(schema.clone(), cols)?);
    }
    Ok(out)
}

/// A scan with a filter of its own above it, as the optimizer leaves one above a scan: it takes
/// in whatever condition reaches that side.
fn side(names: [&str; 2], first: Vec<i32>, second: Vec<i32>) -> Result<Plan> {
    let parts = batches(names, first, second, 4)?;
    let scan = MemorySourceConfig::try_new_exec(&[parts.clone()], parts[0].schema(), None)?;
    Ok(Arc::new(FilterExec::try_new(cmp(col(names[0], 0), Operator::GtEq, 0), scan)?))
}

fn join(left: Plan, right: Plan, on: (usize, usize), join_type: JoinType) -> Result<Plan> {
    let keys = vec![(col(left.schema().field(on.0).name(), on.0), col(right.schema().field(on.1).name(), on.1))];
    let j = HashJoinExec::try_new(left, right, keys, None, &join_type, None, PartitionMode::CollectLeft, NullEquality::NullEqualsNothing, false)?;
    Ok(Arc::new(j))
}

/// The rows of a plan, sorted.
async fn rows(plan: Plan) -> Result<Vec<String>> {
    // Batches as small as the scans' own: each goes up the plan before the next is read.
    let ctx = SessionContext::new_with_config(datafusion::prelude::SessionConfig::new().with_batch_size(100));
    let out = datafusion::physical_plan::collect(plan, ctx.task_ctx()).await?;
    let text = pretty_format_batches(&out)?.to_string();
    let mut lines: Vec<String> = text.lines().filter(|l| l.starts_with("| ") && !l.contains(" v ") && !l.contains(" k ")).map(String::from).collect();
    lines.sort();
    Ok(lines)
}

/// The rows of a plan as built, which are the rows after both filter pushdowns, guarded as the
/// engine runs them. (A plan runs once: a join keeps its build side.)
async fn checked(build: impl Fn() -> Result<Plan>) -> Result<Vec<String>> {
    let want = rows(build()?).await?;
    let cfg = ConfigOptions::default();
    let mut plan = build()?;
    for rule in [FilterPushdown::new(), FilterPushdown::new_post_optimization()] {
        plan = NameSafe(Arc::new(rule)).optimize(plan, &cfg)?;
    }
    assert!(!format!("{plan:?}").contains("NameGuard"), "a guard was left in the plan");
    assert_eq!(rows(plan).await?, want);
    Ok(want)
}

/// `a` (k, v = k) and `b` (k, v = 100 + k), keys 0..10, joined on k: four columns, two `k`s and
/// two `v`s.
fn ab() -> Result<Plan> {
    let keys: Vec<i32> = (0..10).collect();
    let a = side(["k", "v"], keys.clone(), keys.clone())?;
    let b = side(["k", "v"], keys.clone(), keys.iter().map(|k| 100 + k).collect())?;
    join(a, b, (0, 0), JoinType::Inner)
}

#[tokio::test]
async fn a_condition_above_a_projection_narrows_the_column_it_reads() -> Result<()> {
    // SELECT a.v, b.v … WHERE a.v < 5 AND b.v > 101: the projection's two outputs are both `v`.
    let want = checked(|| {
        let projected = Arc::new(ProjectionExec::try_new(vec![(col("v", 1), "v".to_string()), (col("v", 3), "v".to_string())], ab()?)?);
        let both = Arc::new(BinaryExpr::new(cmp(col("v", 0), Operator::Lt, 5), Operator::And, cmp(col("v", 1), Operator::Gt, 101)));
        Ok(Arc::new(FilterExec::try_new(both, projected)?))
    })
    .await?;
    assert_eq!(want, ["| 2 | 102 |", "| 3 | 103 |", "| 4 | 104 |"]);
    Ok(())
}

#[tokio::test]
async fn a_condition_above_another_filter_narrows_the_column_it_reads() -> Result<()> {
    // WHERE b.v < 105 above a filter over the join, whose input has two `v`s.
    let want = checked(|| {
        let inner: Plan = Arc::new(FilterExec::try_new(cmp(col("v", 1), Operator::GtEq, 0), ab()?)?);
        Ok(Arc::new(FilterExec::try_new(cmp(col("v", 3), Operator::Lt, 105), inner)?))
    })
    .await?;
    assert_eq!(want.len(), 5);
    Ok(())
}

#[tokio::test]
async fn a_semi_join_passes_a_key_condition_only_to_the_key() -> Result<()> {
    // a.k IN (SELECT b.w FROM b) AND a.k = 3, where b has a column `k` that is not its key:
    // w = 0..10, k = 9 - w.
    let keys: Vec<i32> = (0..10).collect();
    let want = checked(|| {
        let a = side(["k", "v"], keys.clone(), keys.clone())?;
        let b = side(["k", "w"], keys.iter().map(|w| 9 - w).collect(), keys.clone())?;
        Ok(Arc::new(FilterExec::try_new(cmp(col("k", 0), Operator::Eq, 3), join(a, b, (0, 1), JoinType::LeftSemi)?)?))
    })
    .await?;
    assert_eq!(want, ["| 3 | 3 |"]);
    Ok(())
}

#[tokio::test]
async fn a_top_k_bound_narrows_the_column_it_sorts_by() -> Result<()> {
    // SELECT b.v, a.v … ORDER BY b.v DESC LIMIT 3, with `a` read in memory in many batches
    // while the top rows are kept: its bound on b.v must never narrow a.v.
    let keys: Vec<i32> = (0..1000).collect();
    let ctx = SessionContext::new();
    let parts = vec![batches(["k", "v"], keys.clone(), keys.clone(), 100)?];
    let schema = parts[0][0].schema();
    let stats = crate::engine::table_stats::whole(&parts, &schema, vec![]);
    let held = crate::engine::memory_scan::CachedTable::new(Arc::new(MemTable::try_new(schema.clone(), parts)?), stats);
    let b_parts = batches(["k", "v"], keys.clone(), keys.iter().map(|k| 1000 + k).collect(), 100)?;
    let (a1, a2) = (held.scan(&ctx.state(), None, &[], None).await?, held.scan(&ctx.state(), None, &[], None).await?);
    let scans = std::sync::Mutex::new(vec![a1, a2]);
    let want = checked(|| {
        let a = scans.lock().map_err(|_| datafusion::common::DataFusionError::Internal("scans".into()))?.pop().expect("a scan per run");
        let b = MemorySourceConfig::try_new_exec(&[b_parts.clone()], schema.clone(), None)?;
        // b is built first (the join's left), a streams through it.
        let projected = Arc::new(ProjectionExec::try_new(vec![(col("v", 1), "v".to_string()), (col("v", 3), "v".to_string())], join(b, a, (0, 0), JoinType::Inner)?)?);
        let order = LexOrdering::new(vec![PhysicalSortExpr::new(col("v", 0), datafusion::arrow::compute::SortOptions { descending: true, nulls_first: false })]);
        Ok(Arc::new(SortExec::new(order.expect("an ordering"), projected).with_fetch(Some(3))))
    })
    .await?;
    assert_eq!(want, ["| 1997 | 997 |", "| 1998 | 998 |", "| 1999 | 999 |"]);
    Ok(())
}
