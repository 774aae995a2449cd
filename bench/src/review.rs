//! toolgate-review: the review fallback measured — what an analysis does when PR-QUEST is down
//! (parse the unified diff, run every risk rule, group by directory and file type, suggest),
//! on a 2,000-line diff built from the review fixtures (every rule fires somewhere in it).
//! Goal: under 50 ms per analysis.
//!
//! Usage: toolgate-review [--lines N] [--runs N]
//!
//! Prints the goal's figure (the analysis itself) and, separately, the same plus what the job
//! adds before its store write (PR-QUEST's diff index and the result's JSON).

use std::time::{Duration, Instant};

use toolgate::adapters::github::PullRequest;
use toolgate::review::config::ReviewConfig;
use toolgate::review::url::PrRef;
use toolgate::review::{build_result, diff, grouping};

fn fixtures() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/review"
    ))
}

/// About `lines` diff lines: the positive fixtures, then generated source files (a hunk each
/// of 40 added lines) under several directories until the count is reached.
fn big_diff(lines: usize) -> String {
    let mut out = String::new();
    let mut names: Vec<_> = std::fs::read_dir(fixtures())
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".positive.diff"))
        .collect();
    names.sort();
    for p in names {
        out.push_str(&std::fs::read_to_string(p).expect("fixture"));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    let dirs = [
        "src/billing",
        "src/orders",
        "deploy/web",
        "docs",
        "tests/e2e",
    ];
    let mut i = 0;
    while out.lines().count() < lines {
        let dir = dirs[i % dirs.len()];
        let path = format!("{dir}/generated_{i}.rs");
        out.push_str(&format!("diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,40 @@\n"));
        for n in 0..40 {
            out.push_str(&format!("+pub fn handler_{i}_{n}(order: &Order) -> Result<Receipt, Error> {{ charge(order, {n}) }}\n"));
        }
        i += 1;
    }
    out
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let lines = arg("--lines", 2000);
    let runs = arg("--runs", 200).max(1);
    let text = big_diff(lines);
    let pr = PrRef {
        owner: "acme".into(),
        repo: "shop".into(),
        number: 1,
    };
    let pull = PullRequest {
        number: 1,
        title: "Bench".into(),
        body: None,
        state: "open".into(),
        head_sha: "0".repeat(40),
        html_url: String::new(),
        author: None,
        additions: 0,
        deletions: 0,
        changed_files: 0,
    };
    let config = ReviewConfig::defaults();
    // The goal's figure: the analysis itself (parse, rules, grouping, suggestions).
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    // The job's whole fallback step as run in the server, store writes aside: the same plus the
    // diff index sent to PR-QUEST and the result's JSON as stored.
    let mut job_times: Vec<Duration> = Vec::with_capacity(runs);
    let mut result = None;
    let mut stored_bytes = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let files = diff::parse(&text);
        let r = build_result(&pr, &pull, &files, None, true, &config);
        times.push(started.elapsed());
        let index = grouping::diff_index(&files);
        let request = serde_json::to_string(&index).expect("index json");
        let stored = serde_json::to_string(&r).expect("result json");
        job_times.push(started.elapsed());
        stored_bytes = request.len() + stored.len();
        result = Some(r);
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let r = result.expect("one run");
    let (p50, p99, max) = figures(&mut times);
    let (job50, job99, jobmax) = figures(&mut job_times);
    println!(
        "fallback analysis of a {}-line diff ({} bytes, {} files), {} build, {runs} runs, load average {load}; {} findings, level {}, {} steps",
        text.lines().count(),
        text.len(),
        r.pr.changed_files,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        r.risk.findings.len(),
        r.risk.level.as_str(),
        r.steps.len()
    );
    println!(
        "  analysis (parse, rules, grouping, suggestions): p50 {} ms, p99 {} ms, max {} ms; p50/goal {:.3}, p99/goal {:.3} (goal {GOAL_MS} ms)",
        ms(p50),
        ms(p99),
        ms(max),
        p50.as_secs_f64() * 1e3 / GOAL_MS,
        p99.as_secs_f64() * 1e3 / GOAL_MS
    );
    println!(
        "  with the diff index and result JSON ({stored_bytes} bytes): p50 {} ms, p99 {} ms, max {} ms; p50/goal {:.3}",
        ms(job50),
        ms(job99),
        ms(jobmax),
        job50.as_secs_f64() * 1e3 / GOAL_MS
    );
}

const GOAL_MS: f64 = 50.0;

/// p50, p99 and max of `times`.
fn figures(times: &mut [Duration]) -> (Duration, Duration, Duration) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), times[times.len() - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}
