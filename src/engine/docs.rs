//! Table and column documentation: `catalog/docs/<schema>.<table>.md`, plus upstream comments.
//! Doc files may also hold verified examples (`Q: question` followed by `SQL: statement`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::error::LaloError;

/// The description of one table and its columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableDoc {
    pub description: String,
    pub columns: BTreeMap<String, String>,
    /// Foreign keys read from an upstream: join paths for the planner.
    pub foreign_keys: Vec<ForeignKeyDoc>,
    /// The upstream's primary key columns, in key order (empty: none declared).
    pub primary_key: Vec<String>,
    /// Verified (question, SQL) pairs from the doc file, for retrieval as few-shot examples.
    pub examples: Vec<(String, String)>,
}

/// `columns` of this table reference `ref_columns` of `ref_schema.ref_table` (same database).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForeignKeyDoc {
    pub columns: Vec<String>,
    pub ref_schema: String,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
}

/// All documentation, keyed by (database, schema, table), lower-case.
#[derive(Debug, Clone, Default)]
pub struct Docs {
    tables: HashMap<(String, String, String), TableDoc>,
    /// What upstreams said (comments, keys), kept apart so re-reading the doc files can merge it again.
    upstream: HashMap<(String, String, String), TableDoc>,
}

/// The TPC-H docs compiled in, so the demo catalog is documented wherever lalo runs.
const EMBEDDED: &[(&str, &str)] = &[
    ("tpch.region", include_str!("../../catalog/docs/tpch.region.md")),
    ("tpch.nation", include_str!("../../catalog/docs/tpch.nation.md")),
    ("tpch.supplier", include_str!("../../catalog/docs/tpch.supplier.md")),
    ("tpch.customer", include_str!("../../catalog/docs/tpch.customer.md")),
    ("tpch.part", include_str!("../../catalog/docs/tpch.part.md")),
    ("tpch.partsupp", include_str!("../../catalog/docs/tpch.partsupp.md")),
    ("tpch.orders", include_str!("../../catalog/docs/tpch.orders.md")),
    ("tpch.lineitem", include_str!("../../catalog/docs/tpch.lineitem.md")),
];

impl Docs {
    /// The compiled-in TPC-H docs for database `lalo`.
    pub fn embedded() -> Docs {
        let mut docs = Docs::default();
        for (name, text) in EMBEDDED {
            if let Some((schema, table)) = name.split_once('.') {
                docs.insert("lalo", schema, table, parse(text));
            }
        }
        docs
    }

    /// Read every `<schema>.<table>.md` in `dir` (database `lalo`), overriding what is already there.
    pub fn load_dir(&mut self, dir: &Path) -> Result<(), LaloError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(_) => return Ok(()),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("md") {
                continue;
            }
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
            let parts: Vec<&str> = stem.split('.').collect();
            let (db, schema, table) = match parts.as_slice() {
                [s, t] => ("lalo", *s, *t),
                [d, s, t] => (*d, *s, *t),
                _ => {
                    return Err(LaloError::Config(format!(
                        "{}: doc files are named <schema>.<table>.md",
                        path.display()
                    )))
                }
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| LaloError::Config(format!("{}: {e}", path.display())))?;
            self.insert(db, schema, table, parse(&text));
        }
        Ok(())
    }

    pub fn insert(&mut self, db: &str, schema: &str, table: &str, doc: TableDoc) {
        self.tables.insert(key(db, schema, table), doc);
    }

    /// Merge upstream comments and keys into a table's doc; text from doc files wins.
    pub fn merge_upstream(&mut self, db: &str, schema: &str, table: &str, upstream: TableDoc) {
        self.upstream.insert(key(db, schema, table), upstream.clone());
        let doc = self.tables.entry(key(db, schema, table)).or_default();
        if doc.description.is_empty() {
            doc.description = upstream.description;
        }
        for (c, text) in upstream.columns {
            doc.columns.entry(c).or_insert(text);
        }
        doc.foreign_keys = upstream.foreign_keys;
        doc.primary_key = upstream.primary_key;
    }

    /// The embedded docs and the files of `dir` read afresh, with what upstreams said merged in
    /// again (doc files edited while lalo runs).
    pub fn reload(&self, dir: &Path) -> Result<Docs, LaloError> {
        let mut fresh = Docs::embedded();
        fresh.load_dir(dir)?;
        for ((db, schema, table), up) in &self.upstream {
            fresh.merge_upstream(db, schema, table, up.clone());
        }
        Ok(fresh)
    }

    pub fn table(&self, db: &str, schema: &str, table: &str) -> Option<&TableDoc> {
        self.tables.get(&key(db, schema, table))
    }

    pub fn column(&self, db: &str, schema: &str, table: &str, column: &str) -> Option<&str> {
        self.table(db, schema, table)
            .and_then(|t| t.columns.get(&column.to_ascii_lowercase()))
            .map(String::as_str)
    }

    /// Every documented table.
    pub fn iter(&self) -> impl Iterator<Item = (&(String, String, String), &TableDoc)> {
        self.tables.iter()
    }
}

fn key(db: &str, schema: &str, table: &str) -> (String, String, String) {
    (db.to_ascii_lowercase(), schema.to_ascii_lowercase(), table.to_ascii_lowercase())
}

/// Parse one doc file: headings are skipped, `- column: text` lines describe columns,
/// every other non-empty line belongs to the table's description.
pub fn parse(text: &str) -> TableDoc {
    let mut doc = TableDoc::default();
    let mut desc = Vec::new();
    let mut question: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(q) = line.strip_prefix("Q:") {
            question = Some(q.trim().to_string());
            continue;
        }
        if let Some(sql) = line.strip_prefix("SQL:") {
            // An SQL line without a question before it is not an example; it stays text.
            if let Some(q) = question.take() {
                doc.examples.push((q, sql.trim().to_string()));
                continue;
            }
        }
        if let Some(rest) = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")) {
            if let Some((col, text)) = rest.split_once(':') {
                let col = col.trim().trim_matches('`');
                if !col.is_empty() && !col.contains(' ') {
                    doc.columns.insert(col.to_ascii_lowercase(), text.trim().to_string());
                    continue;
                }
            }
        }
        desc.push(line);
    }
    doc.description = desc.join(" ");
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_purpose_and_columns() {
        let d = parse("# tpch.x\n\nHolds x.\n\n- a: the a\n- `b`: the b: with colon\nQ: how many x?\nSQL: SELECT count(*) FROM tpch.x\n");
        assert_eq!(d.description, "Holds x.");
        assert_eq!(d.examples, vec![("how many x?".to_string(), "SELECT count(*) FROM tpch.x".to_string())]);
        assert_eq!(d.columns["a"], "the a");
        assert_eq!(d.columns["b"], "the b: with colon");
    }

    #[test]
    fn embedded_docs_cover_every_tpch_column() {
        let docs = Docs::embedded();
        for t in super::super::tpch::TABLES {
            let schema = super::super::tpch::schema(t);
            for f in schema.fields() {
                assert!(docs.column("lalo", "tpch", t, f.name()).is_some(), "{t}.{}", f.name());
            }
        }
    }
}
