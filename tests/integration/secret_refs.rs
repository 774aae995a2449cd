//! Secret references (`secret_ref`, `kubeconfig_secret_ref`) against a real OpenBao (the
//! harness of `openbao.rs`): an upstream's credential read from KV v2, rotated in OpenBao and
//! picked up after `openbao.refresh` and at once on the upstream's 401; `#field` selection and a
//! missing field; OpenBao down at start; a cluster whose kubeconfig lives in OpenBao (and a new
//! client when it changes); no value in logs, `/readyz`, errors or the store.

use std::time::Duration;

use serde_json::{Value, json};
use toolgate::adapters::http::{SecretRefProvider, SecretRefSpec};

use crate::fake_kube::{FakeKube, objects};
use crate::fake_obs;
use crate::harness::{self, ALICE, http};
use crate::jsonrpc::call_tool;
use crate::openbao::{World, process_with};

/// `kv put secret/{path}` with the root token, as an operator rotating a value would.
async fn kv_put(w: &World, path: &str, data: Value) {
    w.bao
        .ok(
            "POST",
            &format!("secret/data/{path}"),
            json!({ "data": data }),
        )
        .await;
}

/// `tools.call` over JSON-RPC as ALICE: the `result` object.
async fn call(url: &str, tool: &str, arguments: Value) -> Value {
    call_tool(url, ALICE, tool, arguments).await
}

fn dashboards() -> Value {
    json!([{"uid": "svc", "title": "Service Overview", "tags": [], "folderTitle": "SRE"}])
}

/// The bearer tokens Grafana received on `/api/search`, in order.
fn tokens_seen(grafana: &fake_obs::Fake) -> Vec<String> {
    grafana
        .requests_to("/api/search")
        .iter()
        .filter_map(|r| r.header("authorization"))
        .map(|h| h.trim_start_matches("Bearer ").to_string())
        .collect()
}

fn unique(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

/// The running binary (debug logs in a file) with Grafana's API key as a secret reference:
/// the value reaches Grafana; rotated in OpenBao it is used after `openbao.refresh` without a
/// restart; rotated again, Grafana's 401 makes toolgate read it at once and send again. No value
/// is in the log, `/readyz`, a tool's error or the store.
#[tokio::test]
async fn a_grafana_key_from_openbao_is_used_rotated_and_read_again_on_a_401() {
    let w = World::start("1h", "24h").await;
    let first = unique("glsa-first");
    kv_put(&w, "platform/grafana-api-key", json!({"value": first})).await;
    let grafana = fake_obs::grafana(&first, dashboards()).await;

    let extra = format!(
        "{}observability:\n  grafana:\n    url: {}\n    auth: {{bearer_token: {{secret_ref: platform/grafana-api-key}}}}\n",
        w.block("  refresh: 2s\n"),
        grafana.url
    );
    let mut served = process_with(&w, &extra).await;
    let (url, log) = (served.url.clone(), served.log.clone());
    let search = || call(&url, "obs.get_dashboard_url", json!({"title": "service"}));

    let r = search().await;
    assert_eq!(r["isError"], json!(false), "{r}");
    assert_eq!(tokens_seen(&grafana), vec![first.clone()]);

    // Rotated in OpenBao (and Grafana): after the 2 s refresh the first request carries it.
    let second = unique("glsa-second");
    kv_put(&w, "platform/grafana-api-key", json!({"value": second})).await;
    grafana.set("token", json!(second));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = search().await;
    assert_eq!(r["isError"], json!(false), "{r}");
    assert_eq!(
        tokens_seen(&grafana),
        vec![first.clone(), second.clone()],
        "read again after the refresh, before any refusal"
    );

    // Rotated again and used at once (within the refresh): Grafana's 401 makes toolgate read
    // the reference again and send once more.
    let third = unique("glsa-third");
    kv_put(&w, "platform/grafana-api-key", json!({"value": third})).await;
    grafana.set("token", json!(third));
    let r = search().await;
    assert_eq!(r["isError"], json!(false), "{r}");
    assert_eq!(
        tokens_seen(&grafana),
        vec![first.clone(), second.clone(), second.clone(), third.clone()],
        "the refused value, then the one read again"
    );

    // A value Grafana refuses and OpenBao cannot improve: the tool says so, without the value.
    let wrong = unique("glsa-wrong");
    grafana.set("token", json!(wrong));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = search().await;
    assert_eq!(r["isError"], json!(true), "{r}");
    let message = r["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("Grafana refused toolgate's credentials (HTTP 401"),
        "{message}"
    );
    let readyz = http()
        .get(format!("{url}/readyz"))
        .send()
        .await
        .expect("readyz")
        .text()
        .await
        .expect("readyz text");

    let _ = served.child.kill().await;
    let text = std::fs::read_to_string(&log).expect("log text");
    assert!(
        text.contains("its source had a new value, sending again"),
        "the 401 hook is logged: {text}"
    );
    let store = std::fs::read_dir(served.dir.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("toolgate.db"))
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default()).into_owned())
        .collect::<String>();
    assert!(
        store.contains("obs.get_dashboard_url"),
        "the audit is in the store"
    );
    for value in [&first, &second, &third] {
        for (what, haystack) in [
            ("log", &text),
            ("readyz", &readyz),
            ("error", &message),
            ("store (audit)", &store),
            ("answer", &r.to_string()),
        ] {
            assert!(!haystack.contains(value.as_str()), "{value} in the {what}");
        }
    }
}

/// `#field` picks a field; a missing field and an ambiguous reference say what is there.
#[tokio::test]
async fn a_reference_picks_its_field_and_a_missing_one_is_named() {
    let w = World::start("1h", "24h").await;
    kv_put(
        &w,
        "platform/jira",
        json!({"user": "sre-bot", "token": "jira-t0ken"}),
    )
    .await;
    kv_put(&w, "platform/single", json!({"api_key": "only-0ne"})).await;
    let refs = w.adapter("").references();
    let read = |text: &str| {
        let spec = SecretRefSpec::parse("ticketing.jira.auth.password", text).expect("spec");
        let source = refs.source(&spec);
        async move {
            match source {
                Ok(s) => s
                    .current()
                    .await
                    .map(|v| v.expose().to_string())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            }
        }
    };
    assert_eq!(
        read("platform/jira#token").await.as_deref(),
        Ok("jira-t0ken")
    );
    assert_eq!(
        read("secret/platform/jira#user").await.as_deref(),
        Ok("sre-bot")
    );
    assert_eq!(read("platform/single").await.as_deref(), Ok("only-0ne"));
    assert_eq!(
        read("platform/jira#password").await,
        Err("ticketing.jira.auth.password (openbao secret/platform/jira#password): secret/platform/jira has no field `password`; its fields: token, user".into())
    );
    assert_eq!(
        read("platform/jira").await,
        Err("ticketing.jira.auth.password (openbao secret/platform/jira): secret/platform/jira has the fields token, user; name one after `#`, e.g. secret/platform/jira#token".into())
    );
    let missing = read("platform/nope#x").await.expect_err("missing");
    assert!(
        missing.starts_with("ticketing.jira.auth.password (openbao secret/platform/nope#x): secret/platform/nope was not found in OpenBao (HTTP 404)"),
        "{missing}"
    );
    let denied = read("other/db").await.expect_err("outside the policy");
    assert!(
        denied.contains("OpenBao denied toolgate permission to read secret/other/db (HTTP 403)"),
        "{denied}"
    );
    assert_eq!(
        refs.source(&SecretRefSpec::parse("x", "platform/../a").expect("spec"))
            .err(),
        Some("secret path `secret/platform/../a`: contains a `..` segment; name the path directly, without `.` or `..`".into())
    );
}

/// OpenBao unreachable when toolgate starts: the server starts and serves; the tool whose
/// credential is a reference names the credential and says OpenBao is down.
#[tokio::test]
async fn openbao_down_at_start_names_the_credential_and_the_rest_serves() {
    let fake = FakeKube::start().await;
    fake.insert(objects::configmap("shop", "settings", &[("a", "b")]));
    let grafana = fake_obs::grafana("never-sent", dashboards()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let tg = harness::start(
        &fake,
        &format!(
            "openbao:\n  address: http://{closed}\n  auth: {{token: dev-token}}\n  retry: {{attempts: 1}}\n\
             observability:\n  grafana:\n    url: {}\n    auth: {{bearer_token: {{secret_ref: 'platform/grafana-api-key#value'}}}}\n",
            grafana.url
        ),
    )
    .await;
    let r = call(&tg.url, "obs.get_dashboard_url", json!({"title": "x"})).await;
    assert_eq!(r["isError"], json!(true), "{r}");
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("observability.grafana.auth.bearer_token (openbao secret/platform/grafana-api-key#value): OpenBao is down"),
        "{message}"
    );
    assert!(grafana.requests().is_empty(), "nothing went to Grafana");
    let r = call(
        &tg.url,
        "k8s.get_resource",
        json!({"kind": "ConfigMap", "name": "settings", "namespace": "shop"}),
    )
    .await;
    assert_eq!(r["isError"], json!(false), "the rest serves: {r}");
    let ready = http()
        .get(format!("{}/readyz", tg.url))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
}

/// A cluster whose kubeconfig is in OpenBao: k8s tools reach the API server it names; the
/// kubeconfig rotated to another API server is used after the refresh (a new client).
#[tokio::test]
async fn a_cluster_kubeconfig_from_openbao_is_loaded_and_a_new_one_picked_up() {
    let w = World::start("1h", "24h").await;
    w.fake
        .insert(objects::configmap("shop", "first", &[("where", "one")]));
    let other = FakeKube::start().await;
    other.insert(objects::configmap("shop", "second", &[("where", "two")]));
    let kubeconfig = std::fs::read_to_string(&w.fake.kubeconfig).expect("kubeconfig");
    kv_put(
        &w,
        "platform/clusters/prod",
        json!({"kubeconfig": kubeconfig, "note": "prod"}),
    )
    .await;
    let tg = harness::start_edited(&w.fake, &w.block("  refresh: 1s\n"), |yaml| {
        yaml.replacen(
            "  clusters:\n",
            "  clusters:\n    - name: prod\n      kubeconfig_secret_ref: 'platform/clusters/prod#kubeconfig'\n      context: fake\n",
            1,
        )
    })
    .await;
    let get = |name: &'static str| {
        call(
            &tg.url,
            "k8s.get_resource",
            json!({"cluster": "prod", "kind": "ConfigMap", "name": name, "namespace": "shop"}),
        )
    };
    let r = get("first").await;
    assert_eq!(r["isError"], json!(false), "{r}");
    assert!(r["structuredContent"].to_string().contains("one"), "{r}");

    let rotated = std::fs::read_to_string(&other.kubeconfig).expect("kubeconfig");
    kv_put(
        &w,
        "platform/clusters/prod",
        json!({"kubeconfig": rotated, "note": "prod"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = get("second").await;
    assert_eq!(
        r["isError"],
        json!(false),
        "answered by the new API server: {r}"
    );
    assert!(r["structuredContent"].to_string().contains("two"), "{r}");

    // A value that is not a kubeconfig: the error names the reference, not the text.
    kv_put(
        &w,
        "platform/clusters/prod",
        json!({"kubeconfig": "not-a-kubeconfig-s3cr3t", "note": "prod"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = get("second").await;
    assert_eq!(r["isError"], json!(true), "{r}");
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(
            "the value of openbao secret/platform/clusters/prod#kubeconfig is not a kubeconfig"
        ),
        "{message}"
    );
    assert!(!message.contains("s3cr3t"), "{message}");
}
