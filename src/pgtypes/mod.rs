//! PostgreSQL types that Arrow types alone do not tell apart, carried to the row description
//! and the encoded values: declared VARCHAR ([`varchar`]), json ([`json`]), NUMERIC without a
//! declared scale ([`numeric`]) and the catalog's int2vector/oidvector ([`vector`]).

pub mod fields;
pub mod float_text;
pub mod json;
pub mod numeric;
pub mod temporal_text;
pub mod varchar;
pub mod vector;

use std::sync::Arc;

use arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use pgwire::api::portal::Format;
use pgwire::api::results::FieldInfo;
use pgwire::api::Type;
use pgwire::error::PgWireResult;
use pgwire::types::format::FormatOptions;

/// Field metadata key naming a column's PostgreSQL type where the Arrow type is ambiguous
/// (`varchar` on a string field). Same `pg.` namespace as arrow-pg's own `pg.oid_alias`.
pub const PG_TYPE_KEY: &str = "pg.type";

/// Row descriptions for a result schema: arrow-pg's, with the declared types lalo knows.
pub fn pg_fields(schema: &Schema, format: &Format, opts: Option<Arc<FormatOptions>>) -> PgWireResult<Vec<FieldInfo>> {
    let fields = arrow_schema_to_pg_fields(schema, format, opts)?;
    Ok(fields
        .into_iter()
        .zip(schema.fields())
        .map(|(info, f)| numeric::describe(vector::describe(oid_array(json::describe(varchar::describe(info, f), f), f), f), f))
        .collect())
}

/// A result batch with the columns whose wire form lalo writes itself (unscaled NUMERIC,
/// int2vector/oidvector text) already in that form, for the row descriptions `fields`.
pub fn as_pg(batch: datafusion::arrow::array::RecordBatch, fields: &[FieldInfo]) -> datafusion::arrow::array::RecordBatch {
    vector::as_pg(numeric::as_pg(batch, fields), fields)
}

/// The fields to encode a batch prepared by [`as_pg`] with: its pre-written vector text goes
/// out as written (pgwire would quote a string sent as an array-kind type).
pub fn encoding_fields(fields: &Arc<Vec<FieldInfo>>) -> Arc<Vec<FieldInfo>> {
    vector::encoding_fields(fields)
}

/// The type a parameter is described as: oid[] for a list of oids (see [`oid_array`]), else
/// arrow-pg's mapping.
pub fn param_type(t: &DataType) -> PgWireResult<Type> {
    if is_oid_list(t) {
        return Ok(Type::OID_ARRAY);
    }
    arrow_pg::datatypes::into_pg_type(t)
}

fn is_oid_list(t: &DataType) -> bool {
    let element = match t {
        DataType::List(e) | DataType::LargeList(e) => e,
        _ => return false,
    };
    *element.data_type() == DataType::Int32
        && element.metadata().get(datafusion_pg_catalog::pg_catalog::oid_field::OID_ALIAS_KEY).is_some_and(|k| k == "oid")
}

/// A list of oids (elements marked `pg.oid_alias = oid`, as `CAST(x AS oid[])` plans) is
/// described as `oid[]`, as PostgreSQL does; asyncpg decodes oid[] without introspection.
/// Scalar oid columns stay int4, the type lalo's clients already read them as.
fn oid_array(info: FieldInfo, field: &Field) -> FieldInfo {
    if !is_oid_list(field.data_type()) || *info.datatype() != Type::INT4_ARRAY {
        return info;
    }
    FieldInfo::new(info.name().to_string(), info.table_id(), info.column_id(), Type::OID_ARRAY, info.format())
        .with_format_options(info.format_options().clone())
}
