//! `toolgate-watch`: what the Kubernetes watch + poll signal source holds (issue 19). Starts the
//! test fake Kubernetes API server with N pods (default 10,000) in 5 watched namespaces, then:
//! - a toolgate without the watch: its resident size (the base);
//! - a toolgate with `kubernetes.watch` on (pods, deployments, events; reconcile every 10 s):
//!   how long until every object is listed and the watches are open, its resident size then,
//!   after a full reconcile, and after M pods (default 1,000) change health (the intents
//!   written), with its peak resident size over the run.
//!
//! Run `toolgate-watch --toolgate BIN [--pods N] [--churn M]`.

#[path = "../../tests/integration/fake_kube/mod.rs"]
mod fake_kube;
#[allow(dead_code)]
mod proc;
mod serve_cmd;

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use fake_kube::FakeKube;
use serve_cmd::toolgate_serve;

const NAMESPACES: &[&str] = &["app-a", "app-b", "app-c", "app-d", "app-e"];

struct Args {
    toolgate: std::path::PathBuf,
    pods: usize,
    churn: usize,
}

fn args() -> Result<Args> {
    let mut a = Args {
        toolgate: "target/release/toolgate".into(),
        pods: 10_000,
        churn: 1_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--toolgate" => a.toolgate = v()?.into(),
            "--pods" => a.pods = v()?.replace('_', "").parse().context("--pods: a number")?,
            "--churn" => a.churn = v()?.replace('_', "").parse().context("--churn: a number")?,
            other => {
                bail!("unknown argument {other}; expected --toolgate BIN [--pods N] [--churn M]")
            }
        }
    }
    Ok(a)
}

struct Server {
    child: tokio::process::Child,
    pid: u32,
    url: String,
}

async fn start(a: &Args, fake: &FakeKube, work: &std::path::Path, watch: bool) -> Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let db = format!("toolgate-{port}.db");
    let mut cmd = toolgate_serve(&a.toolgate, &fake.kubeconfig, work, port, &db)?;
    if watch {
        let path = work.join("toolgate.yaml");
        let config = std::fs::read_to_string(&path)?.replacen(
            "kubernetes:\n",
            "kubernetes:\n  watch:\n    namespaces: [\"app-*\"]\n    resource_types: [pods, deployments, events]\n    poll_interval: 10s\n",
            1,
        );
        std::fs::write(&path, config)?;
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let child = cmd.spawn().context("starting toolgate")?;
    let pid = child.id().context("toolgate pid")?;
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    while http.get(format!("{url}/healthz")).send().await.is_err() {
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("toolgate did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Server { child, pid, url })
}

/// The `kubernetes_watch/fake` entry of `/readyz`.
async fn watch_entry(url: &str) -> Result<Value> {
    let v: Value = reqwest::Client::new()
        .get(format!("{url}/readyz"))
        .send()
        .await?
        .json()
        .await?;
    Ok(v["integrations"]["kubernetes_watch/fake"].clone())
}

async fn wait_for(
    url: &str,
    what: &str,
    limit: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Result<Duration> {
    let t0 = Instant::now();
    loop {
        if ok(&watch_entry(url).await?) {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > limit {
            bail!(
                "{what} not within {} s: {}",
                limit.as_secs(),
                watch_entry(url).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

#[tokio::main]
async fn main() -> Result<()> {
    toolgate::app::init_crypto();
    let a = args()?;
    let work = tempfile::tempdir()?;
    let fake = FakeKube::start().await;
    fake.seed_pods(a.pods, NAMESPACES);
    let pods = fake.list("v1", "Pod", None);
    let deployments = fake.list("apps/v1", "Deployment", None).len();
    let objects = pods.len() + deployments;
    println!(
        "{} pods and {deployments} deployments in {} namespaces",
        pods.len(),
        NAMESPACES.len()
    );

    let mut base = start(&a, &fake, work.path(), false).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let base_kb = proc::tree_rss_kb(base.pid);
    proc::stop(&mut base.child).await;

    let mut s = start(&a, &fake, work.path(), true).await?;
    let synced = wait_for(&s.url, "the initial list", Duration::from_secs(300), |e| {
        e["watch_connected"] == true && e["objects"].as_u64().unwrap_or(0) as usize >= objects
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let synced_kb = proc::tree_rss_kb(s.pid);
    let first_reconcile = watch_entry(&s.url).await?["last_reconcile_at"].clone();
    wait_for(&s.url, "a full reconcile", Duration::from_secs(120), |e| {
        e["last_reconcile_at"].is_string() && e["last_reconcile_at"] != first_reconcile
    })
    .await?;
    let reconciled_kb = proc::tree_rss_kb(s.pid);

    let t0 = Instant::now();
    let churn = a.churn.min(pods.len());
    for p in pods.iter().take(churn) {
        let ns = p["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = p["metadata"]["name"].as_str().unwrap_or_default();
        fake.modify("v1", "Pod", Some(ns), name, |p| {
            *p = fake_kube::objects::crash_looping(p.clone(), 2);
        });
    }
    wait_for(
        &s.url,
        "the churn's intents",
        Duration::from_secs(300),
        |e| e["intents"].as_u64().unwrap_or(0) as usize >= churn,
    )
    .await?;
    let churn_s = t0.elapsed().as_secs_f64();
    let churn_kb = proc::tree_rss_kb(s.pid);
    let hwm_kb = proc::tree_hwm_kb(s.pid);
    let entry = watch_entry(&s.url).await?;
    proc::stop(&mut s.child).await;

    println!("toolgate resident size (MiB)");
    println!(
        "{:<52} {:>8}",
        "without the watch",
        format!("{:.1}", mib(base_kb))
    );
    println!(
        "{:<52} {:>8}   (listed and watching after {:.1} s)",
        format!("watching {objects} objects, after the initial list"),
        format!("{:.1}", mib(synced_kb)),
        synced.as_secs_f64()
    );
    println!(
        "{:<52} {:>8}",
        "after a full reconcile",
        format!("{:.1}", mib(reconciled_kb))
    );
    println!(
        "{:<52} {:>8}   ({churn} health changes → {} intents in {churn_s:.1} s)",
        format!("after {churn} pods changed"),
        format!("{:.1}", mib(churn_kb)),
        entry["intents"]
    );
    println!(
        "{:<52} {:>8}",
        "peak over the run",
        format!("{:.1}", mib(hwm_kb))
    );
    println!(
        "per watched object: {:.2} KiB over the base",
        (synced_kb.saturating_sub(base_kb)) as f64 / objects.max(1) as f64
    );
    println!(
        "{}",
        json!({"objects": objects, "base_kb": base_kb, "synced_kb": synced_kb, "reconciled_kb": reconciled_kb, "churn_kb": churn_kb, "hwm_kb": hwm_kb, "sync_s": synced.as_secs_f64(), "churn_s": churn_s})
    );
    Ok(())
}
