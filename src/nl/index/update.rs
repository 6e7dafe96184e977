//! Building and updating the index: collect the documents, compare content hashes with what is
//! stored, and delete, re-embed and write only what changed; then rebuild the full-text index.

use crate::nl::Host;
use std::collections::HashSet;
use std::time::Instant;

use crate::nl::index::documents::Doc;
use crate::nl::index::embed::{self, Remote};
use crate::nl::index::source::{self, ValueCache};
use crate::nl::index::store::Store;
use crate::nl::index::IndexError;

/// Documents embedded and written per step (and per progress line).
const CHUNK: usize = 500;
/// Below this many documents to write, no progress lines (small schemas build in a blink).
const QUIET_BELOW: usize = 1000;

/// What one update did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub documents: usize,
    pub written: usize,
    pub removed: usize,
    pub ms: f64,
}

/// Bring `store` up to date with the catalog. A remote embedding failure is returned (the
/// caller falls back to a local-only store); everything else written so far stays.
pub async fn update(lalo: &dyn Host, store: &Store, remote: Option<&Remote>, cache: &mut ValueCache) -> Result<Stats, IndexError> {
    let began = Instant::now();
    let docs = source::collect(lalo, cache).await;
    let stored = store.hashes().await?;
    let changed: Vec<&Doc> = docs.iter().filter(|d| stored.get(&d.id) != Some(&d.hash)).collect();
    let wanted: HashSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    let mut stale: Vec<String> = stored.keys().filter(|id| !wanted.contains(id.as_str())).cloned().collect();
    stale.extend(changed.iter().filter(|d| stored.contains_key(&d.id)).map(|d| d.id.clone()));
    store.delete(&stale).await?;
    let total = changed.len();
    let mut done = 0;
    for chunk in changed.chunks(CHUNK) {
        let local: Vec<Vec<f32>> = chunk.iter().map(|d| embed::local(&d.text)).collect();
        let remote_vectors = match remote {
            Some(r) => Some(r.embed(&chunk.iter().map(|d| d.text.clone()).collect::<Vec<_>>()).await?),
            None => None,
        };
        store.add(chunk, local, remote_vectors).await?;
        done += chunk.len();
        if total >= QUIET_BELOW {
            tracing::info!("retrieval index: {done}/{total} documents");
        }
    }
    if total > 0 || !stale.is_empty() {
        store.index_text().await?;
    }
    let removed = stale.len() - changed.iter().filter(|d| stored.contains_key(&d.id)).count();
    Ok(Stats { documents: docs.len(), written: total, removed, ms: began.elapsed().as_secs_f64() * 1000.0 })
}
