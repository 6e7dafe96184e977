//! Arrow batches → PostgreSQL rows, text or binary, straight from the arrays (arrow-pg).

use std::sync::Arc;

use arrow_pg::datatypes::encode_recordbatch;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;
use bytes::Bytes;
use pgwire::api::results::{CopyResponse, FieldInfo, QueryResponse};
use pgwire::messages::copy::CopyData;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::types::format::FormatOptions;

use crate::execution::RowStream;
pub use crate::pgtypes::fields::{fields, wire_schema, ByFormat};
use crate::pgtypes::fields::wire_type;
use crate::pgtypes::temporal_text::{iso_date, iso_timestamp, to_micros};
use crate::session::Session;

/// Format options (DateStyle, IntervalStyle, bytea_output, extra_float_digits) from the session.
pub fn format_options(session: &Session) -> Arc<FormatOptions> {
    session.derived().format.options()
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

/// COPY ... TO STDOUT: each row's fields, as the wire encodes them, written as COPY's options
/// say (copy.rs): text or CSV lines, or binary tuples between the binary header and trailer.
pub fn copy_response(fields: Arc<Vec<FieldInfo>>, rows: RowStream, options: crate::copy::CopyOptions, zone: Option<Zone>) -> CopyResponse {
    use crate::copy::{CopyFormat, CopyOptions};
    let columns = fields.len();
    let names: Vec<String> = fields.iter().map(|f| f.name().to_string()).collect();
    let binary = options.format == CopyFormat::Binary;
    let head: Vec<PgWireResult<CopyData>> = match options.header_line(&names) {
        Some(line) => vec![Ok(CopyData::new(Bytes::from(line)))],
        None => vec![],
    };
    // Binary COPY's header goes out in one message with the first row, as PostgreSQL sends it
    // (readers such as ADBC's parse the header and a row from the same message), or with the
    // trailer when there is no row; the trailer closes the stream in a message of its own.
    let binary_head = Arc::new(parking_lot::Mutex::new(binary.then(CopyOptions::binary_header)));
    let unsent_head = binary_head.clone();
    let forced = options.forced(&names);
    let f = fields.clone();
    let data = rows
        .map(move |batch| {
            let lines: Vec<PgWireResult<CopyData>> =
                match batch.map_err(PgWireError::from).and_then(to_wire).map(|b| temporal_as_text(crate::pgtypes::as_pg(b, &f), &f, zone)) {
                Ok(b) => encode_recordbatch(crate::pgtypes::encoding_fields(&f), b)
                    .map(|row| {
                        row.map(|r| {
                            let line = options.row(r.field_count as usize, &r.data, &forced);
                            match binary_head.lock().take() {
                                Some(mut head) => {
                                    head.extend_from_slice(&line);
                                    CopyData::new(Bytes::from(head))
                                }
                                None => CopyData::new(Bytes::from(line)),
                            }
                        })
                    })
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(lines)
        })
        .flatten();
    let trailer = futures::stream::once(async move {
        let mut last = unsent_head.lock().take().unwrap_or_default();
        last.extend_from_slice(&(-1i16).to_be_bytes());
        Ok(CopyData::new(Bytes::from(last)))
    })
    .filter(move |_| futures::future::ready(binary));
    // Made as a text response and then marked binary: pgwire would append a trailer of its own
    // to a binary one, in its own message even when no row came before it.
    let mut response = CopyResponse::new(0, columns, futures::stream::iter(head).chain(data).chain(trailer));
    response.format = if binary { 1 } else { 0 };
    response
}

/// One batch's values as the text format writes them (the HTTP API's rows): `None` for NULL.
pub fn text_cells(fields: Arc<Vec<FieldInfo>>, batch: RecordBatch, zone: Option<Zone>) -> PgWireResult<Vec<Vec<Option<String>>>> {
    let b = temporal_as_text(crate::pgtypes::as_pg(to_wire(batch)?, &fields), &fields, zone);
    encode_recordbatch(crate::pgtypes::encoding_fields(&fields), b)
        .map(|row| {
            let row = row?;
            let (data, mut pos) = (&row.data[..], 0usize);
            let mut cells = Vec::with_capacity(row.field_count as usize);
            for _ in 0..row.field_count {
                let len = data.get(pos..pos + 4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(-1);
                pos += 4;
                if len < 0 {
                    cells.push(None);
                    continue;
                }
                let v = data.get(pos..pos + len as usize).unwrap_or_default();
                pos += len as usize;
                cells.push(Some(String::from_utf8_lossy(v).into_owned()));
            }
            Ok(cells)
        })
        .collect()
}

/// Whether a session TimeZone setting means UTC.
pub fn is_utc(tz: &str) -> bool {
    matches!(tz.to_ascii_uppercase().as_str(), "UTC" | "+00:00" | "+00" | "ETC/UTC" | "Z" | "GMT")
}

/// The session's time zone, as zoned timestamps are written in text: PostgreSQL shows each
/// instant in the session's `TimeZone` with that zone's offset at the instant.
#[derive(Debug, Clone, Copy)]
pub enum Zone {
    Utc,
    Named(datafusion::arrow::array::timezone::Tz),
}

impl Zone {
    /// The zone a TimeZone setting names; `None` for what lalo does not read itself (POSIX
    /// specifications such as `UTC+5`, whose sign PostgreSQL reads west of Greenwich), which
    /// arrow-pg then writes.
    pub fn of(setting: &str) -> Option<Zone> {
        if is_utc(setting) {
            return Some(Zone::Utc);
        }
        let first = setting.chars().next()?;
        if !first.is_ascii_alphabetic() || setting.chars().any(|c| c.is_ascii_digit()) && !setting.contains('/') {
            return None;
        }
        setting.parse().ok().map(Zone::Named)
    }

    /// Write the instant `micros` (since the epoch, UTC) as PostgreSQL does in this zone.
    fn write(&self, micros: i64, out: &mut String) {
        use chrono::{Offset, TimeZone};
        let offset = match self {
            Zone::Utc => 0,
            Zone::Named(tz) => chrono::DateTime::from_timestamp_micros(micros)
                .map(|at| tz.offset_from_utc_datetime(&at.naive_utc()).fix().local_minus_utc())
                .unwrap_or(0),
        };
        iso_timestamp(micros.saturating_add(offset as i64 * 1_000_000), out);
        // `+09`, `-03:30`, `+00:19:32`: minutes and seconds only when not zero.
        let bc = out.ends_with(" BC");
        if bc {
            out.truncate(out.len() - 3);
        }
        let (sign, a) = if offset < 0 { ('-', -offset) } else { ('+', offset) };
        out.push(sign);
        out.push_str(&format!("{:02}", a / 3600));
        if a % 3600 != 0 {
            out.push_str(&format!(":{:02}", a / 60 % 60));
            if a % 60 != 0 {
                out.push_str(&format!(":{:02}", a % 60));
            }
        }
        if bc {
            out.push_str(" BC");
        }
    }
}

/// Whether a timestamp column can take the text fast path: naive, or zoned in a zone lalo reads.
fn timestamp_zone(t: &DataType, zone: Option<Zone>) -> Option<Option<Zone>> {
    match t {
        DataType::Timestamp(_, None) => Some(None),
        DataType::Timestamp(_, Some(_)) => zone.map(Some),
        _ => None,
    }
}

/// Text-format DATE, TIMESTAMP and float columns become their text ahead of encoding; the row
/// description still says date/timestamp, and the bytes are what PostgreSQL sends.
fn temporal_as_text(batch: RecordBatch, fields: &[FieldInfo], zone: Option<Zone>) -> RecordBatch {
    use datafusion::arrow::array::{Array, StringBuilder};
    use datafusion::arrow::compute::cast;
    use pgwire::api::results::FieldFormat;
    let batch = crate::pgtypes::float_text::as_text(dates_as_text(batch, fields), fields);
    let schema = batch.schema();
    let targets: Vec<(usize, Option<Zone>)> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, _)| fields.get(*i).is_some_and(|fi| fi.format() == FieldFormat::Text))
        .filter_map(|(i, f)| timestamp_zone(f.data_type(), zone).map(|z| (i, z)))
        .collect();
    if targets.is_empty() {
        return batch;
    }
    let mut cols = batch.columns().to_vec();
    let mut new_fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (i, zone) in targets {
        let DataType::Timestamp(unit, _) = schema.field(i).data_type().clone() else { continue };
        // Reinterpret as plain i64 values in the column's unit.
        let Ok(raw) = cast(&cols[i], &DataType::Int64) else { continue };
        let raw = raw.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().cloned();
        let Some(raw) = raw else { continue };
        let mut b = StringBuilder::with_capacity(raw.len(), raw.len() * 29);
        let mut s = String::with_capacity(40);
        for r in 0..raw.len() {
            if raw.is_null(r) {
                b.append_null();
            } else {
                s.clear();
                match zone {
                    None => iso_timestamp(to_micros(raw.value(r), &unit), &mut s),
                    Some(z) => z.write(to_micros(raw.value(r), &unit), &mut s),
                }
                b.append_value(&s);
            }
        }
        cols[i] = Arc::new(b.finish());
        new_fields[i] = new_fields[i].clone().with_data_type(DataType::Utf8);
    }
    RecordBatch::try_new(Arc::new(Schema::new(new_fields)), cols).unwrap_or(batch)
}

/// Text-format DATE columns become their text ahead of encoding; the row description still
/// says date, and the bytes are exactly what PostgreSQL sends.
fn dates_as_text(batch: RecordBatch, fields: &[FieldInfo]) -> RecordBatch {
    use datafusion::arrow::array::{Array, AsArray, StringBuilder};
    use datafusion::arrow::datatypes::Date32Type;
    use pgwire::api::results::FieldFormat;
    let schema = batch.schema();
    let text_dates: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, f)| *f.data_type() == DataType::Date32 && fields.get(*i).is_some_and(|fi| fi.format() == FieldFormat::Text))
        .map(|(i, _)| i)
        .collect();
    if text_dates.is_empty() {
        return batch;
    }
    let mut cols = batch.columns().to_vec();
    let mut new_fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for i in text_dates {
        let dates = cols[i].as_primitive::<Date32Type>();
        let mut b = StringBuilder::with_capacity(dates.len(), dates.len() * 10);
        let mut s = String::with_capacity(16);
        for r in 0..dates.len() {
            if dates.is_null(r) {
                b.append_null();
            } else {
                s.clear();
                iso_date(dates.value(r), &mut s);
                b.append_value(&s);
            }
        }
        cols[i] = Arc::new(b.finish());
        new_fields[i] = new_fields[i].clone().with_data_type(DataType::Utf8);
    }
    RecordBatch::try_new(Arc::new(Schema::new(new_fields)), cols).unwrap_or(batch)
}

/// Encode a stream of batches as a pgwire query response, batch by batch. `zone`: the session's
/// TimeZone, in which zoned timestamps are written.
pub fn response(fields: Arc<Vec<FieldInfo>>, rows: RowStream, zone: Option<Zone>) -> QueryResponse {
    let f = fields.clone();
    let data = rows
        .map(move |batch| {
            let it: Box<dyn Iterator<Item = PgWireResult<pgwire::messages::data::DataRow>> + Send + Sync> = match batch {
                Ok(b) => match to_wire(b).map(|b| temporal_as_text(crate::pgtypes::as_pg(b, &f), &f, zone)) {
                    Ok(b) => encode_recordbatch(crate::pgtypes::encoding_fields(&f), b),
                    Err(e) => Box::new(std::iter::once(Err(e))),
                },
                Err(e) => Box::new(std::iter::once(Err(PgWireError::from(e)))),
            };
            futures::stream::iter(it)
        })
        .flatten();
    QueryResponse::new(fields, data)
}

/// A response of rows forwarded from an upstream as it encoded them.
pub fn forwarded(fields: Arc<Vec<FieldInfo>>, rows: crate::execution::WireRowStream) -> QueryResponse {
    let data = rows
        .map(|r| {
            let it: Box<dyn Iterator<Item = PgWireResult<pgwire::messages::data::DataRow>> + Send + Sync> = match r {
                Ok(rows) => Box::new(rows.into_iter().map(Ok)),
                Err(e) => Box::new(std::iter::once(Err(PgWireError::from(e)))),
            };
            futures::stream::iter(it)
        })
        .flatten();
    QueryResponse::new(fields, data)
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_dates_match_postgres() {
        let f = |d| {
            let mut s = String::new();
            super::iso_date(d, &mut s);
            s
        };
        assert_eq!(f(0), "1970-01-01");
        assert_eq!(f(19782), "2024-02-29");
        assert_eq!(f(-719162), "0001-01-01");
        assert_eq!(f(-719163), "0001-12-31 BC");
        assert_eq!(f(2932896), "9999-12-31");
    }

    #[test]
    fn zoned_timestamps_read_in_the_session_zone() {
        let f = |zone: &str, micros: i64| {
            let mut s = String::new();
            super::Zone::of(zone).expect(zone).write(micros, &mut s);
            s
        };
        let noon = 1_577_880_000_000_000; // 2020-01-01 12:00:00 UTC
        assert_eq!(f("UTC", noon), "2020-01-01 12:00:00+00");
        assert_eq!(f("Asia/Tokyo", noon), "2020-01-01 21:00:00+09");
        assert_eq!(f("Asia/Kolkata", noon), "2020-01-01 17:30:00+05:30");
        assert_eq!(f("America/New_York", noon + 180 * 86_400_000_000), "2020-06-29 08:00:00-04");
        assert!(super::Zone::of("UTC+5").is_none(), "POSIX offsets count west");
    }

    #[test]
    fn iso_timestamps_trim_like_postgres() {
        let f = |us| {
            let mut s = String::new();
            super::iso_timestamp(us, &mut s);
            s
        };
        let base = 19782i64 * 86_400_000_000 + (13 * 3600 + 14 * 60 + 15) * 1_000_000;
        assert_eq!(f(base), "2024-02-29 13:14:15");
        assert_eq!(f(base + 123456), "2024-02-29 13:14:15.123456");
        assert_eq!(f(base + 100000), "2024-02-29 13:14:15.1");
        assert_eq!(f(-1), "1969-12-31 23:59:59.999999");
    }
}
