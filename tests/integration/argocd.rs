//! ArgoCD end to end against the fake ArgoCD (tests/integration/fake_argocd.rs): the read
//! tools, sync held for approval → approved → executed once → seen by the next poll, rollback
//! critical in a prod-like environment, ArgoCD down (breaker, poller backs off, the rest keeps
//! serving), a restart that does not report unchanged applications again, names refused before
//! policy. Intents are read from a real NATS JetStream.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::approvals_api::api;
use crate::daemons::eventually;
use crate::fake_argocd::{FakeArgo, TOKEN, app};
use crate::fake_kube::FakeKube;
use crate::harness::{self, ALICE, BOB, CAROL, Toolgate};
use crate::intents_nats::{Nats, start_nats, stream_messages};
use crate::jsonrpc::call_tool;

fn argocd_yaml(fake: &FakeArgo, extra: &str) -> String {
    format!(
        "argocd:\n  url: {}\n  auth: {{bearer_token: {TOKEN}}}\n  breaker: {{failures: 3, cooldown: 30s}}\n  retry: {{attempts: 1}}\n{extra}",
        fake.url
    )
}

fn apps() -> Vec<Value> {
    vec![
        app("web", "dev", "shop", "Healthy", "Synced"),
        app("api", "dev", "shop", "Degraded", "OutOfSync"),
        app("pay", "production", "payments", "Healthy", "Synced"),
    ]
}

/// The structured answer of a tool call over JSON-RPC (`structuredContent`).
async fn call(tg: &Toolgate, token: &str, tool: &str, args: Value) -> Value {
    let result = call_tool(&tg.url, token, tool, args).await;
    result.get("structuredContent").cloned().unwrap_or(result)
}

#[tokio::test]
async fn argocd_read_tools_answer_and_bad_names_are_refused_before_policy() {
    let kube = FakeKube::start().await;
    let fake = FakeArgo::start(apps()).await;
    let tg = harness::start(&kube, &argocd_yaml(&fake, "  poll: false\n")).await;

    // Offered by default once `argocd:` is configured (and not otherwise: surface.rs).
    let list = crate::jsonrpc::rpc(
        &tg.url,
        ALICE,
        crate::jsonrpc::request(json!(1), "tools.list", json!({})),
    )
    .await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .filter(|n| n.starts_with("argocd."))
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");

    let all = call(&tg, ALICE, "argocd.list_applications", json!({})).await;
    assert_eq!(all["count"], 3, "{all}");
    let dev_degraded = call(
        &tg,
        ALICE,
        "argocd.list_applications",
        json!({"environment": "dev", "health": "degraded"}),
    )
    .await;
    assert_eq!(dev_degraded["count"], 1, "{dev_degraded}");
    assert_eq!(dev_degraded["applications"][0]["name"], "api");
    assert_eq!(dev_degraded["applications"][0]["sync"], "OutOfSync");
    assert_eq!(dev_degraded["untrusted"], true);
    let listed = fake.requests();
    let last = listed.last().expect("a list request");
    assert!(
        last.query.contains("selector=environment%3Ddev"),
        "{last:?}"
    );
    let by_project = call(
        &tg,
        ALICE,
        "argocd.list_applications",
        json!({"project": "payments"}),
    )
    .await;
    assert_eq!(by_project["applications"][0]["name"], "pay", "{by_project}");
    assert_eq!(by_project["count"], 1);

    let one = call(&tg, ALICE, "argocd.get_application", json!({"name": "api"})).await;
    assert_eq!(one["health"], "Degraded", "{one}");
    assert_eq!(one["environment"], "dev");
    assert_eq!(one["project"], "shop");
    assert_eq!(one["last_history_id"], 2);

    let tree = call(
        &tg,
        ALICE,
        "argocd.get_resource_tree",
        json!({"name": "api", "unhealthy": true}),
    )
    .await;
    let kinds: Vec<&str> = tree["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["Deployment", "Pod"], "{tree}");
    assert_eq!(tree["resources"][1]["parent"], "ReplicaSet/api-7d4b9");

    let history = call(
        &tg,
        ALICE,
        "argocd.get_sync_history",
        json!({"name": "web"}),
    )
    .await;
    assert_eq!(history["history"][0]["id"], 2, "newest first: {history}");
    assert_eq!(history["history"][0]["initiated_by"], "automated");
    assert_eq!(history["history"][1]["initiated_by"], "admin");

    let missing = call_tool(
        &tg.url,
        ALICE,
        "argocd.get_application",
        json!({"name": "nope"}),
    )
    .await;
    assert_eq!(missing["isError"], true, "{missing}");
    assert!(
        missing
            .to_string()
            .contains("was not found in ArgoCD (HTTP 404)"),
        "{missing}"
    );

    // Names ArgoCD would read differently never reach policy or ArgoCD.
    let before = fake.requests().len();
    for (tool, args) in [
        ("argocd.get_application", json!({"name": "Web_App"})),
        ("argocd.sync_application", json!({"name": "../web"})),
        (
            "argocd.rollback_application",
            json!({"name": "web/x", "id": 1}),
        ),
    ] {
        let refused = call_tool(&tg.url, ALICE, tool, args).await;
        assert_eq!(refused["isError"], true, "{refused}");
        assert!(
            refused.to_string().contains("DNS-1123 subdomain"),
            "{tool}: {refused}"
        );
        assert!(
            !refused.to_string().contains("approval_required"),
            "{refused}"
        );
    }
    assert_eq!(fake.requests().len(), before, "nothing was sent to ArgoCD");
    let bad_status = call_tool(
        &tg.url,
        ALICE,
        "argocd.list_applications",
        json!({"health": "fine"}),
    )
    .await;
    assert!(
        bad_status
            .to_string()
            .contains("use one of Healthy, Progressing"),
        "{bad_status}"
    );
}

/// Every envelope in the intents stream, in stream order.
async fn stream_envelopes(url: &str) -> Vec<Value> {
    stream_messages(url)
        .await
        .into_iter()
        .map(|(_, e)| e)
        .collect()
}

/// An approval request as BOB (an approver) sees it.
async fn approval(tg: &Toolgate, id: &str) -> Value {
    let (status, view) = api(
        tg,
        "GET",
        &format!("/api/v1/approvals/{id}"),
        Some(BOB),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    view
}

async fn readyz(tg: &Toolgate) -> Value {
    harness::http()
        .get(format!("{}/readyz", tg.url))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json")
}

/// `(after.health, after.sync)` of each health intent of `app`, in order.
fn changes_of(envelopes: &[Value], name: &str) -> Vec<(String, String)> {
    envelopes
        .iter()
        .filter(|e| e["type"] == "RecordHealthCheckRequested" && e["payload"]["name"] == name)
        .map(|e| {
            (
                e["payload"]["after"]["health"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                e["payload"]["after"]["sync"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn assert_no_doubles(envelopes: &[Value]) {
    let mut keys = BTreeMap::new();
    for e in envelopes {
        *keys
            .entry(
                e["idempotency_key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
            .or_insert(0) += 1;
    }
    let doubles: Vec<_> = keys.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubles.is_empty(), "doubles: {doubles:?}");
}

fn intents_yaml(nats: &Nats) -> String {
    format!(
        "intents:\n  sink: nats\n  nats:\n    url: {}\n    timeout_seconds: 1\n",
        nats.url
    )
}

#[tokio::test]
async fn the_poller_emits_changes_once_in_order_and_a_restart_does_not_repeat_them() {
    let nats = start_nats().await;
    let kube = FakeKube::start().await;
    let fake = FakeArgo::start(apps()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!(
        "store:\n  url: sqlite://{}\n",
        dir.path().join("tg.db").display()
    );
    let config = format!(
        "{}{}{store}",
        argocd_yaml(
            &fake,
            "  poll_interval: 300ms\n  environments: [dev, production]\n"
        ),
        intents_yaml(&nats)
    );
    let tg = harness::start(&kube, &config).await;
    eventually(
        20,
        "the first health intents of every application",
        || async {
            let got = stream_envelopes(&nats.url).await;
            ["web", "api", "pay"]
                .iter()
                .all(|a| changes_of(&got, a).len() == 1)
        },
    )
    .await;
    fake.set_state("api", "Progressing", "Synced");
    eventually(20, "api's change", || async {
        changes_of(&stream_envelopes(&nats.url).await, "api").len() == 2
    })
    .await;
    fake.set_state("api", "Healthy", "Synced");
    eventually(20, "api healthy", || async {
        changes_of(&stream_envelopes(&nats.url).await, "api").len() == 3
    })
    .await;
    let got = stream_envelopes(&nats.url).await;
    assert_eq!(
        changes_of(&got, "api"),
        [
            ("Degraded".to_string(), "OutOfSync".to_string()),
            ("Progressing".into(), "Synced".into()),
            ("Healthy".into(), "Synced".into())
        ],
        "in order"
    );
    let last = got
        .iter()
        .rev()
        .find(|e| e["type"] == "RecordHealthCheckRequested" && e["payload"]["name"] == "api")
        .expect("api intent");
    assert_eq!(
        last["payload"]["before"],
        json!({"health": "Progressing", "sync": "Synced"})
    );
    assert_eq!(last["payload"]["environment"], "dev");
    assert_eq!(last["payload"]["kind"], "Application");
    assert_eq!(last["source"], "toolgate/argocd");
    let fleet: Vec<&Value> = got
        .iter()
        .filter(|e| {
            e["type"] == "RecordFleetStateRequested" && e["payload"]["environment"] == "dev"
        })
        .collect();
    assert!(fleet.len() >= 3, "a fleet state per cycle: {}", fleet.len());
    let first = &fleet[0]["payload"];
    assert_eq!(first["applications"], 2, "{first}");
    assert_eq!(first["health"], json!({"Degraded": 1, "Healthy": 1}));
    assert_eq!(first["out_of_sync"], json!(["api"]));
    assert_eq!(first["degraded"], json!(["api"]));
    assert_no_doubles(&got);
    assert_eq!(changes_of(&got, "web").len(), 1, "unchanged: reported once");

    // Restart on the same store: unchanged applications are not reported again.
    drop(tg);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = stream_envelopes(&nats.url).await;
    let tg = harness::start(&kube, &config).await;
    fake.set_state("web", "Degraded", "Synced");
    eventually(20, "web's change after the restart", || async {
        changes_of(&stream_envelopes(&nats.url).await, "web").len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let after = stream_envelopes(&nats.url).await;
    assert_eq!(
        changes_of(&after, "api").len(),
        3,
        "api unchanged since the restart"
    );
    assert_eq!(changes_of(&after, "pay").len(), 1);
    assert!(after.len() > before.len());
    assert_no_doubles(&after);

    let ready = readyz(&tg).await;
    assert_eq!(
        ready["integrations"]["argocd/poller"]["state"], "ok",
        "{ready}"
    );
    assert!(
        ready["integrations"]["argocd/poller"]["last_poll_at"].is_string(),
        "{ready}"
    );
    assert_eq!(ready["integrations"]["argocd"]["state"], "ok", "{ready}");
    let metrics = tg.metrics().await;
    assert!(
        metrics.contains("toolgate_argocd_polls_total{outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("toolgate_argocd_applications{environment=\"production\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_sync_is_held_shows_its_diff_runs_once_when_approved_and_the_next_poll_sees_it() {
    let nats = start_nats().await;
    let kube = FakeKube::start().await;
    let fake = FakeArgo::start(apps()).await;
    let config = format!(
        "{}{}",
        argocd_yaml(&fake, "  poll_interval: 300ms\n"),
        intents_yaml(&nats)
    );
    let tg = harness::start(&kube, &config).await;
    let held = call(
        &tg,
        ALICE,
        "argocd.sync_application",
        json!({"name": "api"}),
    )
    .await;
    assert_eq!(held["status"], "approval_required", "{held}");
    let id = held["approval_id"].as_str().expect("id").to_string();
    let path = format!("/api/v1/approvals/{id}");
    let (status, view) = api(&tg, "GET", &path, Some(BOB), None).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let preview = &view["preview"];
    let summary = preview["summary"].as_str().unwrap_or_default();
    assert!(
        summary.starts_with(
            "would sync application api (OutOfSync, Degraded) to its target (1111111)"
        ) && summary.contains("2 resources differ (0 to create, 2 to change"),
        "{summary}"
    );
    let diff = preview["diff"].as_str().unwrap_or_default();
    assert!(
        diff.contains("-  replicas: 2") && diff.contains("+  replicas: 3"),
        "{diff}"
    );
    assert!(diff.contains("live Deployment api/api"), "{diff}");
    assert!(
        !diff.contains("c2VjcmV0LXZhbHVl") && !diff.contains("bmV3LXNlY3JldA=="),
        "no Secret values: {diff}"
    );
    assert_eq!(
        preview["detail"]["dry_run"][0],
        "Deployment api/api: Synced deployment.apps/web configured (dry run)",
        "{preview}"
    );
    assert_eq!(view["target"]["environment"], "dev");
    assert_eq!(
        fake.posts("/applications/api/sync", false).len(),
        0,
        "nothing ran"
    );
    assert_eq!(
        fake.posts("/applications/api/sync", true).len(),
        1,
        "one dry run"
    );

    let (status, done) = api(&tg, "POST", &format!("{path}/approve"), Some(BOB), None).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    eventually(10, "the approved sync ran", || async {
        fake.posts("/applications/api/sync", false).len() == 1
    })
    .await;
    let (_, view) = api(&tg, "GET", &path, Some(BOB), None).await;
    assert_eq!(view["state"], "executed", "{view}");
    assert_eq!(view["result"]["phase"], "Running", "{view}");
    // The controller finishes the sync; the next poll reports it.
    fake.set_state("api", "Healthy", "Synced");
    eventually(20, "the poll saw the synced application", || async {
        changes_of(&stream_envelopes(&nats.url).await, "api").last()
            == Some(&("Healthy".to_string(), "Synced".to_string()))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.posts("/applications/api/sync", false).len(),
        1,
        "executed once"
    );
    assert_no_doubles(&stream_envelopes(&nats.url).await);

    // A server that refuses dry runs still shows approvers the diff.
    fake.refuse_dry_runs();
    fake.set_state("web", "Healthy", "OutOfSync");
    let held = call(
        &tg,
        ALICE,
        "argocd.sync_application",
        json!({"name": "web", "prune": true}),
    )
    .await;
    let id = held["approval_id"].as_str().expect("id").to_string();
    let view = approval(&tg, &id).await;
    assert!(
        view["preview"]["detail"]["dry_run_unavailable"]
            .as_str()
            .unwrap_or_default()
            .contains("HTTP 501"),
        "{view}"
    );
    assert!(
        view["preview"]["diff"]
            .as_str()
            .unwrap_or_default()
            .contains("+  replicas: 3"),
        "{view}"
    );
}

#[tokio::test]
async fn a_rollback_is_critical_in_a_prod_like_environment_only() {
    let kube = FakeKube::start().await;
    let fake = FakeArgo::start(apps()).await;
    let tg = harness::start(&kube, &argocd_yaml(&fake, "  poll: false\n")).await;
    let request = |name: &'static str, id: i64| {
        let url = tg.url.clone();
        async move {
            call_tool(
                &url,
                ALICE,
                "argocd.rollback_application",
                json!({"name": name, "id": id}),
            )
            .await
        }
    };
    let prod = request("pay", 1).await;
    let prod = prod.get("structuredContent").cloned().unwrap_or(prod);
    assert_eq!(prod["status"], "approval_required", "{prod}");
    let view = approval(&tg, prod["approval_id"].as_str().unwrap_or_default()).await;
    assert_eq!(view["required_approvals"], 2, "{view}");
    assert_eq!(
        view["rule"], "default.yaml#argocd-rollback-in-prod-like-environments",
        "{view}"
    );
    assert_eq!(view["target"]["environment"], "production");
    assert!(
        view["preview"]["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("from 1111111 to history 1 (revision 0000000"),
        "{view}"
    );

    let dev = request("web", 1).await;
    let dev = dev.get("structuredContent").cloned().unwrap_or(dev);
    let dev_id = dev["approval_id"].as_str().unwrap_or_default().to_string();
    let view = approval(&tg, &dev_id).await;
    assert_eq!(view["required_approvals"], 1, "{view}");
    // An id not in the history is refused before policy, naming the ids there are.
    let bad = request("web", 9).await;
    assert!(
        bad.to_string()
            .contains("has no history entry 9; its ids are 1, 2"),
        "{bad}"
    );

    // Approved: the rollback runs once; ArgoCD's refusal (auto-sync on) reads as ArgoCD's.
    let (status, _) = api(
        &tg,
        "POST",
        &format!("/api/v1/approvals/{dev_id}/approve"),
        Some(CAROL),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    eventually(10, "the rollback ran", || async {
        fake.posts("/applications/web/rollback", false).len() == 1
    })
    .await;
    assert_eq!(
        fake.posts("/applications/web/rollback", false)[0].body["id"],
        1
    );
    fake.set_auto_sync("api");
    let held = call(
        &tg,
        ALICE,
        "argocd.rollback_application",
        json!({"name": "api", "id": 1}),
    )
    .await;
    let id = held["approval_id"].as_str().unwrap_or_default().to_string();
    let view = approval(&tg, &id).await;
    assert!(
        view["preview"]["summary"]
            .as_str()
            .unwrap_or_default()
            .starts_with("would fail: auto-sync is on for api"),
        "{view}"
    );
    api(
        &tg,
        "POST",
        &format!("/api/v1/approvals/{id}/approve"),
        Some(BOB),
        None,
    )
    .await;
    eventually(10, "the refused rollback is recorded", || async {
        let view = approval(&tg, &id).await;
        view.to_string()
            .contains("rollback cannot be initiated when auto-sync is enabled")
    })
    .await;
}

#[tokio::test]
async fn argocd_down_opens_the_breaker_the_poller_backs_off_and_the_rest_keeps_serving() {
    let kube = crate::mcp::seeded_fake().await;
    let fake = FakeArgo::start(apps()).await;
    let tg = harness::start(&kube, &argocd_yaml(&fake, "  poll_interval: 100ms\n")).await;
    eventually(10, "a first poll", || async {
        fake.requests()
            .iter()
            .any(|r| r.path == "/api/v1/applications")
    })
    .await;
    fake.set_down(true);
    let down_at = fake.requests().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let polls = fake.requests().len() - down_at;
    // Without backing off: 30 cycles in 3 s; the breaker opens after 3 failures and stops the
    // rest from going out at all.
    assert!(polls <= 3, "{polls} requests reached a down ArgoCD");
    let ready = readyz(&tg).await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["integrations"]["argocd"]["state"], "down", "{ready}");
    assert_eq!(
        ready["integrations"]["argocd/poller"]["state"], "degraded",
        "{ready}"
    );
    assert!(
        ready["integrations"]["argocd/poller"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("circuit open"),
        "{ready}"
    );
    let metrics = tg.metrics().await;
    assert!(
        metrics.contains("toolgate_argocd_polls_total{outcome=\"failed\"}"),
        "{metrics}"
    );

    // ArgoCD's tools fail fast saying so; other tools keep answering.
    let started = std::time::Instant::now();
    let argo = call_tool(&tg.url, ALICE, "argocd.list_applications", json!({})).await;
    assert_eq!(argo["isError"], true);
    assert!(
        argo.to_string().contains("ArgoCD is down: circuit open"),
        "{argo}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    let pods = call_tool(
        &tg.url,
        ALICE,
        "k8s.list_resources",
        json!({"kind": "pods", "namespace": "shop"}),
    )
    .await;
    assert_ne!(pods["isError"], true, "{pods}");
}

#[tokio::test]
async fn argocd_projects_limit_every_tool() {
    let kube = FakeKube::start().await;
    let fake = FakeArgo::start(apps()).await;
    let tg = harness::start(
        &kube,
        &argocd_yaml(&fake, "  poll: false\n  projects: [shop]\n"),
    )
    .await;
    let all = call(&tg, ALICE, "argocd.list_applications", json!({})).await;
    assert_eq!(all["count"], 2, "only project shop: {all}");
    let other = call_tool(
        &tg.url,
        ALICE,
        "argocd.list_applications",
        json!({"project": "payments"}),
    )
    .await;
    assert!(
        other.to_string().contains(
            "is in ArgoCD project `payments`, which toolgate does not serve (argocd.projects: shop)"
        ),
        "{other}"
    );
    let sent = fake.requests().len();
    for (tool, args) in [
        ("argocd.get_application", json!({"name": "pay"})),
        ("argocd.get_resource_tree", json!({"name": "pay"})),
        ("argocd.sync_application", json!({"name": "pay"})),
    ] {
        let refused = call_tool(&tg.url, ALICE, tool, args).await;
        assert_eq!(refused["isError"], true, "{tool}: {refused}");
        assert!(
            refused
                .to_string()
                .contains("application `pay` is in ArgoCD project `payments`"),
            "{tool}: {refused}"
        );
    }
    let reads: Vec<String> = fake.requests()[sent..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        reads.iter().all(|r| r == "GET /api/v1/applications/pay"),
        "only the application itself was read: {reads:?}"
    );
}

#[tokio::test]
async fn a_session_login_yields_the_token_once_and_a_refused_login_says_so() {
    let kube = FakeKube::start().await;
    let fake = FakeArgo::start(apps()).await;
    let session = |password: &str| {
        format!(
            "argocd:\n  url: {}\n  session: {{username: admin, password: {password}}}\n  poll: false\n",
            fake.url
        )
    };
    let tg = harness::start(&kube, &session("s3cret")).await;
    for _ in 0..2 {
        let all = call(&tg, ALICE, "argocd.list_applications", json!({})).await;
        assert_eq!(all["count"], 3, "{all}");
    }
    let logins = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/session")
        .count();
    assert_eq!(logins, 1, "the session's token is kept");
    drop(tg);

    let tg = harness::start(&kube, &session("wrong")).await;
    let refused = call_tool(&tg.url, ALICE, "argocd.list_applications", json!({})).await;
    assert_eq!(refused["isError"], true, "{refused}");
    let text = refused.to_string();
    assert!(
        text.contains(
            "the session login as `admin` was refused (HTTP 401): Invalid username or password"
        ) && !text.contains("wrong"),
        "{text}"
    );
}
