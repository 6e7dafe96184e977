//! Arrow batches → PostgreSQL rows, text or binary, straight from the arrays (arrow-pg).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::StreamExt;
use pgwire::api::portal::Format;
use bytes::Bytes;
use pgwire::api::results::{CopyResponse, FieldInfo, QueryResponse};
use pgwire::messages::copy::CopyData;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::types::format::FormatOptions;

use crate::execution::RowStream;
use crate::session::Session;

/// Format options (DateStyle, IntervalStyle, bytea_output, extra_float_digits) from the session.
pub fn format_options(session: &Session) -> Arc<FormatOptions> {
    let s = session.settings.read();
    let mut m = HashMap::new();
    for k in ["datestyle", "intervalstyle", "bytea_output", "extra_float_digits"] {
        if let Some(v) = s.get(k) {
            m.insert(k.to_string(), v);
        }
    }
    let mut f = FormatOptions::from_client_metadata(&m);
    if let Some(tz) = s.get("timezone") {
        f.time_zone = tz;
    }
    Arc::new(f)
}

/// The Arrow type a column travels as. PostgreSQL has no 1-byte or unsigned integers: Int8
/// goes as int2 (arrow-pg would write one byte for it in binary), unsigned types widen, and
/// u64 (row_number(), rank()) goes as bigint.
fn wire_type(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Int8 | DataType::UInt8 => Some(DataType::Int16),
        DataType::UInt16 => Some(DataType::Int32),
        DataType::UInt32 | DataType::UInt64 => Some(DataType::Int64),
        _ => None,
    }
}

/// The schema as sent on the wire (see [`wire_type`]).
pub fn wire_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match wire_type(f.data_type()) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Row descriptions for a result schema in the requested format.
pub fn fields(schema: &SchemaRef, format: &Format, opts: Arc<FormatOptions>) -> PgWireResult<Arc<Vec<FieldInfo>>> {
    Ok(Arc::new(arrow_schema_to_pg_fields(&wire_schema(schema), format, Some(opts))?))
}

fn to_wire(batch: RecordBatch) -> PgWireResult<RecordBatch> {
    if !batch.schema().fields().iter().any(|f| wire_type(f.data_type()).is_some()) {
        return Ok(batch);
    }
    let schema = wire_schema(&batch.schema());
    let cols = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| datafusion::arrow::compute::cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    RecordBatch::try_new(schema, cols).map_err(|e| PgWireError::ApiError(Box::new(e)))
}

/// COPY ... TO STDOUT: each row's text-format fields as one line of COPY text (tab-separated,
/// `\N` for NULL, backslash escapes) or CSV (quoted where needed, empty for NULL).
pub fn copy_response(fields: Arc<Vec<FieldInfo>>, rows: RowStream, csv: bool, header: bool) -> CopyResponse {
    let columns = fields.len();
    let head: Vec<PgWireResult<CopyData>> = if header {
        let names: Vec<String> = fields.iter().map(|f| if csv { csv_field(f.name().as_bytes()) } else { f.name().to_string() }).collect();
        let sep = if csv { "," } else { "\t" };
        vec![Ok(CopyData::new(Bytes::from(format!("{}\n", names.join(sep)))))]
    } else {
        vec![]
    };
    let f = fields.clone();
    let data = rows
        .map(move |batch| {
            let lines: Vec<PgWireResult<CopyData>> = match batch.map_err(PgWireError::from).and_then(to_wire) {
                Ok(b) => encode_recordbatch(f.clone(), b).map(|row| row.map(|r| copy_line(&r, csv))).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(lines)
        })
        .flatten();
    CopyResponse::new(0, columns, futures::stream::iter(head).chain(data))
}

/// One DataRow (length-prefixed text fields) as a COPY line.
fn copy_line(row: &pgwire::messages::data::DataRow, csv: bool) -> CopyData {
    let mut out = Vec::with_capacity(row.data.len() + 8);
    let data = &row.data[..];
    let mut pos = 0;
    for i in 0..row.field_count {
        if i > 0 {
            out.push(if csv { b',' } else { b'\t' });
        }
        let Some(len_bytes) = data.get(pos..pos + 4) else { break };
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        pos += 4;
        if len < 0 {
            if !csv {
                out.extend_from_slice(b"\\N");
            }
            continue;
        }
        let Some(v) = data.get(pos..pos + len as usize) else { break };
        pos += len as usize;
        if csv {
            out.extend_from_slice(csv_field(v).as_bytes());
        } else {
            for &b in v {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    _ => out.push(b),
                }
            }
        }
    }
    out.push(b'\n');
    CopyData::new(Bytes::from(out))
}

fn csv_field(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    if s.is_empty() || s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.into_owned()
    }
}

/// Encode a stream of batches as a pgwire query response, batch by batch.
pub fn response(fields: Arc<Vec<FieldInfo>>, rows: RowStream) -> QueryResponse {
    let f = fields.clone();
    let data = rows
        .map(move |batch| {
            let it: Box<dyn Iterator<Item = PgWireResult<pgwire::messages::data::DataRow>> + Send + Sync> = match batch {
                Ok(b) => match to_wire(b) {
                    Ok(b) => encode_recordbatch(f.clone(), b),
                    Err(e) => Box::new(std::iter::once(Err(e))),
                },
                Err(e) => Box::new(std::iter::once(Err(PgWireError::from(e)))),
            };
            futures::stream::iter(it)
        })
        .flatten();
    QueryResponse::new(fields, data)
}
