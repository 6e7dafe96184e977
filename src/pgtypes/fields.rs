//! Row descriptions: a result schema as PostgreSQL describes it, per result format and the
//! session's format settings.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::api::Type;
use pgwire::error::PgWireResult;
use pgwire::types::format::FormatOptions;

/// How a session's values are written as text (DateStyle, IntervalStyle, bytea_output,
/// extra_float_digits, TimeZone), worked out once per settings epoch. Opaque above this
/// module: only the encoders read it.
#[derive(Debug, Clone)]
pub struct TextFormat(Arc<FormatOptions>);

impl TextFormat {
    /// The text format a session's settings ask for.
    pub fn from_settings(s: &crate::settings::Settings) -> TextFormat {
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
        TextFormat(Arc::new(f))
    }

    /// The encoder's options.
    pub fn options(&self) -> Arc<FormatOptions> {
        self.0.clone()
    }

    /// The session's TimeZone setting.
    pub fn time_zone(&self) -> &str {
        &self.0.time_zone
    }
}

/// One result column as PostgreSQL describes it (a RowDescription entry, without the format).
#[derive(Debug, Clone)]
pub struct WireField {
    pub name: String,
    pub type_oid: u32,
    pub type_size: i16,
    pub type_modifier: i32,
}

/// PostgreSQL's result or parameter format codes (as in Bind: none = all text, one = all
/// columns, else one per column) of a pgwire format.
pub fn codes_of(format: &Format) -> Vec<i16> {
    match format {
        Format::UnifiedText => vec![],
        Format::UnifiedBinary => vec![1],
        Format::Individual(v) => v.clone(),
    }
}

/// The pgwire format of PostgreSQL's format codes.
pub fn format_of(codes: &[i16]) -> Format {
    match codes {
        [] => Format::UnifiedText,
        [1] => Format::UnifiedBinary,
        [0] => Format::UnifiedText,
        many => Format::Individual(many.to_vec()),
    }
}

/// The client's name for a type PostgreSQL names by OID (types lalo does not know keep their OID).
pub fn pg_type(oid: u32) -> Type {
    Type::from_oid(oid).unwrap_or_else(|| Type::new(format!("oid_{oid}"), oid, tokio_postgres::types::Kind::Simple, "public".into()))
}

/// The description of columns described as [`WireField`]s, in the formats `codes` ask for.
pub fn field_infos(fields: &[WireField], codes: &[i16]) -> Vec<FieldInfo> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let code = match codes {
                [] => 0,
                [one] => *one,
                many => many.get(i).copied().unwrap_or(0),
            };
            let format = if code == 1 { FieldFormat::Binary } else { FieldFormat::Text };
            FieldInfo::new(f.name.clone(), None, None, pg_type(f.type_oid), format)
                .with_type_size(f.type_size)
                .with_type_modifier(f.type_modifier)
        })
        .collect()
}

/// How lalo describes a result schema's columns when it encodes them itself, in the formats
/// `codes` ask for; `None` when a column has no PostgreSQL type.
pub fn wire_fields(schema: &SchemaRef, codes: &[i16], text: &TextFormat) -> Option<Vec<WireField>> {
    let infos = fields(schema, &format_of(codes), text.options()).ok()?;
    Some(
        infos
            .iter()
            .map(|i| WireField {
                name: i.name().to_string(),
                type_oid: i.datatype().oid(),
                type_size: i.type_size(),
                type_modifier: i.type_modifier(),
            })
            .collect(),
    )
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

/// Values worked out once per result format (descriptions of a statement's result), a few
/// formats at most.
#[derive(Debug, Default)]
pub struct ByFormat<T>(parking_lot::Mutex<Vec<(Vec<i16>, T)>>);

impl<T: Clone> ByFormat<T> {
    /// The value for the result format `codes`, made by `make` the first time.
    pub fn get_or_try_insert<E>(&self, codes: &[i16], make: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        if let Some((_, v)) = self.0.lock().iter().find(|(k, _)| k.as_slice() == codes) {
            return Ok(v.clone());
        }
        let v = make()?;
        let mut known = self.0.lock();
        if known.len() < 4 {
            known.push((codes.to_vec(), v.clone()));
        }
        Ok(v)
    }
}

/// Row descriptions for a result schema in the requested format.
pub fn fields(schema: &SchemaRef, format: &Format, opts: Arc<FormatOptions>) -> PgWireResult<Arc<Vec<FieldInfo>>> {
    Ok(Arc::new(super::pg_fields(&wire_schema(schema), format, Some(opts))?))
}
