//! Graceful shutdown. On SIGTERM or SIGINT lalo stops accepting connections on every listener,
//! closes idle wire connections with FATAL 57P01 as PostgreSQL does, lets statements in flight
//! finish for `[server] shutdown_grace_ms`, ends those still running with 57P01, makes the audit
//! trail durable and exits 0 (`docker stop` and Kubernetes send SIGTERM and wait).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The shutdown signals one gateway shares with its listeners, connections and statements.
#[derive(Clone, Default)]
pub struct Shutdown {
    /// Set when shutdown begins: listeners stop accepting, idle connections close.
    pub draining: CancellationToken,
    /// Set when the grace period is over: statements still running end with 57P01.
    pub terminate: CancellationToken,
    live: Arc<Live>,
}

#[derive(Default)]
struct Live {
    count: AtomicUsize,
    gone: Notify,
}

/// Held by a connection while it lives; shutdown waits for all of them.
pub struct Alive(Arc<Live>);

impl Drop for Alive {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.gone.notify_waiters();
        }
    }
}

impl Shutdown {
    /// Count a connection as live until the returned value is dropped.
    pub fn enter(&self) -> Alive {
        self.live.count.fetch_add(1, Ordering::AcqRel);
        Alive(self.live.clone())
    }

    /// Wait until no connection is live.
    pub async fn idle(&self) {
        loop {
            let gone = self.live.gone.notified();
            if self.live.count.load(Ordering::Acquire) == 0 {
                return;
            }
            gone.await;
        }
    }

    /// Connections live now.
    pub fn live(&self) -> usize {
        self.live.count.load(Ordering::Acquire)
    }
}

/// Wait for SIGTERM or SIGINT.
pub async fn signalled() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map(|_| "SIGINT"),
            _ = term.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|_| "SIGINT")
    }
}
