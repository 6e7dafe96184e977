//! The PostgreSQL wire protocol front end (pgwire): listener, TLS, authentication, and the
//! simple and extended query handlers that call the shared service.

pub mod auth;
pub mod describe;
pub mod encode;
pub mod extended;
pub mod frames;
pub mod simple;
pub mod socket;
pub mod startup;

use std::io::BufReader;
use std::net::SocketAddr;
use std::sync::Arc;

use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ClientInfo, ConnectionManager, PgWireServerHandlers};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::error::LaloError;
use crate::pipeline::Lalo;
use crate::session::{EntryPoint, Session};

/// Everything one connection's handlers share.
pub struct Handlers {
    pub lalo: Arc<Lalo>,
    pub manager: Arc<ConnectionManager>,
    pub tls: bool,
    cert_pem: Option<Vec<u8>>,
    /// The users' SCRAM verifiers, computed once.
    verifiers: Arc<auth::Verifiers>,
    simple: Arc<simple::SimpleHandler>,
    extended: Arc<extended::ExtendedHandler>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.simple.clone()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.extended.clone()
    }
    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        // SASL keeps per-connection state, so every connection gets its own handler.
        Arc::new(startup::LaloStartup::new(self.lalo.clone(), self.manager.clone(), self.verifiers.clone(), self.cert_pem.as_deref()))
    }
    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::new(DefaultCancelHandler::new(self.manager.clone()))
    }
}

/// Load the configured PEM certificate chain and key into a TLS acceptor.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<(TlsAcceptor, Vec<u8>), LaloError> {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let cert_pem = std::fs::read(cert).map_err(|e| LaloError::Config(format!("tls_cert {}: {e}", cert.display())))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut BufReader::new(cert_pem.as_slice()))
        .collect::<Result<_, _>>()
        .map_err(|e| LaloError::Config(format!("tls_cert {}: {e}", cert.display())))?;
    let key_pem = std::fs::read(key).map_err(|e| LaloError::Config(format!("tls_key {}: {e}", key.display())))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut BufReader::new(key_pem.as_slice()))
        .map_err(|e| LaloError::Config(format!("tls_key: {e}")))?
        .ok_or_else(|| LaloError::Config("tls_key holds no private key".into()))?;
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| LaloError::Config(format!("TLS: {e}")))?;
    Ok((TlsAcceptor::from(Arc::new(config)), cert_pem))
}

/// A bound pgwire listener, ready to serve.
pub struct PgServer {
    listener: TcpListener,
    handlers: Arc<Handlers>,
    tls: Option<TlsAcceptor>,
    limit: Arc<Semaphore>,
}

impl PgServer {
    /// Bind the configured address (port 0 picks a free port).
    pub async fn bind(lalo: Arc<Lalo>, addr: &str) -> Result<PgServer, LaloError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| LaloError::Config(format!("cannot listen on {addr}: {e}")))?;
        let (tls, cert) = match (&lalo.config.server.tls_cert, &lalo.config.server.tls_key) {
            (Some(c), Some(k)) => {
                let (a, pem) = tls_acceptor(&lalo.config.resolve(c), &lalo.config.resolve(k))?;
                (Some(a), Some(pem))
            }
            (None, None) => (None, None),
            _ => return Err(LaloError::Config("tls_cert and tls_key must be set together".into())),
        };
        if lalo.config.server.tls_required && tls.is_none() {
            return Err(LaloError::Config("tls_required needs tls_cert and tls_key".into()));
        }
        let manager = Arc::new(ConnectionManager::new());
        // Check the certificate once at start; each connection builds its own SASL handler from it.
        if let Some(pem) = &cert {
            startup::check_certificate(pem)?;
        }
        let handlers = Arc::new(Handlers {
            simple: Arc::new(simple::SimpleHandler { lalo: lalo.clone() }),
            extended: Arc::new(extended::ExtendedHandler::new(lalo.clone())),
            lalo: lalo.clone(),
            manager,
            tls: tls.is_some(),
            cert_pem: cert,
            verifiers: Arc::new(auth::Verifiers::of(&lalo.users)),
        });
        let limit = Arc::new(Semaphore::new(lalo.config.server.max_connections.max(1)));
        Ok(PgServer { listener, handlers, tls, limit })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, LaloError> {
        self.listener.local_addr().map_err(|e| LaloError::Internal(e.to_string()))
    }

    /// Accept connections until shutdown begins (or the task is dropped).
    pub async fn serve(self) {
        let shutdown = self.handlers.lalo.shutdown.clone();
        loop {
            let accepted = tokio::select! {
                biased;
                _ = shutdown.draining.cancelled() => return,
                a = self.listener.accept() => a,
            };
            let (socket, addr) = match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let alive = shutdown.enter();
            let _ = socket.set_nodelay(true);
            let handlers = self.handlers.clone();
            let tls = self.tls.clone();
            let limit = self.limit.clone();
            tokio::spawn(async move {
                let Ok(_permit) = limit.try_acquire_owned() else {
                    tracing::warn!(%addr, "connection refused: max_connections reached");
                    refuse_too_many(socket).await;
                    return;
                };
                crate::metrics::connection("pgwire", 1.0);
                if let Err(e) = socket::process(socket, tls, handlers).await {
                    tracing::debug!(%addr, error = %e, "connection ended with error");
                }
                crate::metrics::connection("pgwire", -1.0);
                drop(alive);
            });
        }
    }
}

/// Answer a connection over the limit with PostgreSQL's 53300 before closing it.
async fn refuse_too_many(mut socket: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let msg = b"SFATAL\0VFATAL\0C53300\0Msorry, too many clients already\0\0";
    let mut buf = vec![b'E'];
    buf.extend_from_slice(&((msg.len() + 4) as i32).to_be_bytes());
    buf.extend_from_slice(msg);
    let _ = socket.write_all(&buf).await;
}

/// The session of this connection, created on first use after authentication.
pub fn session_of<C: ClientInfo>(lalo: &Lalo, client: &C) -> Result<Arc<Session>, LaloError> {
    if let Some(s) = client.session_extensions().get::<Arc<Session>>() {
        return Ok((*s).clone());
    }
    let user = client.metadata().get(pgwire::api::METADATA_USER).cloned().unwrap_or_default();
    let db = client.metadata().get(pgwire::api::METADATA_DATABASE).cloned().unwrap_or_default();
    let startup: Vec<(String, String)> = client.metadata().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let session =
        Arc::new(lalo.open_session_with(&user, &db, &client.socket_addr().to_string(), EntryPoint::Pgwire, &startup)?);
    client.session_extensions().insert(session.clone());
    Ok(session)
}
