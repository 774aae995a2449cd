//! Wiring: config → adapters → registry → dispatcher → transports; signals and graceful drain.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::adapters::Adapters;
use crate::adapters::kube::KubeAdapter;
use crate::config::Config;
use crate::core::dispatch::Dispatcher;
use crate::core::principal::Principal;
use crate::core::registry::Registry;
use crate::transport::http::{AppState, router};
use crate::transport::mcp::{self, McpServer};

/// Install ring as the process-wide TLS crypto provider (kube and reqwest both use rustls;
/// ring needs no C toolchain beyond cc). Idempotent.
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Build the dispatch core from a validated config. Does no network I/O.
pub fn build(config: &Config) -> anyhow::Result<Arc<Dispatcher>> {
    init_crypto();
    let registry = Registry::new(crate::tools::all()).context("building the tool registry")?;
    let adapters = Adapters {
        kube: Arc::new(KubeAdapter::new(&config.kubernetes)),
    };
    Ok(Arc::new(Dispatcher::new(
        Arc::new(registry),
        Arc::new(adapters),
        config.tools.clone(),
    )))
}

/// `toolgate serve`: HTTP until SIGTERM/ctrl-c, then drain for at most 10 s.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: draining open requests");
        signal.cancel();
    });
    serve_on(listener, config, shutdown).await
}

/// Serve HTTP on an already bound listener until `shutdown` is cancelled (tests bind port 0).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let dispatcher = build(&config)?;
    let local = listener.local_addr().context("listener address")?;
    let state = AppState {
        dispatcher,
        config: Arc::new(config),
    };
    let app = router(state, shutdown.clone());
    tracing::info!(addr = %local, "toolgate listening (MCP at /mcp)");
    let graceful = shutdown.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move { graceful.cancelled().await });
    tokio::select! {
        result = server => result.context("HTTP server")?,
        _ = async move { shutdown.cancelled().await; tokio::time::sleep(Duration::from_secs(10)).await } => {
            tracing::warn!("drain deadline reached; closing remaining connections");
        }
    }
    Ok(())
}

/// `toolgate stdio`: MCP over stdin/stdout for IDEs; logs go to stderr.
pub async fn stdio(config: Config) -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    let dispatcher = build(&config)?;
    let principal = Principal::local(&config.stdio_principal);
    let server = McpServer::new(dispatcher, config.mcp.tool_names, mcp::STDIO, principal);
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .context("starting MCP over stdio")?;
    tokio::select! {
        result = running.waiting() => { result.context("MCP stdio session")?; }
        _ = wait_for_signal() => {}
    }
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
