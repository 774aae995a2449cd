//! The HTTP surface: `/mcp` (streamable HTTP), `/healthz`, `/readyz`, `/metrics`.
//! `router()` builds it without a socket so tests can drive it with `oneshot`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::core::dispatch::Dispatcher;
use crate::core::principal::Principal;
use crate::transport::mcp::{self, McpServer};

/// What every HTTP handler may reach.
#[derive(Clone)]
pub struct AppState {
    pub dispatcher: Arc<Dispatcher>,
    pub config: Arc<Config>,
}

/// The whole HTTP application. `shutdown` ends open MCP streams on graceful shutdown.
pub fn router(state: AppState, shutdown: CancellationToken) -> Router {
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(state.config.mcp.allowed_hosts.clone())
        .with_allowed_origins(state.config.mcp.allowed_origins.clone())
        .enforce_origin_validation()
        .with_legacy_session_mode(state.config.mcp.sessions)
        .with_json_response(!state.config.mcp.sessions)
        .with_cancellation_token(shutdown);
    let dispatcher = state.dispatcher.clone();
    let names = state.config.mcp.tool_names;
    let mcp_service = StreamableHttpService::new(
        // No authentication yet on HTTP: the caller is the anonymous loopback user.
        move || {
            Ok(McpServer::new(
                dispatcher.clone(),
                names,
                mcp::HTTP,
                Principal::local("http-anonymous"),
            ))
        },
        LocalSessionManager::default().into(),
        mcp_config,
    );
    Router::new()
        .nest_service("/mcp", mcp_service)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready only when every configured cluster answers.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let kube = state.dispatcher.adapters().kube.clone();
    match tokio::time::timeout(Duration::from_secs(5), kube.check_ready()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".to_string()),
        Ok(Err(reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: clusters did not answer within 5 s\n".to_string(),
        ),
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::render(),
    )
}
