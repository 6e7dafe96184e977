//! The index's background task: open (or create) the store, mark it usable, bring it up to date,
//! then poll once a second for edited doc files and refreshed upstreams (their generation
//! counters) and update again. Holds the gateway only weakly, so it ends when lalo does.

use crate::nl::Host;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use crate::nl::index::embed::Remote;
use crate::nl::index::source::ValueCache;
use crate::nl::index::store::Store;
use crate::nl::index::{update, Ready};

const POLL: Duration = Duration::from_secs(1);

/// Where the index lives: `[planner] retrieval_dir`, else `<data_dir>/retrieval`.
pub fn dir(lalo: &dyn Host) -> PathBuf {
    match &lalo.config().planner.retrieval_dir {
        Some(d) => lalo.config().resolve(d),
        None => lalo.config().resolve(&lalo.config().catalog.data_dir).join("retrieval"),
    }
}

/// Names, sizes and times of the doc files: a change means a reload.
fn stamp(dir: &Path) -> Vec<(String, u64, Option<SystemTime>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    Some((e.file_name().to_string_lossy().to_string(), m.len(), m.modified().ok()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The store for this configuration: remote vectors when the endpoint answers, else local only.
/// The table name carries the embedding's identity, so switching models never mixes vectors.
async fn open(dir: &Path, remote: Option<Remote>) -> Option<Ready> {
    let mut remote_ok = None;
    if let Some(r) = remote {
        match r.embed(&["lalo".to_string()]).await {
            Ok(v) => remote_ok = v.first().map(|x| (Arc::new(r), x.len())),
            Err(e) => tracing::warn!(error = %e, "retrieval index: the embeddings endpoint failed; local embeddings only"),
        }
    }
    let (name, dim) = match &remote_ok {
        Some((r, dim)) => (format!("documents_v1_{}_{dim}", &hex_digest(r.model())), Some(*dim)),
        None => ("documents_v1_local".to_string(), None),
    };
    match Store::open(dir, &name, dim).await {
        Ok(store) => Some(Ready { store, remote: remote_ok.map(|(r, _)| r) }),
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "retrieval index unavailable; questions use the in-memory ranking");
            None
        }
    }
}

fn hex_digest(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(s.as_bytes())[..6])
}

/// One update; a failure of the endpoint switches to a local-only store and updates that.
/// `since`: when the change it indexes was seen (the lag the metrics report).
async fn refresh(lalo: &dyn Host, ready: &mut Ready, dir: &Path, cache: &mut ValueCache, since: std::time::Instant) {
    let result = update::update(lalo, &ready.store, ready.remote.as_deref(), cache).await;
    let result = match result {
        Err(crate::nl::index::IndexError::Embedding(e)) => {
            tracing::warn!(error = %e, "retrieval index: the embeddings endpoint failed; falling back to local embeddings");
            match open(dir, None).await {
                Some(local) => {
                    *ready = local;
                    update::update(lalo, &ready.store, None, cache).await
                }
                None => return,
            }
        }
        other => other,
    };
    match result {
        Ok(s) => {
            lalo.retrieval().set(Some(ready.clone()));
            *lalo.retrieval().last.lock() = Some(s);
            crate::metrics::retrieval_index(s.documents, since.elapsed().as_secs_f64());
            tracing::info!(
                "retrieval index: {} documents ({} written, {} removed) in {:.0} ms",
                s.documents,
                s.written,
                s.removed,
                s.ms
            );
        }
        Err(e) => tracing::warn!(error = %e, "retrieval index update failed; keeping what is stored"),
    }
    lalo.retrieval().finished_update();
}

/// The task body.
pub async fn run(lalo: Weak<dyn Host>) {
    let Some(strong) = lalo.upgrade() else { return };
    let began = std::time::Instant::now();
    let dir = dir(strong.as_ref());
    let docs_dir = strong.config().resolve(&strong.config().catalog.dir).join("docs");
    let Some(mut ready) = open(&dir, Remote::from_config(&strong.config().planner)).await else {
        strong.retrieval().finished_update();
        return;
    };
    // An index from an earlier run answers at once (the filter keeps stale hits from anyone who
    // may not see them); the update below then brings it current.
    if ready.store.count().await.unwrap_or(0) > 0 {
        strong.retrieval().set(Some(ready.clone()));
    }
    let mut cache = ValueCache::default();
    let mut docs_stamp = stamp(&docs_dir);
    let mut generation = strong.engine().upstreams().generation();
    refresh(strong.as_ref(), &mut ready, &dir, &mut cache, began).await;
    drop(strong);
    loop {
        tokio::time::sleep(POLL).await;
        let Some(lalo) = lalo.upgrade() else { return };
        let seen = std::time::Instant::now();
        let mut changed = false;
        let now = stamp(&docs_dir);
        if now != docs_stamp {
            docs_stamp = now;
            match lalo.engine().reload_docs(&docs_dir) {
                Ok(()) => changed = true,
                Err(e) => tracing::warn!(error = %e, "catalog docs reload failed; keeping the previous docs"),
            }
        }
        let g = lalo.engine().upstreams().generation();
        if g != generation {
            generation = g;
            changed = true;
        }
        if changed {
            refresh(lalo.as_ref(), &mut ready, &dir, &mut cache, seen).await;
        }
    }
}
