//! toolgate-review: the review fallback measured — what an analysis does when PR-QUEST is down
//! (parse the unified diff, run every risk rule, group by directory and file type, suggest),
//! on a 2,000-line diff built from the review fixtures (every rule fires somewhere in it).
//! Goal: under 50 ms per analysis.
//!
//! Usage: toolgate-review [--lines N] [--runs N]

use std::time::{Duration, Instant};

use toolgate::adapters::github::PullRequest;
use toolgate::review::config::ReviewConfig;
use toolgate::review::url::PrRef;
use toolgate::review::{build_result, diff};

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
    let runs = arg("--runs", 200);
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
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut result = None;
    for _ in 0..runs {
        let started = Instant::now();
        let files = diff::parse(&text);
        let r = build_result(&pr, &pull, &files, None, true, &config);
        times.push(started.elapsed());
        result = Some(r);
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    let r = result.expect("one run");
    println!(
        "fallback analysis of a {}-line diff ({} bytes, {} files): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {runs} runs; {} findings, level {}, {} steps",
        text.lines().count(),
        text.len(),
        r.pr.changed_files,
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        r.risk.findings.len(),
        r.risk.level.as_str(),
        r.steps.len()
    );
}
