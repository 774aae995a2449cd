//! Intents to a real NATS JetStream (`nats-server -js`): they arrive on `sre.domain.intents.v1`
//! with `Nats-Msg-Id` = idempotency key; NATS killed mid-stream and restarted on the same port
//! and store dir loses none and duplicates none.

use std::collections::BTreeSet;
use std::path::Path;

use futures::StreamExt;
use serde_json::{Value, json};
use toolgate::store::Store;

use crate::daemons::{Daemon, eventually, free_port, require};
use crate::fake_kube::FakeKube;
use crate::harness::{self, Toolgate};

const SUBJECT: &str = "sre.domain.intents.v1";
const STREAM: &str = "SRE_DOMAIN_INTENTS";

/// Every message of the intents stream, oldest first: its `Nats-Msg-Id` and the envelope.
pub(crate) async fn stream_messages(url: &str) -> Vec<(String, Value)> {
    let client = async_nats::connect(url).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let Ok(mut stream) = js.get_stream(STREAM).await else {
        return Vec::new();
    };
    let total = stream.info().await.map(|i| i.state.messages).unwrap_or(0);
    if total == 0 {
        return Vec::new();
    }
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer
        .fetch()
        .max_messages(10_000)
        .expires(std::time::Duration::from_secs(2))
        .messages()
        .await
        .expect("fetch");
    let mut out = Vec::new();
    while let Some(msg) = messages.next().await {
        let msg = msg.expect("message");
        let id = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        out.push((
            id,
            serde_json::from_slice(&msg.payload).expect("JSON envelope"),
        ));
        if out.len() as u64 == total {
            break;
        }
    }
    out
}

/// A JetStream server on a free port with its store and log in a temp dir (kept while it runs).
pub(crate) struct Nats {
    pub url: String,
    pub dir: tempfile::TempDir,
    _server: Daemon,
}

/// Starts `nats-server -js` and waits until it listens.
pub(crate) async fn start_nats() -> Nats {
    require("nats-server", "nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut server = nats(port, &dir.path().join("js"), &dir.path().join("nats.log"));
    server.wait_tcp(port).await;
    Nats {
        url: format!("nats://127.0.0.1:{port}"),
        dir,
        _server: server,
    }
}

pub(crate) fn nats(port: u16, store_dir: &Path, log: &Path) -> Daemon {
    Daemon::spawn(
        "nats-server",
        &[
            "-js".into(),
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-sd".into(),
            store_dir.display().to_string(),
        ],
        log,
    )
}

/// One notification with `n` firing alerts, fingerprints `{prefix}-{i}`.
pub(crate) fn notification(prefix: &str, n: usize) -> String {
    let alerts: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "status": "firing",
                "labels": {"alertname": "Burst", "instance": format!("{prefix}-{i}"), "severity": "info"},
                "annotations": {},
                "startsAt": "2026-11-23T16:39:30Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": format!("{prefix}-{i}"),
            })
        })
        .collect();
    json!({
        "version": "4", "receiver": "toolgate", "status": "firing", "groupKey": "{}:{alertname=\"Burst\"}",
        "truncatedAlerts": 0, "externalURL": "http://am", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "alerts": alerts,
    })
    .to_string()
}

pub(crate) async fn post(tg: &Toolgate, body: String) {
    let resp = harness::http()
        .post(format!("{}/webhooks/alertmanager", tg.url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn intents_reach_jetstream_once_each_across_a_nats_crash() {
    require("nats-server", "nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let store_dir = dir.path().join("js");
    let log = dir.path().join("nats.log");
    let mut server = nats(port, &store_dir, &log);
    server.wait_tcp(port).await;
    let url = format!("nats://127.0.0.1:{port}");

    let fake = FakeKube::start().await;
    let tg = harness::start(
        &fake,
        &format!("intents:\n  sink: nats\n  nats:\n    url: {url}\n    timeout_seconds: 1\n"),
    )
    .await;
    let store = Store::connect(&tg.store_url).await.expect("store");

    // A live subscriber sees the first intent on the subject, with its Nats-Msg-Id.
    let client = async_nats::connect(url.as_str()).await.expect("connect");
    let mut live = client.subscribe(SUBJECT).await.expect("subscribe");
    client.flush().await.expect("flush");
    post(&tg, notification("a", 1)).await;
    let first = tokio::time::timeout(std::time::Duration::from_secs(20), live.next())
        .await
        .expect("an intent within 20 s")
        .expect("subscription open");
    assert_eq!(first.subject.as_str(), SUBJECT);
    let envelope: Value = serde_json::from_slice(&first.payload).expect("JSON envelope");
    assert_eq!(envelope["type"], "IngestAlertRequested");
    let msg_id = first
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Msg-Id"))
        .map(|v| v.to_string());
    assert_eq!(msg_id.as_deref(), envelope["idempotency_key"].as_str());
    drop(live);
    drop(client);

    for batch in 0..5 {
        post(&tg, notification(&format!("b{batch}"), 20)).await;
    }
    // Kill NATS while intents are (maybe) in flight, keep ingesting, including redeliveries.
    server.kill();
    for batch in 0..5 {
        post(&tg, notification(&format!("c{batch}"), 20)).await;
        post(&tg, notification(&format!("b{batch}"), 20)).await;
    }
    eventually(20, "a delivery failure while NATS is down", || async {
        store
            .pending_intents(1)
            .await
            .expect("list")
            .first()
            .is_some_and(|r| r.attempts > 0)
    })
    .await;
    let _server = {
        let mut s = nats(port, &store_dir, &log);
        s.wait_tcp(port).await;
        s
    };
    eventually(
        60,
        "every intent delivered after NATS came back",
        || async { store.count_intents().await.expect("count").0 == 0 },
    )
    .await;

    let outbox = store.list_intents(None, 10_000).await.expect("list");
    assert_eq!(
        outbox.len(),
        201,
        "1 + 100 + 100 alerts, duplicates dropped"
    );
    let keys: BTreeSet<String> = outbox.iter().map(|r| r.idempotency_key.clone()).collect();
    assert_eq!(keys.len(), 201);

    let client = async_nats::connect(url.as_str()).await.expect("reconnect");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(STREAM).await.expect("stream exists");
    let info = stream.info().await.expect("stream info");
    assert_eq!(info.config.subjects, vec![SUBJECT.to_string()]);
    assert_eq!(info.state.messages, 201, "every intent stored exactly once");
    let stored: Vec<String> = stream_messages(url.as_str())
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), 201);
    assert_eq!(
        unique, keys,
        "the stream holds exactly the outbox's intents"
    );
}
