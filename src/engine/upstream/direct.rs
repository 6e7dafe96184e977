//! The direct lane to an upstream: statements whose whole governed plan runs upstream go there
//! as a server-side prepared statement, one round trip per execution, without DataFusion.
//!
//! The library's pool prepares every query text anew (two round trips) and converts through a
//! generic path; for point lookups at pooler speed lalo keeps its own small pool whose
//! connections remember their prepared statements.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::{new_empty_array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion_table_providers::sql::arrow_sql_gen::postgres::rows_to_arrow;
use futures::{StreamExt, TryStreamExt};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

use super::breaker::Breaker;
use super::pool::lost_message;
use super::shared::SharedConn;
use super::wire::{WireConn, WireError, WireTarget};

mod lane;
mod pipelined;
pub use lane::RawParams;

/// Rows per Arrow batch.
const BATCH_ROWS: usize = 4096;

/// Why a statement cannot take the direct lane (the caller then takes the planned path).
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    #[error("not direct: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Lost(String),
    /// The upstream's own error (its SQLSTATE in `code`).
    #[error("{message}")]
    Upstream { code: String, message: String },
}

struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// A small pool of plain connections with per-connection prepared statements.
pub struct DirectPool {
    name: String,
    config: Option<tokio_postgres::Config>,
    idle: Mutex<Vec<Conn>>,
    /// Pass-through connections (see `wire`), sharing the pool's slots.
    wire_idle: Mutex<Vec<WireConn>>,
    wire_target: Option<WireTarget>,
    slots: Arc<Semaphore>,
    breaker: Arc<Breaker>,
    /// Pipelined connections for primary-key lookups (see `shared`), at most `pipelined`.
    shared: Mutex<Vec<Arc<SharedConn>>>,
    pipelined: usize,
    /// The pool's slots in all (for the metrics: `size - available` are in use).
    size: usize,
}

/// A connection on loan; it goes back to the pool when dropped, unless it broke.
struct Lease {
    conn: Option<Conn>,
    pool: Arc<DirectPool>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            if !c.client.is_closed() {
                self.pool.idle.lock().push(c);
            }
        }
    }
}

impl DirectPool {
    pub fn new(name: &str, url: &str, size: u32, pipelined: usize, breaker: Arc<Breaker>) -> DirectPool {
        let config = tokio_postgres::Config::from_str(url).ok().filter(|c| {
            // The direct lane speaks plain TCP; upstreams that need TLS use the planned path.
            !matches!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Require)
        });
        let wire_target = config.as_ref().and_then(WireTarget::from_config);
        DirectPool {
            name: name.to_string(),
            config,
            wire_idle: Mutex::new(Vec::new()),
            wire_target,
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(size.max(1) as usize)),
            breaker,
            shared: Mutex::new(Vec::new()),
            pipelined,
            size: size.max(1) as usize,
        }
    }

    /// Connections on loan and connections idle (decoded and forwarded lanes together).
    pub fn usage(&self) -> (usize, usize) {
        let in_use = self.size.saturating_sub(self.slots.available_permits());
        (in_use, self.idle.lock().len() + self.wire_idle.lock().len())
    }

    pub fn available(&self) -> bool {
        self.config.is_some()
    }

    async fn lease(self: &Arc<Self>) -> Result<Lease, DirectError> {
        if let Err(last) = self.breaker.check() {
            return Err(DirectError::Lost(lost_message(&self.name, &format!("unavailable ({last})"))));
        }
        let permit = self.slots.clone().acquire_owned().await.map_err(|e| DirectError::Unsupported(e.to_string()))?;
        let idle = self.idle.lock().pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let Some(cfg) = &self.config else { return Err(DirectError::Unsupported("TLS upstream".into())) };
                let mut cfg = cfg.clone();
                cfg.options(super::PINNED_OPTIONS).application_name("lalo");
                let connected = tokio::time::timeout(std::time::Duration::from_secs(5), cfg.connect(NoTls)).await;
                let (client, connection) = match connected {
                    Ok(Ok(pair)) => pair,
                    Ok(Err(e)) => {
                        // An upstream that wants TLS or another auth is the planned path's job.
                        if e.as_db_error().is_some() || e.to_string().contains("TLS") {
                            return Err(DirectError::Unsupported(e.to_string()));
                        }
                        self.breaker.failure(&e.to_string());
                        return Err(DirectError::Lost(lost_message(&self.name, &e.to_string())));
                    }
                    Err(_) => {
                        self.breaker.failure("connect timed out");
                        return Err(DirectError::Lost(lost_message(&self.name, "connect timed out")));
                    }
                };
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Conn { client, statements: HashMap::new() }
            }
        };
        Ok(Lease { conn: Some(conn), pool: self.clone(), _permit: permit })
    }

    /// Run `sql` (with `$n` placeholders) with `params`; rows arrive as batches of `schema`.
    pub async fn query(
        self: &Arc<Self>,
        sql: &str,
        params: &[ScalarValue],
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream, DirectError> {
        let mut lease = self.lease().await?;
        let name = self.name.clone();
        let breaker = self.breaker.clone();
        let lost = |e: tokio_postgres::Error| {
            if let Some(db) = e.as_db_error() {
                DirectError::Upstream {
                    code: db.code().code().to_string(),
                    message: format!("{} (from upstream \"{name}\")", db.message()),
                }
            } else {
                breaker.failure(&e.to_string());
                DirectError::Lost(lost_message(&name, &e.to_string()))
            }
        };
        let conn = lease.conn.as_mut().ok_or_else(|| DirectError::Unsupported("no connection".into()))?;
        let stmt = match conn.statements.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = conn.client.prepare(sql).await.map_err(lost)?;
                conn.statements.insert(sql.to_string(), s.clone());
                s
            }
        };
        let values = to_sql_params(params, stmt.params())?;
        let rows = conn
            .client
            .query_raw(&stmt, values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)))
            .await
            .map_err(lost)?;
        self.breaker.success();
        let name = self.name.clone();
        let breaker = self.breaker.clone();
        let out_schema = schema.clone();
        let batches = rows
            .map_err(move |e| {
                if e.as_db_error().is_none() {
                    breaker.failure(&e.to_string());
                    DataFusionError::Execution(lost_message(&name, &e.to_string()))
                } else {
                    let text = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
                    DataFusionError::Execution(format!("{text} (from upstream \"{name}\")"))
                }
            })
            .chunks(BATCH_ROWS)
            .map(move |chunk| {
                let rows = chunk.into_iter().collect::<Result<Vec<_>, _>>()?;
                to_batch(&rows, &out_schema)
            });
        // The lease rides along with the stream and returns the connection when it ends.
        let stream = batches.map(move |b| {
            let _keep = &lease;
            b
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// PostgreSQL rows → one batch of the plan's schema (types cast, names from the plan).
fn to_batch(rows: &[tokio_postgres::Row], schema: &SchemaRef) -> Result<RecordBatch, DataFusionError> {
    if rows.is_empty() {
        let cols = schema.fields().iter().map(|f| new_empty_array(f.data_type())).collect();
        return Ok(RecordBatch::try_new(schema.clone(), cols)?);
    }
    let raw = rows_to_arrow(rows, &Some(schema.clone())).map_err(|e| DataFusionError::Execution(e.to_string()))?;
    if raw.num_columns() != schema.fields().len() {
        return Err(DataFusionError::Execution("upstream returned an unexpected column count".into()));
    }
    let cols = raw
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { cast(c, f.data_type()) })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

type Param = Box<dyn ToSql + Sync + Send>;

/// Parameter values as the upstream's declared parameter types want them.
fn to_sql_params(values: &[ScalarValue], types: &[Type]) -> Result<Vec<Param>, DirectError> {
    if values.len() != types.len() {
        return Err(DirectError::Unsupported(format!("{} values for {} parameters", values.len(), types.len())));
    }
    values.iter().zip(types).map(|(v, t)| to_sql(v, t)).collect()
}

fn to_sql(v: &ScalarValue, t: &Type) -> Result<Param, DirectError> {
    let unsupported = || DirectError::Unsupported(format!("parameter {v:?} as {t}"));
    let want = match *t {
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::BOOL => DataType::Boolean,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DataType::Utf8,
        Type::DATE => DataType::Date32,
        _ => return Err(unsupported()),
    };
    let v = v.cast_to(&want).map_err(|_| unsupported())?;
    Ok(match v {
        ScalarValue::Int16(x) => Box::new(x),
        ScalarValue::Int32(x) => Box::new(x),
        ScalarValue::Int64(x) => Box::new(x),
        ScalarValue::Float32(x) => Box::new(x),
        ScalarValue::Float64(x) => Box::new(x),
        ScalarValue::Boolean(x) => Box::new(x),
        ScalarValue::Utf8(x) => Box::new(x),
        ScalarValue::Date32(x) => {
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).ok_or_else(unsupported)?;
            Box::new(x.map(|d| epoch + chrono::Duration::days(d as i64)))
        }
        _ => return Err(unsupported()),
    })
}

/// Rows as the upstream sent them, in the batches the socket delivered.
pub type WireRows = futures::stream::BoxStream<'static, Result<Vec<pgwire::messages::data::DataRow>, DirectError>>;

/// Result column types whose bytes lalo forwards unchanged: for these lalo's own encoding (text
/// and binary) is PostgreSQL's, so a forwarded row is the row lalo would have written.
const FORWARDED_TYPES: [u32; 8] = [
    16,   // bool
    20,   // int8
    21,   // int2
    23,   // int4
    25,   // text
    1043, // varchar
    1082, // date
    1700, // numeric
];

/// A pass-through connection on loan; back to the pool when dropped between statements.
struct WireLease {
    conn: Option<WireConn>,
    pool: Arc<DirectPool>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for WireLease {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            // A result dropped half read leaves bytes on the socket: that connection is closed.
            if c.reusable() {
                self.pool.wire_idle.lock().push(c);
            }
        }
    }
}

impl DirectPool {
    async fn wire_lease(self: &Arc<Self>) -> Result<WireLease, DirectError> {
        self.wire_ready()?;
        let permit = self.slots.clone().acquire_owned().await.map_err(|e| DirectError::Unsupported(e.to_string()))?;
        let idle = self.wire_idle.lock().pop();
        let conn = match idle {
            Some(c) => c,
            None => self.connect_wire().await?,
        };
        Ok(WireLease { conn: Some(conn), pool: self.clone(), _permit: permit })
    }

    /// Whether a pass-through connection may be used now (a plain TCP target, breaker closed).
    fn wire_ready(&self) -> Result<(), DirectError> {
        if self.wire_target.is_none() {
            return Err(DirectError::Unsupported("no plain TCP target".into()));
        }
        if let Err(last) = self.breaker.check() {
            return Err(DirectError::Lost(lost_message(&self.name, &format!("unavailable ({last})"))));
        }
        Ok(())
    }

    /// A new pass-through connection (a lost one opens the breaker).
    async fn connect_wire(&self) -> Result<WireConn, DirectError> {
        let Some(target) = &self.wire_target else { return Err(DirectError::Unsupported("no plain TCP target".into())) };
        WireConn::connect(target, std::time::Duration::from_secs(5)).await.map_err(|e| self.wire_error(e))
    }

    /// Text parameters for a pass-through execution whose result lalo describes with `expect`;
    /// `Err(Unsupported)` when those types are not ones whose bytes lalo forwards unchanged.
    fn forwarded_values(params: &[ScalarValue], expect: &[u32]) -> Result<Vec<Option<String>>, DirectError> {
        if !expect.iter().all(|t| FORWARDED_TYPES.contains(t)) {
            return Err(DirectError::Unsupported("result types are not forwarded".into()));
        }
        params.iter().map(param_text).collect()
    }

    /// `Err(Unsupported)` when the upstream describes the statement's result otherwise than lalo.
    fn same_columns(stmt: &super::wire::WireStatement, expect: &[u32]) -> Result<(), DirectError> {
        if stmt.columns != expect {
            return Err(DirectError::Unsupported(format!("upstream column types {:?}, lalo's {expect:?}", stmt.columns)));
        }
        Ok(())
    }

    fn wire_error(&self, e: WireError) -> DirectError {
        match e {
            WireError::Lost(detail) => {
                self.breaker.failure(&detail);
                DirectError::Lost(lost_message(&self.name, &detail))
            }
            WireError::Upstream { code, message } => {
                DirectError::Upstream { code, message: format!("{message} (from upstream \"{}\")", self.name) }
            }
            WireError::Unsupported(why) => DirectError::Unsupported(why),
        }
    }

    /// Run `sql` with `params` and forward its rows unchanged, in `formats` (PostgreSQL's
    /// result-format codes). `expect` are the type OIDs lalo describes the result with: when the
    /// upstream's differ, or are not ones lalo encodes as PostgreSQL does, this is
    /// `Err(Unsupported)` and the caller decodes instead.
    pub async fn query_wire(
        self: &Arc<Self>,
        sql: &str,
        params: &[ScalarValue],
        expect: &[u32],
        formats: &[i16],
    ) -> Result<WireRows, DirectError> {
        let values = Self::forwarded_values(params, expect)?;
        let mut lease = self.wire_lease().await?;
        let conn = lease.conn.as_mut().ok_or_else(|| DirectError::Unsupported("no connection".into()))?;
        conn.settle(&[]).await.map_err(|e| self.wire_error(e))?;
        let stmt = conn.prepare(sql).await.map_err(|e| self.wire_error(e))?;
        Self::same_columns(&stmt, expect)?;
        conn.start(&stmt, &values, formats).await.map_err(|e| self.wire_error(e))?;
        Ok(self.clone().rows(lease))
    }

    /// The rows of the statement started on `lease`'s connection, until ReadyForQuery.
    fn rows(self: Arc<Self>, lease: WireLease) -> WireRows {
        let pool = self;
        let stream = futures::stream::unfold(Some(lease), move |lease| {
            let pool = pool.clone();
            async move {
                let mut lease = lease?;
                let conn = lease.conn.as_mut()?;
                match conn.next_rows().await {
                    Ok(Some(rows)) => Some((Ok(rows), Some(lease))),
                    Ok(None) => {
                        pool.breaker.success();
                        None
                    }
                    Err(e) => {
                        if matches!(e, WireError::Lost(_)) {
                            lease.conn.take();
                        }
                        Some((Err(pool.wire_error(e)), None))
                    }
                }
            }
        });
        Box::pin(stream)
    }
}

/// A parameter in PostgreSQL's text form (the upstream parses it as its declared type).
fn param_text(v: &ScalarValue) -> Result<Option<String>, DirectError> {
    if v.is_null() {
        return Ok(None);
    }
    Ok(Some(match v {
        ScalarValue::Int8(Some(x)) => x.to_string(),
        ScalarValue::Int16(Some(x)) => x.to_string(),
        ScalarValue::Int32(Some(x)) => x.to_string(),
        ScalarValue::Int64(Some(x)) => x.to_string(),
        ScalarValue::UInt8(Some(x)) => x.to_string(),
        ScalarValue::UInt16(Some(x)) => x.to_string(),
        ScalarValue::UInt32(Some(x)) => x.to_string(),
        ScalarValue::UInt64(Some(x)) => x.to_string(),
        ScalarValue::Boolean(Some(b)) => if *b { "t" } else { "f" }.to_string(),
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => s.clone(),
        ScalarValue::Date32(Some(d)) => {
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                .ok_or_else(|| DirectError::Unsupported("date".into()))?;
            (epoch + chrono::Duration::days(*d as i64)).format("%Y-%m-%d").to_string()
        }
        ScalarValue::Decimal128(Some(_), _, _) => v.to_string(),
        other => return Err(DirectError::Unsupported(format!("parameter {other:?} as text"))),
    }))
}
