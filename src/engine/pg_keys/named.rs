//! The keys by name, for information_schema's key views (`engine::info_keys`): the same keys,
//! under the same conditions (every column listed for the caller), as pg_constraint shows.

use datafusion::catalog::Session;
use datafusion::error::Result;

use super::{attnums, keys, KeyedPgCatalog};

/// A primary or foreign key of one table, by names.
#[derive(Debug, Clone)]
pub struct NamedKey {
    pub database: String,
    pub schema: String,
    pub table: String,
    /// As pg_constraint names it: `<table>_pkey`, `<table>_<columns>_fkey`.
    pub name: String,
    pub columns: Vec<String>,
    /// A foreign key's target: (schema, table, columns, the name of the target's primary key
    /// when these columns are it).
    pub references: Option<(String, String, Vec<String>, Option<String>)>,
}

impl KeyedPgCatalog {
    /// Every listed table's keys, ordered by table and key.
    pub async fn named_keys(&self, state: &dyn Session) -> Result<Vec<NamedKey>> {
        let relations = self.relations(state).await?;
        let docs = self.docs.read().clone();
        let mut sorted: Vec<_> = relations.iter().collect();
        sorted.sort_by_key(|(_, r)| r.oid);
        let mut out = Vec::new();
        for ((db, schema, table), rel) in sorted {
            let declared = keys::declared(&docs, db, schema, table);
            if attnums(rel, &declared.primary_key).is_some() {
                out.push(NamedKey {
                    database: db.clone(),
                    schema: schema.clone(),
                    table: table.clone(),
                    name: format!("{table}_pkey"),
                    columns: declared.primary_key.clone(),
                    references: None,
                });
            }
            for fk in &declared.foreign_keys {
                let key = (db.clone(), fk.ref_schema.to_ascii_lowercase(), fk.ref_table.to_ascii_lowercase());
                let found = relations.get(&key).map(|t| (key.clone(), t)).or_else(|| {
                    let exact = (db.clone(), fk.ref_schema.clone(), fk.ref_table.clone());
                    relations.get(&exact).map(|t| (exact.clone(), t))
                });
                let Some(((_, ref_schema, ref_table), target)) = found else { continue };
                if attnums(rel, &fk.columns).is_none() || attnums(target, &fk.ref_columns).is_none() {
                    continue;
                }
                let target_pk = keys::declared(&docs, db, &ref_schema, &ref_table).primary_key;
                let unique = (!target_pk.is_empty() && target_pk.iter().map(|c| c.to_ascii_lowercase()).eq(fk.ref_columns.iter().map(|c| c.to_ascii_lowercase())))
                    .then(|| format!("{ref_table}_pkey"));
                out.push(NamedKey {
                    database: db.clone(),
                    schema: schema.clone(),
                    table: table.clone(),
                    name: format!("{}_{}_fkey", table, fk.columns.join("_")),
                    columns: fk.columns.clone(),
                    references: Some((ref_schema, ref_table, fk.ref_columns.clone(), unique)),
                });
            }
        }
        Ok(out)
    }
}
