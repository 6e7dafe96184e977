//! Starting a whole gateway: service, pgwire listener and HTTP listener; used by `lalo serve`
//! and by tests, which bind port 0.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Config;
use crate::error::LaloError;
use crate::server::PgServer;
use crate::pipeline::Lalo;

/// A running gateway; dropping it stops the listeners at once, [`Running::shutdown`] stops
/// them gracefully.
pub struct Running {
    pub lalo: Arc<Lalo>,
    pub pg_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Where Arrow Flight SQL listens, when `flight_listen` is set.
    pub flight_addr: Option<SocketAddr>,
    /// The listeners (wire, HTTP, Flight): each ends once shutdown begins and its requests end.
    listeners: Vec<tokio::task::JoinHandle<()>>,
    /// Background work that never ends by itself (the policy watcher).
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in self.listeners.iter().chain(&self.background) {
            t.abort();
        }
    }
}

impl Running {
    /// Stop accepting, let statements in flight finish for `grace`, end the rest with 57P01,
    /// then make the audit trail durable. Errors only when the trail could not be synced.
    pub async fn shutdown(mut self, grace: std::time::Duration) -> Result<(), LaloError> {
        let s = self.lalo.shutdown.clone();
        s.draining.cancel();
        let listeners: Vec<_> = self.listeners.drain(..).collect();
        let aborts: Vec<_> = listeners.iter().map(|t| t.abort_handle()).collect();
        let drained = async {
            s.idle().await;
            futures::future::join_all(listeners).await;
        };
        tokio::pin!(drained);
        if tokio::time::timeout(grace, &mut drained).await.is_err() {
            tracing::warn!(live = s.live(), "shutdown grace is over: ending the statements still running (57P01)");
            s.terminate.cancel();
            // Ended statements report and close; whatever still hangs (a client that does not
            // read) is dropped.
            if tokio::time::timeout(std::time::Duration::from_secs(2), &mut drained).await.is_err() {
                aborts.iter().for_each(|a| a.abort());
            }
        }
        // The end lines of the last statements are written by tasks their streams spawned.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let synced = self.lalo.audit.sync_written().await;
        tracing::info!("lalo stopped");
        synced
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
    let draining = lalo.shutdown.draining.clone();
    tasks.push(tokio::spawn(async move {
        // The client's address goes into the audit record of each request.
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        if let Err(e) = axum::serve(http_listener, service).with_graceful_shutdown(draining.cancelled_owned()).await {
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
    let background = vec![tokio::spawn(crate::governance::watch::watch_policies(lalo.governance.clone()))];
    tracing::info!(%pg_addr, %http_addr, ?flight_addr, "lalo is serving");
    Ok(Running { lalo, pg_addr, http_addr, flight_addr, listeners: tasks, background })
}
