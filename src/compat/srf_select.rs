//! `generate_series(...)` and `information_schema._pg_expandarray(...)` in a select list are
//! set-returning functions in PostgreSQL: one row per value (psqlODBC's SQLForeignKeys and
//! pgjdbc's getPrimaryKeys number key columns this way). DataFusion's scalar `generate_series`
//! (and lalo's `_pg_expandarray`, engine/pg_expandarray.rs) return one array instead, a
//! different answer without an error. In a select list each becomes `unnest(f(...))`, which
//! DataFusion expands in step with the list's other `unnest`s, as PostgreSQL runs
//! set-returning functions side by side; an unnamed one keeps PostgreSQL's column name, the
//! function's.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Query, SelectItem, SetExpr, TableAlias, TableAliasColumnDef,
    TableFactor, VisitMut, VisitorMut,
};

use super::call;

/// `generate_series(...)` in FROM names its one column as PostgreSQL does: after the function
/// (`SELECT generate_series FROM generate_series(1, 3)`), or after the alias when the alias
/// names no columns (`SELECT g FROM generate_series(1, 3) g`); DataFusion calls it `value`.
pub fn name_series_column(t: &mut TableFactor) {
    let TableFactor::Table { name, args: Some(_), alias, .. } = t else { return };
    let is_series = name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| i.value.eq_ignore_ascii_case("generate_series"));
    if !is_series {
        return;
    }
    match alias {
        None => {
            *alias = Some(TableAlias {
                explicit: true,
                name: Ident::new("generate_series"),
                columns: vec![TableAliasColumnDef::from_name("generate_series")],
                at: None,
            })
        }
        Some(a) if a.columns.is_empty() => a.columns = vec![TableAliasColumnDef::from_name(a.name.value.clone())],
        Some(_) => {}
    }
}

/// Rewrite the set-returning calls in the select lists of `q`'s own body (not of its subqueries,
/// which are rewritten when the walk reaches them).
pub fn rewrite(q: &mut Query) {
    body(&mut q.body);
}

fn body(b: &mut SetExpr) {
    match b {
        SetExpr::Select(select) => {
            for item in select.projection.iter_mut() {
                match item {
                    SelectItem::UnnamedExpr(e) if srf(e).is_some() => {
                        let name = srf(e).unwrap_or_default();
                        let inner = unqualified(e.clone());
                        *item = SelectItem::ExprWithAlias { expr: call("unnest", vec![inner]), alias: Ident::new(name) };
                    }
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                        let _ = e.visit(&mut Wrap { depth: 0 });
                    }
                    _ => {}
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            body(left);
            body(right);
        }
        _ => {}
    }
}

/// Wraps set-returning calls outside nested queries; `unnest(generate_series(...))` as written
/// stays as it is.
struct Wrap {
    depth: usize,
}

impl VisitorMut for Wrap {
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
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        if srf(e).is_some() {
            *e = call("unnest", vec![unqualified(e.clone())]);
        } else if let Some(inner) = single_arg(e, "unnest").and_then(|a| single_arg(a, "unnest")).filter(|a| srf(a).is_some()) {
            // The user's own unnest around a call this walk just wrapped.
            *e = call("unnest", vec![inner.clone()]);
        }
        ControlFlow::Continue(())
    }
}

/// The set-returning function `e` calls, if any (schema-qualified or not).
fn srf(e: &Expr) -> Option<&'static str> {
    let Expr::Function(f) = e else { return None };
    if f.over.is_some() {
        return None;
    }
    let name = f.name.0.last().and_then(|p| p.as_ident())?;
    ["generate_series", "_pg_expandarray"].into_iter().find(|s| name.value.eq_ignore_ascii_case(s))
}

/// The call without its schema (`information_schema._pg_expandarray` is lalo's `_pg_expandarray`).
fn unqualified(mut e: Expr) -> Expr {
    if let Expr::Function(f) = &mut e {
        if f.name.0.len() > 1 {
            f.name.0.drain(..f.name.0.len() - 1);
        }
    }
    e
}

/// The one argument of a call to `name`.
fn single_arg<'a>(e: &'a Expr, name: &str) -> Option<&'a Expr> {
    let Expr::Function(f) = e else { return None };
    let last = f.name.0.last()?.as_ident()?;
    if !last.value.eq_ignore_ascii_case(name) {
        return None;
    }
    match &f.args {
        FunctionArguments::List(l) if l.args.len() == 1 => match &l.args[0] {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(a)) => Some(a),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        let mut s = stmts.remove(0);
        super::super::rewrite_ast(&mut s);
        s.to_string()
    }

    #[test]
    fn series_in_a_select_list_are_unnested() {
        assert_eq!(rewritten("SELECT generate_series(1, 3)"), "SELECT unnest(generate_series(1, 3)) AS generate_series");
        assert_eq!(rewritten("SELECT generate_series(1, 3) + 1 AS n"), "SELECT unnest(generate_series(1, 3)) + 1 AS n");
        assert_eq!(rewritten("SELECT unnest(generate_series(1, 3))"), "SELECT unnest(generate_series(1, 3))");
        assert_eq!(
            rewritten("SELECT (information_schema._pg_expandarray(k)).n AS s, information_schema._pg_expandarray(k) AS keys FROM t"),
            "SELECT get_field((unnest(_pg_expandarray(k))), 'n') AS s, unnest(_pg_expandarray(k)) AS keys FROM t"
        );
        assert_eq!(
            rewritten("SELECT x FROM (SELECT generate_series(1, 2) AS x) s"),
            "SELECT x FROM (SELECT unnest(generate_series(1, 2)) AS x) s"
        );
        // In FROM it is a table function already; its column is named as in PostgreSQL.
        assert_eq!(rewritten("SELECT * FROM generate_series(1, 3)"), "SELECT * FROM generate_series(1, 3) AS generate_series (generate_series)");
        assert_eq!(rewritten("SELECT g FROM generate_series(1, 3) g"), "SELECT g FROM generate_series(1, 3) g (g)");
        assert_eq!(rewritten("SELECT n FROM generate_series(1, 3) AS s(n)"), "SELECT n FROM generate_series(1, 3) AS s (n)");
    }
}
