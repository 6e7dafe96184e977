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
use crate::service::Lalo;
use crate::session::auth::SCRAM_ITERATIONS;

/// Wraps pgwire's SASL handler with lalo's own admission checks.
pub struct LaloStartup {
    lalo: Arc<Lalo>,
    sasl: SASLAuthStartupHandler<DefaultServerParameterProvider>,
}

impl LaloStartup {
    pub fn new(lalo: Arc<Lalo>, manager: Arc<ConnectionManager>, cert_pem: Option<&[u8]>) -> Self {
        let mut scram = ScramAuth::new(lalo.users_source());
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
        LaloStartup { lalo, sasl }
    }
}

/// Validate the TLS certificate for SCRAM channel binding once, at start.
pub fn check_certificate(pem: &[u8]) -> Result<(), LaloError> {
    let mut scram = ScramAuth::new(Arc::new(crate::session::auth::Users::default()));
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
        if let PgWireFrontendMessage::Startup(startup) = &message {
            if self.lalo.config.server.tls_required && !client.is_secure() {
                return Err(LaloError::NoAccess(
                    "connection refused: this server requires SSL (connect with sslmode=require)".into(),
                )
                .to_pgwire_fatal());
            }
            let user = startup.parameters.get("user").cloned().unwrap_or_default();
            if self.lalo.users.get(&user).is_none() {
                // Still let SCRAM run against no verifier would leak timing; refuse up front like PostgreSQL does.
                return Err(LaloError::UnknownUser(user).to_pgwire_fatal());
            }
            let params: Vec<(String, String)> =
                startup.parameters.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            if let Err(e) = crate::service::startup_settings(&params) {
                return Err(e.to_pgwire_fatal());
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
}
