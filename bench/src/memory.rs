//! `toolgate-memory`: what callers can make a running toolgate hold. Starts the built server
//! (no cluster needed) on a store pre-filled with held calls, then measures from /proc:
//! - the idle resident size after the first `tools/list`;
//! - the peak while approvers list the queue (10,000 requests, 16 KiB of arguments each, pages
//!   of 500 by 4 clients at once), against the arguments those pages hold;
//! - the resident size after 2,000 idle MCP sessions (each did the handshake and one
//!   `tools/list`), and what one session costs.
//!
//! Run through `bench/run` (which builds it), or `toolgate-memory --toolgate BIN [--sessions N]
//! [--approvals N]`.

#[allow(dead_code)]
mod mcp;
#[allow(dead_code)]
mod proc;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::process::Command;

use mcp::Session;

const AUDITOR: &str = "bench-auditor-token-0123456789";
const CALLER: &str = "bench-caller-token-0123456789";
const ARG_BYTES: usize = 16 * 1024;
const PAGE: usize = 500;

struct Args {
    toolgate: PathBuf,
    sessions: usize,
    approvals: usize,
}

fn args() -> Result<Args> {
    let mut a = Args {
        toolgate: PathBuf::from("target/release/toolgate"),
        sessions: 2000,
        approvals: 10_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--toolgate" => a.toolgate = PathBuf::from(v()?),
            "--sessions" => a.sessions = v()?.parse().context("--sessions: a whole number")?,
            "--approvals" => a.approvals = v()?.parse().context("--approvals: a whole number")?,
            other => bail!(
                "unknown argument {other}; expected --toolgate BIN [--sessions N] [--approvals N]"
            ),
        }
    }
    Ok(a)
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Held calls written straight into the store the server will open.
async fn fill_queue(db: &std::path::Path, n: usize) -> Result<()> {
    use toolgate::store::{NewApproval, Requester, Store, now_ms};
    let store = Store::connect(&format!("sqlite://{}", db.display())).await?;
    let manifest = "x".repeat(ARG_BYTES);
    let now = now_ms();
    for i in 0..n {
        store
            .insert_approval(&NewApproval {
                id: format!("bench-{i:06}"),
                tool: "k8s.apply_manifest".into(),
                args: json!({"manifest": manifest}),
                args_sha256: "0".repeat(64),
                target: json!({"cluster": "bench", "namespace": "shop", "kind": "ConfigMap"}),
                risk: "write".into(),
                requester: Requester {
                    sub: "bench".into(),
                    name: "Bench".into(),
                    transport: "mcp-http".into(),
                },
                created_at_ms: now + i as i64,
                expires_at_ms: now + 3_600_000,
                required_approvals: 1,
                approver_roles: vec!["toolgate.approver".into()],
                reason_required: false,
                allow_target_change: false,
                rule: "bench.yaml#held".into(),
                preview: json!({"summary": format!("would create configmap shop/c{i}")}),
                call_context: json!({}),
            })
            .await?;
    }
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    toolgate::app::init_crypto();
    let a = args()?;
    let work = tempfile::tempdir()?;
    let db = work.path().join("toolgate.db");
    eprintln!("filling the queue with {} held calls…", a.approvals);
    fill_queue(&db, a.approvals).await?;

    let tokens = work.path().join("tokens.yaml");
    std::fs::write(
        &tokens,
        format!(
            "- {{token: {CALLER}, sub: bench, name: Bench, roles: [toolgate.caller]}}\n\
             - {{token: {AUDITOR}, sub: auditor, name: Auditor, roles: [toolgate.auditor]}}\n"
        ),
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = work.path().join("toolgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\nlog: {{level: warn}}\nauth:\n  mode: local\n  anonymous: false\n  tokens_file: {}\n\
             store:\n  url: sqlite://{}\nmcp:\n  max_sessions: {}\n\
             limits: {{tool_calls_per_minute: 0, approval_requests_per_hour: 0}}\n",
            tokens.display(),
            db.display(),
            a.sessions + 100,
        ),
    )?;
    let mut child = Command::new(&a.toolgate)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting toolgate")?;
    let pid = child.id().context("toolgate pid")?;
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(16)
        .build()?;
    let mut up = false;
    for _ in 0..400 {
        if http.get(format!("{url}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if !up {
        bail!("toolgate did not answer /healthz");
    }
    let mcp_url = format!("{url}/mcp");
    let mut first = Session::open(&http, &mcp_url, Some(CALLER)).await?;
    first.request("tools/list", json!({})).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = proc::tree_rss_kb(pid);
    let idle_anon = proc::tree_anon_kb(pid);

    // Approvers list the queue: 4 clients, each 5 pages of 500.
    let hwm_before = proc::tree_hwm_kb(pid);
    let expected = PAGE.min(a.approvals);
    let mut lists = Vec::new();
    for _ in 0..4 {
        let http = http.clone();
        let url = url.clone();
        lists.push(tokio::spawn(async move {
            let mut bytes = 0usize;
            for _ in 0..5 {
                let body = http
                    .get(format!("{url}/api/v1/approvals?limit={PAGE}"))
                    .bearer_auth(AUDITOR)
                    .send()
                    .await?
                    .error_for_status()?
                    .text()
                    .await?;
                let v: Value = serde_json::from_str(&body)?;
                let n = v["approvals"].as_array().map_or(0, Vec::len);
                if n != expected {
                    bail!("a page held {n} requests");
                }
                bytes = body.len();
            }
            Ok::<usize, anyhow::Error>(bytes)
        }));
    }
    let mut page_bytes = 0;
    for l in lists {
        page_bytes = l.await??;
    }
    let hwm_list = proc::tree_hwm_kb(pid);
    let after_list = proc::tree_rss_kb(pid);

    // Idle sessions: handshake and one tools/list each, then kept open.
    let mut sessions = Vec::with_capacity(a.sessions);
    for i in 0..a.sessions {
        let mut s = Session::open(&http, &mcp_url, Some(CALLER))
            .await
            .with_context(|| format!("session {i}"))?;
        s.request("tools/list", json!({})).await?;
        sessions.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_sessions = proc::tree_rss_kb(pid);
    let anon_sessions = proc::tree_anon_kb(pid);
    drop(sessions);
    proc::stop(&mut child).await;

    let args_per_page_kb = (PAGE * ARG_BYTES / 1024) as u64;
    println!(
        "toolgate memory ({} held calls of {} KiB arguments; {} MCP sessions)",
        a.approvals,
        ARG_BYTES / 1024,
        a.sessions
    );
    println!(
        "  idle RSS after tools/list            {:>8.1} MiB (anonymous {:.1} MiB)",
        mib(idle),
        mib(idle_anon)
    );
    println!(
        "  peak RSS while listing (4 x 5 pages)  {:>8.1} MiB (+{:.1} MiB over the peak before; one page's arguments would be {:.1} MiB; a page answer is {:.1} KiB)",
        mib(hwm_list),
        mib(hwm_list.saturating_sub(hwm_before)),
        mib(args_per_page_kb),
        page_bytes as f64 / 1024.0
    );
    println!(
        "  RSS after listing                    {:>8.1} MiB",
        mib(after_list)
    );
    println!(
        "  RSS with {} idle sessions          {:>8.1} MiB (anonymous {:.1} MiB)",
        a.sessions,
        mib(with_sessions),
        mib(anon_sessions)
    );
    println!(
        "  per idle MCP session                 {:>8.1} KiB",
        with_sessions.saturating_sub(after_list) as f64 / a.sessions.max(1) as f64
    );
    Ok(())
}
