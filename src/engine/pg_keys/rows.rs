//! The rows of lalo's pg_constraint and pg_index: one per key, with PostgreSQL's column types
//! (`conkey int2[]`, `indkey int2vector`, `indclass oidvector`, ...).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result;

use super::Relation;
use crate::pgtypes::vector::{vector_metadata, INT2VECTOR, OIDVECTOR};

/// Which table a batch is for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Constraint,
    Index,
}

/// One primary or foreign key.
#[derive(Debug, Clone)]
pub struct Key {
    pub oid: i32,
    name: String,
    namespace: i32,
    /// 'p' or 'f'.
    contype: &'static str,
    relid: i32,
    /// The key's index: its own for a primary key, the referenced table's for a foreign key.
    pub indid: i32,
    frelid: i32,
    conkey: Vec<i16>,
    confkey: Option<Vec<i16>>,
    /// What `pg_get_constraintdef` answers.
    pub definition: String,
    /// A primary key's index: what `pg_get_indexdef` answers, and its column names.
    pub index: Option<(String, Vec<String>)>,
}

/// Key OIDs live above pg_class's counter (which starts at 16384 and counts up), derived from
/// the table's OID so they stay the same from one scan to the next.
const KEY_OID_BASE: i32 = 1 << 30;

/// The OID of a table's primary-key index.
pub fn index_oid(table: i32) -> i32 {
    KEY_OID_BASE.wrapping_add(table.wrapping_mul(64))
}

impl Key {
    pub fn primary(rel: &Relation, cols: Vec<i16>, index: i32, names: &[String]) -> Key {
        let names: Vec<String> = names.iter().map(|c| quote(c)).collect();
        let name = format!("{}_pkey", rel.name);
        let index_def = format!(
            "CREATE UNIQUE INDEX {} ON {} USING btree ({})",
            quote(&name),
            qualified(rel),
            names.join(", ")
        );
        Key {
            oid: index_oid(rel.oid).wrapping_add(1),
            name,
            namespace: rel.namespace,
            contype: "p",
            relid: rel.oid,
            indid: index,
            frelid: 0,
            conkey: cols,
            confkey: None,
            definition: format!("PRIMARY KEY ({})", names.join(", ")),
            index: Some((index_def, names)),
        }
    }

    /// The `n`th foreign key of `rel` (at most 62 per table get distinct OIDs).
    pub fn foreign(
        rel: &Relation,
        cols: Vec<i16>,
        target: &Relation,
        ref_cols: Vec<i16>,
        n: usize,
        names: &[String],
        ref_names: &[String],
    ) -> Key {
        let list = |v: &[String]| v.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let target_name = qualified(target);
        Key {
            oid: index_oid(rel.oid).wrapping_add(2 + n.min(61) as i32),
            name: format!("{}_{}_fkey", rel.name, names.join("_")),
            namespace: rel.namespace,
            contype: "f",
            relid: rel.oid,
            indid: index_oid(target.oid),
            frelid: target.oid,
            conkey: cols,
            confkey: Some(ref_cols),
            definition: format!("FOREIGN KEY ({}) REFERENCES {}({})", list(names), target_name, list(ref_names)),
            index: None,
        }
    }
}

/// A table's name as PostgreSQL prints it, qualified outside `public` (the search path).
fn qualified(rel: &Relation) -> String {
    if rel.schema == "public" {
        quote(&rel.name)
    } else {
        format!("{}.{}", quote(&rel.schema), quote(&rel.name))
    }
}

/// An identifier as PostgreSQL prints it: bare when it is lower case and plain.
fn quote(ident: &str) -> String {
    let plain = ident.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && ident.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { ident.to_string() } else { format!("\"{}\"", ident.replace('"', "\"\"")) }
}

fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(t, true)))
}

/// The columns lalo types itself; the rest keep the library's types (and OID markings).
fn own_field(kind: Kind, name: &str) -> Option<Field> {
    let vector = |t: DataType, pg: &str| Field::new(name, list_of(t), false).with_metadata(vector_metadata(pg));
    let array = |t: DataType| Field::new(name, list_of(t), true);
    match (kind, name) {
        (Kind::Index, "indkey" | "indoption") => Some(vector(DataType::Int16, INT2VECTOR)),
        (Kind::Index, "indcollation" | "indclass") => Some(vector(DataType::Int32, OIDVECTOR)),
        (Kind::Constraint, "conkey" | "confkey" | "confdelsetcols") => Some(array(DataType::Int16)),
        (Kind::Constraint, "conpfeqop" | "conppeqop" | "conffeqop" | "conexclop") => Some(array(DataType::Int32)),
        _ => None,
    }
}

const CONSTRAINT_COLUMNS: &[(&str, DataType)] = &[
    ("oid", DataType::Int32),
    ("conname", DataType::Utf8),
    ("connamespace", DataType::Int32),
    ("contype", DataType::Utf8),
    ("condeferrable", DataType::Boolean),
    ("condeferred", DataType::Boolean),
    ("convalidated", DataType::Boolean),
    ("conrelid", DataType::Int32),
    ("contypid", DataType::Int32),
    ("conindid", DataType::Int32),
    ("conparentid", DataType::Int32),
    ("confrelid", DataType::Int32),
    ("confupdtype", DataType::Utf8),
    ("confdeltype", DataType::Utf8),
    ("confmatchtype", DataType::Utf8),
    ("conislocal", DataType::Boolean),
    ("coninhcount", DataType::Int16),
    ("connoinherit", DataType::Boolean),
    ("conkey", DataType::Null),
    ("confkey", DataType::Null),
    ("conpfeqop", DataType::Null),
    ("conppeqop", DataType::Null),
    ("conffeqop", DataType::Null),
    ("confdelsetcols", DataType::Null),
    ("conexclop", DataType::Null),
    ("conbin", DataType::Utf8),
];

const INDEX_COLUMNS: &[(&str, DataType)] = &[
    ("indexrelid", DataType::Int32),
    ("indrelid", DataType::Int32),
    ("indnatts", DataType::Int16),
    ("indnkeyatts", DataType::Int16),
    ("indisunique", DataType::Boolean),
    ("indnullsnotdistinct", DataType::Boolean),
    ("indisprimary", DataType::Boolean),
    ("indisexclusion", DataType::Boolean),
    ("indimmediate", DataType::Boolean),
    ("indisclustered", DataType::Boolean),
    ("indisvalid", DataType::Boolean),
    ("indcheckxmin", DataType::Boolean),
    ("indisready", DataType::Boolean),
    ("indislive", DataType::Boolean),
    ("indisreplident", DataType::Boolean),
    ("indkey", DataType::Null),
    ("indcollation", DataType::Null),
    ("indclass", DataType::Null),
    ("indoption", DataType::Null),
    ("indexprs", DataType::Utf8),
    ("indpred", DataType::Utf8),
];

/// The table's schema: PostgreSQL 16's columns, typed like the library's table where it has
/// the column (`base`), with lalo's vector and array columns.
pub fn schema(kind: Kind, base: Option<&Schema>) -> SchemaRef {
    let columns = match kind {
        Kind::Constraint => CONSTRAINT_COLUMNS,
        Kind::Index => INDEX_COLUMNS,
    };
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, t)| {
            own_field(kind, name)
                .or_else(|| base.and_then(|b| b.field_with_name(name).ok()).map(|f| f.clone().with_nullable(true)))
                .unwrap_or_else(|| Field::new(*name, t.clone(), true))
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn int2s(v: &[i16]) -> ScalarValue {
    let values: Vec<ScalarValue> = v.iter().map(|x| ScalarValue::Int16(Some(*x))).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Int16))
}

fn int4s(v: impl Iterator<Item = i32>) -> ScalarValue {
    let values: Vec<ScalarValue> = v.map(|x| ScalarValue::Int32(Some(x))).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Int32))
}

fn text(s: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(s.to_string()))
}

/// One cell; None for NULL.
fn value(kind: Kind, k: &Key, column: &str) -> Option<ScalarValue> {
    let int = |v: i32| Some(ScalarValue::Int32(Some(v)));
    let boolean = |v: bool| Some(ScalarValue::Boolean(Some(v)));
    let fk = k.contype == "f";
    match (kind, column) {
        (Kind::Constraint, "oid") => int(k.oid),
        (Kind::Constraint, "conname") => Some(text(&k.name)),
        (Kind::Constraint, "connamespace") => int(k.namespace),
        (Kind::Constraint, "contype") => Some(text(k.contype)),
        (Kind::Constraint, "convalidated" | "conislocal" | "connoinherit") => boolean(true),
        (Kind::Constraint, "conrelid") => int(k.relid),
        (Kind::Constraint, "conindid") => int(k.indid),
        (Kind::Constraint, "confrelid") => int(k.frelid),
        // NO ACTION on update and delete, MATCH SIMPLE; a space for keys other than foreign.
        (Kind::Constraint, "confupdtype" | "confdeltype") => Some(text(if fk { "a" } else { " " })),
        (Kind::Constraint, "confmatchtype") => Some(text(if fk { "s" } else { " " })),
        (Kind::Constraint, "conkey") => Some(int2s(&k.conkey)),
        (Kind::Constraint, "confkey") => k.confkey.as_deref().map(int2s),
        (Kind::Index, "indexrelid") => int(k.indid),
        (Kind::Index, "indrelid") => int(k.relid),
        (Kind::Index, "indnatts" | "indnkeyatts") => Some(ScalarValue::Int16(Some(k.conkey.len() as i16))),
        (Kind::Index, "indisunique" | "indisprimary" | "indimmediate" | "indisvalid" | "indisready" | "indislive") => {
            boolean(true)
        }
        (Kind::Index, "indkey") => Some(int2s(&k.conkey)),
        (Kind::Index, "indoption") => Some(int2s(&vec![0; k.conkey.len()])),
        (Kind::Index, "indcollation" | "indclass") => Some(int4s(k.conkey.iter().map(|_| 0))),
        _ => None,
    }
}

/// The batch of `keys` for `kind` (pg_index lists the primary keys' indexes).
pub fn batch(kind: Kind, schema: &SchemaRef, keys: &[Key]) -> Result<RecordBatch> {
    let keys: Vec<&Key> = keys.iter().filter(|k| kind == Kind::Constraint || k.contype == "p").collect();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let null = ScalarValue::try_from(f.data_type())?;
        let cells = keys.iter().map(|k| match value(kind, k, f.name()) {
            Some(v) => Ok(v),
            // Flags PostgreSQL leaves false and counts it leaves zero.
            None if !f.is_nullable() || matches!(f.data_type(), DataType::Boolean) || f.data_type().is_integer() => {
                ScalarValue::new_default(f.data_type())
            }
            None => Ok(null.clone()),
        });
        let cells: Vec<ScalarValue> = cells.collect::<Result<_>>()?;
        let array = if cells.is_empty() {
            datafusion::arrow::array::new_empty_array(f.data_type())
        } else {
            ScalarValue::iter_to_array(cells)?
        };
        columns.push(datafusion::arrow::compute::cast(&array, f.data_type())?);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
