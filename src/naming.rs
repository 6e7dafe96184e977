//! PostgreSQL's names for result columns: `count(*)` is `count`, `SELECT 1` is `?column?`,
//! `x::int` is `x`. DataFusion names unaliased expressions by their full text; clients index
//! rows by name (node-pg `rows[0].count`, asyncpg `record['count']`, pandas), so lalo renames
//! them on the way out. Explicit aliases and plain columns keep their names.

use datafusion::sql::sqlparser::ast::{Expr, Query, SelectItem, SetExpr, Statement};

/// PostgreSQL's output names for a query statement, or None when DataFusion's names stand
/// (wildcards, non-SELECT statements).
pub fn pg_names(stmt: &Statement) -> Option<Vec<Option<String>>> {
    let Statement::Query(q) = stmt else { return None };
    query_names(q)
}

/// The statement with every unaliased item of its outermost select list(s) given a unique
/// alias, or None when it has none. PostgreSQL allows two result columns of one name
/// (`SELECT x, x::text`); DataFusion refuses a projection whose expressions share a name, so
/// such a statement is planned again this way and [`pg_names`] of the original names the
/// columns on the way out.
pub fn unique_aliases(stmt: &Statement) -> Option<Statement> {
    fn alias(body: &mut SetExpr, changed: &mut bool) {
        match body {
            SetExpr::Select(s) => {
                for (i, item) in s.projection.iter_mut().enumerate() {
                    if let SelectItem::UnnamedExpr(e) = item {
                        let alias = datafusion::sql::sqlparser::ast::Ident::new(format!("__lalo_column_{}", i + 1));
                        *item = SelectItem::ExprWithAlias { expr: e.clone(), alias };
                        *changed = true;
                    }
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                alias(left, changed);
                alias(right, changed);
            }
            SetExpr::Query(q) => alias(&mut q.body, changed),
            _ => {}
        }
    }
    let Statement::Query(q) = stmt else { return None };
    let mut q = q.clone();
    let mut changed = false;
    alias(&mut q.body, &mut changed);
    changed.then_some(Statement::Query(q))
}

fn query_names(q: &Query) -> Option<Vec<Option<String>>> {
    set_names(&q.body)
}

fn set_names(body: &SetExpr) -> Option<Vec<Option<String>>> {
    match body {
        SetExpr::Select(s) => {
            let mut out = Vec::with_capacity(s.projection.len());
            for item in &s.projection {
                match item {
                    SelectItem::UnnamedExpr(e) => out.push(Some(expr_name(e))),
                    // PostgreSQL folds an unquoted alias to lower case (`AS TABLE_CAT` is
                    // `table_cat`); a quoted one stays as written.
                    // The compatibility parser (datafusion-pg-catalog) aliases `n.oid` beside `n.*`
                    // as `__alias_oid` so DataFusion accepts the pair; PostgreSQL calls it `oid`.
                    SelectItem::ExprWithAlias { alias, .. } if alias.quote_style.is_none() && alias.value.starts_with("__alias_") => {
                        out.push(Some(alias.value["__alias_".len()..].to_string()))
                    }
                    SelectItem::ExprWithAlias { alias, .. } => out.push(Some(folded(alias))),
                    _ => return None,
                }
            }
            Some(out)
        }
        SetExpr::SetOperation { left, .. } => set_names(left),
        SetExpr::Query(q) => query_names(q),
        _ => None,
    }
}

/// The name PostgreSQL gives an unaliased select-list expression.
pub(crate) fn expr_name(e: &Expr) -> String {
    figure(e).1
}

/// PostgreSQL's FigureColname: a name and its strength (2: a column or function name, 1: a
/// type name from a cast, 0: nothing better than `?column?`). A cast names its column after
/// its operand unless the operand only has a type name or none (`'1'::int` is `int4`,
/// `x::int` is `x`, `'a'::date::text` is `text`); CASE takes its ELSE's strong name.
fn figure(e: &Expr) -> (u8, String) {
    match e {
        Expr::Identifier(i) => (2, folded(i)),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| (2, folded(i))).unwrap_or((0, unnamed())),
        Expr::Function(f) => {
            let name = f.name.0.last().map(|p| p.to_string()).unwrap_or_default();
            match name.trim_matches('"').to_ascii_lowercase() {
                // `x = ANY(arr)` as the compatibility parser rewrites it (PostgreSQL has no
                // function of that name): an operator, unnamed.
                n if n == "array_contains" => (0, unnamed()),
                n => (2, n),
            }
        }
        Expr::Cast { expr, data_type, .. } => match figure(expr) {
            (s, n) if s > 1 => (s, n),
            _ => (1, pg_type_name(&data_type.to_string())),
        },
        Expr::Nested(inner) => figure(inner),
        // An element or field: a field's name, else the base's.
        Expr::CompoundFieldAccess { root, access_chain } => match access_chain.last() {
            Some(datafusion::sql::sqlparser::ast::AccessExpr::Dot(Expr::Identifier(i))) => (2, folded(i)),
            _ => figure(root),
        },
        Expr::Case { else_result, .. } => match else_result.as_deref().map(figure) {
            Some((2, n)) => (2, n),
            _ => (1, "case".into()),
        },
        Expr::Exists { .. } => (2, "exists".into()),
        Expr::Subquery(q) => query_names(q).and_then(|v| v.into_iter().next().flatten()).map(|n| (2, n)).unwrap_or((0, unnamed())),
        Expr::Array(_) => (2, "array".into()),
        Expr::Extract { .. } => (2, "extract".into()),
        Expr::Substring { shorthand: true, .. } => (2, "substr".into()),
        Expr::Substring { .. } => (2, "substring".into()),
        Expr::Trim { .. } => (2, "btrim".into()),
        Expr::Position { .. } => (2, "position".into()),
        Expr::Ceil { .. } => (2, "ceil".into()),
        Expr::Floor { .. } => (2, "floor".into()),
        Expr::TypedString(t) => (1, pg_type_name(&t.data_type.to_string())),
        Expr::Interval(_) => (1, "interval".into()),
        _ => (0, unnamed()),
    }
}

/// An identifier as PostgreSQL reads it: unquoted ones fold to lower case.
pub(crate) fn folded(i: &datafusion::sql::sqlparser::ast::Ident) -> String {
    match i.quote_style {
        None => i.value.to_lowercase(),
        Some(_) => i.value.clone(),
    }
}

fn unnamed() -> String {
    "?column?".into()
}

/// PostgreSQL's internal type name for a cast target, as it names `CAST(1 AS SMALLINT)`.
fn pg_type_name(sql_type: &str) -> String {
    let t = sql_type.to_ascii_lowercase();
    let base = t.split('(').next().unwrap_or(&t).trim();
    match base {
        "smallint" | "int2" => "int2",
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "real" | "float4" => "float4",
        "double precision" | "double" | "float8" | "float" => "float8",
        "numeric" | "decimal" => "numeric",
        "boolean" | "bool" => "bool",
        "varchar" | "character varying" => "varchar",
        "char" | "character" => "bpchar",
        "text" | "string" => "text",
        "date" => "date",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "timestamptz" | "timestamp with time zone" => "timestamptz",
        "interval" => "interval",
        "bytea" => "bytea",
        other => return other.to_string(),
    }
    .to_string()
}

#[cfg(test)]
mod figure_tests {
    #[test]
    fn names_as_postgresql_figures_them() {
        use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
        use datafusion::sql::sqlparser::parser::Parser;
        let names = |sql: &str| {
            let mut s = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses").remove(0);
            crate::compat::rewrite_ast(&mut s);
            super::pg_names(&s)
        };
        let some = |v: &[&str]| Some(v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>());
        assert_eq!(names("SELECT 'x' = ANY(ARRAY['x']), current_catalog, current_database(), 1 AS TABLE_CAT, 2 AS \"Quoted\", r.PK_NAME FROM r"), some(&["?column?", "current_catalog", "current_database", "table_cat", "Quoted", "pk_name"]));
        let rewritten = |sql: &str| {
            let parser = datafusion_pg_catalog::sql::PostgresCompatibilityParser::new();
            let mut s = crate::compat::parse(&parser, sql).expect("parses").remove(0);
            crate::compat::rewrite_ast(&mut s);
            super::pg_names(&s)
        };
        assert_eq!(rewritten("SELECT n.nspname, 'x' = ANY(ARRAY['x']) FROM pg_namespace n"), some(&["nspname", "?column?"]));
        assert_eq!(names("SELECT '2024-01-01'::timestamp::text, (ARRAY[1])[1], x::int, CASE WHEN true THEN 1 ELSE y END FROM t"), some(&["text", "array", "x", "y"]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn names(sql: &str) -> Option<Vec<Option<String>>> {
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        pg_names(&stmt)
    }

    #[test]
    fn names_like_postgres() {
        assert_eq!(
            names("SELECT count(*), 1, n_name, t.x, x::int, CAST(1 AS SMALLINT), max(a) AS m, a + b FROM t").unwrap(),
            vec![
                Some("count".into()),
                Some("?column?".into()),
                Some("n_name".into()),
                Some("x".into()),
                Some("x".into()),
                Some("int2".into()),
                Some("m".into()),
                Some("?column?".into()),
            ]
        );
        assert!(names("SELECT * FROM t").is_none());
        assert_eq!(names("SELECT 1 UNION SELECT 2").unwrap(), vec![Some("?column?".into())]);
    }
}
