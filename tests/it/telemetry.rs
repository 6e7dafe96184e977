//! Operations: spans exported over OTLP to a local receiver (http/protobuf, as a collector
//! takes them), the caller's W3C `traceparent` honoured on HTTP, the trace id in the audit
//! record; the metrics catalog's series on `/metrics`; `lalo check`'s findings.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;
use prost::Message;

use crate::audit::{connect, free_port, records, spawn_lalo_with, wait_ready};

/// A minimal OTLP/HTTP receiver: every span of every `POST /v1/traces`.
async fn receiver() -> (u16, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).expect("an OTLP export request");
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        kept.lock().extend(ss.spans);
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, spans)
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()?.value.as_ref()).map(|v| match v {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}

async fn wait_for(spans: &Mutex<Vec<Span>>, what: &str, found: impl Fn(&[Span]) -> bool) {
    for _ in 0..100 {
        if found(&spans.lock()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names: Vec<String> =
        spans.lock().iter().map(|s| format!("{} {:?} trace {}", s.name, attr(s, "db.query.text"), hex(&s.trace_id))).collect();
    panic!("no span shows {what}; received: {names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_traced_over_otlp_with_the_callers_trace_and_the_audit_names_it() {
    let (otlp, spans) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let (port, http) = (free_port(), free_port());
    let endpoint = format!("http://127.0.0.1:{otlp}");
    let http_listen = format!("127.0.0.1:{http}");
    let _lalo = spawn_lalo_with(
        &log,
        port,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), ("OTEL_BSP_SCHEDULE_DELAY", "100"), ("LALO_SERVER_HTTP_LISTEN", &http_listen)],
    );
    wait_ready(port).await;

    // A pgwire statement: one trace with the statement and its stages.
    let client = connect(port, "analyst").await.expect("connects");
    let sql = "SELECT count(*) FROM tpch.orders WHERE o_totalprice > 1000";
    client.simple_query(sql).await.expect("runs");
    wait_for(&spans, "the pgwire statement", |s| s.iter().any(|x| x.name == "statement" && attr(x, "db.query.text").as_deref() == Some(sql))).await;
    let stmt = spans.lock().iter().find(|x| x.name == "statement" && attr(x, "db.query.text").as_deref() == Some(sql)).cloned().unwrap();
    assert_eq!(attr(&stmt, "lalo.entry").as_deref(), Some("pgwire"));
    assert_eq!(attr(&stmt, "enduser.id").as_deref(), Some("analyst"));
    wait_for(&spans, "the statement's stages", |s| {
        ["parse", "plan", "govern", "audit"].iter().all(|stage| s.iter().any(|x| x.name == *stage && x.trace_id == stmt.trace_id))
    })
    .await;
    for child in spans.lock().iter().filter(|x| x.trace_id == stmt.trace_id && x.name != "statement") {
        assert!(!child.parent_span_id.is_empty(), "{} is a child span", child.name);
    }

    // An HTTP statement under the caller's trace: same trace id, the caller's span as parent.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let out = std::process::Command::new("curl")
        .args(["-s", "-u", "analyst:analyst", "-H", "content-type: application/json"])
        .args(["-H", &format!("traceparent: 00-{trace_id}-{parent}-01")])
        .args(["-d", r#"{"sql":"SELECT 41 + 1 AS answer"}"#, &format!("http://{http_listen}/v1/sql")])
        .output()
        .expect("curl runs");
    assert!(String::from_utf8_lossy(&out.stdout).contains("42"), "{}", String::from_utf8_lossy(&out.stdout));
    wait_for(&spans, "the caller's trace", |s| s.iter().any(|x| x.name == "statement" && hex(&x.trace_id) == trace_id)).await;
    let http_stmt = spans.lock().iter().find(|x| x.name == "statement" && hex(&x.trace_id) == trace_id).cloned().unwrap();
    assert_eq!(hex(&http_stmt.parent_span_id), parent, "the statement span's parent is the caller's span");
    assert_eq!(attr(&http_stmt, "lalo.entry").as_deref(), Some("http"));

    // The audit records name their traces.
    let recs = records(&log);
    let traced = |needle: &str| recs.iter().find(|r| r["input"].as_str().is_some_and(|i| i.contains(needle))).and_then(|r| r["trace_id"].as_str().map(String::from));
    assert_eq!(traced("41 + 1").as_deref(), Some(trace_id), "{recs:?}");
    assert_eq!(traced("o_totalprice > 1000"), Some(hex(&stmt.trace_id)), "{recs:?}");

    // The metrics catalog: statements by entry, lane and outcome; stages; the audit's writes.
    let metrics = String::from_utf8_lossy(&std::process::Command::new("curl").args(["-s", &format!("http://{http_listen}/metrics")]).output().unwrap().stdout).into_owned();
    for series in [
        r#"lalo_statements_total{outcome="ok",entry="pgwire",lane="engine"}"#,
        r#"lalo_statements_total{outcome="ok",entry="http",lane="engine"}"#,
        r#"lalo_stage_duration_seconds_bucket{stage="plan""#,
        r#"lalo_plan_cache_total{result="miss"}"#,
        "lalo_audit_writes_total",
        "lalo_audit_sync_duration_seconds_bucket",
        r#"lalo_connections{entry="pgwire"}"#,
        "lalo_sessions",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics:\n{metrics}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
