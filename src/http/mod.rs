//! The HTTP side: `/healthz`, `/readyz`, `/metrics`, the MCP endpoint `/mcp` behind
//! bearer-token authentication (tokens from the environment, each mapped to a lalo user), and
//! the query API `/v1/*` (api.rs) behind Basic or bearer authentication (credentials.rs).

mod api;
mod body;
mod credentials;

pub use credentials::audit_refused;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::mcp::{LaloMcp, McpUser};
use crate::pipeline::Lalo;

/// The HTTP routes for one gateway.
pub fn router(lalo: Arc<Lalo>) -> Router {
    let tokens = Arc::new(crate::mcp::token_map(&lalo));
    let mcp_lalo = lalo.clone();
    let mut config = StreamableHttpServerConfig::default();
    // Open MCP streams end when shutdown begins, so the HTTP listener can drain.
    config.cancellation_token = lalo.shutdown.draining.child_token();
    // DNS rebinding: only loopback Host headers (the default) and local browser origins.
    config.allowed_origins = vec!["http://localhost:*".into(), "http://127.0.0.1:*".into()];
    let mcp = StreamableHttpService::new(
        move || Ok(LaloMcp::new(mcp_lalo.clone(), None)),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let gate = Arc::new(credentials::Gate::new(lalo.clone(), tokens.as_ref().clone()));
    let mcp_routes = Router::new()
        .nest_service("/mcp", mcp)
        .layer(axum::middleware::from_fn_with_state(tokens, bearer_auth));
    let api_routes = api::routes(lalo.clone()).layer(axum::middleware::from_fn_with_state(gate, credentials::require));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(api::openapi))
        .with_state(lalo)
        .merge(mcp_routes)
        .merge(api_routes)
}

/// 401 with `WWW-Authenticate` unless the bearer token maps to a user.
async fn bearer_auth(State(tokens): State<Arc<HashMap<String, String>>>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match token.and_then(|t| tokens.get(t)) {
        Some(user) => {
            req.extensions_mut().insert(McpUser(user.clone()));
            next.run(req).await
        }
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"lalo\", error=\"invalid_token\"")],
            "a valid bearer token is required",
        )
            .into_response(),
    }
}

async fn readyz(State(lalo): State<Arc<Lalo>>) -> impl IntoResponse {
    let report = lalo.readiness();
    let code = if report.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(report))
}

async fn metrics(State(lalo): State<Arc<Lalo>>) -> impl IntoResponse {
    // Pool gauges are read when scraped: they are states, not events.
    for u in lalo.engine.upstreams().iter() {
        let (in_use, idle) = u.direct().map(|p| p.usage()).unwrap_or((0, 0));
        crate::metrics::upstream_pool(&u.name, in_use, idle, !u.is_up());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::render())
}

/// Bind and serve the HTTP routes.
pub async fn bind(lalo: Arc<Lalo>, addr: &str) -> Result<(tokio::net::TcpListener, Router), crate::error::LaloError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| crate::error::LaloError::Config(format!("cannot listen on {addr}: {e}")))?;
    Ok((listener, router(lalo)))
}
