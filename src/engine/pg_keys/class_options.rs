//! pg_class with `reloptions` (NULL: lalo's tables have no storage options), which the
//! library's pg_class lacks and SQLAlchemy's index reflection selects.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{new_null_array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{collect, ExecutionPlan};

/// The library's pg_class plus a NULL `reloptions text[]`.
#[derive(Debug)]
pub struct ClassWithOptions {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
}

impl ClassWithOptions {
    pub fn new(inner: Arc<dyn TableProvider>) -> Self {
        let base = inner.schema();
        let schema = if base.field_with_name("reloptions").is_ok() {
            base
        } else {
            let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new("reloptions", DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))), true));
            Arc::new(Schema::new(fields))
        };
        ClassWithOptions { inner, schema }
    }
}

#[async_trait]
impl TableProvider for ClassWithOptions {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.schema.fields().len() == self.inner.schema().fields().len() {
            return self.inner.scan(state, projection, filters, limit).await;
        }
        let plan = self.inner.scan(state, None, &[], None).await?;
        let mut batches = Vec::new();
        for b in collect(plan, state.task_ctx()).await? {
            let mut cols = b.columns().to_vec();
            let Some(options) = self.schema.fields().last() else { continue };
            cols.push(new_null_array(options.data_type(), b.num_rows()));
            batches.push(RecordBatch::try_new(self.schema.clone(), cols)?);
        }
        MemTable::try_new(self.schema.clone(), vec![batches])?.scan(state, projection, filters, limit).await
    }
}
