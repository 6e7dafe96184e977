//! Prometheus metrics (the catalog in the README's Operations section): statements by entry
//! point, lane and outcome; latency per statement and per stage; denials; cache hits;
//! connections; upstream pools; LLM calls; the retrieval index; audit writes.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process-wide recorder once (several gateways in one process share it).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
                .ok()
                .and_then(|b| b.install_recorder().ok())
        })
        .clone()
}

/// Render the current metrics in Prometheus text format.
pub fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}

/// Record one finished statement.
pub fn statement(outcome: &'static str, entry: &'static str, lane: &'static str, seconds: f64) {
    metrics::counter!("lalo_statements_total", "outcome" => outcome, "entry" => entry, "lane" => lane).increment(1);
    metrics::histogram!("lalo_statement_duration_seconds", "entry" => entry, "lane" => lane).record(seconds);
}

/// One stage of a statement took `seconds` (telemetry::stage).
pub fn stage(stage: &'static str, seconds: f64) {
    metrics::histogram!("lalo_stage_duration_seconds", "stage" => stage).record(seconds);
}

/// A statement or login was refused, and why.
pub fn denial(reason: &'static str) {
    metrics::counter!("lalo_denials_total", "reason" => reason).increment(1);
}

/// A statement-cache lookup: `hit` (its executor was known) or `miss` (planned and governed).
pub fn plan_cache(hit: bool) {
    metrics::counter!("lalo_plan_cache_total", "result" => if hit { "hit" } else { "miss" }).increment(1);
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

/// A round trip to an upstream finished after `seconds`, with or without an error.
pub fn upstream_call(upstream: &str, seconds: f64, failed: bool) {
    metrics::histogram!("lalo_upstream_duration_seconds", "upstream" => upstream.to_string()).record(seconds);
    if failed {
        metrics::counter!("lalo_upstream_errors_total", "upstream" => upstream.to_string()).increment(1);
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
    metrics::counter!("lalo_audit_writes_total").increment(1);
    if let Some(s) = sync_seconds {
        metrics::histogram!("lalo_audit_sync_duration_seconds").record(s);
    }
}

/// An audit write or sync failed.
pub fn audit_failure() {
    metrics::counter!("lalo_audit_failures_total").increment(1);
}

/// A statement answered on the direct lane (wholly upstream, no planning).
pub fn direct_statement() {
    metrics::counter!("lalo_direct_statements_total").increment(1);
}

/// A statement the PostgreSQL lane ran upstream as the client wrote it.
pub fn postgres_statement() {
    metrics::counter!("lalo_postgres_statements_total").increment(1);
}

/// A direct-lane statement whose rows went to the client as the upstream encoded them.
pub fn forwarded_statement() {
    metrics::counter!("lalo_forwarded_statements_total").increment(1);
}

/// A lookup by primary key that went upstream on a pipelined connection.
pub fn pipelined_statement() {
    metrics::counter!("lalo_pipelined_statements_total").increment(1);
}

/// A statement was planned from SQL (DataFusion's SQL planner): at most once per statement.
pub fn plan_built() {
    metrics::counter!("lalo_plans_built_total").increment(1);
}

/// A plan went through governance: at most once per statement.
pub fn plan_governed() {
    metrics::counter!("lalo_plans_governed_total").increment(1);
}

/// A statement was admitted under the caller's limits: once per statement, whatever lane runs it.
pub fn admitted_statement() {
    metrics::counter!("lalo_admitted_statements_total").increment(1);
}

/// A statement was refused by the caller's limits (rate, concurrency): counted once per statement.
pub fn limited_statement() {
    metrics::counter!("lalo_limited_statements_total").increment(1);
}

/// A statement ran on a cached governed plan (no SQL planning, governance or optimizer).
pub fn cached_plan() {
    metrics::counter!("lalo_cached_plans_total").increment(1);
}

/// A client connected (+1) or left (-1) through `entry`.
pub fn connection(entry: &'static str, delta: f64) {
    metrics::gauge!("lalo_connections", "entry" => entry).increment(delta);
    if delta > 0.0 {
        metrics::counter!("lalo_connections_total", "entry" => entry).increment(1);
    }
}
