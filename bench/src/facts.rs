//! toolgate-facts: the incident facts consumer end to end — a real `nats-server -js`, a
//! `toolgate serve` process following the facts stream, and the test fakes of Jira and
//! PagerDuty Events v2 (`tests/integration/fake_incidents.rs`) as the providers.
//!
//! Two phases, printed with their figures:
//! 1. Latency: facts published one at a time (Created, Acknowledged, Resolved, Closed of each
//!    incident in turn), each timed from publish until its last side effect reaches the fake
//!    (Created: the page; Acknowledged: the acknowledgement; Resolved: the page resolved;
//!    Closed: the issue closed). p50/p99 as measured, and minus the fake's own time (its
//!    round trips for the requests that fact makes, timed from here beforehand): the
//!    consumer's added latency.
//! 2. Throughput: N facts (a quarter of each kind, over N/4 incidents, interleaved) published
//!    at once; facts handled per second until every side effect is in.
//!
//! Usage: toolgate-facts [--toolgate target/release/toolgate] [--facts N] [--latency-incidents M]

#[path = "../../tests/integration/fake_incidents.rs"]
mod fake_incidents;
#[path = "../../tests/integration/fake_kube/mod.rs"]
mod fake_kube;
mod serve_cmd;

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use fake_incidents::FakeIncidents;
use fake_kube::FakeKube;

const SUBJECT: &str = "sre.domain.facts.v1";
const KINDS: [&str; 4] = [
    "IncidentCreated",
    "IncidentAcknowledged",
    "IncidentResolved",
    "IncidentClosed",
];
/// Requests each fact makes of the fakes (Created: Jira search, create, PagerDuty trigger;
/// Acknowledged: the acknowledge event; Resolved: Jira transitions read + post, the resolve
/// event; Closed: Jira transitions read + post).
const REQUESTS: [usize; 4] = [3, 1, 3, 2];

struct Args {
    toolgate: std::path::PathBuf,
    facts: usize,
    latency_incidents: usize,
}

fn args() -> Result<Args> {
    let mut a = Args {
        toolgate: "target/release/toolgate".into(),
        facts: 2_000,
        latency_incidents: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--toolgate" => a.toolgate = v()?.into(),
            "--facts" => a.facts = v()?.replace('_', "").parse().context("--facts: a number")?,
            "--latency-incidents" => {
                a.latency_incidents = v()?.parse().context("--latency-incidents: a number")?
            }
            other => bail!(
                "unknown argument {other}; expected --toolgate BIN [--facts N] [--latency-incidents M]"
            ),
        }
    }
    if a.facts < 4 {
        bail!("--facts: at least 4 (one incident's four facts)");
    }
    Ok(a)
}

fn fact(kind: &str, id: &str) -> Vec<u8> {
    json!({
        "type": kind, "version": 1, "id": format!("{kind}-{id}"), "occurred_at": "2026-12-06T10:00:00Z",
        "source": "sre-domain", "correlation_id": format!("incident:{id}"),
        "payload": {"incident_id": id, "severity": "critical", "title": format!("Checkout latency {id}"),
                    "description": "p99 above 2s", "service": "checkout"}
    })
    .to_string()
    .into_bytes()
}

/// Whether the last side effect of `kind` for incident `id` reached the fakes.
fn done(fake: &FakeIncidents, kind: &str, id: &str) -> bool {
    let action = match kind {
        "IncidentCreated" => "trigger",
        "IncidentAcknowledged" => "acknowledge",
        "IncidentResolved" => "resolve",
        _ => {
            let label = format!("incident-{id}");
            return fake
                .state
                .issues
                .lock()
                .map(|issues| {
                    issues
                        .iter()
                        .any(|i| i.labels.contains(&label) && i.status == "Closed")
                })
                .unwrap_or(false);
        }
    };
    fake.state
        .events
        .lock()
        .map(|events| {
            events
                .iter()
                .any(|e| e["dedup_key"] == id && e["event_action"] == action)
        })
        .unwrap_or(false)
}

fn nats_server(port: u16, dir: &std::path::Path) -> Result<tokio::process::Child> {
    tokio::process::Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("js"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting nats-server (apt-get install -y nats-server)")
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Mean round trip of the fake for one request, as toolgate would send it (keep-alive).
async fn fake_round_trip(fake: &FakeIncidents) -> Result<Duration> {
    let http = reqwest::Client::new();
    let runs = 500;
    let t0 = Instant::now();
    for i in 0..runs {
        http.post(format!("{}/v2/enqueue", fake.url))
            .json(&json!({"routing_key": fake_incidents::ROUTING_KEY, "event_action": "acknowledge", "dedup_key": format!("probe-{i}")}))
            .send()
            .await?;
    }
    let mean = t0.elapsed() / runs;
    fake.state.events.lock().map(|mut e| e.clear()).ok();
    Ok(mean)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    toolgate::app::init_crypto();
    let work = tempfile::tempdir()?;
    let nats_port = free_port()?;
    let _nats = nats_server(nats_port, work.path())?;
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    let client = {
        let t0 = Instant::now();
        loop {
            match async_nats::connect(nats_url.as_str()).await {
                Ok(c) => break c,
                Err(_) if t0.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => bail!("nats-server did not listen within 10 s: {e}"),
            }
        }
    };
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "SRE_DOMAIN_FACTS".into(),
        subjects: vec![SUBJECT.into()],
        ..Default::default()
    })
    .await?;

    let fake = FakeIncidents::start().await;
    let kube = FakeKube::start().await;
    let round_trip = fake_round_trip(&fake).await?;

    let port = free_port()?;
    let mut cmd =
        serve_cmd::toolgate_serve(&a.toolgate, &kube.kubeconfig, work.path(), port, "facts.db")?;
    let path = work.path().join("toolgate.yaml");
    let mut config = std::fs::read_to_string(&path)?;
    config.push_str(&format!(
        "ticketing:\n  jira:\n    url: {u}\n    project_key: SRE\n    email: {e}\n    api_token: {t}\n\
         paging:\n  pagerduty:\n    url: {u}\n    routing_key: {r}\n  escalation: {{critical: immediate}}\n\
         facts:\n  nats:\n    url: {nats_url}\n    consumer: bench\n    backoff: [100ms]\n    max_deliver: 20\n",
        u = fake.url,
        e = fake_incidents::JIRA_EMAIL,
        t = fake_incidents::JIRA_TOKEN,
        r = fake_incidents::ROUTING_KEY,
    ));
    std::fs::write(&path, config)?;
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let _toolgate = cmd.spawn().context("starting toolgate")?;
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    loop {
        let ready: Option<Value> = match http.get(format!("{url}/readyz")).send().await {
            Ok(r) => r.json().await.ok(),
            Err(_) => None,
        };
        if ready.is_some_and(|r| r["integrations"]["facts"]["state"] == "ok") {
            break;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("toolgate's facts consumer was not running within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Phase 1: one fact at a time.
    let mut latencies: Vec<Duration> = Vec::new();
    let mut added: Vec<Duration> = Vec::new();
    for i in 0..a.latency_incidents {
        let id = format!("lat-{i}");
        for (kind, requests) in KINDS.iter().zip(REQUESTS) {
            let started = Instant::now();
            js.publish(SUBJECT, fact(kind, &id).into()).await?.await?;
            while !done(&fake, kind, &id) {
                if started.elapsed() > Duration::from_secs(30) {
                    bail!("{kind} of {id} not handled within 30 s");
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            let took = started.elapsed();
            latencies.push(took);
            added.push(took.saturating_sub(round_trip * requests as u32));
        }
    }
    latencies.sort();
    added.sort();

    // Phase 2: all at once.
    let incidents = a.facts / 4;
    let n = incidents * 4;
    let ids: Vec<String> = (0..incidents).map(|i| format!("tp-{i}")).collect();
    let started = Instant::now();
    for kind in KINDS {
        for id in &ids {
            // Acks awaited in bulk below: publishing is not what is measured.
            js.publish(SUBJECT, fact(kind, id).into()).await?;
        }
    }
    let published = started.elapsed();
    loop {
        let closed = fake
            .state
            .issues
            .lock()
            .map(|issues| {
                issues
                    .iter()
                    .filter(|i| i.status == "Closed" && i.summary.contains("tp-"))
                    .count()
            })
            .unwrap_or(0);
        if closed == incidents {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("only {closed} of {incidents} incidents closed within 600 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let issues = fake.issues().len();
    let pages = fake.events().len();
    let want_issues = a.latency_incidents + incidents;
    if issues != want_issues || pages != 3 * want_issues {
        bail!(
            "{issues} issues and {pages} PagerDuty events; expected {want_issues} and {}",
            3 * want_issues
        );
    }

    println!(
        "latency, {} facts one at a time (publish → last side effect at the fake): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        ms(quantile(&latencies, 0.5)),
        ms(quantile(&latencies, 0.99)),
        ms(latencies[latencies.len() - 1]),
    );
    println!(
        "consumer's added latency (minus the fake's round trips, {:.3} ms each, 1–3 per fact): p50 {:.2} ms, p99 {:.2} ms",
        ms(round_trip),
        ms(quantile(&added, 0.5)),
        ms(quantile(&added, 0.99)),
    );
    println!(
        "throughput, {n} facts over {incidents} incidents published at once ({:.0} ms to publish): all handled in {:.2} s = {:.0} facts/s; {} issues, {} PagerDuty events, none twice",
        ms(published),
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        issues,
        pages,
    );
    Ok(())
}
