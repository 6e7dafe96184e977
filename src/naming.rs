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
                    SelectItem::ExprWithAlias { .. } => out.push(None),
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
fn expr_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => i.value.clone(),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()).unwrap_or_else(unnamed),
        Expr::Function(f) => {
            let name = f.name.0.last().map(|p| p.to_string()).unwrap_or_default();
            name.trim_matches('"').to_ascii_lowercase()
        }
        Expr::Cast { expr, data_type, .. } => match expr.as_ref() {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Function(_) | Expr::Cast { .. } | Expr::Nested(_) => {
                expr_name(expr)
            }
            _ => pg_type_name(&data_type.to_string()),
        },
        Expr::Nested(inner) => expr_name(inner),
        Expr::Case { .. } => "case".into(),
        Expr::Exists { .. } => "exists".into(),
        Expr::Subquery(q) => query_names(q).and_then(|v| v.into_iter().next().flatten()).unwrap_or_else(unnamed),
        Expr::Array(_) => "array".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Substring { .. } => "substring".into(),
        Expr::Trim { .. } => "btrim".into(),
        Expr::Position { .. } => "position".into(),
        Expr::Ceil { .. } => "ceil".into(),
        Expr::Floor { .. } => "floor".into(),
        Expr::TypedString(t) => pg_type_name(&t.data_type.to_string()),
        _ => unnamed(),
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
                None,
                Some("?column?".into()),
            ]
        );
        assert!(names("SELECT * FROM t").is_none());
        assert_eq!(names("SELECT 1 UNION SELECT 2").unwrap(), vec![Some("?column?".into())]);
    }
}
