//! Per-user views of the catalog: what a caller may list (tables, columns) and plan against.
//!
//! Planning sees every column of a visible table so that a statement naming a denied column is
//! refused with 42501 by governance rather than looking like a typo; listings (pg_catalog,
//! information_schema, `\d`) see only the readable columns.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use parking_lot::RwLock;

/// Answers what one caller may see. Implemented by governance per user.
pub trait Visibility: Send + Sync + std::fmt::Debug {
    fn table_visible(&self, db: &str, schema: &str, table: &str) -> bool;
    fn column_visible(&self, db: &str, schema: &str, table: &str, column: &str) -> bool;
}

/// Everything is visible (governance off, or internal use).
#[derive(Debug)]
pub struct SeeAll;

impl Visibility for SeeAll {
    fn table_visible(&self, _: &str, _: &str, _: &str) -> bool {
        true
    }
    fn column_visible(&self, _: &str, _: &str, _: &str, _: &str) -> bool {
        true
    }
}

/// Whether listings hide unreadable columns (`Listing`) or keep them for planning (`Planning`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ViewMode {
    Planning,
    Listing,
}

/// A catalog list filtered by a caller's visibility, with per-session extra schemas.
#[derive(Debug)]
pub struct ViewCatalogList {
    base: Arc<dyn CatalogProviderList>,
    vis: Arc<dyn Visibility>,
    mode: ViewMode,
    /// Schemas registered by this session only (pg_catalog, information_schema), by catalog.
    extra: Arc<RwLock<HashMap<String, HashMap<String, Arc<dyn SchemaProvider>>>>>,
    /// The one database this list shows, if only one (see [`ViewCatalogList::only`]).
    only: Option<String>,
}

impl ViewCatalogList {
    pub fn new(base: Arc<dyn CatalogProviderList>, vis: Arc<dyn Visibility>, mode: ViewMode) -> Self {
        Self { base, vis, mode, extra: Arc::new(RwLock::new(HashMap::new())), only: None }
    }

    /// Another mode over the same base, sharing the session's extra schemas.
    pub fn with_mode(&self, mode: ViewMode) -> Self {
        Self { base: self.base.clone(), vis: self.vis.clone(), mode, extra: self.extra.clone(), only: self.only.clone() }
    }

    /// The same list showing database `db` alone: a session in an upstream database lists that
    /// database's objects in pg_catalog and information_schema, as PostgreSQL's catalogs do.
    pub fn only(mut self, db: &str) -> Self {
        self.only = Some(db.to_string());
        self
    }
}

impl CatalogProviderList for ViewCatalogList {

    fn register_catalog(&self, _name: String, _catalog: Arc<dyn CatalogProvider>) -> Option<Arc<dyn CatalogProvider>> {
        // Sessions never add databases; the shared catalog is built at start.
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        match &self.only {
            Some(db) => self.base.catalog_names().into_iter().filter(|c| c == db).collect(),
            None => self.base.catalog_names(),
        }
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        if self.only.as_deref().is_some_and(|db| db != name) {
            return None;
        }
        let base = self.base.catalog(name)?;
        Some(Arc::new(ViewCatalog {
            name: name.to_string(),
            base,
            vis: self.vis.clone(),
            mode: self.mode,
            extra: self.extra.clone(),
        }))
    }
}

#[derive(Debug)]
struct ViewCatalog {
    name: String,
    base: Arc<dyn CatalogProvider>,
    vis: Arc<dyn Visibility>,
    mode: ViewMode,
    extra: Arc<RwLock<HashMap<String, HashMap<String, Arc<dyn SchemaProvider>>>>>,
}

impl CatalogProvider for ViewCatalog {

    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .base
            .schema_names()
            .into_iter()
            .filter(|s| {
                // A schema is listed when the caller can see at least one of its tables.
                self.base.schema(s).is_some_and(|sp| {
                    sp.table_names().iter().any(|t| self.vis.table_visible(&self.name, s, t))
                })
            })
            .collect();
        if let Some(extra) = self.extra.read().get(&self.name) {
            names.extend(extra.keys().cloned());
        }
        names.sort();
        names.dedup();
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some(s) = self.extra.read().get(&self.name).and_then(|m| m.get(name)) {
            return Some(s.clone());
        }
        let base = self.base.schema(name)?;
        Some(Arc::new(ViewSchema {
            db: self.name.clone(),
            schema: name.to_string(),
            base,
            vis: self.vis.clone(),
            mode: self.mode,
        }))
    }

    fn register_schema(&self, name: &str, schema: Arc<dyn SchemaProvider>) -> Result<Option<Arc<dyn SchemaProvider>>> {
        Ok(self.extra.write().entry(self.name.clone()).or_default().insert(name.to_string(), schema))
    }
}

#[derive(Debug)]
struct ViewSchema {
    db: String,
    schema: String,
    base: Arc<dyn SchemaProvider>,
    vis: Arc<dyn Visibility>,
    mode: ViewMode,
}

#[async_trait]
impl SchemaProvider for ViewSchema {

    fn table_names(&self) -> Vec<String> {
        self.base
            .table_names()
            .into_iter()
            .filter(|t| self.vis.table_visible(&self.db, &self.schema, t))
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let Some(t) = self.base.table(name).await? else { return Ok(None) };
        match self.mode {
            ViewMode::Planning => Ok(Some(t)),
            ViewMode::Listing => {
                if !self.vis.table_visible(&self.db, &self.schema, name) {
                    return Ok(None);
                }
                let full = t.schema();
                let fields: Vec<_> = full
                    .fields()
                    .iter()
                    .filter(|f| self.vis.column_visible(&self.db, &self.schema, name, f.name()))
                    .cloned()
                    .collect();
                if fields.len() == full.fields().len() {
                    return Ok(Some(t));
                }
                Ok(Some(Arc::new(ListedTable { schema: Arc::new(Schema::new(fields)), kind: t.table_type() })))
            }
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.base.table_exist(name)
    }
}

/// A table as listed to a caller who may read only some of its columns; never scanned.
#[derive(Debug)]
struct ListedTable {
    schema: SchemaRef,
    kind: TableType,
}

#[async_trait]
impl TableProvider for ListedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        self.kind
    }
    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Plan("catalog listing entries cannot be scanned".into()))
    }
}
