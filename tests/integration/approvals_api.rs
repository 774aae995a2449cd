//! The approval REST API and the `toolgate approvals` CLI end to end: a held MCP call, the
//! decisions on it over HTTP, and exactly one real PATCH on the fake API server.

use std::time::Duration;

use reqwest::StatusCode;
use rmcp::ServiceExt;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::fake_kube::FakeKube;
use crate::harness::{self, ALICE, BOB, CAROL, Toolgate};
use crate::mcp;

/// An MCP client over HTTP that authenticates with `token`.
pub async fn mcp_as(url: &str, token: &str) -> RunningService<RoleClient, ()> {
    toolgate::app::init_crypto();
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("{url}/mcp")).auth_header(token);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("MCP handshake over HTTP")
}

/// `token`'s principal asks to restart deployment shop/web; returns the approval id.
pub async fn request_restart(url: &str, token: &str) -> String {
    let client = mcp_as(url, token).await;
    let result = mcp::call(
        &client,
        "k8s.rollout_restart",
        json!({"kind": "deployment", "name": "web", "namespace": "shop"}),
    )
    .await;
    let sc = result.structured_content.clone().unwrap_or(Value::Null);
    assert_eq!(
        sc["status"], "approval_required",
        "write tools wait for a human: {result:?}"
    );
    let id = sc["approval_id"].as_str().expect("approval_id").to_string();
    let _ = client.cancel().await;
    id
}

/// Non-dry-run PATCHes of deployment shop/web the fake API server received.
pub fn real_patches(fake: &FakeKube) -> usize {
    fake.requests()
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.path.ends_with("/namespaces/shop/deployments/web")
                && !r.query.contains("dryRun")
        })
        .count()
}

/// A JSON API call: status and body (`Null` when the body is not JSON).
pub async fn api(
    tg: &Toolgate,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let client = harness::http();
    let url = format!("{}{path}", tg.url);
    let mut req = match method {
        "GET" => client.get(url),
        "POST" => client.post(url),
        other => panic!("unsupported method {other}"),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn error_code(body: &Value) -> &str {
    body.pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("<none>")
}

async fn start() -> (FakeKube, Toolgate) {
    let fake = mcp::seeded_fake().await;
    let tg = harness::start_with_tokens(&fake, "").await;
    (fake, tg)
}

#[tokio::test]
async fn approving_runs_the_held_call_exactly_once() {
    let (fake, tg) = start().await;
    let id = request_restart(&tg.url, ALICE).await;
    let path = format!("/api/v1/approvals/{id}");

    let (status, view) = api(&tg, "GET", &path, Some(BOB), None).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["state"], "pending");
    assert_eq!(view["tool"], "k8s.rollout_restart");
    assert_eq!(view["requester"]["sub"], "alice");
    assert_eq!(view["target"]["namespace"], "shop");
    assert!(
        !view["preview"]["summary"].as_str().unwrap_or("").is_empty(),
        "preview summary: {view}"
    );
    let audit: Vec<&str> = view["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|r| r["decision"].as_str())
        .collect();
    assert_eq!(audit, ["approval_requested"], "{view}");
    assert_eq!(real_patches(&fake), 0, "nothing runs before approval");

    // The requester cannot approve: alice has no approver role (the core checks roles first).
    let (status, body) = api(&tg, "POST", &format!("{path}/approve"), Some(ALICE), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "forbidden", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("toolgate.approver"),
        "{body}"
    );

    let (status, done) = api(
        &tg,
        "POST",
        &format!("{path}/approve"),
        Some(BOB),
        Some(json!({"reason": "pods are OOM-looping"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "executed", "{done}");
    assert!(done["result"].is_object(), "result stored: {done}");
    assert_eq!(done["decisions"][0]["approver_sub"], "bob");
    assert_eq!(done["decisions"][0]["reason"], "pods are OOM-looping");
    assert_eq!(
        real_patches(&fake),
        1,
        "exactly one real PATCH: {:?}",
        fake.requests()
    );
    let stored = fake
        .get("apps/v1", "Deployment", Some("shop"), "web")
        .expect("deployment");
    assert!(
        stored
            .pointer("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt")
            .is_some(),
        "the restart landed: {stored}"
    );

    for token in [BOB, CAROL] {
        let (status, body) = api(&tg, "POST", &format!("{path}/approve"), Some(token), None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            ["not_pending", "already_decided"].contains(&error_code(&body)),
            "{body}"
        );
    }
    assert_eq!(real_patches(&fake), 1, "approving again runs nothing");

    let (_, view) = api(&tg, "GET", &path, Some(CAROL), None).await;
    assert_eq!(view["state"], "executed");
    let audit: Vec<&str> = view["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|r| r["decision"].as_str())
        .collect();
    assert_eq!(
        audit,
        // Alice's attempt to approve her own request was refused, and recorded.
        [
            "approval_requested",
            "decision_refused",
            "approved",
            "executed"
        ],
        "{view}"
    );
}

#[tokio::test]
async fn self_approval_is_refused_and_deny_never_runs() {
    let (fake, tg) = start().await;
    // Bob is caller and approver: the role check passes, the self-approval check does not.
    let id = request_restart(&tg.url, BOB).await;
    let path = format!("/api/v1/approvals/{id}");
    let (status, body) = api(&tg, "POST", &format!("{path}/approve"), Some(BOB), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "self_approval", "{body}");

    let (status, body) = api(
        &tg,
        "POST",
        &format!("{path}/deny"),
        Some(CAROL),
        Some(json!({"reason": "not during the sale"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "denied");
    assert_eq!(body["decisions"][0]["decision"], "deny");
    let (status, body) = api(&tg, "POST", &format!("{path}/approve"), Some(CAROL), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(real_patches(&fake), 0, "a denied call never runs");

    let (status, body) = api(
        &tg,
        "POST",
        "/api/v1/approvals/no-such-id/approve",
        Some(CAROL),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(error_code(&body), "not_found");
    let (status, body) = api(
        &tg,
        "GET",
        "/api/v1/approvals/no-such-id",
        Some(CAROL),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // A body that is not JSON is a JSON 400, not axum's plain text.
    let res = harness::http()
        .post(format!("{}{path}/deny", tg.url))
        .bearer_auth(CAROL)
        .header("content-type", "application/json")
        .body("reason=x")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.expect("JSON error");
    assert_eq!(error_code(&body), "bad_request");
    // A body not declared as JSON is refused before the API reads it (CSRF with simple
    // requests), also as JSON.
    let res = harness::http()
        .post(format!("{}{path}/deny", tg.url))
        .bearer_auth(CAROL)
        .body("reason=x")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = res.json().await.expect("JSON error");
    assert_eq!(error_code(&body), "unsupported_media_type");
}

#[tokio::test]
async fn only_the_requester_cancels() {
    let (fake, tg) = start().await;
    let id = request_restart(&tg.url, ALICE).await;
    let path = format!("/api/v1/approvals/{id}/cancel");
    let (status, body) = api(&tg, "POST", &path, Some(BOB), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "forbidden");
    let (status, body) = api(&tg, "POST", &path, Some(ALICE), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "cancelled");
    let (status, body) = api(&tg, "POST", &path, Some(ALICE), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "not_pending");
    assert_eq!(real_patches(&fake), 0);
}

#[tokio::test]
async fn list_filters_by_state_and_rejects_bad_filters() {
    let (_fake, tg) = start().await;
    let denied = request_restart(&tg.url, ALICE).await;
    let pending = request_restart(&tg.url, ALICE).await;
    let (status, _) = api(
        &tg,
        "POST",
        &format!("/api/v1/approvals/{denied}/deny"),
        Some(BOB),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let ids = |body: &Value| -> Vec<String> {
        body["approvals"]
            .as_array()
            .expect("approvals")
            .iter()
            .filter_map(|a| a["id"].as_str().map(str::to_string))
            .collect()
    };
    let (status, body) = api(
        &tg,
        "GET",
        "/api/v1/approvals?state=pending",
        Some(CAROL),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), std::slice::from_ref(&pending));
    let (_, body) = api(
        &tg,
        "GET",
        "/api/v1/approvals?state=denied",
        Some(CAROL),
        None,
    )
    .await;
    assert_eq!(ids(&body), std::slice::from_ref(&denied));
    let (_, body) = api(&tg, "GET", "/api/v1/approvals", Some(CAROL), None).await;
    assert_eq!(
        ids(&body),
        [pending.clone(), denied.clone()],
        "newest first"
    );
    let (_, body) = api(&tg, "GET", "/api/v1/approvals?limit=1", Some(CAROL), None).await;
    assert_eq!(ids(&body), [pending]);

    let (status, body) = api(
        &tg,
        "GET",
        "/api/v1/approvals?state=pendingg",
        Some(CAROL),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("pendingg") && message.contains("pending, approved"),
        "{body}"
    );
    let (status, body) = api(&tg, "GET", "/api/v1/approvals?limit=0", Some(CAROL), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn the_api_needs_a_valid_token_and_publishes_openapi() {
    let (_fake, tg) = start().await;
    for token in [None, Some("wrong-token-0123456789")] {
        let (status, body) = api(&tg, "GET", "/api/v1/approvals", token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
        assert_eq!(error_code(&body), "unauthenticated");
        let (status, _) = api(&tg, "POST", "/api/v1/approvals/x/approve", token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    let (status, doc) = api(&tg, "GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0", "{doc}");
    for (path, method) in [
        ("/api/v1/approvals", "get"),
        ("/api/v1/approvals/{id}", "get"),
        ("/api/v1/approvals/{id}/approve", "post"),
        ("/api/v1/approvals/{id}/deny", "post"),
        ("/api/v1/approvals/{id}/cancel", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing in {doc}"
        );
    }
    assert!(
        doc["components"]["schemas"]["ApprovalDto"]["properties"]["state"].is_object(),
        "{doc}"
    );
}

/// The `toolgate` binary with only the given TOOLGATE_* variables.
fn toolgate_cli(token: Option<&str>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_toolgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TOOLGATE_") {
            cmd.env_remove(k);
        }
    }
    if let Some(t) = token {
        cmd.env("TOOLGATE_TOKEN", t);
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

async fn run_cli(tg: &Toolgate, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        toolgate_cli(token)
            .args(["approvals", "--server", &tg.url])
            .args(args)
            .output(),
    )
    .await
    .expect("CLI finished in time")
    .expect("CLI runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_lists_shows_and_approves() {
    let (fake, tg) = start().await;
    let id = request_restart(&tg.url, ALICE).await;

    let (code, out, err) = run_cli(&tg, Some(BOB), &["list", "--state", "pending"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().next().unwrap_or("").starts_with("ID"), "{out}");
    let row = out
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{out}"));
    assert!(
        row.contains("pending") && row.contains("k8s.rollout_restart") && row.contains("shop/web"),
        "{row}"
    );

    let (code, out, err) = run_cli(&tg, Some(BOB), &["show", &id]).await;
    assert_eq!(code, 0, "{err}");
    for expected in [
        "Preview:",
        "k8s.rollout_restart",
        "Decisions:\n  none yet",
        "Audit trail:",
        "approval_requested",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }

    let (code, out, err) = run_cli(&tg, Some(BOB), &["list", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let json: Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(json["approvals"][0]["id"], id.as_str());

    let (code, _, err) = run_cli(&tg, None, &["list"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("authentication required") && err.contains("TOOLGATE_TOKEN"),
        "{err}"
    );
    let (code, _, err) = run_cli(&tg, Some(BOB), &["list", "--state", "nope"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("unknown state `nope`"), "{err}");
    let (code, _, err) = run_cli(&tg, Some(ALICE), &["approve", &id]).await;
    assert_eq!(code, 1, "alice may not approve");
    assert!(err.contains("toolgate.approver"), "{err}");

    let (code, out, err) =
        run_cli(&tg, Some(BOB), &["approve", &id, "--reason", "restart it"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("approved {id}: now executed")),
        "{out}"
    );
    assert!(out.contains("Result:"), "{out}");
    assert_eq!(real_patches(&fake), 1);

    let (code, _, err) = run_cli(&tg, Some(CAROL), &["deny", &id]).await;
    assert_eq!(code, 1);
    assert!(err.contains("not pending"), "{err}");
    let (code, out, _) = run_cli(&tg, Some(CAROL), &["show", &id, "--json"]).await;
    assert_eq!(code, 0);
    let json: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json["state"], "executed");
}
