//! `toolgate-scale`: what a default-budget list costs as the cluster grows (issue 15, item 9).
//! Starts the test fake Kubernetes API server and toolgate against it, then grows the cluster
//! to each size (default 200, 5,000 and 50,000 pods in 5 namespaces) and at each size:
//! - times `k8s_list_resources {kind: pods}` with the default output budget (p50, mean);
//! - counts the list requests the fake received per call and the pods they asked for (`limit`);
//! - reads the resident size of a toolgate started for this size (after the timed calls, and
//!   its peak over the walk below);
//! - walks the whole list by cursor and checks that every pod came exactly once, timing the
//!   first and the last calls of the walk (a cursor deep in the list must cost no more);
//! - times the largest answer a caller may ask for (`max_bytes` 1 MiB).
//!
//! Run through `bench/run` (which builds it), or `toolgate-scale --toolgate BIN
//! [--sizes 200,5000,50000] [--calls N]`.

#[path = "../../tests/integration/fake_kube/mod.rs"]
mod fake_kube;
#[allow(dead_code)]
mod mcp;
#[allow(dead_code)]
mod proc;
mod serve_cmd;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use fake_kube::FakeKube;
use mcp::Session;
use serve_cmd::{TOKEN, toolgate_serve};

const NAMESPACES: &[&str] = &["prod", "staging", "dev", "batch", "infra"];
const TOOL: &str = "k8s_list_resources";
/// Calls of the walk timed at its start and at its end.
const WALK_EDGE: usize = 10;

struct Args {
    toolgate: std::path::PathBuf,
    sizes: Vec<usize>,
    calls: usize,
}

fn args() -> Result<Args> {
    let mut a = Args {
        toolgate: "target/release/toolgate".into(),
        sizes: vec![200, 5_000, 50_000],
        calls: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--toolgate" => a.toolgate = v()?.into(),
            "--sizes" => {
                a.sizes = v()?
                    .split(',')
                    .map(|s| s.trim().replace('_', "").parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--sizes: whole numbers separated by commas")?;
            }
            "--calls" => a.calls = v()?.parse().context("--calls: a whole number")?,
            other => bail!(
                "unknown argument {other}; expected --toolgate BIN [--sizes 200,5000,50000] [--calls N]"
            ),
        }
    }
    if a.sizes.windows(2).any(|w| w[0] >= w[1]) {
        bail!("--sizes must grow: the cluster is only ever grown");
    }
    Ok(a)
}

/// What one size measured.
struct Figures {
    pods: usize,
    /// The fake API server's p50 for the page toolgate asks for, asked directly.
    fake_page_ms: f64,
    p50_ms: f64,
    mean_ms: f64,
    /// toolgate's CPU time per call (user + system).
    cpu_per_call_ms: f64,
    requests_per_call: f64,
    pods_asked_per_call: f64,
    answer_bytes: usize,
    rows_per_answer: usize,
    rss_kb: u64,
    hwm_kb: u64,
    /// p50, bytes and rows of an answer with `max_bytes` 1 MiB.
    big_ms: f64,
    big_bytes: usize,
    big_rows: usize,
    walk_calls: usize,
    walk_first_ms: f64,
    walk_last_ms: f64,
    walk_s: f64,
}

/// The `tools/call` result of an MCP answer, or why there is none.
fn result_of(body: &str) -> Result<Value> {
    let v: Value = serde_json::from_str(body).context("answer is not JSON")?;
    if let Some(e) = v.get("error") {
        bail!("JSON-RPC error: {e}");
    }
    let result = v.get("result").cloned().context("answer without result")?;
    if result.get("isError") == Some(&Value::Bool(true)) {
        bail!(
            "tool error: {}",
            result.to_string().chars().take(300).collect::<String>()
        );
    }
    Ok(result)
}

/// `namespace/name` of every row of a compact pod list.
fn pod_keys(structured: &Value) -> Result<Vec<String>> {
    let columns: Vec<&str> = structured["columns"]
        .as_array()
        .context("answer without columns")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let at = |c: &str| columns.iter().position(|x| *x == c);
    let (Some(ns), Some(name)) = (at("namespace"), at("name")) else {
        bail!("columns {columns:?} lack namespace or name");
    };
    Ok(structured["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{}/{}",
                r[ns].as_str().unwrap_or(""),
                r[name].as_str().unwrap_or("")
            )
        })
        .collect())
}

/// List requests for pods the fake received from `from` on: how many, and the pods they asked
/// for (a request without `limit` asks for all `pods`).
fn list_requests(fake: &FakeKube, from: usize, pods: usize) -> (usize, usize) {
    let reqs = fake.requests();
    let lists: Vec<_> = reqs[from.min(reqs.len())..]
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/v1/pods")
        .collect();
    let asked = lists
        .iter()
        .map(|r| url_limit(&r.query).unwrap_or(pods))
        .sum();
    (lists.len(), asked)
}

/// The fake's own p50 for the first list request toolgate sent from `from` on, sent again
/// as it was (query and Accept header): what the API server's part of a call costs.
async fn upstream_ms(fake: &FakeKube, from: usize) -> Result<f64> {
    let reqs = fake.requests();
    let Some(r) = reqs[from.min(reqs.len())..]
        .iter()
        .find(|r| r.method == "GET" && r.path == "/api/v1/pods")
    else {
        bail!("toolgate sent no list request");
    };
    let http = reqwest::Client::new();
    let mut times = Vec::new();
    for _ in 0..21 {
        let mut rb = http.get(format!("{}{}?{}", fake.url, r.path, r.query));
        if let Some(accept) = &r.accept {
            rb = rb.header("accept", accept);
        }
        let t = Instant::now();
        rb.send().await?.error_for_status()?.bytes().await?;
        times.push(ms(t.elapsed()));
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn url_limit(query: &str) -> Option<usize> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("limit="))
        .and_then(|v| v.parse().ok())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn measure(
    a: &Args,
    fake: &FakeKube,
    session: &mut Session,
    pid: u32,
    pods: usize,
) -> Result<Figures> {
    let call = json!({"kind": "pods"});
    for _ in 0..5 {
        result_of(&session.call_tool(TOOL, &call).await?)?;
    }
    let from = fake.requests().len();
    let cpu_before = proc::cpu_ms(pid);
    let mut times = Vec::with_capacity(a.calls);
    let mut answer_bytes = 0;
    let mut rows_per_answer = 0;
    for _ in 0..a.calls {
        let t = Instant::now();
        let body = session.call_tool(TOOL, &call).await?;
        times.push(t.elapsed());
        let result = result_of(&body)?;
        answer_bytes = body.len();
        rows_per_answer = result["structuredContent"]["rows"]
            .as_array()
            .map_or(0, Vec::len);
    }
    let cpu_per_call_ms = (proc::cpu_ms(pid) - cpu_before) / a.calls.max(1) as f64;
    let (requests, asked) = list_requests(fake, from, pods);
    let fake_page_ms = upstream_ms(fake, from).await?;
    let rss_kb = proc::tree_rss_kb(pid);
    let mean_ms = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len().max(1) as f64;
    times.sort();
    let p50_ms = times.get(times.len() / 2).map_or(0.0, |d| ms(*d));

    // The whole list by cursor: every pod exactly once.
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(pods);
    let mut walk_times = Vec::new();
    let mut args = call.clone();
    let walk_start = Instant::now();
    loop {
        let t = Instant::now();
        let body = session.call_tool(TOOL, &args).await?;
        walk_times.push(t.elapsed());
        let result = result_of(&body)?;
        let sc = &result["structuredContent"];
        for key in pod_keys(sc)? {
            *seen.entry(key).or_default() += 1;
        }
        match sc.get("cursor").and_then(Value::as_str) {
            Some(cursor) => args = json!({"kind": "pods", "cursor": cursor}),
            None => break,
        }
        if walk_times.len() > pods + 10 {
            bail!("the cursor walk at {pods} pods does not end");
        }
    }
    let walk_s = walk_start.elapsed().as_secs_f64();
    let hwm_kb = proc::tree_hwm_kb(pid);
    // The largest answer a caller may ask for (`max_bytes` at `tools.max_bytes_limit`).
    let big = json!({"kind": "pods", "max_bytes": 1_048_576});
    let mut big_times = Vec::new();
    let (mut big_bytes, mut big_rows) = (0, 0);
    for _ in 0..5 {
        let t = Instant::now();
        let body = session.call_tool(TOOL, &big).await?;
        big_times.push(ms(t.elapsed()));
        let result = result_of(&body)?;
        big_bytes = body.len();
        big_rows = result["structuredContent"]["rows"]
            .as_array()
            .map_or(0, Vec::len);
    }
    big_times.sort_by(f64::total_cmp);
    let big_ms = big_times[big_times.len() / 2];

    let twice = seen.values().filter(|&&n| n > 1).count();
    if seen.len() != pods || twice > 0 {
        bail!(
            "the cursor walk at {pods} pods saw {} distinct pods, {twice} more than once",
            seen.len()
        );
    }
    let edge = |d: &[Duration]| d.iter().map(|d| ms(*d)).sum::<f64>() / d.len().max(1) as f64;
    let n = walk_times.len();
    let k = WALK_EDGE.min(n);
    Ok(Figures {
        pods,
        fake_page_ms,
        p50_ms,
        mean_ms,
        cpu_per_call_ms,
        requests_per_call: requests as f64 / a.calls.max(1) as f64,
        pods_asked_per_call: asked as f64 / a.calls.max(1) as f64,
        answer_bytes,
        rows_per_answer,
        rss_kb,
        hwm_kb,
        big_ms,
        big_bytes,
        big_rows,
        walk_calls: n,
        walk_first_ms: edge(&walk_times[..k]),
        walk_last_ms: edge(&walk_times[n - k..]),
        walk_s,
    })
}

/// toolgate against the fake, started from its binary; the process, its pid and an MCP
/// session that has listed the tools.
async fn start_toolgate(
    a: &Args,
    fake: &FakeKube,
    work: &std::path::Path,
) -> Result<(tokio::process::Child, u32, Session)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut cmd = toolgate_serve(
        &a.toolgate,
        &fake.kubeconfig,
        work,
        port,
        &format!("toolgate-{port}.db"),
    )?;
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let child = cmd.spawn().context("starting toolgate")?;
    let pid = child.id().context("toolgate pid")?;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let t0 = Instant::now();
    let mut session = loop {
        if let Ok(s) = Session::open(&http, &url, Some(TOKEN)).await {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("toolgate did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    session.request("tools/list", json!({})).await?;
    Ok((child, pid, session))
}

#[tokio::main]
async fn main() -> Result<()> {
    toolgate::app::init_crypto();
    let a = args()?;
    let work = tempfile::tempdir()?;
    let fake = FakeKube::start().await;
    let first = a.sizes.first().copied().unwrap_or(200);
    fake.seed_pods(first, NAMESPACES);

    let mut rows = Vec::new();
    let mut have = first;
    for &size in &a.sizes {
        if size > have {
            eprintln!("growing the cluster to {size} pods…");
            fake.seed_pods(size - have, NAMESPACES);
            have = size;
        }
        // Seeded names end in a short hash: a few may collide, so count what the fake holds.
        let pods = fake.list("v1", "Pod", None).len();
        // A fresh server per size: its memory then shows the cluster's size, not the calls
        // made at the sizes before.
        let (mut child, pid, mut session) = start_toolgate(&a, &fake, work.path()).await?;
        let f = measure(&a, &fake, &mut session, pid, pods).await;
        proc::stop(&mut child).await;
        rows.push(f?);
    }

    println!(
        "default-budget list of all pods ({} calls a size, one caller; the fake API server in this process)",
        a.calls
    );
    println!(
        "{:>8} {:>7} {:>7} {:>8} {:>7} {:>9} {:>10} {:>8} {:>6} {:>9} {:>9} {:>6} {:>10} {:>10} {:>7}",
        "pods",
        "API ms",
        "p50 ms",
        "mean ms",
        "CPU ms",
        "req/call",
        "pods asked",
        "bytes",
        "rows",
        "RSS MiB",
        "peak MiB",
        "walk",
        "first ms",
        "last ms",
        "walk s"
    );
    for f in &rows {
        println!(
            "{:>8} {:>7.2} {:>7.2} {:>8.2} {:>7.2} {:>9.2} {:>10.0} {:>8} {:>6} {:>9.1} {:>9.1} {:>6} {:>10.2} {:>10.2} {:>7.2}",
            f.pods,
            f.fake_page_ms,
            f.p50_ms,
            f.mean_ms,
            f.cpu_per_call_ms,
            f.requests_per_call,
            f.pods_asked_per_call,
            f.answer_bytes,
            f.rows_per_answer,
            f.rss_kb as f64 / 1024.0,
            f.hwm_kb as f64 / 1024.0,
            f.walk_calls,
            f.walk_first_ms,
            f.walk_last_ms,
            f.walk_s
        );
    }
    println!("answers of at most 1 MiB (max_bytes 1048576), p50 of 5:");
    for f in &rows {
        println!(
            "{:>8} pods: {:>8.2} ms, {:>8} bytes, {:>6} rows",
            f.pods, f.big_ms, f.big_bytes, f.big_rows
        );
    }
    if let (Some(small), Some(large)) = (rows.first(), rows.last()) {
        println!(
            "  {} pods / {} pods: p50 {:.2}x, toolgate CPU a call {:.2}x, RSS {:.2}x (goal: time ≤ 2x, RSS flat)",
            large.pods,
            small.pods,
            large.p50_ms / small.p50_ms.max(f64::EPSILON),
            large.cpu_per_call_ms / small.cpu_per_call_ms.max(f64::EPSILON),
            large.rss_kb as f64 / small.rss_kb.max(1) as f64
        );
    }
    Ok(())
}
