//! `int2vector` and `oidvector`, PostgreSQL's one-dimensional catalog arrays (`pg_index.indkey`,
//! `indclass`, ...). lalo holds them as Arrow lists marked `pg.type = int2vector | oidvector`,
//! describes them with those types as PostgreSQL does, and writes their text form as PostgreSQL
//! does, numbers separated by spaces (`1 2`), which drivers split themselves (SQLAlchemy's
//! psycopg dialects do). Their binary form is an array's, which arrow-pg writes for a list.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::api::Type;

use super::PG_TYPE_KEY;

/// The `pg.type` value of an int2vector list.
pub const INT2VECTOR: &str = "int2vector";
/// The `pg.type` value of an oidvector list.
pub const OIDVECTOR: &str = "oidvector";

/// The metadata marking a list field as `pg` (one of [`INT2VECTOR`], [`OIDVECTOR`]).
pub fn vector_metadata(pg: &str) -> HashMap<String, String> {
    HashMap::from([(PG_TYPE_KEY.to_string(), pg.to_string())])
}

fn vector_type(field: &Field) -> Option<Type> {
    if !matches!(field.data_type(), DataType::List(_) | DataType::LargeList(_)) {
        return None;
    }
    match field.metadata().get(PG_TYPE_KEY).map(String::as_str) {
        Some(INT2VECTOR) => Some(Type::INT2_VECTOR),
        Some(OIDVECTOR) => Some(Type::OID_VECTOR),
        _ => None,
    }
}

/// The row description of a marked list field: int2vector or oidvector.
pub fn describe(info: FieldInfo, field: &Field) -> FieldInfo {
    let Some(t) = vector_type(field) else { return info };
    FieldInfo::new(info.name().to_string(), info.table_id(), info.column_id(), t, info.format())
        .with_format_options(info.format_options().clone())
}

fn is_vector(t: &Type) -> bool {
    *t == Type::INT2_VECTOR || *t == Type::OID_VECTOR
}

/// Vector columns sent as text become their PostgreSQL text (`1 2`).
pub fn as_pg(batch: RecordBatch, fields: &[FieldInfo]) -> RecordBatch {
    let text_vector = |i: usize| fields.get(i).is_some_and(|f| is_vector(f.datatype()) && f.format() == FieldFormat::Text);
    if !(0..batch.num_columns()).any(text_vector) {
        return batch;
    }
    let schema = batch.schema();
    let mut cols = batch.columns().to_vec();
    let mut new_fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (i, col) in batch.columns().iter().enumerate() {
        if !text_vector(i) {
            continue;
        }
        let Some(text) = spaced(col) else { continue };
        cols[i] = text;
        new_fields[i] = Field::new(new_fields[i].name(), DataType::Utf8, true);
    }
    RecordBatch::try_new(Arc::new(Schema::new(new_fields)), cols).unwrap_or(batch)
}

/// `fields` with text-format vector columns as text, for the encoder only (the row
/// description keeps int2vector/oidvector); the same Arc when there are none.
pub fn encoding_fields(fields: &Arc<Vec<FieldInfo>>) -> Arc<Vec<FieldInfo>> {
    let text_vector = |f: &FieldInfo| is_vector(f.datatype()) && f.format() == FieldFormat::Text;
    if !fields.iter().any(text_vector) {
        return fields.clone();
    }
    let out = fields
        .iter()
        .map(|f| {
            if !text_vector(f) {
                return f.clone();
            }
            FieldInfo::new(f.name().to_string(), f.table_id(), f.column_id(), Type::TEXT, f.format())
                .with_format_options(f.format_options().clone())
        })
        .collect();
    Arc::new(out)
}

/// Each list as its elements separated by spaces; None when `col` is not a list of integers.
fn spaced(col: &ArrayRef) -> Option<ArrayRef> {
    let list = col.as_list_opt::<i32>()?;
    let mut b = StringBuilder::with_capacity(list.len(), list.len() * 8);
    for r in 0..list.len() {
        if list.is_null(r) {
            b.append_null();
            continue;
        }
        let values = datafusion::arrow::compute::cast(&list.value(r), &DataType::Int64).ok()?;
        let values = values.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let parts: Vec<String> = values.iter().map(|v| v.map(|v| v.to_string()).unwrap_or_default()).collect();
        b.append_value(parts.join(" "));
    }
    Some(Arc::new(b.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ListArray, StringArray};
    use datafusion::arrow::datatypes::Int16Type;

    #[test]
    fn text_form_is_space_separated() {
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int16Type, _, _>(vec![Some(vec![Some(1), Some(3)]), None]));
        let out = spaced(&list).unwrap();
        let out = out.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(out.value(0), "1 3");
        assert!(out.is_null(1));
    }

    #[test]
    fn marked_lists_are_described_as_vectors() {
        let f = Field::new("indkey", DataType::List(Arc::new(Field::new_list_field(DataType::Int16, true))), false)
            .with_metadata(vector_metadata(INT2VECTOR));
        let info = FieldInfo::new("indkey".into(), None, None, Type::INT2_ARRAY, FieldFormat::Text);
        assert_eq!(*describe(info, &f).datatype(), Type::INT2_VECTOR);
    }
}
