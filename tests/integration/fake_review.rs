//! Protocol-faithful fakes for review: GitHub's REST API (the pull request calls toolgate makes)
//! and PR-QUEST (Fission-AI/PR-QUEST, built from its route handlers `src/app/api/diff/route.ts`
//! and `src/app/api/group/route.ts` as PROTOCOLS.md documents them).
//!
//! GitHub: `GET /repos/{o}/{r}/pulls/{n}` (JSON, or the unified diff with `Accept:
//! application/vnd.github.diff`), `…/pulls/{n}/files`, `POST /repos/{o}/{r}/issues/{n}/comments`
//! → 201; a missing `X-GitHub-Api-Version` → 400; a wrong bearer → 401 `{message: "Bad
//! credentials"}`; unknown → 404 `{message: "Not Found"}`; the rate-limit switch answers 403
//! with `x-ratelimit-remaining: 0` and `x-ratelimit-reset`.
//!
//! PR-QUEST: `GET /api/diff?prUrl=` → the diff as text/plain, or `{error}` 400 (no or bad URL,
//! only github.com), 404, 413 (over 1 MiB), 429 (GitHub rate limit), 502; `POST /api/group
//! {diffIndex, metadata}` → a ReviewPlan (`x-pr-quest-grouping-mode: llm`), 400 `{error:
//! "path: message"}` for a body its zod schema refuses, 400 "No reviewable diff content." for no
//! files, 502 `{error: "LLM grouping failed. Try again later.", detail}` when the LLM fails.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const TOKEN: &str = "ghp_fake_review_token_0123456789abcdef0123";

#[derive(Clone, Debug)]
pub struct Pull {
    pub title: String,
    pub body: String,
    pub head_sha: String,
    pub diff: String,
}

#[derive(Default)]
pub struct GitHubState {
    pub pulls: BTreeMap<String, Pull>,
    pub rate_limited: bool,
    pub comments: Vec<(String, String)>,
    /// Requests seen: `METHOD path accept`.
    pub seen: Vec<String>,
}

pub struct FakeGitHub {
    pub url: String,
    pub state: Arc<Mutex<GitHubState>>,
}

fn key(o: &str, r: &str, n: &str) -> String {
    format!("{o}/{r}#{n}")
}

fn gh_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn gh_check(state: &GitHubState, headers: &HeaderMap) -> Option<Response> {
    if state.rate_limited {
        return Some(
            (
                StatusCode::FORBIDDEN,
                [
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1767225600"),
                    ("content-type", "application/json"),
                ],
                json!({"message": "API rate limit exceeded for installation."}).to_string(),
            )
                .into_response(),
        );
    }
    if headers
        .get("x-github-api-version")
        .and_then(|v| v.to_str().ok())
        != Some("2022-11-28")
    {
        return Some(gh_json(
            StatusCode::BAD_REQUEST,
            json!({"message": "Unsupported API version"}),
        ));
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Bearer {TOKEN}") {
        return Some(gh_json(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Bad credentials"}),
        ));
    }
    None
}

fn not_found() -> Response {
    gh_json(
        StatusCode::NOT_FOUND,
        json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}),
    )
}

async fn gh_pull(
    State(s): State<Arc<Mutex<GitHubState>>>,
    Path((o, r, n)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut st = s.lock().unwrap_or_else(|e| e.into_inner());
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    st.seen
        .push(format!("GET /repos/{o}/{r}/pulls/{n} {accept}"));
    if let Some(refused) = gh_check(&st, &headers) {
        return refused;
    }
    let Some(p) = st.pulls.get(&key(&o, &r, &n)).cloned() else {
        return not_found();
    };
    if accept.contains("vnd.github.diff") {
        return (
            StatusCode::OK,
            [("content-type", "text/plain; charset=utf-8")],
            p.diff,
        )
            .into_response();
    }
    let files = toolgate::review::diff::parse(&p.diff);
    let (add, del) = toolgate::review::diff::line_counts(&files);
    gh_json(
        StatusCode::OK,
        json!({
            "number": n.parse::<u64>().unwrap_or(0), "state": "open", "title": p.title, "body": p.body,
            "html_url": format!("https://github.com/{o}/{r}/pull/{n}"),
            "user": {"login": "octocat"}, "head": {"sha": p.head_sha, "ref": "feature"},
            "base": {"ref": "main"}, "additions": add, "deletions": del, "changed_files": files.len(),
        }),
    )
}

async fn gh_files(
    State(s): State<Arc<Mutex<GitHubState>>>,
    Path((o, r, n)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut st = s.lock().unwrap_or_else(|e| e.into_inner());
    st.seen.push(format!("GET /repos/{o}/{r}/pulls/{n}/files"));
    if let Some(refused) = gh_check(&st, &headers) {
        return refused;
    }
    let Some(p) = st.pulls.get(&key(&o, &r, &n)).cloned() else {
        return not_found();
    };
    let files: Vec<Value> = toolgate::review::diff::parse(&p.diff)
        .iter()
        .map(|f| json!({"filename": f.path, "status": f.status, "additions": f.added().count(), "deletions": f.removed().count()}))
        .collect();
    gh_json(StatusCode::OK, Value::Array(files))
}

async fn gh_comment(
    State(s): State<Arc<Mutex<GitHubState>>>,
    Path((o, r, n)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut st = s.lock().unwrap_or_else(|e| e.into_inner());
    st.seen
        .push(format!("POST /repos/{o}/{r}/issues/{n}/comments"));
    if let Some(refused) = gh_check(&st, &headers) {
        return refused;
    }
    if !st.pulls.contains_key(&key(&o, &r, &n)) {
        return not_found();
    }
    let Some(text) = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["body"].as_str().map(str::to_string))
    else {
        return gh_json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "Validation Failed"}),
        );
    };
    st.comments.push((key(&o, &r, &n), text.clone()));
    let id = 1000 + st.comments.len();
    gh_json(
        StatusCode::CREATED,
        json!({"id": id, "html_url": format!("https://github.com/{o}/{r}/pull/{n}#issuecomment-{id}"), "body": text}),
    )
}

impl FakeGitHub {
    pub async fn start() -> FakeGitHub {
        let state = Arc::new(Mutex::new(GitHubState::default()));
        let app = Router::new()
            .route("/repos/{o}/{r}/pulls/{n}", get(gh_pull))
            .route("/repos/{o}/{r}/pulls/{n}/files", get(gh_files))
            .route("/repos/{o}/{r}/issues/{n}/comments", post(gh_comment))
            .fallback(|| async { not_found() })
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitHub { url, state }
    }

    pub fn set_pull(&self, slug: &str, title: &str, head_sha: &str, diff: &str) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pulls
            .insert(
                slug.to_string(),
                Pull {
                    title: title.into(),
                    body: "Integration change.".into(),
                    head_sha: head_sha.into(),
                    diff: diff.into(),
                },
            );
    }

    pub fn set_rate_limited(&self, on: bool) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rate_limited = on;
    }

    pub fn comments(&self) -> Vec<(String, String)> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .comments
            .clone()
    }

    pub fn seen(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .seen
            .clone()
    }
}

// ---------------------------------------------------------------- PR-QUEST

/// How `/api/group` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupMode {
    /// An LLM plan.
    Llm,
    /// 502 "LLM grouping failed".
    LlmFails,
    /// Waits until the mode changes (a slow LLM), then answers as that mode says.
    Hold,
}

pub struct QuestState {
    pub mode: GroupMode,
    pub risk_calls: Vec<String>,
    /// Where `/api/diff` reads pull requests (the fake GitHub's state).
    pub github: Arc<Mutex<GitHubState>>,
    pub group_requests: Vec<Value>,
}

pub struct FakePrQuest {
    pub url: String,
    pub state: Arc<Mutex<QuestState>>,
    pub group_calls: Arc<AtomicUsize>,
}

type QuestShared = (Arc<Mutex<QuestState>>, Arc<AtomicUsize>);

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [
            ("cache-control", "no-store"),
            ("content-type", "application/json"),
        ],
        json!({"error": message}).to_string(),
    )
        .into_response()
}

/// `parseGitHubPrUrl` of pr-url.ts, the parts the fake needs: github.com only, /owner/repo/pull/N.
fn parse_pr_url(raw: &str) -> Result<(String, String, String), String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("Enter a GitHub pull request URL.".into());
    }
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    };
    let url = reqwest::Url::parse(&with_scheme)
        .map_err(|_| "Enter a valid URL, e.g. https://github.com/org/repo/pull/123.".to_string())?;
    let host = url.host_str().unwrap_or_default().to_lowercase();
    if host != "github.com" && host != "www.github.com" {
        return Err("Only public github.com pull requests are supported right now.".into());
    }
    let seg: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    if seg.len() < 4 {
        return Err("URL must look like github.com/owner/repo/pull/123.".into());
    }
    if seg[2] != "pull" {
        return Err(
            "URL must point to a pull request, e.g. github.com/owner/repo/pull/123.".into(),
        );
    }
    if seg[3].parse::<u64>().ok().filter(|n| *n > 0).is_none() {
        return Err("Pull request number must be numeric.".into());
    }
    Ok((
        seg[0].to_string(),
        seg[1].trim_end_matches(".git").to_string(),
        seg[3].to_string(),
    ))
}

async fn quest_diff(
    State((s, _)): State<QuestShared>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(raw) = q.get("prUrl") else {
        return error(StatusCode::BAD_REQUEST, "Enter a GitHub pull request URL.");
    };
    let (o, r, n) = match parse_pr_url(raw) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let github = s.lock().unwrap_or_else(|e| e.into_inner()).github.clone();
    let gh = github.lock().unwrap_or_else(|e| e.into_inner());
    if gh.rate_limited {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "GitHub rate limit reached. Please wait a minute and try again.",
        );
    }
    let Some(p) = gh.pulls.get(&key(&o, &r, &n)) else {
        return error(
            StatusCode::NOT_FOUND,
            "Pull request diff not found. Ensure the PR is public.",
        );
    };
    if p.diff.len() > 1_048_576 {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Diff is too large to analyze right now. Please try a smaller pull request.",
        );
    }
    (
        StatusCode::OK,
        [
            ("content-type", "text/plain; charset=utf-8"),
            ("cache-control", "no-store"),
        ],
        p.diff.clone(),
    )
        .into_response()
}

/// `GroupingRequestSchema.safeParse` of grouping-schemas.ts: the first problem as `path: message`.
fn check_group(body: &Value) -> Result<(), String> {
    let index = &body["diffIndex"];
    if !index.is_object() {
        return Err("diffIndex: Required".into());
    }
    if index["diff_index_version"] != json!(1) {
        return Err("diffIndex.diff_index_version: Invalid literal value, expected 1".into());
    }
    let Some(files) = index["files"].as_array() else {
        return Err("diffIndex.files: Required".into());
    };
    for (i, f) in files.iter().enumerate() {
        if f["file_id"].as_str().is_none_or(str::is_empty) {
            return Err(format!(
                "diffIndex.files.{i}.file_id: String must contain at least 1 character(s)"
            ));
        }
        let status = f["status"].as_str().unwrap_or_default();
        if !["added", "deleted", "modified", "renamed", "copied"].contains(&status) {
            return Err(format!("diffIndex.files.{i}.status: Invalid enum value"));
        }
        let hunks = f["hunks"].as_array().cloned().unwrap_or_default();
        if hunks.is_empty() {
            return Err(format!(
                "diffIndex.files.{i}.hunks: Array must contain at least 1 element(s)"
            ));
        }
        for (j, h) in hunks.iter().enumerate() {
            if h["hunk_id"].as_str().is_none_or(str::is_empty)
                || !h["old_start"].is_u64()
                || !h["new_start"].is_u64()
                || h["header"].as_str().is_none_or(str::is_empty)
            {
                return Err(format!("diffIndex.files.{i}.hunks.{j}: invalid hunk"));
            }
        }
    }
    Ok(())
}

async fn quest_group(State((s, calls)): State<QuestShared>, body: String) -> Response {
    calls.fetch_add(1, Ordering::SeqCst);
    let Ok(payload) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "Request body must be valid JSON.");
    };
    if let Err(e) = check_group(&payload) {
        return error(StatusCode::BAD_REQUEST, &e);
    }
    let files = payload["diffIndex"]["files"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if files.is_empty() {
        return error(StatusCode::BAD_REQUEST, "No reviewable diff content.");
    }
    s.lock()
        .unwrap_or_else(|e| e.into_inner())
        .group_requests
        .push(payload.clone());
    let mode = loop {
        let mode = s.lock().unwrap_or_else(|e| e.into_inner()).mode;
        if mode != GroupMode::Hold {
            break mode;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    if mode == GroupMode::LlmFails {
        return (
            StatusCode::BAD_GATEWAY,
            [("x-pr-quest-grouping-mode", "llm-error"), ("content-type", "application/json")],
            json!({"error": "LLM grouping failed. Try again later.", "detail": "upstream model timeout"}).to_string(),
        )
            .into_response();
    }
    let risk_calls = s
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .risk_calls
        .clone();
    // The LLM's plan: one step per file (at most six), hunks referenced by id.
    let steps: Vec<Value> = files
        .iter()
        .take(6)
        .enumerate()
        .map(|(i, f)| {
            let hunk_ids: Vec<Value> = f["hunks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| h["hunk_id"].clone())
                .collect();
            json!({
                "step_id": format!("s{}", i + 1),
                "title": format!("Check {}", f["file_id"].as_str().unwrap_or_default()),
                "description": "Read the change and its intent.",
                "objective": "The change does what the PR says.",
                "priority": if i == 0 { "high" } else { "medium" },
                "diff_refs": [{"file_id": f["file_id"], "hunk_ids": hunk_ids}],
                "notes_suggested": ["Is this covered by tests?"],
                "badges": ["llm"],
            })
        })
        .collect();
    let title = payload["metadata"]["prTitle"]
        .as_str()
        .unwrap_or("Pull request")
        .to_string();
    let plan = json!({
        "version": 1,
        "pr_overview": {"title": title, "summary": "The LLM grouped the change by purpose."},
        "steps": steps,
        "end_state": {"acceptance_checks": ["Tests pass"], "risk_calls": risk_calls},
    });
    (
        StatusCode::OK,
        [
            ("x-pr-quest-grouping-mode", "llm"),
            ("content-type", "application/json"),
        ],
        plan.to_string(),
    )
        .into_response()
}

impl FakePrQuest {
    pub async fn start(github: &FakeGitHub) -> FakePrQuest {
        let state = Arc::new(Mutex::new(QuestState {
            mode: GroupMode::Llm,
            risk_calls: Vec::new(),
            github: github.state.clone(),
            group_requests: Vec::new(),
        }));
        let calls = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/api/diff", get(quest_diff))
            .route("/api/group", post(quest_group))
            .with_state((state.clone(), calls.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakePrQuest {
            url,
            state,
            group_calls: calls,
        }
    }

    pub fn set_mode(&self, mode: GroupMode) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).mode = mode;
    }

    pub fn set_risk_calls(&self, calls: &[&str]) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .risk_calls = calls.iter().map(|s| s.to_string()).collect();
    }

    pub fn group_calls(&self) -> usize {
        self.group_calls.load(Ordering::SeqCst)
    }
}
