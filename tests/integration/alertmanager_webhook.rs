//! `POST /webhooks/alertmanager`: real payloads (captured from Alertmanager 0.25) become intents
//! in the outbox; bad input is refused with the reason; duplicates are dropped, also across a
//! restart; and a real Alertmanager delivering (and re-delivering) to toolgate yields exactly one
//! intent per alert state.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use toolgate::store::{IntentRecord, Store};

use crate::daemons::{Daemon, dead_port, eventually, free_port, require};
use crate::fake_kube::FakeKube;
use crate::harness::{self, Toolgate};

const FIRING: &str = include_str!("../fixtures/alertmanager/alertmanager_webhook.json");
const RESOLVED: &str = include_str!("../fixtures/alertmanager/alertmanager_webhook_resolved.json");
const FROM_RULE: &str =
    include_str!("../fixtures/alertmanager/alertmanager_webhook_from_prometheus_rule.json");
const TOKEN: &str = "am-webhook-secret-0123";

async fn post(tg: &Toolgate, body: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = harness::http()
        .post(format!("{}/webhooks/alertmanager", tg.url))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("post webhook");
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

async fn all_intents(store: &Store) -> Vec<IntentRecord> {
    store
        .list_intents(None, 10_000)
        .await
        .expect("list intents")
}

fn webhook_config(extra: &str) -> String {
    format!(
        "webhooks:\n  alertmanager:\n    auth: {{bearer_token: {TOKEN}}}\n    max_body_bytes: 4096\n    auto_create_incident:\n      enabled: true\n      min_severity: high\n{extra}"
    )
}

#[tokio::test]
async fn fixtures_become_intents_and_bad_input_is_refused_with_the_reason() {
    let fake = FakeKube::start().await;
    let tg = harness::start(&fake, &webhook_config("")).await;
    let store = Store::connect(&tg.store_url).await.expect("store");

    for fixture in [FIRING, RESOLVED, FROM_RULE] {
        let (status, body) = post(&tg, fixture, Some(TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["new"], 1, "{body}");
    }
    let intents = all_intents(&store).await;
    let kinds: Vec<&str> = intents.iter().map(|r| r.intent_type.as_str()).collect();
    // The critical firing alert also asks for an incident; resolved and `info` do not.
    assert_eq!(
        kinds,
        [
            "IngestAlertRequested",
            "CreateIncidentRequested",
            "IngestAlertRequested",
            "IngestAlertRequested"
        ]
    );
    let e = &intents[0].envelope;
    assert_eq!(e["type"], "IngestAlertRequested");
    assert_eq!(e["version"], 1);
    assert_eq!(e["source"], "toolgate/alertmanager");
    assert_eq!(e["correlation_id"], "alert:32c16fb6eca3387b");
    assert_eq!(
        e["idempotency_key"],
        "alertmanager:32c16fb6eca3387b:2026-11-23T16:39:30Z:firing"
    );
    assert!(e["id"].as_str().is_some_and(|id| id.len() == 36), "{e}");
    assert!(
        e["occurred_at"]
            .as_str()
            .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()),
        "{e}"
    );
    let p = &e["payload"];
    assert_eq!(p["fingerprint"], "32c16fb6eca3387b");
    assert_eq!(p["status"], "firing");
    assert_eq!(p["labels"]["service"], "checkout");
    assert_eq!(p["annotations"]["summary"], "5xx ratio above 5%");
    assert_eq!(p["startsAt"], "2026-11-23T16:39:30Z");
    assert_eq!(p["endsAt"], Value::Null);
    assert_eq!(p["generatorURL"], "http://127.0.0.1:9090/graph?g0.expr=up");
    assert_eq!(p["receiver"], "webhook");
    assert_eq!(
        p["groupKey"],
        "{}:{alertname=\"HighErrorRate\", service=\"checkout\"}"
    );
    let incident = &intents[1].envelope;
    assert_eq!(incident["payload"]["severity"], "critical");
    assert_eq!(
        incident["payload"]["alert_idempotency_key"],
        e["idempotency_key"]
    );
    assert_eq!(intents[2].envelope["payload"]["status"], "resolved");
    assert_eq!(
        intents[2].envelope["payload"]["endsAt"],
        "2026-11-23T16:40:41Z"
    );

    // A redelivery inside the window: 200, dropped.
    let (status, body) = post(&tg, FIRING, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["new"].clone(), body["duplicates"].clone()),
        (json!(0), json!(1))
    );

    let fixture: Value = serde_json::from_str(FIRING).expect("fixture");
    let edited = |f: &dyn Fn(&mut Value)| {
        let mut v = fixture.clone();
        f(&mut v);
        v.to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        ("{\"version\": \"4\",".into(), "body is not JSON"),
        (
            edited(&|v| v["version"] = json!("3")),
            "version: \"3\" is not supported",
        ),
        (
            edited(&|v| {
                if let Some(a) = v["alerts"][0].as_object_mut() {
                    a.remove("fingerprint");
                }
            }),
            "alerts[0].fingerprint: missing",
        ),
        (
            edited(&|v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("receiver");
                }
            }),
            "receiver: missing",
        ),
        (
            edited(&|v| v["alerts"][0]["startsAt"] = json!(1_700_000_000)),
            "alerts[0].startsAt: must be a string",
        ),
    ];
    for (body, reason) in &cases {
        let (status, answer) = post(&tg, body, Some(TOKEN)).await;
        assert_eq!(status, 400, "{reason}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{error} should say {reason}");
    }

    let (status, _) = post(&tg, FIRING, None).await;
    assert_eq!(status, 401);
    let (status, _) = post(&tg, FIRING, Some("wrong-token")).await;
    assert_eq!(status, 401);

    let mut big: Value = serde_json::from_str(FIRING).expect("fixture");
    big["commonAnnotations"]["padding"] = json!("x".repeat(5000));
    let (status, answer) = post(&tg, &big.to_string(), Some(TOKEN)).await;
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("4096")
    );

    // Nothing refused reached the outbox.
    assert_eq!(all_intents(&store).await.len(), 4);
    // The embedded sink logs them and marks them sent.
    eventually(10, "the log sink took every intent", || async {
        store.count_intents().await.expect("count") == (0, 4)
    })
    .await;
    let sent = all_intents(&store).await;
    assert!(sent.iter().all(|r| r.sink.as_deref() == Some("log")));
}

#[tokio::test]
async fn dedup_records_and_pending_intents_survive_a_restart() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("toolgate.db");
    // A NATS sink nobody listens on: intents stay pending.
    let (_dead_socket, dead) = dead_port();
    let extra = webhook_config(&format!(
        "store:\n  url: sqlite://{}\nintents:\n  sink: nats\n  nats:\n    url: nats://127.0.0.1:{dead}\n    timeout_seconds: 1\n",
        db.display()
    ));
    let tg = harness::start(&fake, &extra).await;
    let (status, body) = post(&tg, FIRING, Some(TOKEN)).await;
    assert_eq!((status, body["intents"].clone()), (200, json!(2)));
    let store_url = tg.store_url.clone();
    drop(tg);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let tg = harness::start(&fake, &extra).await;
    let (status, body) = post(&tg, FIRING, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(body["duplicates"], 1, "{body}");
    let (_, body) = post(&tg, RESOLVED, Some(TOKEN)).await;
    assert_eq!(body["new"], 1, "{body}");
    let store = Store::connect(&store_url).await.expect("store");
    let intents = all_intents(&store).await;
    assert_eq!(intents.len(), 3);
    assert!(intents.iter().all(|r| r.state == "pending"));
    eventually(15, "the failed delivery is recorded", || async {
        let head = &all_intents(&store).await[0];
        head.attempts > 0
            && head
                .last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("nats:"))
    })
    .await;

    // The CLI reads the same outbox.
    let config = dir.path().join("cli.yaml");
    std::fs::write(&config, format!("store:\n  url: {store_url}\n")).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["intents", "list", "--state", "pending", "--config"])
        .arg(&config)
        .env_remove("TOOLGATE_CONFIG")
        .output()
        .expect("run toolgate intents list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.contains("alertmanager:32c16fb6eca3387b:2026-11-23T16:39:30Z:resolved"),
        "{text}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["intents", "list", "--state", "sent", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");
}

/// Alertmanager 0.25 with a webhook receiver pointing at toolgate (bearer auth from its
/// http_config); short group/repeat intervals so it re-sends within seconds.
#[tokio::test]
async fn real_alertmanager_yields_one_intent_per_alert_state_despite_resends() {
    require("prometheus-alertmanager", "prometheus-alertmanager");
    let fake = FakeKube::start().await;
    let tg = harness::start(&fake, &webhook_config("")).await;
    let store = Store::connect(&tg.store_url).await.expect("store");
    let dir = tempfile::tempdir().expect("tempdir");
    let am_port = free_port();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: toolgate\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 2s\n\
             receivers:\n  - name: toolgate\n    webhook_configs:\n      - url: {}/webhooks/alertmanager\n        send_resolved: true\n        http_config:\n          authorization:\n            type: Bearer\n            credentials: {TOKEN}\n",
            tg.url
        ),
    )
    .expect("write alertmanager.yml");
    let mut am = Daemon::spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
        &dir.path().join("alertmanager.log"),
    );
    let am_url = format!("http://127.0.0.1:{am_port}");
    am.wait_http(&format!("{am_url}/-/ready")).await;

    let client = harness::http();
    let starts = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(30);
    let alert = |instance: &str, ends: Option<jiff::Timestamp>| {
        let mut a = json!({
            "labels": {"alertname": "DiskFull", "instance": instance, "severity": "warning"},
            "annotations": {"summary": format!("disk full on {instance}")},
            "startsAt": starts.to_string(),
            "generatorURL": "http://prometheus.example/graph",
        });
        if let Some(end) = ends {
            a["endsAt"] = json!(end.to_string());
        }
        a
    };
    let resp = client
        .post(format!("{am_url}/api/v2/alerts"))
        .json(&json!([alert("db-1", None), alert("db-2", None)]))
        .send()
        .await
        .expect("post alerts");
    assert!(resp.status().is_success(), "{}", resp.status());

    let notifications = || async {
        let text = client
            .get(format!("{am_url}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find(|l| l.starts_with("alertmanager_notifications_total{integration=\"webhook\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // At least three deliveries of the same two firing alerts (first + repeats).
    eventually(30, "Alertmanager re-sent the firing group", || async {
        notifications().await >= 3.0
    })
    .await;
    let failed = client
        .get(format!("{am_url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        failed
            .lines()
            .any(|l| l == "alertmanager_notifications_failed_total{integration=\"webhook\"} 0"),
        "Alertmanager saw failed deliveries (auth?):\n{}",
        am.log_text()
    );
    let intents = all_intents(&store).await;
    assert_eq!(intents.len(), 2, "one intent per firing alert: {intents:?}");

    // Alertmanager's own fingerprints are what the intents carry.
    let am_alerts: Vec<Value> = client
        .get(format!("{am_url}/api/v2/alerts"))
        .send()
        .await
        .expect("get alerts")
        .json()
        .await
        .expect("alerts json");
    let am_fps: BTreeSet<String> = am_alerts
        .iter()
        .filter_map(|a| a["fingerprint"].as_str().map(String::from))
        .collect();
    let our_fps: BTreeSet<String> = intents
        .iter()
        .filter_map(|r| {
            r.envelope["payload"]["fingerprint"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(am_fps, our_fps);

    // Resolve db-1: its resolution is a new intent, once.
    let resp = client
        .post(format!("{am_url}/api/v2/alerts"))
        .json(&json!([alert(
            "db-1",
            Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1))
        )]))
        .send()
        .await
        .expect("resolve");
    assert!(resp.status().is_success());
    eventually(30, "the resolved alert arrived", || async {
        all_intents(&store)
            .await
            .iter()
            .any(|r| r.envelope["payload"]["status"] == "resolved")
    })
    .await;
    let seen = notifications().await;
    eventually(
        30,
        "Alertmanager sent more after the resolution",
        || async { notifications().await >= seen + 2.0 },
    )
    .await;
    let intents = all_intents(&store).await;
    let states: BTreeSet<(String, String)> = intents
        .iter()
        .map(|r| {
            let p = &r.envelope["payload"];
            (
                p["labels"]["instance"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(intents.len(), 3, "{intents:?}");
    assert_eq!(
        states,
        BTreeSet::from([
            ("db-1".to_string(), "firing".to_string()),
            ("db-1".to_string(), "resolved".to_string()),
            ("db-2".to_string(), "firing".to_string()),
        ])
    );
    // Warning is below min_severity high: no incident requested.
    assert!(
        intents
            .iter()
            .all(|r| r.intent_type == "IngestAlertRequested")
    );
}
