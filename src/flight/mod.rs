//! Arrow Flight SQL on `[server] flight_listen`: statements, prepared statements with
//! parameters and the catalog commands (`GetCatalogs`, `GetDbSchemas`, `GetTables`,
//! `GetPrimaryKeys`, `GetSqlInfo`), each call under its caller's session (entry `flight`) and
//! through the same pipeline as the wire: governance, limits, audit. Arrow-native clients (ADBC,
//! pyarrow, Spark, DuckDB and polars loaders) read results as Arrow without a text round trip.
//!
//! Authentication: the handshake takes HTTP Basic (a lalo user's name and password, checked as
//! SCRAM checks it) and answers a bearer token; later calls carry `Bearer <token>` (or a token
//! of the MCP token table, or Basic again). Denials answer `PERMISSION_DENIED`, every error
//! carries its SQLSTATE at the head of the message.

mod auth;
mod metadata;
mod qmark;
mod service;

use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use tonic::Status;

use crate::error::LaloError;
use crate::pipeline::Lalo;

pub use service::LaloFlight;

/// A lalo error as a gRPC status: the code for its SQLSTATE, the SQLSTATE first in the message.
pub fn status(e: &LaloError) -> Status {
    let code = e.sqlstate();
    let message = format!("{code}: {e}");
    match code {
        "42501" => Status::permission_denied(message),
        "28P01" | "28000" => Status::unauthenticated(message),
        "57014" => Status::cancelled(message),
        "57P01" => Status::unavailable(message),
        "54000" | "53300" | "53400" => Status::resource_exhausted(message),
        "08006" | "08001" | "08000" => Status::unavailable(message),
        "3D000" | "42P01" => Status::not_found(message),
        c if c.starts_with("42") || c.starts_with("22") || c.starts_with("0A") || c.starts_with("26") => Status::invalid_argument(message),
        _ => Status::internal(message),
    }
}

/// Bind `addr` and serve Flight SQL there until shutdown begins and its calls end.
pub async fn bind(lalo: Arc<Lalo>, addr: &str) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), LaloError> {
    // TLS with the server's certificate when one is configured (the wire's tls_cert/tls_key);
    // a server that requires TLS has none to offer without them.
    let server = &lalo.config.server;
    let tls = match (&server.tls_cert, &server.tls_key) {
        (Some(cert), Some(key)) => {
            let read = |p: &std::path::Path| std::fs::read(lalo.config.resolve(p)).map_err(|e| LaloError::Config(format!("{}: {e}", p.display())));
            Some(tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(read(cert)?, read(key)?)))
        }
        _ if server.tls_required => {
            return Err(LaloError::Config("flight_listen with tls_required needs tls_cert and tls_key".into()));
        }
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| LaloError::Config(format!("cannot listen on {addr} (flight_listen): {e}")))?;
    let local = listener.local_addr().map_err(|e| LaloError::Internal(e.to_string()))?;
    let draining = lalo.shutdown.draining.clone();
    let service = FlightServiceServer::new(LaloFlight::new(lalo));
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let task = tokio::spawn(async move {
        // Calls in flight per connection are bounded like the wire's connections.
        let mut server = tonic::transport::Server::builder().concurrency_limit_per_connection(64);
        if let Some(tls) = tls {
            server = match server.tls_config(tls) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "Flight SQL TLS configuration failed; not serving Flight SQL");
                    return;
                }
            };
        }
        if let Err(e) = server.add_service(service).serve_with_incoming_shutdown(incoming, draining.cancelled_owned()).await {
            tracing::error!(error = %e, "Flight SQL server stopped");
        }
    });
    Ok((local, task))
}
