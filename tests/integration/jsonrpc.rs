//! Plain JSON-RPC 2.0 at `/rpc`, against a real server and the fake API server: methods, every
//! standard error code, batches, notifications, size and nesting limits, authentication.

use serde_json::{Value, json};

use crate::harness::{self, ALICE, BOB, CAROL};
use crate::mcp::seeded_fake;

async fn post_raw(
    url: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut req = harness::http()
        .post(format!("{url}/rpc"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.expect("POST /rpc")
}

/// POST a JSON body as `token`; expects HTTP 200 and returns the JSON answer.
pub async fn rpc(url: &str, token: &str, body: Value) -> Value {
    let resp = post_raw(url, Some(token), body.to_string()).await;
    assert_eq!(resp.status(), 200, "{body}");
    resp.json().await.expect("JSON answer")
}

/// `tools.call` of `name` as ALICE; the `result` (structured answer, or `isError` and `error`).
pub async fn call_tool(url: &str, name: &str, arguments: Value) -> Value {
    let answer = rpc(
        url,
        ALICE,
        request(
            json!(1),
            "tools.call",
            json!({"name": name, "arguments": arguments}),
        ),
    )
    .await;
    answer["result"].clone()
}

pub fn request(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn error_code(answer: &Value) -> i64 {
    answer["error"]["code"].as_i64().unwrap_or_default()
}

async fn still_serving(url: &str) {
    let answer = rpc(url, ALICE, request(json!(99), "tools.list", json!({}))).await;
    assert!(answer["result"]["tools"].is_array(), "{answer}");
}

#[tokio::test]
async fn tools_list_and_a_read_call() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;

    let list = rpc(&tg.url, ALICE, request(json!(1), "tools.list", json!({}))).await;
    assert_eq!(list["jsonrpc"], json!("2.0"));
    assert_eq!(list["id"], json!(1));
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(names.contains(&"k8s.get_logs"), "{names:?}");
    assert!(names.contains(&"k8s.rollout_restart"), "{names:?}");

    // No params at all is fine for tools.list.
    let bare = rpc(
        &tg.url,
        ALICE,
        json!({"jsonrpc": "2.0", "id": "x", "method": "tools.list"}),
    )
    .await;
    assert!(bare["result"]["tools"].is_array(), "{bare}");

    let get = rpc(
        &tg.url,
        ALICE,
        request(
            json!("get-1"),
            "tools.call",
            json!({"name": "k8s.get_resource",
                   "arguments": {"kind": "Deployment", "name": "web", "namespace": "shop"}}),
        ),
    )
    .await;
    assert_eq!(get["id"], json!("get-1"));
    assert_eq!(get["result"]["isError"], json!(false), "{get}");
    assert!(
        get["result"]["structuredContent"]
            .to_string()
            .contains("nginx:1.27"),
        "{get}"
    );

    // A tool that ran and failed is a result, not a JSON-RPC error.
    let missing = rpc(
        &tg.url,
        ALICE,
        request(
            json!(2),
            "tools.call",
            json!({"name": "k8s.get_resource",
                   "arguments": {"kind": "Deployment", "name": "nope", "namespace": "shop"}}),
        ),
    )
    .await;
    assert!(missing.get("error").is_none(), "{missing}");
    assert_eq!(missing["result"]["isError"], json!(true), "{missing}");
    assert!(missing["result"]["error"]["kind"].is_string(), "{missing}");
    assert!(
        missing["result"]["error"]["message"].is_string(),
        "{missing}"
    );
}

#[tokio::test]
async fn a_write_call_is_held_and_visible_through_approvals_methods() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;

    let held = rpc(
        &tg.url,
        ALICE,
        request(
            json!(1),
            "tools.call",
            json!({"name": "k8s.rollout_restart",
                   "arguments": {"kind": "deployment", "name": "web", "namespace": "shop"}}),
        ),
    )
    .await;
    assert_eq!(held["result"]["isError"], json!(false), "{held}");
    let sc = &held["result"]["structuredContent"];
    assert_eq!(sc["status"], json!("approval_required"), "{held}");
    let id = sc["approval_id"].as_str().expect("approval_id").to_string();

    let got = rpc(
        &tg.url,
        BOB,
        request(json!(2), "approvals.get", json!({"id": id})),
    )
    .await;
    assert_eq!(got["result"]["id"], json!(id), "{got}");
    assert_eq!(got["result"]["state"], json!("pending"), "{got}");
    assert_eq!(got["result"]["tool"], json!("k8s.rollout_restart"), "{got}");

    let listed = rpc(
        &tg.url,
        ALICE,
        request(json!(3), "approvals.list", json!({"state": "pending"})),
    )
    .await;
    let ids: Vec<&str> = listed["result"]["approvals"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v["id"].as_str()).collect())
        .unwrap_or_default();
    assert!(ids.contains(&id.as_str()), "{listed}");

    let executed = rpc(
        &tg.url,
        ALICE,
        request(json!(4), "approvals.list", json!({"state": "executed"})),
    )
    .await;
    assert_eq!(executed["result"]["approvals"], json!([]), "{executed}");

    // The same call is audited with this transport.
    let audit = harness::http()
        .get(format!("{}/api/v1/approvals/{id}", tg.url))
        .bearer_auth(BOB)
        .send()
        .await
        .expect("GET approval");
    assert_eq!(audit.status(), 200);
    let detail: Value = audit.json().await.expect("approval detail");
    let transports: Vec<&str> = detail["audit"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["transport"].as_str()).collect())
        .unwrap_or_default();
    assert!(transports.contains(&"jsonrpc"), "{detail}");
}

#[tokio::test]
async fn every_error_code_with_useful_data() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;

    // -32700: not JSON.
    let resp = post_raw(&tg.url, Some(ALICE), "{\"jsonrpc\": \"2.0\", ").await;
    assert_eq!(resp.status(), 200);
    let parse: Value = resp.json().await.expect("JSON");
    assert_eq!(error_code(&parse), -32700, "{parse}");
    assert_eq!(parse["id"], Value::Null);
    assert!(parse["error"]["data"]["line"].is_number(), "{parse}");

    // -32600: not an object, wrong version, bad id type, missing method, empty batch.
    for (body, needle) in [
        (json!(42), "JSON object"),
        (json!("tools.list"), "JSON object"),
        (
            json!({"jsonrpc": "1.0", "id": 1, "method": "tools.list"}),
            "jsonrpc",
        ),
        (json!({"id": 1, "method": "tools.list"}), "jsonrpc"),
        (
            json!({"jsonrpc": "2.0", "id": {"a": 1}, "method": "tools.list"}),
            "id",
        ),
        (json!({"jsonrpc": "2.0", "id": 1}), "method"),
        (json!({"jsonrpc": "2.0", "id": 1, "method": 7}), "method"),
        (
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools.list", "params": 3}),
            "params",
        ),
        (json!([]), "empty batch"),
    ] {
        let answer = rpc(&tg.url, ALICE, body.clone()).await;
        assert_eq!(error_code(&answer), -32600, "{body} → {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{body} → {message}");
        assert!(answer["error"]["data"].is_object(), "{answer}");
    }
    // A valid id is echoed even in an Invalid Request answer.
    let echoed = rpc(
        &tg.url,
        ALICE,
        json!({"jsonrpc": "1.0", "id": "keep", "method": "tools.list"}),
    )
    .await;
    assert_eq!(echoed["id"], json!("keep"), "{echoed}");

    // -32601: the four methods are listed.
    let unknown = rpc(&tg.url, ALICE, request(json!(5), "tools/call", json!({}))).await;
    assert_eq!(error_code(&unknown), -32601, "{unknown}");
    assert_eq!(unknown["id"], json!(5));
    assert_eq!(
        unknown["error"]["data"]["methods"],
        json!([
            "tools.list",
            "tools.call",
            "approvals.get",
            "approvals.list"
        ])
    );

    // -32602: unknown tool with suggestions, params shapes, unknown state, unknown approval.
    let tool = rpc(
        &tg.url,
        ALICE,
        request(
            json!(6),
            "tools.call",
            json!({"name": "k8s.get_log", "arguments": {}}),
        ),
    )
    .await;
    assert_eq!(error_code(&tool), -32602, "{tool}");
    assert_eq!(tool["error"]["data"]["tool"], json!("k8s.get_log"));
    let suggestions = tool["error"]["data"]["suggestions"].to_string();
    assert!(suggestions.contains("k8s.get_logs"), "{tool}");

    for (method, params, needle) in [
        ("tools.call", json!(["k8s.get_logs"]), "object"),
        ("tools.call", json!({"arguments": {}}), "name"),
        ("tools.call", json!({"name": 5}), "name"),
        (
            "tools.call",
            json!({"name": "k8s.get_logs", "arguments": [1]}),
            "arguments",
        ),
        ("approvals.get", json!({}), "id"),
        ("approvals.list", json!({"state": "waiting"}), "waiting"),
        ("approvals.list", json!({"limit": 0}), "limit"),
        ("approvals.get", json!({"id": "no-such-id"}), "not found"),
    ] {
        let answer = rpc(&tg.url, ALICE, request(json!(7), method, params.clone())).await;
        assert_eq!(error_code(&answer), -32602, "{method} {params} → {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{method} {params} → {message}");
        assert!(answer["error"]["data"].is_object(), "{answer}");
    }
}

#[tokio::test]
async fn internal_errors_are_minus_32603() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    // Break the store under the running server: approval reads then fail inside toolgate.
    let path = tg
        .store_url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    {
        use sqlx::Connection;
        let mut conn = sqlx::sqlite::SqliteConnection::connect(&format!("sqlite://{path}"))
            .await
            .expect("connect");
        sqlx::query("DROP TABLE approval_decisions")
            .execute(&mut conn)
            .await
            .expect("drop decisions");
        sqlx::query("DROP TABLE approvals")
            .execute(&mut conn)
            .await
            .expect("drop approvals");
    }
    let answer = rpc(
        &tg.url,
        ALICE,
        request(json!(1), "approvals.list", json!({})),
    )
    .await;
    assert_eq!(error_code(&answer), -32603, "{answer}");
    assert_eq!(
        answer["error"]["data"]["code"],
        json!("store_error"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_batch_mixing_good_and_bad_calls() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let batch = json!([
        request(json!(1), "tools.list", json!({})),
        request(json!("two"), "no.such.method", json!({})),
        {"jsonrpc": "2.0", "method": "tools.list"},
        request(json!(3), "tools.call", json!({"arguments": {}})),
    ]);
    let answer = rpc(&tg.url, ALICE, batch).await;
    let answers = answer.as_array().expect("array answer");
    assert_eq!(answers.len(), 3, "{answer}");
    let by_id = |id: Value| {
        answers
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert!(by_id(json!(1))["result"]["tools"].is_array(), "{answer}");
    assert_eq!(error_code(&by_id(json!("two"))), -32601, "{answer}");
    assert_eq!(error_code(&by_id(json!(3))), -32602, "{answer}");

    // Invalid members of a batch are answered one by one.
    let mixed = rpc(
        &tg.url,
        ALICE,
        json!([1, request(json!(1), "tools.list", json!({}))]),
    )
    .await;
    let mixed = mixed.as_array().cloned().unwrap_or_default();
    assert_eq!(mixed.len(), 2);
    assert_eq!(error_code(&mixed[0]), -32600);

    // Only notifications: 204, nothing to read; a single notification too.
    let notes = post_raw(
        &tg.url,
        Some(ALICE),
        json!([{"jsonrpc": "2.0", "method": "tools.list"},
               {"jsonrpc": "2.0", "method": "no.such.method"}])
        .to_string(),
    )
    .await;
    assert_eq!(notes.status(), 204);
    assert!(notes.bytes().await.unwrap_or_default().is_empty());
    let note = post_raw(
        &tg.url,
        Some(ALICE),
        json!({"jsonrpc": "2.0", "method": "tools.list"}).to_string(),
    )
    .await;
    assert_eq!(note.status(), 204);

    // Too many requests in one batch.
    let big: Vec<Value> = (0..101)
        .map(|i| request(json!(i), "tools.list", json!({})))
        .collect();
    let too_big = rpc(&tg.url, ALICE, Value::Array(big)).await;
    assert_eq!(error_code(&too_big), -32600, "{too_big}");
    assert_eq!(too_big["error"]["data"]["max_batch"], json!(100));
}

#[tokio::test]
async fn a_megabyte_of_garbage_is_refused_and_the_server_keeps_serving() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let garbage: Vec<u8> = (0..(1024 * 1024 + 4096))
        .map(|i: usize| (i.wrapping_mul(2654435761) >> 7) as u8)
        .collect();
    let resp = post_raw(&tg.url, Some(ALICE), garbage).await;
    assert_eq!(resp.status(), 413);
    let answer: Value = resp.json().await.expect("JSON-RPC error");
    assert_eq!(error_code(&answer), -32600, "{answer}");
    assert_eq!(answer["id"], Value::Null);

    // Just under the limit but not JSON: a parse error.
    let resp = post_raw(&tg.url, Some(ALICE), vec![b'x'; 1024 * 1024 - 10]).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.expect("JSON-RPC error");
    assert_eq!(error_code(&answer), -32700, "{answer}");

    // Bytes that are not UTF-8 are not JSON either: a parse error, not an invalid request.
    for bytes in [
        &b"\xff\xfe{}"[..],
        &b"{\"jsonrpc\": \"2.0\", \"method\": \"\xc3\x28\"}"[..],
    ] {
        let resp = post_raw(&tg.url, Some(ALICE), bytes.to_vec()).await;
        assert_eq!(resp.status(), 200);
        let answer: Value = resp.json().await.expect("JSON-RPC error");
        assert_eq!(error_code(&answer), -32700, "{answer}");
    }

    still_serving(&tg.url).await;
}

#[tokio::test]
async fn deeply_nested_json_is_refused_clearly() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let deep = "[".repeat(10_000);
    let resp = post_raw(&tg.url, Some(ALICE), deep).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.expect("JSON-RPC error");
    assert_eq!(error_code(&answer), -32600, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("JSON nested deeper than 64 levels"),
        "{answer}"
    );

    // Deep nesting inside the arguments of an otherwise good request, balanced this time.
    let nested = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools.call","params":{{"name":"k8s.get_logs","arguments":{{"x":{nested}}}}}}}"#
    );
    let resp = post_raw(&tg.url, Some(ALICE), body).await;
    let answer: Value = resp.json().await.expect("JSON-RPC error");
    assert_eq!(error_code(&answer), -32600, "{answer}");

    // 64 levels are fine (this one is JSON, just not a request).
    let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
    let resp = post_raw(&tg.url, Some(ALICE), ok).await;
    let answer: Value = resp.json().await.expect("JSON-RPC answer");
    let answers = answer.as_array().cloned().unwrap_or_default();
    assert_eq!(answers.len(), 1, "{answer}");
    assert_eq!(error_code(&answers[0]), -32600, "{answer}");

    still_serving(&tg.url).await;
}

#[tokio::test]
async fn same_authentication_as_mcp() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "auth:\n  anonymous: false\n").await;
    let body = request(json!(1), "tools.list", json!({})).to_string();

    let none = post_raw(&tg.url, None, body.clone()).await;
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    let bad = post_raw(&tg.url, Some("not-a-token"), body.clone()).await;
    assert_eq!(bad.status(), 401);
    // Carol is an approver, not a caller.
    let carol = post_raw(&tg.url, Some(CAROL), body.clone()).await;
    assert_eq!(carol.status(), 403);
    let alice = post_raw(&tg.url, Some(ALICE), body).await;
    assert_eq!(alice.status(), 200);
}

#[tokio::test]
async fn anonymous_loopback_callers_may_call_tools_but_not_read_the_queue() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let list = post_raw(
        &tg.url,
        None,
        request(json!(1), "tools.list", json!({})).to_string(),
    )
    .await;
    assert_eq!(list.status(), 200);
    let queue = post_raw(
        &tg.url,
        None,
        request(json!(2), "approvals.list", json!({})).to_string(),
    )
    .await;
    assert_eq!(queue.status(), 200);
    let answer: Value = queue.json().await.expect("JSON");
    assert_eq!(error_code(&answer), -32001, "{answer}");
}
