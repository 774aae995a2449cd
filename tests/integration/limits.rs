//! Memory a caller can make the server hold is bounded: MCP sessions are capped and expire when
//! idle, and the arguments of one call have a size limit checked before anything else.

use std::time::Duration;

use serde_json::json;

use crate::approvals_api::mcp_as;
use crate::fake_kube::FakeKube;
use crate::harness::{self, ALICE};
use crate::mcp::{call, text_of};

/// POST an `initialize` as ALICE: (status, Mcp-Session-Id, Retry-After, body).
async fn open_session(url: &str) -> (u16, Option<String>, Option<String>, String) {
    let resp = harness::http()
        .post(format!("{url}/mcp"))
        .bearer_auth(ALICE)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}),
        )
        .send()
        .await
        .expect("POST /mcp");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let session = header("mcp-session-id");
    let retry = header("retry-after");
    let status = resp.status().as_u16();
    (
        status,
        session,
        retry,
        resp.text().await.unwrap_or_default(),
    )
}

async fn close_session(url: &str, id: &str) -> u16 {
    harness::http()
        .delete(format!("{url}/mcp"))
        .bearer_auth(ALICE)
        .header("mcp-session-id", id)
        .send()
        .await
        .expect("DELETE /mcp")
        .status()
        .as_u16()
}

#[tokio::test]
async fn sessions_past_the_cap_are_refused_until_one_ends() {
    let fake = FakeKube::start().await;
    let tg = harness::start(&fake, "mcp:\n  max_sessions: 3\n").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, id, _, body) = open_session(&tg.url).await;
        assert_eq!(status, 200, "{body}");
        ids.push(id.expect("session id"));
    }
    let (status, id, retry, body) = open_session(&tg.url).await;
    assert_eq!(status, 503, "{body}");
    assert!(id.is_none());
    assert_eq!(retry.as_deref(), Some("30"));
    let error: serde_json::Value = serde_json::from_str(&body).expect("JSON-RPC error");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("mcp.max_sessions = 3"), "{body}");
    // Ending one makes room for one.
    let _ = close_session(&tg.url, &ids[0]).await;
    let mut opened = false;
    for _ in 0..50 {
        if open_session(&tg.url).await.0 == 200 {
            opened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(opened, "a closed session frees its slot");
    assert_eq!(open_session(&tg.url).await.0, 503, "and only its slot");
}

#[tokio::test]
async fn idle_sessions_expire_and_free_their_slot() {
    let fake = FakeKube::start().await;
    let tg = harness::start(
        &fake,
        "mcp:\n  max_sessions: 1\n  session_idle_timeout: 1s\n",
    )
    .await;
    let (status, _, _, body) = open_session(&tg.url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(open_session(&tg.url).await.0, 503, "the one slot is taken");
    // Nothing is sent on the session: it expires after a second of idleness.
    let mut opened = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if open_session(&tg.url).await.0 == 200 {
            opened = true;
            break;
        }
    }
    assert!(opened, "an idle session was not closed within 10 s");
}

#[tokio::test]
async fn oversized_arguments_are_refused_naming_the_limit_before_anything_runs() {
    let fake = FakeKube::start().await;
    let tg = harness::start(&fake, "tools:\n  max_argument_bytes: 4096\n").await;
    let alice = mcp_as(&tg.url, ALICE).await;
    let manifest = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big, namespace: default}}\ndata: {{k: {}}}\n",
        "x".repeat(8000)
    );
    let before = fake.requests().len();
    let result = call(&alice, "k8s.apply_manifest", json!({"manifest": manifest})).await;
    let text = text_of(&result);
    assert_eq!(result.is_error, Some(true), "{text}");
    assert!(
        text.contains("tools.max_argument_bytes") && text.contains("at most 4096"),
        "{text}"
    );
    assert_eq!(fake.requests().len(), before, "nothing reached the cluster");
    // Small arguments still pass the same gate.
    let ok = call(&alice, "k8s.list_resources", json!({"kind": "namespaces"})).await;
    assert_eq!(ok.is_error, Some(false), "{}", text_of(&ok));
}

/// A listing carries no arguments (nor results): a page of requests holding large manifests
/// would otherwise be loaded whole. The request itself still has them.
#[tokio::test]
async fn approval_lists_leave_the_arguments_to_the_request_itself() {
    let fake = FakeKube::start().await;
    let tg = harness::start(&fake, "").await;
    let alice = mcp_as(&tg.url, ALICE).await;
    let manifest = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big, namespace: default}}\ndata: {{k: {}}}\n",
        "x".repeat(100_000)
    );
    let held = call(&alice, "k8s.apply_manifest", json!({"manifest": manifest})).await;
    let sc = held.structured_content.clone().expect("structured");
    let id = sc["approval_id"].as_str().expect("held").to_string();
    let list: serde_json::Value = harness::http()
        .get(format!("{}/api/v1/approvals", tg.url))
        .bearer_auth(ALICE)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("JSON");
    let item = &list["approvals"][0];
    assert_eq!(item["id"], json!(id), "{list}");
    assert!(item["args"].is_null(), "listed with its arguments");
    assert!(item["preview"]["summary"].is_string(), "{item}");
    assert!(
        list.to_string().len() < 20_000,
        "the list holds the manifest"
    );
    let one: serde_json::Value = harness::http()
        .get(format!("{}/api/v1/approvals/{id}", tg.url))
        .bearer_auth(ALICE)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("JSON");
    assert!(
        one["args"]["manifest"]
            .as_str()
            .is_some_and(|m| m.len() > 100_000),
        "the request itself has them"
    );
}
