//! The extended query protocol: Parse/Bind/Describe/Execute/Close/Sync, named and unnamed
//! statements and portals, parameter types from the client or inferred from the plan.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};
use futures::{Sink, SinkExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::ExtendedQueryHandler;
use pgwire::api::results::{DescribePortalResponse, DescribeStatementResponse, FieldInfo, Response};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{MemPortalStore, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, Type, DEFAULT_NAME};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::extendedquery::{Bind, BindComplete};
use pgwire::messages::PgWireBackendMessage;

use super::simple::{cancel_arm, respond, route_text};
use super::session_of;
use crate::session::Session;
use crate::error::LaloError;
use datafusion::sql::sqlparser::ast::{DataType as SqlDataType, Ident, Statement as SqlStatement};
use crate::router::Route;
use crate::pipeline::{Bound, Delivery, Drafted, Input, Lalo, LaneStatement};

/// A parsed statement: its text, route, and (for SQL) the plan with placeholders.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub text: String,
    pub route: Option<Route>,
    pub plan: Option<LogicalPlan>,
    pub param_types: Vec<Option<DataType>>,
    /// PostgreSQL names for the result columns.
    pub names: Option<Vec<Option<String>>>,
    pub epoch: u64,
    /// The statement as lalo prints it, for audit records (printed once, not per execution).
    pub sql: Option<String>,
    /// Result descriptions already made, by result format (libpq describes the portal on every
    /// execution of a prepared statement).
    pub described: Arc<super::encode::ByFormat<Vec<FieldInfo>>>,
    /// A question drafted at Parse, which Execute runs (one draft per question).
    pub drafted: Option<Drafted>,
    /// The statement-cache key (text and parameter types), made once here.
    pub key: String,
    /// A statement the PostgreSQL lane took: it runs upstream as written (pipeline/postgres.rs).
    pub lane: Option<Arc<LaneStatement>>,
}

pub struct ExtendedHandler {
    lalo: Arc<Lalo>,
    parser: Arc<LaloParser>,
}

impl ExtendedHandler {
    pub fn new(lalo: Arc<Lalo>) -> Self {
        ExtendedHandler { parser: Arc::new(LaloParser { lalo: lalo.clone() }), lalo }
    }
}

pub struct LaloParser {
    lalo: Arc<Lalo>,
}

/// Parameter types DataFusion inferred, falling back to explicit casts (`$1::int`).
fn inferred_param_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>, LaloError> {
    let mut types: HashMap<String, Option<DataType>> = plan.get_parameter_types()?;
    plan.apply_with_subqueries(|node| {
        for e in node.expressions() {
            e.apply(|x| {
                if let Expr::Cast(c) = x {
                    if let Expr::Placeholder(p) = c.expr.as_ref() {
                        let slot = types.entry(p.id.clone()).or_insert(None);
                        if slot.is_none() {
                            *slot = Some(c.field.data_type().clone());
                        }
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    // One slot per parameter up to the highest `$n`, as PostgreSQL counts them: a statement
    // using only `$1` and `$3` still takes three values, and `$3`'s type stays in the third slot.
    let mut ordered: Vec<(usize, Option<DataType>)> = types
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix('$')?.parse::<usize>().ok().filter(|n| (1..=u16::MAX as usize).contains(n))?, v)))
        .collect();
    ordered.sort_by_key(|(k, _)| *k);
    let mut slots = vec![None; ordered.last().map_or(0, |(k, _)| *k)];
    for (k, v) in ordered {
        slots[k - 1] = v;
    }
    Ok(slots)
}

/// A parsed statement with its Bind values, for the pipeline. A plan made under other settings
/// than the session's now is not used (the pipeline plans the statement again).
pub fn bound<'a>(
    prepared: &'a Prepared,
    statement: &'a SqlStatement,
    params: datafusion::common::ParamValues,
    epoch: u64,
) -> Bound<'a> {
    Bound {
        text: &prepared.text,
        statement,
        plan: prepared.plan.as_ref().filter(|_| prepared.epoch == epoch),
        param_types: &prepared.param_types,
        key: &prepared.key,
        params,
        sql: Some(prepared.sql.clone().unwrap_or_else(|| statement.to_string())),
        names: prepared.names.clone(),
    }
}

/// Bind's value and format counts against the statement, as PostgreSQL checks them (08P01).
fn check_bind_counts(bind: &Bind, stored: &StoredStatement<Prepared>, name: &str) -> Result<(), LaloError> {
    let own = match &stored.statement.lane {
        Some(lane) => lane.params.len(),
        None => stored.statement.param_types.len(),
    };
    let required = stored.parameter_types.len().max(own);
    let supplied = bind.parameters.len();
    if supplied != required {
        return Err(LaloError::ProtocolViolation(format!(
            "bind message supplies {supplied} parameters, but prepared statement \"{name}\" requires {required}"
        )));
    }
    let formats = bind.parameter_format_codes.len();
    if formats > 1 && formats != supplied {
        return Err(LaloError::ProtocolViolation(format!(
            "bind message has {formats} parameter formats but {supplied} parameters"
        )));
    }
    Ok(())
}

/// SQL types for the placeholders when the client declared at least one in Parse: declared
/// types win, the rest come from DataFusion's inference, else text (PostgreSQL's `unknown`).
fn declared_types(types: &[Option<Type>], inferred: &[Option<DataType>]) -> Option<Vec<SqlDataType>> {
    let known = |t: &Option<Type>| t.as_ref().and_then(pg_to_sql);
    if !types.iter().any(|t| known(t).is_some()) {
        return None;
    }
    let n = types.len().max(inferred.len());
    Some(
        (0..n)
            .map(|i| {
                types
                    .get(i)
                    .and_then(known)
                    .or_else(|| inferred.get(i).cloned().flatten().as_ref().and_then(arrow_to_sql))
                    .unwrap_or(SqlDataType::Text)
            })
            .collect(),
    )
}

/// SQL types for placeholders that only a cast types (`$1::float8`), when every placeholder has
/// a type that way; `None` when the plan types them all already.
fn cast_types(plan: &LogicalPlan, inferred: &[Option<DataType>]) -> Option<Vec<SqlDataType>> {
    let own = plan.get_parameter_types().ok()?;
    if !own.values().any(|t| t.is_none()) {
        return None;
    }
    inferred.iter().map(|t| t.as_ref().and_then(arrow_to_sql)).collect()
}

fn pg_to_sql(t: &Type) -> Option<SqlDataType> {
    use datafusion::sql::sqlparser::ast::{ExactNumberInfo, TimezoneInfo};
    Some(match *t {
        Type::BOOL => SqlDataType::Boolean,
        Type::INT2 => SqlDataType::SmallInt(None),
        Type::INT4 => SqlDataType::Int(None),
        Type::INT8 => SqlDataType::BigInt(None),
        Type::FLOAT4 => SqlDataType::Real,
        Type::FLOAT8 => SqlDataType::DoublePrecision,
        Type::NUMERIC => SqlDataType::Numeric(ExactNumberInfo::None),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => SqlDataType::Text,
        Type::DATE => SqlDataType::Date,
        Type::TIMESTAMP => SqlDataType::Timestamp(None, TimezoneInfo::None),
        Type::TIMESTAMPTZ => SqlDataType::Timestamp(None, TimezoneInfo::WithTimeZone),
        Type::BYTEA => SqlDataType::Bytea,
        _ => return None,
    })
}

fn arrow_to_sql(t: &DataType) -> Option<SqlDataType> {
    use datafusion::sql::sqlparser::ast::{ExactNumberInfo, TimezoneInfo};
    Some(match t {
        DataType::Boolean => SqlDataType::Boolean,
        DataType::Int16 => SqlDataType::SmallInt(None),
        DataType::Int32 => SqlDataType::Int(None),
        DataType::Int64 => SqlDataType::BigInt(None),
        DataType::Float32 => SqlDataType::Real,
        DataType::Float64 => SqlDataType::DoublePrecision,
        DataType::Decimal128(p, s) => SqlDataType::Numeric(ExactNumberInfo::PrecisionAndScale(*p as u64, *s as i64)),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => SqlDataType::Text,
        DataType::Date32 => SqlDataType::Date,
        DataType::Timestamp(_, None) => SqlDataType::Timestamp(None, TimezoneInfo::None),
        DataType::Timestamp(_, Some(_)) => SqlDataType::Timestamp(None, TimezoneInfo::WithTimeZone),
        DataType::Binary => SqlDataType::Bytea,
        _ => return None,
    })
}

#[async_trait]
impl QueryParser for LaloParser {
    type Statement = Prepared;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Prepared>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = session_of(&self.lalo, client)?;
        // A SELECT over the session's upstream PostgreSQL: prepared there as written, governed.
        let oids: Vec<u32> = types.iter().map(|t| t.as_ref().map(|t| t.oid()).unwrap_or(0)).collect();
        if let Some(lane) = self.lalo.prepare_postgres(&session, sql, &oids).await {
            let lane = lane.map_err(PgWireError::from)?;
            return Ok(Prepared {
                text: sql.to_string(),
                route: None,
                plan: None,
                param_types: vec![],
                names: None,
                epoch: session.epoch(),
                sql: None,
                described: Default::default(),
                drafted: None,
                key: String::new(),
                lane: Some(Arc::new(lane)),
            });
        }
        let mut routes = self.lalo.route(&session, sql).map_err(PgWireError::from)?;
        if routes.len() > 1 {
            return Err(LaloError::Syntax("cannot insert multiple commands into a prepared statement".into()).into());
        }
        let epoch = session.epoch();
        let Some(route) = routes.pop() else {
            return Ok(Prepared {
                text: sql.to_string(),
                route: None,
                plan: None,
                param_types: vec![],
                names: None,
                epoch,
                sql: None,
                described: Default::default(),
                drafted: None,
                key: String::new(),
                lane: None,
            });
        };
        let (plan, param_types) = match &route {
            Route::Query(stmt) => {
                let untyped = self.lalo.plan(&session, stmt).await.map_err(PgWireError::from)?;
                let inferred = inferred_param_types(&untyped).map_err(PgWireError::from)?;
                // Types the client declared in Parse type the placeholders (`SELECT $1` echoes an
                // int4); so do casts of otherwise untyped placeholders (`$1::float8`), as in
                // PostgreSQL, so that such a statement's plan can be cached and sent upstream.
                let declared = declared_types(types, &inferred).or_else(|| cast_types(&untyped, &inferred));
                let plan = match declared {
                    Some(data_types) => {
                        let prepare = SqlStatement::Prepare {
                            name: Ident::new("lalo_parse"),
                            data_types,
                            statement: stmt.clone(),
                        };
                        let typed = self.lalo.plan(&session, &prepare).await;
                        match typed {
                            Ok(LogicalPlan::Statement(datafusion::logical_expr::Statement::Prepare(p))) => p.input.as_ref().clone(),
                            Ok(other) => other,
                            Err(e) if declared_types(types, &inferred).is_some() => return Err(e.into()),
                            Err(_) => untyped,
                        }
                    }
                    None => untyped,
                };
                let types = inferred_param_types(&plan).map_err(PgWireError::from)?;
                (Some(plan), types)
            }
            _ => (None, vec![]),
        };
        let mut names = match &route {
            Route::Query(stmt) => crate::naming::pg_names(stmt),
            _ => None,
        };
        // A question is drafted now, so Describe can tell its columns and Execute runs this
        // draft. If it cannot be answered, Execute drafts again and reports why.
        let mut drafted = None;
        let plan = match &route {
            Route::Ask { question, explain } => match self.lalo.draft_ahead(&session, question, *explain).await {
                Ok(Some(d)) => {
                    names = d.names();
                    let plan = d.plan().clone();
                    drafted = Some(d);
                    Some(plan)
                }
                Ok(None) => crate::pipeline::explain_plan().ok(),
                Err(_) => None,
            },
            _ => plan,
        };
        let printed = match &route {
            Route::Query(stmt) => Some(stmt.to_string()),
            _ => None,
        };
        let key = Bound::cache_key(sql, &param_types);
        Ok(Prepared { text: sql.to_string(), route: Some(route), plan, param_types, names, epoch, sql: printed, described: Default::default(), drafted, key, lane: None })
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        if let Some(lane) = &stmt.lane {
            return Ok(lane.params.iter().map(|oid| crate::pgtypes::fields::pg_type(*oid)).collect());
        }
        stmt.param_types
            .iter()
            .map(|t| match t {
                Some(t) => crate::pgtypes::param_type(t),
                None => Ok(Type::UNKNOWN),
            })
            .collect()
    }

    fn get_result_schema(&self, stmt: &Prepared, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        let format = format.unwrap_or(&Format::UnifiedText);
        let codes = crate::pgtypes::fields::codes_of(format);
        if let Some(lane) = &stmt.lane {
            return Ok(crate::pgtypes::fields::field_infos(&lane.fields, &codes));
        }
        match (&stmt.route, &stmt.plan) {
            (_, Some(plan)) => stmt.described.get_or_try_insert(&codes, || {
                let schema = crate::pipeline::rename(plan.schema().as_arrow(), stmt.names.as_deref());
                Ok(crate::pgtypes::pg_fields(&super::encode::wire_schema(&schema), format, None)?)
            }),
            (Some(Route::Show(name)), None) => {
                let name = crate::settings::canonical(name);
                let (schema, _) = crate::execution::single_text(crate::settings::display_name(&name), "");
                Ok(arrow_pg::datatypes::arrow_schema_to_pg_fields(&schema, format, None)?)
            }
            _ => Ok(vec![]),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for ExtendedHandler {
    type Statement = Prepared;
    type QueryParser = LaloParser;

    fn query_parser(&self) -> Arc<LaloParser> {
        self.parser.clone()
    }

    /// Refused like Execute when governance would refuse the statement (describe.rs).
    async fn do_describe_statement<C>(&self, client: &mut C, target: &StoredStatement<Prepared>) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        super::describe::statement(&self.lalo, &self.parser, client, target).await
    }

    /// Refused like Execute when governance would refuse the statement (describe.rs).
    async fn do_describe_portal<C>(&self, client: &mut C, target: &Portal<Prepared>) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        super::describe::portal(&self.lalo, &self.parser, client, target).await
    }

    /// pgwire's Bind, with the parameter counts checked first: a portal never holds more or
    /// fewer values than its statement has parameters.
    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let key = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let Some(stored) = client.portal_store().get_statement(key) else {
            return Err(PgWireError::StatementNotFound(message.statement_name.clone().unwrap_or_default()));
        };
        check_bind_counts(&message, &stored, message.statement_name.as_deref().unwrap_or(""))?;
        let portal = Portal::try_new(&message, stored)?;
        client.portal_store().put_portal(Arc::new(portal));
        client.send(PgWireBackendMessage::BindComplete(BindComplete::new())).await?;
        Ok(())
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Prepared>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(&self.lalo, client)?;
        let span = crate::telemetry::statement_span("pgwire", &session.user, &portal.statement.statement.text, None);
        tracing::Instrument::instrument(self.execute_portal(client, session, portal), span).await
    }
}

impl ExtendedHandler {
    /// Execute a bound portal (the body of Execute, under the statement's span).
    async fn execute_portal<C>(&self, client: &mut C, session: Arc<Session>, portal: &Portal<Prepared>) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let codes = crate::pgtypes::fields::codes_of(&portal.result_column_format);
        if let Some(lane) = &prepared.lane {
            let delivery = Delivery { cancel: cancel_arm(client), cap: None, wire: Some(&codes) };
            let formats = crate::pgtypes::fields::codes_of(&portal.parameter_format);
            let outcome = Box::pin(self.lalo.run_postgres_bound(&session, lane, portal.parameters.clone(), formats, delivery)).await;
            return match outcome {
                Ok(o) => respond(client, &session, o, &portal.result_column_format, None).await,
                Err(e) => Err(e.into()),
            };
        }
        // Borrowed: a statement's AST is not cloned per execution.
        let Some(route) = prepared.route.as_ref() else { return Ok(Response::EmptyQuery) };
        let input = prepared.text.clone();
        let tag = matches!(route, Route::Rollback).then_some("ROLLBACK");
        let outcome = match route {
            Route::Query(stmt) => {
                let delivery = Delivery { cancel: cancel_arm(client), cap: None, wire: Some(&codes) };
                let types: Vec<Option<&DataType>> = prepared.param_types.iter().map(|t| t.as_ref()).collect();
                match arrow_pg::datatypes::df::deserialize_parameters(portal, &types) {
                    Ok(params) => {
                        let bound = bound(prepared, stmt, params, session.epoch());
                        // Boxed: the pipeline's futures are large, and the connection's own
                        // future should not carry them between statements.
                        Box::pin(self.lalo.run(&session, Input::Bound(bound), delivery)).await
                    }
                    Err(e) => {
                        let e = LaloError::Query(format!("invalid parameter: {e}"));
                        Err(self.lalo.refuse(&session, &input, e).await)
                    }
                }
            }
            Route::Ask { question, explain } => {
                let delivery = Delivery { cancel: cancel_arm(client), ..Default::default() };
                let drafted = prepared.drafted.as_ref();
                Box::pin(self.lalo.run_question(&session, question, *explain, &input, drafted, delivery)).await
            }
            Route::Declare { name, query } => {
                let input = route_text(&Route::Declare { name: name.clone(), query: query.clone() });
                let route = Route::Declare { name: name.clone(), query: query.clone() };
                let declared = Box::pin(self.lalo.run(&session, Input::Routed { route, text: &input }, Delivery::default())).await;
                if declared.is_ok() {
                    // The SQL cursor is also a protocol portal of the same name, as in PostgreSQL:
                    // psycopg 3 describes its server-side cursors that way.
                    if let Ok(plan) = Box::pin(self.lalo.plan(&session, query)).await {
                        let names = crate::naming::pg_names(&query);
                        let prepared = Prepared {
                            text: query.to_string(),
                            route: Some(Route::Query(query.clone())),
                            plan: Some(plan),
                            param_types: vec![],
                            names,
                            epoch: session.epoch(),
                            sql: None,
                            described: Default::default(),
                            drafted: None,
                            key: Bound::cache_key(&query.to_string(), &[]),
                            lane: None,
                        };
                        let stmt = Arc::new(StoredStatement::new(name.clone(), prepared, vec![]));
                        if let Some(store) = client.portal_store().as_any().downcast_ref::<MemPortalStore<Prepared>>() {
                            store.put_portal(Arc::new(Portal::new_cursor(name.clone(), stmt)));
                        }
                    }
                }
                declared
            }
            Route::Close(name) => {
                if let (Some(n), Some(store)) =
                    (name, client.portal_store().as_any().downcast_ref::<MemPortalStore<Prepared>>())
                {
                    store.rm_portal(n);
                }
                let input = route_text(&Route::Close(name.clone()));
                let route = Route::Close(name.clone());
                Box::pin(self.lalo.run(&session, Input::Routed { route, text: &input }, Delivery::default())).await
            }
            other => {
                let input = route_text(other);
                Box::pin(self.lalo.run(&session, Input::Routed { route: other.clone(), text: &input }, Delivery::default())).await
            }
        };
        match outcome {
            Ok(o) => respond(client, &session, o, &portal.result_column_format, tag).await,
            Err(e) => Err(e.into()),
        }
    }
}

