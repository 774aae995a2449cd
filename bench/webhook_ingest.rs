//! Benchmark (not a test): Alertmanager webhook ingest into the SQLite outbox.
//!
//! `cargo bench --bench webhook_ingest [-- ALERTS BATCH CLIENTS DUP_PERCENT]` (defaults 100000
//! alerts, 50 alerts per notification, 8 concurrent senders, 25 % duplicates). Starts toolgate
//! in-process on 127.0.0.1 with a fresh SQLite store and the embedded log sink, posts
//! notifications over HTTP like Alertmanager does (duplicates are re-sent notifications), then
//! checks that the outbox holds exactly one intent per unique alert and that the publisher
//! drained it. Prints alerts/s; the target is >= 5,000/s on 2 cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use toolgate::config::Config;
use toolgate::store::Store;

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn notification(batch: usize, size: usize) -> String {
    let alerts: Vec<Value> = (0..size)
        .map(|i| {
            let n = batch * size + i;
            json!({
                "status": "firing",
                "labels": {"alertname": "BenchAlert", "instance": format!("node-{n}"), "severity": "warning", "namespace": "prod"},
                "annotations": {"summary": format!("bench alert {n}"), "runbook_url": "https://runbooks.example/bench"},
                "startsAt": "2026-11-23T16:39:30Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example/graph?g0.expr=up",
                "fingerprint": format!("{n:016x}"),
            })
        })
        .collect();
    json!({
        "version": "4", "receiver": "toolgate", "status": "firing",
        "groupKey": format!("{{}}:{{alertname=\"BenchAlert\", batch=\"{batch}\"}}"),
        "truncatedAlerts": 0, "externalURL": "http://alertmanager.example:9093",
        "groupLabels": {"alertname": "BenchAlert"}, "commonLabels": {"alertname": "BenchAlert"},
        "commonAnnotations": {}, "alerts": alerts,
    })
    .to_string()
}

fn main() -> anyhow::Result<()> {
    let alerts = arg(0, 100_000);
    let size = arg(1, 50).max(1);
    let clients = arg(2, 8).max(1);
    let dup_percent = arg(3, 25).min(90);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(alerts, size, clients, dup_percent))
}

async fn run(alerts: usize, size: usize, clients: usize, dup_percent: usize) -> anyhow::Result<()> {
    toolgate::app::init_crypto();
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config_path = dir.path().join("toolgate.yaml");
    std::fs::write(
        &config_path,
        format!(
            "listen: {addr}\nstore:\n  url: sqlite://{}\nkubernetes:\n  clusters:\n    - name: none\n      in_cluster: true\nwebhooks:\n  alertmanager:\n    max_body_bytes: 8388608\n",
            dir.path().join("bench.db").display()
        ),
    )?;
    let config = Config::load_from(Some(&config_path), &[]).map_err(anyhow::Error::msg)?;
    let store_url = config.store_url.clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(toolgate::app::serve_on(listener, config, shutdown.clone()));
    let url = format!("http://{addr}/webhooks/alertmanager");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    for _ in 0..200 {
        if http
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Every notification is new, except `dup_percent` of them, spread evenly, which re-send an
    // earlier one (as Alertmanager does on repeat_interval or after a failed delivery).
    let total = alerts.div_ceil(size);
    let dup_batches = total * dup_percent / 100;
    let mut plan: Vec<usize> = Vec::with_capacity(total);
    let mut unique = 0usize;
    for i in 0..total {
        let dup_slot = (i + 1) * dup_batches / total > i * dup_batches / total;
        if dup_slot && unique > 0 {
            plan.push((i * 7919) % unique);
        } else {
            plan.push(unique);
            unique += 1;
        }
    }
    let expected_unique = unique * size;
    let bodies: Arc<Vec<String>> = Arc::new((0..unique).map(|b| notification(b, size)).collect());
    let plan = Arc::new(plan);
    let next = Arc::new(AtomicUsize::new(0));
    let sent_alerts = Arc::new(AtomicUsize::new(0));
    let duplicates = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, bodies, plan, next, sent_alerts, duplicates) = (
            http.clone(),
            url.clone(),
            bodies.clone(),
            plan.clone(),
            next.clone(),
            sent_alerts.clone(),
            duplicates.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&batch) = plan.get(i) else { break };
                let resp = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(bodies[batch].clone())
                    .send()
                    .await?;
                anyhow::ensure!(resp.status().is_success(), "HTTP {}", resp.status());
                let answer: Value = resp.json().await?;
                sent_alerts.fetch_add(size, Ordering::Relaxed);
                duplicates.fetch_add(
                    answer["duplicates"].as_u64().unwrap_or(0) as usize,
                    Ordering::Relaxed,
                );
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed();
    let sent = sent_alerts.load(Ordering::Relaxed);
    let dups = duplicates.load(Ordering::Relaxed);

    let store = Store::connect(&store_url).await?;
    let (pending, done) = store.count_intents().await?;
    let stored = (pending + done) as usize;
    let drain_start = Instant::now();
    loop {
        let (pending, _) = store.count_intents().await?;
        if pending == 0 || drain_start.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (pending_after, sent_after) = store.count_intents().await?;
    shutdown.cancel();
    let _ = server.await;

    let rate = sent as f64 / elapsed.as_secs_f64();
    println!(
        "webhook_ingest: {sent} alerts in {} notifications of {size} ({clients} senders, {dups} duplicates dropped)",
        plan.len()
    );
    println!(
        "webhook_ingest: {:.2} s, {rate:.0} alerts/s ({:.0} notifications/s)",
        elapsed.as_secs_f64(),
        plan.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "webhook_ingest: outbox {stored} intents for {expected_unique} unique alerts; after drain {sent_after} sent, {pending_after} pending ({:.2} s)",
        drain_start.elapsed().as_secs_f64()
    );
    anyhow::ensure!(
        stored == expected_unique,
        "lost or duplicated intents: {stored} != {expected_unique}"
    );
    anyhow::ensure!(
        dups == sent - expected_unique,
        "duplicates dropped {dups} != {}",
        sent - expected_unique
    );
    anyhow::ensure!(pending_after == 0, "{pending_after} intents not delivered");
    println!(
        "webhook_ingest: target 5000 alerts/s: {}",
        if rate >= 5000.0 { "met" } else { "NOT met" }
    );
    Ok(())
}
