//! The Kubernetes watch + poll signal source against the fake API server (watch streams with
//! bookmarks, 410 Expired, dropped streams, changes no watch hears of) and a real NATS
//! JetStream: what arrives on `sre.domain.intents.v1`, how often, in which order.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::daemons::eventually;
use crate::fake_kube::{FakeKube, objects};
use crate::harness::{self, ALICE, Toolgate};
use crate::intents_nats::{Nats, start_nats, stream_messages};
use crate::jsonrpc::call_tool;

/// toolgate config: intents to NATS, the watch on `shop-*` with this poll interval.
fn watch_config(nats: &Nats, poll: &str, extra: &str) -> String {
    format!(
        "intents:\n  sink: nats\n  nats:\n    url: {}\n    timeout_seconds: 1\n\
         kubernetes:\n  watch:\n    namespaces: [\"shop-*\"]\n    resource_types: [pods, deployments, services, events]\n    poll_interval: {poll}\n    event_dedup_window: 10m\n{extra}",
        nats.url
    )
}

/// Every envelope in the JetStream stream, in stream order.
async fn stored(nats: &Nats) -> Vec<Value> {
    stream_messages(&nats.url)
        .await
        .into_iter()
        .map(|(_, envelope)| envelope)
        .collect()
}

/// NATS, a fake cluster with deployment `app` of `replicas` pods in `ns`, and a toolgate
/// watching it (reconcile every `poll`) whose watch is connected.
async fn watching(ns: &str, app: &str, replicas: usize, poll: &str) -> (Nats, FakeKube, Toolgate) {
    let nats = start_nats().await;
    let fake = FakeKube::start().await;
    fake.seed_deployment(ns, app, replicas);
    let tg = harness::start(&fake, &watch_config(&nats, poll, "")).await;
    watch_connected(&tg, "fake").await;
    (nats, fake, tg)
}

async fn assert_metric(tg: &Toolgate, line: &str) {
    let metrics = tg.metrics().await;
    assert!(metrics.contains(line), "{line} not in {metrics}");
}

/// The stored envelopes of one type.
async fn of_type(nats: &Nats, kind: &str) -> Vec<Value> {
    stored(nats)
        .await
        .into_iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

/// Waits until the stream holds `n` envelopes of `kind`, then a little longer to see no more
/// come; returns them.
async fn exactly(nats: &Nats, kind: &str, n: usize) -> Vec<Value> {
    eventually(30, &format!("{n} {kind} in JetStream"), || async {
        of_type(nats, kind).await.len() >= n
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = of_type(nats, kind).await;
    assert_eq!(got.len(), n, "{got:#?}");
    let keys: BTreeSet<&str> = got
        .iter()
        .filter_map(|e| e["idempotency_key"].as_str())
        .collect();
    assert_eq!(keys.len(), n, "no doubles: {got:#?}");
    got
}

async fn readyz(tg: &Toolgate) -> (u16, Value) {
    let resp = harness::http()
        .get(format!("{}/readyz", tg.url))
        .send()
        .await
        .expect("GET /readyz");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON"))
}

async fn watch_connected(tg: &Toolgate, cluster: &str) {
    eventually(20, &format!("the watch of {cluster} connected"), || async {
        readyz(tg).await.1["integrations"][format!("kubernetes_watch/{cluster}")]["watch_connected"]
            == true
    })
    .await;
}

/// GET requests to `path`: watches (`watch=true`) or lists.
fn requests(fake: &FakeKube, path: &str, watches: bool) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == path && r.query.contains("watch=") == watches)
        .count()
}

fn pods(fake: &FakeKube, ns: &str) -> Vec<String> {
    fake.list("v1", "Pod", Some(ns))
        .iter()
        .filter_map(|p| p.pointer("/metadata/name").and_then(Value::as_str))
        .map(String::from)
        .collect()
}

fn crash(p: &mut Value) {
    *p = objects::crash_looping(p.clone(), 3);
}

fn out_of_memory(p: &mut Value) {
    crash(p);
    p["status"]["containerStatuses"][0]["lastState"] =
        json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}});
}

/// The `(name, before status, after status)` of health intents.
fn changes(envelopes: &[Value]) -> Vec<(String, Value, String)> {
    envelopes
        .iter()
        .map(|e| {
            let p = &e["payload"];
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["before"]["status"].clone(),
                p["after"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn health_changes_arrive_once_in_order_and_a_dropped_watch_resumes_without_a_list() {
    let nats = start_nats().await;
    let fake = FakeKube::start().await;
    fake.seed_deployment("shop-a", "web", 2);
    fake.seed_deployment("other", "web", 1);
    let tg = harness::start(&fake, &watch_config(&nats, "1h", "")).await;
    watch_connected(&tg, "fake").await;
    eventually(10, "the pods watch open", || async {
        requests(&fake, "/api/v1/pods", true) > 0
    })
    .await;
    let (lists_before, watches_before) = (
        requests(&fake, "/api/v1/pods", false),
        requests(&fake, "/api/v1/pods", true),
    );

    let shop = pods(&fake, "shop-a");
    let pod = shop[0].clone();
    let original = fake.get("v1", "Pod", Some("shop-a"), &pod).expect("pod");
    fake.modify("v1", "Pod", Some("shop-a"), &pod, crash);
    // Not a watched namespace: nothing.
    let elsewhere = pods(&fake, "other");
    fake.modify("v1", "Pod", Some("other"), &elsewhere[0], crash);
    let first = exactly(&nats, "RecordHealthCheckRequested", 1).await;
    let payload = &first[0]["payload"];
    assert_eq!(payload["cluster"], "fake");
    assert_eq!(payload["namespace"], "shop-a");
    assert_eq!(payload["kind"], "Pod");
    assert_eq!(payload["name"], pod.as_str());
    assert_eq!(payload["before"]["status"], "Ready");
    assert_eq!(payload["after"]["status"], "CrashLoopBackOff");
    assert_eq!(payload["healthy"], false);
    assert!(
        payload["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("CrashLoopBackOff"),
        "{payload}"
    );
    assert!(
        payload["observed_at"]
            .as_str()
            .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok())
    );
    assert_eq!(first[0]["source"], "toolgate/kubernetes");

    // The API server ends every watch; the next change arrives through the resumed watch.
    fake.drop_watches();
    fake.modify("v1", "Pod", Some("shop-a"), &pod, out_of_memory);
    fake.modify("v1", "Pod", Some("shop-a"), &pod, |p| {
        p["status"] = original["status"].clone();
    });
    fake.modify("apps/v1", "Deployment", Some("shop-a"), "web", |d| {
        d["status"]["availableReplicas"] = json!(1);
        d["status"]["unavailableReplicas"] = json!(1);
    });
    let all = exactly(&nats, "RecordHealthCheckRequested", 4).await;
    let of_pod: Vec<_> = changes(&all)
        .into_iter()
        .filter(|(name, _, _)| *name == pod)
        .collect();
    assert_eq!(
        of_pod,
        [
            (pod.clone(), json!("Ready"), "CrashLoopBackOff".to_string()),
            (
                pod.clone(),
                json!("CrashLoopBackOff"),
                "OOMKilled".to_string()
            ),
            (pod.clone(), json!("OOMKilled"), "Ready".to_string()),
        ],
        "in the order the API server changed it"
    );
    let deployment = &all
        .iter()
        .find(|e| e["payload"]["kind"] == "Deployment")
        .expect("the deployment's change")["payload"];
    assert_eq!(deployment["kind"], "Deployment");
    assert_eq!(deployment["after"]["status"], "ReplicasUnavailable");
    assert_eq!(deployment["after"]["reason"], "1/2 available");
    assert_eq!(
        requests(&fake, "/api/v1/pods", false),
        lists_before,
        "the watch resumed from its resourceVersion: no list"
    );
    assert!(requests(&fake, "/api/v1/pods", true) > watches_before);

    let (status, ready) = readyz(&tg).await;
    assert_eq!(status, 200);
    let entry = &ready["integrations"]["kubernetes_watch/fake"];
    assert_eq!(entry["state"], "ok", "{entry}");
    assert!(entry["last_event_at"].is_string(), "{entry}");
    assert!(
        entry["streams"]["pods"] == true && entry["streams"]["events"] == true,
        "{entry}"
    );
    assert_metric(
        &tg,
        "toolgate_k8s_watch_connected{cluster=\"fake\",resource=\"pods\"} 1",
    )
    .await;
    assert_metric(&tg, "toolgate_k8s_signal_intents_total{cluster=\"fake\"} 4").await;
}

#[tokio::test]
async fn warning_events_become_one_alert_per_object_and_reason_within_the_window() {
    let (nats, fake, _tg) = watching("shop-a", "web", 1, "1h").await;
    let pod = fake
        .get("v1", "Pod", Some("shop-a"), &pods(&fake, "shop-a")[0])
        .expect("pod");
    let mut first = objects::event(
        &pod,
        "Warning",
        "BackOff",
        "Back-off restarting failed container",
    );
    first["count"] = json!(4);
    fake.insert(first);
    // The same object and reason again (another Event object): the same alert.
    let mut again = objects::event(&pod, "Warning", "BackOff", "Back-off restarting, again");
    again["count"] = json!(5);
    fake.insert(again);
    fake.insert(objects::event(
        &pod,
        "Warning",
        "Unhealthy",
        "Readiness probe failed",
    ));
    fake.insert(objects::event(
        &pod,
        "Normal",
        "Pulled",
        "Container image pulled",
    ));
    let alerts = exactly(&nats, "IngestAlertRequested", 2).await;
    let reasons: Vec<&str> = alerts
        .iter()
        .filter_map(|a| a["payload"]["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["BackOff", "Unhealthy"]);
    let backoff = &alerts[0]["payload"];
    assert_eq!(backoff["cluster"], "fake");
    assert_eq!(backoff["count"], 4);
    assert_eq!(
        backoff["involved_object"],
        json!({"kind": "Pod", "namespace": "shop-a", "name": pod["metadata"]["name"]})
    );
    assert!(
        backoff["last_timestamp"]
            .as_str()
            .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()),
        "{backoff}"
    );
    assert_eq!(backoff["labels"]["alertname"], "BackOff");
    assert_eq!(backoff["status"], "firing");
}

#[tokio::test]
async fn a_410_relists_and_reports_only_what_changed() {
    let (nats, fake, tg) = watching("shop-a", "web", 3, "1h").await;
    let names = pods(&fake, "shop-a");
    fake.modify("v1", "Pod", Some("shop-a"), &names[0], crash);
    exactly(&nats, "RecordHealthCheckRequested", 1).await;
    let lists_before = requests(&fake, "/api/v1/pods", false);

    // etcd compacts; a change is lost on the way; the watch ends. Resuming from the old
    // resourceVersion is answered 410 Expired: the watcher lists again.
    fake.compact();
    fake.modify_unwatched("v1", "Pod", Some("shop-a"), &names[1], crash);
    fake.drop_watches();
    let all = exactly(&nats, "RecordHealthCheckRequested", 2).await;
    assert_eq!(
        changes(&all),
        [
            (
                names[0].clone(),
                json!("Ready"),
                "CrashLoopBackOff".to_string()
            ),
            (
                names[1].clone(),
                json!("Ready"),
                "CrashLoopBackOff".to_string()
            ),
        ],
        "the re-list reports the lost change once and the known one not again"
    );
    let lists_after = requests(&fake, "/api/v1/pods", false);
    assert_eq!(lists_after, lists_before + 1, "one re-list after the 410");
    assert_metric(
        &tg,
        "toolgate_k8s_watch_errors_total{cluster=\"fake\",resource=\"pods\"}",
    )
    .await;
}

#[tokio::test]
async fn a_change_no_watch_heard_of_is_caught_by_the_reconcile() {
    let (nats, fake, tg) = watching("shop-b", "api", 2, "1s").await;
    let names = pods(&fake, "shop-b");
    fake.modify_unwatched("v1", "Pod", Some("shop-b"), &names[1], |p| {
        *p = objects::crash_looping(p.clone(), 1);
        p["status"]["containerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "ImagePullBackOff"}});
    });
    let got = exactly(&nats, "RecordHealthCheckRequested", 1).await;
    assert_eq!(
        changes(&got),
        [(
            names[1].clone(),
            json!("Ready"),
            "ImagePullBackOff".to_string()
        )]
    );
    // Further reconciles see the same state: nothing more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(of_type(&nats, "RecordHealthCheckRequested").await.len(), 1);
    let entry = readyz(&tg).await.1["integrations"]["kubernetes_watch/fake"].clone();
    assert!(entry["last_reconcile_at"].is_string(), "{entry}");
    assert_eq!(entry["last_reconcile_error"], Value::Null, "{entry}");
    assert_metric(
        &tg,
        "toolgate_k8s_reconciles_total{cluster=\"fake\",outcome=\"ok\"}",
    )
    .await;
}

#[tokio::test]
async fn a_restart_reports_what_changed_while_it_was_down_and_nothing_else() {
    let nats = start_nats().await;
    let fake = FakeKube::start().await;
    fake.seed_deployment("shop-a", "web", 2);
    let store = format!(
        "store:\n  url: sqlite://{}\n",
        nats.dir.path().join("shared.db").display()
    );
    let names = pods(&fake, "shop-a");
    {
        let tg = harness::start(&fake, &watch_config(&nats, "1h", &store)).await;
        watch_connected(&tg, "fake").await;
        fake.modify("v1", "Pod", Some("shop-a"), &names[0], crash);
        exactly(&nats, "RecordHealthCheckRequested", 1).await;
    }
    // Down for a while; one pod changes meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    fake.modify("v1", "Pod", Some("shop-a"), &names[1], out_of_memory);
    let tg = harness::start(&fake, &watch_config(&nats, "1h", &store)).await;
    watch_connected(&tg, "fake").await;
    let all = exactly(&nats, "RecordHealthCheckRequested", 2).await;
    assert_eq!(
        changes(&all),
        [
            (
                names[0].clone(),
                json!("Ready"),
                "CrashLoopBackOff".to_string()
            ),
            (names[1].clone(), json!("Ready"), "OOMKilled".to_string()),
        ]
    );
}

/// A kubeconfig whose only cluster listens nowhere (port 1 refuses connections).
fn dead_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("down.kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\ncurrent-context: down\nclusters:\n- name: down\n  cluster: {server: 'http://127.0.0.1:1'}\n\
         contexts:\n- name: down\n  context: {cluster: down, user: u}\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .expect("write kubeconfig");
    path
}

#[tokio::test]
async fn with_one_cluster_down_the_other_serves_and_signals_and_readyz_is_degraded() {
    let nats = start_nats().await;
    let fake = FakeKube::start().await;
    fake.seed_deployment("shop-a", "web", 1);
    let dead = dead_kubeconfig(nats.dir.path());
    let tg = harness::start_edited(&fake, &watch_config(&nats, "1s", ""), |yaml| {
        // The second cluster after `fake` (the first, so the default).
        yaml.replacen(
            "      context: fake\n",
            &format!(
                "      context: fake\n    - name: down\n      kubeconfig: {}\n",
                dead.display()
            ),
            1,
        )
    })
    .await;
    watch_connected(&tg, "fake").await;

    let listed = call_tool(&tg.url, ALICE, "k8s.list_clusters", json!({})).await;
    let rows = listed["structuredContent"]["clusters"].clone();
    assert_eq!(rows[0]["name"], "fake", "{listed}");
    assert_eq!(rows[0]["default"], true);
    assert_eq!(rows[0]["reachable"], true);
    assert!(
        rows[0]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with('v')),
        "{rows}"
    );
    assert_eq!(rows[1]["name"], "down");
    assert_eq!(rows[1]["reachable"], false);
    assert!(
        rows[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("cluster `down`")),
        "{rows}"
    );
    let one = call_tool(
        &tg.url,
        ALICE,
        "k8s.list_clusters",
        json!({"cluster": "down"}),
    )
    .await;
    assert_eq!(
        one["structuredContent"]["clusters"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Tools on the cluster that answers work and say so; on the other they fail naming it.
    let good = call_tool(
        &tg.url,
        ALICE,
        "k8s.list_resources",
        json!({"kind": "pods", "namespace": "shop-a", "cluster": "fake"}),
    )
    .await;
    assert_eq!(good["structuredContent"]["cluster"], "fake", "{good}");
    let bad = call_tool(
        &tg.url,
        ALICE,
        "k8s.list_resources",
        json!({"kind": "pods", "namespace": "shop-a", "cluster": "down"}),
    )
    .await;
    assert_eq!(bad["isError"], true, "{bad}");
    assert!(bad.to_string().contains("cluster `down`"), "{bad}");

    // Signals of the healthy cluster still flow.
    let pod = pods(&fake, "shop-a")[0].clone();
    fake.modify("v1", "Pod", Some("shop-a"), &pod, crash);
    let got = exactly(&nats, "RecordHealthCheckRequested", 1).await;
    assert_eq!(got[0]["payload"]["cluster"], "fake");

    let (status, ready) = readyz(&tg).await;
    assert_eq!(
        status, 200,
        "a cluster that is down does not fail readiness"
    );
    assert_eq!(ready["status"], "degraded", "{ready}");
    let i = &ready["integrations"];
    assert_eq!(i["kubernetes/fake"]["state"], "ok", "{ready}");
    assert_eq!(i["kubernetes/down"]["state"], "down", "{ready}");
    assert_eq!(i["kubernetes_watch/fake"]["state"], "ok", "{ready}");
    assert_eq!(i["kubernetes_watch/down"]["state"], "degraded", "{ready}");
    assert_eq!(
        i["kubernetes_watch/down"]["watch_connected"], false,
        "{ready}"
    );
}

/// The watch's health changes reach the knowledge index in the process (no topic needed): a
/// crash-looping pod opens a health episode `knowledge.similar_incidents` finds, and its
/// recovery closes it.
#[tokio::test]
async fn a_pods_health_episode_is_searchable_and_closed_when_it_recovers() {
    let nats = start_nats().await;
    let fake = FakeKube::start().await;
    fake.seed_deployment("shop-k", "web", 1);
    let tg = harness::start(
        &fake,
        &watch_config(&nats, "1h", "knowledge:\n  poll_interval: 200ms\n"),
    )
    .await;
    watch_connected(&tg, "fake").await;
    eventually(10, "the pods watch open", || async {
        requests(&fake, "/api/v1/pods", true) > 0
    })
    .await;
    let pod = pods(&fake, "shop-k")[0].clone();
    let original = fake.get("v1", "Pod", Some("shop-k"), &pod).expect("pod");
    fake.modify("v1", "Pod", Some("shop-k"), &pod, crash);
    let episode = |url: String| async move {
        let out = call_tool(
            &url,
            ALICE,
            "knowledge.similar_incidents",
            json!({"description": "pod web crash looping CrashLoopBackOff in shop-k"}),
        )
        .await;
        out["structuredContent"]["incidents"]
            .as_array()
            .and_then(|l| {
                l.iter()
                    .find(|i| {
                        i["id"]
                            .as_str()
                            .is_some_and(|id| id.starts_with("health:kubernetes:fake:Pod:shop-k/"))
                    })
                    .cloned()
            })
    };
    let url = tg.url.clone();
    eventually(20, "the open episode", || {
        let url = url.clone();
        async move {
            episode(url)
                .await
                .is_some_and(|e| e["status"] == "CrashLoopBackOff")
        }
    })
    .await;
    fake.modify("v1", "Pod", Some("shop-k"), &pod, |p| {
        p["status"] = original["status"].clone();
    });
    eventually(20, "the episode recovered", || {
        let url = url.clone();
        async move {
            episode(url)
                .await
                .is_some_and(|e| e["status"] == "recovered")
        }
    })
    .await;
}
