//! Column lineage over a resolved (unoptimized) plan: every table column a statement refers to,
//! wherever it appears (select list, WHERE, JOIN, GROUP BY, ORDER BY, HAVING, CTEs, subqueries,
//! set operations, function arguments). Access checks run on this set, so a statement that names
//! a denied column anywhere is refused whole, even where the optimizer would prune it.

use std::collections::BTreeSet;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan};

use super::rewrite::full_name;

type Sources = BTreeSet<String>;

/// All `db.schema.table.column` a plan refers to, and all tables it scans.
#[derive(Debug, Default)]
pub struct References {
    pub columns: BTreeSet<String>,
    pub tables: BTreeSet<String>,
}

/// Collect the references of `plan`, resolving table names against `db` and schema `public`.
pub fn references(plan: &LogicalPlan, db: &str) -> References {
    let mut refs = References::default();
    let out = lineage(plan, db, &mut refs);
    for set in out {
        refs.columns.extend(set);
    }
    refs
}

fn lineage(plan: &LogicalPlan, db: &str, refs: &mut References) -> Vec<Sources> {
    if let LogicalPlan::TableScan(scan) = plan {
        let t = full_name(&scan.table_name, db, "public");
        refs.tables.insert(t.clone());
        let src = scan.source.schema();
        let idx: Vec<usize> = scan.projection.clone().unwrap_or_else(|| (0..src.fields().len()).collect());
        for f in &scan.filters {
            for c in f.column_refs() {
                refs.columns.insert(format!("{t}.{}", c.name));
            }
        }
        return idx.into_iter().map(|i| BTreeSet::from([format!("{t}.{}", src.field(i).name())])).collect();
    }
    let inputs = plan.inputs();
    let kids: Vec<Vec<Sources>> = inputs.iter().map(|p| lineage(p, db, refs)).collect();
    // The schema expressions of this node resolve against: its inputs, side by side.
    let mut combined: Vec<Sources> = Vec::new();
    let mut schema = DFSchema::empty();
    for (i, p) in inputs.iter().enumerate() {
        combined.extend(kids[i].iter().cloned());
        if i == 0 {
            schema = p.schema().as_ref().clone();
        } else if let Ok(joined) = schema.join(p.schema()) {
            schema = joined;
        }
    }
    let resolve = |e: &Expr, refs: &mut References| -> Sources { expr_sources(e, &schema, &combined, db, refs) };

    // Every expression of this node is a reference, used or not.
    let exprs = plan.expressions();
    let expr_lineage: Vec<Sources> = exprs.iter().map(|e| resolve(e, refs)).collect();
    for s in &expr_lineage {
        refs.columns.extend(s.iter().cloned());
    }

    let width = plan.schema().fields().len();
    let out: Vec<Sources> = match plan {
        LogicalPlan::Projection(_) => expr_lineage,
        LogicalPlan::Aggregate(a) => {
            let mut v: Vec<Sources> = a.group_expr.iter().chain(a.aggr_expr.iter()).map(|e| resolve(e, refs)).collect();
            v.resize(width, union_all(&combined));
            v
        }
        LogicalPlan::Window(w) => {
            let mut v = kids.first().cloned().unwrap_or_default();
            v.extend(w.window_expr.iter().map(|e| resolve(e, refs)));
            v
        }
        LogicalPlan::Join(j) => match j.join_type {
            JoinType::LeftSemi | JoinType::LeftAnti => kids[0].clone(),
            JoinType::RightSemi | JoinType::RightAnti => kids[1].clone(),
            _ => combined.clone(),
        },
        LogicalPlan::Union(_) => {
            let mut v = vec![Sources::new(); width];
            for k in &kids {
                for (i, s) in k.iter().enumerate().take(width) {
                    v[i].extend(s.iter().cloned());
                }
            }
            v
        }
        _ if kids.len() == 1 && kids[0].len() == width => kids[0].clone(),
        _ if kids.is_empty() => vec![Sources::new(); width],
        _ => vec![union_all(&combined); width],
    };
    if out.len() == width { out } else { vec![union_all(&combined); width] }
}

fn union_all(v: &[Sources]) -> Sources {
    v.iter().flat_map(|s| s.iter().cloned()).collect()
}

/// Source columns of one expression; subqueries inside it are walked and their references kept.
fn expr_sources(e: &Expr, schema: &DFSchema, lineage: &[Sources], db: &str, refs: &mut References) -> Sources {
    let mut out = Sources::new();
    let _ = e.apply(|x| {
        match x {
            Expr::Column(c) => {
                if let Some(s) = column_sources(c, schema, lineage) {
                    out.extend(s.iter().cloned());
                }
            }
            Expr::ScalarSubquery(sq) => {
                for s in lineage_of_subquery(&sq.subquery, db, refs) {
                    out.extend(s);
                }
            }
            Expr::Exists(ex) => {
                for s in lineage_of_subquery(&ex.subquery.subquery, db, refs) {
                    refs.columns.extend(s);
                }
            }
            Expr::InSubquery(ins) => {
                for s in lineage_of_subquery(&ins.subquery.subquery, db, refs) {
                    out.extend(s);
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

fn lineage_of_subquery(plan: &LogicalPlan, db: &str, refs: &mut References) -> Vec<Sources> {
    let v = lineage(plan, db, refs);
    for s in &v {
        refs.columns.extend(s.iter().cloned());
    }
    v
}

fn column_sources<'a>(c: &Column, schema: &DFSchema, lineage: &'a [Sources]) -> Option<&'a Sources> {
    let idx = schema.maybe_index_of_column(c)?;
    lineage.get(idx)
}
