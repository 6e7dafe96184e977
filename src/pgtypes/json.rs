//! JSON as PostgreSQL describes it. lalo's `json` values are Arrow strings (the text PostgreSQL
//! writes), marked `pg.type = json` by the functions that build them, and described as `json`
//! (OID 114) on the wire: a client then parses the column as JSON (psycopg returns a dict,
//! node-postgres an object, JDBC's `getColumnTypeName` says json) as it would from PostgreSQL.
//! In the binary format a `json` value is its text, so the bytes are the same either way.

use std::collections::HashMap;

use datafusion::arrow::datatypes::{DataType, Field};
use pgwire::api::results::FieldInfo;
use pgwire::api::Type;

use super::PG_TYPE_KEY;

const JSON: &str = "json";

/// The metadata marking a string field as PostgreSQL json.
pub fn json_metadata() -> HashMap<String, String> {
    HashMap::from([(PG_TYPE_KEY.to_string(), JSON.to_string())])
}

fn marked(f: &Field) -> bool {
    matches!(f.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
        && f.metadata().get(PG_TYPE_KEY).is_some_and(|v| v == JSON)
}

/// The row description of one column: `json` when its field is marked so.
pub fn describe(info: FieldInfo, field: &Field) -> FieldInfo {
    if !marked(field) || *info.datatype() != Type::TEXT {
        return info;
    }
    FieldInfo::new(info.name().to_string(), info.table_id(), info.column_id(), Type::JSON, info.format())
        .with_format_options(info.format_options().clone())
        .with_type_size(info.type_size())
        .with_type_modifier(info.type_modifier())
}
