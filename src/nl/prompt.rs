//! The prompt the `llm` drafter sends and the reading of what comes back. The prompt holds the
//! question, the caller's entitled [`SchemaContext`] (nothing else about the catalog) and the
//! dialect's hints and verified examples; replies are untrusted text, parsed defensively.

use std::fmt::Write;

use crate::engine::dialect::Example;
use crate::nl::index::documents::Kind;
use crate::nl::index::Hit;
use crate::nl::SchemaContext;

/// Most sample values listed per column (the context keeps up to 50).
const SAMPLES_SHOWN: usize = 12;
/// Longest SQL accepted from a reply.
const MAX_SQL_CHARS: usize = 20_000;

/// The standing instructions: what to write and the one JSON shape to answer in.
pub fn system(hints: &[String]) -> String {
    let mut s = String::from(
        "You translate questions into one read-only SQL SELECT statement for lalo, a PostgreSQL-compatible gateway.\n\
         Use only the tables and columns listed in the schema; qualify tables as database.schema.table.\n\
         Answer with one JSON object and nothing else:\n\
         {\"sql\": \"SELECT ...\", \"tables\": [\"database.schema.table\", ...]}\n\
         or, when the schema cannot answer the question:\n\
         {\"cannot_answer\": \"why\"}\n\
         Never write more than one statement, and never write INSERT, UPDATE, DELETE or DDL.\n",
    );
    if !hints.is_empty() {
        s.push_str("SQL dialect notes:\n");
        for h in hints {
            let _ = writeln!(s, "- {h}");
        }
    }
    s
}

/// The question with the schema the caller may read, what retrieval found for it (already cut
/// to what the caller may read) and the verified examples.
pub fn user(question: &str, database: &str, ctx: &SchemaContext, retrieved: &[Hit], examples: &[&Example]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Schema (database {database}):");
    for t in &ctx.tables {
        let _ = write!(s, "\nTABLE {}.{}.{}", t.catalog, t.schema, t.name);
        match &t.description {
            Some(d) => {
                let _ = writeln!(s, " -- {}", one_line(d));
            }
            None => s.push('\n'),
        }
        for c in &t.columns {
            let _ = write!(s, "  {} {}", c.name, c.data_type);
            if let Some(d) = &c.description {
                let _ = write!(s, " -- {}", one_line(d));
            }
            if !c.samples.is_empty() {
                let shown: Vec<&str> = c.samples.iter().take(SAMPLES_SHOWN).map(String::as_str).collect();
                let more = if c.samples.len() > SAMPLES_SHOWN { ", ..." } else { "" };
                let _ = write!(s, " [values: {}{more}]", shown.join(", "));
            }
            s.push('\n');
        }
    }
    if !ctx.foreign_keys.is_empty() {
        s.push_str("\nJoin paths:\n");
        for fk in &ctx.foreign_keys {
            let _ = writeln!(
                s,
                "- {}({}) -> {}({})",
                fk.from_table,
                fk.from_columns.join(", "),
                fk.to_table,
                fk.to_columns.join(", ")
            );
        }
    }
    if !retrieved.is_empty() {
        s.push_str("\nRetrieved for this question (most relevant first):\n");
        for h in retrieved {
            let d = &h.doc;
            let line = match d.kind {
                Kind::Table => format!("table {}.{}.{}", d.database, d.schema, d.table),
                Kind::Column => format!("column {}.{}.{}.{}", d.database, d.schema, d.table, d.column),
                Kind::Value => format!("value {}.{}.{}.{} = '{}'", d.database, d.schema, d.table, d.column, d.detail),
                Kind::Join => format!("join {}.{}({}) -> {}", d.schema, d.table, d.column, d.detail),
                Kind::Example => continue,
            };
            let _ = writeln!(s, "- {line}");
        }
    }
    if !examples.is_empty() {
        s.push_str("\nVerified examples:\n");
        for e in examples {
            let _ = writeln!(s, "Q: {}\n{}", e.question, serde_json::json!({ "sql": e.sql }));
        }
    }
    let _ = write!(s, "\nQuestion: {}\nJSON:", one_line(question));
    s
}

/// The follow-up after a draft failed: the error text, and a request for a corrected answer.
pub fn repair(error: &str) -> String {
    format!(
        "That SQL failed in lalo with this error:\n{}\nReply with corrected JSON in the same shape, \
         using only the listed tables and columns, or {{\"cannot_answer\": \"why\"}}.",
        error.trim()
    )
}

/// What a reply said, once read.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// One statement of SQL and the tables the model says it reads.
    Sql { sql: String, tables: Vec<String> },
    /// The model says the question cannot be answered from the schema.
    CannotAnswer(String),
    /// Not the JSON asked for; the reason is lalo's, never the reply's text.
    Invalid(&'static str),
}

/// Read a reply: a JSON object (possibly inside a code fence or surrounded by text) with `sql`
/// or `cannot_answer`. Anything else is [`Reply::Invalid`].
pub fn parse(text: &str) -> Reply {
    let Some(value) = json_object(text) else { return Reply::Invalid("the reply was not the JSON object asked for") };
    if let Some(reason) = value.get("cannot_answer").filter(|v| !v.is_null()) {
        let reason = reason.as_str().map(str::to_string).unwrap_or_else(|| reason.to_string());
        return Reply::CannotAnswer(reason);
    }
    let Some(sql) = value.get("sql").and_then(|v| v.as_str()) else {
        return Reply::Invalid("the reply held neither \"sql\" nor \"cannot_answer\"");
    };
    let sql = sql.trim().trim_end_matches(';').trim();
    if sql.is_empty() {
        return Reply::Invalid("the reply's SQL was empty");
    }
    if sql.len() > MAX_SQL_CHARS {
        return Reply::Invalid("the reply's SQL was too long");
    }
    let tables = value
        .get("tables")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    Reply::Sql { sql: sql.to_string(), tables }
}

/// The first JSON object in `text`: the whole text, else the span from the first `{` to the last `}`.
fn json_object(text: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let text = text.trim();
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(text) {
        return Some(m);
    }
    let (start, end) = (text.find('{')?, text.rfind('}')?);
    if end <= start {
        return None;
    }
    match serde_json::from_str(&text[start..=end]) {
        Ok(serde_json::Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nl::{ColumnInfo, TableInfo};
    use datafusion::arrow::datatypes::DataType;

    #[test]
    fn replies_are_read_defensively() {
        assert_eq!(
            parse(r#"{"sql": "SELECT 1;", "tables": ["lalo.tpch.nation"]}"#),
            Reply::Sql { sql: "SELECT 1".into(), tables: vec!["lalo.tpch.nation".into()] }
        );
        assert_eq!(parse("```json\n{\"sql\": \"SELECT 2\"}\n```"), Reply::Sql { sql: "SELECT 2".into(), tables: vec![] });
        assert_eq!(parse(r#"{"cannot_answer": "no such data"}"#), Reply::CannotAnswer("no such data".into()));
        assert!(matches!(parse("Sure! The answer is SELECT 1"), Reply::Invalid(_)));
        assert!(matches!(parse(r#"{"query": "SELECT 1"}"#), Reply::Invalid(_)));
        assert!(matches!(parse(r#"{"sql": "  ; "}"#), Reply::Invalid(_)));
        assert!(matches!(parse("[1, 2]"), Reply::Invalid(_)));
    }

    #[test]
    fn the_prompt_lists_only_the_context() {
        let mut col = ColumnInfo::new("n_name", DataType::Utf8);
        col.samples = vec!["FRANCE".into(), "GERMANY".into()];
        let ctx = SchemaContext {
            tables: vec![TableInfo {
                catalog: "lalo".into(),
                schema: "tpch".into(),
                name: "nation".into(),
                description: Some("Nations\nof the world".into()),
                columns: vec![col],
            }],
            foreign_keys: vec![],
        };
        let p = user("how many nations?", "lalo", &ctx, &[], &[]);
        assert!(p.contains("TABLE lalo.tpch.nation -- Nations of the world"), "{p}");
        assert!(p.contains("n_name Utf8 [values: FRANCE, GERMANY]"), "{p}");
        assert!(p.ends_with("Question: how many nations?\nJSON:"), "{p}");
    }
}
