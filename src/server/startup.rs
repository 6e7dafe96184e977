//! Connection start: TLS-required check, database check, then SCRAM-SHA-256 authentication.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{DefaultServerParameterProvider, StartupHandler};
use pgwire::api::{ClientInfo, ConnectionManager};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::error::LaloError;
use crate::governance::audit::AuditRecord;
use crate::pipeline::Lalo;
use super::auth::{fatal, Verifiers, SCRAM_ITERATIONS};

/// Wraps pgwire's SASL handler with lalo's own admission checks.
pub struct LaloStartup {
    lalo: Arc<Lalo>,
    sasl: SASLAuthStartupHandler<DefaultServerParameterProvider>,
    /// The user name the client gave at startup (one handler per connection).
    user: parking_lot::Mutex<String>,
}

impl LaloStartup {
    pub fn new(lalo: Arc<Lalo>, manager: Arc<ConnectionManager>, verifiers: Arc<Verifiers>, cert_pem: Option<&[u8]>) -> Self {
        let mut scram = ScramAuth::new(verifiers);
        scram.set_iterations(SCRAM_ITERATIONS);
        if let Some(pem) = cert_pem {
            // Checked at start by check_certificate; a failure here only disables channel binding.
            let _ = scram.configure_certificate(pem);
        }
        let mut params = DefaultServerParameterProvider::default();
        params.server_version = crate::engine::functions::SERVER_VERSION.to_string();
        params.is_superuser = false;
        params.default_transaction_read_only = true;
        params.search_path = "public".into();
        params.time_zone = "UTC".into();
        let sasl = SASLAuthStartupHandler::new(Arc::new(params))
            .with_scram(scram)
            .with_connection_manager(manager);
        LaloStartup { lalo, sasl, user: Default::default() }
    }
}

/// Validate the TLS certificate for SCRAM channel binding once, at start.
pub fn check_certificate(pem: &[u8]) -> Result<(), LaloError> {
    let mut scram = ScramAuth::new(Arc::new(Verifiers::default()));
    scram
        .configure_certificate(pem)
        .map_err(|e| LaloError::Config(format!("TLS certificate for SCRAM channel binding: {e}")))
}

#[async_trait]
impl StartupHandler for LaloStartup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self.admit(client, message).await {
            // A connection that broke is no refused login.
            Err(e) if !matches!(e, PgWireError::IoError(_)) => Err(self.refused(&*client, e).await),
            other => other,
        }
    }
}

impl LaloStartup {
    /// lalo's own checks at startup, then SCRAM-SHA-256. A name that is no user goes through the
    /// whole exchange against a mock verifier (server/auth.rs), as PostgreSQL does, so that
    /// neither the answer nor its timing tells it from a user with a wrong password.
    async fn admit<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(startup) = &message {
            let user = startup.parameters.get("user").cloned().unwrap_or_default();
            *self.user.lock() = user.clone();
            if self.lalo.config.server.tls_required && !client.is_secure() {
                return Err(fatal(&LaloError::NoAccess(
                    "connection refused: this server requires SSL (connect with sslmode=require)".into(),
                )));
            }
            let params: Vec<(String, String)> =
                startup.parameters.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            if let Err(e) = crate::pipeline::startup_settings(&params) {
                return Err(fatal(&e));
            }
            if let Some(db) = startup.parameters.get("database") {
                if !db.is_empty() && db != &user && !self.lalo.engine.has_database(db) {
                    let mut info = LaloError::NoAccess(format!("database \"{db}\" does not exist")).error_info("FATAL");
                    info.code = "3D000".into();
                    return Err(PgWireError::UserError(Box::new(info)));
                }
            }
        }
        self.sasl.on_startup(client, message).await
    }

    /// A refused login: one audit line (the name as given, the client's address, the reason)
    /// and, for a failed password check, PostgreSQL's answer, the same whether or not the name
    /// is a user.
    async fn refused<C: ClientInfo>(&self, client: &C, e: PgWireError) -> PgWireError {
        let user = self.user.lock().clone();
        let (answer, error) = match e {
            PgWireError::InvalidPassword(_) => {
                let failed = LaloError::BadPassword(user.clone());
                let reason = if self.lalo.users.get(&user).is_some() { "wrong password" } else { "no such user" };
                let error = format!("{}: {failed} ({reason})", failed.sqlstate());
                (fatal(&failed), error)
            }
            PgWireError::UserError(info) => {
                let error = format!("{}: {}", info.code, info.message);
                (PgWireError::UserError(info), error)
            }
            other => {
                let error = other.to_string();
                (other, error)
            }
        };
        let rec = AuditRecord {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            user,
            client: client.socket_addr().to_string(),
            entry: crate::session::EntryPoint::Pgwire.as_str().into(),
            kind: "login".into(),
            input: "login".into(),
            decision: "denied".into(),
            error: Some(error),
            ..Default::default()
        };
        if let Err(err) = self.lalo.audit.append(rec, crate::governance::audit::Wait::Durable).await {
            tracing::error!(error = %err, "audit write failed");
        }
        answer
    }
}
