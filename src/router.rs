//! Routes each statement a client sends: session commands (SET/SHOW/RESET, transactions,
//! DISCARD), questions (ASK), or SQL to plan, govern and run.

use datafusion::sql::sqlparser::ast::{
    CloseCursor, CopySource, CopyTarget, Expr, FetchDirection,
    ObjectName, Set, Statement, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use crate::error::LaloError;

/// What to do with one statement.
#[derive(Debug, Clone)]
pub enum Route {
    /// Plan, govern and run.
    Query(Box<Statement>),
    Set { name: String, value: String },
    Reset(Option<String>),
    Show(String),
    Begin,
    Commit,
    Rollback,
    DiscardAll,
    /// A natural-language question (`ASK ...`), or its explanation (`EXPLAIN ASK ...`).
    Ask { question: String, explain: bool },
    /// Accepted and ignored, answered with this command tag (e.g. SET TRANSACTION, SAVEPOINT:
    /// lalo never writes, so there is nothing to roll back to).
    Noop(&'static str),
    /// DECLARE name CURSOR FOR query.
    Declare { name: String, query: Box<Statement> },
    /// FETCH [count | ALL | NEXT] FROM name; `None` is ALL.
    Fetch { name: String, count: Option<u64> },
    /// CLOSE name, or CLOSE ALL (`None`).
    Close(Option<String>),
    /// PREPARE name [(types)] AS statement (kept whole, planned at EXECUTE).
    Prepare { name: String, statement: Box<Statement> },
    /// EXECUTE name [(literal, ...)].
    Execute { name: String, params: Vec<Expr> },
    /// DEALLOCATE [PREPARE] name | ALL.
    Deallocate(Option<String>),
    /// REFRESH UPSTREAM [name]: re-read an upstream's catalog (all upstreams when no name).
    RefreshUpstream(Option<String>),
    /// COPY table|(query) TO STDOUT [CSV [HEADER]]: rows as COPY data.
    CopyOut { query: Box<Statement>, options: crate::copy::CopyOptions },
}

/// Split SQL text into routed statements. `input_mode` is the session's `lalo.input`.
pub fn route_text(parser: &PostgresCompatibilityParser, text: &str, input_mode: &str) -> Result<Vec<Route>, LaloError> {
    let trimmed = text.trim().trim_end_matches(';').trim();
    if let Some(q) = strip_keyword(trimmed, "EXPLAIN ASK") {
        return Ok(vec![Route::Ask { question: q.to_string(), explain: true }]);
    }
    if let Some(q) = strip_keyword(trimmed, "ASK") {
        return Ok(vec![Route::Ask { question: q.to_string(), explain: false }]);
    }
    if input_mode == "nl" && !trimmed.is_empty() && !looks_like_session_command(trimmed) {
        return Ok(vec![Route::Ask { question: trimmed.to_string(), explain: false }]);
    }
    if let Some(rest) = strip_keyword(trimmed, "REFRESH UPSTREAM") {
        let name = rest.trim_matches('"').to_string();
        if name.contains(char::is_whitespace) || name.contains(';') {
            return Err(LaloError::Syntax(format!("REFRESH UPSTREAM takes one upstream name, not \"{rest}\"")));
        }
        return Ok(vec![Route::RefreshUpstream(Some(name))]);
    }
    if trimmed.eq_ignore_ascii_case("REFRESH UPSTREAM") || trimmed.eq_ignore_ascii_case("REFRESH UPSTREAMS") {
        return Ok(vec![Route::RefreshUpstream(None)]);
    }
    if strip_keyword(trimmed, "CREATE EXTERNAL TABLE").is_some() {
        return Err(LaloError::NotSupported("CREATE EXTERNAL TABLE is not allowed: lalo is read-only".into()));
    }
    let text = crate::compat::rewrite(text);
    let statements = match crate::compat::parse(parser, &text) {
        Ok(s) => s,
        Err(e) => {
            if input_mode == "auto" && reads_like_question(trimmed) {
                return Ok(vec![Route::Ask { question: trimmed.to_string(), explain: false }]);
            }
            return Err(LaloError::Syntax(e.to_string().trim_start_matches("sql parser error: ").to_string()));
        }
    };
    statements
        .into_iter()
        .map(|mut s| {
            crate::compat::rewrite_ast(&mut s);
            route_statement(s)
        })
        .collect()
}

fn looks_like_session_command(t: &str) -> bool {
    ["SET ", "SHOW ", "RESET ", "BEGIN", "COMMIT", "ROLLBACK", "DISCARD", "START TRANSACTION"]
        .iter()
        .any(|k| t.len() >= k.len() && t[..k.len()].eq_ignore_ascii_case(k))
}

/// Text that failed to parse as SQL but reads like a sentence: words, ending in '?' or starting
/// with a question word or verb people use to ask for data.
pub fn reads_like_question(t: &str) -> bool {
    let words: Vec<&str> = t.split_whitespace().collect();
    if words.len() < 3 {
        return false;
    }
    let first = words[0].to_ascii_lowercase();
    t.ends_with('?')
        || matches!(
            first.as_str(),
            "what" | "which" | "who" | "how" | "when" | "where" | "list" | "show" | "give" | "find" | "count"
                | "top" | "get" | "tell" | "average" | "total"
        )
}

/// Case-insensitive keyword prefix (followed by whitespace); returns the rest.
fn strip_keyword<'a>(t: &'a str, kw: &str) -> Option<&'a str> {
    let words: Vec<&str> = kw.split(' ').collect();
    let mut rest = t;
    for w in words {
        rest = rest.trim_start();
        if rest.len() < w.len() || !rest[..w.len()].eq_ignore_ascii_case(w) {
            return None;
        }
        let after = &rest[w.len()..];
        if !after.is_empty() && !after.starts_with(char::is_whitespace) {
            return None;
        }
        rest = after;
    }
    let rest = rest.trim();
    if rest.is_empty() { None } else { Some(rest) }
}

fn object_name(n: &ObjectName) -> String {
    n.0.iter().map(|p| p.to_string().trim_matches('"').to_string()).collect::<Vec<_>>().join(".")
}

fn expr_text(e: &Expr) -> String {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

fn route_statement(stmt: Statement) -> Result<Route, LaloError> {
    Ok(match stmt.clone() {
        Statement::Set(set) => match set {
            Set::SingleAssignment { variable, values, .. } => {
                let name = object_name(&variable);
                let value = values.iter().map(expr_text).collect::<Vec<_>>().join(", ");
                if value.eq_ignore_ascii_case("default") {
                    Route::Reset(Some(name))
                } else {
                    Route::Set { name, value }
                }
            }
            Set::SetTimeZone { value, .. } => Route::Set { name: "timezone".into(), value: expr_text(&value) },
            Set::SetNames { charset_name, .. } => Route::Set { name: "client_encoding".into(), value: charset_name.value },
            Set::SetNamesDefault {} => Route::Reset(Some("client_encoding".into())),
            Set::SetRole { role_name, .. } => Route::Set {
                name: "role".into(),
                value: role_name.map(|r| r.value).unwrap_or_else(|| "none".into()),
            },
            Set::SetSessionAuthorization(p) => Route::Set { name: "session_authorization".into(), value: p.to_string() },
            Set::SetTransaction { .. } => Route::Noop("SET"),
            other => return Err(LaloError::NotSupported(format!("{other} is not supported"))),
        },
        Statement::ShowVariable { variable } => {
            Route::Show(variable.iter().map(|i| i.value.clone()).collect::<Vec<_>>().join(" "))
        }
        Statement::StartTransaction { .. } => Route::Begin,
        Statement::Commit { .. } => Route::Commit,
        Statement::Rollback { savepoint: Some(_), .. } => Route::Noop("ROLLBACK"),
        Statement::Rollback { .. } => Route::Rollback,
        Statement::Savepoint { .. } => Route::Noop("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => Route::Noop("RELEASE"),
        Statement::Discard { .. } => Route::DiscardAll,
        Statement::Deallocate { name, .. } => {
            if name.value.eq_ignore_ascii_case("all") {
                Route::Deallocate(None)
            } else {
                Route::Deallocate(Some(name.value))
            }
        }
        Statement::Copy { source, to: true, target: CopyTarget::Stdout, options, legacy_options, .. } => {
            let query = match source {
                CopySource::Query(q) => Statement::Query(q),
                CopySource::Table { table_name, columns } => {
                    let cols = if columns.is_empty() {
                        "*".to_string()
                    } else {
                        columns.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
                    };
                    let sql = format!("SELECT {cols} FROM {table_name}");
                    Parser::parse_sql(&PostgreSqlDialect {}, &sql)
                        .map_err(|e| LaloError::Syntax(e.to_string()))?
                        .pop()
                        .ok_or_else(|| LaloError::Syntax("COPY needs a table".into()))?
                }
            };
            let options = crate::copy::CopyOptions::parse(&options, &legacy_options)?;
            Route::CopyOut { query: Box::new(query), options }
        }
        Statement::Copy { to: false, .. } => {
            return Err(LaloError::NotSupported("COPY FROM is not allowed: lalo is read-only".into()))
        }
        Statement::Prepare { ref name, .. } => Route::Prepare { name: name.value.clone(), statement: Box::new(stmt) },
        Statement::Execute { name: Some(name), parameters, .. } => {
            Route::Execute { name: object_name(&name), params: parameters }
        }
        Statement::UNLISTEN { .. } => Route::Noop("UNLISTEN"),
        Statement::Close { cursor } => match cursor {
            CloseCursor::All => Route::Close(None),
            CloseCursor::Specific { name } => Route::Close(Some(name.value)),
        },
        Statement::Declare { stmts } => {
            let d = stmts.into_iter().next().ok_or_else(|| LaloError::Syntax("DECLARE needs a cursor".into()))?;
            let name = d.names.first().map(|i| i.value.clone()).unwrap_or_default();
            match d.for_query {
                Some(q) if !name.is_empty() => Route::Declare { name, query: Box::new(Statement::Query(q)) },
                _ => return Err(LaloError::NotSupported("only DECLARE name CURSOR FOR query is supported".into())),
            }
        }
        Statement::Fetch { name, direction, .. } => {
            let count = match direction {
                FetchDirection::Next | FetchDirection::Forward { limit: None } => Some(1),
                FetchDirection::Count { limit } | FetchDirection::Forward { limit: Some(limit) } => {
                    Some(limit.value.to_string().parse::<u64>().map_err(|_| LaloError::Syntax("FETCH count must be a number".into()))?)
                }
                FetchDirection::All | FetchDirection::ForwardAll => None,
                _ => return Err(LaloError::NotSupported("cursors only move forward (FETCH [n | ALL | NEXT])".into())),
            };
            Route::Fetch { name: name.value, count }
        }
        other => {
            let text = other.to_string();
            if let Some(rest) = strip_keyword(&text, "RESET") {
                if rest.eq_ignore_ascii_case("ALL") {
                    Route::Reset(None)
                } else {
                    Route::Reset(Some(rest.to_string()))
                }
            } else {
                Route::Query(Box::new(other))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(t: &str) -> Vec<Route> {
        route_text(&PostgresCompatibilityParser::new(), t, "sql").unwrap()
    }

    #[test]
    fn routes_session_commands() {
        assert!(matches!(&r("SET search_path TO public")[0], Route::Set { name, value } if name == "search_path" && value == "public"));
        assert!(matches!(&r("SET TIME ZONE 'UTC'")[0], Route::Set { name, .. } if name == "timezone"));
        assert!(matches!(&r("SHOW TimeZone")[0], Route::Show(n) if n == "TimeZone"));
        assert!(matches!(&r("BEGIN")[0], Route::Begin));
        assert!(matches!(&r("DISCARD ALL")[0], Route::DiscardAll));
        assert!(matches!(&r("select 1; select 2")[..], [Route::Query(_), Route::Query(_)]));
        assert!(matches!(&r("ASK how many orders?")[0], Route::Ask { explain: false, .. }));
        assert!(matches!(&r("explain ask how many orders?")[0], Route::Ask { explain: true, .. }));
    }

    #[test]
    fn auto_mode_reads_questions() {
        let p = PostgresCompatibilityParser::new();
        assert!(matches!(&route_text(&p, "how many orders were placed in 1995?", "auto").unwrap()[0], Route::Ask { .. }));
        assert!(route_text(&p, "selec 1", "auto").is_err());
    }
}
