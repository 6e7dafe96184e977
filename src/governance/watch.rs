//! Reload policies when their files change (polled once a second) or on SIGHUP, without
//! dropping connections: statements already planned finish under the policies they started with.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Governance;

fn stamp(dir: &Path) -> Vec<(String, Option<SystemTime>, u64)> {
    ["model.conf", "policy.csv", "rules.toml"]
        .iter()
        .map(|f| {
            let m = std::fs::metadata(dir.join(f)).ok();
            (f.to_string(), m.as_ref().and_then(|m| m.modified().ok()), m.map(|m| m.len()).unwrap_or(0))
        })
        .collect()
}

/// Run forever: reload on change or SIGHUP; a bad file keeps the old policies and logs why.
pub async fn watch_policies(governance: Arc<Governance>) {
    let dir = governance.policy_dir().to_path_buf();
    let mut last = stamp(&dir);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => futures::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = futures::future::pending::<()>();
        let forced = tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
            _ = hangup => true,
        };
        let now = stamp(&dir);
        if forced || now != last {
            last = now;
            if let Err(e) = governance.reload().await {
                tracing::error!(error = %e, "policy reload failed; keeping the previous policies");
            }
        }
    }
}
