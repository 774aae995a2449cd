//! `toolgate-bench`: starts the test fake Kubernetes API server with 200 pods in 5 namespaces,
//! then, one after another, toolgate and two peer MCP servers against it; for each: time from
//! exec to the first tools/list answer and that listing's size, idle and loaded RSS, the "list all pods" call at
//! concurrency 1 and 16 for a fixed time (calls/s, p50, p99) and the answer's size; then the
//! same for "the last 100 lines of one pod's log", and the answer size of "the events of one
//! namespace". Every distinct answer is checked to hold all 200 pod names (all 100 log lines,
//! every event). Prints tables and toolgate/peer ratios.
//!
//! With `--pairs N` it does only the log calls instead, toolgate and the Go peer running side by
//! side: N rounds, each a run of toolgate and a run of the Go peer at concurrency 1 and 16 (the
//! order alternating from round to round), then each round's ratio and the median. A ratio of
//! two runs minutes apart moves with whatever else the machine does; runs seconds apart, in
//! both orders, share more of it.
//!
//! Run through `bench/run` (which builds and installs what this needs). Arguments:
//! `--toolgate BIN --peers DIR [--seconds N] [--json FILE] [--only toolgate|go|node] [--pairs N]`.

#[path = "../../tests/integration/fake_kube/mod.rs"]
mod fake_kube;
mod mcp;
#[allow(dead_code)]
mod proc;
mod serve_cmd;

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
use serve_cmd::{TOKEN, toolgate_serve};

const PODS: usize = 200;
const NAMESPACES: &[&str] = &["prod", "staging", "dev", "batch", "infra"];
/// Lines in the log of the pod whose log is read; every server is asked for the last 100.
const LOG_LINES: usize = 100;
/// The namespace whose events are listed, and how many it has (pods of other namespaces
/// have events too, which must not appear).
const EVENTS_NAMESPACE: &str = "prod";
const EVENTS: usize = 40;

struct Args {
    toolgate: PathBuf,
    peers: PathBuf,
    seconds: u64,
    json: Option<PathBuf>,
    only: Option<String>,
    /// Rounds of toolgate and Go peer log runs side by side, instead of the whole bench.
    pairs: Option<usize>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        toolgate: PathBuf::from("target/release/toolgate"),
        peers: PathBuf::from("bench/node_modules"),
        seconds: 10,
        json: None,
        only: None,
        pairs: None,
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
            "--pairs" => {
                a.pairs = Some(
                    v()?.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .context("--pairs: a whole number of rounds, 1 or more")?,
                )
            }
            other => bail!(
                "unknown argument {other}; expected --toolgate BIN --peers DIR [--seconds N] [--json FILE] [--only toolgate|go|node] [--pairs N]"
            ),
        }
    }
    if a.pairs.is_some() && (a.only.is_some() || a.json.is_some()) {
        bail!(
            "--pairs runs toolgate and the Go peer side by side and writes no JSON; leave out --only and --json"
        );
    }
    Ok(a)
}

/// Makes the [`Server`] for one run.
type Build = fn(&Args, &FakeKube, &Workload, &Path) -> Result<Server>;

/// One tool call, made the same way many times.
#[derive(Clone)]
struct Call {
    tool: &'static str,
    args: Value,
}

/// What the fake holds and the answers must show.
struct Workload {
    pod_names: Vec<String>,
    /// The pod whose log is read (in [`EVENTS_NAMESPACE`]).
    log_pod: String,
    /// A marker in each of the last [`LOG_LINES`] lines, and in each older line.
    log_markers: Vec<String>,
    old_log_markers: Vec<String>,
    /// A marker in the message of each event of [`EVENTS_NAMESPACE`], and of other namespaces.
    event_markers: Vec<String>,
    foreign_event_markers: Vec<String>,
}

/// Seeds one pod's log (half again as many lines as are read) and events in two namespaces.
fn seed_logs_and_events(fake: &FakeKube, pod_names: Vec<String>) -> Result<Workload> {
    let pods = fake.list("v1", "Pod", Some(EVENTS_NAMESPACE));
    let log_pod = pods
        .first()
        .and_then(|p| p.pointer("/metadata/name").and_then(Value::as_str))
        .context("a seeded pod in the events namespace")?
        .to_string();
    // Lines as a Go service logs them (logfmt, some quoted values), ~150 bytes each.
    let total = LOG_LINES + LOG_LINES / 2;
    let lines: Vec<String> = (0..total)
        .map(|i| {
            let (level, msg, status) = match i % 10 {
                7 => ("warn", "\"slow upstream response\"", 200),
                9 => ("error", "\"upstream timed out\"", 504),
                _ => ("info", "\"request handled\"", 200),
            };
            format!(
                "ts=2026-12-06T10:{:02}:{:02}.{:03}Z level={level} msg={msg} method=GET path=/api/v1/orders/{} status={status} duration_ms={} req=line-{i:04} trace_id={:016x}",
                (i / 60) % 60,
                i % 60,
                (i * 37) % 1000,
                1000 + i * 7,
                3 + (i * 13) % 250,
                (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            )
        })
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    fake.set_log_lines(EVENTS_NAMESPACE, &log_pod, "app", &refs);
    let marker = |i: usize| format!("line-{i:04}");
    let old_log_markers = (0..total - LOG_LINES).map(marker).collect();
    let log_markers = (total - LOG_LINES..total).map(marker).collect();

    // Events as the kubelet and controllers write them, about the namespace's pods.
    let reasons = [
        (
            "Normal",
            "Pulled",
            "Container image \"nginx:1.27\" already present on machine",
        ),
        ("Normal", "Started", "Started container app"),
        (
            "Warning",
            "Unhealthy",
            "Readiness probe failed: HTTP probe failed with statuscode: 503",
        ),
        (
            "Warning",
            "BackOff",
            "Back-off restarting failed container app in pod",
        ),
    ];
    let mut event_markers = Vec::new();
    let mut foreign_event_markers = Vec::new();
    for (ns, count, markers) in [
        (EVENTS_NAMESPACE, EVENTS, &mut event_markers),
        ("staging", EVENTS / 4, &mut foreign_event_markers),
    ] {
        let pods = fake.list("v1", "Pod", Some(ns));
        for i in 0..count {
            let pod = pods.get(i % pods.len().max(1)).context("seeded pods")?;
            let (kind, reason, message) = reasons[i % reasons.len()];
            let m = format!("ev-{ns}-{i:03}");
            let mut event =
                fake_kube::objects::event(pod, kind, reason, &format!("{message} (seq {m})"));
            // Spread over the last hour; warnings repeat, as the kubelet counts them.
            let seq = i64::try_from(i).unwrap_or(0);
            event["lastTimestamp"] = json!(fake_kube::objects::ago(30 + seq * 83));
            event["firstTimestamp"] = json!(fake_kube::objects::ago(3600 + seq * 83));
            if kind == "Warning" {
                event["count"] = json!(2 + seq % 11);
            }
            fake.insert(event);
            markers.push(m);
        }
    }
    Ok(Workload {
        pod_names,
        log_pod,
        log_markers,
        old_log_markers,
        event_markers,
        foreign_event_markers,
    })
}

/// How to start one server and make the equivalent calls.
struct Server {
    key: &'static str,
    label: &'static str,
    cmd: Command,
    url: String,
    token: Option<&'static str>,
    /// List all pods.
    pods: Call,
    /// The last 100 lines of one pod's log.
    logs: Call,
    /// The events of one namespace.
    events: Call,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn log_file(dir: &Path, name: &str) -> Result<Stdio> {
    Ok(Stdio::from(std::fs::File::create(dir.join(name))?))
}

fn toolgate(a: &Args, fake: &FakeKube, w: &Workload, work: &Path) -> Result<Server> {
    let port = free_port()?;
    let mut cmd = toolgate_serve(&a.toolgate, &fake.kubeconfig, work, port, "toolgate.db")?;
    cmd.stdout(log_file(work, "toolgate.log")?)
        .stderr(log_file(work, "toolgate.err")?);
    Ok(Server {
        key: "toolgate",
        label: "toolgate",
        cmd,
        url: format!("http://127.0.0.1:{port}/mcp"),
        token: Some(TOKEN),
        pods: Call {
            tool: "k8s_list_resources",
            // The whole list in one answer (the default output budget is 16 KiB).
            args: json!({"kind": "pods", "max_bytes": 1_048_576}),
        },
        logs: Call {
            tool: "k8s_get_logs",
            // 100 lines of ~170 bytes are over the default 16 KiB output budget.
            args: json!({"pod": w.log_pod, "namespace": EVENTS_NAMESPACE, "tail_lines": LOG_LINES, "max_bytes": 65_536}),
        },
        events: Call {
            tool: "k8s_get_events",
            args: json!({"namespace": EVENTS_NAMESPACE}),
        },
    })
}

fn go_peer(a: &Args, fake: &FakeKube, w: &Workload, work: &Path) -> Result<Server> {
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
        pods: Call {
            tool: "pods_list",
            args: json!({}),
        },
        logs: Call {
            tool: "pods_log",
            args: json!({"name": w.log_pod, "namespace": EVENTS_NAMESPACE, "tail": LOG_LINES}),
        },
        events: Call {
            tool: "events_list",
            args: json!({"namespace": EVENTS_NAMESPACE}),
        },
    })
}

fn node_peer(a: &Args, fake: &FakeKube, w: &Workload, work: &Path) -> Result<Server> {
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
        pods: Call {
            tool: "kubectl_get",
            args: json!({"resourceType": "pods", "allNamespaces": true}),
        },
        logs: Call {
            tool: "kubectl_logs",
            args: json!({"resourceType": "pod", "name": w.log_pod, "namespace": EVENTS_NAMESPACE, "tail": LOG_LINES}),
        },
        events: Call {
            tool: "kubectl_get",
            args: json!({"resourceType": "events", "namespace": EVENTS_NAMESPACE}),
        },
    })
}

#[derive(Default, Clone)]
struct Load {
    calls: usize,
    errors: usize,
    calls_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The server's CPU time (user + system, its waited-for children too) per call, µs.
    cpu_us: f64,
    /// This process's CPU time per call, µs: the load client and the fake API server, which
    /// share the machine with the server.
    bench_cpu_us: f64,
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
    logs: Scenario,
    /// The events of one namespace: answer bytes and events found (no load run).
    events_bytes: usize,
    events_in_answer: usize,
}

/// The log read: answer size, lines found, and its load runs.
#[derive(Default)]
struct Scenario {
    answer_bytes: usize,
    found: usize,
    c1: Load,
    c16: Load,
}

/// What a bench answer must hold: every one of `expected` (pod names, log line or event
/// markers), and none of `foreign` (events of other namespaces).
struct Expect<'a> {
    what: &'static str,
    expected: &'a [String],
    foreign: &'a [String],
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

/// Markers of `expect` found in an answer (text content and structured content alike); an
/// error when the answer is an error or holds a foreign marker.
fn found_in(body: &str, expect: &Expect) -> Result<usize> {
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
    if let Some(f) = expect.foreign.iter().find(|f| tokens.contains(f.as_str())) {
        bail!(
            "the answer holds {f}, which is not among the {}",
            expect.what
        );
    }
    Ok(expect
        .expected
        .iter()
        .filter(|n| tokens.contains(n.as_str()))
        .count())
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
                .any(|t| t.get("name").and_then(Value::as_str) == Some(server.pods.tool))
            {
                bail!("{} has no tool {}", server.label, server.pods.tool);
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

#[allow(clippy::too_many_arguments)]
async fn load(
    server: &Server,
    call: &Call,
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
    let cpu_before = proc::cpu_ms(pid);
    let bench_cpu_before = proc::cpu_ms(std::process::id());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for mut s in sessions {
        let tool = call.tool;
        let args = call.args.clone();
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
    // Sample the server's memory (with its children) while the load runs, off the load
    // client's runtime threads: reading /proc is blocking work that would stall them.
    let sampled = tokio::task::spawn_blocking(move || proc::peak_tree_rss_kb(pid, deadline)).await;
    *peak_rss = (*peak_rss).max(sampled.unwrap_or(0));
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
    let per_call = |ms: f64| ms * 1000.0 / all.len().max(1) as f64;
    let cpu_us = per_call(proc::cpu_ms(pid) - cpu_before);
    let bench_cpu_us = per_call(proc::cpu_ms(std::process::id()) - bench_cpu_before);
    all.sort();
    Ok(Load {
        calls: all.len(),
        errors,
        calls_per_s: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
        cpu_us,
        bench_cpu_us,
    })
}

async fn measure(
    mut server: Server,
    http: &reqwest::Client,
    w: &Workload,
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
    let pods = Expect {
        what: "pods",
        expected: &w.pod_names,
        foreign: &[],
    };
    let (bytes, found, failure) = first_answer(&mut s, &server.pods, &pods).await?;
    (f.answer_bytes, f.pods_in_answer) = (bytes, found);
    f.failure = failure;
    let mut peak = 0u64;
    let run = Run {
        server: &server,
        http,
        seconds,
        pid,
    };
    (f.c1, f.c16) = load_runs(&run, &server.pods, &pods, &mut peak, &mut f).await?;
    f.load_rss_kb = peak.max(proc::tree_hwm_kb(pid));

    // The last 100 lines of one pod's log: size, content, and calls/s.
    let lines = Expect {
        what: "log lines",
        expected: &w.log_markers,
        foreign: &w.old_log_markers,
    };
    let (bytes, found, failure) = first_answer(&mut s, &server.logs, &lines).await?;
    (f.logs.answer_bytes, f.logs.found) = (bytes, found);
    f.failure = f.failure.take().or(failure);
    (f.logs.c1, f.logs.c16) = load_runs(&run, &server.logs, &lines, &mut peak, &mut f).await?;

    // The events of one namespace: size and content.
    let events = Expect {
        what: "events of the namespace",
        expected: &w.event_markers,
        foreign: &w.foreign_event_markers,
    };
    let (bytes, found, failure) = first_answer(&mut s, &server.events, &events).await?;
    (f.events_bytes, f.events_in_answer) = (bytes, found);
    f.failure = f.failure.take().or(failure);

    proc::stop(&mut child).await;
    Ok(f)
}

/// The running server a load run calls, and for how long.
struct Run<'a> {
    server: &'a Server,
    http: &'a reqwest::Client,
    seconds: u64,
    /// The server's process, whose RSS is sampled.
    pid: u32,
}

/// `call` at concurrency 1 and 16 for `seconds` each, then every distinct answer checked
/// against `expect` (into `f`'s answer counts and failure).
async fn load_runs(
    run: &Run<'_>,
    call: &Call,
    expect: &Expect<'_>,
    peak: &mut u64,
    f: &mut Figures,
) -> Result<(Load, Load)> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut runs = Vec::new();
    for c in [1usize, 16] {
        let Run {
            server,
            http,
            seconds,
            pid,
        } = *run;
        let l = load(server, call, http, c, seconds, seen.clone(), pid, peak).await?;
        report_load(&mut f.failure, expect.what, c, &l);
        runs.push(l);
    }
    let seen = seen.lock().await;
    f.distinct_answers += seen.bodies.len();
    f.bad_answers += check_seen(&seen, expect, &mut f.failure);
    let c16 = runs.pop().unwrap_or_default();
    let c1 = runs.pop().unwrap_or_default();
    Ok((c1, c16))
}

/// Makes `call` once: the answer's bytes, how many expected markers it holds, and why it
/// fails the check, if it does.
async fn first_answer(
    s: &mut Session,
    call: &Call,
    expect: &Expect<'_>,
) -> Result<(usize, usize, Option<String>)> {
    let body = s.call_tool(call.tool, &call.args).await?;
    let debug = std::env::var_os("BENCH_DEBUG").is_some();
    let (found, failure) = match found_in(&body, expect) {
        Ok(n) if n == expect.expected.len() => (n, None),
        Ok(n) => (
            n,
            Some(format!(
                "{}: the answer holds {n} of {} {}",
                call.tool,
                expect.expected.len(),
                expect.what
            )),
        ),
        Err(e) => (0, Some(format!("{}: first answer: {e}", call.tool))),
    };
    if failure.is_some() || debug {
        let keep = if debug { 100_000 } else { 600 };
        eprintln!(
            "  first answer of {}: {}",
            call.tool,
            body.chars().take(keep).collect::<String>()
        );
    }
    eprintln!(
        "  {}: {} bytes, {found} of {} {}",
        call.tool,
        body.len(),
        expect.expected.len(),
        expect.what
    );
    Ok((body.len(), found, failure))
}

fn report_load(failure: &mut Option<String>, what: &str, c: usize, l: &Load) {
    eprintln!(
        "  {what} c{c}: {:.1} calls/s, p50 {:.2} ms, p99 {:.2} ms, CPU {:.0} µs a call (client and fake API server {:.0} µs), {} errors",
        l.calls_per_s, l.p50_ms, l.p99_ms, l.cpu_us, l.bench_cpu_us, l.errors
    );
    if l.errors > 0 && failure.is_none() {
        *failure = Some(format!(
            "{what}: {} failed calls at concurrency {c}",
            l.errors
        ));
    }
}

/// Checks every distinct answer of a load run; returns how many failed.
fn check_seen(seen: &Seen, expect: &Expect, failure: &mut Option<String>) -> usize {
    let mut bad = 0;
    for body in seen.bodies.values() {
        match found_in(body, expect) {
            Ok(n) if n == expect.expected.len() => {}
            Ok(n) => {
                bad += 1;
                failure.get_or_insert(format!(
                    "an answer under load held {n} of {} {}",
                    expect.expected.len(),
                    expect.what
                ));
            }
            Err(e) => {
                bad += 1;
                failure.get_or_insert(format!("an answer under load: {e}"));
            }
        }
    }
    bad
}

type Row = (&'static str, fn(&Figures) -> f64, bool);

/// One table of figures per server, with toolgate's ratio to each peer.
fn print_table(ok: &HashMap<&str, &Figures>, title: &str, rows: &[Row]) {
    let fmt = |v: f64| {
        if v >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        }
    };
    println!();
    println!(
        "{:<40} {:>12} {:>12} {:>12} {:>14} {:>14}",
        title, "toolgate", "Go peer", "Node peer", "toolgate/Go", "toolgate/Node"
    );
    for (name, get, _) in rows {
        let cell = |k: &str| ok.get(k).map(|f| fmt(get(f))).unwrap_or_else(|| "-".into());
        let r = |k: &str| match (ok.get("toolgate"), ok.get(k)) {
            (Some(t), Some(p)) => ratio(get(t), get(p)),
            _ => "-".into(),
        };
        println!(
            "{:<40} {:>12} {:>12} {:>12} {:>14} {:>14}",
            name,
            cell("toolgate"),
            cell("go"),
            cell("node"),
            r("go"),
            r("node")
        );
    }
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
    let workload = seed_logs_and_events(&fake, names)?;
    eprintln!(
        "fake API server {} with {PODS} pods in {} namespaces; {} s per run",
        fake.url,
        NAMESPACES.len(),
        a.seconds
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    if let Some(rounds) = a.pairs {
        return pairs(&a, &fake, &workload, work.path(), &http, rounds).await;
    }
    let mut results: Vec<(&'static str, &'static str, Result<Figures>)> = Vec::new();
    let builders: [(&str, Build); 3] =
        [("toolgate", toolgate), ("go", go_peer), ("node", node_peer)];
    for (key, build) in builders {
        if a.only.as_deref().is_some_and(|o| o != key) {
            continue;
        }
        let dir = work.path().join(key);
        std::fs::create_dir_all(&dir)?;
        let server = build(&a, &fake, &workload, &dir)?;
        let label = server.label;
        let r = measure(server, &http, &workload, a.seconds).await;
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

/// The log calls of toolgate and the Go peer, `rounds` times side by side (see the module docs).
async fn pairs(
    a: &Args,
    fake: &FakeKube,
    w: &Workload,
    work: &Path,
    http: &reqwest::Client,
    rounds: usize,
) -> Result<()> {
    let mut running = Vec::new();
    for (key, build) in [("toolgate", toolgate as Build), ("go", go_peer as Build)] {
        let dir = work.join(key);
        std::fs::create_dir_all(&dir)?;
        let mut server = build(a, fake, w, &dir)?;
        let (child, _, _, _) = start(&mut server, http).await?;
        let pid = child.id().context("server pid")?;
        running.push((server, child, pid, Arc::new(Mutex::new(Seen::default()))));
    }
    eprintln!(
        "log calls, {rounds} rounds of toolgate and {} side by side, {} s a run",
        running[1].0.label, a.seconds
    );
    // Per concurrency: each round's (toolgate, Go) calls/s.
    let mut got: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    let mut failure = None;
    let mut peak = 0;
    for round in 0..rounds {
        for (i, c) in [1usize, 16].into_iter().enumerate() {
            let mut pair = [0.0; 2];
            let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for k in order {
                let (server, _, pid, seen) = &running[k];
                let l = load(
                    server,
                    &server.logs,
                    http,
                    c,
                    a.seconds,
                    seen.clone(),
                    *pid,
                    &mut peak,
                )
                .await?;
                report_load(&mut failure, server.key, c, &l);
                pair[k] = l.calls_per_s;
            }
            got[i].push((pair[0], pair[1]));
        }
    }
    let lines = Expect {
        what: "log lines",
        expected: &w.log_markers,
        foreign: &w.old_log_markers,
    };
    let mut bad = 0;
    for (server, mut child, _, seen) in running {
        let seen = seen.lock().await;
        let n = check_seen(&seen, &lines, &mut failure);
        if n > 0 {
            eprintln!("  {}: {n} wrong answers", server.key);
        }
        bad += n;
        proc::stop(&mut child).await;
    }
    println!();
    println!(
        "{:<24} {:>10} {:>10} {:>12}",
        "log calls/s", "toolgate", "Go peer", "toolgate/Go"
    );
    for (i, c) in [1usize, 16].into_iter().enumerate() {
        for (round, (t, g)) in got[i].iter().enumerate() {
            println!(
                "{:<24} {t:>10.0} {g:>10.0} {:>12}",
                format!("c{c}, round {}", round + 1),
                ratio(*t, *g)
            );
        }
        let mut ratios: Vec<f64> = got[i]
            .iter()
            .filter(|(_, g)| *g > 0.0)
            .map(|(t, g)| t / g)
            .collect();
        ratios.sort_by(f64::total_cmp);
        if let (Some(lo), Some(hi)) = (ratios.first(), ratios.last()) {
            println!(
                "{:<24} {:>10} {:>10} {:>12}",
                format!("c{c}, median ratio"),
                "",
                "",
                format!("{:.3}x", median(&ratios))
            );
            println!(
                "{:<24} {:>35}",
                "",
                format!("(rounds: {lo:.3}x to {hi:.3}x)")
            );
        }
    }
    match failure {
        Some(f) => bail!("{f} ({bad} wrong answers)"),
        None => Ok(()),
    }
}

/// The median of sorted `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn report(a: &Args, results: &[(&str, &str, Result<Figures>)]) -> Result<()> {
    let ok: HashMap<&str, &Figures> = results
        .iter()
        .filter_map(|(k, _, r)| r.as_ref().ok().map(|f| (*k, f)))
        .collect();
    let rows: [Row; 16] = [
        ("calls/s, concurrency 1", |f| f.c1.calls_per_s, true),
        ("p50 ms, concurrency 1", |f| f.c1.p50_ms, false),
        ("p99 ms, concurrency 1", |f| f.c1.p99_ms, false),
        (
            "server CPU µs a call, concurrency 1",
            |f| f.c1.cpu_us,
            false,
        ),
        ("calls/s, concurrency 16", |f| f.c16.calls_per_s, true),
        ("p50 ms, concurrency 16", |f| f.c16.p50_ms, false),
        ("p99 ms, concurrency 16", |f| f.c16.p99_ms, false),
        (
            "server CPU µs a call, concurrency 16",
            |f| f.c16.cpu_us,
            false,
        ),
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
    let logs_rows: [Row; 14] = [
        (
            "log answer bytes (JSON-RPC message)",
            |f| f.logs.answer_bytes as f64,
            false,
        ),
        ("log lines in answer", |f| f.logs.found as f64, true),
        (
            "log calls/s, concurrency 1",
            |f| f.logs.c1.calls_per_s,
            true,
        ),
        ("log p50 ms, concurrency 1", |f| f.logs.c1.p50_ms, false),
        ("log p99 ms, concurrency 1", |f| f.logs.c1.p99_ms, false),
        ("log server CPU µs a call, c1", |f| f.logs.c1.cpu_us, false),
        (
            "  client + fake CPU µs a call, c1",
            |f| f.logs.c1.bench_cpu_us,
            false,
        ),
        (
            "log calls/s, concurrency 16",
            |f| f.logs.c16.calls_per_s,
            true,
        ),
        ("log p50 ms, concurrency 16", |f| f.logs.c16.p50_ms, false),
        ("log p99 ms, concurrency 16", |f| f.logs.c16.p99_ms, false),
        (
            "log server CPU µs a call, c16",
            |f| f.logs.c16.cpu_us,
            false,
        ),
        (
            "  client + fake CPU µs a call, c16",
            |f| f.logs.c16.bench_cpu_us,
            false,
        ),
        (
            "events answer bytes (JSON-RPC message)",
            |f| f.events_bytes as f64,
            false,
        ),
        ("events in answer", |f| f.events_in_answer as f64, true),
    ];
    print_table(&ok, "200 pods, 5 namespaces", &rows);
    print_table(
        &ok,
        &format!("{LOG_LINES} log lines; {EVENTS} events of a namespace"),
        &logs_rows,
    );
    println!();
    for (key, label, r) in results {
        match r {
            Ok(f) => match &f.failure {
                None => println!(
                    "{label}: OK — every answer held all {PODS} pods, all {LOG_LINES} log lines or all {EVENTS} events ({} calls, {} distinct answers checked)",
                    f.c1.calls + f.c16.calls + f.logs.c1.calls + f.logs.c16.calls + 3,
                    f.distinct_answers
                ),
                Some(why) => println!("{label}: FAILED RUN — {why}"),
            },
            Err(e) => println!("{label} ({key}): FAILED RUN — {e:#}"),
        }
    }
    let mut targets = Vec::new();
    if let (Some(t), Some(g)) = (ok.get("toolgate"), ok.get("go")) {
        let checks: [(&str, f64, f64, bool); 10] = [
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
                "idle RSS <= 0.25x Go",
                t.idle_rss_kb as f64 / g.idle_rss_kb as f64,
                0.25,
                false,
            ),
            (
                "startup <= 0.25x Go",
                t.startup_ms / g.startup_ms,
                0.25,
                false,
            ),
            (
                "answer bytes <= 0.5x Go",
                t.answer_bytes as f64 / g.answer_bytes as f64,
                0.5,
                false,
            ),
            (
                "log calls/s at c1 >= 3x Go",
                t.logs.c1.calls_per_s / g.logs.c1.calls_per_s,
                3.0,
                true,
            ),
            (
                "log calls/s at c16 >= 6x Go",
                t.logs.c16.calls_per_s / g.logs.c16.calls_per_s,
                6.0,
                true,
            ),
            (
                "log answer bytes <= 1x Go",
                t.logs.answer_bytes as f64 / g.logs.answer_bytes as f64,
                1.0,
                false,
            ),
            (
                "events answer bytes <= 1x Go",
                t.events_bytes as f64 / g.events_bytes as f64,
                1.0,
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
                "  {:<30} {:>9.3}  {}",
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
                    "c1": {"calls": f.c1.calls, "errors": f.c1.errors, "calls_per_s": f.c1.calls_per_s, "p50_ms": f.c1.p50_ms, "p99_ms": f.c1.p99_ms, "cpu_us": f.c1.cpu_us},
                    "c16": {"calls": f.c16.calls, "errors": f.c16.errors, "calls_per_s": f.c16.calls_per_s, "p50_ms": f.c16.p50_ms, "p99_ms": f.c16.p99_ms, "cpu_us": f.c16.cpu_us},
                    "logs": {"answer_bytes": f.logs.answer_bytes, "lines_in_answer": f.logs.found,
                        "c1": {"calls": f.logs.c1.calls, "errors": f.logs.c1.errors, "calls_per_s": f.logs.c1.calls_per_s, "p50_ms": f.logs.c1.p50_ms, "p99_ms": f.logs.c1.p99_ms, "cpu_us": f.logs.c1.cpu_us, "bench_cpu_us": f.logs.c1.bench_cpu_us},
                        "c16": {"calls": f.logs.c16.calls, "errors": f.logs.c16.errors, "calls_per_s": f.logs.c16.calls_per_s, "p50_ms": f.logs.c16.p50_ms, "p99_ms": f.logs.c16.p99_ms, "cpu_us": f.logs.c16.cpu_us, "bench_cpu_us": f.logs.c16.bench_cpu_us}},
                    "events": {"answer_bytes": f.events_bytes, "events_in_answer": f.events_in_answer},
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
