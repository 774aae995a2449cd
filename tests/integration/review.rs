//! review.* end to end: a running toolgate against the fake GitHub API and the fake PR-QUEST
//! (`fake_review.rs`), plus the risk rules over the real unified diffs in
//! `tests/fixtures/review/` (one positive and one negative file per rule). Covers the cache by
//! head SHA, a new push, a PR-QUEST outage (fallback, notification, metric, retry that
//! completes), a restart in the middle of an analysis, bad PR URLs, a 5 MB diff, steps, notes,
//! XP, the leaderboard, achievements once, the export snapshot and a held comment run once.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use toolgate::adapters::github::GitHub;
use toolgate::adapters::github::config::GitHubConfig;
use toolgate::adapters::http::{Credential, Endpoint, HttpAuth};
use toolgate::adapters::prquest::config::PrQuestConfig;
use toolgate::adapters::prquest::{GroupMetadata, GroupRequest, PrQuest, PrQuestError};

use crate::approvals_api::api;
use crate::fake_kube::FakeKube;
use crate::fake_review::{FakeGitHub, FakePrQuest, GroupMode, TOKEN};
use crate::harness::{self, ALICE, BOB, ERIN, Toolgate};

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/review"
    ))
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_risk_rule_fires_on_its_fixture_and_not_on_its_negative() {
    use toolgate::review::{diff, risk};
    for (rule, level, _) in risk::RULES {
        if *rule == "pr-quest-risk-call" {
            continue;
        }
        let found = risk::scan(&diff::parse(&fixture(&format!("{rule}.positive.diff"))));
        let hits: Vec<&risk::Finding> = found.iter().filter(|f| f.rule == *rule).collect();
        assert!(
            !hits.is_empty(),
            "{rule}: no finding in its positive fixture: {found:?}"
        );
        for f in &hits {
            assert_eq!(f.severity, *level, "{rule}");
            assert!(!f.file.is_empty() && f.line.is_some(), "{rule}: {f:?}");
        }
        let negative = risk::scan(&diff::parse(&fixture(&format!("{rule}.negative.diff"))));
        assert!(
            negative.iter().all(|f| f.rule != *rule),
            "{rule}: a finding in its negative fixture: {negative:?}"
        );
    }
    // Exact places, and what is said instead of a forbidden technology.
    let found = risk::scan(&diff::parse(&fixture("secret-added.positive.diff")));
    let places: Vec<String> = found
        .iter()
        .map(|f| format!("{}:{}", f.file, f.line.unwrap_or(0)))
        .collect();
    assert_eq!(
        places,
        vec![
            "deploy/app/config.yaml:7",
            "deploy/app/config.yaml:8",
            "deploy/app/config.yaml:9",
            "certs/tls.key:1"
        ]
    );
    assert!(
        found
            .iter()
            .all(|f| !f.message.contains("AKIA") && !f.message.contains("S3cr3t"))
    );
    let forbidden = risk::scan(&diff::parse(&fixture("forbidden-technology.positive.diff")));
    let messages: Vec<&str> = forbidden.iter().map(|f| f.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("HashiCorp Vault") && m.contains("use OpenBao")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Terraform") && m.contains("use OpenTofu")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Elastic") && m.contains("use Loki")),
        "{messages:?}"
    );
    let assessed = risk::assess(found);
    assert_eq!(assessed.level, risk::Level::Critical);
    assert!(
        assessed.reasons[0].starts_with("CRITICAL: secret-added at "),
        "{:?}",
        assessed.reasons
    );
}

fn prquest_config(url: &str) -> PrQuestConfig {
    let mut endpoint = Endpoint::plain(url, Duration::from_secs(5));
    endpoint.settings.retry.attempts = 1;
    PrQuestConfig { endpoint }
}

#[tokio::test]
async fn the_pr_quest_adapter_speaks_its_two_routes_and_maps_every_error() {
    let gh = FakeGitHub::start().await;
    let pq = FakePrQuest::start(&gh).await;
    let diff = fixture("unpinned-image.positive.diff");
    gh.set_pull(
        "acme/shop/pull/1".replace("/pull/", "#").as_str(),
        "Bump",
        "a1",
        &diff,
    );
    let client = PrQuest::new(&prquest_config(&pq.url)).expect("client");
    assert_eq!(
        client
            .diff("https://github.com/acme/shop/pull/1")
            .await
            .expect("diff"),
        diff
    );
    let err = client
        .diff("https://gitlab.com/a/b/pull/1")
        .await
        .expect_err("gitlab");
    assert!(
        matches!(&err, PrQuestError::BadRequest(m) if m.contains("github.com")),
        "{err:?}"
    );
    let err = client
        .diff("https://github.com/acme/shop/pull/2")
        .await
        .expect_err("missing");
    assert!(matches!(err, PrQuestError::NotFound(_)), "{err:?}");
    gh.set_pull("acme/shop#3", "Huge", "b1", &"+x\n".repeat(600_000));
    assert!(matches!(
        client.diff("https://github.com/acme/shop/pull/3").await,
        Err(PrQuestError::TooLarge(_))
    ));
    gh.set_rate_limited(true);
    let err = client
        .diff("https://github.com/acme/shop/pull/1")
        .await
        .expect_err("429");
    assert!(
        matches!(err, PrQuestError::RateLimited(_)) && err.to_string().contains("HTTP 429"),
        "{err}"
    );
    gh.set_rate_limited(false);

    let files = toolgate::review::diff::parse(&diff);
    let request = GroupRequest {
        diff_index: toolgate::review::grouping::diff_index(&files),
        metadata: GroupMetadata {
            pr_title: Some("Bump".into()),
            pr_description: None,
        },
    };
    pq.set_risk_calls(&["Unpinned images may change under us"]);
    let plan = client.group(&request).await.expect("plan");
    assert_eq!(plan.version, 1);
    assert_eq!(plan.steps.len(), 2);
    assert_eq!(
        plan.steps[0].diff_refs[0].hunk_ids,
        vec!["deploy/web/deployment.yaml#h0"]
    );
    assert_eq!(
        plan.end_state.risk_calls,
        vec!["Unpinned images may change under us"]
    );
    let mut empty = request.clone();
    empty.diff_index.files.clear();
    let err = client.group(&empty).await.expect_err("no files");
    assert_eq!(
        err,
        PrQuestError::BadRequest("No reviewable diff content.".into())
    );
    let mut bad = request.clone();
    bad.diff_index.files[0].status = "changed".into();
    let err = client.group(&bad).await.expect_err("bad status");
    assert!(
        err.to_string().contains("diffIndex.files.0.status"),
        "{err}"
    );
    pq.set_mode(GroupMode::LlmFails);
    let err = client.group(&request).await.expect_err("502");
    assert!(err.is_outage(), "{err:?}");
    assert!(err.to_string().contains("LLM grouping failed"), "{err}");
    assert_eq!(
        pq.group_calls(),
        4,
        "grouping goes out once per call, never retried"
    );
}

#[tokio::test]
async fn github_rate_limits_name_the_reset_and_are_not_retried() {
    let gh = FakeGitHub::start().await;
    gh.set_pull("acme/shop#5", "T", "c1", "");
    let mut config = GitHubConfig::public();
    config.endpoint = Endpoint::plain(&gh.url, Duration::from_secs(5));
    config.endpoint.auth = HttpAuth::Bearer(Credential::inline(TOKEN));
    let client = GitHub::new(&config).expect("client");
    let pull = client.pull("acme", "shop", 5).await.expect("pull");
    assert_eq!(pull.head_sha, "c1");
    gh.set_rate_limited(true);
    let before = gh.seen().len();
    let err = client.pull("acme", "shop", 5).await.expect_err("limited");
    assert_eq!(
        err.to_string(),
        "GitHub's rate limit is reached (HTTP 403); it resets at 2026-01-01T00:00:00Z (x-ratelimit-reset)"
    );
    assert_eq!(gh.seen().len(), before + 1, "asked once, not retried");
    gh.set_rate_limited(false);
    let err = client.pull("acme", "shop", 6).await.expect_err("404");
    assert!(
        err.to_string().contains("no pull request acme/shop#6"),
        "{err}"
    );
    assert!(
        gh.seen()
            .iter()
            .any(|s| s.contains("application/vnd.github+json"))
    );
}

fn review_block(gh: &FakeGitHub, pq: &FakePrQuest, extra: &str) -> String {
    format!(
        "review:\n  prquest:\n    url: {}\n    timeout: 5s\n    retry: {{attempts: 1}}\n    breaker: {{failures: 1000}}\n  github:\n    url: {}\n    token: {TOKEN}\n    web_host: github.com\n    retry: {{attempts: 1}}\n  poll_interval: 100ms\n  retry_backoff: 200ms\n  retry_max_backoff: 400ms\n{extra}",
        pq.url, gh.url
    )
}

/// A tool's structured answer, or its error message.
async fn call(tg: &Toolgate, token: &str, name: &str, args: Value) -> Result<Value, String> {
    let result = crate::jsonrpc::call_tool(&tg.url, token, name, args).await;
    if result["isError"] == json!(true) {
        Err(result["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    } else {
        Ok(result["structuredContent"].clone())
    }
}

async fn analyze(tg: &Toolgate, url: &str) -> String {
    let out = call(tg, ALICE, "review.analyze_pr", json!({"pr_url": url}))
        .await
        .expect("analyze");
    assert_eq!(out["status"], "queued", "{out}");
    out["id"].as_str().expect("id").to_string()
}

/// Polls until the analysis is complete or failed (or `pred` holds), at most 15 s.
async fn until(tg: &Toolgate, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        last = call(tg, ALICE, "review.get_analysis", json!({"id": id}))
            .await
            .expect("get");
        if pred(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} never happened: {last}");
}

fn finished(v: &Value) -> bool {
    matches!(v["status"].as_str(), Some("complete" | "failed"))
}

#[tokio::test]
async fn an_analysis_is_cached_by_head_sha_and_a_new_push_analyses_again() {
    let kube = FakeKube::start().await;
    let gh = FakeGitHub::start().await;
    let pq = FakePrQuest::start(&gh).await;
    pq.set_risk_calls(&["Security: check the new credentials handling"]);
    gh.set_pull(
        "acme/shop#7",
        "Add billing config",
        "sha-one",
        &fixture("secret-added.positive.diff"),
    );
    let tg = harness::start(&kube, &review_block(&gh, &pq, "")).await;

    let first = analyze(&tg, "https://github.com/acme/shop/pull/7").await;
    let done = until(&tg, &first, "first analysis", finished).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["cached"], false);
    assert_eq!(done["degraded"], false);
    assert_eq!(done["grouping"], "pr-quest");
    assert_eq!(done["risk_level"], "CRITICAL");
    assert_eq!(done["head_sha"], "sha-one");
    assert_eq!(done["untrusted"], true);
    let reasons: Vec<&str> = done["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("CRITICAL: secret-added at deploy/app/config.yaml:7")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("Security: check the new credentials handling")),
        "{reasons:?}"
    );
    assert_eq!(done["suggestions"][0]["rule"], "secret-added");
    assert!(
        done["suggestions"][0]["docs"][0]
            .as_str()
            .is_some_and(|d| d.starts_with("https://"))
    );
    assert_eq!(pq.group_calls(), 1);

    // Same head: answered from the first analysis, no PR-QUEST call.
    let second = analyze(&tg, "https://github.com/acme/shop/pull/7/files").await;
    let cached = until(&tg, &second, "cached answer", finished).await;
    assert_eq!(cached["cached"], true, "{cached}");
    assert_eq!(cached["risk_level"], "CRITICAL");
    assert_eq!(cached["progress"], 100);
    assert_eq!(pq.group_calls(), 1, "a cache hit skips the LLM");

    // A new push: another head, analysed again.
    gh.set_pull(
        "acme/shop#7",
        "Add billing config",
        "sha-two",
        &fixture("secret-added.negative.diff"),
    );
    let third = analyze(&tg, "https://github.com/acme/shop/pull/7").await;
    let fresh = until(&tg, &third, "new head analysed", finished).await;
    assert_eq!(fresh["cached"], false, "{fresh}");
    assert_eq!(fresh["head_sha"], "sha-two");
    assert_eq!(
        fresh["risk_level"], "MODERATE",
        "only PR-QUEST's security call is left: {fresh}"
    );
    assert_eq!(pq.group_calls(), 2);
}

#[tokio::test]
async fn a_pr_quest_outage_falls_back_notifies_and_a_retry_completes_later() {
    let kube = FakeKube::start().await;
    let gh = FakeGitHub::start().await;
    let pq = FakePrQuest::start(&gh).await;
    let hook = crate::fake_obs::webhook().await;
    pq.set_mode(GroupMode::LlmFails);
    gh.set_pull(
        "acme/shop#8",
        "Open the network",
        "sha-8",
        &fixture("network-policy-widened.positive.diff"),
    );
    let tg = harness::start(
        &kube,
        &format!(
            "{}approvals:\n  webhook_url: {}/hooks/review\n  sweep_interval_seconds: 1\n",
            review_block(&gh, &pq, ""),
            hook.url
        ),
    )
    .await;
    let id = analyze(&tg, "https://github.com/acme/shop/pull/8").await;
    let degraded = until(&tg, &id, "fallback analysis", finished).await;
    assert_eq!(degraded["status"], "complete", "{degraded}");
    assert_eq!(degraded["degraded"], true);
    assert_eq!(degraded["grouping"], "toolgate");
    assert_eq!(
        degraded["risk_level"], "MODERATE",
        "the heuristics still run: {degraded}"
    );
    assert!(
        degraded["error"]
            .as_str()
            .is_some_and(|e| e.contains("LLM grouping failed")),
        "{degraded}"
    );
    assert!(!degraded["steps"].as_array().expect("steps").is_empty());
    let metrics = tg.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("toolgate_review_fallbacks_total ")),
        "{metrics}"
    );
    crate::daemons::eventually(5, "administrators are told", || async {
        hook.requests_to("/hooks/review").iter().any(|r| {
            String::from_utf8_lossy(&r.body).contains("PR-QUEST is unavailable")
                && String::from_utf8_lossy(&r.body).contains(&id)
        })
    })
    .await;
    // Still down: retried with backoff, still degraded.
    let retried = until(&tg, &id, "a failed retry", |v| {
        v["retry"] == "waiting" && pq.group_calls() >= 2
    })
    .await;
    assert_eq!(retried["degraded"], true);
    // PR-QUEST answers again: the queued analysis is re-run and complete.
    pq.set_mode(GroupMode::Llm);
    let full = until(&tg, &id, "the retry to complete", |v| {
        v["degraded"] == false
    })
    .await;
    assert_eq!(full["grouping"], "pr-quest", "{full}");
    assert_eq!(full["retry"], "done");
    assert_eq!(full["risk_level"], "MODERATE");
    let calls = pq.group_calls();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        pq.group_calls(),
        calls,
        "a completed analysis is not retried again"
    );
    assert!(
        tg.metrics()
            .await
            .contains("toolgate_review_retries_total{outcome=\"completed\"} ")
    );
}

#[tokio::test]
async fn a_restart_in_the_middle_of_an_analysis_resumes_it() {
    let kube = FakeKube::start().await;
    let gh = FakeGitHub::start().await;
    let pq = FakePrQuest::start(&gh).await;
    pq.set_mode(GroupMode::Hold);
    gh.set_pull(
        "acme/shop#9",
        "Limits",
        "sha-9",
        &fixture("resource-limits-removed.positive.diff"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!(
        "store:\n  url: sqlite://{}\n",
        dir.path().join("review.db").display()
    );
    let extra = format!("{}{store}", review_block(&gh, &pq, ""));
    let tg = harness::start(&kube, &extra).await;
    let id = analyze(&tg, "https://github.com/acme/shop/pull/9").await;
    let running = until(&tg, &id, "grouping to start", |v| v["stage"] == "grouping").await;
    assert_eq!(running["status"], "running", "{running}");
    drop(tg);
    tokio::time::sleep(Duration::from_millis(300)).await;
    pq.set_mode(GroupMode::Llm);
    let tg = harness::start(&kube, &extra).await;
    let done = until(&tg, &id, "the resumed analysis", finished).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["grouping"], "pr-quest");
    assert_eq!(done["risk_level"], "MODERATE");
}

#[tokio::test]
async fn bad_pr_urls_and_a_5_mb_diff_are_refused_saying_what_is_wrong() {
    let kube = FakeKube::start().await;
    let gh = FakeGitHub::start().await;
    let pq = FakePrQuest::start(&gh).await;
    let tg = harness::start(&kube, &review_block(&gh, &pq, "")).await;
    for (url, needle) in [
        ("https://gitlab.com/acme/shop/pull/1", "is on `gitlab.com`"),
        (
            "https://github.com/acme/shop/issues/1",
            "points to `issues`, not a pull request",
        ),
        ("http://github.com/acme/shop/pull/1", "must use https"),
        (
            "https://github.com/acme/shop/pull/abc",
            "is not a positive whole number",
        ),
        ("not a url", "is not a URL"),
    ] {
        let err = call(&tg, ALICE, "review.analyze_pr", json!({"pr_url": url}))
            .await
            .expect_err(url);
        assert!(
            err.contains(needle) && err.contains("https://github.com/owner/repo/pull/123")
                || err.contains(needle),
            "{url}: {err}"
        );
    }
    let err = call(&tg, ALICE, "review.get_analysis", json!({"id": "nope"}))
        .await
        .expect_err("bad id");
    assert!(err.contains("not an analysis id"), "{err}");
    let err = call(
        &tg,
        ALICE,
        "review.get_analysis",
        json!({"id": uuid::Uuid::new_v4().to_string()}),
    )
    .await
    .expect_err("unknown");
    assert!(err.contains("no analysis"), "{err}");
    // Unknown pull request: the analysis fails naming it.
    let id = analyze(&tg, "https://github.com/acme/shop/pull/404").await;
    let failed = until(&tg, &id, "failure", finished).await;
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("no pull request acme/shop#404")),
        "{failed}"
    );

    let mut big = String::with_capacity(5_300_000);
    big.push_str("diff --git a/data/seed.sql b/data/seed.sql\n--- a/data/seed.sql\n+++ b/data/seed.sql\n@@ -0,0 +1,100000 @@\n");
    while big.len() < 5 * 1024 * 1024 {
        big.push_str(
            "+INSERT INTO products VALUES (1, 'a product with a long enough description');\n",
        );
    }
    gh.set_pull("acme/shop#10", "Seed data", "sha-10", &big);
    let id = analyze(&tg, "https://github.com/acme/shop/pull/10").await;
    let failed = until(&tg, &id, "the cap", finished).await;
    assert_eq!(failed["status"], "failed");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(
            "the diff of acme/shop#10 is 5.0 MiB, over the 3.0 MiB review.max_diff_bytes"
        ) && error.contains("Split the pull request"),
        "{error}"
    );
    assert_eq!(pq.group_calls(), 0);
}

/// The export with its moments and the analysis id replaced, for the snapshot.
fn normalized(markdown: &str, id: &str) -> String {
    let time = regex::Regex::new(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z").expect("regex");
    time.replace_all(&markdown.replace(id, "<id>"), "<time>")
        .into_owned()
}

#[tokio::test]
async fn steps_notes_xp_leaderboard_achievements_and_the_export() {
    let kube = FakeKube::start().await;
    let gh = FakeGitHub::start().await;
    let pq = FakePrQuest::start(&gh).await;
    pq.set_risk_calls(&["Check the rollout order of the new role"]);
    gh.set_pull(
        "acme/shop#11",
        "Operator RBAC",
        "sha-11",
        &fixture("rbac-cluster-admin.positive.diff"),
    );
    gh.set_pull(
        "acme/shop#12",
        "Images",
        "sha-12",
        &fixture("unpinned-image.positive.diff"),
    );
    let tg = harness::start(&kube, &review_block(&gh, &pq, "")).await;
    let a = analyze(&tg, "https://github.com/acme/shop/pull/11").await;
    let b = analyze(&tg, "https://github.com/acme/shop/pull/12").await;
    until(&tg, &a, "a", finished).await;
    until(&tg, &b, "b", finished).await;

    let steps = call(&tg, ALICE, "review.get_steps", json!({"id": a}))
        .await
        .expect("steps");
    assert_eq!(steps["total"], 1, "{steps}");
    assert_eq!(steps["steps"][0]["step_id"], "s1");
    assert!(
        steps["steps"][0]["hunks"][0]["diff"]
            .as_str()
            .is_some_and(|d| d.contains("+  name: cluster-admin")),
        "{steps}"
    );
    let err = call(
        &tg,
        ALICE,
        "review.add_note",
        json!({"id": a, "step_id": "s9", "text": "x"}),
    )
    .await
    .expect_err("no step");
    assert!(err.contains("steps: s1"), "{err}");
    // Notes and steps need no approval (review-notes-for-callers).
    let note = call(
        &tg,
        ALICE,
        "review.add_note",
        json!({"id": a, "step_id": "s1", "text": "cluster-admin is far too wide"}),
    )
    .await
    .expect("note");
    assert_eq!(note["your_notes"], 1, "{note}");
    let done = call(
        &tg,
        ALICE,
        "review.complete_step",
        json!({"id": a, "step_id": "s1"}),
    )
    .await
    .expect("complete");
    // 12 lines changed: 50 + 1 + 10·1 + 5·1 + 25 (within the hour).
    assert_eq!(done["xp"], 91, "{done}");
    let got: Vec<&str> = done["achievements"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(got, vec!["first-review", "critical-catch", "thorough"]);
    let again = call(
        &tg,
        ALICE,
        "review.complete_step",
        json!({"id": a, "step_id": "s1"}),
    )
    .await
    .expect("again");
    assert_eq!(again["newly"], false);
    assert!(again.get("xp").is_none(), "XP is awarded once: {again}");

    // Erin finishes the other review with no notes; Alice finishes it too.
    for token in [ERIN, ALICE] {
        for step in ["s1", "s2"] {
            call(
                &tg,
                token,
                "review.complete_step",
                json!({"id": b, "step_id": step}),
            )
            .await
            .expect("step");
        }
    }
    let board = call(&tg, BOB, "review.leaderboard", json!({}))
        .await
        .expect("board");
    let rows: Vec<(String, i64, i64)> = board["reviewers"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["reviewer"].as_str().unwrap_or_default().to_string(),
                r["xp"].as_i64().unwrap_or(0),
                r["reviews"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    // b: 6 lines changed → 50 + 0 + 20 + 0 + 25 = 95.
    assert_eq!(
        rows,
        vec![
            ("Alice".to_string(), 91 + 95, 2),
            ("Erin".to_string(), 95, 1)
        ]
    );
    // Ordered by the time each was awarded (then by name): two awarded in the same
    // millisecond come alphabetically, so the test compares the set.
    let mut awarded: Vec<&str> = board["reviewers"][0]["achievements"]
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .collect();
    awarded.sort_unstable();
    assert_eq!(
        awarded,
        ["critical-catch", "first-review", "thorough"],
        "awarded once"
    );

    let export = call(&tg, ALICE, "review.export_markdown", json!({"id": a}))
        .await
        .expect("export");
    assert!(export.get("memory").is_none(), "memory is not configured");
    let text = normalized(export["markdown"].as_str().expect("markdown"), &a);
    let snapshot = fixtures().join("export.md");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &text).expect("write snapshot");
    }
    assert_eq!(
        text,
        std::fs::read_to_string(&snapshot).expect("snapshot"),
        "export drifted; UPDATE_SNAPSHOTS=1 rewrites it"
    );
}

#[tokio::test]
async fn a_comment_is_held_for_approval_then_posted_once() {
    let kube = FakeKube::start().await;
    let gh = FakeGitHub::start().await;
    let pq = FakePrQuest::start(&gh).await;
    gh.set_pull(
        "acme/shop#13",
        "TLS",
        "sha-13",
        &fixture("tls-verification-disabled.positive.diff"),
    );
    let tg = harness::start(&kube, &review_block(&gh, &pq, "")).await;
    let id = analyze(&tg, "https://github.com/acme/shop/pull/13").await;
    until(&tg, &id, "analysis", finished).await;
    let body =
        "toolgate review: **CRITICAL** — TLS verification is turned off in clients/billing.py.";
    let held = call(
        &tg,
        ALICE,
        "review.post_comment",
        json!({"id": id, "body": body}),
    )
    .await
    .expect("held");
    assert_eq!(held["status"], "approval_required", "{held}");
    assert!(gh.comments().is_empty(), "nothing posted before approval");
    let path = format!(
        "/api/v1/approvals/{}",
        held["approval_id"].as_str().expect("approval id")
    );
    let (status, shown) = api(&tg, "GET", &path, Some(BOB), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        shown.to_string().contains("would post a comment of"),
        "{shown}"
    );
    let (status, done) = api(
        &tg,
        "POST",
        &format!("{path}/approve"),
        Some(BOB),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "executed", "{done}");
    assert_eq!(done["result"]["pr"], "acme/shop#13");
    assert_eq!(
        gh.comments(),
        vec![("acme/shop#13".to_string(), body.to_string())]
    );
    let (status, _) = api(
        &tg,
        "POST",
        &format!("{path}/approve"),
        Some(crate::harness::CAROL),
        Some(json!({})),
    )
    .await;
    assert_ne!(
        status,
        StatusCode::OK,
        "an executed request does not run again"
    );
    assert_eq!(gh.comments().len(), 1, "posted once");
}

#[tokio::test]
async fn the_export_reaches_cognee_as_a_review_datapoint() {
    let kube = FakeKube::start().await;
    let gh = FakeGitHub::start().await;
    let pq = FakePrQuest::start(&gh).await;
    let cognee =
        crate::fake_cognee::FakeCognee::start("bot@example.com", "pw-0123456789", None).await;
    gh.set_pull(
        "acme/shop#14",
        "Limits",
        "sha-14",
        &fixture("resource-limits-removed.positive.diff"),
    );
    let memory = format!(
        "memory:\n  cognee:\n    url: {}\n    auth: {{username: bot@example.com, password: pw-0123456789}}\n    dataset: governance\n    retry: {{attempts: 1}}\n",
        cognee.url
    );
    let tg = harness::start(&kube, &format!("{}{memory}", review_block(&gh, &pq, ""))).await;
    let id = analyze(&tg, "https://github.com/acme/shop/pull/14").await;
    until(&tg, &id, "analysis", finished).await;
    let export = call(&tg, ALICE, "review.export_markdown", json!({"id": id}))
        .await
        .expect("export");
    assert_eq!(export["memory"], "added", "{export}");
    let stored = cognee
        .state()
        .datasets
        .get("governance")
        .map(|d| d.data.clone())
        .unwrap_or_default();
    assert_eq!(stored.len(), 1, "one review document");
    assert!(
        stored[0].text.contains("acme/shop#14"),
        "{}",
        stored[0].text
    );
    assert!(
        stored[0].text.contains("changes_requested"),
        "MODERATE asks for changes: {}",
        stored[0].text
    );
}

/// The notices of the fallback so far (bodies of the webhook's requests that speak of it).
fn fallback_notices(hook: &crate::fake_obs::Fake) -> Vec<String> {
    hook.requests_to("/hooks/review")
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).to_string())
        .filter(|b| b.contains("PR-QUEST is unavailable"))
        .collect()
}

/// A counter's value in Prometheus text (0 when absent).
fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn fallback_notices_come_once_per_outage_counting_the_ones_held_back() {
    let kube = FakeKube::start().await;
    let gh = FakeGitHub::start().await;
    let pq = FakePrQuest::start(&gh).await;
    let hook = crate::fake_obs::webhook().await;
    pq.set_mode(GroupMode::LlmFails);
    for n in 20..26 {
        gh.set_pull(
            &format!("acme/shop#{n}"),
            "Open the network",
            &format!("sha-{n}"),
            &fixture("network-policy-widened.positive.diff"),
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = format!(
        "{}store:\n  url: sqlite://{}\napprovals:\n  webhook_url: {}/hooks/review\n  sweep_interval_seconds: 1\n",
        review_block(&gh, &pq, "  notice_interval: 1h\n"),
        dir.path().join("review.db").display(),
        hook.url
    );
    let tg = harness::start(&kube, &extra).await;
    let suppressed = "toolgate_review_fallback_notices_total{outcome=\"suppressed\"}";
    let sent = "toolgate_review_fallback_notices_total{outcome=\"sent\"}";

    // Three degraded analyses in one outage, within the interval: one notice.
    let mut first = Vec::new();
    for n in 20..23 {
        first.push(analyze(&tg, &format!("https://github.com/acme/shop/pull/{n}")).await);
    }
    for id in &first {
        let done = until(&tg, id, "fallback analysis", finished).await;
        assert_eq!(done["degraded"], true, "{done}");
    }
    crate::daemons::eventually(5, "the first notice", || async {
        fallback_notices(&hook).len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let notices = fallback_notices(&hook);
    assert_eq!(notices.len(), 1, "one notice per outage: {notices:?}");
    assert!(
        !notices[0].contains("not announced"),
        "nothing held back yet: {}",
        notices[0]
    );
    let metrics = tg.metrics().await;
    assert_eq!(counter(&metrics, sent), 1, "{metrics}");
    assert_eq!(counter(&metrics, suppressed), 2, "{metrics}");

    // A restart inside the interval: still the same outage, still no second notice.
    drop(tg);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tg = harness::start(&kube, &extra).await;
    let id = analyze(&tg, "https://github.com/acme/shop/pull/23").await;
    let done = until(&tg, &id, "fallback after the restart", finished).await;
    assert_eq!(done["degraded"], true, "{done}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fallback_notices(&hook).len(),
        1,
        "the interval is kept in the store across restarts"
    );
    assert_eq!(
        counter(&tg.metrics().await, suppressed),
        3,
        "counted (the metrics are this test process')"
    );

    // PR-QUEST answers again (the queued retries complete): the outage is over.
    pq.set_mode(GroupMode::Llm);
    let recovered = until(&tg, &first[0], "the retry to complete", |v| {
        v["degraded"] == false
    })
    .await;
    assert_eq!(recovered["grouping"], "pr-quest", "{recovered}");
    assert_eq!(fallback_notices(&hook).len(), 1, "no notice while it works");

    // It fails again: a new outage, a new notice at once, naming the three held back.
    pq.set_mode(GroupMode::LlmFails);
    let id = analyze(&tg, "https://github.com/acme/shop/pull/24").await;
    let done = until(&tg, &id, "fallback in the second outage", finished).await;
    assert_eq!(done["degraded"], true, "{done}");
    crate::daemons::eventually(5, "the second notice", || async {
        fallback_notices(&hook).len() == 2
    })
    .await;
    let notices = fallback_notices(&hook);
    assert!(
        notices[1].contains(&id) && notices[1].contains("3 earlier fallback analyses"),
        "{}",
        notices[1]
    );
    assert_eq!(counter(&tg.metrics().await, sent), 2);
}

#[tokio::test]
async fn the_notice_interval_and_outages_are_kept_in_the_store() {
    use toolgate::store::{OutageNotice, Store};
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("notices.db").display());
    let store = Store::connect(&url).await.expect("store");
    let minute = 60_000;
    let t0 = 1_000_000_000;
    let decide = |store: &Store, at: i64| {
        let store = store.clone();
        async move {
            store
                .review_outage_notice("pr-quest", at, 15 * minute)
                .await
                .expect("decide")
        }
    };
    assert_eq!(
        decide(&store, t0).await,
        OutageNotice::Send {
            suppressed: 0,
            since_ms: t0
        }
    );
    assert_eq!(decide(&store, t0 + minute).await, OutageNotice::Suppressed);
    assert_eq!(
        decide(&store, t0 + 14 * minute).await,
        OutageNotice::Suppressed
    );
    // Reopened (a restart): the same outage and interval.
    drop(store);
    let store = Store::connect(&url).await.expect("store again");
    assert_eq!(
        decide(&store, t0 + 14 * minute + 59_000).await,
        OutageNotice::Suppressed
    );
    // The interval passed: a reminder of the same outage, with the three held back.
    assert_eq!(
        decide(&store, t0 + 15 * minute).await,
        OutageNotice::Send {
            suppressed: 3,
            since_ms: t0
        }
    );
    assert_eq!(
        decide(&store, t0 + 16 * minute).await,
        OutageNotice::Suppressed
    );
    // PR-QUEST answered: the outage ends once; the next failure is a new outage, told at once.
    assert!(
        store
            .review_upstream_recovered("pr-quest")
            .await
            .expect("recovered")
    );
    assert!(
        !store
            .review_upstream_recovered("pr-quest")
            .await
            .expect("again"),
        "no outage left to end"
    );
    assert_eq!(
        decide(&store, t0 + 17 * minute).await,
        OutageNotice::Send {
            suppressed: 1,
            since_ms: t0 + 17 * minute
        }
    );
    // Another upstream has its own outages.
    assert_eq!(
        store
            .review_outage_notice("github", t0 + 17 * minute, 15 * minute)
            .await
            .expect("other"),
        OutageNotice::Send {
            suppressed: 0,
            since_ms: t0 + 17 * minute
        }
    );
}
