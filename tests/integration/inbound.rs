//! The inbound stack against the running server over raw HTTP: cross-origin and `text/plain`
//! requests are refused on every route before anything is queued, a foreign `Host` is refused,
//! a forwarded request gets no anonymous loopback access, refusals are audited under the
//! route's transport, request ids are set, and the body cap answers JSON.

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use toolgate::store::Store;

use crate::approvals_api::{real_patches, request_restart};
use crate::harness::{self, ALICE, BOB, Toolgate};

const FIRING: &str = include_str!("../fixtures/alertmanager/alertmanager_webhook.json");
const EVIL: &str = "https://evil.example";

/// An answer: status, headers (lower-cased names) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// One HTTP/1.1 request written by hand (`Host` as given), answered with `Connection: close`.
async fn raw(
    tg: &Toolgate,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let addr = tg.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// A route, the body a page would post to it, and headers it needs besides the test's.
type Route<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);

fn restart_call() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools.call", "params": {"name": "k8s.rollout_restart", "arguments": {"kind": "deployment", "name": "web", "namespace": "shop"}}}).to_string()
}

fn a2a_restart() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {"kind": "message", "messageId": "m1", "role": "user", "parts": [{"kind": "data", "data": {"tool": "k8s.rollout_restart", "arguments": {"kind": "deployment", "name": "web", "namespace": "shop"}}}]}}}).to_string()
}

async fn start() -> (crate::fake_kube::FakeKube, Toolgate) {
    let fake = crate::mcp::seeded_fake().await;
    // Local mode with anonymous loopback callers (the default) and an unauthenticated webhook:
    // the weakest setup, where only the browser checks stand between a web page and a write.
    let tg =
        harness::start_with_tokens(&fake, "webhooks:\n  alertmanager:\n    enabled: true\n").await;
    (fake, tg)
}

#[tokio::test]
async fn cross_origin_text_plain_posts_are_refused_on_every_route_and_nothing_is_queued() {
    let (fake, tg) = start().await;
    let held = request_restart(&tg.url, ALICE).await;
    let approve = format!("/api/v1/approvals/{held}/approve");
    let bob = format!("Bearer {BOB}");
    let cases: Vec<Route> = vec![
        ("/rpc", restart_call(), vec![]),
        ("/a2a", a2a_restart(), vec![]),
        (
            approve.as_str(),
            r#"{"reason":"csrf"}"#.into(),
            vec![("Authorization", bob.as_str())],
        ),
        ("/webhooks/alertmanager", FIRING.into(), vec![]),
        (
            "/mcp",
            restart_call(),
            vec![("Accept", "application/json, text/event-stream")],
        ),
    ];
    for (path, body, extra) in &cases {
        // What a page on another site can send without a preflight: text/plain with its Origin.
        let mut headers = vec![("Origin", EVIL), ("Content-Type", "text/plain")];
        headers.extend(extra.iter().copied());
        let a = raw(&tg, "POST", path, &headers, body).await;
        assert_eq!(a.status, 403, "{path}: {}", a.body);
        assert_eq!(
            a.json()["error"]["code"],
            "forbidden_origin",
            "{path}: {}",
            a.body
        );
        assert!(
            a.json()["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("mcp.allowed_origins")
        );
        // The right Origin, or none, with text/plain: still not JSON.
        headers[0] = ("Origin", "http://localhost:5173");
        let a = raw(&tg, "POST", path, &headers, body).await;
        assert_eq!(a.status, 415, "{path}: {}", a.body);
        assert_eq!(
            a.json()["error"]["code"],
            "unsupported_media_type",
            "{path}"
        );
        let a = raw(&tg, "POST", path, &headers[1..], body).await;
        assert_eq!(a.status, 415, "{path} without Origin: {}", a.body);
        // And a cross-origin JSON post (a preflighted request the page could try) is refused too.
        let mut headers = vec![("Origin", EVIL), ("Content-Type", "application/json")];
        headers.extend(extra.iter().copied());
        let a = raw(&tg, "POST", path, &headers, body).await;
        assert_eq!(a.status, 403, "{path} JSON cross-origin: {}", a.body);
    }
    // Nothing was queued, decided, ingested or run.
    let store = Store::connect(&tg.store_url).await.expect("store");
    let approvals = store.list_approvals(None, 100).await.expect("approvals");
    assert_eq!(approvals.len(), 1, "only the request made by the test");
    assert_eq!(approvals[0].id, held);
    let shown = crate::gate::get_approval(&tg.url, BOB, &held).await;
    assert_eq!(shown["state"], "pending", "{shown}");
    assert!(
        shown["decisions"].as_array().is_some_and(Vec::is_empty),
        "{shown}"
    );
    assert!(
        store
            .list_intents(None, 100)
            .await
            .expect("intents")
            .is_empty()
    );
    assert_eq!(real_patches(&fake), 0);
    // The same calls from a same-origin client (no Origin, JSON) still work.
    let ok = raw(
        &tg,
        "POST",
        "/rpc",
        &[("Content-Type", "application/json")],
        &restart_call(),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        ok.json()["result"]["structuredContent"]["status"],
        "approval_required",
        "{}",
        ok.body
    );
    let hook = raw(
        &tg,
        "POST",
        "/webhooks/alertmanager",
        &[("Content-Type", "application/json")],
        FIRING,
    )
    .await;
    assert_eq!(hook.status, 200, "{}", hook.body);
}

#[tokio::test]
async fn a_foreign_host_is_refused_on_every_route_but_the_probes() {
    let (_fake, tg) = start().await;
    let evil = [
        ("Host", "evil.example"),
        ("Content-Type", "application/json"),
    ];
    for (method, path) in [
        ("POST", "/rpc"),
        ("POST", "/a2a"),
        ("POST", "/mcp"),
        ("GET", "/api/v1/approvals"),
        ("POST", "/webhooks/alertmanager"),
        ("GET", "/approvals"),
        ("GET", "/.well-known/agent-card.json"),
    ] {
        let a = raw(
            &tg,
            method,
            path,
            &evil,
            if method == "POST" { "{}" } else { "" },
        )
        .await;
        assert_eq!(a.status, 403, "{method} {path}: {}", a.body);
        assert_eq!(
            a.json()["error"]["code"],
            "forbidden_host",
            "{path}: {}",
            a.body
        );
        assert!(a.body.contains("evil.example"), "{}", a.body);
    }
    // A DNS name that rebinds to the loopback address with the right port is still foreign.
    let port = tg.url.rsplit(':').next().unwrap_or_default().to_string();
    let rebound = format!("attacker.example:{port}");
    let a = raw(
        &tg,
        "POST",
        "/rpc",
        &[("Host", &rebound), ("Content-Type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(a.status, 403);
    // Kubelet and Prometheus reach the pod by its IP.
    let a = raw(&tg, "GET", "/healthz", &[("Host", "10.0.0.7:3000")], "").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let localhost = format!("localhost:{port}");
    let a = raw(
        &tg,
        "GET",
        "/api/v1/approvals",
        &[
            ("Host", &localhost),
            ("Authorization", &format!("Bearer {BOB}")),
        ],
        "",
    )
    .await;
    assert_eq!(a.status, 200, "an allowed name with any port: {}", a.body);
}

#[tokio::test]
async fn a_forwarded_request_gets_no_anonymous_loopback_access() {
    let (_fake, tg) = start().await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools.list"}).to_string();
    let json_ct = ("Content-Type", "application/json");
    let direct = raw(&tg, "POST", "/rpc", &[json_ct], &list).await;
    assert_eq!(
        direct.status, 200,
        "anonymous loopback caller: {}",
        direct.body
    );
    for forwarded in [
        ("X-Forwarded-For", "203.0.113.9"),
        ("Forwarded", "for=203.0.113.9;proto=https"),
    ] {
        for path in ["/rpc", "/a2a", "/mcp"] {
            let a = raw(
                &tg,
                "POST",
                path,
                &[
                    json_ct,
                    forwarded,
                    ("Accept", "application/json, text/event-stream"),
                ],
                &list,
            )
            .await;
            assert_eq!(a.status, 401, "{path} with {}: {}", forwarded.0, a.body);
            assert!(
                a.header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer "))
            );
        }
        let bearer = format!("Bearer {ALICE}");
        let a = raw(
            &tg,
            "POST",
            "/rpc",
            &[json_ct, forwarded, ("Authorization", &bearer)],
            &list,
        )
        .await;
        assert_eq!(
            a.status, 200,
            "a token still works behind a proxy: {}",
            a.body
        );
    }
}

#[tokio::test]
async fn refusals_are_audited_under_the_route_transport() {
    let (_fake, tg) = start().await;
    let bad = ("Authorization", "Bearer not-a-token-of-this-server");
    let json_ct = ("Content-Type", "application/json");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools.list"}).to_string();
    for (method, path, expected) in [
        ("POST", "/rpc", "jsonrpc"),
        ("POST", "/a2a", "a2a"),
        ("POST", "/mcp", "mcp-http"),
        ("GET", "/api/v1/approvals", "rest"),
    ] {
        let a = raw(
            &tg,
            method,
            path,
            &[
                bad,
                json_ct,
                ("Accept", "application/json, text/event-stream"),
            ],
            if method == "POST" { &body } else { "" },
        )
        .await;
        assert_eq!(a.status, 401, "{path}: {}", a.body);
        let store = Store::connect(&tg.store_url).await.expect("store");
        let tail = store.audit_tail(1).await.expect("audit");
        let last = tail.last().expect("a refusal record");
        assert_eq!(last.entry.decision, "unauthenticated", "{path}");
        assert_eq!(last.entry.transport, expected, "{path}");
    }
}

#[tokio::test]
async fn request_ids_are_set_or_kept_and_the_body_cap_answers_json() {
    let (_fake, tg) = start().await;
    let a = raw(&tg, "GET", "/healthz", &[], "").await;
    let id = a.header("x-request-id").expect("an id is set");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let a = raw(
        &tg,
        "GET",
        "/healthz",
        &[("X-Request-Id", "trace-me-42")],
        "",
    )
    .await;
    assert_eq!(a.header("x-request-id"), Some("trace-me-42"));
    // A declared body over the cap is refused before it is read.
    let addr = tg.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /rpc HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        64 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
}
