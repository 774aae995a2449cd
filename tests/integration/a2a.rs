//! A2A at `/a2a`: the official Python a2a-sdk client (tests/python/a2a_driver.py) end to end, and
//! raw JSON-RPC/SSE for the error codes, ownership, persistence and streaming of decisions.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::approvals_api::{api, real_patches};
use crate::fake_kube::FakeKube;
use crate::harness::{self, ALICE, BOB, CAROL, Toolgate};
use crate::mcp::seeded_fake;

async fn drive(tg: &Toolgate, token: &str, approver: &str) -> Value {
    let plan = json!({"url": tg.url, "token": token, "approver": approver});
    harness::run_python("a2a_driver.py", &plan).await
}

/// The ids of an agent card's skills.
pub fn skill_ids(card: &Value) -> Vec<&str> {
    card["skills"]
        .as_array()
        .expect("skills")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect()
}

fn state(task: &Value) -> &str {
    task.pointer("/status/state")
        .and_then(Value::as_str)
        .unwrap_or("<none>")
}

fn pod_names(task: &Value) -> Vec<String> {
    // The compact list: `columns` with `name` first, one row per object.
    task.pointer("/artifacts/0/parts/0/data/rows")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r[0].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn python_a2a_sdk_reads_streams_an_approval_and_cancels() {
    let fake = seeded_fake().await;
    let tg = harness::start_with_tokens(&fake, "").await;
    let report = drive(&tg, ALICE, BOB).await;

    // The card, as the SDK parsed it.
    let card = &report["card"];
    assert_eq!(card["name"], "toolgate");
    let interfaces = card["supportedInterfaces"].as_array().expect("interfaces");
    let versions: Vec<&str> = interfaces
        .iter()
        .filter_map(|i| i["protocolVersion"].as_str())
        .collect();
    assert_eq!(versions, ["1.0", "0.3"], "{card}");
    assert!(
        interfaces
            .iter()
            .all(|i| i["url"] == json!(format!("{}/a2a", tg.url))
                && i["protocolBinding"] == "JSONRPC")
    );
    assert_eq!(card["capabilities"]["streaming"], true);
    let skills = skill_ids(card);
    assert!(
        skills.contains(&"k8s") && skills.contains(&"approval"),
        "{skills:?}"
    );
    let k8s = card["skills"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "k8s"))
        .expect("k8s skill");
    let description = k8s["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("k8s.rollout_restart (write)")
            && description.contains("k8s.list_resources (read)"),
        "{description}"
    );
    assert!(card["securitySchemes"]["toolgate"].is_object(), "{card}");

    // Reads complete at once, over 1.0 (data part and JSON text part) and 0.3.
    for key in ["read_v1", "read_v1_text", "read_v03", "get_v03"] {
        let task = &report[key];
        assert_eq!(state(task), "TASK_STATE_COMPLETED", "{key}: {task}");
        assert_eq!(pod_names(task), ["web-0"], "{key}: {task}");
    }
    // Not a tool call: failed, saying what to send and which skills exist.
    let prose = &report["prose"];
    assert_eq!(state(prose), "TASK_STATE_FAILED", "{prose}");
    let text = prose
        .pointer("/status/message/parts/0/text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        text.contains("\"tool\"") && text.contains("skills: approval, k8s"),
        "{text}"
    );

    // The write: WORKING → AUTH_REQUIRED → (approved over REST) → result → COMPLETED, one stream.
    let states: Vec<&str> = report["stream_states"]
        .as_array()
        .expect("states")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(states.first(), Some(&"TASK_STATE_WORKING"), "{states:?}");
    assert!(states.contains(&"TASK_STATE_AUTH_REQUIRED"), "{states:?}");
    assert_eq!(
        &states[states.len() - 2..],
        ["ARTIFACT", "TASK_STATE_COMPLETED"],
        "{states:?}"
    );
    assert_eq!(report["approve_http_status"], 200);
    let status_text = report
        .pointer("/auth_required_status/message/parts/0/text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        status_text.contains("/approvals/") && status_text.contains("approval"),
        "the status names the approval and where to approve: {status_text}"
    );
    assert_eq!(state(&report["stream_task"]), "TASK_STATE_COMPLETED");
    assert!(
        report["stream_artifact"].to_string().contains("web"),
        "{}",
        report["stream_artifact"]
    );
    assert_eq!(
        real_patches(&fake),
        1,
        "the approved restart ran exactly once"
    );

    // Cancel: the approval is withdrawn; a second cancel is refused with the A2A error.
    assert_eq!(state(&report["pending"]), "TASK_STATE_AUTH_REQUIRED");
    assert_eq!(state(&report["cancelled"]), "TASK_STATE_CANCELED");
    assert_eq!(report["cancelled_approval_state"], "cancelled");
    assert_eq!(report["cancel_again"], "TaskNotCancelableError");
    assert_eq!(report["unknown_task"], "TaskNotFoundError");
    assert_eq!(real_patches(&fake), 1, "the cancelled restart never ran");

    let listed = report["listed"]["tasks"].as_array().expect("tasks");
    assert_eq!(listed.len(), 6, "{}", report["listed"]);
}

/// One JSON-RPC call to `/a2a`: HTTP status and body.
async fn rpc(
    tg: &Toolgate,
    token: &str,
    version: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut req = harness::http()
        .post(format!("{}/a2a", tg.url))
        .bearer_auth(token)
        .json(&body);
    if let Some(v) = version {
        req = req.header("A2A-Version", v);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn send_params(call: Value) -> Value {
    json!({"message": {"messageId": uuid(), "role": "ROLE_USER", "parts": [{"data": call}]}})
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn restart() -> Value {
    json!({"tool": "k8s.rollout_restart", "arguments": {"kind": "deployment", "name": "web", "namespace": "shop"}})
}

pub async fn send_v1(tg: &Toolgate, token: &str, call: Value) -> Value {
    let (status, body) = rpc(
        tg,
        token,
        Some("1.0"),
        json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": send_params(call)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["result"]["task"].clone()
}

#[tokio::test]
async fn protocol_errors_use_the_a2a_codes() {
    let fake = seeded_fake().await;
    let tg = harness::start_with_tokens(&fake, "auth:\n  anonymous: false\n").await;
    let req = |method: &str, params: Value| json!({"jsonrpc": "2.0", "id": "x", "method": method, "params": params});

    let (status, body) = rpc(&tg, ALICE, Some("2.0"), req("SendMessage", json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["error"]["code"], -32009, "{body}");
    assert_eq!(body["error"]["data"]["supported"], json!(["1.0", "0.3"]));

    let (_, body) = rpc(
        &tg,
        ALICE,
        Some("1.0"),
        req("GetTask", json!({"id": "nope"})),
    )
    .await;
    assert_eq!(body["error"]["code"], -32001, "{body}");
    assert_eq!(
        body["error"]["data"][0]["reason"], "TASK_NOT_FOUND",
        "{body}"
    );
    let (_, body) = rpc(&tg, ALICE, None, req("tasks/get", json!({"id": "nope"}))).await;
    assert_eq!(body["error"]["code"], -32001, "{body}");

    // A 1.0 name without the header (0.3) and the other way round: -32601 saying why.
    let (_, body) = rpc(&tg, ALICE, None, req("SendMessage", json!({}))).await;
    assert_eq!(body["error"]["code"], -32601, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("A2A-Version: 1.0")
    );
    let (_, body) = rpc(&tg, ALICE, Some("1.0"), req("message/send", json!({}))).await;
    assert_eq!(body["error"]["code"], -32601, "{body}");

    let (_, body) = rpc(
        &tg,
        ALICE,
        Some("1.0"),
        req("CreateTaskPushNotificationConfig", json!({})),
    )
    .await;
    assert_eq!(body["error"]["code"], -32003, "{body}");
    let (_, body) = rpc(
        &tg,
        ALICE,
        Some("1.0"),
        req("GetExtendedAgentCard", json!({})),
    )
    .await;
    assert_eq!(body["error"]["code"], -32004, "{body}");

    // A malformed message is -32602 naming the field; nothing is stored or run.
    let (_, body) = rpc(
        &tg,
        ALICE,
        Some("1.0"),
        req(
            "SendMessage",
            json!({"message": {"role": "ROLE_USER", "parts": []}}),
        ),
    )
    .await;
    assert_eq!(body["error"]["code"], -32602, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("messageId"),
        "{body}"
    );

    // A completed task cannot be cancelled; continuing a task is unsupported.
    let done = send_v1(
        &tg,
        ALICE,
        json!({"tool": "k8s.list_resources", "arguments": {"kind": "pods", "namespace": "shop"}}),
    )
    .await;
    assert_eq!(done["status"]["state"], "TASK_STATE_COMPLETED", "{done}");
    let id = done["id"].as_str().expect("id");
    let (_, body) = rpc(
        &tg,
        ALICE,
        Some("1.0"),
        req("CancelTask", json!({"id": id})),
    )
    .await;
    assert_eq!(body["error"]["code"], -32002, "{body}");
    let mut params =
        send_params(json!({"tool": "k8s.list_resources", "arguments": {"kind": "pods"}}));
    params["message"]["taskId"] = json!(id);
    let (_, body) = rpc(&tg, ALICE, Some("1.0"), req("SendMessage", params)).await;
    assert_eq!(body["error"]["code"], -32004, "{body}");

    // Another principal's task does not exist for them.
    let (_, body) = rpc(&tg, BOB, Some("1.0"), req("GetTask", json!({"id": id}))).await;
    assert_eq!(body["error"]["code"], -32001, "{body}");

    // Same authentication as every surface: no token (and no anonymous loopback callers) → 401
    // with the challenge.
    let res = harness::http()
        .post(format!("{}/a2a", tg.url))
        .json(&req("GetTask", json!({"id": id})))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn the_card_is_public_and_cached_by_etag() {
    let fake = FakeKube::start().await;
    let tg = harness::start_with_tokens(&fake, "").await;
    let url = format!("{}/.well-known/agent-card.json", tg.url);
    let res = harness::http().get(&url).send().await.expect("card");
    assert_eq!(res.status(), StatusCode::OK);
    let etag = res.headers()["etag"].to_str().expect("etag").to_string();
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap_or_default()
            .contains("max-age")
    );
    let card: Value = res.json().await.expect("json");
    assert_eq!(
        card["supportedInterfaces"][0]["url"],
        json!(format!("{}/a2a", tg.url))
    );
    assert_eq!(
        card["securityRequirements"][0]["schemes"]["toolgate"]["list"],
        json!([])
    );
    let again = harness::http()
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("card");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn v03_speaks_its_own_shapes() {
    let fake = seeded_fake().await;
    let tg = harness::start_with_tokens(&fake, "").await;
    let params = json!({"message": {"kind": "message", "messageId": "m1", "role": "user",
        "parts": [{"kind": "data", "data": {"tool": "k8s.list_resources", "arguments": {"kind": "pods", "namespace": "shop"}}}]}});
    let (_, body) = rpc(
        &tg,
        ALICE,
        None,
        json!({"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": params}),
    )
    .await;
    let task = &body["result"];
    assert_eq!(task["kind"], "task", "{body}");
    assert_eq!(task["status"]["state"], "completed", "{body}");
    assert_eq!(task["artifacts"][0]["parts"][0]["kind"], "data");
    assert_eq!(
        task["artifacts"][0]["parts"][0]["data"]["rows"][0][0],
        "web-0"
    );
    assert_eq!(task["history"][0]["role"], "user");
}

/// Reads SSE `data:` payloads until `stop` says so or 20 s pass.
async fn sse_until(res: reqwest::Response, stop: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut events = Vec::new();
    let mut buf = String::new();
    let mut body = res.bytes_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, body.next()).await {
        buf.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            for line in block.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    let v: Value = serde_json::from_str(data.trim()).expect("event JSON");
                    let done = stop(&v);
                    events.push(v);
                    if done {
                        return events;
                    }
                }
            }
        }
    }
    events
}

#[tokio::test]
async fn subscribers_see_a_denial_and_tasks_survive_a_restart() {
    let fake = seeded_fake().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!(
        "store:\n  url: sqlite://{}\n",
        dir.path().join("tg.db").display()
    );
    let tg = harness::start_with_tokens(&fake, &store).await;
    let task = send_v1(&tg, ALICE, restart()).await;
    assert_eq!(
        task["status"]["state"], "TASK_STATE_AUTH_REQUIRED",
        "{task}"
    );
    let task_id = task["id"].as_str().expect("id").to_string();
    let approval = task["metadata"]["approvalId"]
        .as_str()
        .expect("approval")
        .to_string();
    drop(tg);

    // A new server on the same store still knows the task and its approval.
    let tg = harness::start_with_tokens(&fake, &store).await;
    let res = harness::http()
        .post(format!("{}/a2a", tg.url))
        .bearer_auth(ALICE)
        .header("A2A-Version", "1.0")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "SubscribeToTask", "params": {"id": task_id}}))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/event-stream")
    );
    let denier = tokio::spawn({
        let url = tg.url.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            harness::http()
                .post(format!("{url}/api/v1/approvals/{approval}/deny"))
                .bearer_auth(CAROL)
                .json(&json!({"reason": "not during the sale"}))
                .send()
                .await
                .expect("deny")
                .status()
        }
    });
    let events = sse_until(res, |v| {
        v.pointer("/result/statusUpdate/status/state") == Some(&json!("TASK_STATE_REJECTED"))
    })
    .await;
    assert_eq!(denier.await.expect("denier"), StatusCode::OK);
    assert_eq!(
        events[0]["result"]["task"]["status"]["state"], "TASK_STATE_AUTH_REQUIRED",
        "{events:?}"
    );
    let last = events.last().expect("events");
    assert_eq!(
        last["result"]["statusUpdate"]["status"]["state"], "TASK_STATE_REJECTED",
        "{events:?}"
    );
    let text = last
        .pointer("/result/statusUpdate/status/message/parts/0/text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        text.contains("Carol") && text.contains("not during the sale"),
        "{text}"
    );
    assert_eq!(real_patches(&fake), 0, "a denied call never runs");

    // GetTask agrees, and the approval API shows the same decision.
    let (_, body) = rpc(
        &tg,
        ALICE,
        Some("1.0"),
        json!({"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task_id}}),
    )
    .await;
    assert_eq!(
        body["result"]["status"]["state"], "TASK_STATE_REJECTED",
        "{body}"
    );
    let (_, view) = api(
        &tg,
        "GET",
        &format!(
            "/api/v1/approvals/{}",
            body["result"]["metadata"]["approvalId"]
                .as_str()
                .unwrap_or_default()
        ),
        Some(BOB),
        None,
    )
    .await;
    assert_eq!(view["state"], "denied");
}

#[tokio::test]
async fn an_expired_approval_fails_the_task_and_a_policy_refusal_rejects_it() {
    let fake = seeded_fake().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("short.yaml"),
        "rules:\n  - name: read\n    risk: [read]\n    roles: [toolgate.caller]\n    effect: allow\n  - name: no-deletes\n    tools: [k8s.delete_resource]\n    effect:\n      deny: {message: deletes are done by the platform team}\n  - name: write-short\n    risk: [write]\n    roles: [toolgate.caller]\n    effect:\n      require_approval: {approvals: 1, approver_roles: [toolgate.approver], ttl: 2s}\n",
    )
    .expect("policy");
    let tg = harness::start(
        &fake,
        &format!("policies:\n  dir: {}\n", dir.path().display()),
    )
    .await;

    let refused = send_v1(
        &tg,
        ALICE,
        json!({"tool": "k8s.delete_resource", "arguments": {"kind": "deployment", "name": "web", "namespace": "shop"}}),
    )
    .await;
    assert_eq!(
        refused["status"]["state"], "TASK_STATE_REJECTED",
        "{refused}"
    );
    assert!(refused.to_string().contains("platform team"), "{refused}");

    let task = send_v1(&tg, ALICE, restart()).await;
    assert_eq!(
        task["status"]["state"], "TASK_STATE_AUTH_REQUIRED",
        "{task}"
    );
    let res = harness::http()
        .post(format!("{}/a2a", tg.url))
        .bearer_auth(ALICE)
        .header("A2A-Version", "1.0")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "SubscribeToTask", "params": {"id": task["id"]}}))
        .send()
        .await
        .expect("subscribe");
    let events = sse_until(res, |v| {
        v.pointer("/result/statusUpdate/status/state") == Some(&json!("TASK_STATE_FAILED"))
    })
    .await;
    let last = events.last().expect("events");
    assert_eq!(
        last["result"]["statusUpdate"]["status"]["state"], "TASK_STATE_FAILED",
        "{events:?}"
    );
    assert!(last.to_string().contains("expired"), "{last}");
    assert_eq!(real_patches(&fake), 0, "an expired request never runs");
}
