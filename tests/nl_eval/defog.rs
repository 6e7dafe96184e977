//! Loads a defog corpus database (`<db>.sql` DDL + INSERTs, `<db>.json` descriptions) into the
//! `SchemaContext` the rules drafter sees, the way the gateway would describe an upstream to it.

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::sql::sqlparser::ast::{Expr, SetExpr, Statement, TableObject, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use lalo::nl::{ColumnInfo, SchemaContext, TableInfo};

/// Most distinct values a text column may have to keep them as samples.
const MAX_SAMPLES: usize = 60;

/// Build the context of database `db` under `root` (`<root>/<db>/<db>.sql` and `.json`).
pub fn load(root: &Path, db: &str) -> anyhow::Result<SchemaContext> {
    let sql = std::fs::read_to_string(root.join(db).join(format!("{db}.sql")))?;
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root.join(db).join(format!("{db}.json")))?)?;
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, &sql)?;
    let mut tables: Vec<TableInfo> = vec![];
    let mut values: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for statement in &statements {
        match statement {
            Statement::CreateTable(create) => {
                let full = create.name.to_string();
                let (schema, name) = full.rsplit_once('.').unwrap_or(("public", full.as_str()));
                let columns = create
                    .columns
                    .iter()
                    .map(|c| ColumnInfo::new(c.name.value.clone(), data_type(&c.data_type.to_string())))
                    .collect();
                tables.push(TableInfo {
                    catalog: db.to_string(),
                    schema: schema.to_string(),
                    name: name.to_string(),
                    description: None,
                    columns,
                });
            }
            Statement::Insert(insert) => {
                let TableObject::TableName(name) = &insert.table else { continue };
                let full = name.to_string();
                let table = full.rsplit_once('.').map(|(_, t)| t).unwrap_or(&full).to_string();
                let columns: Vec<String> = insert.columns.iter().map(|c| c.to_string()).collect();
                let Some(source) = &insert.source else { continue };
                let SetExpr::Values(rows) = source.body.as_ref() else { continue };
                for row in &rows.rows {
                    for (column, expr) in columns.iter().zip(&row.content) {
                        if let Expr::Value(v) = expr {
                            if let Value::SingleQuotedString(s) = &v.value {
                                let list = values.entry((table.clone(), column.clone())).or_default();
                                if !list.contains(s) {
                                    list.push(s.clone());
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let meta = json.get("table_metadata");
    for table in &mut tables {
        let docs = meta.and_then(|m| m.get(&table.name)).and_then(|v| v.as_array());
        for column in &mut table.columns {
            column.description = docs.and_then(|list| {
                list.iter()
                    .find(|d| d.get("column_name").and_then(|n| n.as_str()) == Some(column.name.as_str()))
                    .and_then(|d| d.get("column_description"))
                    .and_then(|d| d.as_str())
                    .map(str::to_string)
            });
            if column.is_text() {
                if let Some(list) = values.get(&(table.name.clone(), column.name.clone())) {
                    if list.len() <= MAX_SAMPLES {
                        column.samples = list.clone();
                    }
                }
            }
        }
    }
    Ok(SchemaContext { tables, foreign_keys: vec![] })
}

/// PostgreSQL type names as the DDL spells them, mapped the way lalo maps upstream columns.
fn data_type(sql: &str) -> DataType {
    let sql = sql.to_ascii_lowercase();
    match sql.as_str() {
        "bigint" | "int8" => DataType::Int64,
        "integer" | "int" | "int4" => DataType::Int32,
        "smallint" => DataType::Int16,
        "boolean" | "bool" => DataType::Boolean,
        "date" => DataType::Date32,
        "double precision" | "float8" => DataType::Float64,
        "real" | "float4" => DataType::Float32,
        s if s.starts_with("numeric") || s.starts_with("decimal") => DataType::Decimal128(38, 10),
        s if s.starts_with("timestamp") => DataType::Timestamp(TimeUnit::Microsecond, None),
        s if s.starts_with("time") => DataType::Time64(TimeUnit::Microsecond),
        _ => DataType::Utf8,
    }
}

/// Draft every question of `input` (JSON lines `{"db", "question", ...}`) and write JSON lines
/// `{"db", "question", "sql" | "declined", "micros"}` to `output`; the harness in this folder scores them.
pub fn draft_file(root: &Path, input: &Path, output: &Path) -> anyhow::Result<()> {
    use std::collections::HashMap;
    use std::io::Write;
    let mut drafters: HashMap<String, lalo::nl::Drafter> = HashMap::new();
    let mut out = std::io::BufWriter::new(std::fs::File::create(output)?);
    for line in std::fs::read_to_string(input)?.lines().filter(|l| !l.trim().is_empty()) {
        let mut row: serde_json::Value = serde_json::from_str(line)?;
        let db = row.get("db").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let question = row.get("question").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        if !drafters.contains_key(&db) {
            let ctx = load(root, &db)?;
            drafters.insert(db.clone(), lalo::nl::Drafter::new(&ctx));
        }
        let drafter = &drafters[&db];
        let started = std::time::Instant::now();
        let drafted = drafter.draft(&question);
        let micros = started.elapsed().as_micros() as u64;
        row["micros"] = micros.into();
        match drafted {
            lalo::nl::Drafted::Sql { sql, confidence, explanation, .. } => {
                row["sql"] = sql.into();
                row["confidence"] = serde_json::json!(confidence);
                row["explanation"] = explanation.into();
            }
            lalo::nl::Drafted::Declined { reason } => row["declined"] = reason.into(),
        }
        writeln!(out, "{row}")?;
    }
    out.flush()?;
    Ok(())
}
