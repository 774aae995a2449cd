//! `toolgate-bench`: starts the test fake Kubernetes API server with 200 pods in 5 namespaces,
//! then, one after another, toolgate and two peer MCP servers against it; for each: time from
//! exec to the first tools/list answer and that listing's size, idle and loaded RSS, the "list all pods" call at
//! concurrency 1 and 16 for a fixed time (calls/s, p50, p99) and the answer's size. Every
//! distinct answer is checked to hold all 200 pod names. Prints a table and toolgate/peer ratios.
//!
//! Run through `bench/run` (which builds and installs what this needs). Arguments:
//! `--toolgate BIN --peers DIR [--seconds N] [--json FILE]`.

#[path = "../../tests/integration/fake_kube/mod.rs"]
mod fake_kube;
mod mcp;
mod proc;

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use fake_kube::FakeKube;
use mcp::Session;

const PODS: usize = 200;
const NAMESPACES: &[&str] = &["prod", "staging", "dev", "batch", "infra"];
const TOKEN: &str = "bench-caller-token-0123456789";

struct Args {
    toolgate: PathBuf,
    peers: PathBuf,
    seconds: u64,
    json: Option<PathBuf>,
    only: Option<String>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        toolgate: PathBuf::from("target/release/toolgate"),
        peers: PathBuf::from("bench/node_modules"),
        seconds: 10,
        json: None,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--toolgate" => a.toolgate = PathBuf::from(v()?),
            "--peers" => a.peers = PathBuf::from(v()?),
            "--seconds" => a.seconds = v()?.parse().context("--seconds: a whole number")?,
            "--json" => a.json = Some(PathBuf::from(v()?)),
            "--only" => a.only = Some(v()?),
            other => bail!(
                "unknown argument {other}; expected --toolgate BIN --peers DIR [--seconds N] [--json FILE] [--only toolgate|go|node]"
            ),
        }
    }
    Ok(a)
}

/// Makes the [`Server`] for one run.
type Build = fn(&Args, &FakeKube, &Path) -> Result<Server>;

/// How to start one server and make the equivalent call.
struct Server {
    key: &'static str,
    label: &'static str,
    cmd: Command,
    url: String,
    token: Option<&'static str>,
    tool: &'static str,
    args: Value,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn log_file(dir: &Path, name: &str) -> Result<Stdio> {
    Ok(Stdio::from(std::fs::File::create(dir.join(name))?))
}

fn toolgate(a: &Args, fake: &FakeKube, work: &Path) -> Result<Server> {
    let port = free_port()?;
    let tokens = work.join("tokens.yaml");
    std::fs::write(
        &tokens,
        format!("- {{token: {TOKEN}, sub: bench, name: Bench, roles: [toolgate.caller]}}\n"),
    )?;
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let config = work.join("toolgate.yaml");
    // Per-principal rate limits are off: the load client is one principal making thousands of
    // calls a second, and the peers have no such limit; the gate bench measures the limiter.
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\nlog: {{level: warn}}\nauth:\n  mode: local\n  anonymous: false\n  tokens_file: {}\n\
             store:\n  url: sqlite://{}\npolicies:\n  dir: {}\n\
             kubernetes:\n  clusters:\n    - {{name: fake, kubeconfig: {}, context: fake}}\n\
             limits: {{tool_calls_per_minute: 0, approval_requests_per_hour: 0}}\n",
            tokens.display(),
            work.join("toolgate.db").display(),
            policies.display(),
            fake.kubeconfig.display(),
        ),
    )?;
    let mut cmd = Command::new(&a.toolgate);
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .env_remove("KUBECONFIG")
        .stdout(log_file(work, "toolgate.log")?)
        .stderr(log_file(work, "toolgate.err")?);
    for (k, _) in std::env::vars() {
        if k.starts_with("TOOLGATE_") {
            cmd.env_remove(k);
        }
    }
    Ok(Server {
        key: "toolgate",
        label: "toolgate",
        cmd,
        url: format!("http://127.0.0.1:{port}/mcp"),
        token: Some(TOKEN),
        // As toolgate lists it (underscored by default).
        tool: "k8s_list_resources",
        // The whole list in one answer (the default output budget is 16 KiB).
        args: json!({"kind": "pods", "max_bytes": 1_048_576}),
    })
}

fn go_peer(a: &Args, fake: &FakeKube, work: &Path) -> Result<Server> {
    let port = free_port()?;
    let bin = a
        .peers
        .join("kubernetes-mcp-server-linux-amd64/bin/kubernetes-mcp-server-linux-amd64");
    let mut cmd = Command::new(bin);
    cmd.arg("--port")
        .arg(port.to_string())
        .arg("--bind-address")
        .arg("127.0.0.1")
        .arg("--read-only")
        .arg("--kubeconfig")
        .arg(&fake.kubeconfig)
        // client-go's default limit (5 requests/s, burst 10) would cap it at ~5 calls/s.
        .env("KUBE_CLIENT_QPS", "10000")
        .env("KUBE_CLIENT_BURST", "20000")
        .env("HOME", work)
        .env_remove("KUBECONFIG")
        .stdout(log_file(work, "go-peer.log")?)
        .stderr(log_file(work, "go-peer.err")?);
    Ok(Server {
        key: "go",
        label: "kubernetes-mcp-server 0.0.67 (Go)",
        cmd,
        url: format!("http://127.0.0.1:{port}/mcp"),
        token: None,
        tool: "pods_list",
        args: json!({}),
    })
}

fn node_peer(a: &Args, fake: &FakeKube, work: &Path) -> Result<Server> {
    let port = free_port()?;
    let mut cmd = Command::new("node");
    cmd.arg(a.peers.join("mcp-server-kubernetes/dist/index.js"))
        .env("KUBECONFIG", &fake.kubeconfig)
        .env("ENABLE_UNSAFE_STREAMABLE_HTTP_TRANSPORT", "1")
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("ALLOW_ONLY_READONLY_TOOLS", "true")
        // kubectl's JSON for 200 pods is over the default 1 MiB spawn buffer.
        .env("SPAWN_MAX_BUFFER", "67108864")
        .env("HOME", work)
        .stdout(log_file(work, "node-peer.log")?)
        .stderr(log_file(work, "node-peer.err")?);
    Ok(Server {
        key: "node",
        label: "mcp-server-kubernetes 4.1.7 (Node)",
        cmd,
        url: format!("http://127.0.0.1:{port}/mcp"),
        token: None,
        tool: "kubectl_get",
        args: json!({"resourceType": "pods", "allNamespaces": true}),
    })
}

#[derive(Default, Clone)]
struct Load {
    calls: usize,
    errors: usize,
    calls_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Default)]
struct Figures {
    /// Median of three starts after a first, uncounted one.
    startup_ms: f64,
    first_start_ms: f64,
    tools: usize,
    /// Bytes of the `tools/list` JSON-RPC `result`, compact: what an agent pays every turn.
    list_bytes: usize,
    idle_rss_kb: u64,
    /// Of the idle RSS, the anonymous (private) part: heap and stacks, without the pages of
    /// the program's files that are resident (shared with the page cache).
    idle_anon_kb: u64,
    load_rss_kb: u64,
    answer_bytes: usize,
    pods_in_answer: usize,
    distinct_answers: usize,
    bad_answers: usize,
    failure: Option<String>,
    c1: Load,
    c16: Load,
}

/// Answers seen during a load run, by hash of their `result` part (the id differs per call).
#[derive(Default)]
struct Seen {
    bodies: HashMap<u64, String>,
}

fn result_hash(body: &str) -> u64 {
    let from = body.find("\"result\"").unwrap_or(0);
    let mut h = DefaultHasher::new();
    body[from..].hash(&mut h);
    h.finish()
}

/// Pod names found in an answer (text content and structured content alike).
fn pods_in(body: &str, names: &[String]) -> Result<usize> {
    let v: Value = serde_json::from_str(body).context("answer is not JSON")?;
    if let Some(e) = v.get("error") {
        bail!("JSON-RPC error: {e}");
    }
    let result = v.get("result").context("answer without result")?;
    if result.get("isError") == Some(&Value::Bool(true)) {
        bail!(
            "tool error: {}",
            result.to_string().chars().take(300).collect::<String>()
        );
    }
    let mut text = String::new();
    for c in result
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = c.get("text").and_then(Value::as_str) {
            text.push_str(t);
            text.push('\n');
        }
    }
    if let Some(s) = result.get("structuredContent") {
        text.push_str(&s.to_string());
    }
    let tokens: std::collections::HashSet<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .collect();
    Ok(names.iter().filter(|n| tokens.contains(n.as_str())).count())
}

/// A started server, the time from exec to its first `tools/list` answer (ms), how many tools
/// it listed and the bytes of that listing's `result`.
async fn start(server: &mut Server, http: &reqwest::Client) -> Result<(Child, f64, usize, usize)> {
    let t0 = Instant::now();
    let child = server
        .cmd
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", server.label))?;
    loop {
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("{} did not answer tools/list within 60 s", server.label);
        }
        if let Ok(mut s) = Session::open(http, &server.url, server.token).await
            && let Ok(list) = s.request("tools/list", json!({})).await
        {
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            let v: Value = serde_json::from_str(&list)?;
            let list_bytes = v.get("result").map_or(0, |r| r.to_string().len());
            let tools = v
                .pointer("/result/tools")
                .and_then(Value::as_array)
                .with_context(|| format!("tools/list answer: {list}"))?;
            if !tools
                .iter()
                .any(|t| t.get("name").and_then(Value::as_str) == Some(server.tool))
            {
                bail!("{} has no tool {}", server.label, server.tool);
            }
            return Ok((child, ms, tools.len(), list_bytes));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

async fn load(
    server: &Server,
    http: &reqwest::Client,
    concurrency: usize,
    seconds: u64,
    seen: Arc<Mutex<Seen>>,
    pid: u32,
    peak_rss: &mut u64,
) -> Result<Load> {
    let mut sessions = Vec::new();
    for _ in 0..concurrency {
        sessions.push(Session::open(http, &server.url, server.token).await?);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for mut s in sessions {
        let tool = server.tool;
        let args = server.args.clone();
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut first_error = None;
            while Instant::now() < deadline {
                let t = Instant::now();
                match s.call_tool(tool, &args).await {
                    Ok(body) => {
                        lat.push(t.elapsed());
                        let h = result_hash(&body);
                        let mut seen = seen.lock().await;
                        seen.bodies.entry(h).or_insert(body);
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e.to_string());
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    // Sample the server's memory (with its children) while the load runs.
    while Instant::now() < deadline {
        *peak_rss = (*peak_rss).max(proc::tree_rss_kb(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e, first) = t.await?;
        all.extend(lat);
        errors += e;
        if let Some(first) = first {
            eprintln!("  {}: call failed: {first}", server.key);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    Ok(Load {
        calls: all.len(),
        errors,
        calls_per_s: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
    })
}

async fn measure(
    mut server: Server,
    http: &reqwest::Client,
    names: &[String],
    seconds: u64,
) -> Result<Figures> {
    eprintln!("== {}", server.label);
    let mut f = Figures::default();
    // The first start is not counted: it reads a freshly built binary from disk and toolgate
    // creates its store. Then the median of three starts (the last one stays up for the runs).
    let (mut first, first_ms, _, _) = start(&mut server, http).await?;
    proc::stop(&mut first).await;
    let mut starts = Vec::new();
    let mut running = None;
    for i in 0..3 {
        let (mut child, ms, tools, list_bytes) = start(&mut server, http).await?;
        starts.push(ms);
        f.tools = tools;
        f.list_bytes = list_bytes;
        if i < 2 {
            proc::stop(&mut child).await;
        } else {
            running = Some(child);
        }
    }
    starts.sort_by(f64::total_cmp);
    let startup_ms = starts[1];
    let mut child = running.context("server running")?;
    let pid = child.id().context("server pid")?;
    f.startup_ms = startup_ms;
    f.first_start_ms = first_ms;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    f.idle_rss_kb = proc::tree_hwm_kb(pid);
    f.idle_anon_kb = proc::tree_anon_kb(pid);
    eprintln!(
        "  started in {startup_ms:.0} ms (median of 3; first start {first_ms:.0} ms), {} tools listed in {} bytes, idle {} KiB",
        f.tools, f.list_bytes, f.idle_rss_kb
    );

    let mut s = Session::open(http, &server.url, server.token).await?;
    let first = s.call_tool(server.tool, &server.args).await?;
    f.answer_bytes = first.len();
    match pods_in(&first, names) {
        Ok(n) => f.pods_in_answer = n,
        Err(e) => f.failure = Some(format!("first answer: {e}")),
    }
    if f.pods_in_answer < PODS || std::env::var_os("BENCH_DEBUG").is_some() {
        eprintln!(
            "  first answer: {}",
            first
                .chars()
                .take(if std::env::var_os("BENCH_DEBUG").is_some() {
                    100_000
                } else {
                    600
                })
                .collect::<String>()
        );
    }
    if f.failure.is_none() && f.pods_in_answer < PODS {
        f.failure = Some(format!(
            "the answer holds {} of {PODS} pods",
            f.pods_in_answer
        ));
    }
    eprintln!(
        "  answer: {} bytes, {} of {PODS} pods",
        f.answer_bytes, f.pods_in_answer
    );
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut peak = 0u64;
    for c in [1usize, 16] {
        let l = load(&server, http, c, seconds, seen.clone(), pid, &mut peak).await?;
        eprintln!(
            "  c{c}: {:.1} calls/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
            l.calls_per_s, l.p50_ms, l.p99_ms, l.errors
        );
        if l.errors > 0 && f.failure.is_none() {
            f.failure = Some(format!("{} failed calls at concurrency {c}", l.errors));
        }
        if c == 1 {
            f.c1 = l;
        } else {
            f.c16 = l;
        }
    }
    f.load_rss_kb = peak.max(proc::tree_hwm_kb(pid));
    let seen = seen.lock().await;
    f.distinct_answers = seen.bodies.len();
    for body in seen.bodies.values() {
        match pods_in(body, names) {
            Ok(n) if n == PODS => {}
            Ok(n) => {
                f.bad_answers += 1;
                f.failure
                    .get_or_insert(format!("an answer under load held {n} of {PODS} pods"));
            }
            Err(e) => {
                f.bad_answers += 1;
                f.failure
                    .get_or_insert(format!("an answer under load: {e}"));
            }
        }
    }
    proc::stop(&mut child).await;
    Ok(f)
}

fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 {
        "-".into()
    } else {
        format!("{:.3}x", a / b)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    toolgate::app::init_crypto();
    let a = args()?;
    let work = tempfile::tempdir()?;
    let fake = FakeKube::start().await;
    fake.seed_pods(PODS, NAMESPACES);
    let names: Vec<String> = fake
        .list("v1", "Pod", None)
        .iter()
        .filter_map(|p| p.pointer("/metadata/name").and_then(Value::as_str))
        .map(String::from)
        .collect();
    assert_eq!(names.len(), PODS, "the fake holds the seeded pods");
    eprintln!(
        "fake API server {} with {PODS} pods in {} namespaces; {} s per run",
        fake.url,
        NAMESPACES.len(),
        a.seconds
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let mut results: Vec<(&'static str, &'static str, Result<Figures>)> = Vec::new();
    let builders: [(&str, Build); 3] =
        [("toolgate", toolgate), ("go", go_peer), ("node", node_peer)];
    for (key, build) in builders {
        if a.only.as_deref().is_some_and(|o| o != key) {
            continue;
        }
        let dir = work.path().join(key);
        std::fs::create_dir_all(&dir)?;
        let server = build(&a, &fake, &dir)?;
        let label = server.label;
        let r = measure(server, &http, &names, a.seconds).await;
        if let Err(e) = &r {
            eprintln!("  {label}: run failed: {e:#}");
            for log in ["toolgate.err", "go-peer.err", "node-peer.err"] {
                if let Ok(t) = std::fs::read_to_string(dir.join(log)) {
                    eprintln!("  {log}:\n{}", t.chars().take(2000).collect::<String>());
                }
            }
        }
        if std::env::var_os("BENCH_DEBUG").is_some() {
            for r in fake.requests().iter().take(40) {
                eprintln!(
                    "  api: {} {}?{} accept={:?} type={:?}",
                    r.method, r.path, r.query, r.accept, r.content_type
                );
            }
        }
        results.push((key, label, r));
    }
    report(&a, &results)
}

fn report(a: &Args, results: &[(&str, &str, Result<Figures>)]) -> Result<()> {
    let ok: HashMap<&str, &Figures> = results
        .iter()
        .filter_map(|(k, _, r)| r.as_ref().ok().map(|f| (*k, f)))
        .collect();
    type Row = (&'static str, fn(&Figures) -> f64, bool);
    let rows: [Row; 14] = [
        ("calls/s, concurrency 1", |f| f.c1.calls_per_s, true),
        ("p50 ms, concurrency 1", |f| f.c1.p50_ms, false),
        ("p99 ms, concurrency 1", |f| f.c1.p99_ms, false),
        ("calls/s, concurrency 16", |f| f.c16.calls_per_s, true),
        ("p50 ms, concurrency 16", |f| f.c16.p50_ms, false),
        ("p99 ms, concurrency 16", |f| f.c16.p99_ms, false),
        (
            "exec to first tools/list, ms (median of 3)",
            |f| f.startup_ms,
            false,
        ),
        (
            "peak RSS idle, MiB",
            |f| f.idle_rss_kb as f64 / 1024.0,
            false,
        ),
        (
            "  of it anonymous (heap), MiB",
            |f| f.idle_anon_kb as f64 / 1024.0,
            false,
        ),
        (
            "peak RSS under load, MiB",
            |f| f.load_rss_kb as f64 / 1024.0,
            false,
        ),
        (
            "answer bytes (JSON-RPC message)",
            |f| f.answer_bytes as f64,
            false,
        ),
        ("pods in answer", |f| f.pods_in_answer as f64, true),
        ("tools listed", |f| f.tools as f64, true),
        ("tools/list result bytes", |f| f.list_bytes as f64, false),
    ];
    let fmt = |v: f64| {
        if v >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        }
    };
    println!();
    println!(
        "{:<34} {:>12} {:>12} {:>12} {:>14} {:>14}",
        "200 pods, 5 namespaces",
        "toolgate",
        "Go peer",
        "Node peer",
        "toolgate/Go",
        "toolgate/Node"
    );
    for (name, get, _) in rows.iter() {
        let cell = |k: &str| ok.get(k).map(|f| fmt(get(f))).unwrap_or_else(|| "-".into());
        let r = |k: &str| match (ok.get("toolgate"), ok.get(k)) {
            (Some(t), Some(p)) => ratio(get(t), get(p)),
            _ => "-".into(),
        };
        println!(
            "{:<34} {:>12} {:>12} {:>12} {:>14} {:>14}",
            name,
            cell("toolgate"),
            cell("go"),
            cell("node"),
            r("go"),
            r("node")
        );
    }
    println!();
    for (key, label, r) in results {
        match r {
            Ok(f) => match &f.failure {
                None => println!(
                    "{label}: OK — every answer held all {PODS} pods ({} calls, {} distinct answers checked)",
                    f.c1.calls + f.c16.calls + 1,
                    f.distinct_answers
                ),
                Some(why) => println!("{label}: FAILED RUN — {why}"),
            },
            Err(e) => println!("{label} ({key}): FAILED RUN — {e:#}"),
        }
    }
    let mut targets = Vec::new();
    if let (Some(t), Some(g)) = (ok.get("toolgate"), ok.get("go")) {
        let checks: [(&str, f64, f64, bool); 6] = [
            (
                "calls/s at c16 >= 10x Go",
                t.c16.calls_per_s / g.c16.calls_per_s,
                10.0,
                true,
            ),
            (
                "calls/s at c1 >= 5x Go",
                t.c1.calls_per_s / g.c1.calls_per_s,
                5.0,
                true,
            ),
            (
                "p99 at c16 <= 0.1x Go",
                t.c16.p99_ms / g.c16.p99_ms,
                0.1,
                false,
            ),
            (
                "idle RSS <= 0.2x Go",
                t.idle_rss_kb as f64 / g.idle_rss_kb as f64,
                0.2,
                false,
            ),
            (
                "startup <= 0.2x Go",
                t.startup_ms / g.startup_ms,
                0.2,
                false,
            ),
            (
                "answer bytes <= 0.5x Go",
                t.answer_bytes as f64 / g.answer_bytes as f64,
                0.5,
                false,
            ),
        ];
        println!();
        println!("targets (toolgate/Go, same run):");
        for (name, value, bound, at_least) in checks {
            let met = if at_least {
                value >= bound
            } else {
                value <= bound
            };
            println!(
                "  {:<28} {:>9.3}  {}",
                name,
                value,
                if met { "met" } else { "NOT MET" }
            );
            targets.push(json!({"target": name, "ratio": value, "met": met}));
        }
    }
    if let Some(path) = &a.json {
        let servers: Vec<Value> = results
            .iter()
            .map(|(k, label, r)| match r {
                Ok(f) => json!({
                    "server": k, "label": label, "failure": f.failure,
                    "startup_ms": f.startup_ms, "first_start_ms": f.first_start_ms, "tools": f.tools, "list_bytes": f.list_bytes,
                    "idle_rss_kb": f.idle_rss_kb, "idle_anon_kb": f.idle_anon_kb, "load_rss_kb": f.load_rss_kb,
                    "answer_bytes": f.answer_bytes, "pods_in_answer": f.pods_in_answer,
                    "distinct_answers": f.distinct_answers, "bad_answers": f.bad_answers,
                    "c1": {"calls": f.c1.calls, "errors": f.c1.errors, "calls_per_s": f.c1.calls_per_s, "p50_ms": f.c1.p50_ms, "p99_ms": f.c1.p99_ms},
                    "c16": {"calls": f.c16.calls, "errors": f.c16.errors, "calls_per_s": f.c16.calls_per_s, "p50_ms": f.c16.p50_ms, "p99_ms": f.c16.p99_ms},
                }),
                Err(e) => json!({"server": k, "label": label, "failure": format!("{e:#}")}),
            })
            .collect();
        std::fs::write(
            path,
            serde_json::to_string_pretty(
                &json!({"seconds": a.seconds, "servers": servers, "targets": targets}),
            )?,
        )?;
    }
    Ok(())
}
