//! Plain tool calls of an MCP session are answered on their own connection (`mcp_direct`): the
//! answer rmcp would send, as one JSON body when it is ready at once and as a resumable stream
//! (event ids to resume from) when the call runs longer; a session that stays open while used;
//! a cancelled call that answers nothing.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{self, ALICE};
use crate::mcp::{
    content_type, open_session, post_mcp, seeded_fake, sse_events_until, waiting_call,
};

/// Stream ids of direct calls count from here (`mcp_resume::DIRECT_IDS_FROM`); rmcp's from 0.
const DIRECT_IDS_FROM: u64 = 1 << 48;

/// The stream id of an event id `INDEX/STREAM`.
fn stream_of(event_id: &str) -> u64 {
    event_id
        .split_once('/')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or_else(|| panic!("not an event id of a call stream: {event_id:?}"))
}

/// A raw session of ALICE's, as the headers each of its requests carries.
struct Session {
    auth: String,
    id: String,
    version: String,
}

impl Session {
    async fn open(url: &str) -> Session {
        let auth = format!("Bearer {ALICE}");
        let (_, id, version) = open_session(url, &auth, json!({})).await;
        Session { auth, id, version }
    }

    fn headers(&self) -> [(&str, &str); 3] {
        [
            ("authorization", self.auth.as_str()),
            ("mcp-session-id", self.id.as_str()),
            ("mcp-protocol-version", self.version.as_str()),
        ]
    }
}

/// The events of a whole call stream, and the answer with JSON-RPC id `id`.
async fn call_stream(mut resp: reqwest::Response, id: u64) -> (Vec<(String, String)>, Value) {
    assert_eq!(resp.status(), 200);
    assert_eq!(content_type(&resp), "text/event-stream");
    let mut buffer = String::new();
    let events = sse_events_until(&mut resp, &mut buffer, |events| {
        events
            .iter()
            .any(|(_, data)| data.contains(&format!("\"id\":{id}")))
    })
    .await;
    let answer = events
        .iter()
        .filter_map(|(_, data)| serde_json::from_str::<Value>(data).ok())
        .find(|m| m["id"] == json!(id))
        .expect("the answer");
    (events, answer)
}

/// A whole JSON answer (what a direct call ready at once gets; rmcp's session streams are SSE).
async fn json_answer(resp: reqwest::Response, id: u64) -> Value {
    assert_eq!(resp.status(), 200);
    assert_eq!(content_type(&resp), "application/json");
    let answer: Value = resp.json().await.expect("a JSON answer");
    assert_eq!(answer["id"], json!(id), "{answer}");
    answer
}

/// A `k8s.list_resources` result with the `age` column blanked, in the rows and in the text's
/// tab-separated table: the one part of the answer that moves with the clock.
fn without_ages(result: &Value) -> Value {
    let mut result = result.clone();
    let columns = result["structuredContent"]["columns"].clone();
    let age = columns
        .as_array()
        .and_then(|cols| cols.iter().position(|c| c == "age"))
        .unwrap_or_else(|| panic!("an age column: {result}"));
    if let Some(rows) = result["structuredContent"]["rows"].as_array_mut() {
        for row in rows {
            row[age] = Value::Null;
        }
    }
    if let Some(text) = result["content"][0]["text"].as_str() {
        let blanked: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(n, line)| {
                // The first line is the header of keys, the second the column names.
                if n < 2 {
                    return line.to_string();
                }
                let mut cells: Vec<&str> = line.split('\t').collect();
                if let Some(cell) = cells.get_mut(age) {
                    *cell = "";
                }
                cells.join("\t")
            })
            .collect();
        result["content"][0]["text"] = Value::String(blanked.join("\n"));
    }
    result
}

#[tokio::test]
async fn a_plain_call_gets_the_answer_rmcp_would_send_as_one_json_body() {
    let fake = seeded_fake().await;
    // A window no call of this test comes near, even in a debug build on a busy machine.
    let tg = harness::start(&fake, "mcp:\n  json_answer_within: 30s\n").await;
    let session = Session::open(&tg.url).await;
    let headers = session.headers();
    let arguments = json!({"kind": "pods", "namespace": "shop"});

    let direct = post_mcp(
        &tg.url,
        &headers,
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
               "params": {"name": "k8s_list_resources", "arguments": arguments}}),
    )
    .await;
    // Ready at once: no stream to resume, so no priming event either.
    let direct = json_answer(direct, 7).await;

    // With a progress token the call goes through rmcp (progress rides on its stream).
    let through_rmcp = post_mcp(
        &tg.url,
        &headers,
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
               "params": {"name": "k8s_list_resources", "arguments": arguments,
                          "_meta": {"progressToken": "p8"}}}),
    )
    .await;
    let (events, through_rmcp) = call_stream(through_rmcp, 8).await;
    assert!(
        stream_of(&events[0].0) < DIRECT_IDS_FROM,
        "answered by rmcp: {events:?}"
    );
    // The two calls may fall either side of a second, so the pod's age is left out.
    assert_eq!(
        without_ages(&direct["result"]),
        without_ages(&through_rmcp["result"]),
        "the same answer"
    );
    assert!(
        direct["result"]["structuredContent"]["rows"]
            .as_array()
            .is_some_and(|rows| !rows.is_empty()),
        "{direct}"
    );

    // Errors are the ones rmcp's path gives: an unknown tool is invalid params, with names.
    let unknown = post_mcp(
        &tg.url,
        &headers,
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
               "params": {"name": "k8s_list_resource", "arguments": {}}}),
    )
    .await;
    let unknown = json_answer(unknown, 9).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    assert!(
        unknown["error"]["data"]["suggestions"]
            .to_string()
            .contains("k8s_list_resources"),
        "{unknown}"
    );

    // Both calls reached the cluster, once each (the unknown tool did not).
    let lists = fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/v1/namespaces/shop/pods")
        .count();
    assert_eq!(lists, 2, "{:?}", fake.requests());

    // A request naming another protocol version than the session's goes to rmcp, which
    // refuses an unknown one.
    let mut wrong = session.headers();
    wrong[2].1 = "1999-01-01";
    let refused = post_mcp(
        &tg.url,
        &wrong,
        json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
               "params": {"name": "k8s_list_resources", "arguments": arguments}}),
    )
    .await;
    assert_eq!(refused.status(), 400);
    // An unknown session is rmcp's 404, whatever the request.
    let mut gone = session.headers();
    gone[1].1 = "no-such-session";
    let gone = post_mcp(
        &tg.url,
        &gone,
        json!({"jsonrpc": "2.0", "id": 11, "method": "tools/call",
               "params": {"name": "k8s_list_resources", "arguments": arguments}}),
    )
    .await;
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn with_json_answers_off_a_plain_call_gets_the_stream_rmcp_would_send() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "mcp:\n  json_answer_within: 0s\n").await;
    let session = Session::open(&tg.url).await;
    let direct = post_mcp(
        &tg.url,
        &session.headers(),
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
               "params": {"name": "k8s_list_resources",
                          "arguments": {"kind": "pods", "namespace": "shop"}}}),
    )
    .await;
    let (events, answer) = call_stream(direct, 7).await;
    // A priming event (an id, a retry hint, no message), then the answer, both of one stream
    // of the direct path.
    assert_eq!(events.len(), 2, "{events:?}");
    let n = stream_of(&events[0].0);
    assert!(n >= DIRECT_IDS_FROM, "answered off rmcp's path: {events:?}");
    assert_eq!(events[0].0, format!("0/{n}"));
    assert_eq!(events[0].1, "");
    assert_eq!(events[1].0, format!("1/{n}"));
    assert!(
        answer["result"]["structuredContent"]["rows"]
            .as_array()
            .is_some_and(|rows| !rows.is_empty()),
        "{answer}"
    );
}

#[tokio::test]
async fn a_session_used_only_by_direct_calls_stays_open_and_expires_once_idle() {
    let fake = seeded_fake().await;
    let tg = harness::start(
        &fake,
        "mcp:\n  session_idle_timeout: 1s\n  json_answer_within: 30s\n",
    )
    .await;
    let session = Session::open(&tg.url).await;
    let headers = session.headers();
    let list = |id: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "k8s_list_resources", "arguments": {"kind": "namespaces"}}})
    };
    // Three idle periods of calls 200 ms apart: rmcp's worker sees none of them.
    for id in 1..=15 {
        let resp = post_mcp(&tg.url, &headers, list(id)).await;
        assert_eq!(resp.status(), 200, "call {id}: the session is still open");
        json_answer(resp, id).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Then idle: the session closes (a call would count as use, so wait first).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let closed = post_mcp(&tg.url, &headers, list(99)).await.status() == 404;
    assert!(closed, "an idle session was not closed within 3 s");
}

#[tokio::test]
async fn a_cancelled_direct_call_ends_its_stream_without_an_answer() {
    // A call that waits past `mcp_direct::STREAM_AFTER` is answered on a resumable stream of
    // the direct path (the event id the client got is one of its streams).
    let (cut, call) = waiting_call().await;
    assert!(stream_of(&cut.last_event_id) >= DIRECT_IDS_FROM);
    let headers = [
        ("authorization", cut.auth.as_str()),
        ("mcp-session-id", cut.session.as_str()),
        ("mcp-protocol-version", cut.version.as_str()),
    ];
    let cancelled = post_mcp(
        &cut.tg.url,
        &headers,
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
               "params": {"requestId": 41, "reason": "no longer needed"}}),
    )
    .await;
    assert_eq!(cancelled.status(), 202);
    // The stream ends, long before the 30 s wait would, and carries no answer.
    let rest = tokio::time::timeout(Duration::from_secs(10), call.text())
        .await
        .expect("the stream ended after the cancellation")
        .expect("body");
    assert!(!rest.contains("\"id\":41"), "no answer: {rest}");
}

/// A client that goes away while its call waits for a JSON answer does not cut the call off:
/// it runs to its end and is counted (and audited) as answered, as on rmcp's path.
#[tokio::test]
async fn a_call_whose_client_left_before_the_json_answer_still_runs_to_its_end() {
    use crate::approvals_api::request_restart;
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "mcp:\n  json_answer_within: 30s\n").await;
    let approval = request_restart(&tg.url, ALICE).await;
    let session = Session::open(&tg.url).await;
    let waiting = tokio::time::timeout(
        Duration::from_millis(500),
        post_mcp(
            &tg.url,
            &session.headers(),
            json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {
                "name": "approval.status",
                "arguments": {"approval_id": approval, "wait_seconds": 30}}}),
        ),
    )
    .await;
    // Still waiting for the decision (and within the JSON window): no answer yet. The client
    // gives up and its connection closes.
    assert!(waiting.is_err(), "answered before the decision");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) =
        crate::gate::decide(&tg.url, harness::BOB, &approval, "approve", Some("ok")).await;
    assert_eq!(status, 200, "{body}");
    crate::mcp::wait_for_answered_status_call(&tg).await;
}
