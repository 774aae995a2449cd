//! Budgeted lists through the real server against the fake API server: pages sized to the
//! output budget (`limit` + `continue`), cursors that resume at the API server's page of the
//! cut, and an expired continue token (410) that restarts the list with a note.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::fake_kube::{FakeKube, RecordedRequest};
use crate::harness;
use crate::jsonrpc::call_tool;

/// The server's default output budget (`tools.default_max_bytes`).
const DEFAULT_MAX_BYTES: usize = 16384;
const RESTARTED: &str = "the continue token expired; the list restarted from the beginning";

/// `tools.call` of `k8s.list_resources`; the structured answer.
async fn list(url: &str, args: Value) -> Value {
    let answer = call_tool(url, "k8s.list_resources", args).await;
    assert_eq!(answer["isError"], json!(false), "{answer}");
    let sc = answer["structuredContent"].clone();
    assert!(sc.get("_anchors").is_none(), "anchors are the core's: {sc}");
    sc
}

/// The list requests for `path` the fake received from `from` on.
fn lists(fake: &FakeKube, from: usize, path: &str) -> Vec<RecordedRequest> {
    fake.requests()
        .into_iter()
        .skip(from)
        .filter(|r| r.method == "GET" && r.path == path)
        .collect()
}

fn param<'a>(r: &'a RecordedRequest, key: &str) -> Option<&'a str> {
    r.query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn limit(r: &RecordedRequest) -> usize {
    param(r, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("a list without limit: {}", r.query))
}

fn metadata_only(r: &RecordedRequest) -> bool {
    r.accept
        .as_deref()
        .is_some_and(|a| a.contains("as=PartialObjectMetadataList"))
}

/// `namespace/name` of each row: compact rows by their columns (the namespace column only when
/// all namespaces are listed), full objects by their metadata.
fn keys(sc: &Value, namespace: &str) -> Vec<String> {
    let columns: Vec<&str> = sc["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let at = |c: &str| columns.iter().position(|x| *x == c);
    sc["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            if r.is_object() {
                let m = &r["metadata"];
                let ns = m["namespace"].as_str().unwrap_or(namespace);
                return format!("{ns}/{}", m["name"].as_str().unwrap_or(""));
            }
            let ns = at("namespace")
                .and_then(|i| r[i].as_str())
                .unwrap_or(namespace);
            let name = at("name").and_then(|i| r[i].as_str()).unwrap_or("");
            format!("{ns}/{name}")
        })
        .collect()
}

fn rows(sc: &Value) -> usize {
    sc["rows"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_default_budget_list_of_a_large_namespace_reads_about_what_fits() {
    let fake = FakeKube::start().await;
    fake.seed_pods(5000, &["big"]);
    let tg = harness::start(&fake, "").await;
    let path = "/api/v1/namespaces/big/pods";

    let from = fake.requests().len();
    let first = list(&tg.url, json!({"kind": "pods", "namespace": "big"})).await;
    let size = serde_json::to_vec(&first).expect("json").len();
    assert!(size <= DEFAULT_MAX_BYTES, "{size} bytes over the budget");
    assert_eq!(first["truncated"], json!(true));
    let cursor = first["cursor"].as_str().expect("a cursor").to_string();
    let sent = lists(&fake, from, path);
    assert_eq!(sent.len(), 1, "one request fills the budget: {sent:?}");
    let (asked, got) = (limit(&sent[0]), rows(&first));
    // Before: a page of 500 for every budget. Now about what fits, never less.
    assert!(
        asked >= got && asked < 2 * got && asked < 500,
        "asked for {asked} pods to answer {got}"
    );
    assert!(param(&sent[0], "continue").is_none());

    // Resuming inside that page: the delivered part once more as metadata only (for the API
    // server's token at the cut), then one budget-sized page from there. No more, however deep.
    let mut cursor = Some(cursor);
    let mut delivered = got;
    for step in 0..3 {
        let from = fake.requests().len();
        let sc = list(
            &tg.url,
            json!({"kind": "pods", "namespace": "big", "cursor": cursor}),
        )
        .await;
        let sent = lists(&fake, from, path);
        assert_eq!(sent.len(), 2, "step {step}: {sent:?}");
        assert!(metadata_only(&sent[0]) && !metadata_only(&sent[1]));
        assert_eq!(
            param(&sent[0], "continue").is_some(),
            step > 0,
            "the first answer's page began at the start"
        );
        assert!(param(&sent[1], "continue").is_some());
        let n = rows(&sc);
        assert!(
            limit(&sent[0]) <= 2 * n && limit(&sent[1]) < 2 * n,
            "step {step}: read {} + {} pods to answer {n}",
            limit(&sent[0]),
            limit(&sent[1])
        );
        delivered += n;
        cursor = sc["cursor"].as_str().map(String::from);
    }
    assert!(delivered < 5000 && cursor.is_some());

    // Later answers of the kind ask for about what fits: what a row costs is remembered.
    let from = fake.requests().len();
    let again = list(&tg.url, json!({"kind": "pods", "namespace": "big"})).await;
    let sent = lists(&fake, from, path);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (asked, got) = (limit(&sent[0]), rows(&again));
    assert!(
        asked >= got && asked * 5 <= got * 6,
        "asked for {asked} pods to answer {got}"
    );
}

#[tokio::test]
async fn a_cursor_walk_returns_every_pod_exactly_once() {
    let fake = FakeKube::start().await;
    fake.seed_pods(3000, &["a", "a-b", "c"]);
    let expected = fake.list("v1", "Pod", None).len();
    let tg = harness::start(&fake, "").await;
    let walk = |args: Value| {
        let url = tg.url.clone();
        async move {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            let mut args = args;
            let mut answers = 0;
            loop {
                let sc = list(&url, args.clone()).await;
                for k in keys(&sc, "") {
                    *seen.entry(k).or_default() += 1;
                }
                answers += 1;
                assert!(answers < 1000, "the walk does not end");
                match sc.get("cursor").and_then(Value::as_str) {
                    Some(c) => args["cursor"] = json!(c),
                    None => break,
                }
            }
            (seen, answers)
        }
    };
    let from = fake.requests().len();
    let (seen, answers) = walk(json!({"kind": "pods", "max_bytes": 8192})).await;
    assert_eq!(seen.len(), expected, "every pod seen");
    assert!(seen.values().all(|&n| n == 1), "no pod seen twice");
    assert!(
        answers > 10,
        "{answers} answers for {expected} pods in 8 KiB"
    );
    let sent = lists(&fake, from, "/api/v1/pods");
    assert!(
        sent.len() <= 2 * answers,
        "{} requests for {answers} answers",
        sent.len()
    );
    let read: usize = sent.iter().map(limit).sum();
    assert!(
        read <= 3 * expected,
        "{read} pods asked for to walk {expected}"
    );

    // The same with a selector (no remainingItemCount) and with full objects.
    let web = fake
        .list("v1", "Pod", None)
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == json!("web"))
        .count();
    let (seen, _) =
        walk(json!({"kind": "pods", "label_selector": "app=web", "max_bytes": 4096})).await;
    assert_eq!(seen.len(), web);
    assert!(seen.values().all(|&n| n == 1), "no pod seen twice");
    let in_c = fake.list("v1", "Pod", Some("c")).len();
    let (seen, answers) =
        walk(json!({"kind": "pods", "namespace": "c", "output": "json", "max_bytes": 65536})).await;
    assert_eq!(seen.len(), in_c);
    assert!(seen.values().all(|&n| n == 1), "no pod seen twice");
    assert!(
        answers > 2,
        "{in_c} whole pods in {answers} answers of 64 KiB"
    );
}

#[tokio::test]
async fn an_expired_continue_token_restarts_the_list_with_a_note() {
    let fake = FakeKube::start().await;
    fake.seed_pods(600, &["shop"]);
    let tg = harness::start(&fake, "").await;
    let args = json!({"kind": "pods", "namespace": "shop", "max_bytes": 4096});
    let first = list(&tg.url, args.clone()).await;
    assert!(first.get("note").is_none());
    let second = list(
        &tg.url,
        json!({"kind": "pods", "namespace": "shop", "max_bytes": 4096, "cursor": first["cursor"]}),
    )
    .await;
    let third_cursor = second["cursor"].clone();
    assert_ne!(keys(&second, "shop")[0], keys(&first, "shop")[0]);

    // The API server compacts its history: the tokens of this walk are gone.
    fake.compact();
    let from = fake.requests().len();
    let restarted = list(
        &tg.url,
        json!({"kind": "pods", "namespace": "shop", "max_bytes": 4096, "cursor": third_cursor}),
    )
    .await;
    assert_eq!(restarted["note"], json!(RESTARTED));
    assert_eq!(
        keys(&restarted, "shop")[..3],
        keys(&first, "shop")[..3],
        "from the beginning"
    );
    let sent = lists(&fake, from, "/api/v1/namespaces/shop/pods");
    assert!(
        param(&sent[0], "continue").is_some(),
        "the old token was tried"
    );
    assert!(
        param(&sent[1], "continue").is_none(),
        "then a new list: {sent:?}"
    );
    // The restarted answer's cursor goes on from there.
    let next = list(
        &tg.url,
        json!({"kind": "pods", "namespace": "shop", "max_bytes": 4096, "cursor": restarted["cursor"]}),
    )
    .await;
    assert!(next.get("note").is_none());
    let mut both = keys(&restarted, "shop");
    both.extend(keys(&next, "shop"));
    let all: Vec<String> = fake
        .list("v1", "Pod", Some("shop"))
        .iter()
        .map(|p| format!("shop/{}", p["metadata"]["name"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(both, all[..both.len()], "in order, none lost or repeated");

    // The tool's own `continue` argument expires the same way.
    let token = list(
        &tg.url,
        json!({"kind": "pods", "namespace": "shop", "limit": 10}),
    )
    .await["continue"]
        .as_str()
        .expect("continue")
        .to_string();
    fake.compact();
    let by_arg = list(
        &tg.url,
        json!({"kind": "pods", "namespace": "shop", "limit": 10, "continue": token}),
    )
    .await;
    assert_eq!(by_arg["note"], json!(RESTARTED));
    assert_eq!(keys(&by_arg, "shop"), all[..10]);
}
