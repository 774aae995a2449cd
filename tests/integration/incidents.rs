//! Incident follow-through against a real NATS JetStream (`nats-server -js`) with facts
//! published by the test, and the fakes of Jira, PagerDuty and Opsgenie (`fake_incidents`):
//! created → ticket + page, acknowledged → ack, resolved → ticket resolved + page resolved,
//! closed → ticket closed; replays change nothing; poison goes to the dead-letter subject and
//! the stream goes on; a provider down opens its breaker and its facts are applied once it is
//! back; two consumers share the work, each fact handled once; the embedded file source with
//! Opsgenie.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::daemons::eventually;
use crate::fake_incidents::{self, FakeIncidents};
use crate::fake_kube::FakeKube;
use crate::harness::{self, Toolgate};
use crate::intents_nats::start_nats;

const SUBJECT: &str = "sre.domain.facts.v1";
const DEAD: &str = "sre.domain.facts.v1.dead";

fn fact(kind: &str, id: &str, severity: &str) -> Value {
    json!({
        "type": kind, "version": 1, "id": uuid_like(kind, id), "idempotency_key": format!("{kind}:{id}"),
        "occurred_at": "2026-12-06T10:00:00Z", "source": "sre-domain", "correlation_id": format!("incident:{id}"),
        "payload": {"incident_id": id, "severity": severity, "title": format!("Checkout latency {id}"),
                    "description": "p99 above 2s for 10 minutes", "service": "checkout"}
    })
}

fn uuid_like(kind: &str, id: &str) -> String {
    format!("{kind}-{id}")
}

async fn jetstream(url: &str) -> async_nats::jetstream::Context {
    let client = async_nats::connect(url).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "SRE_DOMAIN_FACTS".into(),
        subjects: vec![SUBJECT.into()],
        ..Default::default()
    })
    .await
    .expect("facts stream");
    js
}

async fn publish(js: &async_nats::jetstream::Context, body: Vec<u8>) {
    js.publish(SUBJECT, body.into())
        .await
        .expect("publish")
        .await
        .expect("stored");
}

fn config(fake: &FakeIncidents, nats: &str, consumer: &str) -> String {
    format!(
        "ticketing:\n  default_provider: jira\n  jira:\n    url: {u}\n    project_key: SRE\n    \
         email: {e}\n    api_token: {t}\n    retry: {{attempts: 2, backoff: 10ms}}\n    \
         breaker: {{failures: 3, cooldown: 1s}}\n\
         paging:\n  pagerduty:\n    url: {u}\n    routing_key: {r}\n    api_url: {u}\n    api_token: {p}\n    \
         retry: {{attempts: 3, backoff: 10ms}}\n  escalation: {{critical: immediate, high: immediate}}\n\
         facts:\n  nats:\n    url: {nats}\n    consumer: {consumer}\n    backoff: [200ms, 400ms]\n    max_deliver: 40\n",
        u = fake.url,
        e = fake_incidents::JIRA_EMAIL,
        t = fake_incidents::JIRA_TOKEN,
        r = fake_incidents::ROUTING_KEY,
        p = fake_incidents::PD_API_TOKEN,
    )
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

fn actions(fake: &FakeIncidents, id: &str) -> Vec<String> {
    fake.events()
        .iter()
        .filter(|e| e["dedup_key"] == id)
        .map(|e| e["event_action"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn facts_open_acknowledge_resolve_and_close_tickets_and_pages_once_each() {
    let nats = start_nats().await;
    let fake = FakeIncidents::start().await;
    let kube = FakeKube::start().await;
    let js = jetstream(&nats.url).await;
    let mut dead = async_nats::connect(nats.url.as_str())
        .await
        .expect("connect")
        .subscribe(DEAD)
        .await
        .expect("subscribe dead letters");
    let tg = harness::start(&kube, &config(&fake, &nats.url, "tg-lifecycle")).await;

    publish(
        &js,
        fact("IncidentCreated", "inc-1", "critical")
            .to_string()
            .into_bytes(),
    )
    .await;
    eventually(20, "a Jira issue and a PagerDuty trigger", || async {
        fake.issues().len() == 1 && actions(&fake, "inc-1") == ["trigger"]
    })
    .await;
    let issue = &fake.issues()[0];
    assert_eq!(issue.priority.as_deref(), Some("Highest"));
    assert!(
        issue.labels.contains(&"incident-inc-1".to_string()),
        "{:?}",
        issue.labels
    );
    assert!(
        issue.summary.contains("Checkout latency inc-1"),
        "{}",
        issue.summary
    );
    let trigger = &fake.events()[0];
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["source"], "checkout");

    // Poison between the facts: not JSON, and a version this consumer does not read.
    publish(&js, b"{not json".to_vec()).await;
    let mut v2 = fact("IncidentCreated", "inc-9", "critical");
    v2["version"] = json!(2);
    publish(&js, v2.to_string().into_bytes()).await;
    // A fact of another type is acknowledged and left alone.
    publish(
        &js,
        json!({"type": "AlertIngested", "version": 1, "payload": {}})
            .to_string()
            .into_bytes(),
    )
    .await;

    publish(
        &js,
        fact("IncidentAcknowledged", "inc-1", "critical")
            .to_string()
            .into_bytes(),
    )
    .await;
    eventually(20, "the page acknowledged", || async {
        actions(&fake, "inc-1") == ["trigger", "acknowledge"]
    })
    .await;
    publish(
        &js,
        fact("IncidentResolved", "inc-1", "critical")
            .to_string()
            .into_bytes(),
    )
    .await;
    eventually(20, "ticket and page resolved", || async {
        fake.issues()[0].status == "Resolved"
            && actions(&fake, "inc-1") == ["trigger", "acknowledge", "resolve"]
    })
    .await;
    publish(
        &js,
        fact("IncidentClosed", "inc-1", "critical")
            .to_string()
            .into_bytes(),
    )
    .await;
    eventually(20, "the ticket closed", || async {
        fake.issues()[0].status == "Closed"
    })
    .await;

    // Both poison messages were dead-lettered with their reason, in order.
    let mut reasons = Vec::new();
    for _ in 0..2 {
        let letter = tokio::time::timeout(Duration::from_secs(10), dead.next())
            .await
            .expect("a dead letter within 10 s")
            .expect("subscription open");
        let reason = letter
            .headers
            .as_ref()
            .and_then(|h| h.get("Toolgate-Dead-Reason"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        reasons.push(reason);
    }
    assert!(reasons[0].starts_with("poison: not JSON"), "{reasons:?}");
    assert!(reasons[1].contains("version 2 is unknown"), "{reasons:?}");

    // A replay of every fact (the domain's outbox sending again) changes nothing.
    for kind in [
        "IncidentCreated",
        "IncidentAcknowledged",
        "IncidentResolved",
        "IncidentClosed",
    ] {
        publish(
            &js,
            fact(kind, "inc-1", "critical").to_string().into_bytes(),
        )
        .await;
    }
    // A marker fact after the replays: once it is applied, the replays were handled.
    publish(
        &js,
        fact("IncidentCreated", "inc-2", "medium")
            .to_string()
            .into_bytes(),
    )
    .await;
    eventually(20, "the marker incident's ticket", || async {
        fake.issues().len() == 2
    })
    .await;
    assert_eq!(fake.issues()[0].status, "Closed");
    assert_eq!(
        actions(&fake, "inc-1"),
        ["trigger", "acknowledge", "resolve"]
    );
    // Medium severity never pages.
    assert!(actions(&fake, "inc-2").is_empty());
    assert_eq!(fake.issues()[1].priority.as_deref(), Some("Medium"));

    let metrics = tg.metrics().await;
    for line in [
        "toolgate_facts_handled_total{fact_type=\"IncidentCreated\",outcome=\"applied\"}",
        "toolgate_facts_handled_total{fact_type=\"IncidentCreated\",outcome=\"duplicate\"}",
        "toolgate_facts_handled_total{fact_type=\"AlertIngested\",outcome=\"ignored\"}",
        "toolgate_facts_dead_lettered_total",
        "toolgate_facts_consumer_lag",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    let ready = readyz(&tg).await;
    let integrations = &ready["integrations"];
    assert_eq!(integrations["facts"]["state"], "ok", "{ready}");
    assert!(
        integrations["facts"]["dead_lettered"].as_i64() >= Some(2),
        "{ready}"
    );
    assert_eq!(integrations["jira"]["breaker"], "closed", "{ready}");
    assert_eq!(integrations["pagerduty"]["breaker"], "closed", "{ready}");
}

#[tokio::test]
async fn resolved_before_created_opens_then_resolves_and_a_crashed_create_is_found_by_label() {
    let nats = start_nats().await;
    let fake = FakeIncidents::start().await;
    let kube = FakeKube::start().await;
    let js = jetstream(&nats.url).await;
    // As if a previous run created the ticket and died before recording it.
    fake.state
        .issues
        .lock()
        .expect("lock")
        .push(fake_incidents::Issue {
            key: "SRE-1".into(),
            summary: "[critical] Checkout latency inc-crash".into(),
            description: json!({"type": "doc", "version": 1, "content": []}),
            labels: vec!["toolgate".into(), "incident-inc-crash".into()],
            priority: Some("Highest".into()),
            status: "Open".into(),
            comments: vec![],
        });
    let _tg = harness::start(&kube, &config(&fake, &nats.url, "tg-order")).await;

    publish(
        &js,
        fact("IncidentCreated", "inc-crash", "critical")
            .to_string()
            .into_bytes(),
    )
    .await;
    publish(
        &js,
        fact("IncidentResolved", "inc-late", "high")
            .to_string()
            .into_bytes(),
    )
    .await;
    publish(
        &js,
        fact("IncidentCreated", "inc-late", "high")
            .to_string()
            .into_bytes(),
    )
    .await;
    publish(
        &js,
        fact("IncidentCreated", "inc-marker", "low")
            .to_string()
            .into_bytes(),
    )
    .await;
    eventually(
        20,
        "the out-of-order incident's ticket and the marker",
        || async { fake.issues().len() == 3 },
    )
    .await;
    let issues = fake.issues();
    // No second ticket for the crashed create; its page went out once.
    assert_eq!(
        issues
            .iter()
            .filter(|i| i.labels.contains(&"incident-inc-crash".into()))
            .count(),
        1
    );
    assert_eq!(actions(&fake, "inc-crash"), ["trigger"]);
    // Resolved first: the ticket is created from it, says so, and is resolved; the later
    // Created changes nothing; nothing was paged (nothing open to page about).
    let late = issues
        .iter()
        .find(|i| i.labels.contains(&"incident-inc-late".into()))
        .expect("ticket from the resolved fact");
    assert_eq!(late.status, "Resolved");
    assert!(
        late.description.to_string().contains("out of order"),
        "{}",
        late.description
    );
    assert!(
        late.comments
            .iter()
            .any(|c| c.contains("IncidentCreated arrived after the incident was resolved")),
        "{:?}",
        late.comments
    );
    assert!(
        actions(&fake, "inc-late").is_empty(),
        "{:?}",
        actions(&fake, "inc-late")
    );
}

#[tokio::test]
async fn a_provider_down_opens_its_breaker_and_its_facts_apply_once_it_is_back() {
    let nats = start_nats().await;
    let fake = FakeIncidents::start().await;
    let kube = FakeKube::start().await;
    let js = jetstream(&nats.url).await;
    let tg = harness::start(&kube, &config(&fake, &nats.url, "tg-down")).await;
    fake.state.down.store(true, Ordering::SeqCst);
    publish(
        &js,
        fact("IncidentCreated", "inc-down", "critical")
            .to_string()
            .into_bytes(),
    )
    .await;
    eventually(20, "Jira's breaker open on /readyz", || async {
        readyz(&tg).await["integrations"]["jira"]["breaker"] == "open"
    })
    .await;
    assert!(fake.issues().is_empty());
    let ready = readyz(&tg).await;
    assert_eq!(ready["integrations"]["jira"]["state"], "down", "{ready}");
    // Back, with a rate limit on the first two requests (429 + Retry-After).
    fake.state.rate_limit.store(2, Ordering::SeqCst);
    fake.state.down.store(false, Ordering::SeqCst);
    eventually(30, "the fact applied after the outage", || async {
        fake.issues().len() == 1 && actions(&fake, "inc-down") == ["trigger"]
    })
    .await;
    // Redelivered, not lost, and applied once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.issues().len(), 1);
    assert_eq!(actions(&fake, "inc-down"), ["trigger"]);
    assert!(
        tg.metrics().await.contains(
            "toolgate_facts_handled_total{fact_type=\"IncidentCreated\",outcome=\"retried\"}"
        ),
        "retries are counted"
    );
}

#[tokio::test]
async fn two_consumers_share_the_stream_and_each_fact_is_handled_once() {
    let nats = start_nats().await;
    let fake = FakeIncidents::start().await;
    let kube = FakeKube::start().await;
    let js = jetstream(&nats.url).await;
    let store_dir = tempfile::tempdir().expect("tempdir");
    let store = format!(
        "store:\n  url: sqlite://{}\n",
        store_dir.path().join("shared.db").display()
    );
    let conf = format!("{}{store}", config(&fake, &nats.url, "tg-shared"));
    let _a = harness::start(&kube, &conf).await;
    let _b = harness::start(&kube, &conf).await;
    for i in 0..40 {
        publish(
            &js,
            fact("IncidentCreated", &format!("inc-{i}"), "critical")
                .to_string()
                .into_bytes(),
        )
        .await;
    }
    eventually(30, "forty tickets", || async { fake.issues().len() >= 40 }).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let issues = fake.issues();
    assert_eq!(issues.len(), 40);
    let mut labels: Vec<String> = issues
        .iter()
        .flat_map(|i| {
            i.labels
                .iter()
                .filter(|l| l.starts_with("incident-"))
                .cloned()
        })
        .collect();
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), 40, "each incident has exactly one ticket");
    assert_eq!(fake.events().len(), 40, "each incident was paged once");
}

#[tokio::test]
async fn the_file_source_drives_opsgenie_and_dead_letters_poison_lines() {
    let fake = FakeIncidents::start().await;
    let kube = FakeKube::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let facts = dir.path().join("facts.jsonl");
    std::fs::write(&facts, "").expect("write");
    let conf = format!(
        "paging:\n  default_provider: opsgenie\n  opsgenie:\n    url: {u}\n    api_key: {k}\n\
         facts:\n  file: {f}\n  deferred_check_interval: 200ms\n",
        u = fake.url,
        k = fake_incidents::GENIE_KEY,
        f = facts.display()
    );
    let _tg = harness::start(&kube, &conf).await;
    let mut lines = vec![
        fact("IncidentCreated", "og-1", "critical").to_string(),
        "not a fact".to_string(),
        fact("IncidentAcknowledged", "og-1", "critical").to_string(),
    ];
    std::fs::write(&facts, lines.join("\n") + "\n").expect("write");
    eventually(20, "an acknowledged Opsgenie alert", || async {
        fake.alerts() == [("og-1".to_string(), "open".to_string(), true, 1)]
    })
    .await;
    lines.push(fact("IncidentResolved", "og-1", "critical").to_string());
    std::fs::write(&facts, lines.join("\n") + "\n").expect("append");
    eventually(20, "the alert closed", || async {
        fake.alerts() == [("og-1".to_string(), "closed".to_string(), true, 1)]
    })
    .await;
    let dead = std::fs::read_to_string(dir.path().join("facts.jsonl.dead")).expect("dead letters");
    assert_eq!(dead.lines().count(), 1, "{dead}");
    assert!(
        dead.contains("\"line\":2") && dead.contains("not JSON"),
        "{dead}"
    );
}

/// `tools.call` as ALICE (a caller, not an approver): the structured answer, or the error.
async fn tool(tg: &Toolgate, name: &str, args: Value) -> Result<Value, String> {
    let result = crate::jsonrpc::call_tool(&tg.url, harness::ALICE, name, args).await;
    if result["isError"] == json!(true) {
        Err(result["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    } else {
        Ok(result["structuredContent"].clone())
    }
}

#[tokio::test]
async fn ticket_and_page_tools_read_at_once_comment_at_once_and_hold_other_writes() {
    let fake = FakeIncidents::start().await;
    let kube = FakeKube::start().await;
    fake.state
        .issues
        .lock()
        .expect("lock")
        .push(fake_incidents::Issue {
            key: "SRE-1".into(),
            summary: "Checkout latency".into(),
            description: json!({"type": "doc", "version": 1, "content": []}),
            labels: vec!["incident-42".into()],
            priority: Some("High".into()),
            status: "Open".into(),
            comments: vec![],
        });
    // PagerDuty with the Events API only; Opsgenie beside it.
    let conf = format!(
        "ticketing:\n  jira:\n    url: {u}\n    project_key: SRE\n    email: {e}\n    api_token: {t}\n\
         paging:\n  pagerduty:\n    url: {u}\n    routing_key: {r}\n  opsgenie:\n    url: {u}\n    api_key: {k}\n",
        u = fake.url,
        e = fake_incidents::JIRA_EMAIL,
        t = fake_incidents::JIRA_TOKEN,
        r = fake_incidents::ROUTING_KEY,
        k = fake_incidents::GENIE_KEY,
    );
    let tg = harness::start(&kube, &conf).await;

    let got = tool(&tg, "ticket.get", json!({"key": "SRE-1"}))
        .await
        .expect("get");
    assert_eq!(got["status"], "Open", "{got}");
    assert_eq!(got["untrusted"], true, "{got}");
    let found = tool(
        &tg,
        "ticket.search",
        json!({"query": "labels = \"incident-42\""}),
    )
    .await
    .expect("search");
    assert_eq!(found["count"], 1, "{found}");
    let missing = tool(&tg, "ticket.get", json!({"key": "SRE-404"}))
        .await
        .expect_err("404");
    assert!(missing.contains("Issue does not exist"), "{missing}");

    // A comment runs at once; creating and transitioning wait for an approver.
    let done = tool(
        &tg,
        "ticket.comment",
        json!({"key": "SRE-1", "text": "looking"}),
    )
    .await
    .expect("comment");
    assert_eq!(done["key"], "SRE-1");
    assert_eq!(fake.issues()[0].comments, ["looking"]);
    for (name, args) in [
        ("ticket.create", json!({"summary": "x", "severity": "high"})),
        (
            "ticket.transition",
            json!({"key": "SRE-1", "transition": "Resolved"}),
        ),
        (
            "page.trigger",
            json!({"incident_id": "i-1", "summary": "x", "severity": "critical", "source": "checkout"}),
        ),
        ("page.resolve", json!({"incident_id": "i-1"})),
    ] {
        let held = tool(&tg, name, args).await.expect("held");
        assert_eq!(held["status"], "approval_required", "{name}: {held}");
    }
    assert_eq!(fake.issues().len(), 1);
    assert!(fake.events().is_empty());

    // PagerDuty reads need its REST API: the error says so and what to set.
    let err = tool(&tg, "page.list_oncall", json!({}))
        .await
        .expect_err("no REST API");
    assert!(
        err.contains("only the Events API") && err.contains("paging.pagerduty.api_token"),
        "{err}"
    );
    // Opsgenie answers reads with its key.
    let oncall = tool(
        &tg,
        "page.get",
        json!({"incident_id": "nope", "provider": "opsgenie"}),
    )
    .await
    .expect_err("unknown alias");
    assert!(oncall.contains("Alert does not exist"), "{oncall}");
}
