//! The direct lane's planning side: which statements run wholly on one upstream, the SQL they
//! send there, and a per-session cache so repeated statements skip DataFusion entirely.
//!
//! A statement qualifies when its governed, optimized plan is a single federated subtree (the
//! whole query, row filters and masks included, runs upstream). It is planned once with its
//! literals lifted into parameters (`aid = 42` → `aid = $1`), governed, unparsed to upstream SQL
//! and cached per (text, policy version, catalog generation, settings epoch); later executions
//! bind the new literals and run the prepared statement upstream. Anything else takes the
//! planned path, so the lane changes speed, never results or decisions.


use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::ScalarValue;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, Statement, Value, VisitMut, VisitorMut};
use datafusion_federation::sql::SQLTableSource;
use datafusion_federation::FederatedPlanNode;

use crate::governance::GovernedPlan;

/// A statement that runs wholly on one upstream.
#[derive(Debug)]
pub struct DirectPlan {
    pub upstream: String,
    /// Upstream SQL with `$n` placeholders.
    pub sql: String,
    /// DataFusion's type for each parameter, `$1` first.
    pub param_types: Vec<DataType>,
    /// Result schema as planned (before PostgreSQL column naming).
    pub schema: SchemaRef,
    /// The governance decision, for limits and the audit record.
    pub governed: GovernedPlan,
    /// Whether the upstream's rows can be forwarded as they are: [`FORWARD_UNKNOWN`] until the
    /// first pass-through execution tells.
    pub forward: std::sync::atomic::AtomicU8,
    /// Result descriptions of forwarded executions and their type OIDs, by result format.
    pub described: crate::pgtypes::fields::ByFormat<
        Option<(std::sync::Arc<Vec<crate::pgtypes::fields::WireField>>, std::sync::Arc<[u32]>)>,
    >,
    /// A lookup by the primary key of one table (at most one row, by index): it may share a
    /// pipelined connection with other clients' lookups.
    pub key_lookup: bool,
}

pub const FORWARD_UNKNOWN: u8 = 0;
pub const FORWARD_YES: u8 = 1;
pub const FORWARD_NO: u8 = 2;


/// Lift comparison literals into parameters: `aid = 42` → `aid = $1` with 42 as a value.
/// Only literals compared with non-literals (and IN lists, BETWEEN bounds) are lifted: there the
/// parameter's type follows the other side, so the plan is the one the literal would give.
/// Statements that already use `$n` parameters are left alone.
pub fn parameterize(stmt: &Statement) -> (Statement, Vec<ScalarValue>) {
    struct Lift {
        values: Vec<ScalarValue>,
    }
    struct FindPlaceholder(bool);
    impl datafusion::sql::sqlparser::ast::Visitor for FindPlaceholder {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> std::ops::ControlFlow<()> {
            if matches!(e, Expr::Value(v) if matches!(v.value, Value::Placeholder(_))) {
                self.0 = true;
                return std::ops::ControlFlow::Break(());
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    fn literal(e: &Expr) -> Option<ScalarValue> {
        match e {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n.parse::<i64>().ok().map(|i| ScalarValue::Int64(Some(i))),
                Value::SingleQuotedString(s) => Some(ScalarValue::Utf8(Some(s.clone()))),
                _ => None,
            },
            _ => None,
        }
    }
    impl Lift {
        fn lift(&mut self, e: &mut Expr) {
            if let Some(v) = literal(e) {
                self.values.push(v);
                *e = Expr::value(Value::Placeholder(format!("${}", self.values.len())));
            }
        }
    }
    impl VisitorMut for Lift {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
            match e {
                Expr::BinaryOp { left, op, right }
                    if matches!(
                        op,
                        BinaryOperator::Eq
                            | BinaryOperator::NotEq
                            | BinaryOperator::Lt
                            | BinaryOperator::LtEq
                            | BinaryOperator::Gt
                            | BinaryOperator::GtEq
                    ) =>
                {
                    match (literal(left).is_some(), literal(right).is_some()) {
                        (false, true) => self.lift(right),
                        (true, false) => self.lift(left),
                        _ => {}
                    }
                }
                Expr::InList { expr, list, .. } if literal(expr).is_none() => {
                    for item in list.iter_mut() {
                        self.lift(item);
                    }
                }
                Expr::Between { expr, low, high, .. } if literal(expr).is_none() => {
                    self.lift(low);
                    self.lift(high);
                }
                _ => {}
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut found = FindPlaceholder(false);
    let _ = datafusion::sql::sqlparser::ast::Visit::visit(stmt, &mut found);
    if found.0 {
        return (stmt.clone(), Vec::new());
    }
    let mut out = stmt.clone();
    let mut lift = Lift { values: Vec::new() };
    let _ = out.visit(&mut lift);
    (out, lift.values)
}

/// The direct plan for a governed plan (with placeholders), if it runs wholly on one upstream
/// under the same table names it has there.
/// `primary_key(db, schema, table)` names a table's primary key columns (empty: none).
pub async fn derive(
    state: &SessionState,
    governed: &GovernedPlan,
    is_upstream: impl Fn(&str) -> bool,
    primary_key: impl Fn(&str, &str, &str) -> Vec<String>,
) -> Option<DirectPlan> {
    let optimized = state.optimize(governed.plan()).ok()?;
    let LogicalPlan::Extension(ext) = &optimized else { return None };
    let fed = ext.node.as_any().downcast_ref::<FederatedPlanNode>()?;
    let inner = fed.plan();
    let mut same_names = true;
    let _ = inner.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let remote = datafusion_federation::get_table_source(&scan.source)
                .ok()
                .flatten()
                .and_then(|src| {
                    let any: &dyn std::any::Any = src.as_ref();
                    any.downcast_ref::<SQLTableSource>().map(|s| s.table_reference().clone())
                });
            if remote.as_ref() != Some(&scan.table_name) {
                same_names = false;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if !same_names {
        return None;
    }
    let db = governed.objects.first()?.split('.').next()?.to_string();
    if !is_upstream(&db) || !governed.objects.iter().all(|o| o.split('.').next() == Some(db.as_str())) {
        return None;
    }
    // The SQL is the one datafusion-federation itself would send for this plan (its table-scan
    // rewrite and unparse), read off the physical plan's description; an own unparse of the
    // subtree differs for some shapes (ORDER BY a column not selected).
    // The plan is optimized already: physical planning only (SessionState::create_physical_plan
    // would optimize it a second time).
    let key_lookup = is_key_lookup(inner, |t| {
        primary_key(&db, t.schema().unwrap_or("public"), t.table())
    });
    let physical = state.query_planner().create_physical_plan(&optimized, state).await.ok()?;
    let sql = federated_sql(&physical)?;
    let param_types = param_types(governed.plan())?;
    Some(DirectPlan {
        upstream: db,
        sql,
        param_types,
        schema: std::sync::Arc::new(governed.plan().schema().as_arrow().clone()),
        governed: governed.clone(),
        forward: std::sync::atomic::AtomicU8::new(FORWARD_UNKNOWN),
        described: Default::default(),
        key_lookup,
    })
}

/// Whether `plan` reads one table by its whole primary key: every key column compared equal to
/// a value, nothing but filters, projections, sorts and limits above the scan. Such a statement
/// returns at most one row found by index, so it may queue behind others on a pipelined
/// connection without holding them up.
fn is_key_lookup(plan: &LogicalPlan, primary_key: impl Fn(&datafusion::common::TableReference) -> Vec<String>) -> bool {
    use datafusion::logical_expr::{utils::split_conjunction, Expr as DfExpr, Operator};
    fn is_value(e: &DfExpr) -> bool {
        match e {
            DfExpr::Literal(v, _) => !v.is_null(),
            DfExpr::Placeholder(_) => true,
            DfExpr::Cast(c) => is_value(&c.expr),
            DfExpr::TryCast(c) => is_value(&c.expr),
            _ => false,
        }
    }
    let mut equal: Vec<String> = Vec::new();
    let mut collect = |predicate: &DfExpr| {
        for c in split_conjunction(predicate) {
            if let DfExpr::BinaryExpr(b) = c {
                if b.op != Operator::Eq {
                    continue;
                }
                match (b.left.as_ref(), b.right.as_ref()) {
                    (DfExpr::Column(col), v) | (v, DfExpr::Column(col)) if is_value(v) => equal.push(col.name.clone()),
                    _ => {}
                }
            }
        }
    };
    let mut scans = Vec::new();
    let mut simple = true;
    let _ = plan.apply(|node| {
        if node.expressions().iter().any(crate::governance::leakproof::has_subquery) {
            simple = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        match node {
            LogicalPlan::TableScan(scan) => {
                scans.push(scan.table_name.clone());
                scan.filters.iter().for_each(&mut collect);
            }
            LogicalPlan::Filter(f) => collect(&f.predicate),
            LogicalPlan::Projection(_) | LogicalPlan::Sort(_) | LogicalPlan::Limit(_) | LogicalPlan::SubqueryAlias(_) => {}
            _ => {
                simple = false;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if !simple || scans.len() != 1 {
        return false;
    }
    let key = primary_key(&scans[0]);
    !key.is_empty() && key.iter().all(|k| equal.contains(k))
}

/// The `base_sql` of the single VirtualExecutionPlan in a physical plan.
fn federated_sql(plan: &std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> Option<String> {
    let mut found = Vec::new();
    let mut stack = vec![plan.clone()];
    while let Some(node) = stack.pop() {
        // datafusion-federation names its VirtualExecutionPlan "sql_federation_exec".
        if node.name() == "sql_federation_exec" {
            found.push(datafusion::physical_plan::displayable(node.as_ref()).one_line().to_string());
        }
        stack.extend(node.children().into_iter().cloned());
    }
    let [line] = found.as_slice() else { return None };
    let sql = line.split_once(" base_sql=")?.1;
    // Any later rewrite the library applied is printed after the base SQL; such plans stay planned.
    if sql.contains(" rewritten_") {
        return None;
    }
    Some(sql.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn parse(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0)
    }

    #[test]
    fn lifts_comparison_literals_only() {
        let (s, v) = parameterize(&parse("SELECT abalance FROM pgbench_accounts WHERE aid = 42 LIMIT 5"));
        assert_eq!(s.to_string(), "SELECT abalance FROM pgbench_accounts WHERE aid = $1 LIMIT 5");
        assert_eq!(v, vec![ScalarValue::Int64(Some(42))]);
        let (s, v) = parameterize(&parse("SELECT 1 = 1, x FROM t WHERE name IN ('a', 'b') AND y BETWEEN 1 AND 2"));
        assert_eq!(s.to_string(), "SELECT 1 = 1, x FROM t WHERE name IN ($1, $2) AND y BETWEEN $3 AND $4");
        assert_eq!(v.len(), 4);
        let (s, v) = parameterize(&parse("SELECT x FROM t WHERE a = $1 AND b = 2"));
        assert_eq!(s.to_string(), "SELECT x FROM t WHERE a = $1 AND b = 2");
        assert!(v.is_empty());
    }
}

/// The types of a plan's parameters, `$1` first; `None` when one is unknown or a number is skipped.
pub fn param_types(plan: &LogicalPlan) -> Option<Vec<DataType>> {
    let types = plan.get_parameter_types().ok()?;
    let mut out = Vec::with_capacity(types.len());
    for i in 1..=types.len() {
        out.push(types.get(&format!("${i}"))?.clone()?);
    }
    Some(out)
}
