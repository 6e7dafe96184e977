//! information_schema with PostgreSQL type names: DataFusion reports `Int64`, `Utf8View`,
//! `Decimal128(15, 2)`; BI tools (Power BI, Metabase, Tableau) expect `bigint`, `text`, `numeric`.
//! It also has the key views DataFusion lacks (`info_keys`).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{collect, ExecutionPlan};

/// DataFusion's information_schema, with `columns.data_type` in PostgreSQL's words.
#[derive(Debug)]
pub struct PgInformationSchema {
    inner: Arc<dyn SchemaProvider>,
    keys: Arc<super::pg_keys::KeyedPgCatalog>,
    /// The session's caller (the privilege views' grantee).
    user: String,
}

impl PgInformationSchema {
    pub fn new(inner: Arc<dyn SchemaProvider>, keys: Arc<super::pg_keys::KeyedPgCatalog>, user: &str) -> Self {
        Self { inner, keys, user: user.to_string() }
    }
}

#[async_trait]
impl SchemaProvider for PgInformationSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.extend(super::info_keys::VIEWS.iter().map(|v| v.to_string()));
        names.extend(super::info_shapes::ADDED.iter().map(|v| v.to_string()));
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(view) = super::info_keys::KeyView::named(name, self.keys.clone()) {
            return Ok(Some(Arc::new(view)));
        }
        if let Some(shape) = super::info_shapes::reshaped(name) {
            let Some(inner) = self.inner.table(shape.source).await? else { return Ok(None) };
            return Ok(Some(Arc::new(PgColumns { inner, shape, user: self.user.clone() })));
        }
        self.inner.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
            || super::info_keys::VIEWS.iter().chain(super::info_shapes::ADDED).any(|v| v.eq_ignore_ascii_case(name))
    }
}

/// One of DataFusion's views in PostgreSQL's shape (`info_shapes`), type names PostgreSQL's.
struct PgColumns {
    inner: Arc<dyn TableProvider>,
    shape: super::info_shapes::Reshaped,
    user: String,
}

impl std::fmt::Debug for PgColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgColumns({})", self.shape.source)
    }
}

#[async_trait]
impl TableProvider for PgColumns {
    fn schema(&self) -> SchemaRef {
        self.shape.schema()
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
        let plan = self.inner.scan(state, None, &[], None).await?;
        let batches = collect(plan, state.task_ctx()).await?;
        let schema = self.inner.schema();
        let idx = schema.index_of("data_type").ok();
        let mut out = Vec::with_capacity(batches.len());
        for b in batches {
            let arrow_types = super::info_shapes::arrow_types(&b)?;
            let b = match (idx, &arrow_types) {
                (Some(i), Some(text)) => {
                    let mut cols: Vec<ArrayRef> = b.columns().to_vec();
                    let mapped: StringArray =
                        (0..text.len()).map(|r| if text.is_null(r) { None } else { Some(pg_type_name(text.value(r))) }).collect();
                    cols[i] = datafusion::arrow::compute::cast(&mapped, schema.field(i).data_type())?;
                    RecordBatch::try_new(schema.clone(), cols)?
                }
                _ => b,
            };
            out.push(self.shape.batch(&b, arrow_types.as_ref(), &self.user)?);
        }
        let schema = self.shape.schema();
        MemTable::try_new(schema, vec![out])?.scan(state, projection, filters, limit).await
    }
}

/// PostgreSQL's information_schema name for an Arrow type as DataFusion prints it.
pub fn pg_type_name(arrow: &str) -> String {
    let base = arrow.split('(').next().unwrap_or(arrow).trim();
    match base {
        "Int8" | "Int16" | "UInt8" => "smallint",
        "Int32" | "UInt16" => "integer",
        "Int64" | "UInt32" | "UInt64" => "bigint",
        "Float16" | "Float32" => "real",
        "Float64" => "double precision",
        "Decimal32" | "Decimal64" | "Decimal128" | "Decimal256" => "numeric",
        "Utf8" | "Utf8View" | "LargeUtf8" => "text",
        "Boolean" => "boolean",
        "Date32" | "Date64" => "date",
        "Timestamp" if arrow.contains(',') => "timestamp with time zone",
        "Timestamp" => "timestamp without time zone",
        "Time32" | "Time64" => "time without time zone",
        "Interval" | "Duration" => "interval",
        "Binary" | "BinaryView" | "LargeBinary" | "FixedSizeBinary" => "bytea",
        "List" | "LargeList" | "FixedSizeList" | "ListView" => "ARRAY",
        "Struct" | "Map" => "USER-DEFINED",
        "Null" => "unknown",
        other => return other.to_ascii_lowercase(),
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::pg_type_name("Int64"), "bigint");
        assert_eq!(super::pg_type_name("Decimal128(15, 2)"), "numeric");
        assert_eq!(super::pg_type_name("Timestamp(ns, \"+00:00\")"), "timestamp with time zone");
        assert_eq!(super::pg_type_name("Timestamp(ns)"), "timestamp without time zone");
        assert_eq!(super::pg_type_name("Utf8View"), "text");
    }
}
