//! Exact fragments of well-known client catalog queries that DataFusion cannot plan as sent,
//! replaced by equivalents it can. Each entry names the client that sends it; the rewrite only
//! fires on the verbatim text, so user queries are never touched. Beside them, a few general
//! AST rewrites for SQL shapes PostgreSQL accepts and DataFusion 54 plans differently or not at
//! all (`rewrite_ast`, with [`recursive_cte`] and [`scalar_subquery`]).

mod operator;
mod order_names;
mod projection_subquery;
mod recursive_cte;
mod scalar_subquery;
mod srf_select;
mod subscripts;

pub use projection_subquery::parse;

/// (client, fragment as sent, replacement).
const REWRITES: &[(&str, &str, &str)] = &[
    (
        // psql \d+: lalo tables have no storage options.
        "psql \\d+",
        "pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ')",
        "''",
    ),
    (
        // DBeaver/pgJDBC array type probe: pg_type.typinput holds the function name here.
        "pgjdbc/DBeaver",
        "typinput='pg_catalog.array_in'::regproc",
        "typinput='array_in'",
    ),
    (
        // pgcli function listing: argument type arrays are not modelled; report none.
        "pgcli",
        "COALESCE(proallargtypes::regtype[], proargtypes::regtype[])::text[]",
        "CAST(NULL AS TEXT[])",
    ),
    (
        // Npgsql (Power BI) type loading: multirange lookup as a correlated subquery inside CASE,
        // which DataFusion cannot decorrelate; lalo has no multirange types.
        "Npgsql",
        "(SELECT rngtypid FROM pg_range WHERE rngmultitypid = typ.oid)",
        "CAST(NULL AS INT)",
    ),
    (
        // Npgsql type loading: pg_type.typreceive holds the function's name here, not its oid.
        "Npgsql",
        "LEFT JOIN pg_proc AS proc ON proc.oid = typ.typreceive",
        "LEFT JOIN pg_proc AS proc ON proc.proname = typ.typreceive",
    ),
    (
        "Npgsql",
        "LEFT JOIN pg_proc AS elemproc ON elemproc.oid = elemtyp.typreceive",
        "LEFT JOIN pg_proc AS elemproc ON elemproc.proname = elemtyp.typreceive",
    ),
    (
        // asyncpg type introspection: a domain's base type through a recursive CTE correlated
        // with the outer pg_type row, which DataFusion cannot decorrelate. lalo's catalog has no
        // domains (let alone domains over domains), so the direct base type is the answer.
        "asyncpg",
        "(WITH RECURSIVE typebases(oid, depth) AS (\n                    SELECT\n                        t2.typbasetype      AS oid,\n                        0                   AS depth\n                    FROM\n                        pg_type t2\n                    WHERE\n                        t2.oid = t.oid\n\n                    UNION ALL\n\n                    SELECT\n                        t2.typbasetype      AS oid,\n                        tb.depth + 1        AS depth\n                    FROM\n                        pg_type t2,\n                        typebases tb\n                    WHERE\n                       tb.oid = t2.oid\n                       AND t2.typbasetype != 0\n               ) SELECT oid FROM typebases ORDER BY depth DESC LIMIT 1)",
        "t.typbasetype",
    ),
    (
        // asyncpg type introspection: a composite type's attribute types. PostgreSQL answers
        // oid[], which asyncpg decodes natively; int4[] (what array_agg over lalo's int4 oid
        // columns gives) would need introspecting itself, and asyncpg recurses forever.
        "asyncpg",
        "array_agg(ia.atttypid ORDER BY ia.attnum)",
        "CAST(array_agg(ia.atttypid ORDER BY ia.attnum) AS oid[])",
    ),
    (
        // SQLAlchemy schema listing: LIKE with '/' as escape; DataFusion only takes backslash.
        "SQLAlchemy",
        "NOT LIKE 'pg/_' || '%' ESCAPE '/'",
        "NOT LIKE 'pg\\_' || '%'",
    ),
];

/// Apply the known rewrites; returns the text unchanged when none match.
pub fn rewrite(sql: &str) -> std::borrow::Cow<'_, str> {
    let mut out = std::borrow::Cow::Borrowed(sql);
    for (_, needle, replacement) in REWRITES {
        if out.contains(needle) {
            out = std::borrow::Cow::Owned(out.replace(needle, replacement));
        }
    }
    if let Some(star) = force_quote_star(&out) {
        out = std::borrow::Cow::Owned(star);
    }
    out
}

/// `COPY ... TO STDOUT (FORCE_QUOTE *)` (or `CSV FORCE QUOTE *`): sqlparser takes only a
/// column list there, so the `*` is written as the quoted name `"*"`, which copy.rs reads as
/// "every column" (a column really named `*` is the one thing this cannot tell apart).
fn force_quote_star(sql: &str) -> Option<String> {
    // Every statement passes here: only a COPY is looked at further.
    if !sql.trim_start().get(..4).is_some_and(|p| p.eq_ignore_ascii_case("copy")) {
        return None;
    }
    let upper = sql.to_ascii_uppercase();
    // Only the options after the COPY's target, outside string literals, before the statement ends.
    let from = upper.find("STDOUT")?;
    let bytes = upper.as_bytes();
    let mut quoted = false;
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b';' if !quoted => return None,
            _ if !quoted => {
                // The option list takes a parenthesised list after FORCE_QUOTE; the legacy form a bare one.
                for (needle, star) in [("FORCE_QUOTE", "(\"*\")"), ("FORCE QUOTE", "\"*\"")] {
                    if upper[i..].starts_with(needle) {
                        let rest = &upper[i + needle.len()..];
                        let at = i + needle.len() + (rest.len() - rest.trim_start().len());
                        // ASCII upper-casing keeps every byte offset of `sql`.
                        if rest.trim_start().starts_with('*') {
                            let mut out = sql.to_string();
                            out.replace_range(at..at + 1, star);
                            return Some(out);
                        }
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod force_quote_tests {
    #[test]
    fn force_quote_star_is_rewritten_in_the_options_only() {
        let r = |s: &str| super::force_quote_star(s);
        assert_eq!(r("COPY (SELECT 1) TO STDOUT (FORMAT csv, FORCE_QUOTE *)").as_deref(), Some("COPY (SELECT 1) TO STDOUT (FORMAT csv, FORCE_QUOTE (\"*\"))"));
        assert_eq!(r("copy (select 1) to stdout csv force quote *").as_deref(), Some("copy (select 1) to stdout csv force quote \"*\""));
        assert_eq!(r("COPY (SELECT 1) TO STDOUT; SELECT 'to stdout force quote *'"), None);
        assert_eq!(r("COPY (SELECT 1) TO STDOUT (FORMAT csv, NULL 'FORCE_QUOTE *')"), None);
        assert_eq!(r("SELECT 'COPY x TO STDOUT FORCE QUOTE *'"), None);
    }
}

/// `LIKE p ESCAPE 'c'` with an escape other than backslash: DataFusion only knows backslash,
/// so the pattern is translated (`c%` → `\%`, `c_` → `\_`, `cc` → `c`, `\` → `\\`).
fn like_escape(pattern: &datafusion::sql::sqlparser::ast::Expr, esc: &str) -> datafusion::sql::sqlparser::ast::Expr {
    use datafusion::sql::sqlparser::ast::{Expr, Value};
    let lit = |s: &str| Expr::value(Value::SingleQuotedString(s.to_string()));
    let replace = |e: Expr, from: &str, to: &str| call("replace", vec![e, lit(from), lit(to)]);
    let e = replace(pattern.clone(), "\\", "\\\\");
    let e = replace(e, &format!("{esc}%"), "\\%");
    let e = replace(e, &format!("{esc}_"), "\\_");
    replace(e, &format!("{esc}{esc}"), esc)
}

fn call(name: &str, args: Vec<datafusion::sql::sqlparser::ast::Expr>) -> datafusion::sql::sqlparser::ast::Expr {
    use datafusion::sql::sqlparser::ast::{
        Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, ObjectName,
    };
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a))).collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// `(expr).field`: a record's field, as PostgreSQL writes it (`(information_schema.
/// _pg_expandarray(k)).n`, `(keys).x`). DataFusion reads a dot only after a column name; on
/// any other expression the chain of fields becomes `get_field` calls. `::name` and `::"char"`
/// (PostgreSQL's catalog string types) read as text.
fn fields(e: &mut datafusion::sql::sqlparser::ast::Expr) {
    use datafusion::sql::sqlparser::ast::{AccessExpr, DataType, Expr, ObjectNamePart, Value};
    if let Expr::Cast { data_type, .. } = e {
        if let DataType::Custom(name, args) = data_type {
            let last = name.0.last().and_then(ObjectNamePart::as_ident).map(|i| i.value.to_ascii_lowercase());
            if args.is_empty() && matches!(last.as_deref(), Some("name" | "char")) {
                *data_type = DataType::Text;
            }
        }
        return;
    }
    let Expr::CompoundFieldAccess { root, access_chain } = e else { return };
    if !matches!(root.as_ref(), Expr::Nested(_) | Expr::Function(_)) {
        return;
    }
    let names: Option<Vec<String>> = access_chain
        .iter()
        .map(|a| match a {
            AccessExpr::Dot(Expr::Identifier(i)) => Some(i.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let Some(names) = names else { return };
    let mut out = root.as_ref().clone();
    for n in names {
        out = call("get_field", vec![out, Expr::value(Value::SingleQuotedString(n))]);
    }
    *e = out;
}

/// `x::regtype::text` shows a type's name in PostgreSQL; lalo's oid aliases are plain integers,
/// so the cast chain becomes `format_type(x, NULL)` (pgcli, DBeaver column listings). Also:
/// LIKE escapes, FLOAT as double precision, recursive CTE column lists ([`recursive_cte`]) and
/// non-aggregated correlated scalar subqueries ([`scalar_subquery`]), `generate_subscripts`
/// in a select list ([`subscripts`]).
pub fn rewrite_ast(stmt: &mut datafusion::sql::sqlparser::ast::Statement) {
    use datafusion::sql::sqlparser::ast::{
        DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
        ObjectName, Value, VisitMut, VisitorMut,
    };
    use std::ops::ControlFlow;
    struct V(scalar_subquery::ScalarSubqueries);
    impl VisitorMut for V {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
            // On the select list as written, before other rewrites change its items.
            order_names::rewrite(q);
            srf_select::rewrite(q);
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, t: &mut datafusion::sql::sqlparser::ast::TableFactor) -> ControlFlow<()> {
            srf_select::name_series_column(t);
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, q: &mut datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
            recursive_cte::name_anchor_columns(q);
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            self.0.note(e);
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            self.0.rewrite(e);
            subscripts::rewrite(e);
            operator::rewrite(e);
            fields(e);
            // EXTRACT answers numeric in PostgreSQL; the SQL planner would make it date_part
            // (double precision here): a call of lalo's `extract` (pg_date_part.rs) instead.
            if let Expr::Extract { field, expr, .. } = e {
                let name = Expr::value(Value::SingleQuotedString(field.to_string().to_ascii_lowercase()));
                *e = call("extract", vec![name, expr.as_ref().clone()]);
            }
            if let Expr::Like { pattern, escape_char, .. } = e {
                let esc = escape_char.as_ref().map(|v| match &v.value {
                    Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                });
                if let Some(esc) = esc.filter(|c| c.chars().count() == 1 && c != "\\") {
                    *pattern = Box::new(like_escape(pattern, &esc));
                    *escape_char = None;
                }
            }
            // PostgreSQL's FLOAT (and FLOAT(25..53)) is double precision; DataFusion reads it as REAL.
            if let Expr::Cast { data_type, .. } = e {
                if let DataType::Float(info) = data_type {
                    use datafusion::sql::sqlparser::ast::ExactNumberInfo;
                    let double = match info {
                        ExactNumberInfo::None => true,
                        ExactNumberInfo::Precision(p) | ExactNumberInfo::PrecisionAndScale(p, _) => *p > 24,
                    };
                    *data_type = if double { DataType::DoublePrecision } else { DataType::Real };
                }
            }
            if let Expr::Cast { expr: inner, data_type: DataType::Text, .. } = e {
                if let Expr::Cast { expr: base, data_type: dt, .. } = inner.as_ref() {
                    let t = dt.to_string().to_ascii_lowercase();
                    if t == "regtype" || t == "pg_catalog.regtype" {
                        let arg = |x: Expr| FunctionArg::Unnamed(FunctionArgExpr::Expr(x));
                        *e = Expr::Function(Function {
                            name: ObjectName::from(vec![Ident::new("format_type")]),
                            uses_odbc_syntax: false,
                            parameters: FunctionArguments::None,
                            args: FunctionArguments::List(FunctionArgumentList {
                                duplicate_treatment: None,
                                args: vec![arg(base.as_ref().clone()), arg(Expr::value(Value::Null))],
                                clauses: vec![],
                            }),
                            filter: None,
                            null_treatment: None,
                            over: None,
                            within_group: vec![],
                        });
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut V(Default::default()));
}

#[cfg(test)]
mod tests {
    #[test]
    fn rewrites_only_verbatim_fragments() {
        assert_eq!(super::rewrite("select 1"), "select 1");
        assert!(super::rewrite("SELECT typinput='pg_catalog.array_in'::regproc as is_array").contains("typinput='array_in'"));
    }
}
