//! Retrieval over the catalog, embedded with lancedb under `<data_dir>/retrieval`: documents for
//! tables, columns, low-cardinality values, join paths and verified examples (`documents`,
//! `source`), embedded locally and, when configured, by an embeddings endpoint (`embed`), stored
//! with a full-text index (`store`), built at start and kept current (`update`, `watch`), searched
//! by full text and vectors fused with reciprocal-rank fusion (`fuse`), and cut to what the caller
//! may read before anything else sees a hit (`entitle`).

pub mod documents;
pub mod embed;
pub mod entitle;
pub mod fuse;
pub mod source;
pub mod store;
pub mod update;
mod watch;

use crate::nl::Host;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use crate::nl::catalog::Built;
use crate::session::Session;
use documents::Doc;
use embed::Remote;
use store::Store;

/// Hits taken from each search before fusion.
const PER_SEARCH: usize = 60;
/// Fused hits kept before the entitlement filter.
const FUSED: usize = 80;
/// How long a question waits for the endpoint to embed it before going on without remote vectors.
const REMOTE_QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the index could not be built, searched or written. Never shown to a client: retrieval
/// falls back to the in-memory ranking and logs the reason.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("lancedb: {0}")]
    Lance(#[from] lancedb::Error),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("embeddings endpoint: {0}")]
    Embedding(String),
    #[error("{0}")]
    Io(String),
    #[error("unexpected index data: {0}")]
    Corrupt(String),
}

/// One retrieved document with its fused score and the searches that found it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    pub doc: Doc,
    pub score: f64,
    /// "fts", "local", "remote", joined by '+'.
    pub found_by: String,
}

/// What a search returned for one question, already filtered for the caller.
#[derive(Debug, Clone, Default)]
pub struct Searched {
    pub hits: Vec<Hit>,
    /// How the search went, for the trace.
    pub note: String,
}

/// A usable store and, when configured and working, the embeddings endpoint it was built with.
#[derive(Clone)]
struct Ready {
    store: Store,
    remote: Option<Arc<Remote>>,
}

/// The gateway's retrieval index. Empty until the first build (or an earlier build on disk) is
/// usable; questions asked before then use the in-memory ranking.
#[derive(Default)]
pub struct RetrievalIndex {
    ready: RwLock<Option<Ready>>,
    /// Bumped after every finished update (tests and `lalo eval` wait on it).
    updates: tokio::sync::watch::Sender<u64>,
    /// What the last successful update did.
    last: parking_lot::Mutex<Option<update::Stats>>,
}

impl std::fmt::Debug for RetrievalIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetrievalIndex").field("ready", &self.ready.read().is_some()).finish_non_exhaustive()
    }
}

impl RetrievalIndex {
    /// Build in the background and keep the index current while `lalo` lives.
    pub fn spawn(lalo: &Arc<dyn Host>) {
        if !lalo.config().planner.retrieval_index {
            return;
        }
        tokio::spawn(watch::run(Arc::downgrade(lalo)));
    }

    /// Whether questions use the index.
    pub fn is_ready(&self) -> bool {
        self.ready.read().is_some()
    }

    /// How many updates have finished since start.
    pub fn updates(&self) -> u64 {
        *self.updates.borrow()
    }

    /// Wait until more than `after` updates have finished; false on timeout.
    pub async fn wait_for_update(&self, after: u64, timeout: Duration) -> bool {
        let mut rx = self.updates.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n > after)).await.is_ok_and(|r| r.is_ok())
    }

    /// What the last successful update did.
    pub fn last_stats(&self) -> Option<update::Stats> {
        *self.last.lock()
    }

    fn set(&self, ready: Option<Ready>) {
        *self.ready.write() = ready;
    }

    fn finished_update(&self) {
        self.updates.send_modify(|n| *n += 1);
    }

    /// Search for `question` in the session's database and keep what the caller may read.
    /// `None` when the index is not ready or the search failed (the caller falls back).
    pub async fn search(&self, lalo: &dyn Host, session: &Session, built: &Built, question: &str) -> Option<Searched> {
        let ready = self.ready.read().clone()?;
        let began = Instant::now();
        let filter = format!("database = {} OR database = ''", store::literal(&session.database));
        let mut lists: Vec<(&'static str, Vec<Doc>)> = vec![];
        match ready.store.full_text(question, &filter, PER_SEARCH).await {
            Ok(d) => lists.push(("fts", d)),
            Err(e) => tracing::debug!(error = %e, "retrieval: full-text search failed"),
        }
        let local = embed::local(question);
        if local.iter().any(|x| *x != 0.0) {
            match ready.store.nearest("vector", &local, &filter, PER_SEARCH).await {
                Ok(d) => lists.push(("local", d)),
                Err(e) => {
                    tracing::warn!(error = %e, "retrieval: vector search failed; using the in-memory ranking");
                    return None;
                }
            }
        }
        if let Some(remote) = &ready.remote {
            let embedded = tokio::time::timeout(REMOTE_QUERY_TIMEOUT, remote.embed(&[question.to_string()])).await;
            match embedded {
                Ok(Ok(mut v)) if !v.is_empty() => match ready.store.nearest("remote", &v.remove(0), &filter, PER_SEARCH).await {
                    Ok(d) => lists.push(("remote", d)),
                    Err(e) => tracing::warn!(error = %e, "retrieval: remote vector search failed"),
                },
                Ok(Err(e)) => tracing::warn!(error = %e, "retrieval: the embeddings endpoint failed; local vectors only"),
                _ => tracing::warn!("retrieval: the embeddings endpoint did not answer; local vectors only"),
            }
        }
        let names: Vec<&'static str> = lists.iter().map(|(n, _)| *n).collect();
        let hits = entitle::filter(lalo, session, built, fused(lists)).await;
        // Counted after the entitlement filter: a count of what the searches found would tell
        // how many documents the caller cannot read match the question.
        let counts: Vec<String> = names
            .iter()
            .map(|n| format!("{n} {}", hits.iter().filter(|h| h.found_by.split('+').any(|f| f == *n)).count()))
            .collect();
        let note = format!(
            "index: {} ({} readable) in {:.1} ms",
            counts.join(", "),
            hits.len(),
            began.elapsed().as_secs_f64() * 1000.0
        );
        Some(Searched { hits, note })
    }
}

/// Reciprocal-rank fusion of the searches' lists into hits, best first.
fn fused(lists: Vec<(&'static str, Vec<Doc>)>) -> Vec<Hit> {
    let mut docs: HashMap<String, (Doc, Vec<&'static str>)> = HashMap::new();
    let mut ranked = Vec::with_capacity(lists.len());
    for (name, list) in lists {
        ranked.push(list.iter().map(|d| d.id.clone()).collect::<Vec<_>>());
        for d in list {
            docs.entry(d.id.clone()).or_insert_with(|| (d, vec![])).1.push(name);
        }
    }
    fuse::rrf(&ranked)
        .into_iter()
        .take(FUSED)
        .filter_map(|(id, score)| {
            let (doc, by) = docs.remove(&id)?;
            Some(Hit { doc, score, found_by: by.join("+") })
        })
        .collect()
}
