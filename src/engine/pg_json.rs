//! `json_build_object` and `json_build_array` as PostgreSQL writes them: `{"k" : v, "k2" : v2}`
//! and `[v, v2]`, numbers and booleans bare, text quoted and escaped, NULL as `null`; an odd
//! argument list or a NULL key is an error (22023, 22004), as in PostgreSQL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float32Type, Float64Type};
use datafusion::common::{exec_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

/// Which JSON value the function builds.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
pub enum Build {
    Object,
    Array,
}

/// `json_build_object(k, v, ...)` or `json_build_array(v, ...)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonBuild {
    build: Build,
    signature: Signature,
}

impl JsonBuild {
    pub fn new(build: Build) -> JsonBuild {
        JsonBuild { build, signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for JsonBuild {
    fn name(&self) -> &str {
        match self.build {
            Build::Object => "json_build_object",
            Build::Array => "json_build_array",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    // Text marked json: described as `json` (OID 114) on the wire, as PostgreSQL's are.
    fn return_field_from_args(&self, _: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(self.name(), DataType::Utf8, true).with_metadata(crate::pgtypes::json::json_metadata())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if self.build == Build::Object && args.args.len() % 2 == 1 {
            return exec_err!("argument list must have even number of elements");
        }
        let all_scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let n = if all_scalar { 1 } else { args.number_rows };
        let arrays: Vec<ArrayRef> = args.args.iter().map(|a| a.to_array(n)).collect::<Result<_>>()?;
        let mut out = StringBuilder::with_capacity(n, n * 16);
        let mut s = String::new();
        for row in 0..n {
            s.clear();
            match self.build {
                Build::Object => {
                    s.push('{');
                    for (i, pair) in arrays.chunks(2).enumerate() {
                        if pair[0].is_null(row) {
                            return exec_err!("null value not allowed for object key");
                        }
                        if i > 0 {
                            s.push_str(", ");
                        }
                        quoted(&text(&pair[0], row)?, &mut s);
                        s.push_str(" : ");
                        value(&pair[1], row, &mut s)?;
                    }
                    s.push('}');
                }
                Build::Array => {
                    s.push('[');
                    for (i, a) in arrays.iter().enumerate() {
                        if i > 0 {
                            s.push_str(", ");
                        }
                        value(a, row, &mut s)?;
                    }
                    s.push(']');
                }
            }
            out.append_value(&s);
        }
        let arr = out.finish();
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&arr, 0)?))
        } else {
            Ok(ColumnarValue::Array(Arc::new(arr)))
        }
    }
}

/// One value as PostgreSQL's `to_json` writes it.
fn value(a: &ArrayRef, row: usize, out: &mut String) -> Result<()> {
    if a.is_null(row) {
        out.push_str("null");
        return Ok(());
    }
    match a.data_type() {
        DataType::Boolean => out.push_str(if a.as_boolean().value(row) { "true" } else { "false" }),
        // Non-finite floats are not JSON numbers: PostgreSQL quotes them.
        DataType::Float64 | DataType::Float32 => {
            let v = match a.data_type() {
                DataType::Float64 => a.as_primitive::<Float64Type>().value(row),
                _ => a.as_primitive::<Float32Type>().value(row) as f64,
            };
            let mut t = String::new();
            match a.data_type() {
                DataType::Float64 => crate::pgtypes::float_text::float8(v, 1, &mut t),
                _ => crate::pgtypes::float_text::float4(v as f32, 1, &mut t),
            }
            if v.is_finite() {
                out.push_str(&t);
            } else {
                quoted(&t, out);
            }
        }
        t if t.is_integer() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) => out.push_str(&text(a, row)?),
        DataType::Null => out.push_str("null"),
        _ => quoted(&text(a, row)?, out),
    }
    Ok(())
}

/// A non-null value's text (Arrow's cast to text: decimals keep their scale, `1.50`).
fn text(a: &ArrayRef, row: usize) -> Result<String> {
    let one = datafusion::arrow::compute::cast(&a.slice(row, 1), &DataType::Utf8)?;
    Ok(one.as_string::<i32>().value(0).to_string())
}

/// A JSON string literal (PostgreSQL's escape_json: \" \\ \b \f \n \r \t, other controls \uXXXX).
fn quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
