//! `date_trunc` with PostgreSQL's result type: a DATE argument is read as `timestamptz` (as
//! PostgreSQL casts it), so `date_trunc('month', d)` prints `2018-01-01 00:00:00+00`, locally and
//! when pushed down to an upstream alike. Timestamps and times keep DataFusion's behaviour.

use std::sync::Arc;

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::common::Result;
use datafusion::functions::datetime::date_trunc::DateTruncFunc;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgDateTrunc {
    inner: DateTruncFunc,
    signature: Signature,
}

impl PgDateTrunc {
    pub fn new() -> Self {
        let inner = DateTruncFunc::new();
        // The library's signature, plus (string, date) taken as-is so it can become timestamptz.
        let mut sigs = match &inner.signature().type_signature {
            TypeSignature::OneOf(s) => s.clone(),
            other => vec![other.clone()],
        };
        for text in [DataType::Utf8, DataType::Utf8View, DataType::LargeUtf8] {
            sigs.insert(0, TypeSignature::Exact(vec![text, DataType::Date32]));
        }
        Self { inner, signature: Signature::one_of(sigs, Volatility::Immutable) }
    }
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("+00:00".into()))
}

impl ScalarUDFImpl for PgDateTrunc {
    fn name(&self) -> &str {
        "date_trunc"
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        datafusion::common::internal_err!("return_field_from_args should be called instead")
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if let Some(f) = args.arg_fields.get(1) {
            if f.data_type() == &DataType::Date32 {
                return Ok(Arc::new(Field::new(self.name(), utc(), f.is_nullable())));
            }
        }
        self.inner.return_field_from_args(args)
    }
    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.arg_fields.get(1).map(|f| f.data_type() == &DataType::Date32).unwrap_or(false) {
            let ts = match &args.args[1] {
                ColumnarValue::Array(a) => ColumnarValue::Array(cast(a, &utc())?),
                ColumnarValue::Scalar(s) => ColumnarValue::Scalar(s.cast_to(&utc())?),
            };
            args.args[1] = ts;
            let f = &args.arg_fields[1];
            args.arg_fields[1] = Arc::new(Field::new(f.name(), utc(), f.is_nullable()));
        }
        self.inner.invoke_with_args(args)
    }
}
