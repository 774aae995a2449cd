//! Gate overhead and approval round trip (`cargo bench -p toolgate-bench --bench gate`).
//!
//! - gate overhead: a no-op read tool (registered only here) called through the whole dispatch
//!   (registry lookup, schema validation, policy, timeout, output budget, audit row on SQLite,
//!   metrics, span) versus invoked directly;
//! - approval round trip on SQLite: a no-op write tool is requested (held for approval),
//!   approved by another principal, and executed.
//!
//! Criterion measures each; afterwards p50/p99 of single calls are printed, and the gate
//! overhead as p50(dispatch) − p50(direct).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use toolgate::adapters::Adapters;
use toolgate::adapters::kube::KubeAdapter;
use toolgate::config::Config;
use toolgate::core::approval::Gate;
use toolgate::core::context::{Page, ToolContext};
use toolgate::core::dispatch::{CallRequest, Dispatcher};
use toolgate::core::error::ToolError;
use toolgate::core::principal::Principal;
use toolgate::core::registry::Registry;
use toolgate::core::tool::{Risk, TypedTool, typed};
use toolgate::store::Store;

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoopParams {
    /// Any text; echoed back.
    #[allow(dead_code)]
    note: Option<String>,
}

#[derive(Serialize, JsonSchema)]
struct NoopOutput {
    ok: bool,
}

struct NoopRead;

impl TypedTool for NoopRead {
    type Params = NoopParams;
    type Output = NoopOutput;
    const NAME: &'static str = "bench.noop_read";
    const TOOLSET: &'static str = "bench";
    const TITLE: &'static str = "No-op read";
    const DESCRIPTION: &'static str = "Does nothing (benchmark only).";
    const RISK: Risk = Risk::Read;
    const OPEN_WORLD: bool = false;

    async fn call(&self, _ctx: &ToolContext, _p: NoopParams) -> Result<NoopOutput, ToolError> {
        Ok(NoopOutput { ok: true })
    }
}

struct NoopWrite;

impl TypedTool for NoopWrite {
    type Params = NoopParams;
    type Output = NoopOutput;
    const NAME: &'static str = "bench.noop_write";
    const TOOLSET: &'static str = "bench";
    const TITLE: &'static str = "No-op write";
    const DESCRIPTION: &'static str =
        "Changes nothing, but is treated as a write (benchmark only).";
    const RISK: Risk = Risk::Write;
    const OPEN_WORLD: bool = false;

    async fn call(&self, _ctx: &ToolContext, _p: NoopParams) -> Result<NoopOutput, ToolError> {
        Ok(NoopOutput { ok: true })
    }
}

async fn dispatcher(dir: &std::path::Path, store_url: Option<&str>) -> Arc<Dispatcher> {
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/policies-gate");
    let path = dir.join("toolgate.yaml");
    std::fs::write(
        &path,
        format!(
            "store:\n  url: \"{}\"\npolicies:\n  dir: {policies}\n",
            store_url
                .map(String::from)
                .unwrap_or_else(|| format!("sqlite://{}", dir.join("gate.db").display()))
        ),
    )
    .expect("write config");
    let config = Config::load_from(Some(&path), &[]).expect("bench config");
    toolgate::app::init_crypto();
    let registry = Registry::new(vec![typed(NoopRead), typed(NoopWrite)]).expect("registry");
    let adapters = Adapters::new(Arc::new(KubeAdapter::new(&config.kubernetes)));
    let policy = Arc::new(toolgate::app::load_policy(&config).expect("policy"));
    let store = Store::connect(&config.store_url).await.expect("store");
    let gate = Gate::new(policy, store, config.public_url.clone(), None);
    Dispatcher::new(
        Arc::new(registry),
        Arc::new(adapters),
        config.tools.clone(),
        gate,
        // The limiter is measured with the rest of the gate, at a rate no bench reaches.
        &toolgate::config::LimitsConfig {
            tool_calls_per_minute: u32::MAX,
            approval_requests_per_hour: u32::MAX,
        },
    )
}

fn caller() -> Principal {
    Principal::new("bench", "Bench", vec!["toolgate.caller".into()])
}

fn approver() -> Principal {
    Principal::new("approver", "Approver", vec!["toolgate.approver".into()])
}

fn request(tool: &str) -> CallRequest {
    CallRequest {
        principal: caller(),
        transport: "bench",
        tool: tool.into(),
        args: json!({"note": "x"}),
        request_id: "bench".into(),
        progress: None,
    }
}

async fn through_gate(d: &Dispatcher) {
    let out = d
        .dispatch(request("bench.noop_read"))
        .await
        .expect("known tool")
        .expect("allowed");
    assert_eq!(out["ok"], true);
}

async fn direct(d: &Dispatcher) {
    let entry = d.registry().get("bench.noop_read").expect("registered");
    let ctx = ToolContext {
        principal: caller(),
        transport: "bench",
        request_id: "bench".into(),
        page: Page::default(),
        adapters: d.adapters().clone(),
        approvals: None,
        progress: None,
        knowledge: None,
        review: None,
    };
    let out = entry
        .tool
        .invoke(&ctx, json!({"note": "x"}))
        .await
        .expect("no-op");
    assert_eq!(out["ok"], true);
}

async fn approval_round_trip(d: &Arc<Dispatcher>) {
    let held = d
        .dispatch(request("bench.noop_write"))
        .await
        .expect("known tool")
        .expect("held");
    let id = held
        .get("approval_id")
        .and_then(Value::as_str)
        .expect("approval_id");
    let view = d.approve(&approver(), id, None).await.expect("approve");
    let state = serde_json::to_value(&view).expect("view json");
    assert_eq!(state["state"], "executed", "{state}");
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |p: f64| {
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        v[i].as_secs_f64() * 1e6
    };
    (at(0.5), at(0.99))
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = rt.block_on(dispatcher(dir.path(), None));

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("noop read, direct", |b| b.iter(|| rt.block_on(direct(&d))));
    c.bench_function("noop read, through the gate (SQLite audit)", |b| {
        b.iter(|| rt.block_on(through_gate(&d)))
    });
    c.bench_function("approval round trip (SQLite)", |b| {
        b.iter(|| rt.block_on(approval_round_trip(&d)))
    });
    c.final_summary();

    // The single calls run inside a task on the runtime, as the server's request handlers do;
    // `block_on` from this thread (what criterion does above) adds a wake-up of a parked
    // worker thread to every hand-off to the audit writer.
    let d = Arc::new(d);
    let (direct_t, gate_t, approval_t) = rt
        .block_on(rt.spawn({
            let d = d.clone();
            async move {
                let (mut direct_t, mut gate_t, mut approval_t) =
                    (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..5000 {
                    let t = Instant::now();
                    direct(&d).await;
                    direct_t.push(t.elapsed());
                    let t = Instant::now();
                    through_gate(&d).await;
                    gate_t.push(t.elapsed());
                }
                for _ in 0..500 {
                    let t = Instant::now();
                    approval_round_trip(&d).await;
                    approval_t.push(t.elapsed());
                }
                (direct_t, gate_t, approval_t)
            }
        }))
        .expect("measuring task");
    let (dp50, dp99) = percentiles(direct_t);
    let (gp50, gp99) = percentiles(gate_t);
    let (ap50, ap99) = percentiles(approval_t);
    println!();
    println!("single calls (µs)                         p50        p99");
    println!("noop read, direct                  {dp50:>10.1} {dp99:>10.1}");
    println!("noop read, through the gate        {gp50:>10.1} {gp99:>10.1}");
    println!("approval round trip (SQLite)       {ap50:>10.1} {ap99:>10.1}");
    // The same with the store in memory: what the gate costs besides the disk sync.
    let mem = rt.block_on(dispatcher(dir.path(), Some("sqlite::memory:")));
    let mem_t = rt
        .block_on(rt.spawn(async move {
            let mut mem_t = Vec::new();
            for _ in 0..5000 {
                let t = Instant::now();
                through_gate(&mem).await;
                mem_t.push(t.elapsed());
            }
            mem_t
        }))
        .expect("measuring task");
    let (mp50, mp99) = percentiles(mem_t);
    println!("noop read, gate, in-memory SQLite  {mp50:>10.1} {mp99:>10.1}");
    let overhead = gp50 - dp50;
    println!(
        "gate overhead p50: {overhead:.1} µs (target <= 100 µs: {})",
        if overhead <= 100.0 { "met" } else { "NOT MET" }
    );
}
