//! MCP Tasks (`io.modelcontextprotocol/tasks`) for held writes over the real HTTP transport, as
//! raw JSON-RPC and with the Python SDK (which has no tasks client, so
//! tests/python/mcp_tasks_driver.py builds one on its extension API): a held write becomes a
//! task, follows its approval (approved over REST → completed with the tool's answer; denied,
//! expired → failed; withdrawn with `tasks/cancel` → cancelled), is its requester's alone, and
//! survives a restart. Clients without the extension keep the `approval_required` answer.

use std::time::Duration;

use serde_json::{Value, json};

use crate::approvals_api::real_patches;
use crate::gate::{decide, get_approval};
use crate::harness::{self, ALICE, BOB, CAROL, ERIN};
use crate::mcp::{open_session, post_mcp, rpc_message, seeded_fake};

const TASKS: &str = "io.modelcontextprotocol/tasks";

/// One 2026-07-28 (stateless) request as `token`, declaring the tasks extension when `tasks`.
async fn rpc(url: &str, token: &str, method: &str, mut params: Value, tasks: bool) -> Value {
    let capabilities = if tasks {
        json!({"extensions": {TASKS: {}}})
    } else {
        json!({})
    };
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "raw-tasks", "version": "0"}
    });
    // The routing header names the tool, or the task (the extension's rule for tasks/*).
    let name = params
        .get("name")
        .or_else(|| params.get("taskId"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
        ("mcp-name", name.as_str()),
    ];
    let resp = post_mcp(
        url,
        &headers,
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
    )
    .await;
    rpc_message(resp).await
}

fn restart_args() -> Value {
    json!({"name": "k8s_rollout_restart",
           "arguments": {"kind": "deployment", "name": "web", "namespace": "shop"}})
}

/// `token` asks for the restart as a tasks client: the `CreateTaskResult`.
async fn restart_as_task(url: &str, token: &str) -> Value {
    let msg = rpc(url, token, "tools/call", restart_args(), true).await;
    let result = msg["result"].clone();
    assert_eq!(result["resultType"], "task", "{msg}");
    result
}

async fn task_get(url: &str, token: &str, id: &str) -> Value {
    rpc(url, token, "tasks/get", json!({"taskId": id}), true).await
}

/// A policy directory whose write rule needs `approvals` approvers within `ttl`.
fn policy(approvals: u32, ttl: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("policy.yaml"),
        format!(
            "rules:\n  - name: read\n    risk: [read]\n    roles: [toolgate.caller]\n    effect: allow\n  \
             - name: write\n    risk: [write]\n    roles: [toolgate.caller]\n    effect:\n      \
             require_approval: {{approvals: {approvals}, approver_roles: [toolgate.approver], ttl: {ttl}}}\n"
        ),
    )
    .expect("policy");
    let extra = format!("policies:\n  dir: {}\n", dir.path().display());
    (dir, extra)
}

#[tokio::test]
async fn a_held_write_is_a_task_until_two_approvers_let_it_run_and_then_carries_the_tool_answer() {
    let fake = seeded_fake().await;
    let (_policy, extra) = policy(2, "1h");
    let tg = harness::start(&fake, &extra).await;

    // A client without the extension keeps today's answer, and may not poll tasks.
    let plain = rpc(&tg.url, ALICE, "tools/call", restart_args(), false).await;
    assert_eq!(
        plain["result"]["structuredContent"]["status"], "approval_required",
        "{plain}"
    );
    assert!(plain["result"].get("resultType") != Some(&json!("task")));
    let plain_id = plain["result"]["structuredContent"]["approval_id"]
        .as_str()
        .expect("approval_id");
    let refused = rpc(
        &tg.url,
        ALICE,
        "tasks/get",
        json!({"taskId": plain_id}),
        false,
    )
    .await;
    assert_eq!(refused["error"]["code"], json!(-32021), "{refused}");

    let created = restart_as_task(&tg.url, ALICE).await;
    let id = created["taskId"].as_str().expect("taskId").to_string();
    assert_eq!(created["status"], "working", "{created}");
    assert_eq!(created["ttlMs"], json!(3_600_000), "the approval's TTL");
    assert!(created["pollIntervalMs"].as_u64().is_some(), "{created}");
    // The task is the approval request: approvers find it under the same id.
    let approval = get_approval(&tg.url, BOB, &id).await;
    assert_eq!(approval["state"], "pending", "{approval}");
    let expires: jiff::Timestamp = approval["expires_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("expires_at");
    let message = created["statusMessage"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("awaiting approval 0/2, expires ")
            && message.contains(&expires.strftime("%H:%MZ").to_string()),
        "{message}"
    );

    let (status, body) = decide(&tg.url, BOB, &id, "approve", Some("safe")).await;
    assert_eq!(status, 200, "{body}");
    let one = task_get(&tg.url, ALICE, &id).await;
    assert_eq!(one["result"]["resultType"], "complete", "{one}");
    assert_eq!(one["result"]["status"], "working", "{one}");
    assert!(
        one["result"]["statusMessage"]
            .as_str()
            .is_some_and(|m| m.starts_with("awaiting approval 1/2, expires ")),
        "{one}"
    );
    assert_eq!(real_patches(&fake), 0, "held until the second approval");

    let (status, body) = decide(&tg.url, CAROL, &id, "approve", Some("agreed")).await;
    assert_eq!(status, 200, "{body}");
    let done = task_get(&tg.url, ALICE, &id).await;
    let task = &done["result"];
    assert_eq!(task["status"], "completed", "{done}");
    assert_eq!(task["taskId"], json!(id));
    assert_ne!(task["result"]["isError"], json!(true), "{done}");
    let executed = get_approval(&tg.url, BOB, &id).await;
    assert_eq!(executed["state"], "executed", "{executed}");
    assert_eq!(
        task["result"]["structuredContent"], executed["result"],
        "the task's result is the tool's answer"
    );
    assert!(
        task["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("web")),
        "{done}"
    );
    assert_eq!(real_patches(&fake), 1, "ran exactly once");
}

#[tokio::test]
async fn denied_and_expired_tasks_fail_and_a_session_client_gets_tasks_too() {
    let fake = seeded_fake().await;
    let (_policy, extra) = policy(1, "2s");
    let tg = harness::start(&fake, &extra).await;

    // A session that declared the extension at `initialize` gets tasks without per-request _meta.
    let auth = format!("Bearer {ALICE}");
    let (init, session, version) =
        open_session(&tg.url, &auth, json!({"extensions": {TASKS: {}}})).await;
    assert_eq!(
        init["result"]["capabilities"]["extensions"][TASKS],
        json!({}),
        "the server declares the extension: {init}"
    );
    let headers = [
        ("authorization", auth.as_str()),
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", version.as_str()),
    ];
    let held = rpc_message(
        post_mcp(
            &tg.url,
            &headers,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": restart_args()}),
        )
        .await,
    )
    .await;
    assert_eq!(held["result"]["resultType"], "task", "{held}");
    assert_eq!(held["result"]["ttlMs"], json!(2_000), "{held}");
    let denied = held["result"]["taskId"]
        .as_str()
        .expect("taskId")
        .to_string();
    let (status, body) = decide(&tg.url, CAROL, &denied, "deny", Some("not during the sale")).await;
    assert_eq!(status, 200, "{body}");
    let got = rpc_message(
        post_mcp(
            &tg.url,
            &headers,
            json!({"jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {"taskId": denied}}),
        )
        .await,
    )
    .await;
    let task = &got["result"];
    assert_eq!(task["status"], "failed", "{got}");
    assert_eq!(task["error"]["data"]["state"], "denied", "{got}");
    assert!(
        task["statusMessage"]
            .as_str()
            .is_some_and(|m| m.contains("Carol (not during the sale)")),
        "{got}"
    );

    // Nobody decides: the approval expires (2 s) and the task fails, as the spec lets a server
    // do once its TTL has passed.
    let expiring = restart_as_task(&tg.url, ALICE).await;
    let id = expiring["taskId"].as_str().expect("taskId").to_string();
    let mut task = Value::Null;
    for _ in 0..50 {
        task = task_get(&tg.url, ALICE, &id).await["result"].clone();
        if task["status"] != "working" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["error"]["data"]["state"], "expired", "{task}");
    assert!(
        task["statusMessage"]
            .as_str()
            .is_some_and(|m| m.contains("expired")),
        "{task}"
    );
    assert_eq!(real_patches(&fake), 0, "nothing ran");
}

#[tokio::test]
async fn only_the_requester_reads_or_cancels_a_task_and_cancelling_withdraws_the_approval() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let created = restart_as_task(&tg.url, ALICE).await;
    let id = created["taskId"].as_str().expect("taskId").to_string();

    // Another caller, and even an approver, finds no such task; neither can cancel it.
    for token in [ERIN, BOB] {
        let got = task_get(&tg.url, token, &id).await;
        assert_eq!(got["error"]["code"], json!(-32602), "{got}");
        assert!(!got.to_string().contains("rollout"), "nothing leaks: {got}");
    }
    let stolen = rpc(
        &tg.url,
        ERIN,
        "tasks/cancel",
        json!({"taskId": id.clone()}),
        true,
    )
    .await;
    assert_eq!(stolen["error"]["code"], json!(-32602), "{stolen}");
    assert_eq!(get_approval(&tg.url, BOB, &id).await["state"], "pending");
    let unknown = task_get(&tg.url, ALICE, "no-such-task").await;
    assert_eq!(unknown["error"]["code"], json!(-32602), "{unknown}");

    let ack = rpc(
        &tg.url,
        ALICE,
        "tasks/cancel",
        json!({"taskId": id.clone()}),
        true,
    )
    .await;
    assert_eq!(ack["result"], json!({"resultType": "complete"}), "{ack}");
    let got = task_get(&tg.url, ALICE, &id).await;
    assert_eq!(got["result"]["status"], "cancelled", "{got}");
    let approval = get_approval(&tg.url, BOB, &id).await;
    assert_eq!(approval["state"], "cancelled", "{approval}");
    let (status, body) = decide(&tg.url, BOB, &id, "approve", Some("too late")).await;
    assert_eq!(
        status, 409,
        "a withdrawn request cannot be approved: {body}"
    );
    assert_eq!(real_patches(&fake), 0, "the call never ran");
}

#[tokio::test]
async fn a_task_survives_a_restart_and_completes_on_the_new_server() {
    let fake = seeded_fake().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!(
        "store:\n  url: sqlite://{}\n",
        dir.path().join("tg.db").display()
    );
    let tg = harness::start(&fake, &store).await;
    let created = restart_as_task(&tg.url, ALICE).await;
    let id = created["taskId"].as_str().expect("taskId").to_string();
    drop(tg);

    let tg = harness::start(&fake, &store).await;
    let got = task_get(&tg.url, ALICE, &id).await;
    assert_eq!(got["result"]["status"], "working", "{got}");
    assert_eq!(got["result"]["createdAt"], created["createdAt"], "{got}");
    let (status, body) = decide(&tg.url, BOB, &id, "approve", Some("ok")).await;
    assert_eq!(status, 200, "{body}");
    let done = task_get(&tg.url, ALICE, &id).await;
    assert_eq!(done["result"]["status"], "completed", "{done}");
    assert_eq!(real_patches(&fake), 1);
}

#[tokio::test]
async fn the_python_sdk_follows_a_held_write_as_a_task_to_its_result() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let report = harness::run_python(
        "mcp_tasks_driver.py",
        &json!({
            "url": format!("{}/mcp", tg.url),
            "token": ALICE,
            "tool": "k8s_rollout_restart",
            "arguments": {"kind": "deployment", "name": "web", "namespace": "shop"},
            "approve": {"url": tg.url, "token": BOB},
        }),
    )
    .await;
    assert_eq!(report["created"]["resultType"], "task", "{report}");
    assert_eq!(report["created"]["ttlMs"], json!(3_600_000), "{report}");
    assert!(
        report["created"]["statusMessage"]
            .as_str()
            .is_some_and(|m| m.starts_with("awaiting approval 0/1, expires ")),
        "{report}"
    );
    assert_eq!(report["approved"], json!(200), "{report}");
    assert_eq!(report["polled"][0]["status"], "working", "{report}");
    let last = report["polled"].as_array().and_then(|p| p.last());
    assert_eq!(
        last.map(|p| &p["status"]),
        Some(&json!("completed")),
        "{report}"
    );
    let result = &report["result"];
    assert_ne!(result["isError"], json!(true), "{report}");
    assert_eq!(result["structuredContent"]["name"], "web", "{report}");
    assert!(
        result["structuredContent"]["restarted_at"].is_string(),
        "the SDK returns the tool's answer: {report}"
    );
    assert_eq!(real_patches(&fake), 1, "ran exactly once");
}
