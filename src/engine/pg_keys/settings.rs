//! `pg_catalog.pg_settings`: the session's own settings (what SHOW and current_setting()
//! answer) with PostgreSQL's columns, where datafusion-pg-catalog lists one fixed row and names
//! `boot_val` `bool_val`. Built when a statement names the table, so a SET is seen by the next
//! statement (a setting's change also drops the session's cached plans).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int32Array, ListBuilder, RecordBatch, StringArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::error::Result;

use crate::settings::{display_name, Settings};

/// PostgreSQL's type of a setting's value, from the value lalo holds.
fn vartype(default: &str) -> &'static str {
    match default {
        "on" | "off" => "bool",
        v if !v.is_empty() && v.parse::<i64>().is_ok() => "integer",
        _ => "string",
    }
}

/// One row's source: the name as PostgreSQL shows it, the value, the default.
type Row = (String, String, Option<&'static str>);

pub fn table(settings: &Settings) -> Result<Arc<dyn TableProvider>> {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let schema = Arc::new(Schema::new(vec![
        text("name"),
        text("setting"),
        text("unit"),
        text("category"),
        text("short_desc"),
        text("extra_desc"),
        text("context"),
        text("vartype"),
        text("source"),
        text("min_val"),
        text("max_val"),
        Field::new("enumvals", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true),
        text("boot_val"),
        text("reset_val"),
        text("sourcefile"),
        Field::new("sourceline", DataType::Int32, true),
        Field::new("pending_restart", DataType::Boolean, true),
    ]));
    let rows: Vec<Row> =
        settings.entries().map(|(k, v, d)| (display_name(k).to_string(), v.to_string(), d)).collect();
    let col = |f: &dyn Fn(&Row) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let none = |_: &Row| None::<String>;
    let mut enumvals = ListBuilder::new(StringBuilder::new());
    for _ in &rows {
        enumvals.append_null();
    }
    let columns: Vec<ArrayRef> = vec![
        col(&|r| Some(r.0.clone())),
        col(&|r| Some(r.1.clone())),
        col(&|r| (r.0 == "statement_timeout" || r.0.ends_with("_timeout")).then(|| "ms".to_string())),
        col(&|r| Some(if r.2.is_some() { "Client Connection Defaults" } else { "Customized Options" }.to_string())),
        col(&none),
        col(&none),
        col(&|_| Some("user".to_string())),
        col(&|r| Some(vartype(r.2.unwrap_or(&r.1)).to_string())),
        col(&|r| Some(if r.2 == Some(r.1.as_str()) { "default" } else { "session" }.to_string())),
        col(&none),
        col(&none),
        Arc::new(enumvals.finish()),
        col(&|r| r.2.map(str::to_string)),
        col(&|r| Some(r.2.map(str::to_string).unwrap_or_else(|| r.1.clone()))),
        col(&none),
        Arc::new(Int32Array::from(vec![None::<i32>; rows.len()])),
        Arc::new(BooleanArray::from(vec![Some(false); rows.len()])),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}
