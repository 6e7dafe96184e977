//! information_schema with PostgreSQL type names: DataFusion reports `Int64`, `Utf8View`,
//! `Decimal128(15, 2)`; BI tools (Power BI, Metabase, Tableau) expect `bigint`, `text`, `numeric`.
//! It also has the key views DataFusion lacks (`info_keys`).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
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
}

impl PgInformationSchema {
    pub fn new(inner: Arc<dyn SchemaProvider>, keys: Arc<super::pg_keys::KeyedPgCatalog>) -> Self {
        Self { inner, keys }
    }
}

#[async_trait]
impl SchemaProvider for PgInformationSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.extend(super::info_keys::VIEWS.iter().map(|v| v.to_string()));
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(view) = super::info_keys::KeyView::named(name, self.keys.clone()) {
            return Ok(Some(Arc::new(view)));
        }
        let t = self.inner.table(name).await?;
        match t {
            Some(t) if name.eq_ignore_ascii_case("columns") => Ok(Some(Arc::new(PgColumns { inner: t }))),
            other => Ok(other),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name) || super::info_keys::VIEWS.iter().any(|v| v.eq_ignore_ascii_case(name))
    }
}

#[derive(Debug)]
struct PgColumns {
    inner: Arc<dyn TableProvider>,
}

#[async_trait]
impl TableProvider for PgColumns {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
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
            let Some(i) = idx else {
                out.push(b);
                continue;
            };
            let mut cols: Vec<ArrayRef> = b.columns().to_vec();
            let text = datafusion::arrow::compute::cast(&cols[i], &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            let mapped: StringArray =
                (0..text.len()).map(|r| if text.is_null(r) { None } else { Some(pg_type_name(text.value(r))) }).collect();
            cols[i] = datafusion::arrow::compute::cast(&mapped, schema.field(i).data_type())?;
            out.push(RecordBatch::try_new(schema.clone(), cols)?);
        }
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
