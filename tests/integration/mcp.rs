//! End-to-end MCP: the rmcp client in-process (HTTP and stdio child process), raw HTTP for the
//! 2026-07-28 stateless form and Origin checks, all against the fake API server.

use std::collections::BTreeMap;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Value, json};

use crate::fake_kube::FakeKube;
use crate::harness;

pub const READ_TOOLS: [&str; 5] = [
    "k8s.get_resource",
    "k8s.list_resources",
    "k8s.get_logs",
    "k8s.describe_resource",
    "k8s.get_events",
];
pub const WRITE_TOOLS: [&str; 4] = [
    "k8s.exec_command",
    "k8s.apply_manifest",
    "k8s.delete_resource",
    "k8s.rollout_restart",
];

/// The base64 of the secret value seeded below; must never leave toolgate.
pub const SECRET_B64: &str = "aHVudGVyMi1zdXBlci1zZWNyZXQ=";

/// A cluster with a web deployment, its pods, logs, events and a Secret.
pub async fn seeded_fake() -> FakeKube {
    let fake = FakeKube::start().await;
    fake.insert(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}},
        "status": {"replicas": 2, "readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1}
    }));
    fake.insert(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx:1.27"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.7",
                   "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                   "containerStatuses": [{"name": "app", "ready": false, "restartCount": 4, "image": "nginx:1.27",
                       "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                       "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}
    }));
    fake.insert(json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web-0.oom", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "shop"},
        "type": "Warning", "reason": "BackOff", "message": "Back-off restarting failed container app",
        "count": 7, "firstTimestamp": "2026-11-23T10:00:00Z", "lastTimestamp": "2026-11-23T10:05:00Z"
    }));
    fake.insert(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "db-credentials", "namespace": "shop"},
        "data": {"password": SECRET_B64, "user": "YWRtaW4="}
    }));
    let now = jiff::Timestamp::now();
    let lines: Vec<(jiff::Timestamp, String)> = (0..20)
        .map(|i| {
            let at = now - jiff::SignedDuration::from_secs(60 - i);
            let text = if i % 5 == 0 {
                format!("ERROR request {i} failed")
            } else {
                format!("INFO request {i} ok")
            };
            (at, text)
        })
        .collect();
    fake.set_logs("shop", "web-0", "app", lines, false);
    fake
}

pub async fn http_client(url: &str) -> RunningService<RoleClient, ()> {
    toolgate::app::init_crypto();
    let transport = StreamableHttpClientTransport::from_uri(format!("{url}/mcp"));
    ().serve(transport).await.expect("MCP handshake over HTTP")
}

pub async fn call(
    client: &RunningService<RoleClient, ()>,
    name: &str,
    args: Value,
) -> CallToolResult {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    let result = client
        .call_tool(CallToolRequestParams::new(name.to_string()).with_arguments(map))
        .await
        .unwrap_or_else(|e| panic!("{name}: protocol error {e}"));
    // Clients (the Python SDK does) check structured output against the listed output
    // schema, for tools that list one.
    if let Some(sc) = &result.structured_content {
        let tools = client.list_all_tools().await.expect("tools/list");
        let listed = tools
            .iter()
            .find(|t| t.name == name || t.name == name.replace('.', "_"));
        let Some(output) = listed.and_then(|t| t.output_schema.clone()) else {
            return result;
        };
        let schema = Value::Object((*output).clone());
        let validator = jsonschema::validator_for(&schema).expect("output schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(sc)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{name}: structured output does not match its outputSchema: {errors:?}"
        );
    }
    result
}

pub fn text_of(result: &CallToolResult) -> String {
    serde_json::to_value(&result.content)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.get("text").and_then(Value::as_str).map(str::to_string))
        .collect::<Vec<_>>()
        .join("")
}

/// Values of column `column` in a compact list answer (`columns` + `rows`).
pub fn column(sc: &Value, column: &str) -> Vec<String> {
    let columns = sc["columns"].as_array().cloned().unwrap_or_default();
    let Some(i) = columns.iter().position(|c| c.as_str() == Some(column)) else {
        panic!("no column `{column}` in {sc}");
    };
    sc["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|row| match &row[i] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

#[tokio::test]
async fn http_lists_tools_with_annotations_and_schemas() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let client = http_client(&tg.url).await;
    let info = client.peer_info().expect("server info");
    let server = info.server_info.as_ref().expect("serverInfo");
    assert_eq!(server.name, "toolgate");
    let tools = client.list_all_tools().await.expect("tools/list");
    let by_name: BTreeMap<String, Value> = tools
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                serde_json::to_value(t).expect("tool json"),
            )
        })
        .collect();
    // Listed underscored by default (clients backed by the OpenAI and Anthropic APIs refuse dots).
    for name in READ_TOOLS {
        let listed = name.replace('.', "_");
        let tool = by_name
            .get(&listed)
            .unwrap_or_else(|| panic!("{listed} not listed"));
        assert_eq!(tool["annotations"]["readOnlyHint"], json!(true), "{name}");
        assert_ne!(
            tool["annotations"]["destructiveHint"],
            json!(true),
            "{name}"
        );
        assert_eq!(tool["inputSchema"]["type"], json!("object"), "{name}");
        // Read as text (the structured answer is still sent): no output schema listed.
        assert!(tool.get("outputSchema").is_none(), "{name}");
    }
    for name in WRITE_TOOLS {
        let listed = name.replace('.', "_");
        let tool = by_name
            .get(&listed)
            .unwrap_or_else(|| panic!("{listed} not listed"));
        assert_eq!(tool["annotations"]["readOnlyHint"], json!(false), "{name}");
        assert_eq!(
            tool["annotations"]["destructiveHint"],
            json!(true),
            "{name}"
        );
        assert!(
            tool["inputSchema"]["properties"]["dry_run"].is_object(),
            "{name} has dry_run"
        );
        assert!(
            tool["description"]
                .as_str()
                .unwrap_or_default()
                .contains("needs human approval"),
            "{name}"
        );
    }
    // Budgeted list tools publish the core's budget arguments.
    let list = &by_name["k8s_list_resources"];
    assert!(list["inputSchema"]["properties"]["max_bytes"].is_object());
    assert!(list["inputSchema"]["properties"]["cursor"].is_object());
    // Any call may be held for approval, so a listed output schema admits that answer too:
    // one object whose required fields both answers carry, never a top-level anyOf.
    let status = &by_name["approval_status"]["outputSchema"];
    assert_eq!(status["type"], json!("object"), "{status}");
    assert!(status.get("anyOf").is_none(), "{status}");
    assert_eq!(
        status["required"],
        json!([
            "approval_id",
            "approve_url",
            "expires_at",
            "required_approvals"
        ]),
        "{status}"
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn every_read_tool_answers_over_http() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let client = http_client(&tg.url).await;

    let list = call(
        &client,
        "k8s.list_resources",
        json!({"kind": "po", "namespace": "shop"}),
    )
    .await;
    assert_ne!(list.is_error, Some(true), "{}", text_of(&list));
    let sc = list.structured_content.clone().expect("structured");
    assert_eq!(column(&sc, "name"), vec!["web-0"]);
    assert!(
        text_of(&list).contains("web-0"),
        "text rendering carries the answer"
    );

    let get = call(
        &client,
        "k8s.get_resource",
        json!({"kind": "Deployment", "name": "web", "namespace": "shop"}),
    )
    .await;
    assert_ne!(get.is_error, Some(true), "{}", text_of(&get));
    assert!(text_of(&get).contains("nginx:1.27"));

    let logs = call(
        &client,
        "k8s.get_logs",
        json!({"pod": "web-0", "namespace": "shop", "tail_lines": 10, "grep": "ERROR"}),
    )
    .await;
    assert_ne!(logs.is_error, Some(true), "{}", text_of(&logs));
    let text = text_of(&logs);
    let lines: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(
        lines.len(),
        2,
        "tail 10 of 20 lines, 2 of them ERROR: {lines:?}"
    );
    assert!(lines.iter().all(|l| l.contains("ERROR")));

    let describe = call(
        &client,
        "k8s.describe_resource",
        json!({"kind": "pod", "name": "web-0", "namespace": "shop"}),
    )
    .await;
    assert_ne!(describe.is_error, Some(true), "{}", text_of(&describe));
    let text = text_of(&describe);
    assert!(
        text.contains("OOMKilled"),
        "last termination reason shown: {text}"
    );
    assert!(
        text.contains("Back-off restarting failed container"),
        "recent events shown: {text}"
    );

    let events = call(
        &client,
        "k8s.get_events",
        json!({"namespace": "shop", "type": "Warning"}),
    )
    .await;
    assert_ne!(events.is_error, Some(true), "{}", text_of(&events));
    assert!(text_of(&events).contains("BackOff"));
    client.cancel().await.ok();
}

/// The text block renders the answer once, compactly; `structuredContent` keeps the JSON
/// (log lines only in the text); upstream text is marked `untrusted`.
#[tokio::test]
async fn answers_are_rendered_once_and_upstream_text_is_marked() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let client = http_client(&tg.url).await;

    let logs = call(
        &client,
        "k8s.get_logs",
        json!({"pod": "web-0", "namespace": "shop", "tail_lines": 20}),
    )
    .await;
    let text = text_of(&logs);
    let sc = logs.structured_content.clone().expect("structured");
    let header = text.lines().next().unwrap_or_default();
    for field in ["pod=web-0", "count=20", "untrusted=true"] {
        assert!(header.split(' ').any(|f| f == field), "{field} in {header}");
    }
    // A complete answer says nothing of truncation.
    assert!(!header.contains("truncated"), "{header}");
    let body: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(body.len(), 20, "{text}");
    assert_eq!(
        (body[0], body[19]),
        ("ERROR request 0 failed", "INFO request 19 ok"),
        "the log lines as they are, oldest first"
    );
    assert!(sc.get("lines").is_none(), "the lines travel once: {sc}");
    assert_eq!((&sc["count"], &sc["untrusted"]), (&json!(20), &json!(true)));
    assert!(sc.get("truncated").is_none(), "complete: {sc}");
    let whole = serde_json::to_string(&logs).expect("json");
    assert_eq!(
        whole.matches("INFO request 19 ok").count(),
        1,
        "each line once in the whole answer: {whole}"
    );
    assert!(!text.contains("{\""), "no JSON in the text: {text}");

    let events = call(&client, "k8s.get_events", json!({"namespace": "shop"})).await;
    let text = text_of(&events);
    let sc = events.structured_content.clone().expect("structured");
    assert_eq!(
        column(&sc, "message"),
        vec!["Back-off restarting failed container app"]
    );
    assert_eq!(sc["untrusted"], true);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1], "last_seen\ttype\treason\tobject\tmessage\tcount\tsource",
        "{text}"
    );
    assert!(
        lines[2].contains(
            "\tWarning\tBackOff\tPod/web-0\tBack-off restarting failed container app\t7\t"
        ),
        "{text}"
    );
    assert!(!text.contains("{\""), "no JSON in the text: {text}");

    let get = call(
        &client,
        "k8s.get_resource",
        json!({"kind": "Deployment", "name": "web", "namespace": "shop"}),
    )
    .await;
    let text = text_of(&get);
    let sc = get.structured_content.clone().expect("structured");
    assert_eq!(sc["object"]["spec"]["replicas"], 2, "{sc}");
    assert!(
        text.contains("image: nginx:1.27"),
        "the object as YAML: {text}"
    );
    assert!(
        !text.contains("\"apiVersion\""),
        "not the JSON again: {text}"
    );
    assert!(
        text.len() < serde_json::to_string(&sc).expect("json").len(),
        "the text is smaller than the JSON it renders"
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn bad_arguments_and_unknown_tools_are_explained() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let client = http_client(&tg.url).await;

    let bad = call(
        &client,
        "k8s.list_resources",
        json!({"kind": "pods", "limit": "ten"}),
    )
    .await;
    assert_eq!(bad.is_error, Some(true));
    let msg = text_of(&bad);
    assert!(msg.contains("`limit`") && msg.contains("integer"), "{msg}");

    let unknown_arg = call(
        &client,
        "k8s.get_logs",
        json!({"pod": "web-0", "namespace": "shop", "tail": 5}),
    )
    .await;
    assert_eq!(unknown_arg.is_error, Some(true));
    assert!(
        text_of(&unknown_arg).contains("unknown argument `tail`"),
        "{}",
        text_of(&unknown_arg)
    );

    let err = client
        .call_tool(CallToolRequestParams::new("k8s.get_log").with_arguments(serde_json::Map::new()))
        .await
        .expect_err("unknown tool is a protocol error");
    let text = err.to_string();
    // The closest names are given as this client sees them listed.
    assert!(
        text.contains("unknown tool `k8s.get_log`") && text.contains("k8s_get_logs"),
        "{text}"
    );

    // The dotted form of a name is accepted too.
    let underscored = call(
        &client,
        "k8s.list_resources",
        json!({"kind": "pods", "namespace": "shop"}),
    )
    .await;
    assert_ne!(
        underscored.is_error,
        Some(true),
        "{}",
        text_of(&underscored)
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn write_tools_wait_for_approval_and_only_dry_runs_reach_the_cluster() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let client = http_client(&tg.url).await;
    let calls = [
        (
            "k8s.delete_resource",
            json!({"kind": "deploy", "name": "web", "namespace": "shop"}),
        ),
        (
            "k8s.rollout_restart",
            json!({"kind": "deployment", "name": "web", "namespace": "shop"}),
        ),
        (
            "k8s.exec_command",
            json!({"pod": "web-0", "namespace": "shop", "command": ["echo", "hi"]}),
        ),
        (
            "k8s.apply_manifest",
            json!({"manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: shop\n"}),
        ),
    ];
    for (name, args) in calls {
        let result = call(&client, name, args).await;
        assert_ne!(result.is_error, Some(true), "{name}: {}", text_of(&result));
        let sc = result.structured_content.clone().expect("structured");
        assert_eq!(sc["status"], json!("approval_required"), "{name}: {sc}");
        assert!(
            sc["approval_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{name}: {sc}"
        );
        assert!(
            sc["approve_url"]
                .as_str()
                .unwrap_or_default()
                .contains("/approvals/"),
            "{name}: {sc}"
        );
    }
    // Previews are dry runs: every write request that reached the API server was one.
    for r in fake.requests() {
        if ["POST", "PUT", "PATCH", "DELETE"].contains(&r.method.as_str()) {
            // kube sends dryRun in the query for patches and in DeleteOptions for deletes.
            let dry = r.query.contains("dryRun=All") || r.body.contains("\"dryRun\":[\"All\"]");
            assert!(
                dry,
                "a real write reached the API server: {} {}?{}",
                r.method, r.path, r.query
            );
        }
    }
    assert!(fake.execs().is_empty(), "no command ran in a pod");
    assert!(
        fake.get("apps/v1", "Deployment", Some("shop"), "web")
            .is_some()
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn secret_data_never_leaves_the_server() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let client = http_client(&tg.url).await;
    let calls = [
        (
            "k8s.get_resource",
            json!({"kind": "secret", "name": "db-credentials", "namespace": "shop"}),
        ),
        (
            "k8s.get_resource",
            json!({"kind": "secret", "name": "db-credentials", "namespace": "shop", "output": "yaml"}),
        ),
        (
            "k8s.list_resources",
            json!({"kind": "secrets", "namespace": "shop", "output": "json"}),
        ),
        (
            "k8s.list_resources",
            json!({"kind": "secrets", "namespace": "shop"}),
        ),
        (
            "k8s.describe_resource",
            json!({"kind": "secret", "name": "db-credentials", "namespace": "shop"}),
        ),
    ];
    for (name, args) in calls {
        let result = call(&client, name, args.clone()).await;
        assert_ne!(
            result.is_error,
            Some(true),
            "{name} {args}: {}",
            text_of(&result)
        );
        let everything = serde_json::to_string(&result).expect("json");
        assert!(
            everything.contains("db-credentials"),
            "{name} answered about the secret"
        );
        assert!(
            !everything.contains(SECRET_B64),
            "{name} {args} leaked secret data: {everything}"
        );
        assert!(
            !everything.contains("YWRtaW4="),
            "{name} {args} leaked secret data"
        );
    }
    let get = call(
        &client,
        "k8s.get_resource",
        json!({"kind": "secret", "name": "db-credentials", "namespace": "shop"}),
    )
    .await;
    let text = text_of(&get);
    assert!(
        text.contains("password") && text.contains("user"),
        "key names are shown: {text}"
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_500_pod_list_is_cut_and_continued_until_every_pod_was_seen_once() {
    let fake = FakeKube::start().await;
    fake.seed_pods(500, &["a", "b", "c", "d", "e"]);
    let tg = harness::start(&fake, "").await;
    let client = http_client(&tg.url).await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut args = json!({"kind": "pods", "max_bytes": 4096});
    let mut pages = 0;
    loop {
        let result = call(&client, "k8s.list_resources", args.clone()).await;
        assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
        let sc = result.structured_content.clone().expect("structured");
        let size = serde_json::to_vec(&sc).expect("json").len();
        assert!(size <= 4096, "page of {size} bytes is over max_bytes");
        let names = column(&sc, "name");
        let namespaces = column(&sc, "namespace");
        for (ns, name) in namespaces.iter().zip(names) {
            *seen.entry(format!("{ns}/{name}")).or_default() += 1;
        }
        pages += 1;
        match sc.get("cursor").and_then(Value::as_str) {
            Some(cursor) => {
                assert_eq!(sc["truncated"], json!(true));
                args = json!({"kind": "pods", "max_bytes": 4096, "cursor": cursor});
            }
            None => break,
        }
        assert!(pages < 500, "cursor loop does not end");
    }
    assert!(pages > 2, "500 pods cannot fit in 4 KiB");
    assert_eq!(seen.len(), 500, "every pod seen");
    assert!(seen.values().all(|&n| n == 1), "no pod seen twice");
    client.cancel().await.ok();
}

pub async fn post_mcp(url: &str, headers: &[(&str, &str)], body: Value) -> reqwest::Response {
    let mut req = harness::http()
        .post(format!("{url}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.json(&body).send().await.expect("POST /mcp")
}

fn initialize_body() -> Value {
    initialize_with(json!({}))
}

fn initialize_with(capabilities: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": capabilities,
        "clientInfo": {"name": "raw", "version": "0"}}})
}

/// A raw 2025-11-25 session as `auth` (an Authorization value) declaring `capabilities`: the
/// `initialize` answer, the session id and the negotiated version, after `initialized`.
pub async fn open_session(url: &str, auth: &str, capabilities: Value) -> (Value, String, String) {
    let init = post_mcp(
        url,
        &[("authorization", auth)],
        initialize_with(capabilities),
    )
    .await;
    assert_eq!(init.status(), 200);
    let session = init
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_string();
    let init = rpc_message(init).await;
    let version = init["result"]["protocolVersion"]
        .as_str()
        .expect("protocolVersion")
        .to_string();
    let headers = [
        ("authorization", auth),
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", version.as_str()),
    ];
    let initialized = post_mcp(
        url,
        &headers,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(initialized.status(), 202);
    (init, session, version)
}

#[tokio::test]
async fn foreign_origins_are_refused_and_loopback_origins_allowed() {
    let fake = FakeKube::start().await;
    let tg = harness::start(&fake, "").await;
    let evil = post_mcp(
        &tg.url,
        &[("origin", "https://evil.example")],
        initialize_body(),
    )
    .await;
    assert_eq!(evil.status(), 403);
    let local = post_mcp(
        &tg.url,
        &[("origin", "http://localhost:6274")],
        initialize_body(),
    )
    .await;
    assert_eq!(local.status(), 200);

    let tg2 = harness::start(
        &fake,
        "mcp:\n  allowed_origins: [\"https://console.example:443\"]\n",
    )
    .await;
    let allowed = post_mcp(
        &tg2.url,
        &[("origin", "https://console.example")],
        initialize_body(),
    )
    .await;
    assert_eq!(allowed.status(), 200);
    let refused = post_mcp(
        &tg2.url,
        &[("origin", "http://localhost:6274")],
        initialize_body(),
    )
    .await;
    assert_eq!(refused.status(), 403);
}

/// Read the single JSON-RPC message of a response (JSON, or the data line of an SSE stream).
pub async fn rpc_message(resp: reqwest::Response) -> Value {
    let text = resp.text().await.expect("body");
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return v;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC message in {text}"))
}

pub fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn protocol_2026_07_28_stateless_requests_are_served() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"}
    });
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "k8s.list_resources"),
    ];
    let resp = post_mcp(
        &tg.url,
        &headers,
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
            "name": "k8s.list_resources", "arguments": {"kind": "pods", "namespace": "shop"}, "_meta": meta}}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("mcp-session-id").is_none(),
        "2026-07-28 has no sessions"
    );
    assert_eq!(
        content_type(&resp),
        "application/json",
        "stateless: one JSON answer"
    );
    let msg = rpc_message(resp).await;
    assert_eq!(msg["id"], json!(7), "{msg}");
    assert!(
        msg["result"]["structuredContent"]
            .to_string()
            .contains("web-0"),
        "{msg}"
    );
}

#[tokio::test]
async fn malformed_requests_get_json_rpc_errors() {
    let fake = FakeKube::start().await;
    let tg = harness::start(&fake, "").await;
    let resp = post_mcp(
        &tg.url,
        &[],
        json!({"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": "nope"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let msg = rpc_message(resp).await;
    assert_eq!(msg["error"]["code"], json!(-32600), "{msg}");
    assert_eq!(msg["id"], json!(9), "{msg}");

    let garbage = harness::http()
        .post(format!("{}/mcp", tg.url))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body("{not json")
        .send()
        .await
        .expect("POST");
    assert_eq!(garbage.status(), 400);
    let msg = rpc_message(garbage).await;
    assert_eq!(msg["error"]["code"], json!(-32700), "{msg}");
    assert_eq!(msg["id"], Value::Null);
}

#[tokio::test]
async fn stdio_serves_the_same_tools_with_the_rmcp_client() {
    let fake = seeded_fake().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("toolgate.yaml");
    std::fs::write(&config, harness::config_yaml(&fake, dir.path(), "")).expect("config");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_toolgate"));
    cmd.arg("stdio")
        .arg("--config")
        .arg(&config)
        .env_remove("TOOLGATE_LISTEN");
    let transport = TokioChildProcess::new(cmd).expect("spawn toolgate stdio");
    let client = ().serve(transport).await.expect("MCP handshake over stdio");
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "k8s_get_logs"));
    let list = call(
        &client,
        "k8s.list_resources",
        json!({"kind": "deploy", "namespace": "shop"}),
    )
    .await;
    assert_ne!(list.is_error, Some(true), "{}", text_of(&list));
    assert_eq!(
        column(
            &list.structured_content.clone().expect("structured"),
            "name"
        ),
        vec!["web"]
    );
    let held = call(
        &client,
        "k8s.rollout_restart",
        json!({"kind": "deployment", "name": "web", "namespace": "shop"}),
    )
    .await;
    let sc = held.structured_content.clone().expect("structured");
    assert_eq!(sc["status"], json!("approval_required"), "{sc}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let http = harness::http();
    let health = http
        .get(format!("{}/healthz", tg.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let ready = http
        .get(format!("{}/readyz", tg.url))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200, "the fake cluster answers");
    let body: serde_json::Value = ready.json().await.expect("readyz is JSON");
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["integrations"]["store"]["state"], "ok", "{body}");
    assert_eq!(
        body["integrations"].as_object().map(|o| o.len()),
        Some(2),
        "store and one cluster: {body}"
    );

    let client = http_client(&tg.url).await;
    call(
        &client,
        "k8s.list_resources",
        json!({"kind": "pods", "namespace": "shop"}),
    )
    .await;
    call(
        &client,
        "k8s.list_resources",
        json!({"kind": "pods", "limit": "x"}),
    )
    .await;
    let metrics = tg.metrics().await;
    assert!(
        metrics.contains(r#"toolgate_tool_calls_total{tool="k8s.list_resources",transport="mcp-http",outcome="ok"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"outcome="invalid_arguments""#),
        "{metrics}"
    );
    assert!(
        metrics.contains("toolgate_tool_call_duration_seconds_bucket"),
        "{metrics}"
    );
    client.cancel().await.ok();

    // A cluster that does not answer degrades the server but leaves it ready (only the store
    // decides readiness), with the cluster's error and breaker state in the answer.
    let dir = tempfile::tempdir().expect("tempdir");
    let dead = dir.path().join("dead.kubeconfig");
    std::fs::write(
        &dead,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n- name: dead\n  context:\n    cluster: dead\n    user: u\nusers:\n- name: u\n  user: {}\ncurrent-context: dead\n",
    )
    .expect("kubeconfig");
    let config = dir.path().join("toolgate.yaml");
    std::fs::write(
        &config,
        format!(
            "kubernetes:\n  clusters:\n    - name: dead\n      kubeconfig: {}\n  request_timeout_seconds: 2\nstore:\n  url: sqlite://{}\n",
            dead.display(),
            dir.path().join("t.db").display()
        ),
    )
    .expect("config");
    let cfg = toolgate::config::Config::load_from(Some(&config), &[]).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let token = tokio_util::sync::CancellationToken::new();
    tokio::spawn(toolgate::app::serve_on(listener, cfg, token.clone()));
    let ready = http
        .get(format!("{url}/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("readyz is JSON");
    assert_eq!(body["status"], "degraded", "{body}");
    let dead = &body["integrations"]["kubernetes/dead"];
    assert_eq!(dead["state"], "down", "{body}");
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("`dead`"),
        "{body}"
    );
    assert!(dead["breaker"].is_string(), "{body}");
    let health = http
        .get(format!("{url}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    token.cancel();
}

/// Server-sent events read off a response so far: `(id, data)` of each complete event.
pub async fn sse_events_until(
    resp: &mut reqwest::Response,
    buffer: &mut String,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    loop {
        let events: Vec<(String, String)> = buffer
            .split("\n\n")
            .filter(|block| !block.trim().is_empty())
            .take(buffer.matches("\n\n").count())
            .map(|block| {
                let field = |name: &str| {
                    block
                        .lines()
                        .filter_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim_start().to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                (field("id:"), field("data:"))
            })
            .collect();
        if done(&events) {
            return events;
        }
        match tokio::time::timeout(Duration::from_secs(60), resp.chunk()).await {
            Ok(Ok(Some(chunk))) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) => panic!("stream ended; events so far: {events:?}"),
            Ok(Err(e)) => panic!("stream failed: {e}; events so far: {events:?}"),
            Err(_) => panic!("no event within 60 s; events so far: {events:?}"),
        }
    }
}

/// A call of `approval.status` waiting for a decision, after its priming event (its POST
/// stream dropped by [`cut_call`], kept open by [`waiting_call`]).
pub struct CutCall {
    pub tg: harness::Toolgate,
    _fake: FakeKube,
    approval: String,
    pub auth: String,
    pub session: String,
    pub version: String,
    pub last_event_id: String,
}

async fn cut_call() -> CutCall {
    let (cut, call) = waiting_call().await;
    drop(call);
    cut
}

/// A call of `approval.status` (JSON-RPC id 41) waiting for a decision, and its POST stream,
/// read up to its priming event.
pub async fn waiting_call() -> (CutCall, reqwest::Response) {
    use crate::approvals_api::request_restart;
    use crate::harness::ALICE;
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let approval = request_restart(&tg.url, ALICE).await;
    let auth = format!("Bearer {ALICE}");
    let (_, session, version) = open_session(&tg.url, &auth, json!({})).await;
    let headers = [
        ("authorization", auth.as_str()),
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", version.as_str()),
    ];

    let mut call = post_mcp(
        &tg.url,
        &headers,
        json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {
            "name": "approval.status", "arguments": {"approval_id": approval, "wait_seconds": 30}}}),
    )
    .await;
    assert_eq!(call.status(), 200);
    assert_eq!(
        content_type(&call),
        "text/event-stream",
        "an answer in a session is a stream, resumable"
    );
    let mut buffer = String::new();
    let events = sse_events_until(&mut call, &mut buffer, |events| {
        events.iter().any(|(id, _)| !id.is_empty())
    })
    .await;
    let last_event_id = events
        .iter()
        .rev()
        .find(|(id, _)| !id.is_empty())
        .map(|(id, _)| id.clone())
        .expect("an event id");
    // A plain call: answered off rmcp's path (`mcp_direct`), resumable all the same.
    let stream: u64 = last_event_id
        .split_once('/')
        .and_then(|(_, n)| n.parse().ok())
        .expect("an event id of a call stream");
    assert!(stream >= 1 << 48, "{last_event_id}");
    assert!(
        !events.iter().any(|(_, data)| data.contains("\"id\":41")),
        "no answer before the decision: {events:?}"
    );
    let cut = CutCall {
        tg,
        _fake: fake,
        approval,
        auth,
        session,
        version,
        last_event_id,
    };
    (cut, call)
}

impl CutCall {
    /// Bob approves the restart, which ends the wait.
    async fn decide(&self) {
        let (status, body) = crate::gate::decide(
            &self.tg.url,
            harness::BOB,
            &self.approval,
            "approve",
            Some("ok"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    /// GET /mcp with the session and the last event id the client saw.
    async fn reconnect(&self) -> reqwest::Response {
        let resumed = harness::http()
            .get(format!("{}/mcp", self.tg.url))
            .header("accept", "text/event-stream")
            .header("authorization", &self.auth)
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", &self.version)
            .header("last-event-id", &self.last_event_id)
            .send()
            .await
            .expect("GET /mcp");
        assert_eq!(resumed.status(), 200);
        resumed
    }
}

/// The answer to the cut call on a reconnected stream: the restart was approved and ran.
async fn answer_on(mut resumed: reqwest::Response) {
    let mut buffer = String::new();
    let events = sse_events_until(&mut resumed, &mut buffer, |events| {
        events.iter().any(|(_, data)| data.contains("\"id\":41"))
    })
    .await;
    let answer: Value = events
        .iter()
        .filter_map(|(_, data)| serde_json::from_str::<Value>(data).ok())
        .find(|m| m["id"] == json!(41))
        .expect("the answer to the call");
    let state = &answer["result"]["structuredContent"]["state"];
    assert_ne!(state, &json!("pending"), "{answer}");
    assert!(answer["result"]["isError"] != json!(true), "{answer}");
}

/// SEP-1699 (the conformance suite's `server-sse-polling`, whose own check needs its fixture
/// tool): the client loses the POST stream of a call that is still running; reconnecting with
/// GET and `Last-Event-ID` delivers the result produced while it was away.
#[tokio::test]
async fn a_call_whose_stream_was_cut_is_answered_after_reconnecting_with_last_event_id() {
    let cut = cut_call().await;
    // Decided while the client is disconnected: the call ends and answers into the void.
    cut.decide().await;
    wait_for_answered_status_call(&cut.tg).await;
    answer_on(cut.reconnect().await).await;
}

/// Waits (10 s at most) until toolgate counts an `approval.status` call over MCP HTTP as
/// answered, i.e. run to its end whether or not its client was still there.
pub async fn wait_for_answered_status_call(tg: &harness::Toolgate) {
    let answered =
        r#"toolgate_tool_calls_total{tool="approval.status",transport="mcp-http",outcome="ok"} "#;
    let mut metrics = String::new();
    for _ in 0..200 {
        metrics = tg.metrics().await;
        if metrics.lines().any(|l| l.starts_with(answered)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("approval.status was not answered: {metrics}");
}

/// The same, reconnecting while the call still waits: the answer comes on the new stream.
#[tokio::test]
async fn a_call_whose_stream_was_cut_continues_on_the_reconnected_stream() {
    let cut = cut_call().await;
    let resumed = cut.reconnect().await;
    cut.decide().await;
    answer_on(resumed).await;
}
