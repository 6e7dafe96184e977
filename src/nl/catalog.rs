//! The schema context of one caller: only the tables and columns they may read in their session's
//! database, with docs, foreign keys and sample values read through their governed path, cached
//! per (user, database, policy generation, catalog fingerprint).

use crate::nl::Host;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use parking_lot::Mutex;

use crate::error::LaloError;
use crate::nl::{ColumnInfo, Drafter, ForeignKey, SchemaContext, TableInfo};
use crate::search::TableEntry;
use crate::session::Session;

/// Text columns with at most this many distinct values give their values as samples.
pub const SAMPLE_LIMIT: usize = 50;
/// How long one sample query may take before the column is left without samples.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(3);
/// Samples are data: re-read them after this long even if nothing else changed.
const MAX_AGE: Duration = Duration::from_secs(600);
/// Most contexts kept (one per user and database in use).
const MAX_ENTRIES: usize = 256;

/// A caller's context with its drafter index, built once and shared.
#[derive(Debug)]
pub struct Built {
    pub context: SchemaContext,
    /// The drafter over the whole context (used when the schema is small enough to hand over whole).
    pub drafter: Drafter,
    /// The visible tables as search entries (for retrieval), in the session's database.
    pub entries: Vec<TableEntry>,
    /// Columns left without samples because a mask applies to the caller.
    pub masked: Vec<String>,
    pub built_in: Duration,
    built_at: Instant,
}

/// Contexts by (user, database, policy generation, catalog fingerprint).
#[derive(Debug, Default)]
pub struct ContextCache {
    entries: Mutex<HashMap<(String, String, u64, u64), Arc<Built>>>,
    /// One build at a time per key, so a burst of questions scans the data once.
    building: tokio::sync::Mutex<()>,
}

impl ContextCache {
    /// The caller's context: from the cache, or built now through their governed path.
    pub async fn get(&self, lalo: &dyn Host, session: &Session) -> Result<(Arc<Built>, bool), LaloError> {
        let entries = visible_in_database(lalo, session).await?;
        let key = (session.user.clone(), session.database.clone(), lalo.governance().version(), fingerprint(&entries));
        if let Some(hit) = self.fresh(&key) {
            return Ok((hit, true));
        }
        let _one = self.building.lock().await;
        if let Some(hit) = self.fresh(&key) {
            return Ok((hit, true));
        }
        let built = Arc::new(build(lalo, session, entries).await?);
        let mut map = self.entries.lock();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, b| b.built_at.elapsed() < MAX_AGE);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, built.clone());
        Ok((built, false))
    }

    fn fresh(&self, key: &(String, String, u64, u64)) -> Option<Arc<Built>> {
        self.entries.lock().get(key).filter(|b| b.built_at.elapsed() < MAX_AGE).cloned()
    }
}

/// The tables the caller may read in the session's database (what governance lets them list).
async fn visible_in_database(lalo: &dyn Host, session: &Session) -> Result<Vec<TableEntry>, LaloError> {
    let mut all = lalo.visible_tables(session).await?;
    all.retain(|t| t.database.eq_ignore_ascii_case(&session.database));
    Ok(all)
}

/// Names, types and docs of what the caller sees: a change upstream (REFRESH) or in the docs
/// gives another fingerprint and so another context.
fn fingerprint(entries: &[TableEntry]) -> u64 {
    let mut h = DefaultHasher::new();
    for t in entries {
        (&t.schema, &t.table, &t.description).hash(&mut h);
        for c in &t.columns {
            (&c.name, &c.data_type, &c.description).hash(&mut h);
        }
    }
    h.finish()
}

/// Build the context: columns with their types, docs, foreign keys between visible tables,
/// and samples of low-cardinality text columns read as the caller.
async fn build(lalo: &dyn Host, session: &Session, entries: Vec<TableEntry>) -> Result<Built, LaloError> {
    let began = Instant::now();
    let catalogs = lalo.engine().catalogs();
    let docs = lalo.engine().docs();
    let mut tables = Vec::with_capacity(entries.len());
    let mut masked = vec![];
    let pii = lalo.governance().pii();
    for t in &entries {
        let provider = match catalogs.catalog(&t.database).and_then(|c| c.schema(&t.schema)) {
            Some(s) => s.table(&t.table).await?,
            None => None,
        };
        let Some(provider) = provider else { continue };
        let arrow = provider.schema();
        let full = format!("{}.{}.{}", t.database, t.schema, t.table);
        let masks = lalo.masks_for(session, &full);
        let mut columns = Vec::with_capacity(t.columns.len());
        // Only the columns visibility listed: a denied column never gets here.
        for c in &t.columns {
            let data_type = arrow.field_with_name(&c.name).map(|f| f.data_type().clone()).unwrap_or(DataType::Utf8);
            let mut col = ColumnInfo::new(c.name.clone(), data_type);
            col.description = (!c.description.is_empty()).then(|| c.description.clone());
            col.pii = pii.column(&full, &c.name).is_some();
            if masks.contains_key(&c.name.to_ascii_lowercase()) {
                // A masked column's real values must not leak through samples.
                masked.push(format!("{full}.{}", c.name));
            } else if col.is_text() {
                col.samples = samples(lalo, session, t, &c.name).await;
            }
            columns.push(col);
        }
        tables.push(TableInfo {
            catalog: t.database.clone(),
            schema: t.schema.clone(),
            name: t.table.clone(),
            description: (!t.description.is_empty()).then(|| t.description.clone()),
            columns,
        });
    }
    let foreign_keys = foreign_keys(&tables, &docs.read());
    let context = SchemaContext { tables, foreign_keys };
    let drafter = Drafter::new(&context);
    Ok(Built { context, drafter, entries, masked, built_in: began.elapsed(), built_at: Instant::now() })
}

/// Declared keys (upstream FOREIGN KEY constraints) whose both ends the caller may read.
fn foreign_keys(tables: &[TableInfo], docs: &crate::engine::docs::Docs) -> Vec<ForeignKey> {
    let has = |schema: &str, table: &str, cols: &[String]| {
        tables
            .iter()
            .find(|t| t.schema.eq_ignore_ascii_case(schema) && t.name.eq_ignore_ascii_case(table))
            .is_some_and(|t| cols.iter().all(|c| t.column(c).is_some()))
    };
    let mut out = vec![];
    for t in tables {
        let Some(doc) = docs.table(&t.catalog, &t.schema, &t.name) else { continue };
        for fk in &doc.foreign_keys {
            if has(&t.schema, &t.name, &fk.columns) && has(&fk.ref_schema, &fk.ref_table, &fk.ref_columns) {
                out.push(ForeignKey {
                    from_table: t.qualified(),
                    from_columns: fk.columns.clone(),
                    to_table: format!("{}.{}", fk.ref_schema, fk.ref_table),
                    to_columns: fk.ref_columns.clone(),
                });
            }
        }
    }
    out
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Up to [`SAMPLE_LIMIT`] distinct values of one column, read through plan → govern like any
/// statement of the caller (row filters apply; a refusal or error just means no samples).
async fn samples(lalo: &dyn Host, session: &Session, t: &TableEntry, column: &str) -> Vec<String> {
    let sql = format!(
        "SELECT DISTINCT {c} FROM {d}.{s}.{t} WHERE {c} IS NOT NULL LIMIT {n}",
        c = quote(column),
        d = quote(&t.database),
        s = quote(&t.schema),
        t = quote(&t.table),
        n = SAMPLE_LIMIT + 1
    );
    let read = async {
        let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, &sql).map_err(|e| LaloError::Syntax(e.to_string()))?;
        let stmt = stmts.pop().ok_or_else(|| LaloError::Internal("empty sample statement".into()))?;
        lalo.read_internal(session, &stmt, "samples").await
    };
    let batches = match tokio::time::timeout(SAMPLE_TIMEOUT, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            tracing::debug!(table = %t.table, column, error = %e, "no samples");
            return vec![];
        }
        Err(_) => return vec![],
    };
    let mut values = vec![];
    for b in &batches {
        let col = b.column(0);
        let Ok(text) = datafusion::arrow::compute::cast(col, &DataType::Utf8) else { return vec![] };
        let Some(text) = text.as_any().downcast_ref::<datafusion::arrow::array::StringArray>() else { return vec![] };
        for i in 0..text.len() {
            if text.is_valid(i) {
                values.push(text.value(i).trim().to_string());
            }
        }
    }
    if values.len() > SAMPLE_LIMIT {
        return vec![];
    }
    values.sort();
    values.dedup();
    values
}
