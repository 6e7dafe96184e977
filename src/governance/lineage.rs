//! Column lineage over a resolved (unoptimized) plan: every table column a statement refers to,
//! wherever it appears (select list, WHERE, JOIN, GROUP BY, ORDER BY, HAVING, window specs,
//! CTEs, subqueries of every kind, outer references of correlated subqueries and LATERAL,
//! set operations, function arguments). Access checks run on this set, so a statement that
//! names a denied column anywhere is refused whole, even where the optimizer would prune it.
//!
//! The walk is total on purpose: [`expr_sources`] matches every `Expr` variant by name (no
//! catch-all arm), so a variant DataFusion adds is a compile error here rather than a silent
//! gap, and a column reference that cannot be resolved against its scope is not dropped but
//! counted as every scanned column of that name (fail closed). Tables are collected by a
//! separate walk over every scan, subqueries included ([`scanned_tables`]), which does not depend
//! on lineage at all.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema};
use datafusion::datasource::cte_worktable::CteWorkTable;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan, TableScan};

use super::rewrite::full_name;

type Sources = BTreeSet<String>;

/// All `db.schema.table.column` a plan refers to, and all tables it scans.
#[derive(Debug, Default)]
pub struct References {
    pub columns: BTreeSet<String>,
    pub tables: BTreeSet<String>,
    /// Column names that could not be resolved against their scope.
    unresolved: BTreeSet<String>,
    /// Columns of every scanned table, for resolving the names above (fail closed).
    scanned: BTreeMap<String, Vec<String>>,
    /// Lineage of each recursive CTE's work table, by CTE name.
    work_tables: BTreeMap<String, Vec<Sources>>,
}

/// Collect the references of `plan`, resolving table names against `db` and schema `public`.
pub fn references(plan: &LogicalPlan, db: &str) -> References {
    let mut refs = References::default();
    let out = lineage(plan, db, &mut refs, None);
    for set in out {
        refs.columns.extend(set);
    }
    // Every scan, wherever it is, counts as a table read, whatever lineage found.
    refs.tables.extend(scanned_tables(plan, db));
    let unresolved = std::mem::take(&mut refs.unresolved);
    for name in unresolved {
        for (t, cols) in &refs.scanned {
            if cols.iter().any(|c| c.eq_ignore_ascii_case(&name)) {
                refs.columns.insert(format!("{t}.{name}"));
            }
        }
    }
    refs
}

/// Every table a plan scans, subqueries of every kind included (recursive CTEs' work tables are
/// not tables: their rows come from the terms that are walked).
pub fn scanned_tables(plan: &LogicalPlan, db: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let _ = plan.apply_with_subqueries(|n| {
        if let LogicalPlan::TableScan(scan) = n {
            if !is_work_table(scan) {
                out.insert(full_name(&scan.table_name, db, "public"));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

fn is_work_table(scan: &TableScan) -> bool {
    source_as_provider(&scan.source).map(|p| (p.as_ref() as &dyn std::any::Any).is::<CteWorkTable>()).unwrap_or(false)
}

/// What expressions of one node resolve against: its inputs side by side, and the scopes of the
/// queries it is nested in (for outer references).
struct Scope<'a> {
    schema: DFSchema,
    lineage: Vec<Sources>,
    outer: Option<&'a Scope<'a>>,
}

impl Scope<'_> {
    fn resolve(&self, c: &Column) -> Option<&Sources> {
        let idx = self.schema.maybe_index_of_column(c)?;
        self.lineage.get(idx)
    }

    /// An outer reference: the nearest enclosing scope that has the column.
    fn resolve_outer(&self, c: &Column) -> Option<&Sources> {
        let mut s = self.outer;
        while let Some(scope) = s {
            if let Some(found) = scope.resolve(c) {
                return Some(found);
            }
            s = scope.outer;
        }
        None
    }
}

fn side_by_side<'a>(plans: &[&LogicalPlan], kids: &[Vec<Sources>], outer: Option<&'a Scope<'a>>) -> Scope<'a> {
    let mut lineage: Vec<Sources> = Vec::new();
    let mut schema = DFSchema::empty();
    for (i, p) in plans.iter().enumerate() {
        lineage.extend(kids[i].iter().cloned());
        if i == 0 {
            schema = p.schema().as_ref().clone();
        } else if let Ok(joined) = schema.join(p.schema()) {
            schema = joined;
        }
    }
    Scope { schema, lineage, outer }
}

fn lineage(plan: &LogicalPlan, db: &str, refs: &mut References, outer: Option<&Scope<'_>>) -> Vec<Sources> {
    if let LogicalPlan::TableScan(scan) = plan {
        let src = scan.source.schema();
        if is_work_table(scan) {
            let width = plan.schema().fields().len();
            let name = scan.table_name.table().to_string();
            let v = refs.work_tables.get(&name).cloned().unwrap_or_default();
            return if v.len() == width { v } else { vec![union_all(&v); width] };
        }
        let t = full_name(&scan.table_name, db, "public");
        refs.tables.insert(t.clone());
        refs.scanned.entry(t.clone()).or_insert_with(|| src.fields().iter().map(|f| f.name().clone()).collect());
        let idx: Vec<usize> = scan.projection.clone().unwrap_or_else(|| (0..src.fields().len()).collect());
        for f in &scan.filters {
            for c in f.column_refs() {
                refs.columns.insert(format!("{t}.{}", c.name));
            }
        }
        return idx.into_iter().map(|i| BTreeSet::from([format!("{t}.{}", src.field(i).name())])).collect();
    }
    if let LogicalPlan::RecursiveQuery(r) = plan {
        // The work table holds the static term's rows first, then the recursive term's.
        let first = lineage(&r.static_term, db, refs, outer);
        refs.work_tables.insert(r.name.clone(), first.clone());
        let second = lineage(&r.recursive_term, db, refs, outer);
        let mut v = first;
        for (i, s) in second.into_iter().enumerate() {
            if let Some(slot) = v.get_mut(i) {
                slot.extend(s);
            }
        }
        return v;
    }
    let inputs = plan.inputs();
    // Each input sees the inputs before it as an outer scope (LATERAL joins refer to them).
    let mut kids: Vec<Vec<Sources>> = Vec::with_capacity(inputs.len());
    for (i, p) in inputs.iter().enumerate() {
        let k = if i == 0 {
            lineage(p, db, refs, outer)
        } else {
            let left = side_by_side(&inputs[..i], &kids[..i], outer);
            lineage(p, db, refs, Some(&left))
        };
        kids.push(k);
    }
    let scope = side_by_side(&inputs, &kids, outer);

    // Every expression of this node is a reference, used or not.
    let exprs = plan.expressions();
    let expr_lineage: Vec<Sources> = exprs.iter().map(|e| expr_sources(e, &scope, db, refs)).collect();
    for s in &expr_lineage {
        refs.columns.extend(s.iter().cloned());
    }

    let width = plan.schema().fields().len();
    let out: Vec<Sources> = match plan {
        LogicalPlan::Projection(_) => expr_lineage,
        LogicalPlan::Aggregate(a) => {
            let mut v: Vec<Sources> =
                a.group_expr.iter().chain(a.aggr_expr.iter()).map(|e| expr_sources(e, &scope, db, refs)).collect();
            v.resize(width, union_all(&scope.lineage));
            v
        }
        LogicalPlan::Window(w) => {
            let mut v = kids.first().cloned().unwrap_or_default();
            v.extend(w.window_expr.iter().map(|e| expr_sources(e, &scope, db, refs)));
            v
        }
        LogicalPlan::Join(j) => match j.join_type {
            JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
                let mut v = kids[0].clone();
                v.resize(width, union_all(&kids[1]));
                v
            }
            JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => {
                let mut v = kids[1].clone();
                v.resize(width, union_all(&kids[0]));
                v
            }
            _ => scope.lineage.clone(),
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
        _ => vec![union_all(&scope.lineage); width],
    };
    if out.len() == width { out } else { vec![union_all(&scope.lineage); width] }
}

fn union_all(v: &[Sources]) -> Sources {
    v.iter().flat_map(|s| s.iter().cloned()).collect()
}

/// Source columns of one expression. Subqueries inside it are walked with this node's scope as
/// their outer scope, and their references kept.
#[allow(deprecated)] // Expr::Wildcard is matched so that the match stays total.
fn expr_sources(e: &Expr, scope: &Scope<'_>, db: &str, refs: &mut References) -> Sources {
    let mut out = Sources::new();
    match e {
        Expr::Column(c) => match scope.resolve(c) {
            Some(s) => out.extend(s.iter().cloned()),
            None => {
                refs.unresolved.insert(c.name.clone());
            }
        },
        Expr::OuterReferenceColumn(_, c) => match scope.resolve_outer(c) {
            Some(s) => out.extend(s.iter().cloned()),
            None => {
                refs.unresolved.insert(c.name.clone());
            }
        },
        Expr::ScalarSubquery(sq) => {
            out.extend(subquery_sources(&sq.subquery, &sq.outer_ref_columns, scope, db, refs));
        }
        Expr::Exists(ex) => {
            // EXISTS yields no column values, but what it reads is still read.
            let s = subquery_sources(&ex.subquery.subquery, &ex.subquery.outer_ref_columns, scope, db, refs);
            refs.columns.extend(s);
        }
        Expr::InSubquery(ins) => {
            out.extend(expr_sources(&ins.expr, scope, db, refs));
            out.extend(subquery_sources(&ins.subquery.subquery, &ins.subquery.outer_ref_columns, scope, db, refs));
        }
        Expr::SetComparison(sc) => {
            out.extend(expr_sources(&sc.expr, scope, db, refs));
            out.extend(subquery_sources(&sc.subquery.subquery, &sc.subquery.outer_ref_columns, scope, db, refs));
        }
        // An unexpanded wildcard reads every column in scope.
        Expr::Wildcard { .. } => out.extend(union_all(&scope.lineage)),
        // Leaves that read no column.
        Expr::Literal(..) | Expr::Placeholder(_) | Expr::ScalarVariable(..) | Expr::LambdaVariable(_) => {}
        // Composite expressions: their sources are their children's.
        Expr::Alias(_)
        | Expr::BinaryExpr(_)
        | Expr::Like(_)
        | Expr::SimilarTo(_)
        | Expr::Not(_)
        | Expr::IsNotNull(_)
        | Expr::IsNull(_)
        | Expr::IsTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsUnknown(_)
        | Expr::IsNotTrue(_)
        | Expr::IsNotFalse(_)
        | Expr::IsNotUnknown(_)
        | Expr::Negative(_)
        | Expr::Between(_)
        | Expr::Case(_)
        | Expr::Cast(_)
        | Expr::TryCast(_)
        | Expr::ScalarFunction(_)
        | Expr::AggregateFunction(_)
        | Expr::WindowFunction(_)
        | Expr::InList(_)
        | Expr::GroupingSet(_)
        | Expr::Unnest(_)
        | Expr::HigherOrderFunction(_)
        | Expr::Lambda(_) => {
            let _ = e.apply_children(|child| {
                out.extend(expr_sources(child, scope, db, refs));
                Ok(TreeNodeRecursion::Continue)
            });
        }
    }
    out
}

/// A subquery's output lineage (walked with `scope` as its outer scope); the outer columns it
/// refers to are references too.
fn subquery_sources(
    plan: &LogicalPlan,
    outer_refs: &[Expr],
    scope: &Scope<'_>,
    db: &str,
    refs: &mut References,
) -> Sources {
    // Listed outer references point at this node's inputs (or further out).
    for o in outer_refs {
        let c = match o {
            Expr::OuterReferenceColumn(_, c) | Expr::Column(c) => c,
            other => {
                let s = expr_sources(other, scope, db, refs);
                refs.columns.extend(s);
                continue;
            }
        };
        match scope.resolve(c).or_else(|| scope.resolve_outer(c)) {
            Some(s) => refs.columns.extend(s.iter().cloned()),
            None => {
                refs.unresolved.insert(c.name.clone());
            }
        }
    }
    let v = lineage(plan, db, refs, Some(scope));
    let all = union_all(&v);
    refs.columns.extend(all.iter().cloned());
    all
}
