//! Traces: one span per statement and per stage, exported over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, with the W3C `traceparent` of HTTP callers honoured.
//!
//! Spans are made only while an exporter is installed ([`enabled`]): the statement path pays
//! one atomic load when tracing is off, not a span's bookkeeping per stage.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use opentelemetry::trace::TraceContextExt;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are being exported.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The installed exporter, flushed at exit.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Send the spans still buffered; called once, as the process exits.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The batch processor's shutdown blocks until its task has exported: off the runtime's
            // workers, or it could wait on itself.
            // Bounded: a collector that does not answer must not hold the exit past the
            // orchestrator's grace period.
            let flush = tokio::task::spawn_blocking(move || provider.shutdown());
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), flush).await;
        }
    }
}

/// Install the process's log subscriber (`LALO_LOG`, `LALO_LOG_FORMAT`) and, when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set, the OTLP span exporter:
/// `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` for gRPC, http/protobuf otherwise (the specification's
/// default). Must run inside the Tokio runtime (the exporter's batch task lives there).
pub fn init() -> Telemetry {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LALO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = std::env::var("LALO_LOG_FORMAT").map(|v| v.eq_ignore_ascii_case("json")).unwrap_or(false);
    let fmt = if json {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).json().boxed()
    } else {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed()
    };
    let (provider, exporter_error) = match exporter() {
        Ok(p) => (p, None),
        Err(e) => (None, Some(e)),
    };
    // The exported spans are lalo's own, whatever the log level says.
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("lalo"))
            .with_filter(tracing_subscriber::filter::Targets::new().with_target("lalo", tracing::Level::INFO))
    });
    // The statement and stage spans are for the exporter: log lines would otherwise carry the
    // statement text and user in every span context they print.
    let filter = ["lalo::statement=off", "lalo::stage=off"]
        .iter()
        .filter_map(|d| d.parse().ok())
        .fold(filter, tracing_subscriber::EnvFilter::add_directive);
    tracing_subscriber::registry().with(fmt.with_filter(filter)).with(otel).init();
    if let Some(e) = exporter_error {
        tracing::error!("OTLP exporter not started: {e}");
    }
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        ENABLED.store(true, Ordering::Relaxed);
    }
    Telemetry { provider }
}

fn exporter() -> Result<Option<SdkTracerProvider>, String> {
    let set = |v: &str| std::env::var(v).is_ok_and(|s| !s.trim().is_empty());
    if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Ok(None);
    }
    use opentelemetry_otlp::WithExportConfig as _;
    // The exporters' HTTP and gRPC clients build on rustls, which needs a process-wide crypto
    // provider (the one lalo's other TLS uses).
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_default();
    let exporter = if protocol.trim() == "grpc" {
        opentelemetry_otlp::SpanExporter::builder().with_tonic().with_protocol(opentelemetry_otlp::Protocol::Grpc).build()
    } else {
        opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(opentelemetry_otlp::Protocol::HttpBinary).build()
    }
    .map_err(|e| e.to_string())?;
    // The runtime's batch processor: the exporter's HTTP and gRPC clients need the Tokio runtime.
    let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter,
        opentelemetry_sdk::runtime::Tokio,
    )
    .build();
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "lalo".to_string());
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service).build();
    Ok(Some(SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource).build()))
}

/// The span of one statement, a child of the caller's trace when `parent` carries a W3C
/// `traceparent`; disabled when no exporter runs.
pub fn statement_span(entry: &'static str, user: &str, text: &str, parent: Option<&axum::http::HeaderMap>) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        target: "lalo::statement",
        "statement",
        lalo.entry = entry,
        enduser.id = user,
        db.system = "postgresql",
        db.query.text = bounded(text),
        lalo.lane = tracing::field::Empty,
        lalo.outcome = tracing::field::Empty,
    );
    if let Some(headers) = parent {
        let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&opentelemetry_http::HeaderExtractor(headers)));
        if cx.span().span_context().is_valid() {
            let _ = span.set_parent(cx);
        }
    }
    span
}

/// Statement text as spans carry it: at most [`TEXT_LIMIT`] bytes (spans wait in the exporter's
/// queue; a statement can be megabytes).
fn bounded(text: &str) -> &str {
    if text.len() <= TEXT_LIMIT {
        return text;
    }
    let mut end = TEXT_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

const TEXT_LIMIT: usize = 4096;

/// Note on the current statement span which lane answered it.
pub fn record_lane(lane: &'static str) {
    if enabled() {
        tracing::Span::current().record("lalo.lane", lane);
    }
}

/// Note on the current stage span (an LLM call) the tokens it spent.
pub fn record_tokens(prompt: u64, completion: u64) {
    if enabled() {
        let span = tracing::Span::current();
        span.record("gen_ai.usage.input_tokens", prompt);
        span.record("gen_ai.usage.output_tokens", completion);
    }
}

/// The trace id of the current span, for the audit record; `None` when no exporter runs.
pub fn trace_id() -> Option<String> {
    if !enabled() {
        return None;
    }
    let current = tracing::Span::current();
    if current.is_none() {
        return None;
    }
    let cx = current.context();
    let sc = cx.span().span_context().clone();
    // A trace that is not exported (the caller's unsampled traceparent) is not named.
    (sc.is_valid() && sc.is_sampled()).then(|| sc.trace_id().to_string())
}

/// `tokio::spawn` that keeps the task in the current statement's trace when tracing.
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if enabled() {
        tokio::spawn(fut.in_current_span())
    } else {
        tokio::spawn(fut)
    }
}

/// Run one stage of a statement: timed into `lalo_stage_duration_seconds{stage}` and, when
/// tracing, under a span of its own (`detail` is recorded on it, e.g. the SQL sent upstream).
pub async fn stage<F: Future>(name: &'static str, detail: Option<&str>, fut: F) -> F::Output {
    let began = Instant::now();
    let out = traced(name, detail, fut).await;
    crate::metrics::stage(name, began.elapsed().as_secs_f64());
    out
}

/// A stage traced but not timed into the stage histogram: one a series of its own already
/// times (`upstream`, `audit`). Every histogram sample costs the statement path a shared
/// atomic; two for the same interval buy nothing.
pub async fn traced<F: Future>(name: &'static str, detail: Option<&str>, fut: F) -> F::Output {
    if in_statement() {
        fut.instrument(stage_span(name, detail)).await
    } else {
        fut.await
    }
}

/// [`stage`] for work that does not wait.
pub fn stage_sync<R>(name: &'static str, detail: Option<&str>, f: impl FnOnce() -> R) -> R {
    let began = Instant::now();
    let out = traced_sync(name, detail, f);
    crate::metrics::stage(name, began.elapsed().as_secs_f64());
    out
}

/// [`traced`] for work that does not wait.
pub fn traced_sync<R>(name: &'static str, detail: Option<&str>, f: impl FnOnce() -> R) -> R {
    if in_statement() {
        stage_span(name, detail).in_scope(f)
    } else {
        f()
    }
}

/// Stage spans belong to a statement's trace: work outside one (a background refresh, a
/// statement of an entry point without a span) is timed but not traced.
fn in_statement() -> bool {
    enabled() && !tracing::Span::current().is_none()
}

fn stage_span(name: &'static str, detail: Option<&str>) -> tracing::Span {
    let span = tracing::info_span!(
        target: "lalo::stage",
        "stage",
        otel.name = name,
        lalo.detail = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
    );
    if let Some(d) = detail {
        span.record("lalo.detail", bounded(d));
    }
    span
}
