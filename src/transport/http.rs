//! The HTTP surface: `/mcp` (streamable HTTP), `/healthz`, `/readyz`, `/metrics`, and the other
//! transports' routes merged in, each tool and approval surface behind the one inbound
//! authentication layer (`auth::layer`) and every route behind the inbound stack
//! (`transport::inbound`). `router()` builds it without a socket so tests can drive it with
//! `oneshot`. It reaches the core only through the dispatcher's methods.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::auth::layer::{AuthLayer, Gatekeeper, Refusal, Surface};
use crate::auth::{AuthError, Authenticator};
use crate::config::{AuthConfig, Config};
use crate::core::dispatch::Dispatcher;
pub use crate::core::facade::CALLER_PERMISSION;
use crate::core::principal::Principal;
use crate::transport::mcp::{self, McpServer};
use crate::transport::mcp_resume::ResumableSessions;

/// What every HTTP handler may reach.
#[derive(Clone)]
pub struct AppState {
    pub dispatcher: Arc<Dispatcher>,
    pub config: Arc<Config>,
    pub auth: Arc<dyn Authenticator>,
    /// The intents outbox (webhooks write to it).
    pub intents: crate::intents::Intents,
    /// Where the outbox publisher delivers intents (its health is on `/readyz`).
    pub sink: Arc<dyn crate::intents::publisher::Sink>,
    /// The Kubernetes watch's health per cluster (on `/readyz`), when the watch is on.
    pub watch: Option<Arc<crate::integrations::kubernetes::WatchHealth>>,
    /// The incident facts consumer, when ticketing or paging is configured (`/readyz`).
    pub facts: Option<Arc<crate::incidents::consumer::Consumer>>,
}

/// Transport label of the approval REST API in audit records.
pub const REST: &str = "rest";

impl Gatekeeper for Dispatcher {
    fn permitted(&self, principal: &Principal, permission: &str) -> bool {
        Dispatcher::permitted(self, principal, permission)
    }

    fn refused<'a>(
        &'a self,
        transport: &'a str,
        who: Option<&'a Principal>,
        decision: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.audit_refusal(transport, who, decision, reason))
    }
}

impl AppState {
    /// The authentication layer of a tool surface (`/mcp`, `/rpc`, `/a2a`): anonymous loopback
    /// callers allowed (local mode), the caller permission required, MCP's challenge on refusal.
    pub fn tool_auth(&self, transport: &'static str) -> AuthLayer {
        let keeper: Arc<dyn Gatekeeper> = self.dispatcher.clone();
        AuthLayer::new(
            self.auth.clone(),
            keeper,
            Surface {
                transport,
                anonymous: true,
                permission: Some(CALLER_PERMISSION),
                refuse: challenge_refusal(&self.config),
            },
        )
    }

    /// The authentication layer of the approval API: a bearer token always (the queue shows
    /// every held call), JSON errors.
    pub fn api_auth(&self) -> AuthLayer {
        let keeper: Arc<dyn Gatekeeper> = self.dispatcher.clone();
        AuthLayer::new(
            self.auth.clone(),
            keeper,
            Surface {
                transport: REST,
                anonymous: false,
                permission: None,
                refuse: Arc::new(|refusal: &Refusal| {
                    match refusal {
                    Refusal::Unauthenticated(err) => err.response(),
                    Refusal::Forbidden { permission } => (
                        StatusCode::FORBIDDEN,
                        [(header::CONTENT_TYPE, "application/json")],
                        json!({"error": {"code": "forbidden", "message": format!("this API needs the permission {permission}")}})
                            .to_string(),
                    )
                        .into_response(),
                }
                }),
            },
        )
    }
}

/// How many MCP sessions may be open, and where they are counted.
#[derive(Clone)]
struct SessionCap {
    sessions: Arc<ResumableSessions>,
    max: usize,
}

/// An `initialize` (a POST without `Mcp-Session-Id`) past `mcp.max_sessions` gets 503 with
/// Retry-After and a JSON-RPC error that says why, instead of a session that would hold memory.
async fn session_cap(
    axum::extract::State(cap): axum::extract::State<SessionCap>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let opens_a_session = request.method() == axum::http::Method::POST
        && !request.headers().contains_key("mcp-session-id");
    if opens_a_session {
        let open = cap.sessions.open_sessions().await;
        if open >= cap.max {
            let body = serde_json::json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": {
                    "code": -32000,
                    "message": format!(
                        "this server holds {open} MCP sessions, its limit (mcp.max_sessions = {}); retry later, or end sessions you no longer use (DELETE /mcp)",
                        cap.max
                    ),
                },
            });
            return (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::RETRY_AFTER, "30")],
                axum::Json(body),
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// The whole HTTP application. `shutdown` ends open MCP streams on graceful shutdown.
pub fn router(state: AppState, shutdown: CancellationToken) -> Router {
    let (hosts, origins) = crate::transport::inbound::effective_lists(&state.config);
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_legacy_session_mode(state.config.mcp.sessions)
        // Requests served statelessly (sessions off, or protocol 2026-07-28) get one JSON answer
        // unless a notification comes first. In a session rmcp's answers stay SSE streams with
        // a priming event id, so a lost connection can resume (`mcp_resume`); plain calls that
        // answer within `mcp.json_answer_within` are one JSON body (`mcp_direct`).
        .with_json_response(true)
        .with_cancellation_token(shutdown.clone());
    // One MCP server, cloned for each session (it holds the shared tool list, built once).
    // The caller of each request comes from the auth layer (request extensions); this
    // fallback principal has no roles, so policy refuses everything it asks.
    let server = McpServer::new(
        state.dispatcher.clone(),
        Arc::new(mcp::mcp_tools(
            state.dispatcher.registry(),
            state.config.mcp.tool_names,
        )),
        state.config.mcp.tool_names,
        mcp::HTTP,
        Principal::new("unauthenticated", "unauthenticated", Vec::new()),
    );
    // rmcp's LocalSessionManager, with call streams that stay resumable after they ended,
    // idle sessions closed, and at most `mcp.max_sessions` of them.
    let sessions = Arc::new(ResumableSessions::new(
        state.config.mcp.session_idle_timeout,
    ));
    // Plain tool calls of open sessions, answered on their own connection (`mcp_direct`).
    let direct = Arc::new(crate::transport::mcp_direct::DirectCalls {
        sessions: sessions.clone(),
        server: server.clone(),
        max_body: mcp_config.max_request_body_bytes,
        keep_alive: mcp_config.sse_keep_alive,
        shutdown: shutdown.clone(),
        json_within: state.config.mcp.json_answer_within,
    });
    let mcp_service =
        StreamableHttpService::new(move || Ok(server.clone()), sessions.clone(), mcp_config);
    let cap = SessionCap {
        sessions,
        max: state.config.mcp.max_sessions,
    };
    // Shared, not cloned per request: the service's clone copies its host and origin lists.
    let mcp_service = Arc::new(mcp_service);
    let mcp_routes = Router::new()
        .fallback(move |request: axum::extract::Request| {
            let service = Arc::clone(&mcp_service);
            let direct = Arc::clone(&direct);
            async move {
                let method = request.method().clone();
                let response = match direct.answer(request).await {
                    Ok(response) => response,
                    Err(request) => service.handle(request).await.map(Body::new),
                };
                crate::transport::sse_coalesce::coalesced(&method, response).await
            }
        })
        .layer(axum::middleware::from_fn_with_state(cap, session_cap))
        .layer(axum::middleware::from_fn(jsonrpc_framing_errors))
        .layer(state.tool_auth(mcp::HTTP));
    let routes = Router::new()
        .nest("/mcp", mcp_routes)
        .merge(crate::transport::approvals::routes(state.api_auth()))
        .merge(crate::transport::jsonrpc::routes(
            state.tool_auth(crate::transport::jsonrpc::TRANSPORT),
        ))
        .merge(crate::transport::a2a::routes(
            state.tool_auth(crate::transport::a2a::TRANSPORT),
            shutdown,
        ))
        .merge(crate::transport::approvals_page::routes())
        .merge(crate::transport::webhooks::routes(
            &state.config.webhooks.alertmanager,
            &state.intents,
        ))
        .route(
            "/.well-known/oauth-protected-resource",
            get(protected_resource),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(protected_resource),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    let config = state.config.clone();
    crate::transport::inbound::apply(routes.with_state(state), &config)
}

/// Scopes a client should ask the authorization server for.
fn scopes(config: &Config) -> Vec<String> {
    match &config.auth {
        AuthConfig::Zitadel(z) => vec![
            "openid".to_string(),
            format!("urn:zitadel:iam:org:project:id:{}:aud", z.project_id),
            "urn:zitadel:iam:org:projects:roles".to_string(),
        ],
        AuthConfig::Local { .. } => Vec::new(),
    }
}

/// RFC 9728 protected-resource metadata: where MCP clients find the authorization server.
async fn protected_resource(State(state): State<AppState>) -> Response {
    let config = &state.config;
    let mut doc = json!({
        "resource": format!("{}/mcp", config.public_url),
        "resource_name": "toolgate",
        "bearer_methods_supported": ["header"],
        "scopes_supported": scopes(config),
    });
    if let AuthConfig::Zitadel(z) = &config.auth {
        doc["authorization_servers"] = json!([z.issuer]);
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

/// MCP authorization (spec 2025-11-25), the refusal of every tool surface: no or bad token →
/// 401 with a `WWW-Authenticate` challenge naming the resource metadata; a valid token without
/// the caller permission → 403. The client's token stops at the layer: tools never see it.
fn challenge_refusal(config: &Config) -> crate::auth::layer::Refuse {
    let metadata = format!("{}/.well-known/oauth-protected-resource", config.public_url);
    let scope = scopes(config).join(" ");
    Arc::new(move |refusal: &Refusal| {
        let challenge = |extra: &str| {
            let mut value = format!("Bearer resource_metadata=\"{metadata}\"");
            if !scope.is_empty() {
                value.push_str(&format!(", scope=\"{scope}\""));
            }
            value.push_str(extra);
            value
        };
        let (status, extra, code, message) = match refusal {
            Refusal::Unauthenticated(err) => (
                match err {
                    AuthError::Missing | AuthError::Invalid => StatusCode::UNAUTHORIZED,
                    AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                },
                if *err == AuthError::Invalid {
                    ", error=\"invalid_token\""
                } else {
                    ""
                },
                "unauthenticated",
                err.to_string(),
            ),
            Refusal::Forbidden { permission } => (
                StatusCode::FORBIDDEN,
                ", error=\"insufficient_scope\"",
                "forbidden",
                format!("calling tools needs the permission {permission}"),
            ),
        };
        (
            status,
            [
                (header::WWW_AUTHENTICATE, challenge(extra)),
                (header::CONTENT_TYPE, "application/json".to_string()),
            ],
            json!({"error": {"code": code, "message": message}}).to_string(),
        )
            .into_response()
    })
}

/// Largest MCP request body accepted (rmcp's own limit).
const MAX_MCP_BODY: usize = 4 * 1024 * 1024;

/// rmcp answers a JSON body it cannot read as a JSON-RPC message with a plain-text 415; MCP
/// clients expect a JSON-RPC error. Re-frame those: -32700 for bytes that are not JSON, -32600
/// for JSON that is not a valid request, with the request's id when it has one.
async fn jsonrpc_framing_errors(req: Request, next: Next) -> Response {
    let is_json_post = req.method() == Method::POST
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"));
    if !is_json_post {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_MCP_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return jsonrpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                Value::Null,
                -32600,
                format!("Invalid Request: body over {MAX_MCP_BODY} bytes"),
            );
        }
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    let status = response.status();
    let plain = !response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json") || ct.contains("event-stream"));
    if !(plain
        && (status == StatusCode::UNSUPPORTED_MEDIA_TYPE || status == StatusCode::BAD_REQUEST))
    {
        return response;
    }
    let detail = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    // Parsed only here: a request rmcp accepted needs no second parse.
    match serde_json::from_slice::<Value>(&bytes) {
        Err(e) => jsonrpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32700,
            format!("Parse error: {e}"),
        ),
        Ok(value) => {
            let id = value.get("id").cloned().unwrap_or(Value::Null);
            jsonrpc_error(
                StatusCode::BAD_REQUEST,
                id,
                -32600,
                format!(
                    "Invalid Request: {}; expected a JSON-RPC 2.0 object {{\"jsonrpc\":\"2.0\",\"id\":…,\"method\":…,\"params\":{{…}}}} with params of the method's shape",
                    detail.trim()
                ),
            )
        }
    }
}

fn jsonrpc_error(status: StatusCode, id: Value, code: i64, message: String) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// JSON, one entry per integration; 503 only when the store is down (see `core::readiness`).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let extra = state
        .auth
        .health()
        .into_iter()
        .chain(state.sink.health())
        .chain(state.facts.as_ref().and_then(|f| f.health()))
        .collect();
    let signals = state
        .watch
        .as_ref()
        .map(|w| w.entries())
        .unwrap_or_default();
    let mut readiness = state.dispatcher.readiness_with(extra, signals).await;
    if let Some(facts) = &state.facts {
        let (dead_lettered, lag) = crate::incidents::metrics::snapshot();
        let entry = readiness
            .integrations
            .entry("facts".to_string())
            .or_insert_with(|| crate::core::readiness::Integration::plain("ok", None));
        let detail = entry.detail.get_or_insert_with(Default::default);
        detail.insert("dead_lettered".into(), dead_lettered.into());
        if facts.health().is_some() {
            detail.insert("lag".into(), lag.into());
        }
    }
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&readiness).unwrap_or_default(),
    )
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
