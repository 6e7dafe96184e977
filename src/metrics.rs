//! Prometheus metrics (the catalog in the README's Operations section): statements by entry
//! point, lane and outcome; latency per statement and per stage; denials; cache hits;
//! connections; upstream pools; LLM calls; the retrieval index; audit writes.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, OnceLock};

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use parking_lot::RwLock;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process-wide recorder once (several gateways in one process share it).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
                .ok()
                .and_then(|b| b.install_recorder().ok())?;
            // Histogram samples wait in memory until they are folded into buckets: at every
            // scrape, and (so that memory stays flat when nobody scrapes) every few seconds.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let h = handle.clone();
                rt.spawn(async move {
                    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
                    loop {
                        every.tick().await;
                        h.run_upkeep();
                    }
                });
            }
            Some(handle)
        })
        .clone()
}

/// Render the current metrics in Prometheus text format.
pub fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}

/// Handles looked up once per label set: the macros build their key (a vector of labels) and
/// search the registry on every call, which the statement path would pay several times per
/// statement.
struct Handles<K, V> {
    map: RwLock<HashMap<K, V>>,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> Handles<K, V> {
    fn new() -> Self {
        install();
        Handles { map: RwLock::new(HashMap::new()) }
    }

    fn get<Q>(&self, key: &Q, make: impl FnOnce() -> (K, V)) -> V
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        if let Some(v) = self.map.read().get(key) {
            return v.clone();
        }
        let (k, v) = make();
        self.map.write().entry(k).or_insert(v).clone()
    }
}

/// A counter without labels, looked up in the registry once (the macro searches it on every
/// call, which the statement path would pay several times per statement).
macro_rules! once_counter {
    ($name:literal) => {{
        static C: LazyLock<Counter> = LazyLock::new(|| {
            install();
            metrics::counter!($name)
        });
        &*C
    }};
}

type StatementKey = (&'static str, &'static str, &'static str);
static STATEMENTS: LazyLock<Handles<StatementKey, (Counter, Histogram)>> = LazyLock::new(Handles::new);
static STAGES: LazyLock<Handles<&'static str, Histogram>> = LazyLock::new(Handles::new);
static UPSTREAMS: LazyLock<Handles<Arc<str>, (Histogram, Counter)>> = LazyLock::new(Handles::new);

/// One statement sent to the distributed engine: run on the `cluster`, run here as a
/// `fallback` (the scheduler could not take it) or a `rerun` (its job failed before its first
/// row), or an `error` (the scheduler refused it or could not be reached, no fallback).
pub fn distributed(outcome: &'static str) {
    install();
    metrics::counter!("lalo_distributed_statements_total", "outcome" => outcome).increment(1);
}

/// Record one finished statement.
pub fn statement(outcome: &'static str, entry: &'static str, lane: &'static str, seconds: f64) {
    let (count, time) = STATEMENTS.get(&(outcome, entry, lane), || {
        let c = metrics::counter!("lalo_statements_total", "outcome" => outcome, "entry" => entry, "lane" => lane);
        let h = metrics::histogram!("lalo_statement_duration_seconds", "entry" => entry, "lane" => lane);
        ((outcome, entry, lane), (c, h))
    });
    count.increment(1);
    time.record(seconds);
}

/// One stage of a statement took `seconds` (telemetry::stage).
pub fn stage(stage: &'static str, seconds: f64) {
    STAGES.get(stage, || (stage, metrics::histogram!("lalo_stage_duration_seconds", "stage" => stage))).record(seconds);
}

/// A statement or login was refused, and why.
pub fn denial(reason: &'static str) {
    metrics::counter!("lalo_denials_total", "reason" => reason).increment(1);
}

/// A statement-cache lookup: `hit` (its executor was known) or `miss` (planned and governed).
pub fn plan_cache(hit: bool) {
    static HIT: LazyLock<Counter> = LazyLock::new(|| {
        install();
        metrics::counter!("lalo_plan_cache_total", "result" => "hit")
    });
    static MISS: LazyLock<Counter> = LazyLock::new(|| {
        install();
        metrics::counter!("lalo_plan_cache_total", "result" => "miss")
    });
    if hit { &HIT } else { &MISS }.increment(1);
}

/// An authenticated session began (+1) or ended (-1).
pub fn session(delta: f64) {
    metrics::gauge!("lalo_sessions").increment(delta);
}

/// An upstream's pool: connections in use and idle, breaker state.
pub fn upstream_pool(upstream: &str, in_use: usize, idle: usize, breaker_open: bool) {
    let name = upstream.to_string();
    metrics::gauge!("lalo_upstream_connections", "upstream" => name.clone(), "state" => "in_use").set(in_use as f64);
    metrics::gauge!("lalo_upstream_connections", "upstream" => name.clone(), "state" => "idle").set(idle as f64);
    metrics::gauge!("lalo_upstream_breaker_open", "upstream" => name).set(if breaker_open { 1.0 } else { 0.0 });
}

/// A round trip to an upstream finished after `seconds`; `lost` when the connection failed (an
/// error of the statement itself is the client's, not the upstream's).
pub fn upstream_call(upstream: &str, seconds: f64, lost: bool) {
    let (time, errors) = UPSTREAMS.get(upstream, || {
        let name: Arc<str> = upstream.into();
        let h = metrics::histogram!("lalo_upstream_duration_seconds", "upstream" => name.to_string());
        let c = metrics::counter!("lalo_upstream_errors_total", "upstream" => name.to_string());
        (name, (h, c))
    });
    time.record(seconds);
    if lost {
        errors.increment(1);
    }
}

/// One chat completion: its outcome, latency and the tokens it spent.
pub fn llm_call(ok: bool, seconds: f64, prompt_tokens: u64, completion_tokens: u64) {
    metrics::counter!("lalo_llm_calls_total", "outcome" => if ok { "ok" } else { "error" }).increment(1);
    metrics::histogram!("lalo_llm_duration_seconds").record(seconds);
    metrics::counter!("lalo_llm_tokens_total", "kind" => "prompt").increment(prompt_tokens);
    metrics::counter!("lalo_llm_tokens_total", "kind" => "completion").increment(completion_tokens);
}

/// The retrieval index holds `documents` and reflects the catalog as of `lag_seconds` ago.
pub fn retrieval_index(documents: usize, lag_seconds: f64) {
    metrics::gauge!("lalo_retrieval_index_documents").set(documents as f64);
    metrics::gauge!("lalo_retrieval_index_lag_seconds").set(lag_seconds);
}

/// An audit line was written (and, when `synced`, made durable after `sync_seconds`).
pub fn audit_write(sync_seconds: Option<f64>) {
    once_counter!("lalo_audit_writes_total").increment(1);
    if let Some(s) = sync_seconds {
        static SYNC: LazyLock<Histogram> = LazyLock::new(|| {
            install();
            metrics::histogram!("lalo_audit_sync_duration_seconds")
        });
        SYNC.record(s);
    }
}

/// An audit write or sync failed.
pub fn audit_failure() {
    once_counter!("lalo_audit_failures_total").increment(1);
}

/// A statement answered on the direct lane (wholly upstream, no planning).
pub fn direct_statement() {
    once_counter!("lalo_direct_statements_total").increment(1);
}

/// A statement the PostgreSQL lane ran upstream as the client wrote it.
pub fn postgres_statement() {
    once_counter!("lalo_postgres_statements_total").increment(1);
}

/// A direct-lane statement whose rows went to the client as the upstream encoded them.
pub fn forwarded_statement() {
    once_counter!("lalo_forwarded_statements_total").increment(1);
}

/// A lookup by primary key that went upstream on a pipelined connection.
pub fn pipelined_statement() {
    once_counter!("lalo_pipelined_statements_total").increment(1);
}

/// A statement was planned from SQL (DataFusion's SQL planner): at most once per statement.
pub fn plan_built() {
    once_counter!("lalo_plans_built_total").increment(1);
}

/// A plan went through governance: at most once per statement.
pub fn plan_governed() {
    once_counter!("lalo_plans_governed_total").increment(1);
}

/// A statement was admitted under the caller's limits: once per statement, whatever lane runs it.
pub fn admitted_statement() {
    once_counter!("lalo_admitted_statements_total").increment(1);
}

/// A statement was refused by the caller's limits (rate, concurrency): counted once per statement.
pub fn limited_statement() {
    once_counter!("lalo_limited_statements_total").increment(1);
}

/// A statement ran on a cached governed plan (no SQL planning, governance or optimizer).
pub fn cached_plan() {
    once_counter!("lalo_cached_plans_total").increment(1);
}

/// A client connected (+1) or left (-1) through `entry`.
pub fn connection(entry: &'static str, delta: f64) {
    metrics::gauge!("lalo_connections", "entry" => entry).increment(delta);
    if delta > 0.0 {
        metrics::counter!("lalo_connections_total", "entry" => entry).increment(1);
    }
}
