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
    /// Credentials that passed, by a keyed digest of name and password (never the password):
    /// a client sending the same Basic header on every request pays the PBKDF2 work once.
    verified: parking_lot::Mutex<HashMap<[u8; 32], String>>,
    key: [u8; 32],
}

/// How many verified credentials are remembered (the set starts over when full).
const VERIFIED: usize = 1024;

impl Gate {
    pub fn new(lalo: Arc<Lalo>, tokens: HashMap<String, String>) -> Gate {
        let verifiers = Verifiers::of(&lalo.users);
        Gate { lalo, verifiers, tokens, verified: Default::default(), key: rand::random() }
    }

    fn digest(&self, user: &str, password: &str) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        Sha256::new().chain_update(self.key).chain_update(user.as_bytes()).chain_update([0]).chain_update(password.as_bytes()).finalize().into()
    }

    fn check_basic(&self, user: &str, password: &str) -> bool {
        let d = self.digest(user, password);
        if self.verified.lock().get(&d).is_some_and(|u| u == user) {
            return true;
        }
        let ok = self.verifiers.verify(user, password);
        if ok {
            let mut v = self.verified.lock();
            if v.len() >= VERIFIED {
                v.clear();
            }
            v.insert(d, user.to_string());
        }
        ok
    }
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
            if gate.check_basic(user, password) {
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
                let error = format!("28P01: authentication failed ({reason})");
                audit_refused(&gate.lalo, &user, &client, &error, "http").await;
            }
            // One answer whatever the reason: the reply does not tell a user name that exists.
            let body = serde_json::json!({ "sqlstate": "28P01", "message": "authentication failed" });
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

/// One audit line for a request refused before any statement: the name as given (cut to 64
/// characters, so a request cannot grow the trail at will), the client, the error.
pub async fn audit_refused(lalo: &Lalo, user: &str, client: &str, error: &str, entry: &str) {
    let rec = AuditRecord {
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        user: user.chars().take(64).collect(),
        client: client.to_string(),
        entry: entry.into(),
        kind: "login".into(),
        input: "login".into(),
        decision: "denied".into(),
        error: Some(error.to_string()),
        ..Default::default()
    };
    if let Err(err) = lalo.audit.append(rec, crate::governance::audit::Wait::Durable).await {
        tracing::error!(error = %err, "audit write failed");
    }
}
