//! Arrow batches → PostgreSQL rows, text or binary, straight from the arrays (arrow-pg).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion::arrow::datatypes::SchemaRef;
use futures::StreamExt;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, QueryResponse};
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

/// Row descriptions for a result schema in the requested format.
pub fn fields(schema: &SchemaRef, format: &Format, opts: Arc<FormatOptions>) -> PgWireResult<Arc<Vec<FieldInfo>>> {
    Ok(Arc::new(arrow_schema_to_pg_fields(schema, format, Some(opts))?))
}

/// Encode a stream of batches as a pgwire query response, batch by batch.
pub fn response(fields: Arc<Vec<FieldInfo>>, rows: RowStream) -> QueryResponse {
    let f = fields.clone();
    let data = rows
        .map(move |batch| {
            let it: Box<dyn Iterator<Item = PgWireResult<pgwire::messages::data::DataRow>> + Send + Sync> = match batch {
                Ok(b) => encode_recordbatch(f.clone(), b),
                Err(e) => Box::new(std::iter::once(Err(PgWireError::from(e)))),
            };
            futures::stream::iter(it)
        })
        .flatten();
    QueryResponse::new(fields, data)
}
