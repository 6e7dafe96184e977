//! Starting a whole gateway: service, pgwire listener and HTTP listener; used by `lalo serve`
//! and by tests, which bind port 0.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Config;
use crate::error::LaloError;
use crate::server::PgServer;
use crate::pipeline::Lalo;

/// A running gateway; dropping it stops the listeners.
pub struct Running {
    pub lalo: Arc<Lalo>,
    pub pg_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Where Arrow Flight SQL listens, when `flight_listen` is set.
    pub flight_addr: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Start lalo with `config`, listening where it says.
pub async fn start(config: Config) -> Result<Running, LaloError> {
    let listen = config.server.listen.clone();
    let http_listen = config.server.http_listen.clone();
    let flight_listen = config.server.flight_listen.clone().filter(|a| !a.is_empty());
    let lalo = Lalo::start(config).await?;
    let pg = PgServer::bind(lalo.clone(), &listen).await?;
    let pg_addr = pg.local_addr()?;
    let (http_listener, router) = crate::http::bind(lalo.clone(), &http_listen).await?;
    let http_addr = http_listener.local_addr().map_err(|e| LaloError::Internal(e.to_string()))?;
    let mut tasks = vec![tokio::spawn(pg.serve())];
    tasks.push(tokio::spawn(async move {
        // The client's address goes into the audit record of each request.
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        if let Err(e) = axum::serve(http_listener, service).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    }));
    let flight_addr = match flight_listen {
        Some(addr) => {
            let (local, task) = crate::flight::bind(lalo.clone(), &addr).await?;
            tasks.push(task);
            Some(local)
        }
        None => None,
    };
    tasks.push(tokio::spawn(crate::governance::watch::watch_policies(lalo.governance.clone())));
    tracing::info!(%pg_addr, %http_addr, ?flight_addr, "lalo is serving");
    Ok(Running { lalo, pg_addr, http_addr, flight_addr, tasks })
}
