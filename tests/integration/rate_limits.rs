//! Per-principal rate limits against the running server: one principal flooding tool calls is
//! refused (429 with `Retry-After` on HTTP, a tool error on MCP) on every transport together,
//! while another principal still gets through; calls held for approval have their own, separate
//! limit, and a refused one asks nobody and previews nothing. Small limits and counts only: the
//! buckets refill over a minute or an hour, far slower than these tests run.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::approvals_api::mcp_as;
use crate::harness::{self, ALICE, ERIN, Toolgate};
use crate::mcp;

fn list_pods() -> Value {
    json!({"name": "k8s.list_resources", "arguments": {"kind": "pods", "namespace": "shop"}})
}

fn restart() -> Value {
    json!({"name": "k8s.rollout_restart", "arguments": {"kind": "deployment", "name": "web", "namespace": "shop"}})
}

/// One `tools.call` on `/rpc` (without a token when `token` is `None`): status, `Retry-After`,
/// body.
async fn rpc_call(
    tg: &Toolgate,
    token: Option<&str>,
    params: Value,
) -> (StatusCode, Option<u64>, Value) {
    let mut req = harness::http()
        .post(format!("{}/rpc", tg.url))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools.call", "params": params}));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("POST /rpc");
    let status = res.status();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry_after, res.json().await.unwrap_or(Value::Null))
}

#[track_caller]
fn assert_limited(answer: &(StatusCode, Option<u64>, Value), key: &str) {
    let (status, retry_after, body) = answer;
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let seconds = retry_after.expect("Retry-After header");
    assert!(seconds >= 1, "{seconds}");
    assert_eq!(body["error"]["code"], json!(-32029), "{body}");
    assert_eq!(
        body["error"]["data"]["code"],
        json!("rate_limited"),
        "{body}"
    );
    assert_eq!(body["error"]["data"]["limit"], json!(key), "{body}");
    assert_eq!(
        body["error"]["data"]["retry_after_seconds"],
        json!(seconds),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(key) && message.contains("retry in"),
        "{message}"
    );
}

#[tokio::test]
async fn a_principal_past_its_tool_call_limit_is_refused_on_every_transport_and_others_pass() {
    let fake = mcp::seeded_fake().await;
    let tg = harness::start(
        &fake,
        "limits:\n  tool_calls_per_minute: 3\n  approval_requests_per_hour: 0\n",
    )
    .await;

    // Alice's three calls pass: one over MCP, two over /rpc (one budget for all transports).
    let alice_mcp = mcp_as(&tg.url, ALICE).await;
    let first = mcp::call(
        &alice_mcp,
        "k8s.list_resources",
        list_pods()["arguments"].clone(),
    )
    .await;
    assert_ne!(first.is_error, Some(true), "{first:?}");
    for _ in 0..2 {
        let (status, _, body) = rpc_call(&tg, Some(ALICE), list_pods()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["result"]["isError"], json!(false), "{body}");
    }

    // The fourth is refused on /rpc with 429, Retry-After and the limit's name…
    assert_limited(
        &rpc_call(&tg, Some(ALICE), list_pods()).await,
        "limits.tool_calls_per_minute",
    );
    // …on MCP as a tool error saying when to retry…
    let refused = mcp::call(
        &alice_mcp,
        "k8s.list_resources",
        list_pods()["arguments"].clone(),
    )
    .await;
    assert_eq!(refused.is_error, Some(true), "{refused:?}");
    let text = mcp::text_of(&refused);
    assert!(
        text.contains("limits.tool_calls_per_minute") && text.contains("retry in"),
        "{text}"
    );
    alice_mcp.cancel().await.ok();
    // …and on A2A with 429 and a JSON-RPC error naming the limit.
    let a2a = harness::http()
        .post(format!("{}/a2a", tg.url))
        .bearer_auth(ALICE)
        .header("A2A-Version", "1.0")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
            "message": {"messageId": uuid::Uuid::new_v4().to_string(), "role": "ROLE_USER",
                        "parts": [{"data": {"tool": "k8s.list_resources", "arguments": {"kind": "pods", "namespace": "shop"}}}]}}}))
        .send()
        .await
        .expect("POST /a2a");
    assert_eq!(a2a.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(a2a.headers().contains_key("retry-after"));
    let body: Value = a2a.json().await.expect("json");
    assert_eq!(body["error"]["code"], json!(-32029), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("limits.tool_calls_per_minute"),
        "{body}"
    );

    // Erin is not held back by Alice's flood.
    let (status, _, body) = rpc_call(&tg, Some(ERIN), list_pods()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["isError"], json!(false), "{body}");

    // Anonymous loopback callers share one bucket of their own.
    for _ in 0..3 {
        let (status, _, body) = rpc_call(&tg, None, list_pods()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_limited(
        &rpc_call(&tg, None, list_pods()).await,
        "limits.tool_calls_per_minute",
    );

    // Refusals are counted as such.
    let metrics = tg.metrics().await;
    assert!(
        metrics.lines().any(|l| l.starts_with(
            r#"toolgate_tool_calls_total{tool="k8s.list_resources",transport="jsonrpc",outcome="rate_limited"} 2"#
        )),
        "{metrics}"
    );
}

/// Dry-run PATCHes of deployment shop/web (the preview of a held restart).
fn previews(fake: &crate::fake_kube::FakeKube) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.query.contains("dryRun"))
        .count()
}

#[tokio::test]
async fn calls_held_for_approval_have_their_own_limit() {
    let fake = mcp::seeded_fake().await;
    let tg = harness::start(
        &fake,
        "limits:\n  tool_calls_per_minute: 100\n  approval_requests_per_hour: 2\n",
    )
    .await;

    for _ in 0..2 {
        let (status, _, body) = rpc_call(&tg, Some(ALICE), restart()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["result"]["structuredContent"]["status"],
            json!("approval_required"),
            "{body}"
        );
    }
    let previewed = previews(&fake);
    // The third held call is refused: no request is queued, nobody is asked, nothing previewed.
    assert_limited(
        &rpc_call(&tg, Some(ALICE), restart()).await,
        "limits.approval_requests_per_hour",
    );
    assert_eq!(
        previews(&fake),
        previewed,
        "a refused request previews nothing"
    );
    let (status, _, listed) = rpc_call_method(&tg, "approvals.list", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let requests = listed["result"]["approvals"].as_array().map(Vec::len);
    assert_eq!(requests, Some(2), "only two requests were queued: {listed}");

    // Reads are a separate budget: Alice can still look.
    let (status, _, body) = rpc_call(&tg, Some(ALICE), list_pods()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["isError"], json!(false), "{body}");
    // And Erin can still ask for a change.
    let (status, _, body) = rpc_call(&tg, Some(ERIN), restart()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["result"]["structuredContent"]["status"],
        json!("approval_required"),
        "{body}"
    );
}

/// Another `/rpc` method as Bob, an approver (who sees the requests he may decide).
async fn rpc_call_method(
    tg: &Toolgate,
    method: &str,
    params: Value,
) -> (StatusCode, Option<u64>, Value) {
    let res = harness::http()
        .post(format!("{}/rpc", tg.url))
        .bearer_auth(harness::BOB)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .expect("POST /rpc");
    (res.status(), None, res.json().await.unwrap_or(Value::Null))
}
