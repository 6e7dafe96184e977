//! What the index is built from: every table of every database (the gateway's own view, not a
//! caller's: callers' hits are filtered later), its docs, declared keys and examples, the dialect
//! examples, and the distinct values of low-cardinality text columns. Values are read once per
//! database generation: a docs edit re-reads none, a `REFRESH UPSTREAM` re-reads that database's.

use crate::nl::Host;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use crate::engine::views::SeeAll;
use crate::nl::catalog::SAMPLE_LIMIT;
use crate::nl::index::documents::{self, Doc};

/// How long one value query may take before the column is indexed without values.
const VALUE_TIMEOUT: Duration = Duration::from_secs(3);
/// Log progress every this many tables read.
const PROGRESS_EVERY: usize = 50;

/// Values per (schema, table, column) of one database, and the generation they were read at.
type DbValues = (u64, HashMap<(String, String, String), Vec<String>>);

/// Values read so far, by database.
#[derive(Debug, Default)]
pub struct ValueCache {
    by_db: HashMap<String, DbValues>,
}

/// The generation of a database's data: an upstream's refresh counter; embedded data is fixed.
fn generation(lalo: &dyn Host, db: &str) -> u64 {
    lalo.engine().upstreams().get(db).map(|u| u.generation()).unwrap_or(0)
}

/// Every document of the catalog as it is now.
pub async fn collect(lalo: &dyn Host, cache: &mut ValueCache) -> Vec<Doc> {
    let mut out = vec![];
    let catalogs = lalo.engine().catalogs();
    let docs = lalo.engine().docs();
    let mut dbs = catalogs.catalog_names();
    dbs.sort();
    // Values are embedded (by a remote model when `embeddings_base_url` is set): personal data
    // stays out unless `prompt_samples = "all"`, as it stays out of prompts.
    let pii = lalo.governance().pii();
    let all = lalo.config().planner.prompt_samples.trim().eq_ignore_ascii_case("all");
    let keep = |full: &str, col: &str, v: &str| {
        all || (pii.column(full, col).is_none() && crate::governance::pii::detect::value_kind(v).is_none())
    };
    let mut tables_read = 0usize;
    for db in dbs {
        let Some(cat) = catalogs.catalog(&db) else { continue };
        let gen = generation(lalo, &db);
        let stale = cache.by_db.get(&db).is_none_or(|(g, _)| *g != gen);
        let ctx = if stale { internal_context(lalo, &db) } else { None };
        let mut fresh: HashMap<(String, String, String), Vec<String>> = HashMap::new();
        let mut schemas = cat.schema_names();
        schemas.sort();
        for schema in schemas {
            if matches!(schema.as_str(), "pg_catalog" | "information_schema") {
                continue;
            }
            let Some(sp) = cat.schema(&schema) else { continue };
            let mut names = sp.table_names();
            names.sort();
            for table in names {
                let Ok(Some(provider)) = sp.table(&table).await else { continue };
                let doc = docs.read().table(&db, &schema, &table).cloned().unwrap_or_default();
                out.push(documents::table(&db, &schema, &table, &doc.description));
                for f in provider.schema().fields() {
                    let col = f.name();
                    let desc = doc.columns.get(&col.to_ascii_lowercase()).map(String::as_str).unwrap_or("");
                    let ty = crate::engine::info_schema::pg_type_name(&f.data_type().to_string());
                    out.push(documents::column(&db, &schema, &table, col, &ty, desc));
                    if !matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
                        continue;
                    }
                    let key = (schema.clone(), table.clone(), col.clone());
                    let values = match (&ctx, cache.by_db.get(&db)) {
                        (Some(ctx), _) => read_values(ctx, &db, &schema, &table, col).await,
                        (None, Some((_, cached))) => cached.get(&key).cloned().unwrap_or_default(),
                        (None, None) => vec![],
                    };
                    let full = format!("{db}.{schema}.{table}");
                    for v in values.iter().filter(|v| keep(&full, col, v)) {
                        out.push(documents::value(&db, &schema, &table, col, v));
                    }
                    fresh.insert(key, values);
                }
                for fk in &doc.foreign_keys {
                    out.push(documents::join(&db, &schema, &table, &fk.columns, &fk.ref_schema, &fk.ref_table, &fk.ref_columns));
                }
                for (q, sql) in &doc.examples {
                    out.push(documents::example(&db, q, sql));
                }
                tables_read += 1;
                if stale && tables_read % PROGRESS_EVERY == 0 {
                    tracing::info!("retrieval index: read {tables_read} tables");
                }
            }
        }
        if stale {
            cache.by_db.insert(db.clone(), (gen, fresh));
        }
    }
    for e in dialect_examples(lalo) {
        out.push(documents::example("", &e.question, &e.sql));
    }
    // One document per id (a value repeated after trimming, say).
    let mut seen = std::collections::HashSet::new();
    out.retain(|d| seen.insert(d.id.clone()));
    out
}

/// The verified examples of every dialect in use (PostgreSQL's always: the embedded database
/// drafts with it).
fn dialect_examples(lalo: &dyn Host) -> Vec<crate::engine::dialect::Example> {
    let dir = lalo.config().resolve(std::path::Path::new("dialects"));
    let mut names: Vec<String> = lalo.engine().upstreams().iter().map(|u| u.profile.name.clone()).collect();
    names.push("postgres".into());
    names.sort();
    names.dedup();
    let mut out = vec![];
    for n in names {
        match crate::engine::dialect::DialectProfile::load(&dir, &n) {
            Ok(p) => out.extend(p.examples),
            Err(e) => tracing::warn!(dialect = %n, error = %e, "retrieval index: dialect examples skipped"),
        }
    }
    out
}

/// A context that reads as lalo itself, for indexing only: what it reads reaches a caller only
/// through the per-caller filter (entitle.rs), which admits a value only if the caller's own
/// governed samples hold it.
fn internal_context(lalo: &dyn Host, db: &str) -> Option<SessionContext> {
    let settings = Arc::new(parking_lot::RwLock::new(crate::settings::Settings::default()));
    match lalo.engine().session_context(db, "lalo", Arc::new(SeeAll), settings) {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            tracing::warn!(database = %db, error = %e, "retrieval index: no values for this database");
            None
        }
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Up to [`SAMPLE_LIMIT`] distinct values, or none when the column holds more (not a category).
async fn read_values(ctx: &SessionContext, db: &str, schema: &str, table: &str, column: &str) -> Vec<String> {
    let sql = format!(
        "SELECT DISTINCT {c} FROM {d}.{s}.{t} WHERE {c} IS NOT NULL LIMIT {n}",
        c = quote(column),
        d = quote(db),
        s = quote(schema),
        t = quote(table),
        n = SAMPLE_LIMIT + 1
    );
    let read = async { ctx.sql(&sql).await?.collect().await };
    let batches = match tokio::time::timeout(VALUE_TIMEOUT, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            tracing::debug!(table, column, error = %e, "retrieval index: no values");
            return vec![];
        }
        Err(_) => return vec![],
    };
    let mut values = vec![];
    for b in &batches {
        let Ok(text) = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8) else { return vec![] };
        let Some(text) = text.as_any().downcast_ref::<StringArray>() else { return vec![] };
        for i in 0..text.len() {
            if text.is_valid(i) {
                let v = text.value(i).trim();
                if !v.is_empty() {
                    values.push(v.to_string());
                }
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
