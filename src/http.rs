//! The HTTP side: `/healthz`, `/readyz`, `/metrics` (and `/mcp` where enabled).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::service::Lalo;

/// The HTTP routes for one gateway.
pub fn router(lalo: Arc<Lalo>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(lalo)
}

async fn readyz(State(lalo): State<Arc<Lalo>>) -> impl IntoResponse {
    let report = lalo.readiness();
    let code = if report.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(report))
}

async fn metrics() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}

/// Bind and serve the HTTP routes.
pub async fn bind(lalo: Arc<Lalo>, addr: &str) -> Result<(tokio::net::TcpListener, Router), crate::error::LaloError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| crate::error::LaloError::Config(format!("cannot listen on {addr}: {e}")))?;
    Ok((listener, router(lalo)))
}
