//! Join order: a chain of three or more inner equi-joins is rebuilt in the order whose
//! intermediate results are estimated smallest in total. DataFusion joins tables in the order of
//! the FROM list and only swaps the two sides of each join; a selective join written last (TPC-H
//! Q21's one nation of 25) then filters only at the top, after the joins below it carried every
//! row, and the hash tables below are built from the unfiltered rows. Here each table of the
//! chain is sized with the statistics its provider reports (tables held in memory: rows, ranges,
//! distinct counts) and the filters on it (the same estimates as `estimates.rs`); a join of two
//! inputs keeps `rows × rows / max(distinct keys)`. Over every connected left-deep order (a
//! dynamic program over subsets, chains of up to 10 tables) the one with the smallest sum of
//! intermediate results wins: choosing the smallest join first, greedily, joined TPC-H Q09's
//! nations and suppliers before any filter had touched lineitem and made it five times slower.
//! A chain with a table of unknown size, an outer join, a join condition beyond column
//! equalities, or a key that is not a plain column is left as written. The rebuilt chain returns
//! the columns in their original order.

use std::sync::Arc;

use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, JoinType, NullEquality, Result, Statistics};
use datafusion::logical_expr::expr::Alias;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Join, JoinConstraint, LogicalPlan, Operator, Projection};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::create_physical_expr;
use datafusion::physical_expr::execution_props::ExecutionProps;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::operator_statistics::{ExtendedStatistics, StatisticsProvider, StatisticsResult};

#[derive(Debug, Default)]
pub struct JoinOrder;

impl OptimizerRule for JoinOrder {
    fn name(&self) -> &str {
        "lalo_join_order"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        None
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        plan.transform_down(reorder)
    }
}

/// The key pairs of a join this rule may move: inner, NULL never equal to NULL, every
/// condition (its equi-keys and its filter's conjuncts) an equality of two columns. `None` for
/// any other join.
fn keys_of(join: &Join) -> Option<Vec<(Column, Column)>> {
    if join.join_type != JoinType::Inner || join.null_equality != NullEquality::NullEqualsNothing || join.null_aware {
        return None;
    }
    let mut keys = Vec::new();
    for (l, r) in &join.on {
        let (Expr::Column(l), Expr::Column(r)) = (l, r) else { return None };
        keys.push((l.clone(), r.clone()));
    }
    for conjunct in join.filter.iter().flat_map(split_conjunction) {
        let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = conjunct else { return None };
        let (Expr::Column(l), Expr::Column(r)) = (left.as_ref(), right.as_ref()) else { return None };
        keys.push((l.clone(), r.clone()));
    }
    (!keys.is_empty()).then_some(keys)
}

/// The tables (anything but a movable join) and key pairs of the chain under `plan`, tables in
/// the order they are written.
fn flatten(plan: &LogicalPlan, tables: &mut Vec<LogicalPlan>, keys: &mut Vec<(Column, Column)>) {
    match plan {
        LogicalPlan::Join(join) if keys_of(join).is_some() => {
            flatten(&join.left, tables, keys);
            flatten(&join.right, tables, keys);
            keys.extend(keys_of(join).unwrap_or_default());
        }
        other => tables.push(other.clone()),
    }
}

fn reorder(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Join(join) = &plan else { return Ok(Transformed::no(plan)) };
    if keys_of(join).is_none() {
        return Ok(Transformed::no(plan));
    }
    let mut tables = Vec::new();
    let mut keys = Vec::new();
    flatten(&plan, &mut tables, &mut keys);
    if tables.len() < 3 {
        return Ok(Transformed::no(plan));
    }
    let Some(sizes) = tables.iter().map(estimate).collect::<Option<Vec<_>>>() else { return Ok(Transformed::no(plan)) };
    // Each key pair as (table, column, table, column); a key no single table has stops the rule.
    let mut edges = Vec::new();
    for (l, r) in &keys {
        let (Some(a), Some(b)) = (owner(&tables, l), owner(&tables, r)) else { return Ok(Transformed::no(plan)) };
        if a == b {
            return Ok(Transformed::no(plan));
        }
        edges.push((a, l.clone(), b, r.clone()));
    }
    let Some(order) = cheapest(&sizes, &tables, &edges) else { return Ok(Transformed::no(plan)) };
    if order.iter().copied().eq(0..tables.len()) {
        // Already in that order (as written, or rebuilt by an earlier pass). Every shorter chain
        // below is a prefix of this one, which the same choices keep in its order.
        return Ok(Transformed::no(plan));
    }
    let original = plan.schema().clone();
    // Chains inside the tables (subqueries, derived tables) first; the rebuilt chain is not
    // visited again.
    let tables: Vec<LogicalPlan> = tables.into_iter().map(|t| t.transform_down(reorder).map(|t| t.data)).collect::<Result<_>>()?;
    let mut joined = vec![order[0]];
    let mut built = tables[order[0]].clone();
    for &next in &order[1..] {
        let on: Vec<(Expr, Expr)> = edges
            .iter()
            .filter_map(|(a, ca, b, cb)| {
                if joined.contains(a) && *b == next {
                    Some((Expr::Column(ca.clone()), Expr::Column(cb.clone())))
                } else if joined.contains(b) && *a == next {
                    Some((Expr::Column(cb.clone()), Expr::Column(ca.clone())))
                } else {
                    None
                }
            })
            .collect();
        built = LogicalPlan::Join(Join::try_new(
            Arc::new(built),
            Arc::new(tables[next].clone()),
            on,
            None,
            JoinType::Inner,
            JoinConstraint::On,
            NullEquality::NullEqualsNothing,
            false,
        )?);
        joined.push(next);
    }
    let columns: Vec<Expr> = original.iter().map(|(q, f)| Expr::Column(Column::from((q, f)))).collect();
    let projected = LogicalPlan::Projection(Projection::try_new(columns, Arc::new(built))?);
    Ok(Transformed::new(projected, true, TreeNodeRecursion::Jump))
}

/// The table of `tables` whose output has `column`.
fn owner(tables: &[LogicalPlan], column: &Column) -> Option<usize> {
    let mut found = tables.iter().enumerate().filter(|(_, t)| t.schema().has_column(column)).map(|(i, _)| i);
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// Rows and per-column distinct counts of one table of the chain.
struct Size {
    rows: f64,
    stats: Statistics,
}

impl Size {
    fn distinct(&self, table: &LogicalPlan, column: &Column) -> f64 {
        let at = table.schema().index_of_column(column).ok();
        let ndv = at.and_then(|i| self.stats.column_statistics.get(i)).and_then(|c| c.distinct_count.get_value().copied());
        // An unknown count: as if the key were unique.
        ndv.map_or(self.rows, |n| n as f64).clamp(1.0, self.rows.max(1.0))
    }
}

/// Chains longer than this keep their written order (the subsets to consider double per table).
const MOST_TABLES: usize = 10;

/// The order to join the tables in: of the left-deep orders that join a connected table at each
/// step, the one whose joins' estimated outputs add up to the least. `None` when the chain is
/// not connected or too long.
fn cheapest(sizes: &[Size], tables: &[LogicalPlan], edges: &[(usize, Column, usize, Column)]) -> Option<Vec<usize>> {
    // The estimated rows of joining `rows` (over `set`) with table `t`. The key pairs between
    // them are one key: its distinct values on each side are the product of its columns' (an
    // unknown one as if unique), at most that side's rows; the join keeps `rows × rows / the
    // larger`. (Each column's count divided separately would take a two-column key that is
    // unique on one side, as partsupp's is, for a filter a thousand times as selective.)
    let join_rows = |rows: f64, set: u32, t: usize| -> Option<f64> {
        let inside_set = |i: usize| set & (1 << i) != 0;
        let (mut inside, mut outside, mut connected) = (1.0f64, 1.0f64, false);
        for (a, ca, b, cb) in edges {
            let (inside_table, inside_col, outside_col) = if inside_set(*a) && *b == t {
                (*a, ca, cb)
            } else if inside_set(*b) && *a == t {
                (*b, cb, ca)
            } else {
                continue;
            };
            connected = true;
            inside *= sizes[inside_table].distinct(&tables[inside_table], inside_col);
            outside *= sizes[t].distinct(&tables[t], outside_col);
        }
        let ndv = inside.min(rows.max(1.0)).max(outside.min(sizes[t].rows.max(1.0))).max(1.0);
        connected.then_some((rows * sizes[t].rows / ndv).max(1.0))
    };
    let n = tables.len();
    if n > MOST_TABLES {
        return None;
    }
    // Per subset of tables: (sum of the intermediate outputs, rows out, the order).
    let mut best: Vec<Option<(f64, f64, Vec<usize>)>> = vec![None; 1 << n];
    for (t, size) in sizes.iter().enumerate() {
        best[1 << t] = Some((0.0, size.rows, vec![t]));
    }
    // Subsets in increasing order: every subset's smaller subsets come before it.
    for set in 1u32..(1 << n) {
        let Some((cost, rows, order)) = best[set as usize].clone() else { continue };
        for t in (0..n).filter(|t| set & (1 << t) == 0) {
            let Some(out) = join_rows(rows, set, t) else { continue };
            // The first join: the smaller table first, where the chain's joins build from.
            let mut next = order.clone();
            if next.len() == 1 && sizes[t].rows < rows {
                next.insert(0, t);
            } else {
                next.push(t);
            }
            let slot = &mut best[(set | (1 << t)) as usize];
            if slot.as_ref().is_none_or(|(c, _, _)| cost + out < *c) {
                *slot = Some((cost + out, out, next));
            }
        }
    }
    let (cost, _, order) = best[(1usize << n) - 1].take()?;
    // The written order where it is estimated as cheap: estimates that cannot tell two orders
    // apart leave the statement as its author wrote it.
    let (mut written, mut rows) = (0.0, sizes[0].rows);
    for t in 1..n {
        let Some(out) = join_rows(rows, (1 << t) - 1, t) else { return Some(order) };
        written += out;
        rows = out;
    }
    Some(if written <= cost * (1.0 + 1e-9) { (0..n).collect() } else { order })
}

/// A table's size from its provider's statistics and the filters over it; `None` when unknown.
fn estimate(plan: &LogicalPlan) -> Option<Size> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            let whole = provider.statistics()?;
            whole.num_rows.get_value()?;
            let stats = whole.project(scan.projection.as_ref());
            let size = Size { rows: *stats.num_rows.get_value()? as f64, stats };
            let size = filtered(size, scan.filters.iter().cloned().reduce(Expr::and), plan)?;
            Some(match scan.fetch {
                Some(f) => Size { rows: size.rows.min(f as f64), stats: size.stats },
                None => size,
            })
        }
        LogicalPlan::SubqueryAlias(alias) => estimate(&alias.input),
        LogicalPlan::Filter(filter) => filtered(estimate(&filter.input)?, Some(filter.predicate.clone()), &filter.input),
        LogicalPlan::Projection(projection) => {
            let input = estimate(&projection.input)?;
            let mut stats = Statistics::new_unknown(projection.schema.as_arrow());
            stats.num_rows = Precision::Inexact(input.rows as usize);
            for (slot, expr) in stats.column_statistics.iter_mut().zip(&projection.expr) {
                let expr = match expr {
                    Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
                    e => e,
                };
                if let Expr::Column(c) = expr {
                    if let Some(s) = projection.input.schema().index_of_column(c).ok().and_then(|i| input.stats.column_statistics.get(i)) {
                        *slot = s.clone();
                    }
                }
            }
            Some(Size { rows: input.rows, stats })
        }
        _ => None,
    }
}

/// `size` after `predicate` (over `input`'s columns), by the planner's own filter estimate.
fn filtered(size: Size, predicate: Option<Expr>, input: &LogicalPlan) -> Option<Size> {
    let Some(predicate) = predicate else { return Some(size) };
    let schema = input.schema();
    let physical = create_physical_expr(&predicate, schema, &ExecutionProps::new()).ok()?;
    let filter = FilterExec::try_new(physical, Arc::new(EmptyExec::new(Arc::new(schema.as_arrow().clone())))).ok()?;
    let StatisticsResult::Computed(out) = super::estimates::Selectivity.compute_statistics(&filter, &[ExtendedStatistics::new(size.stats)]).ok()?
    else {
        return None;
    };
    let rows = *out.base().num_rows.get_value()? as f64;
    Some(Size { rows, stats: out.base().clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_of_two_is_left_alone() {
        let plan = LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
            produce_one_row: false,
            schema: Arc::new(datafusion::common::DFSchema::empty()),
        });
        assert!(!reorder(plan).unwrap().transformed);
    }
}
