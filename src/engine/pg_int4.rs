//! Array functions with PostgreSQL's result type, `integer`: `array_length`, `cardinality`,
//! `array_ndims` and `array_position`. DataFusion returns them as unsigned 64-bit integers,
//! which a client is told are `bigint`: a binary-format client decodes eight bytes, JDBC hands
//! out a Long. Each wraps DataFusion's function and casts its result (counts and positions of
//! an array always fit).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};

/// One of DataFusion's array functions, answering `integer`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Int4Result {
    inner: Arc<ScalarUDF>,
}

impl Int4Result {
    pub fn new(inner: Arc<ScalarUDF>) -> Self {
        Int4Result { inner }
    }

    /// The functions this applies to.
    pub fn all() -> Vec<Int4Result> {
        use datafusion::functions_nested::{cardinality, dimension, length, position};
        [length::array_length_udf(), cardinality::cardinality_udf(), dimension::array_ndims_udf(), position::array_position_udf()]
            .into_iter()
            .map(Int4Result::new)
            .collect()
    }
}

impl ScalarUDFImpl for Int4Result {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let inner = self.inner.return_field_from_args(args)?;
        Ok(Arc::new(Field::new(self.name(), DataType::Int32, inner.is_nullable())))
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        let inner_type = self.inner.return_type(&types)?;
        args.return_field = Arc::new(Field::new(self.name(), inner_type, args.return_field.is_nullable()));
        self.inner.invoke_with_args(args)?.cast_to(&DataType::Int32, None)
    }
}
