//! information_schema views with PostgreSQL's columns, built from DataFusion's: `columns` (44
//! columns where DataFusion has 15: `udt_name`, `dtd_identifier`, `is_updatable`, ... that Npgsql,
//! Tableau and ODBC drivers select by name), `views` (`check_option`, `is_updatable`, ...), and
//! the privilege views DataFusion lacks, `table_privileges` and `column_privileges`.
//!
//! lalo's privileges are its policies, not ACLs: a caller holds SELECT on exactly the tables and
//! columns it may see (the listing these views are built from is already the caller's), granted
//! by lalo, not grantable; nothing through lalo is updatable.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;

/// Where a column's values come from.
#[derive(Clone, Copy)]
enum From {
    /// DataFusion's column of the same name.
    Same,
    /// Another of DataFusion's columns.
    Column(&'static str),
    /// One value on every row.
    Text(&'static str),
    /// The caller's name.
    User,
    /// The internal name of the column's type (`int8`, `_text`), from DataFusion's `data_type`.
    Udt,
    /// DataFusion's 0-based position, counted from 1 as PostgreSQL counts (`as_text`: as text).
    Position { as_text: bool },
    /// Computed from the column's Arrow type where DataFusion leaves it empty.
    Typed(fn(&str) -> Option<i32>),
    /// NULL.
    Null,
}

/// Bits or decimal digits of precision: PostgreSQL's `numeric_precision`.
fn precision(t: &str) -> Option<i32> {
    match base(t) {
        "Int8" | "Int16" | "UInt8" => Some(16),
        "Int32" | "UInt16" => Some(32),
        "Int64" | "UInt32" | "UInt64" => Some(64),
        "Float16" | "Float32" => Some(24),
        "Float64" => Some(53),
        b if b.starts_with("Decimal") => decimal(t).map(|(p, _)| p),
        _ => None,
    }
}

fn radix(t: &str) -> Option<i32> {
    match base(t) {
        b if b.starts_with("Decimal") => Some(10),
        b if b.starts_with("Int") || b.starts_with("UInt") || b.starts_with("Float") => Some(2),
        _ => None,
    }
}

fn scale(t: &str) -> Option<i32> {
    match base(t) {
        b if b.starts_with("Decimal") => decimal(t).map(|(_, s)| s),
        b if b.starts_with("Int") || b.starts_with("UInt") => Some(0),
        _ => None,
    }
}

/// Fractional digits of seconds: 0 for a date, 6 (microseconds, PostgreSQL's limit) otherwise.
fn datetime_precision(t: &str) -> Option<i32> {
    match base(t) {
        "Date32" | "Date64" => Some(0),
        "Timestamp" | "Time32" | "Time64" | "Interval" | "Duration" => Some(6),
        _ => None,
    }
}

fn base(t: &str) -> &str {
    t.split('(').next().unwrap_or(t).trim()
}

/// (precision, scale) of `Decimal128(15, 2)`.
fn decimal(t: &str) -> Option<(i32, i32)> {
    let args = t.split_once('(')?.1.trim_end_matches(')');
    let (p, s) = args.split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// (name, integer (cardinal_number) rather than text, source).
type Shape = &'static [(&'static str, bool, From)];

const COLUMNS: Shape = &[
    ("table_catalog", false, From::Same),
    ("table_schema", false, From::Same),
    ("table_name", false, From::Same),
    ("column_name", false, From::Same),
    ("ordinal_position", true, From::Position { as_text: false }),
    ("column_default", false, From::Same),
    ("is_nullable", false, From::Same),
    ("data_type", false, From::Same),
    ("character_maximum_length", true, From::Same),
    ("character_octet_length", true, From::Same),
    ("numeric_precision", true, From::Typed(precision)),
    ("numeric_precision_radix", true, From::Typed(radix)),
    ("numeric_scale", true, From::Typed(scale)),
    ("datetime_precision", true, From::Typed(datetime_precision)),
    ("interval_type", false, From::Same),
    ("interval_precision", true, From::Null),
    ("character_set_catalog", false, From::Null),
    ("character_set_schema", false, From::Null),
    ("character_set_name", false, From::Null),
    ("collation_catalog", false, From::Null),
    ("collation_schema", false, From::Null),
    ("collation_name", false, From::Null),
    ("domain_catalog", false, From::Null),
    ("domain_schema", false, From::Null),
    ("domain_name", false, From::Null),
    ("udt_catalog", false, From::Column("table_catalog")),
    ("udt_schema", false, From::Text("pg_catalog")),
    ("udt_name", false, From::Udt),
    ("scope_catalog", false, From::Null),
    ("scope_schema", false, From::Null),
    ("scope_name", false, From::Null),
    ("maximum_cardinality", true, From::Null),
    ("dtd_identifier", false, From::Position { as_text: true }),
    ("is_self_referencing", false, From::Text("NO")),
    ("is_identity", false, From::Text("NO")),
    ("identity_generation", false, From::Null),
    ("identity_start", false, From::Null),
    ("identity_increment", false, From::Null),
    ("identity_maximum", false, From::Null),
    ("identity_minimum", false, From::Null),
    ("identity_cycle", false, From::Text("NO")),
    ("is_generated", false, From::Text("NEVER")),
    ("generation_expression", false, From::Null),
    ("is_updatable", false, From::Text("NO")),
];

const VIEWS: Shape = &[
    ("table_catalog", false, From::Same),
    ("table_schema", false, From::Same),
    ("table_name", false, From::Same),
    ("view_definition", false, From::Column("definition")),
    ("check_option", false, From::Text("NONE")),
    ("is_updatable", false, From::Text("NO")),
    ("is_insertable_into", false, From::Text("NO")),
    ("is_trigger_updatable", false, From::Text("NO")),
    ("is_trigger_deletable", false, From::Text("NO")),
    ("is_trigger_insertable_into", false, From::Text("NO")),
];

const TABLE_PRIVILEGES: Shape = &[
    ("grantor", false, From::Text("lalo")),
    ("grantee", false, From::User),
    ("table_catalog", false, From::Same),
    ("table_schema", false, From::Same),
    ("table_name", false, From::Same),
    ("privilege_type", false, From::Text("SELECT")),
    ("is_grantable", false, From::Text("NO")),
    ("with_hierarchy", false, From::Text("YES")),
];

const COLUMN_PRIVILEGES: Shape = &[
    ("grantor", false, From::Text("lalo")),
    ("grantee", false, From::User),
    ("table_catalog", false, From::Same),
    ("table_schema", false, From::Same),
    ("table_name", false, From::Same),
    ("column_name", false, From::Same),
    ("privilege_type", false, From::Text("SELECT")),
    ("is_grantable", false, From::Text("NO")),
];

/// A reshaped view: its name, DataFusion's view it is built from, and its columns.
pub struct Reshaped {
    pub source: &'static str,
    shape: Shape,
}

/// The views reshaped or added here, by name.
pub fn reshaped(name: &str) -> Option<Reshaped> {
    let (source, shape) = match name.to_ascii_lowercase().as_str() {
        "columns" => ("columns", COLUMNS),
        "views" => ("views", VIEWS),
        "table_privileges" => ("tables", TABLE_PRIVILEGES),
        "column_privileges" => ("columns", COLUMN_PRIVILEGES),
        _ => return None,
    };
    Some(Reshaped { source, shape })
}

/// The views added (DataFusion has no view of that name).
pub const ADDED: &[&str] = &["table_privileges", "column_privileges"];

impl Reshaped {
    pub fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .shape
            .iter()
            .map(|(name, int, _)| Field::new(*name, if *int { DataType::Int32 } else { DataType::Utf8 }, true))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// One of DataFusion's batches in this view's shape. `arrow_types` holds, for `columns`,
    /// each row's Arrow type as DataFusion printed it (before it became PostgreSQL's name).
    pub fn batch(&self, b: &RecordBatch, arrow_types: Option<&StringArray>, user: &str) -> Result<RecordBatch> {
        let rows = b.num_rows();
        let text = |v: Option<&str>| -> ArrayRef { Arc::new(StringArray::from(vec![v; rows])) };
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.shape.len());
        for (name, int, from) in self.shape {
            let want = if *int { DataType::Int32 } else { DataType::Utf8 };
            let col: ArrayRef = match from {
                From::Same | From::Column(_) => {
                    let source = match from {
                        From::Column(c) => *c,
                        _ => *name,
                    };
                    match b.schema().index_of(source) {
                        Ok(i) => cast(b.column(i), &want)?,
                        Err(_) if *int => Arc::new(Int32Array::new_null(rows)),
                        Err(_) => text(None),
                    }
                }
                From::Text(v) => text(Some(v)),
                From::User => text(Some(user)),
                From::Null if *int => Arc::new(Int32Array::new_null(rows)),
                From::Null => text(None),
                From::Position { as_text } => {
                    let i = b.schema().index_of("ordinal_position")?;
                    let p = cast(b.column(i), &DataType::Int64)?;
                    let p = p.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                    let n: Int32Array = p.iter().map(|v| v.map(|v| v as i32 + 1)).collect();
                    if *as_text {
                        cast(&n, &DataType::Utf8)?
                    } else {
                        Arc::new(n)
                    }
                }
                From::Typed(f) => match arrow_types {
                    Some(t) => Arc::new((0..t.len()).map(|r| if t.is_valid(r) { f(t.value(r)) } else { None }).collect::<Int32Array>()),
                    None => Arc::new(Int32Array::new_null(rows)),
                },
                From::Udt => match arrow_types {
                    Some(t) => Arc::new((0..t.len()).map(|r| t.is_valid(r).then(|| udt_name(t.value(r)))).collect::<StringArray>()),
                    None => text(None),
                },
            };
            cols.push(col);
        }
        Ok(RecordBatch::try_new(self.schema(), cols)?)
    }
}

/// DataFusion's printed Arrow types of a batch's `data_type` column, as text.
pub fn arrow_types(b: &RecordBatch) -> Result<Option<StringArray>> {
    let Ok(i) = b.schema().index_of("data_type") else { return Ok(None) };
    let t = cast(b.column(i), &DataType::Utf8)?;
    Ok(Some(t.as_string::<i32>().clone()))
}

/// pg_type's name for an Arrow type as DataFusion prints it: `int8`, `numeric`, `_int4`.
fn udt_name(arrow: &str) -> String {
    let base = arrow.split('(').next().unwrap_or(arrow).trim();
    let inner = || arrow.find('(').map(|i| arrow[i + 1..].trim_end_matches(')').to_string());
    match base {
        "Int8" | "Int16" | "UInt8" => "int2".into(),
        "Int32" | "UInt16" => "int4".into(),
        "Int64" | "UInt32" | "UInt64" => "int8".into(),
        "Float16" | "Float32" => "float4".into(),
        "Float64" => "float8".into(),
        "Decimal32" | "Decimal64" | "Decimal128" | "Decimal256" => "numeric".into(),
        "Utf8" | "Utf8View" | "LargeUtf8" => "text".into(),
        "Boolean" => "bool".into(),
        "Date32" | "Date64" => "date".into(),
        "Timestamp" if arrow.contains(',') => "timestamptz".into(),
        "Timestamp" => "timestamp".into(),
        "Time32" | "Time64" => "time".into(),
        "Interval" | "Duration" => "interval".into(),
        "Binary" | "BinaryView" | "LargeBinary" | "FixedSizeBinary" => "bytea".into(),
        "List" | "LargeList" | "FixedSizeList" | "ListView" => {
            // List(Int32) / List(non-null Int32) / List(Field { data_type: Int32, .. })
            let element = inner().unwrap_or_default();
            let element = element.rsplit(|c: char| c == ' ' || c == ':').find(|w| !w.is_empty()).unwrap_or("");
            format!("_{}", udt_name(element.trim_end_matches(',')))
        }
        other => other.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::udt_name;

    #[test]
    fn internal_type_names() {
        assert_eq!(udt_name("Int64"), "int8");
        assert_eq!(udt_name("Decimal128(15, 2)"), "numeric");
        assert_eq!(udt_name("Timestamp(ns, \"+00:00\")"), "timestamptz");
        assert_eq!(udt_name("Utf8View"), "text");
        assert_eq!(udt_name("List(Int32)"), "_int4");
        assert_eq!(super::decimal("Decimal128(15, 2)"), Some((15, 2)));
        assert_eq!((super::precision("Int64"), super::radix("Int64"), super::scale("Int64")), (Some(64), Some(2), Some(0)));
    }
}
