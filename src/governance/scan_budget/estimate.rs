//! The estimate of one optimized plan: rows every table scan reads (subqueries included), rows
//! every join produces — `|L|·|R| / Π max(distinct keys)` for an equality join, every pair for a
//! join without keys or on keys that are not plain columns (`a.x - a.x = b.y - b.y` is a cross
//! join in disguise) — and bytes as rows × the widths of the columns read. What has no size
//! before it runs (series generators, recursive queries, unnest over no table) is named, so
//! the check can refuse it.

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, TableReference};
use datafusion::logical_expr::{Expr, FetchType, JoinType, LogicalPlan};

use super::Estimate;
use crate::governance::rewrite::full_name;

/// Width counted for a value whose size varies (text, binary, lists).
const VARIABLE_WIDTH: u64 = 24;

/// Table functions that make rows from their arguments alone (any number of them). The others
/// (`pg_get_keywords`, array expansions) return a fixed list or expand values already read.
const GENERATORS: &[&str] = &["generate_series", "range"];

/// What an estimate needs measured: tables' row counts and join key columns' distinct counts.
#[derive(Debug, Default)]
pub struct Needed {
    pub tables: Vec<String>,
    /// (`db.schema.table`, column)
    pub keys: Vec<(String, String)>,
}

/// The sizes an estimate reads.
pub struct Lookup<'a> {
    pub db: &'a str,
    pub schema: &'a str,
    pub rows: &'a dyn Fn(&str) -> Option<u64>,
    pub distinct: &'a dyn Fn(&str, &str) -> Option<u64>,
}

/// A table function in FROM (DataFusion names its scan `name()`), by its name.
fn table_function(t: &TableReference) -> Option<&str> {
    match t {
        TableReference::Bare { table } => table.strip_suffix("()"),
        _ => None,
    }
}

/// Tables and key columns `plan` needs measured, and what it holds that has no size at all.
pub fn needed(plan: &LogicalPlan, db: &str, schema: &str) -> (Needed, Vec<String>) {
    let mut out = Needed::default();
    let mut unknown = Vec::new();
    let _ = plan.apply_with_subqueries(|n| {
        match n {
            LogicalPlan::TableScan(scan) => match table_function(&scan.table_name) {
                Some(f) if GENERATORS.contains(&f.to_ascii_lowercase().as_str()) => push(&mut unknown, format!("{f}(...)")),
                Some(_) => {}
                None => push(&mut out.tables, full_name(&scan.table_name, db, schema)),
            },
            // How often a recursive query repeats is not known before it runs.
            LogicalPlan::RecursiveQuery(r) => push(&mut unknown, format!("the recursive query {}", r.name)),
            LogicalPlan::Unnest(u) if !reads_a_table(&u.input) => push(&mut unknown, "unnest over no table".into()),
            LogicalPlan::Join(j) => {
                for (l, r) in &j.on {
                    for (e, side) in [(l, &j.left), (r, &j.right)] {
                        if let Some(k) = key_column(e, side, db, schema) {
                            push(&mut out.keys, k);
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    (out, unknown)
}

fn push<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn reads_a_table(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|n| {
        if let LogicalPlan::TableScan(s) = n {
            found |= table_function(&s.table_name).is_none();
        }
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    found
}

/// The table column a join key is, when it is a plain column of a table scanned on its side
/// (directly or under an alias).
fn key_column(e: &Expr, side: &LogicalPlan, db: &str, schema: &str) -> Option<(String, String)> {
    let Expr::Column(Column { relation: Some(rel), name, .. }) = e else { return None };
    let mut found = None;
    let _ = side.apply(|n| {
        let scan = match n {
            LogicalPlan::TableScan(s) if &s.table_name == rel => Some(s),
            LogicalPlan::SubqueryAlias(a) if &a.alias == rel => match a.input.as_ref() {
                LogicalPlan::TableScan(s) => Some(s),
                _ => None,
            },
            _ => None,
        };
        if let Some(s) = scan {
            if s.source.schema().field_with_name(name).is_ok() && table_function(&s.table_name).is_none() {
                found = Some((full_name(&s.table_name, db, schema), name.to_ascii_lowercase()));
            }
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Estimate what `plan` (optimized) reads and produces.
pub fn estimate(plan: &LogicalPlan, sizes: &Lookup<'_>) -> Estimate {
    let mut est = Estimate::default();
    let (_, unknown) = needed(plan, sizes.db, sizes.schema);
    est.unknown = unknown;
    let _ = plan.apply_with_subqueries(|n| {
        match n {
            LogicalPlan::TableScan(scan) if table_function(&scan.table_name).is_none() => {
                let full = full_name(&scan.table_name, sizes.db, sizes.schema);
                match (sizes.rows)(&full) {
                    Some(rows) => {
                        let rows = scan.fetch.map_or(rows, |f| rows.min(f as u64));
                        est.rows = est.rows.saturating_add(rows);
                        let width = row_width(scan.projected_schema.as_arrow());
                        est.bytes = est.bytes.saturating_add(rows.saturating_mul(width));
                    }
                    None => push(&mut est.unknown, full),
                }
            }
            LogicalPlan::Join(_) => {
                let produced = cardinality(n, sizes);
                est.join_pairs = est.join_pairs.saturating_add(produced);
                est.rows = est.rows.saturating_add(produced);
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    est
}

/// Rows a plan node produces, at most (filters are not credited with any selectivity: a
/// budget is about what a statement may cost, so the estimate errs high).
fn cardinality(plan: &LogicalPlan, sizes: &Lookup<'_>) -> u64 {
    let card = |p: &LogicalPlan| cardinality(p, sizes);
    match plan {
        LogicalPlan::TableScan(scan) => {
            let rows = (sizes.rows)(&full_name(&scan.table_name, sizes.db, sizes.schema)).unwrap_or(0);
            scan.fetch.map_or(rows, |f| rows.min(f as u64))
        }
        LogicalPlan::Join(j) => {
            let (l, r) = (card(&j.left), card(&j.right));
            // Each key pair divides the pairs by its larger distinct count; a key that is not a
            // plain column (or whose distinct count is unknown) divides by nothing.
            let mut divisor: u64 = 1;
            for (a, b) in &j.on {
                let d = |e: &Expr, side: &LogicalPlan| {
                    key_column(e, side, sizes.db, sizes.schema).and_then(|(t, c)| (sizes.distinct)(&t, &c)).unwrap_or(1)
                };
                divisor = divisor.saturating_mul(d(a, &j.left).max(d(b, &j.right)).max(1));
            }
            let matched = l.saturating_mul(r) / divisor.min(l.max(r)).max(1);
            match j.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => l,
                JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => r,
                JoinType::Left => matched.max(l),
                JoinType::Right => matched.max(r),
                JoinType::Full => matched.max(l.saturating_add(r)),
                JoinType::Inner => matched,
            }
        }
        LogicalPlan::Union(u) => u.inputs.iter().map(|i| card(i)).fold(0u64, |a, b| a.saturating_add(b)),
        LogicalPlan::Limit(l) => match l.get_fetch_type() {
            Ok(FetchType::Literal(Some(f))) => card(&l.input).min(f as u64),
            _ => card(&l.input),
        },
        LogicalPlan::Aggregate(a) if a.group_expr.is_empty() => 1,
        LogicalPlan::Values(v) => v.values.len() as u64,
        LogicalPlan::EmptyRelation(e) => u64::from(e.produce_one_row),
        other => other.inputs().into_iter().map(card).max().unwrap_or(1),
    }
}

/// Bytes one row of `schema` takes: fixed widths, and [`VARIABLE_WIDTH`] for the rest.
fn row_width(schema: &Schema) -> u64 {
    schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Boolean => 1,
            t => t.primitive_width().map_or(VARIABLE_WIDTH, |w| w as u64),
        })
        .sum::<u64>()
        .max(1)
}
