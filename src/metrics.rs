//! Prometheus metrics: connections, statements by outcome, latency.

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
pub fn statement(outcome: &'static str, entry: &'static str, seconds: f64) {
    metrics::counter!("lalo_statements_total", "outcome" => outcome, "entry" => entry).increment(1);
    metrics::histogram!("lalo_statement_duration_seconds", "entry" => entry).record(seconds);
}

/// A client connected (+1) or left (-1).
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

pub fn connection(delta: f64) {
    metrics::gauge!("lalo_connections").increment(delta);
    if delta > 0.0 {
        metrics::counter!("lalo_connections_total").increment(1);
    }
}
