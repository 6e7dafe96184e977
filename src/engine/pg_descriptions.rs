//! Table and column descriptions in pg_catalog: `pg_description`, `obj_description` and
//! `col_description` answer from catalog docs, so `\dt+` and `\d+` show them.
//!
//! pg_catalog assigns OIDs lazily while it lists pg_class, so the OID → description map is
//! rebuilt whenever pg_class or pg_description is scanned, before any row reaches a function.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::catalog::{CatalogProviderList, SchemaProvider, Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{collect, ExecutionPlan};
use parking_lot::RwLock;

use super::docs::Docs;

/// (object oid, sub-id: 0 for the table, attnum for a column) → description.
pub type DescriptionMap = Arc<RwLock<HashMap<(i32, i32), String>>>;

/// pg_catalog with descriptions from the docs of database `db`.
#[derive(Debug)]
pub struct DescribedPgCatalog {
    inner: Arc<dyn SchemaProvider>,
    docs: Arc<RwLock<Docs>>,
    listing: Arc<dyn CatalogProviderList>,
    db: String,
    map: DescriptionMap,
}

impl DescribedPgCatalog {
    pub fn new(
        inner: Arc<dyn SchemaProvider>,
        docs: Arc<RwLock<Docs>>,
        listing: Arc<dyn CatalogProviderList>,
        db: &str,
        map: DescriptionMap,
    ) -> Self {
        Self { inner, docs, listing, db: db.to_string(), map }
    }

    /// Re-read pg_class/pg_namespace and rebuild the description map.
    async fn refresh(&self, state: &dyn Session) -> Result<()> {
        let ns = self.collect_table("pg_namespace", state).await?;
        let classes = self.collect_table("pg_class", state).await?;
        let mut ns_names: HashMap<i32, String> = HashMap::new();
        for b in &ns {
            let (Some(oid), Some(name)) = (int_col(b, "oid"), b.column_by_name("nspname")) else { continue };
            let name = datafusion::arrow::compute::cast(name, &DataType::Utf8)?;
            let name = name.as_string::<i32>();
            for i in 0..b.num_rows() {
                ns_names.insert(oid.value(i), name.value(i).to_string());
            }
        }
        let mut map = HashMap::new();
        let docs = self.docs.read().clone();
        for b in &classes {
            let (Some(oid), Some(nsp), Some(rel)) =
                (int_col(b, "oid"), int_col(b, "relnamespace"), b.column_by_name("relname"))
            else {
                continue;
            };
            let rel = datafusion::arrow::compute::cast(rel, &DataType::Utf8)?;
            let rel = rel.as_string::<i32>();
            for i in 0..b.num_rows() {
                let Some(schema) = ns_names.get(&nsp.value(i)) else { continue };
                let table = rel.value(i);
                let Some(doc) = docs.table(&self.db, schema, table) else { continue };
                let oid = oid.value(i);
                if !doc.description.is_empty() {
                    map.insert((oid, 0), doc.description.clone());
                }
                let provider = self
                    .listing
                    .catalog(&self.db)
                    .and_then(|c| c.schema(schema));
                let Some(provider) = provider else { continue };
                let Some(t) = provider.table(table).await? else { continue };
                for (idx, f) in t.schema().fields().iter().enumerate() {
                    if let Some(d) = doc.columns.get(&f.name().to_ascii_lowercase()) {
                        map.insert((oid, idx as i32 + 1), d.clone());
                    }
                }
            }
        }
        *self.map.write() = map;
        Ok(())
    }

    async fn collect_table(&self, name: &str, state: &dyn Session) -> Result<Vec<RecordBatch>> {
        let Some(t) = self.inner.table(name).await? else { return Ok(vec![]) };
        let plan = t.scan(state, None, &[], None).await?;
        collect(plan, state.task_ctx()).await
    }

    fn description_batch(&self) -> Result<RecordBatch> {
        let map = self.map.read();
        let mut rows: Vec<_> = map.iter().collect();
        rows.sort();
        let objoid = Int32Array::from(rows.iter().map(|((o, _), _)| *o).collect::<Vec<_>>());
        let classoid = Int32Array::from(vec![1259; rows.len()]);
        let objsubid = Int32Array::from(rows.iter().map(|((_, s), _)| *s).collect::<Vec<_>>());
        let desc = StringArray::from(rows.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>());
        Ok(RecordBatch::try_new(
            description_schema(),
            vec![Arc::new(objoid), Arc::new(classoid), Arc::new(objsubid), Arc::new(desc)],
        )?)
    }
}

fn description_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("objoid", DataType::Int32, false),
        Field::new("classoid", DataType::Int32, false),
        Field::new("objsubid", DataType::Int32, false),
        Field::new("description", DataType::Utf8, false),
    ]))
}

fn int_col<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a datafusion::arrow::array::PrimitiveArray<Int32Type>> {
    let c = b.column_by_name(name)?;
    if c.data_type() == &DataType::Int32 { Some(c.as_primitive::<Int32Type>()) } else { None }
}

#[async_trait]
impl SchemaProvider for DescribedPgCatalog {

    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match name.to_ascii_lowercase().as_str() {
            "pg_class" | "pg_description" => Ok(Some(Arc::new(Refreshing {
                name: name.to_ascii_lowercase(),
                class: self.inner.table("pg_class").await?,
                owner: Arc::new(self.clone_shallow()),
            }))),
            _ => self.inner.table(name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

impl DescribedPgCatalog {
    fn clone_shallow(&self) -> DescribedPgCatalog {
        DescribedPgCatalog {
            inner: self.inner.clone(),
            docs: self.docs.clone(),
            listing: self.listing.clone(),
            db: self.db.clone(),
            map: self.map.clone(),
        }
    }
}

/// pg_class or pg_description: refreshes the description map when scanned.
#[derive(Debug)]
struct Refreshing {
    name: String,
    class: Option<Arc<dyn TableProvider>>,
    owner: Arc<DescribedPgCatalog>,
}

#[async_trait]
impl TableProvider for Refreshing {

    fn schema(&self) -> SchemaRef {
        if self.name == "pg_description" {
            return description_schema();
        }
        self.class.as_ref().map(|t| t.schema()).unwrap_or_else(description_schema)
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
        self.owner.refresh(state).await?;
        if self.name == "pg_description" {
            let batch = self.owner.description_batch()?;
            let mem = MemTable::try_new(description_schema(), vec![vec![batch]])?;
            return mem.scan(state, projection, filters, limit).await;
        }
        match &self.class {
            Some(t) => t.scan(state, projection, filters, limit).await,
            None => MemTable::try_new(description_schema(), vec![vec![]])?.scan(state, projection, filters, limit).await,
        }
    }
}

/// Look up a description for `obj_description` / `col_description`.
pub fn lookup(map: &DescriptionMap, oid: i32, sub: i32) -> Option<String> {
    map.read().get(&(oid, sub)).cloned()
}
