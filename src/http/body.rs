//! Result rows as HTTP bodies: one JSON document, NDJSON (a JSON object per row, streamed) or an
//! Arrow IPC stream (batch by batch). Values are written as the wire's text format writes them
//! (the session's DateStyle, TimeZone, float digits), then typed for JSON: integers and floats as
//! numbers (`NaN` and infinities as strings), booleans as booleans, `json`/`jsonb` embedded,
//! `numeric` and everything else as strings (a JSON number cannot hold every numeric exactly).

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use futures::{Stream, StreamExt};
use pgwire::api::results::FieldInfo;
use pgwire::api::Type;
use serde_json::{json, Value};

use crate::error::LaloError;
use crate::execution::RowStream;
use crate::server::encode::Zone;
use crate::session::Session;

/// PostgreSQL's description of the result's columns, and how each is written.
pub struct Columns {
    fields: Arc<Vec<FieldInfo>>,
    zone: Option<Zone>,
}

impl Columns {
    pub fn of(schema: &SchemaRef, session: &Session) -> Result<Columns, LaloError> {
        let opts = crate::server::encode::format_options(session);
        let zone = Zone::of(&opts.time_zone);
        let fields = crate::server::encode::fields(schema, &pgwire::api::portal::Format::UnifiedText, opts)
            .map_err(|e| LaloError::Internal(e.to_string()))?;
        Ok(Columns { fields, zone })
    }

    /// `[{"name": ..., "type": ...}]`, types as PostgreSQL names them (`int8`, `numeric`).
    pub fn describe(&self) -> Value {
        Value::Array(self.fields.iter().map(|f| json!({ "name": f.name(), "type": f.datatype().name() })).collect())
    }

    /// One batch's rows as JSON arrays.
    pub fn rows(&self, batch: RecordBatch) -> Result<Vec<Vec<Value>>, LaloError> {
        let text = crate::server::encode::text_cells(self.fields.clone(), batch, self.zone)
            .map_err(|e| LaloError::Internal(e.to_string()))?;
        Ok(text.into_iter().map(|row| row.into_iter().zip(self.fields.iter()).map(|(v, f)| typed(v, f.datatype())).collect()).collect())
    }

    /// A row as a JSON object, column name → value (a later column of a repeated name wins).
    pub fn object(&self, row: Vec<Value>) -> Value {
        Value::Object(self.fields.iter().map(|f| f.name().to_string()).zip(row).collect())
    }
}

/// A text-format value as JSON of its type.
fn typed(v: Option<String>, t: &Type) -> Value {
    let Some(v) = v else { return Value::Null };
    match *t {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => v.parse::<i64>().map(Value::from).unwrap_or(Value::String(v)),
        Type::FLOAT4 | Type::FLOAT8 => match v.parse::<f64>() {
            Ok(f) if f.is_finite() => json!(f),
            _ => Value::String(v),
        },
        Type::BOOL => Value::Bool(v == "t"),
        Type::JSON | Type::JSONB => serde_json::from_str(&v).unwrap_or(Value::String(v)),
        _ => Value::String(v),
    }
}

/// The most rows one JSON document holds: a larger result is refused (53400) with a pointer to
/// the streamed formats, which hold one batch at a time.
pub const DOCUMENT_ROWS: usize = 100_000;

/// The whole result as `{"columns", "rows", "row_count"}` (plus `extra` fields).
pub async fn document(columns: &Columns, mut rows: RowStream, mut extra: serde_json::Map<String, Value>) -> Result<Value, LaloError> {
    let mut out: Vec<Value> = Vec::new();
    while let Some(b) = rows.next().await {
        out.extend(columns.rows(b?)?.into_iter().map(Value::Array));
        if out.len() > DOCUMENT_ROWS {
            return Err(LaloError::LimitExceeded(format!(
                "the result has more than {DOCUMENT_ROWS} rows, more than one JSON document holds: ask for application/x-ndjson or application/vnd.apache.arrow.stream"
            )));
        }
    }
    extra.insert("columns".into(), columns.describe());
    extra.insert("row_count".into(), json!(out.len()));
    extra.insert("rows".into(), Value::Array(out));
    Ok(Value::Object(extra))
}

/// The stream with its first batch already computed: an error before any row becomes the
/// response's status rather than a broken body.
pub async fn first_batch_ready(mut rows: RowStream) -> Result<RowStream, LaloError> {
    match rows.next().await {
        Some(Ok(first)) => Ok(futures::stream::once(async { Ok(first) }).chain(rows).boxed()),
        Some(Err(e)) => Err(e),
        None => Ok(rows),
    }
}

/// NDJSON: one object per row, written as batches arrive. An error after the first row ends
/// the stream with a last line `{"error": {"sqlstate", "message"}}` (rows are never wrapped).
pub fn ndjson(columns: Columns, rows: RowStream) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    rows.map(move |b| {
        let lines = b.map_err(LaloError::from).and_then(|b| columns.rows(b)).map(|rows| {
            let mut out = Vec::new();
            for r in rows {
                let _ = serde_json::to_writer(&mut out, &columns.object(r));
                out.push(b'\n');
            }
            out
        });
        Ok(Bytes::from(lines.unwrap_or_else(|e| error_line(&e))))
    })
}

fn error_line(e: &LaloError) -> Vec<u8> {
    let mut out = serde_json::to_vec(&json!({ "error": { "sqlstate": e.sqlstate(), "message": e.to_string() } })).unwrap_or_default();
    out.push(b'\n');
    out
}

/// An Arrow IPC stream: the schema, then each batch as it arrives, then the end marker. An
/// error mid-stream ends the body without the marker (the reader reports a truncated stream).
pub fn arrow_ipc(schema: SchemaRef, rows: RowStream) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    use datafusion::arrow::ipc::writer::StreamWriter;
    let io = |e: datafusion::arrow::error::ArrowError| std::io::Error::other(e.to_string());
    let writer = StreamWriter::try_new(Vec::new(), &schema).map_err(io);
    // (rows, writer, done): the writer buffers one message at a time, taken as it is written.
    futures::stream::unfold((rows, Some(writer), false), move |(mut rows, writer, mut head_sent)| {
        let schema = schema.clone();
        async move {
            let mut w = match writer? {
                Ok(w) => w,
                Err(e) => return Some((Err(e), (rows, None, true))),
            };
            if !head_sent {
                head_sent = true;
                let head = Bytes::from(std::mem::take(w.get_mut()));
                return Some((Ok(head), (rows, Some(Ok(w)), head_sent)));
            }
            match rows.next().await {
                Some(Ok(b)) => {
                    let b = RecordBatch::try_new(schema, b.columns().to_vec()).unwrap_or(b);
                    let out = w.write(&b).map(|_| Bytes::from(std::mem::take(w.get_mut()))).map_err(io);
                    let next = if out.is_ok() { Some(Ok(w)) } else { None };
                    Some((out, (rows, next, head_sent)))
                }
                Some(Err(e)) => Some((Err(std::io::Error::other(e.to_string())), (rows, None, head_sent))),
                None => {
                    let out = w.finish().map(|_| Bytes::from(std::mem::take(w.get_mut()))).map_err(io);
                    Some((out, (rows, None, head_sent)))
                }
            }
        }
    })
}
