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
//! the other side that holds all of the join's keys, through inner joins and projections
//! passing those keys along (which then pass R's columns along too), and a
//! projection restores the columns' order.
//!
//! R may itself be small tables joined to the pinned one on keys held once per row (Q05's nation
//! with its region `r_name = 'ASIA'`), and a key may be reached through a column an inner join on
//! the way down equates with it: Q05 joins nation to the suppliers on `s_nationkey`, but
//! `c_nationkey = s_nationkey` lets it join the customers first, as DuckDB does, so only a fifth
//! of the customers' orders meet their lines (101.9 → 51.3 ms with the FROM list reordered and
//! the equality written out by hand). Where both sides of a join hold such a column, R goes to
//! the side where that column is read from the larger table.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, NullEquality, Result};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Join, JoinConstraint, JoinType, LogicalPlan, Operator, Projection,
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
        let mut out = move_pinned(plan)?;
        // A moved join can make a pinned part its parent moves further (Q05's region joins its
        // nation, then the pair the customers). The parent was visited before the move, so the
        // moved plan is visited again; each move goes strictly deeper, the number of tables bounds it.
        for _ in 0..8 {
            if !out.transformed {
                break;
            }
            let again = out.data.clone().transform_up(move_pinned)?;
            if !again.transformed {
                break;
            }
            out = Transformed::yes(again.data);
        }
        Ok(out)
    }
}

/// The join `plan` with its pinned side moved, if it has one that can move.
fn move_pinned(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    if let LogicalPlan::Join(j) = &plan {
        // A join with a condition of its own stays: as a filter above the moved join it would sit
        // over projections whose columns share names (`n1.n_name`, `n2.n_name`), which
        // DataFusion's physical filter pushdown then confuses (TPC-H Q07 lost every row).
        if j.join_type != JoinType::Inner || j.null_aware || j.on.is_empty() || j.filter.is_some() {
            return Ok(Transformed::no(plan));
        }
        for pinned_right in [true, false] {
            let (other, r) = if pinned_right { (&j.left, &j.right) } else { (&j.right, &j.left) };
            let pairs: Vec<(&Expr, &Expr)> = j.on.iter().map(|(l, rk)| if pinned_right { (l, rk) } else { (rk, l) }).collect();
            if !pinned(r, pairs.iter().map(|(_, k)| *k)) {
                continue;
            }
            let Some(keys) = pairs.iter().map(|(o, k)| as_column(o).map(|c| Key { class: vec![c], r: (*k).clone() })).collect::<Option<Vec<Key>>>() else {
                continue;
            };
            if shares_names(other, r) {
                continue;
            }
            let Some(moved) = push(other, r, &keys, j, 0)? else { continue };
            let order: Vec<Expr> = j.schema.columns().into_iter().map(Expr::Column).collect();
            return Ok(Transformed::yes(LogicalPlan::Projection(Projection::try_new(order, Arc::new(moved))?)));
        }
    }
    Ok(Transformed::no(plan))
}

fn as_column(e: &Expr) -> Option<Column> {
    match e {
        Expr::Column(c) => Some(c.clone()),
        _ => None,
    }
}

/// One key of the moved join: the columns of the other side known equal to its column there
/// (the written one, and those an inner join on the way down equates with it), and R's column.
#[derive(Clone)]
struct Key {
    class: Vec<Column>,
    r: Expr,
}

/// The keys with the column equalities of inner join `j` added to their classes. Every row
/// leaving `j` has equal values in both columns, and above `j` only inner joins, filters and
/// projections lead to the moved join, so R joined on either column keeps the same rows.
fn widen(keys: &[Key], j: &Join) -> Vec<Key> {
    let mut keys = keys.to_vec();
    if j.null_equality != NullEquality::NullEqualsNothing {
        return keys;
    }
    for (l, r) in &j.on {
        let (Expr::Column(l), Expr::Column(r)) = (l, r) else { continue };
        // Equal values of one type are equal to the same third value; floats are left out
        // (NaN, and -0.0 against 0.0, are where engines differ on equality).
        let same_type = match (j.left.schema().qualified_field_from_column(l), j.right.schema().qualified_field_from_column(r)) {
            (Ok((_, a)), Ok((_, b))) => a.data_type() == b.data_type() && !a.data_type().is_floating(),
            _ => false,
        };
        if !same_type {
            continue;
        }
        for k in &mut keys {
            if k.class.contains(l) && !k.class.contains(r) {
                k.class.push(r.clone());
            } else if k.class.contains(r) && !k.class.contains(l) {
                k.class.push(l.clone());
            }
        }
    }
    keys
}

/// The rows of the table that `c`, a column of `p`'s output, is read from (0 where unknown):
/// joined to the larger such table, R narrows the most rows where they are read. (The largest
/// table anywhere below was tried first: it moved a pair written against the customers over to
/// the suppliers beside the lines, and 150 000 customers went unfiltered.)
fn source_rows(p: &LogicalPlan, c: &Column) -> usize {
    match p {
        LogicalPlan::Join(j) if j.left.schema().has_column(c) => source_rows(&j.left, c),
        LogicalPlan::Join(j) if j.right.schema().has_column(c) => source_rows(&j.right, c),
        LogicalPlan::Projection(pr) if passes(pr, c) => source_rows(&pr.input, c),
        LogicalPlan::Filter(f) => source_rows(&f.input, c),
        LogicalPlan::SubqueryAlias(a) => {
            let below: Vec<Column> = a.input.schema().columns().into_iter().filter(|x| x.name == c.name).collect();
            match below.as_slice() {
                [one] => source_rows(&a.input, one),
                _ => 0,
            }
        }
        LogicalPlan::TableScan(s) => {
            source_as_provider(&s.source).ok().and_then(|t| t.statistics()).and_then(|st| st.num_rows.get_value().copied()).unwrap_or(0)
        }
        _ => 0,
    }
}

/// [`source_rows`] of the column of the first key's class that `side` holds.
fn key_source_rows(side: &LogicalPlan, keys: &[Key]) -> usize {
    let held = keys.first().and_then(|k| k.class.iter().find(|c| side.schema().has_column(c)));
    held.map_or(0, |c| source_rows(side, c))
}

/// `node` with `r` joined to its deepest part holding a column of each key's class; `None` when
/// that is `node` itself (the join stays where it is).
fn push(node: &Arc<LogicalPlan>, r: &Arc<LogicalPlan>, keys: &[Key], j: &Join, depth: usize) -> Result<Option<LogicalPlan>> {
    let holds = |p: &LogicalPlan, keys: &[Key]| keys.iter().all(|k| k.class.iter().any(|c| p.schema().has_column(c)));
    let deeper = match node.as_ref() {
        LogicalPlan::Join(inner) if inner.join_type == JoinType::Inner && !inner.null_aware => {
            let keys = widen(keys, inner);
            let side = match (holds(&inner.left, &keys), holds(&inner.right, &keys)) {
                // Both sides hold an equal column: the side whose column comes from the larger
                // table, whose rows R then narrows where they are read.
                (true, true) => Some(key_source_rows(&inner.left, &keys) >= key_source_rows(&inner.right, &keys)),
                (true, false) => Some(true),
                (false, true) => Some(false),
                (false, false) => None,
            };
            match side {
                Some(left) => {
                    let child = if left { &inner.left } else { &inner.right };
                    push(child, r, &keys, j, depth + 1)?.map(|c| -> Result<LogicalPlan> {
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
        LogicalPlan::Projection(p) => {
            // Only the columns the projection passes on unchanged lead below it.
            let below: Vec<Key> =
                keys.iter().map(|k| Key { class: k.class.iter().filter(|c| passes(p, c)).cloned().collect(), r: k.r.clone() }).collect();
            if below.iter().all(|k| !k.class.is_empty()) {
                push(&p.input, r, &below, j, depth + 1)?.map(|c| {
                    let mut exprs = p.expr.clone();
                    exprs.extend(r.schema().columns().into_iter().map(Expr::Column));
                    Projection::try_new(exprs, Arc::new(c)).map(LogicalPlan::Projection)
                })
            } else {
                None
            }
        }
        // Never below a filter. Joined under a scan's filter, R only lifts the filter off the
        // scan (Q07's lines by date). Joined under a filter over an outer join, R keeps the two
        // apart, so the filter's null-rejection never turns that join into an inner one; the
        // filter then sits above two columns of one name, and DataFusion's physical pushdown,
        // routing by name, narrowed the outer join's other side (a LEFT JOIN of a table to
        // itself answered 344 953 rows instead of 4 884). No rule runs after this one to undo either.
        _ => None,
    };
    match deeper {
        Some(plan) => Ok(Some(plan?)),
        None if depth == 0 => Ok(None),
        // Here: this part holds the keys and its inputs do not each hold them all.
        None => {
            let on = keys
                .iter()
                .map(|k| {
                    let held = k.class.iter().find(|c| node.schema().has_column(c)).cloned();
                    held.map(|c| (Expr::Column(c), k.r.clone()))
                })
                .collect::<Option<Vec<_>>>();
            let Some(on) = on else { return Ok(None) };
            Ok(Some(LogicalPlan::Join(Join::try_new(node.clone(), r.clone(), on, None, JoinType::Inner, JoinConstraint::On, j.null_equality, false)?)))
        }
    }
}

/// Whether a column of `r` has the name of a column anywhere in `other` (two copies of one
/// table, `n1` and `n2`). DataFusion 54.1 maps a join's dynamic filter onto its probe side by
/// column name (`FilterRemapper::try_remap`, apache/datafusion#25296): with `n2.n_regionkey`
/// moved ahead of `n1.n_regionkey` in a join's output, the region filter meant for `n1` narrowed
/// `n2` and a six-table `SELECT *` lost every row. Only moves that put no second column of a
/// name into any part of the plan are made.
fn shares_names(other: &LogicalPlan, r: &LogicalPlan) -> bool {
    let theirs: HashSet<&String> = r.schema().fields().iter().map(|f| f.name()).collect();
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

/// Whether `r` is a small table pinned by a constant (or small tables joined to one so pinned),
/// read on keys it holds once per row.
fn pinned<'a>(r: &LogicalPlan, keys: impl Iterator<Item = &'a Expr>) -> bool {
    let Some(unit) = small(r) else { return false };
    let names: Vec<&String> = r.schema().fields().iter().map(|f| f.name()).collect();
    let distinct_names = names.iter().collect::<HashSet<_>>().len() == names.len();
    unit.pinned && distinct_names && keys.into_iter().all(|k| matches!(k, Expr::Column(c) if unit.unique.contains(&c.name)))
}

/// What [`small`] knows of a part made of small tables.
struct Small {
    /// Names of the columns the part holds once per row.
    unique: HashSet<String>,
    /// Whether a constant narrows one of its tables.
    pinned: bool,
}

/// A scan of a table of at most [`MAX_ROWS`] rows, or inner joins of such scans (nation joined
/// to its pinned region in TPC-H Q05), with the columns it holds once per row: a table's columns
/// whose distinct count is about its row count, and through a join on a column one side holds
/// once per row, the other side's such columns (each of its rows meets at most one row there).
fn small(node: &LogicalPlan) -> Option<Small> {
    match node {
        LogicalPlan::SubqueryAlias(a) => small(&a.input),
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => small(&p.input),
        LogicalPlan::Filter(f) => {
            let mut s = small(&f.input)?;
            s.pinned |= split_conjunction(&f.predicate).into_iter().any(pins);
            Some(s)
        }
        LogicalPlan::TableScan(scan) => {
            let stats = source_as_provider(&scan.source).ok().and_then(|p| p.statistics())?;
            let rows = *stats.num_rows.get_value()?;
            if rows > MAX_ROWS {
                return None;
            }
            let table = scan.source.schema();
            let unique = table
                .fields()
                .iter()
                .zip(&stats.column_statistics)
                .filter(|(_, s)| {
                    // Distinct counts are approximate (table_stats.rs): within a tenth of the rows.
                    s.distinct_count.get_value().is_some_and(|&d| d * 10 >= rows * 9)
                })
                .map(|(f, _)| f.name().clone())
                .collect();
            Some(Small { unique, pinned: scan.filters.iter().flat_map(split_conjunction).any(pins) })
        }
        LogicalPlan::Join(j) if j.join_type == JoinType::Inner && !j.null_aware => {
            let (l, r) = (small(&j.left)?, small(&j.right)?);
            let once = |side: &Small, mut keys: std::slice::Iter<'_, (Expr, Expr)>, left: bool| {
                keys.any(|(a, b)| matches!(if left { a } else { b }, Expr::Column(c) if side.unique.contains(&c.name)))
            };
            let mut unique = HashSet::new();
            if once(&r, j.on.iter(), false) {
                unique.extend(l.unique.iter().cloned());
            }
            if once(&l, j.on.iter(), true) {
                unique.extend(r.unique.iter().cloned());
            }
            Some(Small { unique, pinned: l.pinned || r.pinned })
        }
        _ => None,
    }
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
#[path = "pinned_first_tests.rs"]
mod tests;
