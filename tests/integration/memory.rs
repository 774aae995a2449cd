//! memory.* tools end to end through a running toolgate against the Cognee fake
//! (`fake_cognee.rs`; the real server cannot run offline here: README, "Memory"). Covers the
//! default policy (adds run at once, cognify waits for an approver), the requests against
//! Cognee's OpenAPI document, idempotent re-adds, login failure and renewal, cognify errors,
//! the polling deadline, Cognee killed mid-run (adds queued, replayed in order without doubles,
//! searches saying no embedded index is configured), bad DataPoints adding nothing, the
//! deterministic integration-path suggestion, and the embedded knowledge index answering for
//! Cognee when it is down or not configured (what was added, queued adds included).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::approvals_api::api;
use crate::fake_cognee::{CognifyMode, FakeCognee};
use crate::fake_kube::FakeKube;
use crate::harness::{self, ALICE, BOB, Toolgate};

const USER: &str = "bot@example.com";
const PASSWORD: &str = "pw-0123456789";

/// A memory block for `fake`; `extra` adds keys to `memory.cognee`.
fn memory_block(fake: &FakeCognee, password: &str, extra: &str) -> String {
    format!(
        "memory:\n  cognee:\n    url: {}\n    auth: {{username: {USER}, password: {password}}}\n    dataset: governance\n    timeout: 2s\n    poll_interval: 50ms\n    replay_interval: 200ms\n    retry: {{attempts: 1}}\n    breaker: {{failures: 2, cooldown: 300ms}}\n{extra}",
        fake.url
    )
}

/// A policy that lets callers run every memory tool at once (tests of Cognee's behaviour, not of
/// approvals; the default policy is tested in the first test).
fn open_policy(dir: &std::path::Path) -> String {
    std::fs::write(
        dir.join("open.yaml"),
        "rules:\n  - name: callers-run-everything\n    roles: [toolgate.caller]\n    effect: allow\n",
    )
    .expect("policy");
    format!("policies:\n  dir: {}\n", dir.display())
}

/// A toolgate for `cognee` (with `extra` memory keys) whose callers may run every tool at once.
async fn start_open(
    kube: &FakeKube,
    cognee: &FakeCognee,
    password: &str,
    extra: &str,
) -> (Toolgate, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tg = harness::start(
        kube,
        &format!(
            "{}{}",
            memory_block(cognee, password, extra),
            open_policy(dir.path())
        ),
    )
    .await;
    (tg, dir)
}

async fn rpc(tg: &Toolgate, token: &str, method: &str, params: Value) -> Value {
    let resp = harness::http()
        .post(format!("{}/rpc", tg.url))
        .bearer_auth(token)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .expect("POST /rpc");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("JSON answer")
}

/// A tool call as Alice: `Ok(structuredContent)` or `Err(error message)`.
async fn tool(tg: &Toolgate, name: &str, args: Value) -> Result<Value, String> {
    let answer = rpc(
        tg,
        ALICE,
        "tools.call",
        json!({"name": name, "arguments": args}),
    )
    .await;
    let result = &answer["result"];
    if result["isError"] == json!(true) {
        Err(result["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    } else if result.is_null() {
        Err(answer.to_string())
    } else {
        Ok(result["structuredContent"].clone())
    }
}

fn integration(key: &str, pattern: &str, outcome: &str, tags: &[&str]) -> Value {
    let (source, target) = key.split_once("->").expect("src->dst");
    json!({"kind": "integration", "key": key, "title": format!("{source} to {target}"),
           "source": source, "target": target, "pattern": pattern, "outcome": outcome,
           "tags": tags, "summary": format!("{source} feeds {target}."),
           "relations": [{"type": "depends_on", "kind": "domain", "key": target}]})
}

fn corpus() -> Value {
    json!([
        {"kind": "domain", "key": "ledger", "title": "General ledger", "tags": ["finance"]},
        integration("payments->ledger", "event-streaming", "succeeded", &["kafka", "outbox"]),
        integration("orders->ledger", "event-streaming", "succeeded", &["kafka", "outbox", "idempotency"]),
        integration("billing->ledger", "rest-api", "failed", &["kafka"]),
        integration("hr->payroll", "batch-etl", "succeeded", &["csv"]),
    ])
}

/// The file name Cognee stores for a DataPoint: its UUIDv5 id.
fn file_of(kind: &str, key: &str) -> String {
    format!(
        "{}.md",
        toolgate::adapters::cognee::datapoint::datapoint_id(kind, key)
    )
}

fn openapi() -> Value {
    serde_json::from_str(include_str!("../fixtures/cognee/openapi.json")).expect("fixture")
}

fn documented_fields(doc: &Value, schema: &str) -> Vec<String> {
    doc["components"]["schemas"][schema]["properties"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn adds_run_at_once_cognify_waits_for_an_approver_and_search_names_its_sources() {
    let cognee = FakeCognee::start(USER, PASSWORD, None).await;
    let kube = FakeKube::start().await;
    let tg = harness::start(&kube, &memory_block(&cognee, PASSWORD, "")).await;

    // Configured memory is offered by default.
    let list = rpc(&tg, ALICE, "tools.list", json!({})).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        names.contains(&"memory.suggest_integration_path"),
        "{names:?}"
    );

    // The default policy lets callers add without approval.
    let added = tool(
        &tg,
        "memory.add_datapoints",
        json!({"datapoints": corpus()}),
    )
    .await
    .expect("added");
    assert_eq!(added["status"], "added", "{added}");
    assert_eq!(added["count"], 5);
    assert_eq!(
        added["datapoints"][1]["id"],
        file_of("integration", "payments->ledger").trim_end_matches(".md")
    );
    let stored = cognee.stored("governance");
    assert_eq!(stored.len(), 5, "{stored:?}");
    assert_eq!(stored[1], file_of("integration", "payments->ledger"));
    // Adding the same DataPoints again uploads the same bytes: Cognee keeps one of each.
    let again = tool(
        &tg,
        "memory.add_datapoints",
        json!({"datapoints": corpus()}),
    )
    .await
    .expect("added again");
    assert_eq!(again["status"], "added");
    assert_eq!(cognee.stored("governance"), stored, "no doubles");
    assert_eq!(cognee.state().logins, 1, "one login, its token reused");

    // Cognify is a write: held for an approver, then run once.
    let held = tool(&tg, "memory.cognify", json!({"wait": true}))
        .await
        .expect("held");
    assert_eq!(held["status"], "approval_required", "{held}");
    assert!(cognee.requests_to("/api/v1/cognify").is_empty());
    let path = format!(
        "/api/v1/approvals/{}",
        held["approval_id"].as_str().expect("id")
    );
    let (status, done) = api(
        &tg,
        "POST",
        &format!("{path}/approve"),
        Some(BOB),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "executed", "{done}");
    let result = &done["result"];
    assert_eq!(result["status"], "DATASET_PROCESSING_COMPLETED", "{result}");
    assert_eq!(result["run_status"], "PipelineRunStarted");
    assert!(
        result["pipeline_run_id"]
            .as_str()
            .is_some_and(|r| r.len() == 36),
        "{result}"
    );

    let status = tool(&tg, "memory.status", json!({})).await.expect("status");
    assert_eq!(status["status"], "DATASET_PROCESSING_COMPLETED", "{status}");
    assert_eq!(status["cognee"], "ok");
    assert_eq!(status["queue"]["pending"], 0);

    let found = tool(
        &tg,
        "memory.search",
        json!({"query": "kafka integrations into the ledger", "top_k": 3, "kinds": ["integration"]}),
    )
    .await
    .expect("search");
    assert_eq!(found["answered_by"], "cognee");
    assert_eq!(found["untrusted"], true, "text from Cognee is marked");
    let results = found["results"].as_array().expect("results");
    assert_eq!(results.len(), 3, "{found}");
    for r in results {
        assert_eq!(r["source"], "governance");
        assert!(
            r["datapoints"]
                .as_str()
                .is_some_and(|d| d.starts_with("integration:")),
            "{r}"
        );
    }
    let refs: Vec<&str> = results
        .iter()
        .filter_map(|r| r["datapoints"].as_str())
        .collect();
    let payments = format!(
        "integration:payments->ledger={}",
        file_of("integration", "payments->ledger").trim_end_matches(".md")
    );
    assert!(refs.contains(&payments.as_str()), "{refs:?}");
    let insights = tool(
        &tg,
        "memory.search",
        json!({"query": "x", "search_type": "INSIGHTS"}),
    )
    .await;
    assert!(
        insights.is_err(),
        "INSIGHTS is refused before anything is sent: {insights:?}"
    );

    // Same memory, same suggestion; its basis is the structured fields.
    let ask = json!({"source": "payments", "target": "ledger", "tags": ["kafka"]});
    let first = tool(&tg, "memory.suggest_integration_path", ask.clone())
        .await
        .expect("suggest");
    let second = tool(&tg, "memory.suggest_integration_path", ask)
        .await
        .expect("suggest");
    assert_eq!(first, second, "deterministic");
    assert_eq!(first["suggested_pattern"], "event-streaming", "{first}");
    assert_eq!(first["confidence"], 0.43, "{first}");
    assert_eq!(
        first["basis"],
        json!({"similar_cases": 3, "succeeded": 2, "similarity": 0.65, "cases_with_pattern": 2,
               "succeeded_with_pattern": 2, "support": 0.667,
               "formula": "confidence = similarity × succeeded_with_pattern/cases_with_pattern × support"})
    );
    let practices: Vec<&str> = first["shared_practices"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["practice"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(practices, vec!["kafka", "outbox"]);

    // Every request toolgate sent is one Cognee documents.
    let doc = openapi();
    for path in [
        "/api/v1/auth/login",
        "/api/v1/add",
        "/api/v1/cognify",
        "/api/v1/datasets",
        "/api/v1/datasets/status",
        "/api/v1/search",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} is in Cognee's OpenAPI document"
        );
        assert!(
            !cognee.requests_to(path).is_empty(),
            "toolgate called {path}"
        );
    }
    let check = |path: &str, schema: &str, sent: Vec<String>| {
        let known = documented_fields(&doc, schema);
        for f in sent {
            assert!(
                known.contains(&f),
                "{path}: `{f}` is not a field of {schema}: {known:?}"
            );
        }
    };
    for s in cognee.requests_to("/api/v1/add") {
        check("/api/v1/add", "Body_add_api_v1_add_post", s.fields.clone());
        assert!(
            s.authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Bearer jwt-"))
        );
    }
    for s in cognee.requests_to("/api/v1/auth/login") {
        check(
            "/api/v1/auth/login",
            "Body_login_api_v1_auth_login_post",
            s.fields.clone(),
        );
    }
    for (path, schema) in [
        ("/api/v1/cognify", "CognifyPayloadDTO"),
        ("/api/v1/search", "SearchPayloadDTO"),
    ] {
        for s in cognee.requests_to(path) {
            check(
                path,
                schema,
                s.json
                    .as_object()
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default(),
            );
        }
    }
    let params: Vec<&str> = doc["paths"]["/api/v1/datasets/status"]["get"]["parameters"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    for s in cognee.requests_to("/api/v1/datasets/status") {
        for (k, _) in &s.query {
            assert!(
                params.contains(&k.as_str()),
                "status parameter {k} not in {params:?}"
            );
        }
    }

    // /readyz lists Cognee.
    let (status, ready) = api(&tg, "GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["integrations"]["cognee"]["state"], "ok", "{ready}");
}

#[tokio::test]
async fn wrong_credentials_renewed_tokens_and_failing_cognify_runs_are_reported() {
    let cognee = FakeCognee::start(USER, PASSWORD, None).await;
    let kube = FakeKube::start().await;
    let (wrong, _wrong_dir) = start_open(&kube, &cognee, "not-it", "").await;
    let err = tool(
        &wrong,
        "memory.add_datapoints",
        json!({"datapoints": corpus()}),
    )
    .await
    .expect_err("refused");
    assert_eq!(
        err,
        "Cognee refused toolgate's credentials (HTTP 400: LOGIN_BAD_CREDENTIALS); check memory.cognee.auth"
    );
    assert!(!err.contains("not-it"), "the password never shows");
    assert!(
        cognee.stored("governance").is_empty(),
        "nothing added, nothing queued"
    );
    let status = tool(&wrong, "memory.status", json!({}))
        .await
        .expect_err("refused too");
    assert!(status.contains("LOGIN_BAD_CREDENTIALS"), "{status}");

    let (tg, _dir) = start_open(&kube, &cognee, PASSWORD, "    cognify_deadline: 5s\n").await;
    tool(
        &tg,
        "memory.add_datapoints",
        json!({"datapoints": corpus()}),
    )
    .await
    .expect("added");
    // Cognee forgot the token (restarted with a new secret): toolgate logs in again once.
    cognee.expire_tokens();
    let logins = cognee.state().logins;
    tool(&tg, "memory.search", json!({"query": "ledger"}))
        .await
        .expect("search after renewal");
    assert_eq!(cognee.state().logins, logins + 1);

    cognee.set_mode(CognifyMode::FailsAtOnce);
    let err = tool(&tg, "memory.cognify", json!({}))
        .await
        .expect_err("errored");
    assert!(
        err.starts_with("Cognee is unavailable: Cognee answered HTTP 500")
            && err.contains("Pipeline run errored")
            && err.contains("LLM API key is not set"),
        "{err}"
    );
    cognee.set_mode(CognifyMode::ErrorsInBackground);
    let err = tool(&tg, "memory.cognify", json!({"wait": true}))
        .await
        .expect_err("errored later");
    assert!(
        err.contains("errored (DATASET_PROCESSING_ERRORED)") && err.contains("dataset governance"),
        "{err}"
    );
    let started = tool(&tg, "memory.cognify", json!({}))
        .await
        .expect("no wait: started");
    assert_eq!(started["run_status"], "PipelineRunStarted");
    assert!(started.get("status").is_none(), "{started}");
}

#[tokio::test]
async fn polling_a_cognify_run_stops_at_the_deadline() {
    let cognee = FakeCognee::start(USER, PASSWORD, None).await;
    cognee.set_mode(CognifyMode::Hangs);
    let kube = FakeKube::start().await;
    let (tg, _dir) = start_open(&kube, &cognee, PASSWORD, "    cognify_deadline: 1s\n").await;
    tool(
        &tg,
        "memory.add_datapoints",
        json!({"datapoints": corpus()}),
    )
    .await
    .expect("added");
    let started = std::time::Instant::now();
    let run = tool(&tg, "memory.cognify", json!({"wait": true}))
        .await
        .expect("answered");
    let took = started.elapsed();
    assert_eq!(run["timed_out"], true, "{run}");
    assert_eq!(run["status"], "DATASET_PROCESSING_STARTED");
    let waited = run["waited_seconds"].as_f64().expect("waited");
    assert!((1.0..2.0).contains(&waited), "{waited}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        cognee.requests_to("/api/v1/datasets/status").len() >= 5,
        "polled every 50ms"
    );
}

#[tokio::test]
async fn adds_made_while_cognee_is_down_are_queued_and_replayed_in_order_once() {
    let mut cognee = FakeCognee::start(USER, PASSWORD, None).await;
    let kube = FakeKube::start().await;
    let (tg, _dir) = start_open(&kube, &cognee, PASSWORD, "").await;
    let one = |key: &str| json!({"datapoints": [{"kind": "domain", "key": key, "title": key}]});
    assert_eq!(
        tool(&tg, "memory.add_datapoints", one("a"))
            .await
            .expect("a")["status"],
        "added"
    );
    tool(&tg, "memory.cognify", json!({}))
        .await
        .expect("run started");

    cognee.stop().await;
    let status = tool(&tg, "memory.status", json!({}))
        .await
        .expect("status still answers");
    assert!(
        status["cognee"]
            .as_str()
            .is_some_and(|c| c.starts_with("Cognee is unavailable")),
        "{status}"
    );
    let b = tool(&tg, "memory.add_datapoints", one("b"))
        .await
        .expect("queued");
    assert_eq!(b["status"], "queued", "{b}");
    assert!(
        b["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("Cognee is unavailable")),
        "{b}"
    );
    let c = tool(&tg, "memory.add_datapoints", one("c"))
        .await
        .expect("queued");
    assert_eq!(c["status"], "queued");
    assert!(c["queue_seq"].as_i64() > b["queue_seq"].as_i64());
    let d = tool(&tg, "memory.add_datapoints", one("d"))
        .await
        .expect("queued");
    assert_eq!(d["status"], "queued");
    let err = tool(&tg, "memory.search", json!({"query": "a"}))
        .await
        .expect_err("down");
    assert!(
        err.starts_with("Cognee is unavailable: ")
            && err.ends_with("; no embedded knowledge index is configured to answer instead"),
        "{err}"
    );
    let suggest = tool(
        &tg,
        "memory.suggest_integration_path",
        json!({"source": "a", "target": "b"}),
    )
    .await
    .expect_err("down");
    assert!(
        suggest.contains("no embedded knowledge index is configured"),
        "{suggest}"
    );
    let status = tool(&tg, "memory.status", json!({})).await.expect("status");
    assert_eq!(status["queue"]["pending"], 3, "{status}");

    cognee.restart().await;
    let want: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|k| file_of("domain", k))
        .collect();
    for _ in 0..100 {
        if cognee.stored("governance").len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        cognee.stored("governance"),
        want,
        "replayed in the order they were made"
    );
    let status = tool(&tg, "memory.status", json!({})).await.expect("status");
    assert_eq!(status["queue"]["pending"], 0, "{status}");
    assert_eq!(status["queue"]["replayed"], 3, "{status}");
    assert_eq!(status["cognee"], "ok");
    // Each queued add went out once after Cognee came back.
    let adds = cognee.requests_to("/api/v1/add").len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        cognee.requests_to("/api/v1/add").len(),
        adds,
        "nothing is sent twice"
    );
    // A new add goes straight through again; re-adding a replayed one stores no double.
    assert_eq!(
        tool(&tg, "memory.add_datapoints", one("b"))
            .await
            .expect("b")["status"],
        "added"
    );
    assert_eq!(cognee.stored("governance"), want);
}

#[tokio::test]
async fn a_bad_datapoint_adds_nothing_and_names_its_item_and_field() {
    let cognee = FakeCognee::start(USER, PASSWORD, None).await;
    let kube = FakeKube::start().await;
    let tg = harness::start(&kube, &memory_block(&cognee, PASSWORD, "")).await;
    let mut batch = corpus();
    batch[2]["outcome"] = json!("done");
    let err = tool(&tg, "memory.add_datapoints", json!({"datapoints": batch}))
        .await
        .expect_err("refused");
    assert_eq!(
        err,
        "nothing was added: datapoints[2].outcome: `done` is not one of succeeded, failed, in_progress"
    );
    let unknown = tool(
        &tg,
        "memory.add_datapoints",
        json!({"datapoints": [{"kind": "domain", "key": "x", "title": "x", "owner": "me"}]}),
    )
    .await
    .expect_err("unknown field");
    assert!(unknown.contains("owner"), "{unknown}");
    assert!(
        cognee.requests_to("/api/v1/add").is_empty(),
        "nothing was sent"
    );
    let status = tool(&tg, "memory.status", json!({})).await.expect("status");
    assert_eq!(status["queue"]["pending"], 0, "nothing was queued either");
}

#[tokio::test]
async fn without_cognee_or_knowledge_memory_is_not_offered_and_says_what_is_missing() {
    let kube = FakeKube::start().await;
    let tg = harness::start(&kube, "").await;
    let list = rpc(&tg, ALICE, "tools.list", json!({})).await;
    let listed = list["result"]["tools"].to_string();
    assert!(
        !listed.contains("memory."),
        "not offered by default: {listed}"
    );
    let all = harness::start(&kube, "mcp:\n  toolsets: [all]\n").await;
    let err = tool(&all, "memory.search", json!({"query": "ledger"}))
        .await
        .expect_err("none");
    assert_eq!(
        err,
        "Cognee is unavailable: it is not configured (set memory.cognee.url or TOOLGATE_MEMORY_COGNEE_URL) and no embedded knowledge index is configured (a `knowledge:` section) to answer instead"
    );
    let err = tool(
        &all,
        "memory.add_datapoints",
        json!({"datapoints": [{"kind": "domain", "key": "x", "title": "x"}]}),
    )
    .await
    .expect_err("nowhere to add");
    assert!(err.starts_with("Cognee is not configured"), "{err}");
    let err = tool(&all, "memory.status", json!({}))
        .await
        .expect_err("none");
    assert!(err.starts_with("Cognee is not configured"), "{err}");
}

/// A `knowledge:` block over the labelled corpus's runbooks (the index beside the store).
fn knowledge_block() -> String {
    format!(
        "knowledge:\n  runbooks_dir: {}/tests/fixtures/knowledge/runbooks\n",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The DataPoint ids a search answer names, in order.
fn ids(answer: &Value) -> Vec<String> {
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .flat_map(|r| {
            r["datapoints"]
                .as_str()
                .unwrap_or_default()
                .split(", ")
                .filter_map(|d| d.split_once('=').map(|(_, id)| id.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn while_cognee_is_down_the_embedded_index_answers_with_what_was_added() {
    let mut cognee = FakeCognee::start(USER, PASSWORD, None).await;
    let kube = FakeKube::start().await;
    let (tg, _dir) = start_open(&kube, &cognee, PASSWORD, &knowledge_block()).await;
    let added = tool(
        &tg,
        "memory.add_datapoints",
        json!({"datapoints": corpus()}),
    )
    .await
    .expect("added");
    assert_eq!(added["status"], "added", "{added}");
    let ask = json!({"query": "kafka integrations into the ledger", "top_k": 3, "kinds": ["integration"]});
    let up = tool(&tg, "memory.search", ask.clone())
        .await
        .expect("search");
    assert_eq!(up["answered_by"], "cognee", "{up}");
    assert!(up.get("degraded").is_none(), "{up}");
    let suggest = json!({"source": "payments", "target": "ledger", "tags": ["kafka"]});
    let by_cognee = tool(&tg, "memory.suggest_integration_path", suggest.clone())
        .await
        .expect("suggest");

    cognee.stop().await;
    let down = tool(&tg, "memory.search", ask).await.expect("fallback");
    assert_eq!(down["answered_by"], "embedded", "{down}");
    assert!(
        down["degraded"]
            .as_str()
            .is_some_and(|d| d.starts_with("Cognee is unavailable")),
        "says why: {down}"
    );
    let found = ids(&down);
    assert_eq!(found.len(), 3, "{down}");
    let integration_ids: Vec<String> = ["payments->ledger", "orders->ledger", "billing->ledger"]
        .iter()
        .map(|k| toolgate::adapters::cognee::datapoint::datapoint_id("integration", k))
        .collect();
    for id in &found {
        assert!(
            integration_ids.contains(id),
            "only ledger integrations: {down}"
        );
    }
    for r in down["results"].as_array().expect("results") {
        assert!(r["score"].as_f64().is_some_and(|s| s > 0.0), "{r}");
        assert!(
            r["text"].as_str().is_some_and(|t| t.contains("kafka")),
            "{r}"
        );
    }
    // The same suggestion from the same memory, now from the embedded index.
    let by_index = tool(&tg, "memory.suggest_integration_path", suggest)
        .await
        .expect("suggest from the index");
    assert_eq!(by_index["answered_by"], "embedded", "{by_index}");
    assert!(by_index["degraded"].is_string(), "{by_index}");
    for field in ["suggested_pattern", "confidence", "basis", "similar"] {
        assert_eq!(by_index[field], by_cognee[field], "{field}: {by_index}");
    }

    // An add made while Cognee is down is queued and findable at once.
    let queued = tool(
        &tg,
        "memory.add_datapoints",
        json!({"datapoints": [integration("search->catalog", "change-data-capture", "succeeded", &["debezium"])]}),
    )
    .await
    .expect("queued");
    assert_eq!(queued["status"], "queued", "{queued}");
    let late = tool(
        &tg,
        "memory.search",
        json!({"query": "debezium change data capture into the catalog", "top_k": 1}),
    )
    .await
    .expect("fallback");
    assert_eq!(late["answered_by"], "embedded");
    assert_eq!(
        ids(&late),
        [toolgate::adapters::cognee::datapoint::datapoint_id(
            "integration",
            "search->catalog"
        )],
        "{late}"
    );
    // Without kinds the runbooks answer too.
    let runbook = tool(
        &tg,
        "memory.search",
        json!({"query": "read replica is behind the primary", "top_k": 3}),
    )
    .await
    .expect("fallback");
    assert!(
        runbook["results"]
            .as_array()
            .expect("results")
            .iter()
            .any(|r| r["source"] == "postgres.md#replication-lag"),
        "{runbook}"
    );

    // Back up: Cognee answers again, and the queued add reached it.
    cognee.restart().await;
    let want = file_of("integration", "search->catalog");
    for _ in 0..100 {
        if cognee.stored("governance").contains(&want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cognee.stored("governance").contains(&want));
    let again = tool(&tg, "memory.search", json!({"query": "catalog"}))
        .await
        .expect("search");
    assert_eq!(again["answered_by"], "cognee", "{again}");
}

#[tokio::test]
async fn without_cognee_the_embedded_index_keeps_and_answers_memory() {
    let kube = FakeKube::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let tg = harness::start(
        &kube,
        &format!("{}{}", knowledge_block(), open_policy(dir.path())),
    )
    .await;
    // Offered by default: the embedded index is enough.
    let list = rpc(&tg, ALICE, "tools.list", json!({})).await;
    let listed = list["result"]["tools"].to_string();
    for name in [
        "memory.add_datapoints",
        "memory.search",
        "memory.suggest_integration_path",
    ] {
        assert!(listed.contains(name), "{name} offered by default: {listed}");
    }
    let added = tool(
        &tg,
        "memory.add_datapoints",
        json!({"datapoints": corpus()}),
    )
    .await
    .expect("indexed");
    assert_eq!(added["status"], "indexed", "{added}");
    assert!(
        added["reason"]
            .as_str()
            .is_some_and(|r| r.contains("embedded knowledge index only")),
        "{added}"
    );
    // Adding the same DataPoints again keeps one of each.
    tool(
        &tg,
        "memory.add_datapoints",
        json!({"datapoints": corpus()}),
    )
    .await
    .expect("again");
    let found = tool(
        &tg,
        "memory.search",
        json!({"query": "ledger", "kinds": ["integration", "domain"]}),
    )
    .await
    .expect("search");
    assert_eq!(found["answered_by"], "embedded", "{found}");
    assert!(
        found["degraded"]
            .as_str()
            .is_some_and(|d| d.starts_with("Cognee is not configured")),
        "{found}"
    );
    let mut got = ids(&found);
    got.sort();
    let mut want: Vec<String> = [
        ("domain", "ledger"),
        ("integration", "payments->ledger"),
        ("integration", "orders->ledger"),
        ("integration", "billing->ledger"),
    ]
    .iter()
    .map(|(k, key)| toolgate::adapters::cognee::datapoint::datapoint_id(k, key))
    .collect();
    want.sort();
    assert_eq!(
        got, want,
        "each once, hr->payroll not about the ledger: {found}"
    );
    let suggestion = tool(
        &tg,
        "memory.suggest_integration_path",
        json!({"source": "payments", "target": "ledger", "tags": ["kafka"]}),
    )
    .await
    .expect("suggest");
    assert_eq!(suggestion["answered_by"], "embedded");
    assert_eq!(
        suggestion["suggested_pattern"], "event-streaming",
        "{suggestion}"
    );
    assert_eq!(suggestion["confidence"], 0.43, "{suggestion}");
    // The knowledge tools do not list DataPoints.
    let patterns = tool(
        &tg,
        "knowledge.search_patterns",
        json!({"symptoms": "ledger kafka outbox integration", "limit": 50}),
    )
    .await
    .expect("patterns");
    assert!(!patterns.to_string().contains("datapoint"), "{patterns}");
}
