//! The retrieval corpus: one document per table, column, low-cardinality value, foreign-key join
//! path and verified question→SQL example, each with a stable id and a content hash so an update
//! rewrites (and re-embeds) only what changed.

use sha2::{Digest, Sha256};

/// What a document describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Table,
    Column,
    Value,
    Join,
    Example,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Table => "table",
            Kind::Column => "column",
            Kind::Value => "value",
            Kind::Join => "join",
            Kind::Example => "example",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "table" => Kind::Table,
            "column" => Kind::Column,
            "value" => Kind::Value,
            "join" => Kind::Join,
            "example" => Kind::Example,
            _ => return None,
        })
    }
}

/// One document. `detail` holds what the kind needs beyond its names: the value of a value
/// document, `schema.table(columns)` of a join's target, the SQL of an example.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Doc {
    pub id: String,
    pub kind: Kind,
    pub database: String,
    pub schema: String,
    pub table: String,
    /// The column (value documents: the column holding the value; joins: the referencing columns).
    pub column: String,
    pub detail: String,
    /// The searchable text (full-text and embeddings).
    pub text: String,
    #[serde(skip)]
    pub hash: String,
}

impl Doc {
    fn new(kind: Kind, key: &str, names: [&str; 4], detail: String, text: String) -> Doc {
        let [database, schema, table, column] = names;
        let id = digest(&format!("{}\u{1f}{key}", kind.as_str()));
        let hash = digest(&format!("{}\u{1f}{text}\u{1f}{detail}", kind.as_str()));
        Doc {
            id,
            kind,
            database: database.into(),
            schema: schema.into(),
            table: table.into(),
            column: column.into(),
            detail,
            text,
            hash,
        }
    }

    /// `schema.table`, as the drafters name tables.
    pub fn qualified_table(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// 128 bits of SHA-256 in hex: ids are safe inside SQL filters whatever the value holds.
fn digest(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..16])
}

/// Identifier words: `food_type` reads "food type".
fn words(name: &str) -> String {
    name.replace('_', " ")
}

/// One table's document.
pub fn table(db: &str, schema: &str, table: &str, description: &str) -> Doc {
    let text = format!("{table} ({}) table in {db}.{schema}. {description}", words(table));
    Doc::new(Kind::Table, &format!("{db}.{schema}.{table}"), [db, schema, table, ""], String::new(), text.trim().into())
}

/// One column's document.
pub fn column(db: &str, schema: &str, table: &str, column: &str, data_type: &str, description: &str) -> Doc {
    let text = format!("{column} ({}) column of {table} ({}), {data_type}. {description}", words(column), words(table));
    let key = format!("{db}.{schema}.{table}.{column}");
    Doc::new(Kind::Column, &key, [db, schema, table, column], String::new(), text.trim().into())
}

/// One sample value of a low-cardinality text column.
pub fn value(db: &str, schema: &str, table: &str, column: &str, value: &str) -> Doc {
    let text = format!("{value}: {} of {}", words(column), words(table));
    let key = format!("{db}.{schema}.{table}.{column}\u{1f}{value}");
    Doc::new(Kind::Value, &key, [db, schema, table, column], value.into(), text)
}

/// One foreign-key join path, from `schema.table(columns)` to `to_schema.to_table(to_columns)`.
pub fn join(db: &str, schema: &str, table: &str, columns: &[String], to_schema: &str, to_table: &str, to_columns: &[String]) -> Doc {
    let (cols, tcols) = (columns.join(", "), to_columns.join(", "));
    let target = format!("{to_schema}.{to_table}({tcols})");
    let text = format!("{table}.{cols} joins {to_table}.{tcols}: {} to {}", words(table), words(to_table));
    let key = format!("{db}.{schema}.{table}({cols})->{target}");
    Doc::new(Kind::Join, &key, [db, schema, table, &cols], target, text)
}

/// One verified example; `db` empty for a dialect's examples (they name their databases).
pub fn example(db: &str, question: &str, sql: &str) -> Doc {
    let key = format!("{db}\u{1f}{question}\u{1f}{sql}");
    Doc::new(Kind::Example, &key, [db, "", "", ""], sql.into(), question.trim().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_hashes_follow_content() {
        let a = column("restaurants", "public", "restaurant", "food_type", "text", "kind of food");
        let b = column("restaurants", "public", "restaurant", "food_type", "text", "cuisine served");
        assert_eq!(a.id, b.id, "same column, same id");
        assert_ne!(a.hash, b.hash, "new description, new hash");
        assert!(a.text.contains("food type"), "{}", a.text);
        let v = value("restaurants", "public", "restaurant", "food_type", "mexican");
        assert_eq!(v.text, "mexican: food type of restaurant");
        assert_ne!(v.id, value("restaurants", "public", "restaurant", "food_type", "french").id);
        assert!(v.id.chars().all(|c| c.is_ascii_hexdigit()));
        let j = join("d", "public", "location", &["restaurant_id".into()], "public", "restaurant", &["id".into()]);
        assert_eq!(j.detail, "public.restaurant(id)");
        assert_eq!(Kind::parse(j.kind.as_str()), Some(Kind::Join));
    }
}
