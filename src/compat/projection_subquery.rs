//! Parsing that keeps scalar subqueries in a select list computing their values.
//!
//! datafusion-pg-catalog's parser ends with a rule (`RemoveSubqueryFromProjection`) that
//! replaces every select-list item that is a subquery referring to anything outside its own
//! FROM aliases (an outer column, a `$n` parameter, an unaliased qualified column) by NULL, so
//! that client catalog queries DataFusion once could not plan still run. lalo plans those
//! subqueries itself (see [`super::scalar_subquery`], and DataFusion decorrelates aggregated
//! ones), and a NULL in place of a value is a silent wrong answer, so before the library's
//! rules run lalo wraps such items in parentheses (`Expr::Nested`), which the rule does not
//! look through. Everything else the library does (its whole-statement replacements, its other
//! rules, the `LIMIT 1` it adds to uncorrelated subqueries) stays as it was.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Ident, LimitClause, Query, SelectItem, SetExpr, Statement, TableFactor, Value, Visit, VisitMut, Visitor,
    VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

/// Parse `text` with the library's parser, keeping select-list subqueries it would null.
pub fn parse(parser: &PostgresCompatibilityParser, text: &str) -> Result<Vec<Statement>, ParserError> {
    let rewritten = parser.parse(text)?;
    // Only a statement with a nested SELECT can have a subquery in its select list.
    if text.to_ascii_lowercase().matches("select").count() < 2 {
        return Ok(rewritten);
    }
    let Ok(plain) = Parser::parse_sql(&PostgreSqlDialect {}, text) else { return Ok(rewritten) };
    if plain.len() != rewritten.len() {
        return Ok(rewritten);
    }
    Ok(plain
        .into_iter()
        .zip(rewritten)
        .map(|(original, rewritten)| {
            let mut protected = original.clone();
            if !protect(&mut protected) {
                return rewritten;
            }
            // The library replaced this statement wholesale (its list of client queries it
            // answers with a fixed result): its replacement stands.
            if parser.rewrite(original) != rewritten {
                return rewritten;
            }
            parser.rewrite(protected)
        })
        .collect())
}

/// Wrap every select-list subquery the library's rule would replace by NULL; true if any.
fn protect(stmt: &mut Statement) -> bool {
    struct Protect(bool);
    impl VisitorMut for Protect {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            let SetExpr::Select(select) = q.body.as_mut() else { return ControlFlow::Continue(()) };
            for item in &mut select.projection {
                let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) = item else { continue };
                let Expr::Subquery(sub) = e else { continue };
                let capped = sub.limit_clause.is_some() || sub.fetch.is_some();
                let catalog = matches!(sub.body.as_ref(), SetExpr::Select(s) if reads_only_catalog(s));
                match outside_refs(sub) {
                    true => {}
                    // The library caps what it takes for uncorrelated at one row. Over user
                    // tables that answers where PostgreSQL raises 21000 (two rows), and a
                    // subquery correlated through unqualified names (`WHERE k = outer_k`, which
                    // the text cannot tell from uncorrelated) is no longer one DataFusion can
                    // decorrelate: so only catalog subqueries keep the cap.
                    false if !capped && !catalog => {}
                    false => continue,
                }
                if catalog && !capped {
                    sub.limit_clause = Some(LimitClause::LimitOffset {
                        limit: Some(Expr::value(Value::Number("1".into(), false))),
                        offset: None,
                        limit_by: vec![],
                    });
                }
                *e = Expr::Nested(Box::new(e.clone()));
                self.0 = true;
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = Protect(false);
    let _ = stmt.visit(&mut v);
    v.0
}

/// The subquery's FROM: aliases, and the name parts of unaliased tables.
struct From {
    aliases: HashSet<String>,
    tables: Vec<Vec<String>>,
}

impl From {
    fn of(select: &datafusion::sql::sqlparser::ast::Select) -> From {
        let mut from = From { aliases: HashSet::new(), tables: vec![] };
        for twj in &select.from {
            for tf in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
                match tf {
                    TableFactor::Table { alias: Some(a), .. } => {
                        from.aliases.insert(a.name.value.clone());
                    }
                    TableFactor::Table { name, alias: None, .. } => {
                        from.tables.push(name.0.iter().map(|p| p.to_string()).collect());
                    }
                    _ => {}
                }
            }
        }
        from
    }

    /// The library's notion: a qualifier other than a FROM alias is from outside.
    fn outside_by_rule(&self, parts: &[Ident]) -> bool {
        parts.first().is_some_and(|p| !self.aliases.contains(&p.value))
    }

    /// lalo's notion: qualified by neither an alias nor (the end of) an unaliased table's name.
    fn outside(&self, parts: &[Ident]) -> bool {
        let Some((_, qualifier)) = parts.split_last() else { return false };
        let qualifier: Vec<String> = qualifier.iter().map(|i| i.to_string()).collect();
        self.outside_by_rule(parts) && !self.tables.iter().any(|t| t.ends_with(&qualifier))
    }
}

/// Whether `e` mentions columns from inside and from outside the subquery.
fn sides(e: &Expr, from: &From) -> (bool, bool) {
    struct Sides<'a>(&'a From, bool, bool);
    impl Visitor for Sides<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::CompoundIdentifier(parts) if self.0.outside(parts) => self.2 = true,
                Expr::CompoundIdentifier(_) | Expr::Identifier(_) => self.1 = true,
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = Sides(from, false, false);
    let _ = e.visit(&mut v);
    (v.1, v.2)
}

fn conjuncts(e: &Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other.clone()),
    }
}

/// Whether lalo (or DataFusion) plans this correlated subquery: outer columns only in its
/// select list and in WHERE conjuncts that are outer-only or `inner = outer` equalities.
/// Anything else (an outer column in a join, a `<>` across the two sides) stays with the
/// library's NULL, which the client catalog queries that need it expect.
fn plannable(q: &Query, select: &datafusion::sql::sqlparser::ast::Select, from: &From) -> bool {
    let outer_count = |node: &dyn VisitNode| {
        struct Count<'a>(&'a From, usize);
        impl Visitor for Count<'_> {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
                if let Expr::CompoundIdentifier(parts) = e {
                    if self.0.outside(parts) {
                        self.1 += 1;
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let mut c = Count(from, 0);
        node.visit_with(&mut c);
        c.1
    };
    let mut allowed = select.projection.iter().map(|p| outer_count(p)).sum::<usize>();
    if let Some(w) = &select.selection {
        let mut parts = vec![];
        conjuncts(w, &mut parts);
        for c in &parts {
            let (inner, outer) = sides(c, from);
            if inner && outer {
                let Expr::BinaryOp { left, op: BinaryOperator::Eq, right } = c else { return false };
                let (l, r) = (sides(left, from), sides(right, from));
                if !matches!((l, r), ((true, false), (false, true)) | ((false, true), (true, false))) {
                    return false;
                }
            }
        }
        allowed += outer_count(w);
    }
    outer_count(q) == allowed
}

/// Something the counting visitor can walk.
trait VisitNode {
    fn visit_with(&self, v: &mut dyn Visitor<Break = ()>);
}

impl<T: Visit> VisitNode for T {
    fn visit_with(&self, v: &mut dyn Visitor<Break = ()>) {
        struct Dyn<'a>(&'a mut dyn Visitor<Break = ()>);
        impl Visitor for Dyn<'_> {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
                self.0.pre_visit_expr(e)
            }
        }
        let _ = self.visit(&mut Dyn(v));
    }
}

/// Whether the subquery refers to something outside its FROM as the library's rule judges it
/// (which would replace it by NULL) and lalo plans it; false when the rule leaves it alone or
/// lalo would not plan it either.
fn outside_refs(q: &Query) -> bool {
    let SetExpr::Select(select) = q.body.as_ref() else { return false };
    let from = From::of(select);
    struct Check<'a> {
        from: &'a From,
        columns: bool,
        params: bool,
    }
    impl Visitor for Check<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Value(v) if matches!(v.value, Value::Placeholder(_)) => self.params = true,
                Expr::CompoundIdentifier(parts) if self.from.outside_by_rule(parts) => self.columns = true,
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut c = Check { from: &from, columns: false, params: false };
    let _ = q.visit(&mut c);
    // The library's NULL is kept only for catalog introspection (client catalog queries expect
    // it there); over user tables a NULL in place of a value is a silent wrong answer, so the
    // subquery goes to DataFusion, which answers it or says it cannot.
    (c.columns || c.params) && !(c.columns && !plannable(q, select, &from) && reads_only_catalog(select))
}

/// True when every relation in the FROM clause is a pg_catalog or information_schema table.
fn reads_only_catalog(select: &datafusion::sql::sqlparser::ast::Select) -> bool {
    let catalog = |tf: &TableFactor| match tf {
        TableFactor::Table { name, .. } => {
            let parts: Vec<String> = name.0.iter().map(|p| p.to_string().trim_matches('"').to_ascii_lowercase()).collect();
            match parts.as_slice() {
                [t] => t.starts_with("pg_") || t.starts_with("information_schema"),
                [.., schema, _] => schema == "pg_catalog" || schema == "information_schema",
                [] => false,
            }
        }
        _ => false,
    };
    select
        .from
        .iter()
        .all(|twj| catalog(&twj.relation) && twj.joins.iter().all(|j| catalog(&j.relation)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(text: &str) -> String {
        let p = PostgresCompatibilityParser::new();
        parse(&p, text).unwrap().iter().map(|s| s.to_string()).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn correlated_select_item_keeps_its_subquery() {
        let out = sql("SELECT (SELECT c.c_name FROM tpch.customer c WHERE c.c_custkey = o.o_custkey) FROM tpch.orders o");
        assert!(out.contains("c.c_custkey = o.o_custkey"), "{out}");
        assert!(!out.contains("SELECT NULL"), "{out}");
    }

    #[test]
    fn subqueries_over_user_tables_are_not_capped_at_one_row() {
        // PostgreSQL raises 21000 on a second row; a cap would answer the first.
        for q in [
            "SELECT (SELECT c.c_name FROM tpch.customer c WHERE c.c_custkey = $1) AS n",
            "SELECT (SELECT max(l_quantity) FROM tpch.lineitem WHERE l_orderkey = o_orderkey) FROM tpch.orders",
            "SELECT (SELECT n_name FROM tpch.nation) AS n",
        ] {
            let out = sql(q);
            assert!(!out.contains("LIMIT 1"), "{out}");
        }
        assert!(sql("SELECT (SELECT c.c_name FROM tpch.customer c WHERE c.c_custkey = $1) AS n").contains("$1"));
    }

    #[test]
    fn subqueries_lalo_cannot_plan_stay_with_the_library() {
        // psql's \d: a non-equality across inner and outer columns.
        let out = sql("SELECT a.attname, (SELECT c.collname FROM pg_collation c, pg_type t WHERE c.oid = a.attcollation \
            AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation FROM pg_attribute a");
        assert!(out.contains("NULL AS attcollation"), "{out}");
    }

    #[test]
    fn subqueries_over_user_tables_are_never_nulled() {
        let out = sql("SELECT (SELECT max(n_nationkey) FROM tpch.nation WHERE n_nationkey < coalesce(cst.c_acctbal, 0)) AS k \
            FROM tpch.customer cst");
        assert!(!out.contains("NULL AS k"), "{out}");
        let out = sql("SELECT (SELECT count(*) FROM (SELECT d.k FROM (SELECT n_nationkey AS k FROM tpch.nation) d) s) AS k");
        assert!(!out.contains("NULL AS k"), "{out}");
    }

    #[test]
    fn statements_without_such_items_are_unchanged() {
        let p = PostgresCompatibilityParser::new();
        for text in ["SELECT 1", "SELECT (SELECT 1) AS x", "SELECT a FROM t WHERE a IN (SELECT b FROM u)"] {
            assert_eq!(parse(&p, text).unwrap(), p.parse(text).unwrap(), "{text}");
        }
    }
}
