//! `trunc` of a numeric stays numeric, as in PostgreSQL. DataFusion only truncates floats, so
//! `trunc(1.99)` became the double precision `1`: the same text but another type on the wire
//! (and a float's rounding for large values). Here a decimal is truncated toward zero in exact
//! arithmetic and keeps PostgreSQL's scale: `trunc(x)` has none, `trunc(x, n)` has `n` places
//! (`trunc(1.9, 3)` is `1.900`, `trunc(123.456, -1)` is `120`). Floats and integers keep
//! DataFusion's double precision `trunc`, which is PostgreSQL's choice for them too.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Int64Type};
use datafusion::common::{exec_err, DataFusionError, Result, ScalarValue};
use datafusion::functions::math::trunc::TruncFunc;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgTrunc {
    inner: TruncFunc,
    signature: Signature,
}

impl Default for PgTrunc {
    fn default() -> Self {
        PgTrunc { inner: TruncFunc::new(), signature: Signature::user_defined(Volatility::Immutable) }
    }
}

fn is_decimal(t: &DataType) -> bool {
    matches!(t, DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..))
}

/// Precision and scale of a decimal type.
fn decimal(t: &DataType) -> Option<(u8, i8)> {
    match t {
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => Some((*p, *s)),
        _ => None,
    }
}

impl ScalarUDFImpl for PgTrunc {
    fn name(&self) -> &str {
        "trunc"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let Some(first) = types.first() else { return exec_err!("trunc takes one or two arguments") };
        if types.len() > 2 {
            return exec_err!("trunc takes one or two arguments");
        }
        let first = match decimal(first) {
            Some((p, s)) if p <= 38 => DataType::Decimal128(p, s),
            // Wider decimals than Decimal128 go through double precision, as before.
            Some(_) => DataType::Float64,
            None if *first == DataType::Float32 => DataType::Float32,
            None => DataType::Float64,
        };
        Ok(std::iter::once(first).chain(types.iter().skip(1).map(|_| DataType::Int64)).collect())
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        datafusion::common::internal_err!("return_field_from_args should be called instead")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let input = args.arg_fields[0].data_type();
        let Some((p, s)) = decimal(input).filter(|_| is_decimal(input)) else {
            return Ok(Arc::new(Field::new(self.name(), input.clone(), true)));
        };
        let places = match args.scalar_arguments.get(1) {
            None => Some(0),
            Some(Some(v)) if !v.is_null() => Some(places_of(v)?),
            // A NULL count answers NULL; a count from a column keeps the input's scale.
            _ => None,
        };
        let scale = places.map(|n| n.clamp(0, 38) as i8).unwrap_or(s);
        let precision = (p as i32 - s as i32 + scale as i32).clamp(scale.max(1) as i32, 38) as u8;
        Ok(Arc::new(Field::new(self.name(), DataType::Decimal128(precision, scale), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let DataType::Decimal128(_, s) = *args.arg_fields[0].data_type() else {
            return self.inner.invoke_with_args(args);
        };
        let DataType::Decimal128(precision, t) = *args.return_field.data_type() else {
            return exec_err!("trunc: unexpected result type {}", args.return_field.data_type());
        };
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let n = args.number_rows;
        let values = args.args[0].to_array(n)?;
        let values = values.as_primitive::<Decimal128Type>();
        let places: Option<ArrayRef> = match args.args.get(1) {
            Some(p) => Some(cast(&p.to_array(n)?, &DataType::Int64)?),
            None => None,
        };
        let places = places.as_ref().map(|p| p.as_primitive::<Int64Type>());
        let mut out = Vec::with_capacity(values.len());
        for r in 0..values.len() {
            let place = match places {
                Some(p) if p.is_null(r) => None,
                Some(p) => Some(p.value(r)),
                None => Some(0),
            };
            out.push(match (values.is_valid(r), place) {
                (true, Some(place)) => Some(truncate(values.value(r), s, place, t)?),
                _ => None,
            });
        }
        let out: ArrayRef = Arc::new(Decimal128Array::from(out).with_precision_and_scale(precision, t)?);
        Ok(if scalar { ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?) } else { ColumnarValue::Array(out) })
    }
}

fn places_of(v: &ScalarValue) -> Result<i64> {
    match v.cast_to(&DataType::Int64)? {
        ScalarValue::Int64(Some(n)) => Ok(n),
        _ => exec_err!("trunc: the number of places must be an integer"),
    }
}

/// `v / 10^s` truncated toward zero at `place` digits after the point, at scale `t`.
fn truncate(v: i128, s: i8, place: i64, t: i8) -> Result<i128> {
    let overflow = || DataFusionError::Execution("numeric field overflow".into());
    let cut = s as i64 - place;
    let kept = if cut <= 0 {
        v
    } else if cut > 38 {
        0
    } else {
        let d = 10i128.pow(cut as u32);
        v / d * d
    };
    let shift = t as i32 - s as i32;
    if shift >= 0 {
        kept.checked_mul(10i128.pow(shift as u32)).ok_or_else(overflow)
    } else {
        Ok(kept / 10i128.pow((-shift) as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncates_toward_zero_at_postgresql_scale() {
        assert_eq!(truncate(199, 2, 0, 0).unwrap(), 1); // trunc(1.99) = 1
        assert_eq!(truncate(-199, 2, 0, 0).unwrap(), -1); // trunc(-1.99) = -1
        assert_eq!(truncate(19, 1, 3, 3).unwrap(), 1900); // trunc(1.9, 3) = 1.900
        assert_eq!(truncate(123456, 3, -1, 0).unwrap(), 120); // trunc(123.456, -1) = 120
        assert_eq!(truncate(1999, 3, 2, 2).unwrap(), 199); // trunc(1.999, 2) = 1.99
        assert_eq!(truncate(1999, 3, 1, 3).unwrap(), 1900); // places from a column: input scale
    }
}
