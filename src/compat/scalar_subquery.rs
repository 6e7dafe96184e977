//! Correlated scalar subqueries without an aggregate, `(SELECT e FROM f WHERE f.k = o.k)`.
//!
//! DataFusion 54 only decorrelates a correlated scalar subquery whose result is one aggregate
//! over equality-correlated filters with no outer columns in its select list; anything else is
//! refused ("Correlated scalar subquery must be aggregated") or left unplanned. Catalog
//! queries are full of the plain form (SQLAlchemy's column reflection has four of them, inside
//! CASE), and PostgreSQL accepts it as long as at most one row comes back. So lalo rewrites:
//!
//! - `e` becomes `first_value(e [ORDER BY ...])`, and a `LIMIT 1` goes away with it: the same
//!   value whenever PostgreSQL would return one (it errors on a second row; lalo takes the first);
//! - WHERE conjuncts that read only outer columns become a CASE guard around the subquery
//!   (`CASE WHEN guard THEN (...) END`): without a matching row the value is NULL either way;
//! - outer columns in `e` are evaluated outside: each inner column `c` of `e` becomes its own
//!   `(SELECT first_value(c) ...)` and the whole is guarded by `(SELECT count(*) ...) > 0`, so
//!   no row still means NULL.
//!
//! Inner and outer columns are told apart by their qualifiers: a column qualified by a table
//! of the subquery's FROM is inner; one qualified by anything else is outer; an unqualified
//! column is taken as inner (the SQL text alone cannot say otherwise), which leaves such a
//! subquery as DataFusion plans it.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CaseWhen, Distinct, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArgumentList, FunctionArguments, GroupByExpr, Ident, LimitClause, ObjectName, ObjectNamePart,
    OrderByExpr, OrderByKind, Query, Select, SelectItem, SetExpr, TableFactor, TableWithJoins, Value, Visit,
    Visitor,
};

/// Rewrites the scalar subqueries of one statement; `note` must see each expression before
/// its children (pre-order), `rewrite` after them (post-order).
#[derive(Default)]
pub struct ScalarSubqueries {
    /// Subqueries that are the right side of `= ANY (...)` / `ALL`: sets, not scalars.
    not_scalar: HashSet<usize>,
}

impl ScalarSubqueries {
    /// Remember subqueries that are not scalar (the operand of ANY/ALL).
    pub fn note(&mut self, e: &Expr) {
        if let Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } = e {
            if let Expr::Subquery(q) = right.as_ref() {
                self.not_scalar.insert(address(q));
            }
        }
    }

    /// Rewrite `e` when it is a correlated, non-aggregated scalar subquery of a form lalo knows.
    pub fn rewrite(&self, e: &mut Expr) {
        let Expr::Subquery(q) = e else { return };
        if self.not_scalar.contains(&address(q)) {
            return;
        }
        if let Some(new) = decorrelatable(q) {
            *e = new;
        }
    }
}

fn address(q: &Query) -> usize {
    q as *const Query as usize
}

/// A FROM-clause relation's way of qualifying its columns.
enum Qualifier {
    /// `FROM t AS a`, `(subquery) AS a`: columns are `a.c`.
    Alias(String),
    /// `FROM s.t`: columns are `s.t.c` or `t.c`.
    Table(Vec<String>),
}

struct Scope(Vec<Qualifier>);

impl Scope {
    /// The qualifiers of a FROM clause; None when a relation cannot be named (then lalo cannot
    /// tell inner from outer columns and leaves the subquery alone).
    fn of(from: &[TableWithJoins]) -> Option<Scope> {
        let mut out = Vec::new();
        for twj in from {
            relation(&twj.relation, &mut out)?;
            for j in &twj.joins {
                relation(&j.relation, &mut out)?;
            }
        }
        Some(Scope(out))
    }

    fn is_inner(&self, parts: &[String]) -> bool {
        let Some((_, qualifier)) = parts.split_last() else { return true };
        if qualifier.is_empty() {
            return true;
        }
        self.0.iter().any(|q| match q {
            Qualifier::Alias(a) => qualifier.len() == 1 && &qualifier[0] == a,
            Qualifier::Table(name) => name.ends_with(qualifier),
        })
    }
}

fn relation(tf: &TableFactor, out: &mut Vec<Qualifier>) -> Option<()> {
    let alias = |a: &Option<datafusion::sql::sqlparser::ast::TableAlias>| a.as_ref().map(|a| norm(&a.name));
    match tf {
        TableFactor::Table { name, alias: a, .. } => out.push(match alias(a) {
            Some(a) => Qualifier::Alias(a),
            None => Qualifier::Table(object_parts(name)?),
        }),
        TableFactor::NestedJoin { table_with_joins, alias: a } => match alias(a) {
            Some(a) => out.push(Qualifier::Alias(a)),
            None => {
                let Scope(inner) = Scope::of(std::slice::from_ref(table_with_joins))?;
                out.extend(inner);
            }
        },
        TableFactor::Derived { alias: a, .. }
        | TableFactor::TableFunction { alias: a, .. }
        | TableFactor::UNNEST { alias: a, .. }
        | TableFactor::Function { alias: a, .. } => out.push(Qualifier::Alias(alias(a)?)),
        _ => return None,
    }
    Some(())
}

fn norm(i: &Ident) -> String {
    if i.quote_style.is_some() { i.value.clone() } else { i.value.to_ascii_lowercase() }
}

fn object_parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(norm(i)),
            _ => None,
        })
        .collect()
}

/// What an expression refers to, looking through everything but nested subqueries.
#[derive(Default)]
struct Refs {
    outer: bool,
    inner: bool,
    subquery: bool,
    aggregate: bool,
    /// The inner column references, each once, in order of appearance.
    inner_columns: Vec<Expr>,
}

fn refs(e: &Expr, scope: &Scope) -> Refs {
    struct V<'a> {
        scope: &'a Scope,
        depth: usize,
        out: Refs,
    }
    impl Visitor for V<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth += 1;
            self.out.subquery = true;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if self.depth > 0 {
                return ControlFlow::Continue(());
            }
            let parts: Option<Vec<String>> = match e {
                Expr::Identifier(i) => Some(vec![norm(i)]),
                Expr::CompoundIdentifier(is) => Some(is.iter().map(norm).collect()),
                Expr::Function(f) => {
                    self.out.aggregate |= is_aggregate(f);
                    None
                }
                _ => None,
            };
            if let Some(parts) = parts {
                if self.scope.is_inner(&parts) {
                    self.out.inner = true;
                    if !self.out.inner_columns.contains(e) {
                        self.out.inner_columns.push(e.clone());
                    }
                } else {
                    self.out.outer = true;
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V { scope, depth: 0, out: Refs::default() };
    let _ = e.visit(&mut v);
    v.out
}

/// Aggregates and window functions: a subquery using one is not the plain form.
fn is_aggregate(f: &Function) -> bool {
    const AGGREGATES: &[&str] = &[
        "count", "sum", "avg", "min", "max", "array_agg", "string_agg", "bool_and", "bool_or", "every",
        "first_value", "last_value", "nth_value", "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg",
        "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "bit_and", "bit_or", "bit_xor",
        "percentile_cont", "percentile_disc", "mode", "median", "corr", "covar_pop", "covar_samp", "any_value",
        "approx_distinct", "approx_median", "approx_percentile_cont", "xmlagg", "regr_slope", "regr_intercept",
        "regr_count", "regr_r2", "regr_avgx", "regr_avgy", "regr_sxx", "regr_syy", "regr_sxy",
    ];
    let name = f.name.0.last().map(|p| p.to_string().trim_matches('"').to_ascii_lowercase()).unwrap_or_default();
    f.over.is_some() || !f.within_group.is_empty() || AGGREGATES.contains(&name.as_str())
}

/// The plain one-expression SELECT of a scalar subquery, with its ORDER BY, when the subquery
/// has that shape: no GROUP BY/HAVING/windows/DISTINCT ON, at most `LIMIT 1`, no OFFSET.
fn plain_select(q: &Query) -> Option<(&Select, &Expr, Vec<OrderByExpr>)> {
    if q.with.is_some() || q.fetch.is_some() || !q.locks.is_empty() || q.for_clause.is_some() || !q.pipe_operators.is_empty() {
        return None;
    }
    match &q.limit_clause {
        None => {}
        Some(LimitClause::LimitOffset { limit: Some(Expr::Value(v)), offset: None, limit_by })
            if limit_by.is_empty() && matches!(&v.value, Value::Number(n, _) if n == "1") => {}
        Some(_) => return None,
    }
    let order_by = match &q.order_by {
        None => vec![],
        Some(o) => match &o.kind {
            OrderByKind::Expressions(v) => v.clone(),
            OrderByKind::All(_) => return None,
        },
    };
    let SetExpr::Select(s) = q.body.as_ref() else { return None };
    let grouped = !matches!(&s.group_by, GroupByExpr::Expressions(v, m) if v.is_empty() && m.is_empty());
    if grouped
        || s.having.is_some()
        || !s.named_window.is_empty()
        || s.qualify.is_some()
        || s.top.is_some()
        || s.into.is_some()
        || matches!(s.distinct, Some(Distinct::On(_)))
        || s.projection.len() != 1
    {
        return None;
    }
    let e = match &s.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return None,
    };
    // `ORDER BY 1` names the select item: in the aggregate the query becomes, a number would
    // name the aggregate's first input column instead.
    let position = |o: &Expr| matches!(o, Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n == "1"));
    let order_by = order_by
        .into_iter()
        .map(|mut o| {
            if position(&o.expr) {
                o.expr = e.clone();
            }
            o
        })
        .collect();
    Some((s, e, order_by))
}

fn conjuncts(e: &Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) if matches!(inner.as_ref(), Expr::BinaryOp { op: BinaryOperator::And, .. }) => {
            conjuncts(inner, out)
        }
        other => out.push(other.clone()),
    }
}

fn and_all(es: Vec<Expr>) -> Option<Expr> {
    es.into_iter().map(|e| Expr::Nested(Box::new(e))).reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    })
}

/// The equivalent DataFusion can decorrelate, or None to leave the subquery as it is.
fn decorrelatable(q: &Query) -> Option<Expr> {
    let (select, e, order_by) = plain_select(q)?;
    let scope = Scope::of(&select.from)?;
    let value = refs(e, &scope);
    if value.aggregate || value.subquery {
        return None;
    }
    let mut guards = Vec::new();
    let mut kept = Vec::new();
    let mut correlated = value.outer;
    if let Some(w) = &select.selection {
        let mut all = Vec::new();
        conjuncts(w, &mut all);
        for c in all {
            let r = refs(&c, &scope);
            correlated |= r.outer;
            if r.outer && !r.inner && !r.subquery && !r.aggregate {
                guards.push(c);
            } else {
                kept.push(c);
            }
        }
    }
    for o in &order_by {
        let r = refs(&o.expr, &scope);
        if r.outer || r.subquery {
            return None;
        }
    }
    if !correlated {
        // Uncorrelated subqueries DataFusion runs as they are (and errors on a second row).
        return None;
    }
    // The subquery with a new select list and only the kept conjuncts.
    let alias = match &select.projection[0] {
        SelectItem::ExprWithAlias { alias, .. } => Some(alias.clone()),
        _ => None,
    };
    let sub = |item: Expr| -> Expr {
        let mut q2 = q.clone();
        q2.order_by = None;
        q2.limit_clause = None;
        if let SetExpr::Select(s) = q2.body.as_mut() {
            s.projection = vec![match &alias {
                Some(alias) => SelectItem::ExprWithAlias { expr: item, alias: alias.clone() },
                None => SelectItem::UnnamedExpr(item),
            }];
            s.selection = and_all(kept.clone());
        }
        Expr::Subquery(Box::new(q2))
    };
    let first = |x: Expr| aggregate("first_value", FunctionArgExpr::Expr(x), order_by.clone());
    let core = if !value.outer {
        sub(first(e.clone()))
    } else {
        // Outer columns in the value: compute it outside, from each inner column's value.
        let mut outside = e.clone();
        for col in &value.inner_columns {
            replace(&mut outside, col, &sub(first(col.clone())));
        }
        let any_row = Expr::BinaryOp {
            left: Box::new(sub(aggregate("count", FunctionArgExpr::Wildcard, vec![]))),
            op: BinaryOperator::Gt,
            right: Box::new(Expr::value(Value::Number("0".into(), false))),
        };
        case_when(any_row, outside)
    };
    Some(match and_all(guards) {
        Some(g) => case_when(g, core),
        None => core,
    })
}

fn case_when(condition: Expr, result: Expr) -> Expr {
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![CaseWhen { condition, result }],
        else_result: None,
    }
}

fn aggregate(name: &str, arg: FunctionArgExpr, order_by: Vec<OrderByExpr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(arg)],
            clauses: if order_by.is_empty() { vec![] } else { vec![FunctionArgumentClause::OrderBy(order_by)] },
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// Replace every occurrence of `from` in `e` (outside nested subqueries) by `to`.
fn replace(e: &mut Expr, from: &Expr, to: &Expr) {
    use datafusion::sql::sqlparser::ast::{VisitMut, VisitorMut};
    struct R<'a> {
        from: &'a Expr,
        to: &'a Expr,
        depth: usize,
    }
    impl VisitorMut for R<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if self.depth == 0 && e == self.from {
                *e = self.to.clone();
            }
            ControlFlow::Continue(())
        }
    }
    let _ = e.visit(&mut R { from, to, depth: 0 });
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::{Expr, Statement, VisitMut, VisitorMut};
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use std::ops::ControlFlow;

    fn rewritten(sql: &str) -> String {
        struct V(super::ScalarSubqueries);
        impl VisitorMut for V {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                self.0.note(e);
                ControlFlow::Continue(())
            }
            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                self.0.rewrite(e);
                ControlFlow::Continue(())
            }
        }
        let mut stmt: Statement = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        let _ = stmt.visit(&mut V(Default::default()));
        stmt.to_string()
    }

    #[test]
    fn plain_correlated_subquery_is_aggregated() {
        let out = rewritten("SELECT (SELECT t.typname FROM pg_type t WHERE t.oid = a.atttypid) FROM pg_attribute a");
        assert_eq!(out, "SELECT (SELECT first_value(t.typname) FROM pg_type t WHERE (t.oid = a.atttypid)) FROM pg_attribute a");
    }

    #[test]
    fn outer_only_conditions_become_a_guard() {
        let out = rewritten(
            "SELECT (SELECT pg_catalog.pg_attrdef.adbin FROM pg_catalog.pg_attrdef WHERE pg_catalog.pg_attribute.atthasdef \
             AND pg_catalog.pg_attrdef.adrelid = pg_catalog.pg_attribute.attrelid) FROM pg_catalog.pg_attribute",
        );
        assert!(out.starts_with("SELECT CASE WHEN (pg_catalog.pg_attribute.atthasdef) THEN (SELECT first_value(pg_catalog.pg_attrdef.adbin) FROM pg_catalog.pg_attrdef WHERE (pg_catalog.pg_attrdef.adrelid = pg_catalog.pg_attribute.attrelid)) END"), "{out}");
    }

    #[test]
    fn outer_columns_in_the_value_are_computed_outside() {
        let out = rewritten("SELECT (SELECT json_build_object('a', o.x = 'a', 's', s.start) FROM seq s WHERE s.id = o.id) FROM o");
        assert!(out.contains("CASE WHEN (SELECT count(*) FROM seq s WHERE (s.id = o.id)) > 0 THEN json_build_object('a', o.x = 'a', 's', (SELECT first_value(s.start) FROM seq s WHERE (s.id = o.id))) END"), "{out}");
    }

    #[test]
    fn order_by_limit_one_moves_into_the_aggregate() {
        let out = rewritten("SELECT (SELECT t.v FROM t WHERE t.k = o.k ORDER BY t.ts DESC LIMIT 1) FROM o");
        assert!(out.contains("(SELECT first_value(t.v ORDER BY t.ts DESC) FROM t WHERE (t.k = o.k))"), "{out}");
    }

    #[test]
    fn left_alone() {
        for sql in [
            "SELECT (SELECT max(t.v) FROM t WHERE t.k = o.k) FROM o",
            "SELECT (SELECT t.v FROM t WHERE t.k = 1) FROM o",
            "SELECT * FROM o WHERE o.k = ANY (SELECT t.k FROM t WHERE t.j = o.j)",
            "SELECT (SELECT t.v FROM t WHERE t.k = o.k LIMIT 2) FROM o",
        ] {
            let unchanged = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0).to_string();
            assert_eq!(rewritten(sql), unchanged);
        }
    }
}
