//! The Flight SQL service: statements and prepared statements. A statement's FlightInfo is
//! answered after planning and governing it (so a denial comes before any ticket, and the schema
//! is the governed one); its ticket carries the SQL text, and DoGet runs it through the pipeline
//! again under the caller of that call. Prepared statements keep their text and bound values
//! here, per caller; executing one runs the text with the values (pipeline/params.rs).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTables,
    CommandPreparedStatementQuery, CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::common::ScalarValue;
use futures::{Stream, TryStreamExt};
use parking_lot::Mutex;
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::auth::{Auth, Caller};
use super::status;
use crate::error::LaloError;
use crate::pipeline::{Delivery, Input, Lalo, Outcome};
use crate::router::Route;
use crate::session::{EntryPoint, Session};

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

/// A prepared statement: whose it is, its text, the values bound last.
struct Prepared {
    user: String,
    sql: String,
    values: Option<Vec<ScalarValue>>,
    used: std::time::Instant,
}

/// Prepared statements a caller may hold at once, and how long an unused one is kept (Flight
/// has no connection whose end would close them).
const PREPARED_PER_USER: usize = 256;
const PREPARED_IDLE: std::time::Duration = std::time::Duration::from_secs(3600);

pub struct LaloFlight {
    pub(super) lalo: Arc<Lalo>,
    auth: Auth,
    prepared: Mutex<HashMap<Vec<u8>, Prepared>>,
}

impl LaloFlight {
    pub fn new(lalo: Arc<Lalo>) -> Self {
        LaloFlight { auth: Auth::new(lalo.clone()), lalo, prepared: Mutex::new(HashMap::new()) }
    }

    /// The caller's session for one call (the embedded database: every database the caller
    /// may read is reachable by its three-part name).
    pub(super) async fn session<T>(&self, req: &Request<T>) -> Result<Session, Status> {
        let Caller { user, client } = self.auth.caller(req).await?;
        self.lalo.open_session(&user, "", &client, EntryPoint::Flight).map_err(|e| status(&e))
    }

    /// One SQL statement (no session commands: a Flight call has no session to act on).
    async fn statement(&self, session: &Session, sql: &str) -> Result<Box<datafusion::sql::sqlparser::ast::Statement>, Status> {
        let routed = self.lalo.route(session, sql).and_then(|mut routes| match (routes.len(), routes.pop()) {
            (1, Some(Route::Query(stmt))) => Ok(stmt),
            _ => Err(LaloError::NotSupported("send exactly one SQL query per call".into())),
        });
        match routed {
            Ok(s) => Ok(s),
            Err(e) => Err(status(&self.lalo.refuse(session, sql, e).await)),
        }
    }

    /// The governed result schema of a statement, with PostgreSQL's column names; a refusal is
    /// audited.
    async fn governed_schema(&self, session: &Session, sql: &str) -> Result<(SchemaRef, datafusion::logical_expr::LogicalPlan), Status> {
        let stmt = self.statement(session, sql).await?;
        let planned = async {
            let plan = self.lalo.plan(session, &stmt).await?;
            let governed = self.lalo.govern(session, plan.clone()).await?;
            let names = crate::naming::pg_names(&stmt);
            Ok::<_, LaloError>((nullable(&crate::pipeline::rename(governed.plan().schema().as_arrow(), names.as_deref())), plan))
        };
        match planned.await {
            Ok(p) => Ok(p),
            Err(e) => Err(status(&self.lalo.refuse(session, sql, e).await)),
        }
    }

    /// Rows of an outcome as Flight data.
    fn stream(outcome: Outcome) -> Result<DoGetStream, Status> {
        let Outcome::Rows { schema, rows } = outcome else {
            return Err(Status::invalid_argument("0A000: only statements that return rows run over Flight SQL"));
        };
        let batches = rows.map_err(|e| FlightError::Tonic(Box::new(status(&e))));
        let stream = FlightDataEncoderBuilder::new().with_schema(nullable(&schema)).build(batches).map_err(Status::from);
        Ok(Box::pin(stream))
    }

    fn info(schema: &Schema, ticket: impl ProstMessageExt, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
        let ticket = Ticket { ticket: ticket.as_any().encode_to_vec().into() };
        FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(e.to_string()))
            .map(|i| i.with_endpoint(FlightEndpoint::new().with_ticket(ticket)).with_descriptor(descriptor))
    }

    fn ipc_schema(schema: &Schema) -> Result<bytes::Bytes, Status> {
        let IpcMessage(b) = SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into().map_err(|e: datafusion::arrow::error::ArrowError| Status::internal(e.to_string()))?;
        Ok(b)
    }

    /// The prepared statement of this handle, if it is the caller's.
    fn prepared_of(&self, handle: &[u8], user: &str) -> Result<(String, Option<Vec<ScalarValue>>), Status> {
        match self.prepared.lock().get_mut(handle) {
            Some(p) if p.user == user => {
                p.used = std::time::Instant::now();
                Ok((p.sql.clone(), p.values.clone()))
            }
            _ => Err(Status::not_found("26000: prepared statement does not exist")),
        }
    }
}

/// The schema with every column nullable: what FlightInfo announces and DoGet sends must be the
/// same, and a governed plan's columns can turn nullable as it runs (a mask, an outer join
/// planned physically), so both say nullable.
fn nullable(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

#[tonic::async_trait]
impl FlightSqlService for LaloFlight {
    type FlightService = LaloFlight;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        let (_, token) = self.auth.handshake(&request).await?;
        let reply = HandshakeResponse { protocol_version: 0, payload: token.clone().into() };
        let mut response: Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>> =
            Response::new(Box::pin(futures::stream::iter(vec![Ok(reply)])));
        let bearer = format!("Bearer {token}").parse().map_err(|_| Status::internal("token"))?;
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(&self, query: CommandStatementQuery, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let session = self.session(&request).await?;
        let (schema, _) = self.governed_schema(&session, &query.query).await?;
        let ticket = TicketStatementQuery { statement_handle: query.query.into_bytes().into() };
        Ok(Response::new(Self::info(&schema, ticket, request.into_inner())?))
    }

    async fn do_get_statement(&self, ticket: TicketStatementQuery, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request).await?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec()).map_err(|_| Status::invalid_argument("22021: the ticket is not UTF-8"))?;
        let run = async {
            let stmt = self.statement(&session, &sql).await?;
            let input = Input::Routed { route: Route::Query(stmt), text: &sql };
            self.lalo.run(&session, input, Delivery::default()).await.map_err(|e| status(&e))
        };
        let outcome = tracing::Instrument::instrument(run, span(&request, &session.user, &sql)).await?;
        Ok(Response::new(Self::stream(outcome)?))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let session = self.session(&request).await?;
        let sql = super::qmark::numbered(&query.query);
        let (schema, plan) = self.governed_schema(&session, &sql).await?;
        let types = crate::pipeline::param_types(&plan).map_err(|e| status(&e))?;
        let params = Schema::new(
            types
                .iter()
                .enumerate()
                .map(|(i, t)| Field::new(format!("${}", i + 1), t.clone().unwrap_or(datafusion::arrow::datatypes::DataType::Utf8), true))
                .collect::<Vec<_>>(),
        );
        let handle: Vec<u8> = rand::random::<[u8; 16]>().to_vec();
        {
            let mut prepared = self.prepared.lock();
            prepared.retain(|_, p| p.used.elapsed() < PREPARED_IDLE);
            if prepared.values().filter(|p| p.user == session.user).count() >= PREPARED_PER_USER {
                return Err(Status::resource_exhausted("53400: too many open prepared statements; close some"));
            }
            prepared.insert(handle.clone(), Prepared { user: session.user.clone(), sql, values: None, used: std::time::Instant::now() });
        }
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema: Self::ipc_schema(&schema)?,
            parameter_schema: Self::ipc_schema(&params)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let caller = self.auth.caller(&request).await?;
        let handle = query.prepared_statement_handle.to_vec();
        self.prepared_of(&handle, &caller.user)?;
        // The parameter batch: one row of values (a query runs once per bound row; lalo takes
        // one row, as its statements are read-only and clients bind one row per execution).
        let flight = request.into_inner().map_err(FlightError::from);
        let mut batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(flight);
        let mut values = Vec::new();
        if let Some(batch) = batches.try_next().await.map_err(|e| Status::invalid_argument(format!("22P02: parameters: {e}")))? {
            if batch.num_rows() > 1 {
                return Err(Status::invalid_argument("0A000: bind one row of parameters per execution"));
            }
            if batch.num_rows() == 1 {
                for c in batch.columns() {
                    values.push(ScalarValue::try_from_array(c, 0).map_err(|e| Status::invalid_argument(format!("22P02: {e}")))?);
                }
            }
        }
        if let Some(p) = self.prepared.lock().get_mut(&handle) {
            p.values = Some(values);
        }
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(handle.into()) })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let session = self.session(&request).await?;
        let (sql, _) = self.prepared_of(&cmd.prepared_statement_handle, &session.user)?;
        let (schema, _) = self.governed_schema(&session, &sql).await?;
        Ok(Response::new(Self::info(&schema, cmd, request.into_inner())?))
    }

    async fn do_get_prepared_statement(&self, cmd: CommandPreparedStatementQuery, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request).await?;
        let (sql, values) = self.prepared_of(&cmd.prepared_statement_handle, &session.user)?;
        let run = async {
            let stmt = self.statement(&session, &sql).await?;
            let outcome = match values {
                Some(values) if !values.is_empty() => self.lalo.run_with_params(&session, &sql, &stmt, Ok(values), Delivery::default()).await,
                _ => self.lalo.run(&session, Input::Routed { route: Route::Query(stmt), text: &sql }, Delivery::default()).await,
            };
            outcome.map_err(|e| status(&e))
        };
        let outcome = tracing::Instrument::instrument(run, span(&request, &session.user, &sql)).await?;
        Ok(Response::new(Self::stream(outcome)?))
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let caller = self.auth.caller(&request).await?;
        let mut prepared = self.prepared.lock();
        if prepared.get(query.prepared_statement_handle.as_ref()).is_some_and(|p| p.user == caller.user) {
            prepared.remove(query.prepared_statement_handle.as_ref());
        }
        Ok(())
    }

    async fn get_flight_info_catalogs(&self, query: CommandGetCatalogs, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.auth.caller(&request).await?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(Self::info(&schema, query, request.into_inner())?))
    }

    async fn get_flight_info_schemas(&self, query: CommandGetDbSchemas, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.auth.caller(&request).await?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(Self::info(&schema, query, request.into_inner())?))
    }

    async fn get_flight_info_tables(&self, query: CommandGetTables, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.auth.caller(&request).await?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(Self::info(&schema, query, request.into_inner())?))
    }

    async fn get_flight_info_primary_keys(&self, query: CommandGetPrimaryKeys, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.auth.caller(&request).await?;
        Ok(Response::new(Self::info(&super::metadata::primary_keys_schema(), query, request.into_inner())?))
    }

    async fn get_flight_info_sql_info(&self, query: CommandGetSqlInfo, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.auth.caller(&request).await?;
        let schema = super::metadata::sql_info().schema();
        Ok(Response::new(Self::info(&schema, query, request.into_inner())?))
    }

    async fn do_get_catalogs(&self, query: CommandGetCatalogs, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request).await?;
        self.catalogs(&session, query).await
    }

    async fn do_get_schemas(&self, query: CommandGetDbSchemas, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request).await?;
        self.schemas(&session, query).await
    }

    async fn do_get_tables(&self, query: CommandGetTables, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request).await?;
        self.tables(&session, query).await
    }

    async fn do_get_primary_keys(&self, query: CommandGetPrimaryKeys, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request).await?;
        self.primary_keys(&session, query).await
    }

    async fn do_get_sql_info(&self, query: CommandGetSqlInfo, request: Request<Ticket>) -> Result<Response<DoGetStream>, Status> {
        self.auth.caller(&request).await?;
        let batch = super::metadata::sql_info().record_batch(query.info).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(super::metadata::one_batch(batch)))
    }

    async fn do_get_fallback(&self, _request: Request<Ticket>, message: Any) -> Result<Response<DoGetStream>, Status> {
        Err(Status::unimplemented(format!("0A000: {} is not supported", message.type_url)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// The span of a Flight SQL statement, in the caller's trace when its gRPC metadata carries a
/// W3C `traceparent`.
fn span<T>(request: &Request<T>, user: &str, sql: &str) -> tracing::Span {
    if !crate::telemetry::enabled() {
        return tracing::Span::none();
    }
    let headers = request.metadata().clone().into_headers();
    crate::telemetry::statement_span("flight", user, sql, Some(&headers))
}
