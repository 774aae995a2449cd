//! Incident follow-through against a real NATS JetStream (`nats-server -js`) with facts
//! published by the test, and the fakes of Jira, PagerDuty and Opsgenie (`fake_incidents`):
//! created → ticket + page, acknowledged → ack, resolved → ticket resolved + page resolved,
//! closed → ticket closed; replays change nothing; poison goes to the dead-letter subject and
//! the stream goes on; a provider down opens its breaker and its facts are applied once it is
//! back; two consumers share the work, each fact handled once; the embedded file source with
//! Opsgenie. GitHub Issues as the ticket provider (the review tests' GitHub fake, which serves
//! issues too): the same lifecycle, its tools, and its rate limits handing facts back. A 429's
//! Retry-After from PagerDuty and Opsgenie: waited out when short, delaying the redelivery when
//! long. Deferred pages sent when business hours begin (a clock the test sets), or not when
//! resolved first. Two toolgate processes and one fact published twice: one ticket.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::daemons::{Daemon, eventually};
use crate::fake_incidents::{self, FakeIncidents};
use crate::fake_kube::FakeKube;
use crate::fake_review::{FakeGitHub, GhIssue, GhLimit};
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

/// Publishes a fact of `kind` about incident `id`.
async fn publish_fact(js: &async_nats::jetstream::Context, kind: &str, id: &str, severity: &str) {
    publish(js, fact(kind, id, severity).to_string().into_bytes()).await;
}

fn config(fake: &FakeIncidents, nats: &str, consumer: &str) -> String {
    let jira = format!(
        "ticketing:\n  default_provider: jira\n  jira:\n    url: {u}\n    project_key: SRE\n    \
         email: {e}\n    api_token: {t}\n    retry: {{attempts: 2, backoff: 10ms}}\n    \
         breaker: {{failures: 3, cooldown: 1s}}\n",
        u = fake.url,
        e = fake_incidents::JIRA_EMAIL,
        t = fake_incidents::JIRA_TOKEN,
    );
    config_with(&jira, fake, nats, consumer)
}

/// The GitHub repository incident issues go to.
const REPO: &str = "org/sre-incidents";

/// `ticketing` with GitHub Issues (the fake GitHub) as the default provider.
fn github_ticketing(gh: &FakeGitHub) -> String {
    format!(
        "ticketing:\n  default_provider: github\n  github:\n    url: {u}\n    repo: {REPO}\n    \
         token: {t}\n    retry: {{attempts: 2, backoff: 10ms}}\n",
        u = gh.url,
        t = crate::fake_review::TOKEN,
    )
}

/// `ticketing` as given, PagerDuty paging every high and critical incident, facts from NATS.
fn config_with(ticketing: &str, fake: &FakeIncidents, nats: &str, consumer: &str) -> String {
    format!(
        "{ticketing}\
         paging:\n  pagerduty:\n    url: {u}\n    routing_key: {r}\n    api_url: {u}\n    api_token: {p}\n    \
         retry: {{attempts: 3, backoff: 10ms}}\n  escalation: {{critical: immediate, high: immediate}}\n\
         facts:\n  nats:\n    url: {nats}\n    consumer: {consumer}\n    backoff: [200ms, 400ms]\n    max_deliver: 40\n",
        u = fake.url,
        r = fake_incidents::ROUTING_KEY,
        p = fake_incidents::PD_API_TOKEN,
    )
}

/// The GitHub issue labelled for incident `id`, if one; panics on two.
fn gh_issue(gh: &FakeGitHub, id: &str) -> Option<GhIssue> {
    let label = format!("incident-{id}");
    let found: Vec<GhIssue> = gh
        .issues()
        .into_iter()
        .filter(|i| i.labels.contains(&label))
        .collect();
    assert!(found.len() <= 1, "two issues for {id}: {found:#?}");
    found.into_iter().next()
}

/// The value of the counter line starting with `line` in `/metrics` text (0 when absent).
fn counter(metrics: &str, line: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0.0)
}

const RETRIED: &str =
    "toolgate_facts_handled_total{fact_type=\"IncidentCreated\",outcome=\"retried\"}";

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

    publish_fact(&js, "IncidentCreated", "inc-1", "critical").await;
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

    publish_fact(&js, "IncidentAcknowledged", "inc-1", "critical").await;
    eventually(20, "the page acknowledged", || async {
        actions(&fake, "inc-1") == ["trigger", "acknowledge"]
    })
    .await;
    publish_fact(&js, "IncidentResolved", "inc-1", "critical").await;
    eventually(20, "ticket and page resolved", || async {
        fake.issues()[0].status == "Resolved"
            && actions(&fake, "inc-1") == ["trigger", "acknowledge", "resolve"]
    })
    .await;
    publish_fact(&js, "IncidentClosed", "inc-1", "critical").await;
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
        publish_fact(&js, kind, "inc-1", "critical").await;
    }
    // A marker fact after the replays: once it is applied, the replays were handled.
    publish_fact(&js, "IncidentCreated", "inc-2", "medium").await;
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

    publish_fact(&js, "IncidentCreated", "inc-crash", "critical").await;
    publish_fact(&js, "IncidentResolved", "inc-late", "high").await;
    publish_fact(&js, "IncidentCreated", "inc-late", "high").await;
    publish_fact(&js, "IncidentCreated", "inc-marker", "low").await;
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
    publish_fact(&js, "IncidentCreated", "inc-down", "critical").await;
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
        publish_fact(&js, "IncidentCreated", &format!("inc-{i}"), "critical").await;
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

#[tokio::test]
async fn github_issues_follow_the_facts_and_a_crashed_create_is_found_by_its_label() {
    let nats = start_nats().await;
    let fake = FakeIncidents::start().await;
    let gh = FakeGitHub::start().await;
    let kube = FakeKube::start().await;
    let js = jetstream(&nats.url).await;
    // As if a previous run opened this issue and died before recording it.
    gh.add_issue(
        REPO,
        "[critical] Checkout latency gh-crash",
        &["toolgate", "incident-gh-crash"],
        "open",
    );
    let conf = config_with(&github_ticketing(&gh), &fake, &nats.url, "tg-github");
    let tg = harness::start(&kube, &conf).await;

    publish_fact(&js, "IncidentCreated", "gh-1", "critical").await;
    publish_fact(&js, "IncidentCreated", "gh-crash", "critical").await;
    eventually(20, "an issue and a page for each", || async {
        gh_issue(&gh, "gh-1").is_some()
            && actions(&fake, "gh-1") == ["trigger"]
            && actions(&fake, "gh-crash") == ["trigger"]
    })
    .await;
    let opened = gh_issue(&gh, "gh-1").expect("issue");
    assert_eq!(opened.repo, REPO);
    assert_eq!(opened.state, "open");
    assert_eq!(
        opened.labels,
        ["toolgate", "incident-gh-1", "severity-critical"]
    );
    assert_eq!(opened.title, "[critical] Checkout latency gh-1");
    assert!(
        opened
            .body
            .contains("Opened by toolgate from the IncidentCreated fact"),
        "{}",
        opened.body
    );
    assert_eq!(
        gh.issues().len(),
        2,
        "the crashed create was found, not repeated"
    );

    // Each fact, and what the issue and the page are after it.
    let steps: [(&str, &str, &[&str]); 3] = [
        ("IncidentAcknowledged", "open", &["trigger", "acknowledge"]),
        (
            "IncidentResolved",
            "closed",
            &["trigger", "acknowledge", "resolve"],
        ),
        (
            "IncidentClosed",
            "closed",
            &["trigger", "acknowledge", "resolve"],
        ),
    ];
    for (n, (kind, state, pages)) in steps.into_iter().enumerate() {
        publish_fact(&js, kind, "gh-1", "critical").await;
        // A marker incident after each fact: once it has its issue, the fact was handled.
        let marker = format!("gh-marker-{n}");
        publish_fact(&js, "IncidentCreated", &marker, "low").await;
        eventually(20, kind, || async {
            gh_issue(&gh, &marker).is_some()
                && gh_issue(&gh, "gh-1").map(|i| i.state).as_deref() == Some(state)
                && actions(&fake, "gh-1") == pages
        })
        .await;
    }
    let done = gh_issue(&gh, "gh-1").expect("issue");
    assert_eq!(done.state_reason.as_deref(), Some("completed"));
    assert_eq!(done.comments.len(), 1, "{:?}", done.comments);
    assert!(
        done.comments[0].contains("closing the issue as completed"),
        "{:?}",
        done.comments
    );
    // Resolved closed it; Closed found it closed and changed nothing.
    let patches = gh
        .seen()
        .iter()
        .filter(|r| r.starts_with(&format!("PATCH /repos/{REPO}/issues/{}", done.number)))
        .count();
    assert_eq!(patches, 1);
    let ready = readyz(&tg).await;
    assert_eq!(
        ready["integrations"]["github_issues"]["breaker"], "closed",
        "{ready}"
    );
}

/// `ticket.*` on GitHub Issues: reads and comments at once, and each error in GitHub's words.
#[tokio::test]
async fn ticket_tools_work_on_github_issues_and_name_its_errors_and_rate_limits() {
    let gh = FakeGitHub::start().await;
    let kube = FakeKube::start().await;
    let first = gh.add_issue(REPO, "Checkout latency", &["incident-42"], "open");
    let deleted = gh.add_issue(REPO, "Old", &[], "closed");
    gh.state
        .lock()
        .expect("lock")
        .issues
        .iter_mut()
        .filter(|i| i.number == deleted)
        .for_each(|i| i.deleted = true);
    let tg = harness::start(&kube, &github_ticketing(&gh)).await;

    let got = tool(&tg, "ticket.get", json!({"key": format!("{REPO}#{first}")}))
        .await
        .expect("get");
    assert_eq!(got["status"], "open", "{got}");
    assert_eq!(got["key"], format!("{REPO}#{first}"), "{got}");
    let found = tool(
        &tg,
        "ticket.search",
        json!({"query": "label:incident-42 checkout", "provider": "github"}),
    )
    .await
    .expect("search");
    assert_eq!(found["count"], 1, "{found}");
    let done = tool(
        &tg,
        "ticket.comment",
        json!({"key": format!("#{first}"), "text": "looking"}),
    )
    .await
    .expect("comment");
    assert_eq!(done["key"], format!("#{first}"), "{done}");
    assert_eq!(gh.issues()[0].comments, ["looking"]);
    let held = tool(
        &tg,
        "ticket.transition",
        json!({"key": first.to_string(), "transition": "Resolved"}),
    )
    .await
    .expect("held");
    assert_eq!(held["status"], "approval_required", "{held}");
    assert_eq!(gh.issues()[0].state, "open");

    // What goes wrong, and what the error says.
    let cases: [(Option<GhLimit>, String, &[&str]); 5] = [
        (
            None,
            format!("{REPO}#99"),
            &["GitHub has no issue org/sre-incidents#99 (HTTP 404)"],
        ),
        (
            None,
            format!("#{deleted}"),
            &["is gone (HTTP 410): This issue was deleted"],
        ),
        (
            None,
            "other/repo#1".into(),
            &["this GitHub Issues provider files in org/sre-incidents"],
        ),
        (
            Some(GhLimit::Primary {
                status: 403,
                resets_in: 600,
            }),
            first.to_string(),
            &["rate limit is reached (HTTP 403)", "(x-ratelimit-reset)"],
        ),
        (
            Some(GhLimit::Secondary {
                status: 429,
                retry_after: 30,
            }),
            first.to_string(),
            &["rate limit is reached (HTTP 429)", "retry after 30s"],
        ),
    ];
    for (limit, key, words) in cases {
        if let Some(limit) = limit {
            gh.limit_next(&[limit]);
        }
        let err = tool(&tg, "ticket.get", json!({"key": key}))
            .await
            .expect_err("an error");
        for w in words {
            assert!(err.contains(w), "{key}: `{w}` not in {err}");
        }
    }
}

#[tokio::test]
async fn a_rate_limited_github_hands_the_fact_back_until_the_limit_lifts() {
    let nats = start_nats().await;
    let fake = FakeIncidents::start().await;
    let gh = FakeGitHub::start().await;
    let kube = FakeKube::start().await;
    let js = jetstream(&nats.url).await;
    let conf = config_with(&github_ticketing(&gh), &fake, &nats.url, "tg-gh-limited");
    let tg = harness::start(&kube, &conf).await;
    // The consumer's own backoff is 200 ms: a redelivery after 1.5 s or more waited for the
    // limit GitHub named.
    let limits = [
        GhLimit::Primary {
            status: 403,
            resets_in: 3,
        },
        GhLimit::Secondary {
            status: 429,
            retry_after: 2,
        },
    ];
    for (n, limit) in limits.into_iter().enumerate() {
        let id = format!("gh-limited-{n}");
        let retried = counter(&tg.metrics().await, RETRIED);
        gh.limit_next(&[limit]);
        let started = Instant::now();
        publish_fact(&js, "IncidentCreated", &id, "critical").await;
        eventually(20, "the issue once the limit lifts", || async {
            gh_issue(&gh, &id).is_some()
        })
        .await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(1500),
            "{limit:?}: {waited:?}"
        );
        assert_eq!(
            counter(&tg.metrics().await, RETRIED),
            retried + 1.0,
            "{limit:?}: handed back once"
        );
        eventually(10, "paged", || async { actions(&fake, &id) == ["trigger"] }).await;
    }
}

/// PagerDuty or Opsgenie as the only pager, its retries fast, Retry-After waited out up to 2 s.
fn pager_only(pager: &str, fake: &FakeIncidents, nats: &str) -> String {
    let credentials = match pager {
        "pagerduty" => format!("routing_key: {}", fake_incidents::ROUTING_KEY),
        _ => format!("api_key: {}", fake_incidents::GENIE_KEY),
    };
    format!(
        "paging:\n  default_provider: {pager}\n  {pager}:\n    url: {u}\n    {credentials}\n    \
         retry: {{attempts: 3, backoff: 10ms, max_retry_after: 2s}}\n  \
         escalation: {{critical: immediate}}\n\
         facts:\n  nats:\n    url: {nats}\n    consumer: tg-ra-{pager}\n    backoff: [200ms, 400ms]\n    max_deliver: 40\n",
        u = fake.url,
    )
}

/// Pages sent for incident `id` by either pager.
fn pages(fake: &FakeIncidents, id: &str) -> usize {
    actions(fake, id).len()
        + fake
            .alerts()
            .iter()
            .filter(|a| a.0 == id)
            .map(|a| a.3 as usize)
            .sum::<usize>()
}

#[tokio::test]
async fn a_pagers_retry_after_is_waited_out_when_short_and_delays_the_redelivery_when_long() {
    let nats = start_nats().await;
    let fake = FakeIncidents::start().await;
    let kube = FakeKube::start().await;
    let js = jetstream(&nats.url).await;
    for pager in ["pagerduty", "opsgenie"] {
        let tg = harness::start(&kube, &pager_only(pager, &fake, &nats.url)).await;
        // (Retry-After, at least this long to the page, handed back to JetStream)
        for (secs, at_least, handed_back) in [(1, 900, false), (3, 2800, true)] {
            let id = format!("{pager}-ra-{secs}");
            let retried = counter(&tg.metrics().await, RETRIED);
            fake.state.retry_after.store(secs, Ordering::SeqCst);
            fake.state.rate_limit.store(1, Ordering::SeqCst);
            let started = Instant::now();
            publish_fact(&js, "IncidentCreated", &id, "critical").await;
            eventually(20, "the page after the 429", || async {
                pages(&fake, &id) > 0
            })
            .await;
            let waited = started.elapsed();
            assert!(
                waited >= Duration::from_millis(at_least),
                "{pager}, Retry-After {secs}: paged after {waited:?}"
            );
            let now = counter(&tg.metrics().await, RETRIED);
            assert_eq!(now > retried, handed_back, "{pager}, Retry-After {secs}");
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(pages(&fake, &id), 1, "{pager}: paged once");
        }
        drop(tg);
    }
}

/// A follow-through with PagerDuty (the fake) and Berlin business hours, facts from a file, on
/// a clock the test sets; its store.
async fn deferred_setup(
    fake: &FakeIncidents,
    dir: &std::path::Path,
    now_ms: Arc<AtomicI64>,
) -> toolgate::store::Store {
    use toolgate::adapters::pager::{Pager, Paging};
    use toolgate::adapters::pagerduty::{self, PagerDuty, RawPagerDuty};
    use toolgate::incidents::escalation::{BusinessHours, Escalation, When};
    let store =
        toolgate::store::Store::connect(&format!("sqlite://{}", dir.join("deferred.db").display()))
            .await
            .expect("store");
    let raw: RawPagerDuty = serde_yaml::from_str(&format!(
        "url: {}\nrouting_key: {}\nretry: {{attempts: 2, backoff: 10ms}}\n",
        fake.url,
        fake_incidents::ROUTING_KEY
    ))
    .expect("pagerduty block");
    let mut problems = Vec::new();
    let config = pagerduty::resolve("paging.pagerduty", &raw, &mut problems).expect("resolves");
    assert!(problems.is_empty(), "{problems:?}");
    let pager: Arc<dyn Pager> = Arc::new(PagerDuty::new(config).expect("pagerduty"));
    let paging = Paging {
        default_provider: "pagerduty".into(),
        providers: [("pagerduty", pager)].into_iter().collect(),
    };
    let escalation = Escalation {
        critical: When::Immediate,
        high: When::BusinessHoursOnly,
        business_hours: BusinessHours::parse("09:00", "18:00", "Europe/Berlin", None)
            .expect("hours"),
    };
    let clock: toolgate::incidents::Clock = Arc::new(move || {
        jiff::Timestamp::from_millisecond(now_ms.load(Ordering::SeqCst)).expect("a time")
    });
    let follow = toolgate::incidents::FollowThrough::new(
        store.clone(),
        None,
        Some(Arc::new(paging)),
        escalation,
    )
    .with_clock(clock);
    let consumer = toolgate::incidents::consumer::Consumer::new(
        Arc::new(follow),
        toolgate::incidents::config::FactSource::File(dir.join("facts.jsonl")),
    );
    consumer.spawn(
        Duration::from_millis(100),
        tokio_util::sync::CancellationToken::new(),
    );
    store
}

fn ms(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>()
        .expect("timestamp")
        .as_millisecond()
}

#[tokio::test]
async fn a_deferred_page_goes_out_when_business_hours_begin_unless_resolved_first() {
    let fake = FakeIncidents::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Friday 23 October 2026, 18:01 in Berlin (CEST): after hours.
    let now = Arc::new(AtomicI64::new(ms("2026-10-23T16:01:00Z")));
    let facts = [
        fact("IncidentCreated", "night-1", "high"),
        fact("IncidentCreated", "night-2", "high"),
        fact("IncidentResolved", "night-2", "high"),
    ]
    .map(|f| f.to_string())
    .join("\n");
    std::fs::write(dir.path().join("facts.jsonl"), facts + "\n").expect("facts");
    let store = deferred_setup(&fake, dir.path(), now.clone()).await;
    let link = |id: &'static str| {
        let store = store.clone();
        async move {
            store
                .get_incident_link(id)
                .await
                .expect("store")
                .unwrap_or_default()
        }
    };
    eventually(20, "one page deferred, one skipped", || async {
        link("night-1").await.page_state == "deferred"
            && link("night-2").await.page_state == "skipped"
    })
    .await;
    // Due on Monday 09:00 CET (after the clocks went back on Sunday): 08:00Z.
    assert_eq!(
        link("night-1").await.page_deferred_until_ms,
        Some(ms("2026-10-26T08:00:00Z"))
    );
    assert!(
        link("night-2")
            .await
            .notes
            .contains("resolved before business hours")
    );
    // A minute before the opening: nothing yet (the check runs every 100 ms).
    now.store(ms("2026-10-26T07:59:00Z"), Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fake.events().is_empty(), "{:?}", fake.events());
    // Hours begin: the deferred page goes out, once; the resolved incident's never does.
    now.store(ms("2026-10-26T08:00:00Z"), Ordering::SeqCst);
    // The fake hears the trigger before the store records it: wait for both.
    eventually(10, "the deferred page sent and recorded", || async {
        actions(&fake, "night-1") == ["trigger"] && link("night-1").await.page_state == "triggered"
    })
    .await;
    let sent = link("night-1").await;
    assert_eq!(sent.page_state, "triggered");
    assert_eq!(sent.page_deferred_until_ms, None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(actions(&fake, "night-1"), ["trigger"]);
    assert!(actions(&fake, "night-2").is_empty());
    assert_eq!(
        fake.events()[0]["payload"]["severity"],
        "error",
        "high is PagerDuty's error"
    );
}

#[tokio::test]
async fn incident_claims_admit_one_replica_until_released_or_expired_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = crate::postgres::PgCluster::start();
    let urls = [
        format!("sqlite://{}", dir.path().join("claims.db").display()),
        pg.create_database("claims"),
    ];
    for url in urls {
        let store = crate::postgres::connect(&url).await.expect("store");
        let claim = |holder: &'static str, lease_ms: i64| {
            let store = store.clone();
            async move {
                store
                    .claim_incident("inc-1", holder, lease_ms)
                    .await
                    .expect("claim")
            }
        };
        assert!(claim("a", 10_000).await, "{url}: free");
        assert!(!claim("b", 10_000).await, "{url}: held by a");
        assert!(claim("a", 10_000).await, "{url}: a renews");
        store.release_incident("inc-1", "b").await.expect("release");
        assert!(
            !claim("b", 10_000).await,
            "{url}: b cannot release a's claim"
        );
        store.release_incident("inc-1", "a").await.expect("release");
        assert!(claim("b", -1).await, "{url}: released");
        assert!(claim("c", 10_000).await, "{url}: b's lease ran out");
        assert!(!claim("a", 10_000).await, "{url}: held by c");
    }
}

/// A `toolgate serve` process with `extra` config, its files under `dir/name`; its URL.
async fn replica(
    kube: &FakeKube,
    dir: &std::path::Path,
    name: &str,
    extra: &str,
) -> (Daemon, String) {
    let work = dir.join(name);
    std::fs::create_dir_all(&work).expect("replica dir");
    let port = crate::daemons::free_port();
    let yaml = format!(
        "listen: 127.0.0.1:{port}\n{}",
        harness::config_yaml(kube, &work, extra)
    );
    let path = work.join("toolgate.yaml");
    std::fs::write(&path, yaml).expect("config");
    let mut daemon = Daemon::spawn(
        env!("CARGO_BIN_EXE_toolgate"),
        &[
            "serve".into(),
            "--config".into(),
            path.display().to_string(),
        ],
        &work.join("toolgate.log"),
    );
    let url = format!("http://127.0.0.1:{port}");
    daemon.wait_http(&format!("{url}/healthz")).await;
    (daemon, url)
}

#[tokio::test]
async fn two_toolgate_processes_given_the_same_facts_open_one_ticket_per_incident() {
    let nats = start_nats().await;
    let fake = FakeIncidents::start().await;
    let gh = FakeGitHub::start().await;
    let kube = FakeKube::start().await;
    let js = jetstream(&nats.url).await;
    // A slow GitHub: without the store's claim both replicas would open the issue.
    gh.state.lock().expect("lock").create_delay = Duration::from_millis(300);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!(
        "store:\n  url: sqlite://{}\n",
        dir.path().join("shared.db").display()
    );
    // Each replica on its own durable consumer: every fact reaches both at about the same
    // time, as when JetStream redelivers a fact to a second replica while the first is still
    // applying it (its ack_wait ran out).
    let mut replicas = Vec::new();
    for name in ["a", "b"] {
        let ticketing = github_ticketing(&gh);
        let conf = config_with(&ticketing, &fake, &nats.url, &format!("tg-replica-{name}"));
        replicas.push(replica(&kube, dir.path(), name, &format!("{conf}{store}")).await);
    }
    // Created for each incident, for some a Resolved right behind.
    let ids: Vec<String> = (0..6).map(|i| format!("both-{i}")).collect();
    for (n, id) in ids.iter().enumerate() {
        publish_fact(&js, "IncidentCreated", id, "critical").await;
        if n % 2 == 1 {
            publish_fact(&js, "IncidentResolved", id, "critical").await;
        }
    }
    eventually(
        30,
        "every incident's issue, the odd ones closed",
        || async {
            ids.iter().enumerate().all(|(n, id)| {
                gh_issue(&gh, id).is_some_and(|i| (i.state == "closed") == (n % 2 == 1))
            })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(gh.issues().len(), ids.len(), "{:#?}", gh.issues());
    for (n, id) in ids.iter().enumerate() {
        // gh_issue panics on a second issue.
        assert!(gh_issue(&gh, id).is_some());
        let want: &[&str] = if n % 2 == 1 {
            &["trigger", "resolve"]
        } else {
            &["trigger"]
        };
        assert_eq!(actions(&fake, id), want, "{id}: paged once");
    }
}

/// kill -9 between the side effect and the ack: GitHub opened the issue, but toolgate died before
/// it heard so (before it recorded the link and acked the fact). JetStream hands the fact to the
/// next process after the ack wait; it finds the issue by its `incident-<id>` label and pages:
/// one issue, one page.
#[tokio::test]
async fn a_toolgate_killed_between_the_side_effect_and_the_ack_opens_no_second_ticket() {
    let nats = start_nats().await;
    let fake = FakeIncidents::start().await;
    let gh = FakeGitHub::start().await;
    let kube = FakeKube::start().await;
    let js = jetstream(&nats.url).await;
    gh.state.lock().expect("lock").answer_delay = Duration::from_secs(30);
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = format!(
        "{}store:\n  url: sqlite://{}\n",
        config_with(&github_ticketing(&gh), &fake, &nats.url, "tg-killed"),
        dir.path().join("shared.db").display()
    );
    let (mut first, _) = replica(&kube, dir.path(), "first", &conf).await;
    publish_fact(&js, "IncidentCreated", "killed-1", "critical").await;
    eventually(20, "GitHub opened the issue", || async {
        gh_issue(&gh, "killed-1").is_some()
    })
    .await;
    first.kill();
    assert!(
        actions(&fake, "killed-1").is_empty(),
        "the page goes out after the ticket: not yet"
    );
    gh.state.lock().expect("lock").answer_delay = Duration::ZERO;
    // The same durable consumer in a new process: the unacked fact comes back after ack_wait.
    let (_second, _) = replica(&kube, dir.path(), "second", &conf).await;
    eventually(60, "the page after the redelivery", || async {
        !actions(&fake, "killed-1").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(gh.issues().len(), 1, "{:#?}", gh.issues());
    assert_eq!(actions(&fake, "killed-1"), ["trigger"], "paged once");
}
