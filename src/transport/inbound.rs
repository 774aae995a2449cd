//! The inbound middleware of every HTTP route, applied once in `router()`: request ids
//! (`x-request-id`, set when missing and echoed back), a trace span per request, load
//! shedding over a global concurrency limit (503 JSON), a request timeout, a body read timeout
//! and a body size cap (tower/tower-http), and the browser checks: `Host` (DNS rebinding),
//! `Origin` (cross-site requests) and `Content-Type` (CSRF with `text/plain` simple requests),
//! refused with 403/415 JSON. It owns no route and must not look at who the caller is.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::timeout::TimeoutLayer;
use tower::util::MapResponseLayer;
use tower_http::limit::{RequestBodyLimitLayer, ResponseBody};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;

/// Requests handled at once; past this new ones get 503 at once instead of queueing.
pub const MAX_IN_FLIGHT: usize = 512;
/// A client that sends its body slower than this in total is dropped.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Beyond the longest tool call (`tools.timeout`): an `approval.status` wait (60 s) plus
/// a dry-run preview and the store.
const REQUEST_SLACK: Duration = Duration::from_secs(90);
/// Largest MCP request body (rmcp's own limit); the global cap is never below it.
const MAX_MCP_BODY: usize = 4 * 1024 * 1024;
/// Routes that answer probes and scrapers, which reach the pod by its IP: no browser checks.
const PROBES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Why the browser checks refused a request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error(
        "Host `{0}` is not served here (possible DNS rebinding); send one of mcp.allowed_hosts: {1}"
    )]
    Host(String, String),
    #[error("Origin `{0}` may not call this server; allowed origins (mcp.allowed_origins): {1}")]
    Origin(String, String),
    #[error("Content-Type `{0}` is not accepted here; send the body as `application/json`")]
    ContentType(String),
}

impl Refused {
    fn code(&self) -> &'static str {
        match self {
            Refused::Host(..) => "forbidden_host",
            Refused::Origin(..) => "forbidden_origin",
            Refused::ContentType(_) => "unsupported_media_type",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Refused::Host(..) | Refused::Origin(..) => StatusCode::FORBIDDEN,
            Refused::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        json_error(self.status(), self.code(), &self.to_string())
    }
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": {"code": code, "message": message}}).to_string(),
    )
        .into_response()
}

/// A `Host` rule: a name, with or without a port (rmcp's `allowed_hosts` semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostRule {
    host: String,
    port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortRule {
    /// `:*`, or no port in the entry (rmcp still reads that as any port).
    Any,
    Exact(u16),
}

/// An `Origin` rule (rmcp's `allowed_origins` semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginRule {
    Null,
    Tuple {
        scheme: String,
        host: String,
        port: PortRule,
    },
}

fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn parse_host_rule(raw: &str) -> Option<HostRule> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    Some(match raw.parse::<axum::http::uri::Authority>() {
        Ok(a) => HostRule {
            host: normalize_host(a.host()),
            port: a.port_u16(),
        },
        Err(_) => HostRule {
            host: normalize_host(raw),
            port: None,
        },
    })
}

/// An origin as a browser sends it: `null`, or (scheme, host, port).
fn parse_origin(raw: &str) -> Option<(String, String, Option<u16>)> {
    let uri = raw.trim().parse::<Uri>().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    Some((
        scheme,
        normalize_host(authority.host()),
        authority.port_u16(),
    ))
}

fn parse_origin_rule(raw: &str) -> Option<OriginRule> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("null") {
        return Some(OriginRule::Null);
    }
    if let Some(base) = raw.strip_suffix(":*") {
        let (scheme, host, None) = parse_origin(base)? else {
            return None;
        };
        return Some(OriginRule::Tuple {
            scheme,
            host,
            port: PortRule::Any,
        });
    }
    let (scheme, host, port) = parse_origin(raw)?;
    Some(OriginRule::Tuple {
        scheme,
        host,
        port: port.map_or(PortRule::Any, PortRule::Exact),
    })
}

/// The `Host` names and browser origins this server accepts, on every route.
#[derive(Debug, Clone)]
pub struct BrowserChecks {
    hosts: Vec<HostRule>,
    origins: Vec<OriginRule>,
    hosts_text: String,
    origins_text: String,
}

impl BrowserChecks {
    /// `mcp.allowed_hosts` and `mcp.allowed_origins`, plus this server's own `public_url`
    /// (the approvals page posts its forms to its own origin).
    pub fn from_config(config: &Config) -> Self {
        let (hosts, origins) = effective_lists(config);
        Self::new(&hosts, &origins)
    }

    pub fn new(hosts: &[String], origins: &[String]) -> Self {
        Self {
            hosts: hosts.iter().filter_map(|h| parse_host_rule(h)).collect(),
            origins: origins
                .iter()
                .filter_map(|o| parse_origin_rule(o))
                .collect(),
            hosts_text: hosts.join(", "),
            origins_text: if origins.is_empty() {
                "none".into()
            } else {
                origins.join(", ")
            },
        }
    }

    fn host_allowed(&self, raw: &str) -> bool {
        if self.hosts.is_empty() {
            return true;
        }
        let Ok(authority) = raw.parse::<axum::http::uri::Authority>() else {
            return false;
        };
        let (host, port) = (normalize_host(authority.host()), authority.port_u16());
        self.hosts
            .iter()
            .any(|r| r.host == host && r.port.is_none_or(|p| port == Some(p)))
    }

    fn origin_allowed(&self, raw: &str) -> bool {
        if raw.trim().eq_ignore_ascii_case("null") {
            return self.origins.contains(&OriginRule::Null);
        }
        let Some((scheme, host, port)) = parse_origin(raw) else {
            return false;
        };
        let port = port.or_else(|| default_port(&scheme));
        self.origins.iter().any(|rule| match rule {
            OriginRule::Null => false,
            OriginRule::Tuple {
                scheme: s,
                host: h,
                port: p,
            } => {
                *s == scheme
                    && *h == host
                    && match p {
                        PortRule::Any => true,
                        PortRule::Exact(want) => port == Some(*want),
                    }
            }
        })
    }

    /// Checks one request's `Host`, `Origin` and (on JSON routes) `Content-Type`.
    pub fn check(&self, req: &Request) -> Result<(), Refused> {
        let path = req.uri().path();
        if PROBES.contains(&path) {
            return Ok(());
        }
        let host = req
            .headers()
            .get(header::HOST)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        if !self.host_allowed(&host) {
            return Err(Refused::Host(shown(&host), self.hosts_text.clone()));
        }
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
            if !self.origin_allowed(&origin) {
                return Err(Refused::Origin(shown(&origin), self.origins_text.clone()));
            }
        }
        // The approvals page takes its own form posts (with a CSRF token); everything else
        // that takes a body takes JSON.
        let has_body_method = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
        if has_body_method && !path.starts_with("/approvals") {
            let content_type = req.headers().get(header::CONTENT_TYPE);
            let has_body = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() != b"0")
                || req.headers().contains_key(header::TRANSFER_ENCODING);
            match content_type {
                Some(ct) if !is_json(ct) => {
                    return Err(Refused::ContentType(shown(&String::from_utf8_lossy(
                        ct.as_bytes(),
                    ))));
                }
                None if has_body => return Err(Refused::ContentType("(none)".into())),
                _ => {}
            }
        }
        Ok(())
    }
}

/// At most 100 characters of a header value, for an error message.
fn shown(value: &str) -> String {
    value.chars().take(100).collect()
}

fn is_json(content_type: &HeaderValue) -> bool {
    let Ok(text) = content_type.to_str() else {
        return false;
    };
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The Host names and origins every route accepts (rmcp's `/mcp` gets the same lists).
pub fn effective_lists(config: &Config) -> (Vec<String>, Vec<String>) {
    let mut hosts = config.mcp.allowed_hosts.clone();
    let mut origins = config.mcp.allowed_origins.clone();
    if let Ok(own) = config.public_url.parse::<Uri>()
        && let (Some(scheme), Some(authority)) = (own.scheme_str(), own.authority())
    {
        if !hosts.is_empty() && !hosts.iter().any(|h| h == authority.host()) {
            hosts.push(authority.host().to_string());
        }
        let port = authority
            .port_u16()
            .or_else(|| default_port(scheme))
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let origin = format!("{scheme}://{}{port}", authority.host());
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    (hosts, origins)
}

async fn browser_checks(
    State(checks): State<Arc<BrowserChecks>>,
    req: Request,
    next: Next,
) -> Response {
    match checks.check(&req) {
        Ok(()) => next.run(req).await,
        Err(refused) => {
            tracing::warn!(
                code = refused.code(),
                path = req.uri().path(),
                "request refused: {refused}"
            );
            refused.into_response()
        }
    }
}

/// The answer when the stack itself gives up on a request.
async fn stack_error(err: tower::BoxError) -> Response {
    if err.is::<tower::load_shed::error::Overloaded>() {
        let mut res = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            &format!("toolgate is handling {MAX_IN_FLIGHT} requests already; retry shortly"),
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return res;
    }
    if err.is::<tower::timeout::error::Elapsed>() {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request did not finish in time (tools.timeout_seconds plus 90 s); it may still complete, check approval.status or the audit log",
        );
    }
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the request failed inside the server",
    )
}

/// A 413 of the body cap (plain text) as this server's JSON error; routes' own 413s are JSON.
fn json_payload_too_large(limit: usize, res: http::Response<ResponseBody<Body>>) -> Response {
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().windows(4).any(|w| w == b"json"));
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE && !json {
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("request body over {limit} bytes"),
        );
    }
    res.map(Body::new)
}

/// Whether reading a body failed because the client stopped sending it (not its size).
pub fn is_body_timeout(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Largest body any route reads: the cap every request is held to.
pub fn max_body(config: &Config) -> usize {
    MAX_MCP_BODY
        .max(crate::transport::jsonrpc::MAX_BODY)
        .max(config.webhooks.alertmanager.max_body_bytes)
}

/// Wraps every route of `router` in the inbound stack, once.
pub fn apply(router: Router, config: &Config) -> Router {
    let checks = Arc::new(BrowserChecks::from_config(config));
    let limit = max_body(config);
    let request_timeout = config.tools.timeout + REQUEST_SLACK;
    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                // The path only: a query string may hold what a client should not have sent.
                tracing::info_span!("http", method = %req.method(), path = req.uri().path(), request_id = id)
            }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(HandleErrorLayer::new(stack_error))
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::new(MAX_IN_FLIGHT))
        .layer(TimeoutLayer::new(request_timeout))
        .layer(MapResponseLayer::new(move |res| json_payload_too_large(limit, res)))
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(RequestBodyTimeoutLayer::new(BODY_READ_TIMEOUT));
    router
        .layer(axum::middleware::from_fn_with_state(checks, browser_checks))
        .layer(stack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks() -> BrowserChecks {
        BrowserChecks::new(
            &[
                "localhost".into(),
                "127.0.0.1".into(),
                "[::1]".into(),
                "tg.example:8443".into(),
            ],
            &[
                "http://localhost:*".into(),
                "https://console.example:443".into(),
            ],
        )
    }

    fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::empty()).expect("request")
    }

    #[test]
    fn hosts_follow_the_allowed_list_and_probes_are_exempt() {
        let c = checks();
        assert_eq!(
            c.check(&req("GET", "/mcp", &[("host", "127.0.0.1:3000")])),
            Ok(())
        );
        assert_eq!(
            c.check(&req("GET", "/mcp", &[("host", "[::1]:3000")])),
            Ok(())
        );
        assert_eq!(
            c.check(&req("GET", "/mcp", &[("host", "tg.example:8443")])),
            Ok(())
        );
        for bad in [
            "evil.example",
            "tg.example:443",
            "localhost.evil.example:3000",
            "",
        ] {
            let err = c
                .check(&req("GET", "/rpc", &[("host", bad)]))
                .expect_err(bad);
            assert_eq!(err.code(), "forbidden_host", "{bad}");
        }
        assert_eq!(
            c.check(&req("GET", "/readyz", &[("host", "10.1.2.3:3000")])),
            Ok(())
        );
    }

    #[test]
    fn origins_follow_the_allowed_list() {
        let c = checks();
        let with = |origin: &str| {
            c.check(&req(
                "POST",
                "/rpc",
                &[
                    ("host", "localhost"),
                    ("origin", origin),
                    ("content-type", "application/json"),
                ],
            ))
        };
        assert_eq!(with("http://localhost:5173"), Ok(()));
        assert_eq!(
            with("https://console.example"),
            Ok(()),
            "default port matches :443"
        );
        for bad in [
            "https://evil.example",
            "http://console.example",
            "null",
            "https://console.example:8443",
        ] {
            assert_eq!(
                with(bad).expect_err(bad).code(),
                "forbidden_origin",
                "{bad}"
            );
        }
    }

    #[test]
    fn json_routes_take_json_and_the_page_takes_forms() {
        let c = checks();
        let host = ("host", "localhost");
        let plain = c
            .check(&req(
                "POST",
                "/rpc",
                &[
                    host,
                    ("content-type", "text/plain"),
                    ("content-length", "2"),
                ],
            ))
            .expect_err("text/plain");
        assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            c.check(&req(
                "POST",
                "/webhooks/alertmanager",
                &[host, ("content-length", "9")]
            ))
            .is_err(),
            "a body without a type"
        );
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert_eq!(
                c.check(&req("POST", "/a2a", &[host, ("content-type", ok)])),
                Ok(()),
                "{ok}"
            );
        }
        assert_eq!(
            c.check(&req(
                "POST",
                "/api/v1/approvals/x/approve",
                &[host, ("content-length", "0")]
            )),
            Ok(()),
            "an empty decision body needs no type"
        );
        assert_eq!(
            c.check(&req(
                "POST",
                "/approvals/x/approve",
                &[host, ("content-type", "application/x-www-form-urlencoded")]
            )),
            Ok(())
        );
    }
}
