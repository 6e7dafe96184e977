//! Who is calling the HTTP query API: HTTP Basic with a lalo user's name and password (checked
//! as SCRAM checks it, against the salted password) or a bearer token mapped to a user (the
//! MCP token table). No credentials, or wrong ones, answer 401; a failed login leaves an audit
//! line as a failed pgwire login does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use crate::governance::audit::AuditRecord;
use crate::pipeline::Lalo;
use crate::server::auth::Verifiers;

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub client: String,
}

/// What the middleware checks credentials against.
pub struct Gate {
    pub lalo: Arc<Lalo>,
    pub verifiers: Verifiers,
    pub tokens: HashMap<String, String>,
}

/// The caller as its `Authorization` header says, or why not.
fn authenticate(gate: &Gate, header: Option<&str>) -> Result<String, (String, &'static str)> {
    let Some(h) = header else { return Err((String::new(), "no credentials")) };
    let (scheme, value) = h.split_once(' ').unwrap_or((h, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD.decode(value.trim()).ok().and_then(|b| String::from_utf8(b).ok());
            let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return Err((String::new(), "malformed basic credentials"));
            };
            if gate.verifiers.verify(user, password) {
                Ok(user.to_string())
            } else if gate.lalo.users.get(user).is_some() {
                Err((user.to_string(), "wrong password"))
            } else {
                Err((user.to_string(), "no such user"))
            }
        }
        "bearer" => gate.tokens.get(value.trim()).cloned().ok_or((String::new(), "unknown bearer token")),
        _ => Err((String::new(), "unsupported authorization scheme")),
    }
}

/// 401 unless the request carries a user's credentials; the caller goes into the request.
pub async fn require(State(gate): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    let client = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.to_string()).unwrap_or_default();
    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    // PBKDF2 is deliberate work: off the async threads.
    let checked = {
        let gate = gate.clone();
        tokio::task::spawn_blocking(move || authenticate(&gate, header.as_deref())).await
    };
    match checked {
        Ok(Ok(user)) => {
            req.extensions_mut().insert(Caller { user, client });
            next.run(req).await
        }
        Ok(Err((user, reason))) => {
            if !user.is_empty() || reason != "no credentials" {
                audit_failed_login(&gate.lalo, &user, &client, reason).await;
            }
            let body = serde_json::json!({ "sqlstate": "28P01", "message": format!("authentication failed: {reason}") });
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"lalo\", Bearer realm=\"lalo\"")],
                axum::Json(body),
            )
                .into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn audit_failed_login(lalo: &Lalo, user: &str, client: &str, reason: &str) {
    let rec = AuditRecord {
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        user: user.to_string(),
        client: client.to_string(),
        entry: crate::session::EntryPoint::Http.as_str().into(),
        kind: "login".into(),
        input: "login".into(),
        decision: "denied".into(),
        error: Some(format!("28P01: authentication failed ({reason})")),
        ..Default::default()
    };
    if let Err(err) = lalo.audit.append(rec, crate::governance::audit::Wait::Durable).await {
        tracing::error!(error = %err, "audit write failed");
    }
}
