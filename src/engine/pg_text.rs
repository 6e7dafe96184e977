//! Casts to text as PostgreSQL writes the values: `1.0::float8::text` is `1` (DataFusion: `1.0`),
//! `'1e20'::float8::text` is `1e+20`, `'NaN'`/`'Infinity'` are spelled out, and a timestamp is
//! `2024-01-01 10:00:00` (DataFusion: `2024-01-01T10:00:00`). [`super::pg_exact`] puts
//! [`PgText`] in place of such casts; written out for an upstream it is the plain cast again
//! (engine/dialect.rs). Floats are written as under the default `extra_float_digits`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, Int64Type};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use crate::pgtypes::float_text::{float4, float8};
use crate::pgtypes::temporal_text::{iso_timestamp, to_micros};

/// Whether a cast from `from` to text is one [`PgText`] writes.
pub fn writes(from: &DataType) -> bool {
    matches!(from, DataType::Float64 | DataType::Float32 | DataType::Timestamp(_, None))
}

/// The text of floats and zoneless timestamps, as PostgreSQL's output functions write it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgText {
    signature: Signature,
}

impl Default for PgText {
    fn default() -> PgText {
        PgText { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for PgText {
    fn name(&self) -> &str {
        "pg_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else { return exec_err!("pg_text takes one argument") };
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let a = arg.to_array(if scalar { 1 } else { args.number_rows })?;
        let out = text(&a)?;
        if scalar {
            Ok(ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

fn text(a: &ArrayRef) -> Result<ArrayRef> {
    let mut b = StringBuilder::with_capacity(a.len(), a.len() * 12);
    let mut s = String::with_capacity(32);
    let micros = match a.data_type() {
        DataType::Timestamp(unit, None) => {
            let raw = datafusion::arrow::compute::cast(a, &DataType::Int64)?;
            let unit = *unit;
            Some((raw, unit))
        }
        _ => None,
    };
    for r in 0..a.len() {
        if a.is_null(r) {
            b.append_null();
            continue;
        }
        s.clear();
        match (a.data_type(), &micros) {
            (DataType::Float64, _) => float8(a.as_primitive::<Float64Type>().value(r), 1, &mut s),
            (DataType::Float32, _) => float4(a.as_primitive::<Float32Type>().value(r), 1, &mut s),
            (_, Some((raw, unit))) => iso_timestamp(to_micros(raw.as_primitive::<Int64Type>().value(r), unit), &mut s),
            (other, _) => return exec_err!("pg_text does not write {other}"),
        }
        b.append_value(&s);
    }
    Ok(Arc::new(b.finish()))
}

/// PostgreSQL's `round(double precision)`: half to even (rint), the rounding of a float cast to
/// an integer (`2.5::float8::int` is 2). DataFusion's `round` rounds halves away from zero.
/// Written out for an upstream it is PostgreSQL's `round(x)` (engine/dialect.rs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgRint {
    signature: Signature,
}

impl Default for PgRint {
    fn default() -> PgRint {
        PgRint { signature: Signature::uniform(1, vec![DataType::Float64, DataType::Float32], Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for PgRint {
    fn name(&self) -> &str {
        "pg_rint"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Float64))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::compute::kernels::arity::unary;
        let [arg] = args.args.as_slice() else { return exec_err!("pg_rint takes one argument") };
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let a = arg.to_array(if scalar { 1 } else { args.number_rows })?;
        let out: ArrayRef = match a.data_type() {
            DataType::Float64 => Arc::new(unary::<_, _, Float64Type>(a.as_primitive::<Float64Type>(), f64::round_ties_even)),
            DataType::Float32 => Arc::new(unary::<_, _, Float32Type>(a.as_primitive::<Float32Type>(), f32::round_ties_even)),
            other => return exec_err!("pg_rint does not round {other}"),
        };
        if scalar {
            Ok(ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}
