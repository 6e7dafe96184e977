//! Flight SQL's catalog commands, answered from what the caller may see (the same listing as
//! psql's `\dt` and MCP's `list_tables`): catalogs are lalo's databases, then schemas, tables
//! (with their readable columns' Arrow schema when asked) and declared primary keys.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{CommandGetCatalogs, CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, SqlInfo};
use datafusion::arrow::array::{Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::sql::TableReference;
use futures::TryStreamExt;
use tonic::{Response, Status};

use super::service::LaloFlight;
use super::status;
use crate::search::TableEntry;
use crate::session::Session;

type DoGetStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

/// One batch as a DoGet stream.
pub fn one_batch(batch: RecordBatch) -> DoGetStream {
    let schema = batch.schema();
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::once(async { Ok(batch) }))
        .map_err(Status::from);
    Box::pin(stream)
}

fn built<E: std::fmt::Display>(batch: Result<RecordBatch, E>) -> Result<Response<DoGetStream>, Status> {
    batch.map(|b| Response::new(one_batch(b))).map_err(|e| Status::internal(e.to_string()))
}

/// `CommandGetPrimaryKeys`'s columns.
pub fn primary_keys_schema() -> Schema {
    let text = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Schema::new(vec![
        text("catalog_name", true),
        text("db_schema_name", true),
        text("table_name", false),
        text("column_name", false),
        text("key_name", true),
        Field::new("key_sequence", DataType::Int32, false),
    ])
}

/// What the server says of itself (`GetSqlInfo`).
pub fn sql_info() -> &'static SqlInfoData {
    static INFO: OnceLock<SqlInfoData> = OnceLock::new();
    INFO.get_or_init(|| {
        let mut b = SqlInfoDataBuilder::new();
        b.append(SqlInfo::FlightSqlServerName, "lalo");
        b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        b.append(SqlInfo::FlightSqlServerArrowVersion, "58");
        b.append(SqlInfo::FlightSqlServerReadOnly, true);
        b.append(SqlInfo::FlightSqlServerSql, true);
        b.append(SqlInfo::FlightSqlServerSubstrait, false);
        b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        b.append(SqlInfo::FlightSqlServerCancel, false);
        b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        b.build().unwrap_or_else(|_| SqlInfoDataBuilder::new().build().expect("an empty SqlInfo builds"))
    })
}

impl LaloFlight {
    /// The tables the caller may see; the listing is audited as MCP's `list_tables` is.
    async fn visible(&self, session: &Session, command: &str) -> Result<Vec<TableEntry>, Status> {
        let tables = self.lalo.visible_tables(session).await.map_err(|e| status(&e))?;
        self.lalo.audit_tool(session, command, "", tables.len() as u64).await;
        Ok(tables)
    }

    pub(super) async fn catalogs(&self, session: &Session, query: CommandGetCatalogs) -> Result<Response<DoGetStream>, Status> {
        let names: BTreeSet<String> = self.visible(session, "GetCatalogs").await?.into_iter().map(|t| t.database).collect();
        let mut b = query.into_builder();
        for n in names {
            b.append(n);
        }
        built(b.build())
    }

    pub(super) async fn schemas(&self, session: &Session, query: CommandGetDbSchemas) -> Result<Response<DoGetStream>, Status> {
        let pairs: BTreeSet<(String, String)> = self.visible(session, "GetDbSchemas").await?.into_iter().map(|t| (t.database, t.schema)).collect();
        let mut b = query.into_builder();
        for (c, s) in pairs {
            b.append(c, s);
        }
        built(b.build())
    }

    pub(super) async fn tables(&self, session: &Session, query: CommandGetTables) -> Result<Response<DoGetStream>, Status> {
        let include_schema = query.include_schema;
        let mut b = query.into_builder();
        for t in self.visible(session, "GetTables").await? {
            let schema = if include_schema { self.readable_schema(session, &t).await } else { Arc::new(Schema::empty()) };
            b.append(&t.database, &t.schema, &t.table, "TABLE", &schema).map_err(|e| Status::internal(e.to_string()))?;
        }
        built(b.build())
    }

    /// A table's Arrow schema, only the columns the caller may read.
    async fn readable_schema(&self, session: &Session, t: &TableEntry) -> SchemaRef {
        let reference = TableReference::full(t.database.as_str(), t.schema.as_str(), t.table.as_str());
        let Ok(provider) = session.ctx.table_provider(reference).await else { return Arc::new(Schema::empty()) };
        let full = provider.schema();
        let fields: Vec<Field> = full
            .fields()
            .iter()
            .filter(|f| t.columns.iter().any(|c| c.name == *f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        Arc::new(Schema::new(fields))
    }

    pub(super) async fn primary_keys(&self, session: &Session, query: CommandGetPrimaryKeys) -> Result<Response<DoGetStream>, Status> {
        let docs = self.lalo.engine.docs();
        let mut rows: Vec<(String, String, String, String, i32)> = Vec::new();
        for t in self.visible(session, "GetPrimaryKeys").await? {
            let matches = t.table == query.table
                && query.catalog.as_deref().is_none_or(|c| c == t.database)
                && query.db_schema.as_deref().is_none_or(|s| s == t.schema);
            if !matches {
                continue;
            }
            let keys = crate::engine::keys::declared(&docs.read(), &t.database, &t.schema, &t.table);
            // A key with a column the caller may not read is not shown (it would name the column).
            if !keys.primary_key.iter().all(|k| t.columns.iter().any(|c| &c.name == k)) {
                continue;
            }
            for (i, k) in keys.primary_key.iter().enumerate() {
                rows.push((t.database.clone(), t.schema.clone(), t.table.clone(), k.clone(), i as i32 + 1));
            }
        }
        let col = |f: fn(&(String, String, String, String, i32)) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(f)));
        let batch = RecordBatch::try_new(
            Arc::new(primary_keys_schema()),
            vec![
                col(|r| &r.0),
                col(|r| &r.1),
                col(|r| &r.2),
                col(|r| &r.3),
                Arc::new(StringArray::from(vec![None::<&str>; rows.len()])),
                Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.4))),
            ],
        );
        built(batch)
    }
}
