//! Row descriptions: a result schema as PostgreSQL describes it, per result format and the
//! session's format settings.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use pgwire::api::portal::Format;
use pgwire::api::results::FieldInfo;
use pgwire::error::PgWireResult;
use pgwire::types::format::FormatOptions;

/// The format options (DateStyle, IntervalStyle, bytea_output, extra_float_digits, TimeZone)
/// of a session's settings.
pub fn format_options_from(s: &crate::settings::Settings) -> Arc<FormatOptions> {
    let mut m = HashMap::new();
    for k in ["datestyle", "intervalstyle", "bytea_output", "extra_float_digits"] {
        if let Some(v) = s.get(k) {
            m.insert(k.to_string(), v);
        }
    }
    let mut f = FormatOptions::from_client_metadata(&m);
    if let Some(tz) = s.get("timezone") {
        f.time_zone = tz;
    }
    Arc::new(f)
}

/// The Arrow type a column travels as. PostgreSQL has no 1-byte or unsigned integers: Int8
/// goes as int2 (arrow-pg would write one byte for it in binary), unsigned types widen, and
/// u64 (row_number(), rank()) goes as bigint.
pub fn wire_type(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Int8 | DataType::UInt8 => Some(DataType::Int16),
        DataType::UInt16 => Some(DataType::Int32),
        DataType::UInt32 | DataType::UInt64 => Some(DataType::Int64),
        _ => None,
    }
}

/// The schema as sent on the wire (see [`wire_type`]).
pub fn wire_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match wire_type(f.data_type()) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// A result format as a comparable key (pgwire's `Format` has no `PartialEq`).
fn format_key(f: &Format) -> Vec<i16> {
    match f {
        Format::UnifiedText => vec![],
        Format::UnifiedBinary => vec![1],
        Format::Individual(v) => std::iter::once(2).chain(v.iter().copied()).collect(),
    }
}

/// Values worked out once per result format (descriptions of a statement's result), a few
/// formats at most.
#[derive(Debug, Default)]
pub struct ByFormat<T>(parking_lot::Mutex<Vec<(Vec<i16>, T)>>);

impl<T: Clone> ByFormat<T> {
    /// The value for `format`, made by `make` the first time.
    pub fn get_or_try_insert<E>(&self, format: &Format, make: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let key = format_key(format);
        if let Some((_, v)) = self.0.lock().iter().find(|(k, _)| *k == key) {
            return Ok(v.clone());
        }
        let v = make()?;
        let mut known = self.0.lock();
        if known.len() < 4 {
            known.push((key, v.clone()));
        }
        Ok(v)
    }
}

/// Row descriptions for a result schema in the requested format.
pub fn fields(schema: &SchemaRef, format: &Format, opts: Arc<FormatOptions>) -> PgWireResult<Arc<Vec<FieldInfo>>> {
    Ok(Arc::new(super::pg_fields(&wire_schema(schema), format, Some(opts))?))
}
