//! NUMERIC without a declared scale. PostgreSQL keeps each such value's own scale
//! (`12.34::numeric` prints `12.34`); DataFusion gives the type one fixed scale,
//! `Decimal128(38, 10)`, and would print `12.3400000000`. lalo sends values of that type with
//! trailing fractional zeros dropped, in text (`12.34`) and binary (NUMERIC with dscale 2).
//! A declared `numeric(p, s)` keeps its scale (TPC-H prices stay `172799.49`). `1.50::numeric`
//! prints `1.5` where PostgreSQL keeps the literal's `1.50`: the input scale is gone by then.
//! In binary, every NUMERIC goes out as numeric_send writes it (no trailing zero base-10000
//! digits: 12500000 is one digit, 1250, of weight 1).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, Schema};
use pgwire::api::results::{FieldFormat, FieldInfo};

/// DataFusion's type for NUMERIC/DECIMAL written without precision and scale.
const UNCONSTRAINED: DataType = DataType::Decimal128(38, 10);

/// Whether values of this Arrow type are NUMERIC without a declared scale.
pub fn is_unconstrained(t: &DataType) -> bool {
    *t == UNCONSTRAINED
}

const NUMERIC: &str = "numeric";

/// The metadata marking a string field as NUMERIC text already written with its display scale
/// (engine/pg_numeric: values whose scale PostgreSQL chooses per row).
pub fn text_metadata() -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([(super::PG_TYPE_KEY.to_string(), NUMERIC.to_string())])
}

fn numeric_text(f: &Field) -> bool {
    matches!(f.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
        && f.metadata().get(super::PG_TYPE_KEY).is_some_and(|v| v == NUMERIC)
}

/// The row description of one column: NUMERIC when its field is NUMERIC text.
pub fn describe(info: FieldInfo, field: &Field) -> FieldInfo {
    if !numeric_text(field) || *info.datatype() != pgwire::api::Type::TEXT {
        return info;
    }
    FieldInfo::new(info.name().to_string(), info.table_id(), info.column_id(), pgwire::api::Type::NUMERIC, info.format())
        .with_format_options(info.format_options().clone())
}

/// NUMERIC's binary form of its text (`-12.500`: dscale 3).
pub fn binary_of_text(t: &str) -> Option<Vec<u8>> {
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = frac.len() as u32;
    Some(encode_digits(negative, &format!("{int}{frac}"), scale, scale))
}

/// Replace unconstrained NUMERIC columns by their PostgreSQL form ahead of encoding: text
/// for text-format columns, NUMERIC's binary encoding for binary ones. The row description
/// still says numeric.
pub fn as_pg(batch: RecordBatch, fields: &[FieldInfo]) -> RecordBatch {
    let schema = batch.schema();
    let binary = |i: usize| fields.get(i).is_some_and(|fi| fi.format() == FieldFormat::Binary);
    let decimal = |t: &DataType| matches!(t, DataType::Decimal128(..));
    let texts = |i: usize, f: &Field| binary(i) && numeric_text(f);
    if !schema.fields().iter().enumerate().any(|(i, f)| is_unconstrained(f.data_type()) || binary(i) && decimal(f.data_type()) || texts(i, f)) {
        return batch;
    }
    let mut cols = batch.columns().to_vec();
    let mut new_fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (i, f) in schema.fields().iter().enumerate() {
        if texts(i, f) {
            let Ok(strings) = datafusion::arrow::compute::cast(&cols[i], &DataType::Utf8) else { continue };
            let strings = strings.as_string::<i32>();
            let mut b = BinaryBuilder::with_capacity(strings.len(), strings.len() * 16);
            for r in 0..strings.len() {
                match (strings.is_null(r), binary_of_text(strings.value(r))) {
                    (false, Some(bytes)) => b.append_value(bytes),
                    _ => b.append_null(),
                }
            }
            cols[i] = Arc::new(b.finish());
            new_fields[i] = new_fields[i].clone().with_data_type(DataType::Binary);
            continue;
        }
        let DataType::Decimal128(_, scale) = f.data_type() else { continue };
        let unconstrained = is_unconstrained(f.data_type());
        if !unconstrained && !binary(i) {
            continue;
        }
        let scale = (*scale).max(0) as u32;
        let values = cols[i].as_primitive::<Decimal128Type>();
        let (col, t): (ArrayRef, DataType) = if binary(i) {
            // A declared scale is shown whole; digits as numeric_send writes them (the
            // library's encoder keeps trailing zero base-10000 digits PostgreSQL drops).
            let encode = if unconstrained { binary_numeric } else { binary_numeric_fixed };
            let mut b = BinaryBuilder::with_capacity(values.len(), values.len() * 16);
            for r in 0..values.len() {
                if values.is_null(r) {
                    b.append_null();
                } else {
                    b.append_value(encode(values.value(r), scale));
                }
            }
            (Arc::new(b.finish()), DataType::Binary)
        } else {
            let mut b = StringBuilder::with_capacity(values.len(), values.len() * 8);
            for r in 0..values.len() {
                if values.is_null(r) {
                    b.append_null();
                } else {
                    b.append_value(text(values.value(r), scale));
                }
            }
            (Arc::new(b.finish()), DataType::Utf8)
        };
        cols[i] = col;
        new_fields[i] = new_fields[i].clone().with_data_type(t);
    }
    RecordBatch::try_new(Arc::new(Schema::new(new_fields)), cols).unwrap_or(batch)
}

/// The value `v / 10^scale` with trailing fractional zeros removed: (digits, scale).
fn trimmed(v: i128, mut scale: u32) -> (u128, u32) {
    let mut m = v.unsigned_abs();
    while scale > 0 && m % 10 == 0 {
        m /= 10;
        scale -= 1;
    }
    (m, scale)
}

/// PostgreSQL's text for the value: `12.34`, `-0.5`, `10`.
pub fn text(v: i128, scale: u32) -> String {
    let (m, scale) = trimmed(v, scale);
    with_point(v < 0, &m.to_string(), scale as usize)
}

/// The decimal digits of an unscaled value written with `scale` places: `-0.05`, `12`.
pub fn with_point(negative: bool, digits: &str, scale: usize) -> String {
    let sign = if negative { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = if digits.len() <= scale { format!("{}{digits}", "0".repeat(scale + 1 - digits.len())) } else { digits.to_string() };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// PostgreSQL's binary NUMERIC for the value, trailing fractional zeros dropped.
pub fn binary_numeric(v: i128, scale: u32) -> Vec<u8> {
    let (m, dscale) = trimmed(v, scale);
    encode(v < 0, m, dscale, dscale)
}

/// PostgreSQL's binary NUMERIC for `v / 10^scale` shown with all `scale` places, as a value of
/// a declared `numeric(p, s)` is.
pub fn binary_numeric_fixed(v: i128, scale: u32) -> Vec<u8> {
    encode(v < 0, v.unsigned_abs(), scale, scale)
}

/// ndigits, weight, sign, dscale, then base-10000 digits, most significant first, without
/// leading or trailing zero digits (as numeric_send writes them) for `m / 10^scale`.
fn encode(negative: bool, m: u128, scale: u32, dscale: u32) -> Vec<u8> {
    encode_digits(negative, &m.to_string(), scale, dscale)
}

/// [`encode`] for the decimal digits `text` (any length) of the unscaled value.
fn encode_digits(negative: bool, text: &str, scale: u32, dscale: u32) -> Vec<u8> {
    // Decimal digits split at the point, each side padded to whole base-10000 digits.
    let text = text.to_string();
    let scale = scale as usize;
    let padded = if text.len() <= scale { format!("{}{text}", "0".repeat(scale + 1 - text.len())) } else { text };
    let (int, frac) = padded.split_at(padded.len() - scale);
    let int = format!("{}{int}", "0".repeat((4 - int.len() % 4) % 4));
    let frac = format!("{frac}{}", "0".repeat((4 - frac.len() % 4) % 4));
    let group = |s: &str| -> Vec<i16> { s.as_bytes().chunks(4).map(|c| c.iter().fold(0i16, |a, d| a * 10 + (d - b'0') as i16)).collect() };
    let int_digits = group(&int);
    let mut weight = int_digits.len() as i32 - 1;
    let mut digits: Vec<i16> = int_digits.into_iter().chain(group(&frac)).collect();
    let leading = digits.iter().take_while(|d| **d == 0).count();
    digits.drain(..leading);
    weight -= leading as i32;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    let sign: u16 = if negative && !digits.is_empty() { 0x4000 } else { 0 };
    let mut out = Vec::with_capacity(8 + 2 * digits.len());
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&(weight as i16).to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(dscale as u16).to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_drops_trailing_zeros() {
        assert_eq!(text(123_400_000_000, 10), "12.34");
        assert_eq!(text(-5_000_000_000, 10), "-0.5");
        assert_eq!(text(100_000_000_000, 10), "10");
        assert_eq!(text(0, 10), "0");
        assert_eq!(text(1, 10), "0.0000000001");
    }

    /// (ndigits, weight, sign, dscale, digits)
    fn decode(b: &[u8]) -> (i16, i16, u16, u16, Vec<i16>) {
        let w = |i: usize| [b[i], b[i + 1]];
        let n = i16::from_be_bytes(w(0));
        let digits = (0..n as usize).map(|k| i16::from_be_bytes(w(8 + 2 * k))).collect();
        (n, i16::from_be_bytes(w(2)), u16::from_be_bytes(w(4)), u16::from_be_bytes(w(6)), digits)
    }

    #[test]
    fn binary_matches_postgres() {
        // Values as PostgreSQL's numeric_send writes them.
        assert_eq!(decode(&binary_numeric(123_400_000_000, 10)), (2, 0, 0, 2, vec![12, 3400]));
        assert_eq!(decode(&binary_numeric(-5_000_000_000, 10)), (1, -1, 0x4000, 1, vec![5000]));
        assert_eq!(decode(&binary_numeric(100_000_000_000_000, 10)), (1, 1, 0, 0, vec![1]));
        // A declared scale: 12500000 at scale 0 and 12500.000 at scale 3.
        assert_eq!(decode(&binary_numeric_fixed(12_500_000, 0)), (1, 1, 0, 0, vec![1250]));
        assert_eq!(decode(&binary_numeric_fixed(12_500_000, 3)), (2, 1, 0, 3, vec![1, 2500]));
        assert_eq!(decode(&binary_numeric_fixed(-5, 2)), (1, -1, 0x4000, 2, vec![500]));
        assert_eq!(decode(&binary_numeric_fixed(0, 2)), (0, 0, 0, 2, vec![]));
        assert_eq!(decode(&binary_numeric(0, 10)), (0, 0, 0, 0, vec![]));
        assert_eq!(decode(&binary_numeric(1, 10)), (1, -3, 0, 10, vec![100]));
        assert_eq!(decode(&binary_numeric(123_456_789_000_000, 10)), (3, 1, 0, 4, vec![1, 2345, 6789]));
        // Text with its display scale: 0.50000000000000000000 keeps dscale 20.
        assert_eq!(decode(&binary_of_text("0.50000000000000000000").unwrap()), (1, -1, 0, 20, vec![5000]));
        assert_eq!(decode(&binary_of_text("-12.500").unwrap()), (2, 0, 0x4000, 3, vec![12, 5000]));
        assert_eq!(decode(&binary_of_text("0").unwrap()), (0, 0, 0, 0, vec![]));
        // Past 38 digits too.
        let long = binary_of_text("12345678901234567890123456789012345678901.5").unwrap();
        assert_eq!(decode(&long).0, 12);
        assert_eq!(decode(&long).4[0], 1);
    }
}
