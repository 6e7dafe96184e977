//! `real` and `double precision` as PostgreSQL writes them in text: the shortest digits that
//! read back exactly (extra_float_digits ≥ 1, the default), or `%.{6|15 + extra}g` below that;
//! fixed notation for decimal exponents in [-4, 6) (real) or [-4, 15) (double), else
//! `d.ddde+XX`; `NaN`, `Infinity`, `-Infinity`, `-0`. The encoder pgwire uses writes `1.0`,
//! `1e20` and `inf`, which clients parsing PostgreSQL's text (JDBC's `Double.parseDouble`
//! reads no `inf`) or comparing it see as different values.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Schema};
use pgwire::api::results::{FieldFormat, FieldInfo};

/// Text-format `real` and `double precision` columns become their PostgreSQL text ahead of
/// encoding; the row description still names the float type.
pub fn as_text(batch: RecordBatch, fields: &[FieldInfo]) -> RecordBatch {
    let schema = batch.schema();
    let text = |i: usize| fields.get(i).filter(|f| f.format() == FieldFormat::Text);
    let targets: Vec<(usize, i8)> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f.data_type(), DataType::Float64 | DataType::Float32))
        .filter_map(|(i, _)| text(i).map(|f| (i, f.format_options().extra_float_digits)))
        .collect();
    if targets.is_empty() {
        return batch;
    }
    let mut cols = batch.columns().to_vec();
    let mut new_fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (i, extra) in targets {
        let col = &cols[i];
        let mut b = StringBuilder::with_capacity(col.len(), col.len() * 8);
        let mut s = String::with_capacity(32);
        for r in 0..col.len() {
            if col.is_null(r) {
                b.append_null();
                continue;
            }
            s.clear();
            match col.data_type() {
                DataType::Float64 => float8(col.as_primitive::<Float64Type>().value(r), extra, &mut s),
                _ => float4(col.as_primitive::<Float32Type>().value(r), extra, &mut s),
            }
            b.append_value(&s);
        }
        cols[i] = Arc::new(b.finish());
        new_fields[i] = new_fields[i].clone().with_data_type(DataType::Utf8);
    }
    RecordBatch::try_new(Arc::new(Schema::new(new_fields)), cols).unwrap_or(batch)
}

/// Write `v` (a `double precision`) as PostgreSQL does under `extra_float_digits = extra`.
pub fn float8(v: f64, extra: i8, out: &mut String) {
    write(v, format!("{v:e}"), 15, extra, |n| format!("{v:.n$e}"), out)
}

/// Write `v` (a `real`) as PostgreSQL does under `extra_float_digits = extra`.
pub fn float4(v: f32, extra: i8, out: &mut String) {
    write(v as f64, format!("{v:e}"), 6, extra, |n| format!("{v:.n$e}"), out)
}

/// `shortest`: Rust's shortest round-trip scientific form (`1.25e-7`); `digits`: the type's
/// DIG; `rounded(n)`: the value in scientific form with `n` digits after the point.
fn write(v: f64, shortest: String, digits: i32, extra: i8, rounded: impl Fn(usize) -> String, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if extra >= 1 {
        // Shortest exact: fixed within [-4, DIG), as PostgreSQL's ryu output does.
        place(&shortest, -4, digits, out);
    } else {
        // printf's %.Pg: P significant digits, fixed when -4 <= exponent < P.
        let p = (digits + extra as i32).max(1);
        place(&rounded(p as usize - 1), -4, p, out);
    }
}

/// Lay out a scientific form `[-]d[.ddd]e[-]X` with trailing zeros dropped: fixed notation when
/// `low <= X < high`, else `d.ddde±XX` (at least two exponent digits).
fn place(sci: &str, low: i32, high: i32, out: &mut String) {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = match digits.trim_end_matches('0') {
        "" => "0",
        d => d,
    };
    if negative {
        out.push('-');
    }
    if digits == "0" {
        out.push('0');
        return;
    }
    if exp < low || exp >= high {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f8(v: f64, extra: i8) -> String {
        let mut s = String::new();
        float8(v, extra, &mut s);
        s
    }

    fn f4(v: f32, extra: i8) -> String {
        let mut s = String::new();
        float4(v, extra, &mut s);
        s
    }

    /// Each expected text is what PostgreSQL 15 answers for the value.
    #[test]
    fn doubles_read_as_postgresql_writes_them() {
        for (v, want) in [
            (1.0, "1"),
            (2.5, "2.5"),
            (1e20, "1e+20"),
            (1e-5, "1e-05"),
            (1e-7, "1e-07"),
            (0.0001, "0.0001"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (100000000000000.0, "100000000000000"),
            (1e15, "1e+15"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-1.5, "-1.5"),
            (1.0 / 3.0, "0.3333333333333333"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (-0.0, "-0"),
            (0.0, "0"),
            (1704067200.0, "1704067200"),
        ] {
            assert_eq!(f8(v, 1), want, "{v}");
        }
        // extra_float_digits = 0: 15 significant digits, %g layout.
        assert_eq!(f8(1.0 / 3.0, 0), "0.333333333333333");
        assert_eq!(f8(0.1 + 0.2, 0), "0.3");
        assert_eq!(f8(1e20, 0), "1e+20");
        assert_eq!(f8(123456.0, -10), "1.2346e+05");
    }

    #[test]
    fn reals_read_as_postgresql_writes_them() {
        for (v, want) in [(0.1f32, "0.1"), (2.5, "2.5"), (1e6, "1e+06"), (100000.0, "100000"), (1.0 / 3.0, "0.33333334")] {
            assert_eq!(f4(v, 1), want, "{v}");
        }
        assert_eq!(f4(1.0 / 3.0, 0), "0.333333");
    }
}
