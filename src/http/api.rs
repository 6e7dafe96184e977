//! The HTTP query API: `POST /v1/sql`, `POST /v1/ask`, `POST /v1/explain`, and the OpenAPI
//! description at `/v1/openapi.json`. Each request opens a session for its caller (entry
//! `http`) and hands the statement to the same pipeline as the wire: same governance, limits,
//! audit. Errors are `{"sqlstate", "message", "hint"}` with an HTTP status for the SQLSTATE.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use datafusion::common::ScalarValue;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::{self, Columns};
use super::credentials::Caller;
use crate::error::LaloError;
use crate::pipeline::{Delivery, Input, Lalo, Outcome, Request};
use crate::router::Route;
use crate::session::{EntryPoint, Session};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlBody {
    sql: String,
    database: Option<String>,
    #[serde(default)]
    params: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AskBody {
    question: String,
    database: Option<String>,
    /// The last answer's `conversation`, sent back for a follow-up: HTTP keeps no session, the
    /// client carries the turn (any replica can answer it). Each turn is governed on its own,
    /// so what a client writes here gains it nothing it could not send as SQL.
    previous: Option<PreviousTurn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviousTurn {
    question: String,
    sql: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainBody {
    sql: Option<String>,
    question: Option<String>,
    database: Option<String>,
}

/// The `/v1` routes (authentication is layered on by the caller).
pub fn routes(lalo: Arc<Lalo>) -> Router {
    Router::new()
        .route("/v1/sql", post(sql))
        .route("/v1/ask", post(ask))
        .route("/v1/explain", post(explain))
        .with_state(lalo)
}

/// The OpenAPI description (served without credentials).
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json"))
}

/// An error as the API answers it.
fn failure(e: &LaloError) -> Response {
    let code = e.sqlstate().to_string();
    let status = match code.as_str() {
        "42501" => StatusCode::FORBIDDEN,
        // The caller's own credentials are checked before any statement (credentials.rs): a
        // 28P01 here is an upstream refusing lalo.
        "28P01" => StatusCode::BAD_GATEWAY,
        "28000" => StatusCode::FORBIDDEN,
        "54000" | "53300" => StatusCode::TOO_MANY_REQUESTS,
        "53400" => StatusCode::UNPROCESSABLE_ENTITY,
        "57014" => StatusCode::REQUEST_TIMEOUT,
        "08006" | "08001" | "08000" => StatusCode::BAD_GATEWAY,
        "42000" => StatusCode::UNPROCESSABLE_ENTITY,
        c if c.starts_with("3D") => StatusCode::NOT_FOUND,
        c if c.starts_with("42") || c.starts_with("22") || c.starts_with("0A") || c.starts_with("2") => StatusCode::BAD_REQUEST,
        c if c.starts_with("53") || c.starts_with("57") => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut body = json!({ "sqlstate": code, "message": e.to_string() });
    if let Some(h) = e.hint() {
        body["hint"] = json!(h);
    }
    (status, Json(body)).into_response()
}

/// 22P02: input the request can fix (a body, a parameter).
fn invalid(message: impl Into<String>) -> LaloError {
    LaloError::Data { code: "22P02", message: message.into() }
}

/// A body that is not the JSON this route takes: 400 with 22P02 (invalid input), as a client
/// error the request can fix.
fn bad_body(e: JsonRejection) -> Response {
    let status = e.status();
    let body = json!({ "sqlstate": "22P02", "message": format!("request body: {}", e.body_text()) });
    (status, Json(body)).into_response()
}

/// The caller's session in the database asked for; a refusal is audited as a refused login.
async fn open(lalo: &Lalo, caller: &Caller, database: Option<&str>) -> Result<Session, LaloError> {
    let db = database.unwrap_or("");
    let opened = if !db.is_empty() && !lalo.engine.has_database(db) {
        Err(LaloError::Data { code: "3D000", message: format!("database \"{db}\" does not exist") })
    } else {
        lalo.open_session(&caller.user, db, &caller.client, EntryPoint::Http)
    };
    if let Err(e) = &opened {
        super::credentials::audit_refused(lalo, &caller.user, &caller.client, &e.audit_text(), "http").await;
    }
    opened
}

/// How the client asked for rows.
enum Wants {
    Json,
    Ndjson,
    Arrow,
}

fn wants(headers: &HeaderMap) -> Wants {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if accept.contains("application/vnd.apache.arrow.stream") {
        Wants::Arrow
    } else if accept.contains("application/x-ndjson") {
        Wants::Ndjson
    } else {
        Wants::Json
    }
}

/// Rows of an outcome in the format asked for; `extra` fields join a JSON document.
async fn rows(session: &Session, outcome: Outcome, wants: Wants, extra: Map<String, Value>) -> Result<Response, LaloError> {
    let (schema, rows) = match outcome {
        Outcome::Rows { schema, rows } => (schema, rows),
        _ => return Err(LaloError::NotSupported("only statements that return rows can run here".into())),
    };
    // Streamed formats wait for the first batch, so an error before any row is a status.
    let rows = match wants {
        Wants::Json => rows,
        _ => body::first_batch_ready(rows).await?,
    };
    Ok(match wants {
        Wants::Arrow => {
            let body = Body::from_stream(body::arrow_ipc(schema, rows));
            ([(header::CONTENT_TYPE, "application/vnd.apache.arrow.stream")], body).into_response()
        }
        Wants::Ndjson => {
            let body = Body::from_stream(body::ndjson(Columns::of(&schema, session)?, rows));
            ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
        }
        Wants::Json => Json(body::document(&Columns::of(&schema, session)?, rows, extra).await?).into_response(),
    })
}

/// A JSON parameter as a value for `$n`: numbers, strings, booleans and null.
fn param(v: &Value) -> Result<ScalarValue, LaloError> {
    Ok(match v {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::Number(n) if n.is_i64() => ScalarValue::Int64(n.as_i64()),
        Value::Number(n) => ScalarValue::Float64(n.as_f64()),
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        other => return Err(invalid(format!("parameter {other}: only numbers, strings, booleans and null are taken"))),
    })
}

async fn sql(State(lalo): State<Arc<Lalo>>, Extension(caller): Extension<Caller>, headers: HeaderMap, body: Result<Json<SqlBody>, JsonRejection>) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_body(e),
    };
    let run = async {
        let session = open(&lalo, &caller, body.database.as_deref()).await?;
        let route = match single(&lalo, &session, &body.sql) {
            Ok(r) => r,
            Err(e) => return Err(lalo.refuse(&session, &body.sql, e).await),
        };
        let outcome = match (route, body.params.is_empty()) {
            (route, true) => lalo.run(&session, Input::Routed { route, text: &body.sql }, Delivery::default()).await?,
            (Route::Query(stmt), false) => bound(&lalo, &session, &body.sql, &stmt, &body.params).await?,
            _ => return Err(lalo.refuse(&session, &body.sql, invalid("parameters are taken with SQL statements only")).await),
        };
        rows(&session, outcome, wants(&headers), Map::new()).await
    };
    let span = crate::telemetry::statement_span("http", &caller.user, &body.sql, Some(&headers));
    tracing::Instrument::instrument(run, span).await.unwrap_or_else(|e| failure(&e))
}

/// Run a statement with `$n` parameters (pipeline/params.rs); the JSON values are read only
/// once the statement is known to be governed, so a bad value is refused and audited there too.
async fn bound(lalo: &Lalo, session: &Session, text: &str, stmt: &datafusion::sql::sqlparser::ast::Statement, params: &[Value]) -> Result<Outcome, LaloError> {
    let values = params.iter().map(param).collect::<Result<Vec<_>, _>>();
    lalo.run_with_params(session, text, stmt, values, Delivery::default()).await
}

/// Exactly one SQL statement or question.
fn single(lalo: &Lalo, session: &Session, text: &str) -> Result<Route, LaloError> {
    let mut routes = lalo.route(session, text)?;
    if routes.len() != 1 {
        return Err(LaloError::NotSupported("send exactly one statement per request".into()));
    }
    match routes.remove(0) {
        r @ (Route::Query(_) | Route::Ask { .. }) => Ok(r),
        _ => Err(LaloError::NotSupported("session commands (SET, BEGIN, cursors, PREPARE) have no session to act on over HTTP".into())),
    }
}

async fn ask(State(lalo): State<Arc<Lalo>>, Extension(caller): Extension<Caller>, headers: HeaderMap, body: Result<Json<AskBody>, JsonRejection>) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_body(e),
    };
    let run = async {
        let session = open(&lalo, &caller, body.database.as_deref()).await?;
        if let Some(p) = &body.previous {
            let turn = crate::nl::followup::Turn { database: session.database.clone(), question: p.question.clone(), sql: p.sql.clone() };
            *session.conversation.lock() = Some(turn);
        }
        let input = format!("ASK {}", body.question);
        let a = lalo.answer(&session, &body.question, &input, Delivery::default()).await?;
        let mut extra = Map::new();
        extra.insert("sql".into(), json!(a.sql));
        extra.insert("decision".into(), json!(a.decision));
        let read = a.trace.reading.clone().unwrap_or_else(|| body.question.clone());
        extra.insert("conversation".into(), json!({ "question": read, "sql": a.sql }));
        rows(&session, a.outcome, wants(&headers), extra).await
    };
    let span = crate::telemetry::statement_span("http", &caller.user, &body.question, Some(&headers));
    tracing::Instrument::instrument(run, span).await.unwrap_or_else(|e| failure(&e))
}

async fn explain(State(lalo): State<Arc<Lalo>>, Extension(caller): Extension<Caller>, body: Result<Json<ExplainBody>, JsonRejection>) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_body(e),
    };
    let run = async {
        let session = open(&lalo, &caller, body.database.as_deref()).await?;
        match (body.sql, body.question) {
            (Some(sql), None) => {
                let stmt = match single(&lalo, &session, &sql) {
                    Ok(Route::Query(stmt)) => stmt,
                    Ok(_) => return Err(LaloError::NotSupported("explain takes one SQL statement; send questions as \"question\"".into())),
                    Err(e) => return Err(lalo.refuse(&session, &sql, e).await),
                };
                let start = Request { input: format!("EXPLAIN {sql}"), sql: Some(stmt.to_string()), ..Default::default() };
                let g = lalo.explain_sql(&session, &stmt, &start).await?;
                Ok(json!({
                    "sql": stmt.to_string(),
                    "plan": format!("{}", g.plan().display_indent()),
                    "decision": g.decision,
                    "rules": g.rules,
                    "objects": g.objects,
                }))
            }
            (None, Some(question)) => {
                let p = lalo.explain_question(&session, &question, &format!("EXPLAIN ASK {question}")).await?;
                Ok(json!({
                    "question": question,
                    "sql": p.sql,
                    "plan": format!("{}", p.governed.plan().display_indent()),
                    "decision": p.governed.decision,
                    "rules": p.governed.rules,
                    "objects": p.governed.objects,
                }))
            }
            _ => Err(invalid("send either \"sql\" or \"question\"")),
        }
    };
    match run.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => failure(&e),
    }
}
