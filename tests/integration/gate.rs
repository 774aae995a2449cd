//! The approval gate end to end: a write tool over MCP is held, approved over REST by another
//! person, executed exactly once against the fake API server, and `approval.status` returns the
//! result; expiry; a SIGKILLed server; two replicas sharing a real PostgreSQL.

use std::process::Stdio;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::service::RoleClient;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::daemons::free_port;
use crate::fake_kube::FakeKube;
use crate::harness::{self, ALICE, BOB, CAROL};
use crate::mcp::{call, seeded_fake, text_of};
use crate::postgres::PgCluster;

pub use crate::approvals_api::{mcp_as as client_as, request_restart};

/// POST /api/v1/approvals/{id}/{action} as `token`: (HTTP status, body).
pub async fn decide(
    url: &str,
    token: &str,
    id: &str,
    action: &str,
    reason: Option<&str>,
) -> (u16, Value) {
    let resp = harness::http()
        .post(format!("{url}/api/v1/approvals/{id}/{action}"))
        .bearer_auth(token)
        .json(&json!({"reason": reason}))
        .send()
        .await
        .expect("REST call");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn get_approval(url: &str, token: &str, id: &str) -> Value {
    harness::http()
        .get(format!("{url}/api/v1/approvals/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET approval")
        .json()
        .await
        .expect("JSON")
}

/// Real (not dry-run) writes the fake API server received for paths containing `path`.
fn real_writes(fake: &FakeKube, method: &str, path: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == method && r.path.contains(path) && !r.query.contains("dryRun"))
        .count()
}

#[tokio::test]
async fn held_write_runs_once_after_another_person_approves_and_status_returns_the_result() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let alice = client_as(&tg.url, ALICE).await;
    let held = call(
        &alice,
        "k8s.rollout_restart",
        json!({"kind": "deployment", "name": "web", "namespace": "shop"}),
    )
    .await;
    let sc = held.structured_content.clone().expect("structured");
    let id = sc["approval_id"].as_str().expect("id").to_string();
    assert_eq!(sc["required_approvals"], json!(1));
    assert_eq!(
        real_writes(&fake, "PATCH", "/deployments/web"),
        0,
        "held, not run"
    );

    let pending = call(&alice, "approval.status", json!({"approval_id": id})).await;
    assert_eq!(
        pending.structured_content.clone().expect("sc")["state"],
        json!("pending")
    );

    // Self-approval is refused even for someone holding the approver role elsewhere.
    let (status, body) = decide(&tg.url, ALICE, &id, "approve", Some("mine")).await;
    assert_eq!(status, 403, "{body}");

    // Alice waits on approval.status while Bob approves.
    let (url, approval) = (tg.url.clone(), id.clone());
    let approver = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        decide(&url, BOB, &approval, "approve", Some("restart is safe")).await
    });
    let waited = call(
        &alice,
        "approval.status",
        json!({"approval_id": id, "wait_seconds": 20}),
    )
    .await;
    let (status, body) = approver.await.expect("approver task");
    assert_eq!(status, 200, "{body}");
    let st = waited.structured_content.clone().expect("sc");
    assert!(
        ["approved", "executing", "executed"].contains(&st["state"].as_str().unwrap_or_default()),
        "{st}"
    );

    let done = call(
        &alice,
        "approval.status",
        json!({"approval_id": id, "wait_seconds": 5}),
    )
    .await;
    let done = done.structured_content.clone().expect("sc");
    assert_eq!(done["state"], json!("executed"), "{done}");
    assert_eq!(done["decisions"][0]["approver_sub"], json!("bob"));
    assert!(
        done["result"].is_object(),
        "the execution result is returned: {done}"
    );
    assert_eq!(
        real_writes(&fake, "PATCH", "/deployments/web"),
        1,
        "executed exactly once"
    );
    let deployment = fake
        .get("apps/v1", "Deployment", Some("shop"), "web")
        .expect("deployment");
    assert!(
        deployment["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string(),
        "the stored call ran: {deployment}"
    );

    // A second approval cannot run it again.
    let (status, _) = decide(&tg.url, CAROL, &id, "approve", Some("me too")).await;
    assert_eq!(status, 409);
    assert_eq!(real_writes(&fake, "PATCH", "/deployments/web"), 1);
    alice.cancel().await.ok();
}

#[tokio::test]
async fn denied_and_expired_requests_never_run() {
    let fake = seeded_fake().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("short.yaml"),
        "rules:\n  - name: read\n    risk: [read]\n    roles: [toolgate.caller]\n    effect: allow\n  - name: write-short\n    risk: [write]\n    roles: [toolgate.caller]\n    effect:\n      require_approval: {approvals: 1, approver_roles: [toolgate.approver], ttl: 2s}\n",
    )
    .expect("policy");
    let tg = harness::start(
        &fake,
        &format!("policies:\n  dir: {}\n", dir.path().display()),
    )
    .await;

    let denied = request_restart(&tg.url, ALICE).await;
    let (status, body) = decide(&tg.url, BOB, &denied, "deny", Some("not during the sale")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], json!("denied"));
    let (status, _) = decide(&tg.url, CAROL, &denied, "approve", Some("late")).await;
    assert_eq!(status, 409);

    let expiring = request_restart(&tg.url, ALICE).await;
    let mut state = Value::Null;
    for _ in 0..50 {
        state = get_approval(&tg.url, BOB, &expiring).await["state"].clone();
        if state == json!("expired") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        state,
        json!("expired"),
        "the sweeper expires requests past their TTL"
    );
    let (status, body) = decide(&tg.url, BOB, &expiring, "approve", Some("too late")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        real_writes(&fake, "PATCH", "/deployments/web"),
        0,
        "nothing ran"
    );
}

struct Server {
    child: tokio::process::Child,
    url: String,
}

async fn spawn_server(config: &std::path::Path, port: u16) -> Server {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_toolgate"));
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--config",
    ])
    .arg(config)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .kill_on_drop(true);
    for (k, _) in std::env::vars() {
        if k.starts_with("TOOLGATE_") {
            cmd.env_remove(k);
        }
    }
    let child = cmd.spawn().expect("spawn toolgate serve");
    let url = format!("http://127.0.0.1:{port}");
    let http = harness::http();
    for _ in 0..200 {
        if http.get(format!("{url}/healthz")).send().await.is_ok() {
            return Server { child, url };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("toolgate serve did not come up on {url}");
}

#[tokio::test]
async fn a_killed_server_loses_nothing_and_runs_nothing_twice() {
    let fake = seeded_fake().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("toolgate.yaml");
    std::fs::write(&config, harness::config_yaml(&fake, dir.path(), "")).expect("config");
    let port = free_port();
    let mut server = spawn_server(&config, port).await;

    let alice = client_as(&server.url, ALICE).await;
    let slow = call(&alice, "k8s.exec_command", json!({"pod": "web-0", "namespace": "shop", "command": ["sleep", "3"], "timeout_seconds": 20})).await;
    let slow_id = slow.structured_content.clone().expect("sc")["approval_id"]
        .as_str()
        .expect("id")
        .to_string();
    let pending_id = request_restart(&server.url, ALICE).await;
    alice.cancel().await.ok();

    // Approve the slow exec: the server is killed while the command runs.
    let url = server.url.clone();
    let sid = slow_id.clone();
    let approving =
        tokio::spawn(async move { decide(&url, BOB, &sid, "approve", Some("go")).await });
    let mut state = Value::Null;
    for _ in 0..100 {
        state = get_approval(&server.url, BOB, &slow_id).await["state"].clone();
        if state == json!("executing") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(state, json!("executing"), "the approved exec is running");
    server.child.start_kill().expect("SIGKILL");
    let _ = server.child.wait().await;
    let _ = approving.await;

    let restarted = spawn_server(&config, port).await;
    let slow_view = get_approval(&restarted.url, BOB, &slow_id).await;
    assert_eq!(slow_view["state"], json!("interrupted"), "{slow_view}");
    let evidence = slow_view["state_reason"].as_str().unwrap_or_default();
    assert!(
        evidence.contains("execution began")
            && evidence.contains("approval completed by Bob (bob)")
            && evidence.contains(slow_view["args_sha256"].as_str().unwrap_or("?")),
        "the evidence is kept: {evidence}"
    );
    let pending_view = get_approval(&restarted.url, BOB, &pending_id).await;
    assert_eq!(
        pending_view["state"],
        json!("pending"),
        "pending requests survive: {pending_view}"
    );
    // The fake records an exec when its command ends (3 s after it started; later on a busy
    // machine): wait for that one, then make sure no second one follows.
    for _ in 0..200 {
        if !fake.execs().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.execs().len(),
        1,
        "an interrupted call is never re-run by itself"
    );

    let (status, body) = decide(
        &restarted.url,
        BOB,
        &pending_id,
        "approve",
        Some("after restart"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], json!("executed"), "{body}");
    assert_eq!(real_writes(&fake, "PATCH", "/deployments/web"), 1);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["audit", "verify", "--config"])
        .arg(&config)
        .output()
        .expect("audit verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact"));
}

#[tokio::test]
async fn two_replicas_on_postgres_execute_a_call_exactly_once() {
    let pg = PgCluster::start();
    let fake = seeded_fake().await;
    let extra = format!(
        "store:\n  url: {}\naudit:\n  hmac_key: {}\n",
        pg.url,
        crate::postgres::AUDIT_KEY
    );
    let a = harness::start(&fake, &extra).await;
    let b = harness::start(&fake, &extra).await;

    let id = request_restart(&a.url, ALICE).await;
    let seen_by_b = get_approval(&b.url, BOB, &id).await;
    assert_eq!(seen_by_b["state"], json!("pending"), "{seen_by_b}");

    let mut tasks = Vec::new();
    for i in 0..harness::APPROVERS {
        let url = if i % 2 == 0 {
            a.url.clone()
        } else {
            b.url.clone()
        };
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            decide(&url, &harness::approver(i), &id, "approve", Some("race")).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (status, body) = t.await.expect("task");
        match status {
            200 => ok += 1,
            409 => {}
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok, 1, "exactly one approval counted");
    assert_eq!(
        real_writes(&fake, "PATCH", "/deployments/web"),
        1,
        "executed exactly once"
    );
    let view = get_approval(&b.url, BOB, &id).await;
    assert_eq!(view["state"], json!("executed"), "{view}");
    assert_eq!(view["decisions"].as_array().map(Vec::len), Some(1));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["audit", "verify"])
        .env("TOOLGATE_STORE_URL", &pg.url)
        .env("TOOLGATE_AUDIT_HMAC_KEY", crate::postgres::AUDIT_KEY)
        .output()
        .expect("audit verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn tampering_with_the_audit_log_is_detected() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let client = client_as(&tg.url, ALICE).await;
    for _ in 0..3 {
        call(
            &client,
            "k8s.list_resources",
            json!({"kind": "pods", "namespace": "shop"}),
        )
        .await;
    }
    client.cancel().await.ok();
    let path = tg.store_url.trim_start_matches("sqlite://").to_string();
    let verify = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
            .args(["audit", "verify"])
            .env("TOOLGATE_STORE_URL", &tg.store_url)
            .output()
            .expect("audit verify")
    };
    assert!(verify().status.success());
    // Edit one record behind toolgate's back, as an intruder with database access would.
    {
        use sqlx::Connection;
        let mut conn = sqlx::sqlite::SqliteConnection::connect(&format!("sqlite://{path}"))
            .await
            .expect("connect");
        sqlx::query("UPDATE audit SET decision = 'denied' WHERE seq = 2")
            .execute(&mut conn)
            .await
            .expect("update");
    }
    let out = verify();
    assert!(!out.status.success(), "a tampered chain fails verification");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("record 2"),
        "the broken record is named: {err}"
    );
}

#[tokio::test]
async fn a_target_changed_since_the_preview_is_not_executed() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let id = request_restart(&tg.url, ALICE).await;
    // Someone scales the deployment after the preview was made.
    let mut live = fake
        .get("apps/v1", "Deployment", Some("shop"), "web")
        .expect("deployment");
    live["spec"]["replicas"] = json!(5);
    fake.insert(live);
    let (status, body) = decide(&tg.url, BOB, &id, "approve", Some("ok")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], json!("failed"), "{body}");
    let reason = body["state_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("target changed since approval"), "{reason}");
    assert_eq!(
        real_writes(&fake, "PATCH", "/deployments/web"),
        0,
        "nothing ran"
    );
}

#[tokio::test]
async fn the_webhook_hears_of_requests_and_decisions() {
    use axum::routing::post;
    let received: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(body): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().expect("lock").push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });

    let fake = seeded_fake().await;
    let tg = harness::start(
        &fake,
        &format!("approvals:\n  webhook_url: {hook}\n  sweep_interval_seconds: 1\n"),
    )
    .await;
    let id = request_restart(&tg.url, ALICE).await;
    let (status, _) = decide(&tg.url, BOB, &id, "approve", Some("fine")).await;
    assert_eq!(status, 200);
    let mut texts = Vec::new();
    for _ in 0..50 {
        texts = received
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|b| b["text"].as_str().map(str::to_string))
            .collect();
        if texts.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        texts
            .iter()
            .any(|t| t.contains("asks to run `k8s.rollout_restart`") && t.contains(&id)),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("Bob approved")),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t.contains("ok")), "{texts:?}");
}

#[derive(Clone, Default)]
struct ProgressLog(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl rmcp::ClientHandler for ProgressLog {
    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.0
            .lock()
            .expect("lock")
            .push(params.message.unwrap_or_default());
    }
}

#[tokio::test]
async fn waiting_on_approval_status_sends_progress_notifications() {
    use rmcp::model::{CallToolRequestParams, NumberOrString, ProgressToken, RequestMetaObject};
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let id = request_restart(&tg.url, ALICE).await;
    let log = ProgressLog::default();
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", tg.url))
        .auth_header(ALICE.to_string());
    let client = log
        .clone()
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("handshake");
    let (url, approval) = (tg.url.clone(), id.clone());
    let approver = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        decide(&url, BOB, &approval, "approve", Some("ok")).await
    });
    let Value::Object(args) = json!({"approval_id": id, "wait_seconds": 30}) else {
        unreachable!()
    };
    let mut params = CallToolRequestParams::new("approval.status").with_arguments(args);
    params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
        NumberOrString::String("wait-1".into()),
    )));
    let result = client.call_tool(params).await.expect("approval.status");
    assert_eq!(approver.await.expect("task").0, 200);
    let state = result.structured_content.clone().expect("sc")["state"].clone();
    assert_ne!(
        state,
        json!("pending"),
        "it answered once the request changed"
    );
    let messages = log.0.lock().expect("lock").clone();
    assert!(
        !messages.is_empty(),
        "progress notifications were sent while waiting"
    );
    assert!(
        messages[0].contains("waiting for approval: pending"),
        "{messages:?}"
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_call_without_a_namespace_is_judged_by_the_namespace_it_will_touch() {
    // The kubeconfig context's namespace is `prod-eu`: a delete that names no namespace
    // deletes there, so the protected-namespace rule (2 approvals) applies.
    let fake = seeded_fake().await;
    fake.insert(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "prod-eu", "labels": {"app": "api"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}},
                              "spec": {"containers": [{"name": "app", "image": "api:1"}]}}}
    }));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("prod.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\ncontexts:\n- name: prod\n  context:\n    cluster: c\n    user: u\n    namespace: prod-eu\nusers:\n- name: u\n  user:\n    token: fake-token\ncurrent-context: prod\n",
            fake.url
        ),
    )
    .expect("kubeconfig");
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(
        &tokens,
        format!("- {{token: {ALICE}, sub: alice, roles: [toolgate.caller]}}\n"),
    )
    .expect("tokens");
    let config = dir.path().join("toolgate.yaml");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::fs::write(
        &config,
        format!(
            "kubernetes:\n  clusters:\n    - name: prod\n      kubeconfig: {}\nstore:\n  url: sqlite://{}\nauth:\n  tokens_file: {}\npolicies:\n  dir: {}\n",
            kubeconfig.display(),
            dir.path().join("t.db").display(),
            tokens.display(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        ),
    )
    .expect("config");
    let cfg = toolgate::config::Config::load_from(Some(&config), &[]).expect("config");
    let token = tokio_util::sync::CancellationToken::new();
    tokio::spawn(toolgate::app::serve_on(listener, cfg, token.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let alice = client_as(&url, ALICE).await;
    let held = call(
        &alice,
        "k8s.delete_resource",
        json!({"kind": "deployment", "name": "api"}),
    )
    .await;
    let sc = held
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("{}", text_of(&held)));
    assert_eq!(sc["status"], json!("approval_required"), "{sc}");
    assert_eq!(
        sc["required_approvals"],
        json!(2),
        "judged as a delete in prod-eu: {sc}"
    );
    alice.cancel().await.ok();
    token.cancel();
}

/// The audit decisions of one approval, oldest first, as the REST API shows them.
async fn audit_decisions(url: &str, id: &str) -> Vec<String> {
    get_approval(url, BOB, id).await["audit"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r["decision"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn an_approver_who_disconnects_mid_execution_still_gets_the_call_executed_and_audited() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let alice = client_as(&tg.url, ALICE).await;
    let held = call(
        &alice,
        "k8s.exec_command",
        json!({"pod": "web-0", "namespace": "shop", "command": ["sleep", "2"], "timeout_seconds": 20}),
    )
    .await;
    let id = held.structured_content.clone().expect("sc")["approval_id"]
        .as_str()
        .expect("id")
        .to_string();
    alice.cancel().await.ok();

    // Bob's client gives up (and closes its connection) while the command runs.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .expect("client");
    let gave_up = impatient
        .post(format!("{}/api/v1/approvals/{id}/approve", tg.url))
        .bearer_auth(BOB)
        .json(&json!({"reason": "go"}))
        .send()
        .await;
    assert!(
        gave_up.is_err(),
        "the approval answer came before the command ended: {gave_up:?}"
    );
    assert_eq!(
        get_approval(&tg.url, BOB, &id).await["state"],
        json!("executing")
    );

    let mut view = Value::Null;
    for _ in 0..100 {
        view = get_approval(&tg.url, BOB, &id).await;
        if view["state"] != json!("executing") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(view["state"], json!("executed"), "{view}");
    assert!(view["result"].is_object(), "{view}");
    assert_eq!(fake.execs().len(), 1, "ran once");
    assert_eq!(
        audit_decisions(&tg.url, &id).await,
        ["approval_requested", "approved", "executed"]
    );
}

#[tokio::test]
async fn stored_arguments_edited_in_the_database_are_not_executed() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let id = request_restart(&tg.url, ALICE).await;
    // Someone with database access points the held restart at another deployment.
    {
        use sqlx::Connection;
        let mut conn = sqlx::sqlite::SqliteConnection::connect(&tg.store_url)
            .await
            .expect("connect");
        sqlx::query(
            "UPDATE approvals SET args = replace(args, '\"web\"', '\"api\"') WHERE id = $1",
        )
        .bind(&id)
        .execute(&mut conn)
        .await
        .expect("update");
    }
    let (status, body) = decide(&tg.url, BOB, &id, "approve", Some("ok")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], json!("failed"), "{body}");
    let reason = body["state_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("do not match the hash"), "{reason}");
    assert_eq!(
        real_writes(&fake, "PATCH", "/deployments/"),
        0,
        "nothing ran"
    );
    assert_eq!(
        audit_decisions(&tg.url, &id).await,
        ["approval_requested", "approved", "execution_refused"]
    );
}

/// An approved exec runs only in the pod the approvers saw: a pod replaced under the same name
/// since (a new UID) is another target, and the command does not run there.
#[tokio::test]
async fn an_approved_exec_runs_only_in_the_pod_the_approvers_saw() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let alice = client_as(&tg.url, ALICE).await;
    let exec = json!({"pod": "web-0", "namespace": "shop", "command": ["true"]});
    let held = call(&alice, "k8s.exec_command", exec.clone()).await;
    let id = held.structured_content.clone().expect("sc")["approval_id"]
        .as_str()
        .expect("held")
        .to_string();
    // The pod is replaced: same name, new UID.
    let mut pod = fake
        .get("v1", "Pod", Some("shop"), "web-0")
        .expect("seeded pod");
    pod["metadata"]["uid"] = json!("");
    fake.insert(pod);
    let (status, body) = decide(&tg.url, BOB, &id, "approve", None).await;
    assert_eq!(status, 200, "{body}");
    let mut view = Value::Null;
    for _ in 0..100 {
        view = get_approval(&tg.url, BOB, &id).await;
        if view["state"] == "failed" || view["state"] == "executed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(view["state"], "failed", "{view}");
    let reason = view["state_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("target changed since approval"), "{reason}");
    assert!(fake.execs().is_empty(), "the command ran in the new pod");

    // The same pod throughout: the approved command runs.
    let held = call(&alice, "k8s.exec_command", exec).await;
    let id = held.structured_content.clone().expect("sc")["approval_id"]
        .as_str()
        .expect("held")
        .to_string();
    let (status, body) = decide(&tg.url, BOB, &id, "approve", None).await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..100 {
        view = get_approval(&tg.url, BOB, &id).await;
        if view["state"] == "failed" || view["state"] == "executed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(view["state"], "executed", "{view}");
    assert_eq!(fake.execs().len(), 1);
}
