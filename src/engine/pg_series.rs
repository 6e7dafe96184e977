//! `generate_series` in FROM answers `integer` for integer constants, as in PostgreSQL.
//!
//! PostgreSQL picks `generate_series(int4, int4)` for `generate_series(1, 3)` and the bigint form
//! only when an argument is bigint; DataFusion's table function always yields Int64, so a
//! binary-format client was told `bigint` and decoded eight bytes. The function is DataFusion's;
//! when every argument is an integer constant that fits `integer` (or NULL), its column is cast
//! to Int32 in a view over it. Timestamps and bigint arguments keep DataFusion's answer.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::{provider_as_source, ViewTable};
use datafusion::logical_expr::{cast, col, Expr, LogicalPlanBuilder};

#[derive(Debug)]
pub struct PgSeries {
    inner: Arc<dyn TableFunctionImpl>,
}

impl PgSeries {
    pub fn new(inner: Arc<dyn TableFunctionImpl>) -> Self {
        PgSeries { inner }
    }
}

/// Every argument an integer constant within int4's range or NULL, and one not NULL.
fn int4_arguments(args: &[Expr]) -> bool {
    let fits = |e: &Expr| match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), _) => i32::try_from(*v).is_ok(),
        Expr::Literal(ScalarValue::Int32(Some(_)), _) => true,
        Expr::Literal(v, _) => v.is_null(),
        _ => false,
    };
    let some = |e: &Expr| matches!(e, Expr::Literal(v, _) if !v.is_null());
    args.iter().all(fits) && args.iter().any(some)
}

impl TableFunctionImpl for PgSeries {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let int4 = int4_arguments(args.exprs());
        let table = self.inner.call_with_args(args)?;
        if !int4 {
            return Ok(table);
        }
        let schema = table.schema();
        let columns: Vec<Expr> = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Int64 => cast(col(f.name()), DataType::Int32).alias(f.name()),
                _ => col(f.name()),
            })
            .collect();
        let plan = LogicalPlanBuilder::scan("generate_series", provider_as_source(table), None)?.project(columns)?.build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

#[cfg(test)]
mod tests {
    use super::int4_arguments;
    use datafusion::logical_expr::lit;
    use datafusion::common::ScalarValue;

    #[test]
    fn integer_constants_that_fit_are_int4() {
        assert!(int4_arguments(&[lit(1i64), lit(3i64)]));
        assert!(int4_arguments(&[lit(1i64), lit(ScalarValue::Null)]));
        assert!(!int4_arguments(&[lit(1i64), lit(3_000_000_000i64)]));
        assert!(!int4_arguments(&[lit(ScalarValue::Null)]));
    }
}
