//! A small table pinned by a constant joins the one table its keys meet as soon as that table
//! is read, not where the FROM list put it.
//!
//! DataFusion keeps the order of the FROM list (its join selection only swaps each join's two
//! sides). In TPC-H Q21 the one nation `n_name = 'SAUDI ARABIA'` keeps is joined last: its
//! join filter reaches the suppliers only after they have met 3.8 M late lines, where joined
//! to the suppliers first it would have kept 4 % of them, and through them of the lines
//! (318.6 → 213.4 ms with the FROM list reordered by hand). Whole-chain orders chosen by
//! estimates were tried and dropped (`bench/results/tpch-sf1-levers.md`: without distinct counts
//! of column pairs they sent all of lineitem through Q09's joins); this rule makes only the move
//! that cannot enlarge any intermediate result.
//!
//! The move: an inner join whose one side, R, is a scan of a table of at most
//! [`MAX_ROWS`] rows (statistics of a table held in memory), filtered by an equality with a
//! constant (or an IN list, or an OR of equalities), and joined on a key R holds once per row
//! (its distinct count about its row count). Each row of the other side then meets at most one
//! row of R, so joining R earlier only drops rows. R is joined instead to the deepest part of
//! the other side that holds all of the join's keys, through inner joins, filters and
//! projections passing those keys along (which then pass R's columns along too), and a
//! projection restores the columns' order.

use std::sync::Arc;

use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Filter, Join, JoinConstraint, JoinType, LogicalPlan, Operator, Projection, TableScan,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// The largest table moved: a dimension whose hash table is built in well under a millisecond.
pub const MAX_ROWS: usize = 100_000;

/// The optimizer rule.
#[derive(Debug, Default)]
pub struct PinnedFirst;

impl OptimizerRule for PinnedFirst {
    fn name(&self) -> &str {
        "lalo_pinned_first"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Join(j) = &plan else { return Ok(Transformed::no(plan)) };
        // A join with a condition of its own stays: as a filter above the moved join it would sit
        // over projections whose columns share names (`n1.n_name`, `n2.n_name`), which
        // DataFusion's physical filter pushdown then confuses (TPC-H Q07 lost every row).
        if j.join_type != JoinType::Inner || j.null_aware || j.on.is_empty() || j.filter.is_some() {
            return Ok(Transformed::no(plan));
        }
        for pinned_right in [true, false] {
            let (other, r) = if pinned_right { (&j.left, &j.right) } else { (&j.right, &j.left) };
            let keys: Vec<(Expr, Expr)> =
                j.on.iter().map(|(l, rk)| if pinned_right { (l.clone(), rk.clone()) } else { (rk.clone(), l.clone()) }).collect();
            if !pinned(r, keys.iter().map(|(_, k)| k)) {
                continue;
            }
            let Some(cols) = keys.iter().map(|(o, _)| as_column(o)).collect::<Option<Vec<Column>>>() else { continue };
            if shares_names(other, r) {
                continue;
            }
            let Some(moved) = push(other, r, &keys, &cols, j, 0)? else { continue };
            let plan = moved;
            let order: Vec<Expr> = j.schema.columns().into_iter().map(Expr::Column).collect();
            return Ok(Transformed::yes(LogicalPlan::Projection(Projection::try_new(order, Arc::new(plan))?)));
        }
        Ok(Transformed::no(plan))
    }
}

fn as_column(e: &Expr) -> Option<Column> {
    match e {
        Expr::Column(c) => Some(c.clone()),
        _ => None,
    }
}

/// `node` with `r` joined to its deepest part holding `cols`; `None` when that is `node` itself
/// (the join stays where it is).
fn push(node: &Arc<LogicalPlan>, r: &Arc<LogicalPlan>, keys: &[(Expr, Expr)], cols: &[Column], j: &Join, depth: usize) -> Result<Option<LogicalPlan>> {
    let holds = |p: &LogicalPlan| cols.iter().all(|c| p.schema().has_column(c));
    let deeper = match node.as_ref() {
        LogicalPlan::Join(inner) if inner.join_type == JoinType::Inner && !inner.null_aware => {
            let side = if holds(&inner.left) {
                Some(true)
            } else if holds(&inner.right) {
                Some(false)
            } else {
                None
            };
            match side {
                Some(left) => {
                    let child = if left { &inner.left } else { &inner.right };
                    push(child, r, keys, cols, j, depth + 1)?.map(|c| -> Result<LogicalPlan> {
                        let (l, rt) = if left { (Arc::new(c), inner.right.clone()) } else { (inner.left.clone(), Arc::new(c)) };
                        Ok(LogicalPlan::Join(Join::try_new(
                            l,
                            rt,
                            inner.on.clone(),
                            inner.filter.clone(),
                            inner.join_type,
                            inner.join_constraint,
                            inner.null_equality,
                            inner.null_aware,
                        )?))
                    })
                }
                None => None,
            }
        }
        LogicalPlan::Projection(p) if cols.iter().all(|c| passes(p, c)) => push(&p.input, r, keys, cols, j, depth + 1)?.map(|c| {
            let mut exprs = p.expr.clone();
            exprs.extend(r.schema().columns().into_iter().map(Expr::Column));
            Projection::try_new(exprs, Arc::new(c)).map(LogicalPlan::Projection)
        }),
        LogicalPlan::Filter(f) => push(&f.input, r, keys, cols, j, depth + 1)?
            .map(|c| Filter::try_new(f.predicate.clone(), Arc::new(c)).map(LogicalPlan::Filter)),
        _ => None,
    };
    match deeper {
        Some(plan) => Ok(Some(plan?)),
        None if depth == 0 => Ok(None),
        // Here: this part holds the keys and its inputs do not each hold them all.
        None => Ok(Some(LogicalPlan::Join(Join::try_new(
            node.clone(),
            r.clone(),
            keys.to_vec(),
            None,
            JoinType::Inner,
            JoinConstraint::On,
            j.null_equality,
            false,
        )?))),
    }
}

/// Whether a column of `r` has the name of a column anywhere in `other` (two copies of one
/// table, `n1` and `n2`). DataFusion 54.1 maps a join's dynamic filter onto its probe side by
/// column name (`FilterRemapper::try_remap`, apache/datafusion#25296): with `n2.n_regionkey`
/// moved ahead of `n1.n_regionkey` in a join's output, the region filter meant for `n1` narrowed
/// `n2` and a six-table `SELECT *` lost every row. Only moves that put no second column of a
/// name into any part of the plan are made.
fn shares_names(other: &LogicalPlan, r: &LogicalPlan) -> bool {
    let theirs: std::collections::HashSet<&String> = r.schema().fields().iter().map(|f| f.name()).collect();
    let mut shared = false;
    let _ = other.apply(|n| {
        shared = n.schema().fields().iter().any(|f| theirs.contains(f.name()));
        Ok(if shared { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    shared
}

/// Whether projection `p` outputs column `c` as the input's column of that name.
fn passes(p: &Projection, c: &Column) -> bool {
    p.expr.iter().any(|e| matches!(e, Expr::Column(x) if x == c))
}

/// Whether `r` is a small table pinned by a constant, read on keys it holds once per row.
fn pinned<'a>(r: &LogicalPlan, keys: impl Iterator<Item = &'a Expr>) -> bool {
    let mut filters: Vec<&Expr> = Vec::new();
    let mut node = r;
    let scan: &TableScan = loop {
        match node {
            LogicalPlan::SubqueryAlias(a) => node = &a.input,
            LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => node = &p.input,
            LogicalPlan::Filter(f) => {
                filters.extend(split_conjunction(&f.predicate));
                node = &f.input;
            }
            LogicalPlan::TableScan(s) => break s,
            _ => return false,
        }
    };
    filters.extend(scan.filters.iter().flat_map(split_conjunction));
    if !filters.iter().any(|f| pins(f)) {
        return false;
    }
    let Some(stats) = source_as_provider(&scan.source).ok().and_then(|p| p.statistics()) else { return false };
    let Some(&rows) = stats.num_rows.get_value() else { return false };
    if rows > MAX_ROWS {
        return false;
    }
    let table = scan.source.schema();
    keys.into_iter().all(|k| {
        let Expr::Column(c) = k else { return false };
        let Ok(i) = table.index_of(&c.name) else { return false };
        let distinct = stats.column_statistics.get(i).map(|s| s.distinct_count).unwrap_or(Precision::Absent);
        // Distinct counts are approximate (table_stats.rs): within a tenth of the rows.
        distinct.get_value().is_some_and(|&d| d * 10 >= rows * 9)
    })
}

/// An equality of a column with a constant, an IN list of constants, or an OR of such.
fn pins(e: &Expr) -> bool {
    let constant = |x: &Expr| matches!(x, Expr::Literal(v, _) if !v.is_null()) || matches!(x, Expr::Placeholder(_));
    let column = |x: &Expr| matches!(x, Expr::Column(_));
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => {
            (column(left) && constant(right)) || (constant(left) && column(right))
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => pins(left) && pins(right),
        Expr::InList(l) => !l.negated && column(&l.expr) && l.list.iter().all(constant),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    /// A table held in memory with its statistics, as `memory_cache.rs` registers it.
    async fn held(ctx: &SessionContext, name: &str, batch: RecordBatch) -> Result<()> {
        let schema = batch.schema();
        let parts = vec![vec![batch]];
        let table = Arc::new(MemTable::try_new(schema.clone(), parts.clone())?);
        let columns = crate::engine::table_stats::compute(ctx, table.clone()).await.map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let stats = crate::engine::table_stats::whole(&parts, &schema, columns);
        ctx.register_table(name, Arc::new(crate::engine::memory_scan::CachedTable::new(table, stats)))?;
        Ok(())
    }

    /// Lines with an order each, orders with a region code, regions (and a table of codes
    /// where each code appears twice).
    async fn context(with_rule: bool) -> Result<SessionContext> {
        let mut rules = datafusion::optimizer::Optimizer::new().rules;
        if with_rule {
            rules.push(Arc::new(PinnedFirst));
        }
        let ctx = SessionContext::new_with_state(SessionStateBuilder::new().with_default_features().with_optimizer_rules(rules).build());
        let int = |v: Vec<i32>| Arc::new(Int32Array::from(v));
        let n = 2000;
        let lines = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("l_order", DataType::Int32, false), Field::new("l_qty", DataType::Int32, false)])),
            vec![int((0..n).map(|i| i % 500).collect()), int((0..n).collect())],
        )?;
        let orders = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("o_key", DataType::Int32, false), Field::new("o_region", DataType::Int32, false)])),
            vec![int((0..500).collect()), int((0..500).map(|i| i % 5).collect())],
        )?;
        let region = |name: &str, keys: Vec<i32>| -> Result<RecordBatch> {
            let names: Vec<String> = keys.iter().map(|k| format!("{name}{k}")).collect();
            Ok(RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("r_key", DataType::Int32, false), Field::new("r_name", DataType::Utf8, false)])),
                vec![int(keys), Arc::new(StringArray::from(names))],
            )?)
        };
        held(&ctx, "lines", lines).await?;
        held(&ctx, "orders", orders).await?;
        held(&ctx, "region", region("r", (0..5).collect())?).await?;
        held(&ctx, "twice", region("t", (0..5).chain(0..5).collect())?).await?;
        Ok(ctx)
    }

    async fn run(with_rule: bool, sql: &str) -> Result<(String, String)> {
        let df = context(with_rule).await?.sql(sql).await?;
        let plan = df.clone().into_optimized_plan()?.display_indent().to_string();
        Ok((pretty_format_batches(&df.collect().await?)?.to_string(), plan))
    }

    /// The depth of the first line naming `what` in an indented plan.
    fn depth(plan: &str, what: &str) -> Option<usize> {
        plan.lines().find(|l| l.contains(what)).map(|l| l.len() - l.trim_start().len())
    }

    #[tokio::test]
    async fn a_pinned_region_joins_the_orders_before_their_lines() -> Result<()> {
        let sql = "select r_name, count(*), sum(l_qty) from lines, orders, region \
                   where l_order = o_key and o_region = r_key and r_name = 'r3' group by r_name";
        let (want, before) = run(false, sql).await?;
        let (got, after) = run(true, sql).await?;
        assert_eq!(got, want, "{after}");
        assert!(want.contains("r3") && want.contains("400"), "{want}");
        let (lines_join, region_join) = ("lines.l_order = orders.o_key", "orders.o_region = region.r_key");
        assert!(depth(&before, region_join) < depth(&before, lines_join), "{before}");
        assert!(depth(&after, region_join) > depth(&after, lines_join), "the region joins the orders first:\n{after}");
        Ok(())
    }

    #[tokio::test]
    async fn two_pinned_copies_of_a_table_keep_their_rows() -> Result<()> {
        // Both copies' columns are named alike; the OR across them stays a condition of its join.
        let sql = "select r1.r_name, r2.r_name, count(*) from lines, orders, region r1, region r2 \
                   where l_order = o_key and o_region = r1.r_key and o_key % 5 = r2.r_key \
                   and (r1.r_name = 'r1' and r2.r_name = 'r2' or r1.r_name = 'r2' and r2.r_name = 'r1') \
                   and r1.r_name in ('r1', 'r2') and r2.r_name in ('r1', 'r2') group by 1, 2 order by 1, 2";
        let (want, _) = run(false, sql).await?;
        let (got, after) = run(true, sql).await?;
        assert_eq!(got, want, "{after}");
        assert_eq!(want.lines().filter(|l| l.contains("| r1") || l.contains("| r2")).count(), 0, "o_region = o_key % 5: no order has two regions\n{want}");
        let sql = sql.replace("o_key % 5 = r2.r_key", "o_region = r2.r_key").replace("r2.r_name = 'r2' or", "r2.r_name = 'r1' or").replace("r2.r_name = 'r1')", "r2.r_name = 'r2')");
        let (want, _) = run(false, &sql).await?;
        let (got, after) = run(true, &sql).await?;
        assert_eq!(got, want, "{after}");
        assert!(want.contains("400"), "{want}");
        Ok(())
    }

    #[tokio::test]
    async fn unpinned_or_repeated_keys_stay_where_written() -> Result<()> {
        for sql in [
            // No constant narrows the region.
            "select count(*) from lines, orders, region where l_order = o_key and o_region = r_key and r_name <> 'r3'",
            // Each code twice: joining it earlier would double the rows flowing through.
            "select count(*) from lines, orders, twice where l_order = o_key and o_region = r_key and r_name = 't3'",
            // A second copy of a table already joined: its columns' names would appear twice below.
            "select * from lines, orders, region r1, region r2 where l_order = o_key and o_region = r1.r_key \
             and o_region = r2.r_key and r2.r_name = 'r3' order by l_qty limit 5",
        ] {
            let (want, before) = run(false, sql).await?;
            let (got, after) = run(true, sql).await?;
            assert_eq!(got, want);
            assert_eq!(after, before, "{sql}");
        }
        Ok(())
    }
}
