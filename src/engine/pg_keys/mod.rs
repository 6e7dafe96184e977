//! `pg_constraint` and `pg_index` for lalo's tables: their declared primary and foreign keys
//! ([`super::keys`]) as PostgreSQL lists them, so ORMs (SQLAlchemy's reflection, pgJDBC's
//! `getPrimaryKeys`) and psql find them.
//!
//! datafusion-pg-catalog serves both tables as a dump of PostgreSQL's own system catalog, whose
//! rows name system tables lalo's pg_class does not have, with `indkey`, `conkey` and friends
//! as text. lalo serves them instead: one row per key, the column lists as `int2vector`/`int2[]`
//! ([`rows`]), and `pg_get_constraintdef`/`pg_get_indexdef` answering for them ([`defs`]). pg_class
//! assigns table OIDs as it lists them, so both tables are built when scanned, from a fresh
//! listing of pg_namespace and pg_class. pg_class gains `reloptions` ([`class_options`]).

mod class_options;
mod defs;
mod named;
mod rows;
mod settings;
mod users;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Int32Type, SchemaRef};
use datafusion::catalog::{CatalogProviderList, SchemaProvider, Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{collect, ExecutionPlan};
use parking_lot::RwLock;

pub use defs::{register, DefMaps, Defs};
pub use named::NamedKey;

use super::docs::Docs;
use super::keys;

/// A table lalo knows by name and OID, with its columns' attnums.
#[derive(Debug, Clone)]
struct Relation {
    oid: i32,
    namespace: i32,
    schema: String,
    name: String,
    /// Lower-cased column name → attnum (1-based, as pg_attribute numbers them).
    columns: HashMap<String, i16>,
}

/// pg_catalog with lalo's pg_constraint and pg_index.
#[derive(Debug)]
pub struct KeyedPgCatalog {
    inner: Arc<dyn SchemaProvider>,
    docs: Arc<RwLock<Docs>>,
    listing: Arc<dyn CatalogProviderList>,
    defs: Defs,
    /// The session's settings, for pg_settings.
    settings: Arc<RwLock<crate::settings::Settings>>,
}

impl KeyedPgCatalog {
    pub fn new(
        inner: Arc<dyn SchemaProvider>,
        docs: Arc<RwLock<Docs>>,
        listing: Arc<dyn CatalogProviderList>,
        defs: Defs,
        settings: Arc<RwLock<crate::settings::Settings>>,
    ) -> Self {
        KeyedPgCatalog { inner, docs, listing, defs, settings }
    }

    async fn collect_table(&self, name: &str, state: &dyn Session) -> Result<Vec<RecordBatch>> {
        let Some(t) = self.inner.table(name).await? else { return Ok(vec![]) };
        let plan = t.scan(state, None, &[], None).await?;
        collect(plan, state.task_ctx()).await
    }

    /// Every listed table with its OID, keyed by (database, schema, table).
    async fn relations(&self, state: &dyn Session) -> Result<HashMap<(String, String, String), Relation>> {
        let namespaces = self.namespaces(state).await?;
        let mut out = HashMap::new();
        for b in self.collect_table("pg_class", state).await? {
            let (Some(oid), Some(nsp), Some(rel)) = (int_col(&b, "oid"), int_col(&b, "relnamespace"), b.column_by_name("relname"))
            else {
                continue;
            };
            let rel = datafusion::arrow::compute::cast(rel, &DataType::Utf8)?;
            let rel = rel.as_string::<i32>();
            for i in 0..b.num_rows() {
                let Some((db, schema)) = namespaces.get(&nsp.value(i)) else { continue };
                let name = rel.value(i).to_string();
                let Some(provider) = self.listing.catalog(db).and_then(|c| c.schema(schema)) else { continue };
                let Some(table) = provider.table(&name).await? else { continue };
                let columns = table
                    .schema()
                    .fields()
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (f.name().to_ascii_lowercase(), i as i16 + 1))
                    .collect();
                let rel = Relation { oid: oid.value(i), namespace: nsp.value(i), schema: schema.clone(), name: name.clone(), columns };
                out.insert((db.clone(), schema.clone(), name), rel);
            }
        }
        Ok(out)
    }

    /// Namespace OID → (database, schema). pg_namespace lists the schemas of every database in
    /// the listing's order without naming the database, so lalo walks the same listing beside
    /// it; rows that do not line up are left out rather than guessed.
    async fn namespaces(&self, state: &dyn Session) -> Result<HashMap<i32, (String, String)>> {
        let mut listed = Vec::new();
        for db in self.listing.catalog_names() {
            if let Some(c) = self.listing.catalog(&db) {
                listed.extend(c.schema_names().into_iter().map(|s| (db.clone(), s)));
            }
        }
        let mut rows = Vec::new();
        for b in self.collect_table("pg_namespace", state).await? {
            let (Some(oid), Some(name)) = (int_col(&b, "oid"), b.column_by_name("nspname")) else { continue };
            let name = datafusion::arrow::compute::cast(name, &DataType::Utf8)?;
            let name = name.as_string::<i32>();
            rows.extend((0..b.num_rows()).map(|i| (oid.value(i), name.value(i).to_string())));
        }
        Ok(rows
            .into_iter()
            .zip(listed)
            .filter(|((_, nsp), (_, schema))| nsp == schema)
            .map(|((oid, _), named)| (oid, named))
            .collect())
    }

    /// The key rows of every listed table.
    async fn keys(&self, state: &dyn Session) -> Result<Vec<rows::Key>> {
        let relations = self.relations(state).await?;
        let docs = self.docs.read().clone();
        let mut out = Vec::new();
        let mut sorted: Vec<_> = relations.iter().collect();
        sorted.sort_by_key(|(_, r)| r.oid);
        for ((db, schema, table), rel) in sorted {
            let declared = keys::declared(&docs, db, schema, table);
            let pk_index = rows::index_oid(rel.oid);
            if let Some(cols) = attnums(rel, &declared.primary_key) {
                out.push(rows::Key::primary(rel, cols, pk_index, &declared.primary_key));
            }
            for (n, fk) in declared.foreign_keys.iter().enumerate() {
                let target = relations.get(&(db.clone(), fk.ref_schema.to_ascii_lowercase(), fk.ref_table.to_ascii_lowercase()))
                    .or_else(|| relations.get(&(db.clone(), fk.ref_schema.clone(), fk.ref_table.clone())));
                let Some(target) = target else { continue };
                let (Some(cols), Some(ref_cols)) = (attnums(rel, &fk.columns), attnums(target, &fk.ref_columns)) else {
                    continue;
                };
                out.push(rows::Key::foreign(rel, cols, target, ref_cols, n, &fk.columns, &fk.ref_columns));
            }
        }
        Ok(out)
    }
}

/// The attnums of `names` in `rel`; None when the list is empty or a column is not listed
/// (hidden from the caller), so no partial key is shown.
fn attnums(rel: &Relation, names: &[String]) -> Option<Vec<i16>> {
    if names.is_empty() {
        return None;
    }
    names.iter().map(|n| rel.columns.get(&n.to_ascii_lowercase()).copied()).collect()
}

fn int_col<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a datafusion::arrow::array::PrimitiveArray<Int32Type>> {
    let c = b.column_by_name(name)?;
    if c.data_type() == &DataType::Int32 { Some(c.as_primitive::<Int32Type>()) } else { None }
}

#[async_trait]
impl SchemaProvider for KeyedPgCatalog {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.push("pg_user".into());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let kind = match name.to_ascii_lowercase().as_str() {
            "pg_user" => return users::view(self.inner.as_ref()).await,
            "pg_settings" => return settings::table(&self.settings.read()).map(Some),
            "pg_constraint" => rows::Kind::Constraint,
            "pg_index" => rows::Kind::Index,
            "pg_class" => {
                let class = self.inner.table(name).await?;
                return Ok(class.map(|c| Arc::new(class_options::ClassWithOptions::new(c)) as Arc<dyn TableProvider>));
            }
            _ => return self.inner.table(name).await,
        };
        let base = self.inner.table(name).await?.map(|t| t.schema());
        let schema = rows::schema(kind, base.as_deref());
        Ok(Some(Arc::new(KeyTable { kind, schema, owner: Arc::new(self.shallow()) })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name) || name.eq_ignore_ascii_case("pg_user")
    }
}

impl KeyedPgCatalog {
    fn shallow(&self) -> KeyedPgCatalog {
        KeyedPgCatalog {
            inner: self.inner.clone(),
            docs: self.docs.clone(),
            listing: self.listing.clone(),
            defs: self.defs.clone(),
            settings: self.settings.clone(),
        }
    }
}

/// pg_constraint or pg_index, built from the keys when scanned.
#[derive(Debug)]
struct KeyTable {
    kind: rows::Kind,
    schema: SchemaRef,
    owner: Arc<KeyedPgCatalog>,
}

#[async_trait]
impl TableProvider for KeyTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let keys = self.owner.keys(state).await?;
        // pg_get_constraintdef and pg_get_indexdef read the definitions of the rows scanned.
        {
            let mut defs = self.owner.defs.write();
            defs.constraints = keys.iter().map(|k| (k.oid, k.definition.clone())).collect();
            defs.indexes = keys.iter().filter_map(|k| k.index.clone().map(|d| (k.indid, d))).collect();
        }
        let batch = rows::batch(self.kind, &self.schema, &keys)?;
        MemTable::try_new(self.schema.clone(), vec![vec![batch]])?.scan(state, projection, filters, limit).await
    }
}
