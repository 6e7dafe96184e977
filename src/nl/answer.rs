//! How a drafted question is shown: the columns and lines of `EXPLAIN ASK` (and MCP's explain
//! tool). Running questions is the pipeline's (pipeline/question.rs).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::nl::graph::Planned;

/// The columns of `EXPLAIN ASK`.
pub fn explain_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("section", DataType::Utf8, false), Field::new("detail", DataType::Utf8, true)]))
}

/// (section, detail) lines describing a planned question.
pub fn explain_lines(p: &Planned) -> Vec<(String, String)> {
    let mut out = vec![("sql".to_string(), p.sql.clone()), ("decision".into(), p.governed.decision.to_string())];
    for r in &p.governed.rules {
        out.push(("policy".into(), r.clone()));
    }
    let ctx = &p.context.context;
    for t in ctx.tables.iter().filter(|t| p.trace.given_tables.contains(&t.qualified())) {
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|c| if c.samples.is_empty() { c.name.clone() } else { format!("{} [{} values]", c.name, c.samples.len()) })
            .collect();
        out.push(("context".into(), format!("{}({})", t.qualified(), cols.join(", "))));
    }
    for l in &p.trace.retrieved {
        let mut d = format!("{} score {:.2}", l.table, l.score);
        if !l.columns.is_empty() {
            d.push_str(&format!(" columns {}", l.columns.join(", ")));
        }
        if !l.values.is_empty() {
            d.push_str(&format!(" values {}", l.values.join(", ")));
        }
        out.push(("retrieved".into(), d));
    }
    for h in &p.trace.documents {
        let d = &h.doc;
        let name = match d.kind {
            crate::nl::index::documents::Kind::Table => format!("{}.{}.{}", d.database, d.schema, d.table),
            crate::nl::index::documents::Kind::Value => format!("{}.{}.{}.{} = '{}'", d.database, d.schema, d.table, d.column, d.detail),
            crate::nl::index::documents::Kind::Join => format!("{}.{}.{}({}) -> {}", d.database, d.schema, d.table, d.column, d.detail),
            _ => format!("{}.{}.{}.{}", d.database, d.schema, d.table, d.column),
        };
        out.push(("document".into(), format!("{} {name} score {:.4} by {}", d.kind.as_str(), h.score, h.found_by)));
    }
    for d in &p.trace.drafts {
        let text = d.sql.clone().unwrap_or_else(|| format!("declined: {}", d.explanation));
        out.push(("draft".into(), text));
        if let Some(e) = &d.error {
            out.push(("draft error".into(), e.clone()));
        }
    }
    for s in &p.trace.steps {
        out.push(("trace".into(), format!("{} {:.2} ms {}", s.node, s.ms, s.note).trim().to_string()));
    }
    out
}
