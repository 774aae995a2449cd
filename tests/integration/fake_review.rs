//! Protocol-faithful fakes for review: GitHub's REST API (the pull request calls toolgate makes)
//! and PR-QUEST (Fission-AI/PR-QUEST, built from its route handlers `src/app/api/diff/route.ts`
//! and `src/app/api/group/route.ts` as PROTOCOLS.md documents them).
//!
//! GitHub: `GET /repos/{o}/{r}/pulls/{n}` (JSON, or the unified diff with `Accept:
//! application/vnd.github.diff`), `…/pulls/{n}/files`, `POST /repos/{o}/{r}/issues/{n}/comments`
//! → 201; a missing `X-GitHub-Api-Version` → 400; a wrong bearer → 401 `{message: "Bad
//! credentials"}`; unknown → 404 `{message: "Not Found", documentation_url}`; the rate-limit
//! switch answers 403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset`.
//!
//! GitHub Issues (REST docs, "Issues" and "Search"): `POST /repos/{o}/{r}/issues` → 201 issue
//! object (422 `Validation Failed` with `errors: [{resource, code, field}]` without a title),
//! `GET …/issues?labels=&state=&per_page=` (newest first), `GET …/issues/{n}` (410 `This issue
//! was deleted` for a deleted one), `PATCH …/issues/{n}` with `state` / `state_reason` (422 for
//! an unknown value), comments as above, `GET /search/issues?q=` (`repo:`, `is:issue`,
//! `label:`, `state:` and words of the title). Queued rate limits answer the next requests:
//! primary (403 or 429 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset`) or secondary
//! (403 or 429 with `retry-after`), with GitHub's messages.
//!
//! PR-QUEST: `GET /api/diff?prUrl=` → the diff as text/plain, or `{error}` 400 (no or bad URL,
//! only github.com), 404, 413 (over 1 MiB), 429 (GitHub rate limit), 502; `POST /api/group
//! {diffIndex, metadata}` → a ReviewPlan (`x-pr-quest-grouping-mode: llm`), 400 `{error:
//! "path: message"}` for a body its zod schema refuses, 400 "No reviewable diff content." for no
//! files, 502 `{error: "LLM grouping failed. Try again later.", detail}` when the LLM fails.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
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

/// An issue of the fake (any repository; numbers are per repository).
#[derive(Clone, Debug)]
pub struct GhIssue {
    pub repo: String,
    pub number: u64,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    /// `open` | `closed`.
    pub state: String,
    pub state_reason: Option<String>,
    pub comments: Vec<String>,
    /// Deleted: reads answer 410.
    pub deleted: bool,
}

/// A rate-limit answer queued for the next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GhLimit {
    /// The primary limit: `status` (403 or 429), `x-ratelimit-remaining: 0`, and
    /// `x-ratelimit-reset` this many seconds from now.
    Primary { status: u16, resets_in: u64 },
    /// A secondary limit: `status` (403 or 429) with `retry-after` seconds.
    Secondary { status: u16, retry_after: u64 },
}

#[derive(Default)]
pub struct GitHubState {
    pub pulls: BTreeMap<String, Pull>,
    pub rate_limited: bool,
    pub comments: Vec<(String, String)>,
    /// Requests seen: `METHOD path accept`.
    pub seen: Vec<String>,
    pub issues: Vec<GhIssue>,
    /// Answered in turn to the next requests, one each.
    pub limits: VecDeque<GhLimit>,
    /// How long creating an issue takes (a slow GitHub, to widen races).
    pub create_delay: std::time::Duration,
    /// How long the answer to a create takes after the issue exists (a caller that dies in
    /// between never hears that it was opened).
    pub answer_delay: std::time::Duration,
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

fn gh_check(state: &mut GitHubState, headers: &HeaderMap) -> Option<Response> {
    if let Some(limit) = state.limits.pop_front() {
        return Some(limit_answer(limit));
    }
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
    if let Some(refused) = gh_check(&mut st, &headers) {
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
    if let Some(refused) = gh_check(&mut st, &headers) {
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
    if let Some(refused) = gh_check(&mut st, &headers) {
        return refused;
    }
    let repo = format!("{o}/{r}");
    let issue = st
        .issues
        .iter()
        .position(|i| i.repo == repo && i.number.to_string() == n);
    if !st.pulls.contains_key(&key(&o, &r, &n)) && issue.is_none() {
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
    if let Some(i) = issue {
        if st.issues[i].deleted {
            return gone();
        }
        st.issues[i].comments.push(text.clone());
    }
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
            .route(
                "/repos/{o}/{r}/issues",
                post(gh_issue_create).get(gh_issue_list),
            )
            .route(
                "/repos/{o}/{r}/issues/{n}",
                get(gh_issue_get).patch(gh_issue_update),
            )
            .route("/search/issues", get(gh_search))
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

    pub fn issues(&self) -> Vec<GhIssue> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .issues
            .clone()
    }

    /// Answers the next requests with these rate limits, one each.
    pub fn limit_next(&self, limits: &[GhLimit]) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .limits
            .extend(limits.iter().copied());
    }

    /// Adds an issue as if opened earlier; returns its number.
    pub fn add_issue(&self, repo: &str, title: &str, labels: &[&str], state: &str) -> u64 {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let number = st.issues.iter().filter(|i| i.repo == repo).count() as u64 + 1;
        st.issues.push(GhIssue {
            repo: repo.into(),
            number,
            title: title.into(),
            body: String::new(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            state: state.into(),
            state_reason: (state == "closed").then(|| "completed".to_string()),
            comments: Vec::new(),
            deleted: false,
        });
        number
    }
}

// ---------------------------------------------------------------- GitHub issues

fn limit_answer(limit: GhLimit) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (status, headers, message) = match limit {
        GhLimit::Primary { status, resets_in } => (
            status,
            vec![
                ("x-ratelimit-limit", "5000".to_string()),
                ("x-ratelimit-remaining", "0".to_string()),
                ("x-ratelimit-used", "5000".to_string()),
                ("x-ratelimit-reset", (now + resets_in).to_string()),
                ("x-ratelimit-resource", "core".to_string()),
            ],
            "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.",
        ),
        GhLimit::Secondary {
            status,
            retry_after,
        } => (
            status,
            vec![("retry-after", retry_after.to_string())],
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.",
        ),
    };
    let mut response = gh_json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
        json!({"message": message, "documentation_url": "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api", "status": status.to_string()}),
    );
    for (name, value) in headers {
        if let Ok(v) = value.parse() {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

fn gone() -> Response {
    gh_json(
        StatusCode::GONE,
        json!({"message": "This issue was deleted", "documentation_url": "https://docs.github.com/rest/issues/issues#get-an-issue", "status": "410"}),
    )
}

fn validation_failed(field: &str, code: &str, doc: &str) -> Response {
    gh_json(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"message": "Validation Failed",
               "errors": [{"resource": "Issue", "code": code, "field": field}],
               "documentation_url": format!("https://docs.github.com/rest/issues/issues#{doc}"), "status": "422"}),
    )
}

/// The issue object of GitHub's docs (the fields clients read, and the usual others).
fn issue_object(i: &GhIssue) -> Value {
    let api = format!(
        "https://api.github.com/repos/{}/issues/{}",
        i.repo, i.number
    );
    json!({
        "id": 1_000_000 + i.number, "node_id": format!("I_kw{}", i.number), "url": api,
        "repository_url": format!("https://api.github.com/repos/{}", i.repo),
        "comments_url": format!("{api}/comments"),
        "html_url": format!("https://github.com/{}/issues/{}", i.repo, i.number),
        "number": i.number, "state": i.state, "state_reason": i.state_reason,
        "title": i.title, "body": i.body, "user": {"login": "toolgate-bot", "id": 7},
        "labels": i.labels.iter().enumerate().map(|(n, l)| json!({"id": n + 1, "name": l, "color": "ededed", "default": false, "description": null})).collect::<Vec<_>>(),
        "assignee": null, "assignees": [], "milestone": null, "locked": false,
        "comments": i.comments.len(), "created_at": "2026-12-06T10:00:00Z",
        "updated_at": "2026-12-06T10:00:00Z",
        "closed_at": if i.state == "closed" { json!("2026-12-06T11:00:00Z") } else { Value::Null },
        "author_association": "NONE",
    })
}

fn body_json(body: &str) -> Option<Value> {
    serde_json::from_str::<Value>(body).ok()
}

async fn gh_issue_create(
    State(s): State<Arc<Mutex<GitHubState>>>,
    Path((o, r)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let delay = {
        let mut st = s.lock().unwrap_or_else(|e| e.into_inner());
        st.seen.push(format!("POST /repos/{o}/{r}/issues"));
        if let Some(refused) = gh_check(&mut st, &headers) {
            return refused;
        }
        st.create_delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let Some(v) = body_json(&body) else {
        return gh_json(
            StatusCode::BAD_REQUEST,
            json!({"message": "Problems parsing JSON", "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue", "status": "400"}),
        );
    };
    let Some(title) = v["title"].as_str().filter(|t| !t.trim().is_empty()) else {
        return validation_failed("title", "missing_field", "create-an-issue");
    };
    let labels: Vec<String> = v["labels"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if labels.iter().any(|l| l.chars().count() > 50) {
        return validation_failed("labels", "invalid", "create-an-issue");
    }
    let (answer, answer_delay) = {
        let mut st = s.lock().unwrap_or_else(|e| e.into_inner());
        let repo = format!("{o}/{r}");
        let number = st.issues.iter().filter(|i| i.repo == repo).count() as u64 + 1;
        let issue = GhIssue {
            repo,
            number,
            title: title.to_string(),
            body: v["body"].as_str().unwrap_or_default().to_string(),
            labels,
            state: "open".into(),
            state_reason: None,
            comments: Vec::new(),
            deleted: false,
        };
        let answer = issue_object(&issue);
        st.issues.push(issue);
        (answer, st.answer_delay)
    };
    if !answer_delay.is_zero() {
        tokio::time::sleep(answer_delay).await;
    }
    gh_json(StatusCode::CREATED, answer)
}

async fn gh_issue_list(
    State(s): State<Arc<Mutex<GitHubState>>>,
    Path((o, r)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut st = s.lock().unwrap_or_else(|e| e.into_inner());
    st.seen.push(format!("GET /repos/{o}/{r}/issues"));
    if let Some(refused) = gh_check(&mut st, &headers) {
        return refused;
    }
    let repo = format!("{o}/{r}");
    let wanted: Vec<&str> = q
        .get("labels")
        .map(|l| {
            l.split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let state = q.get("state").map(String::as_str).unwrap_or("open");
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .min(100);
    let list: Vec<Value> = st
        .issues
        .iter()
        .rev()
        .filter(|i| i.repo == repo && !i.deleted)
        .filter(|i| state == "all" || i.state == state)
        .filter(|i| wanted.iter().all(|w| i.labels.iter().any(|l| l == w)))
        .take(per_page)
        .map(issue_object)
        .collect();
    gh_json(StatusCode::OK, Value::Array(list))
}

fn find_issue(st: &GitHubState, o: &str, r: &str, n: &str) -> Option<usize> {
    let repo = format!("{o}/{r}");
    st.issues
        .iter()
        .position(|i| i.repo == repo && i.number.to_string() == n)
}

async fn gh_issue_get(
    State(s): State<Arc<Mutex<GitHubState>>>,
    Path((o, r, n)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut st = s.lock().unwrap_or_else(|e| e.into_inner());
    st.seen.push(format!("GET /repos/{o}/{r}/issues/{n}"));
    if let Some(refused) = gh_check(&mut st, &headers) {
        return refused;
    }
    match find_issue(&st, &o, &r, &n) {
        None => not_found(),
        Some(i) if st.issues[i].deleted => gone(),
        Some(i) => gh_json(StatusCode::OK, issue_object(&st.issues[i])),
    }
}

async fn gh_issue_update(
    State(s): State<Arc<Mutex<GitHubState>>>,
    Path((o, r, n)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut st = s.lock().unwrap_or_else(|e| e.into_inner());
    st.seen.push(format!("PATCH /repos/{o}/{r}/issues/{n}"));
    if let Some(refused) = gh_check(&mut st, &headers) {
        return refused;
    }
    let Some(i) = find_issue(&st, &o, &r, &n) else {
        return not_found();
    };
    if st.issues[i].deleted {
        return gone();
    }
    let v = body_json(&body).unwrap_or(Value::Null);
    let state = v["state"].as_str();
    if let Some(state) = state
        && !["open", "closed"].contains(&state)
    {
        return validation_failed("state", "invalid", "update-an-issue");
    }
    let reason = v["state_reason"].as_str();
    if let Some(reason) = reason
        && !["completed", "not_planned", "reopened", "duplicate"].contains(&reason)
    {
        return validation_failed("state_reason", "invalid", "update-an-issue");
    }
    let issue = &mut st.issues[i];
    if let Some(state) = state {
        issue.state = state.to_string();
        issue.state_reason = match (state, reason) {
            ("closed", None) => Some("completed".into()),
            (_, r) => r.map(str::to_string),
        };
    }
    if let Some(title) = v["title"].as_str() {
        issue.title = title.to_string();
    }
    gh_json(StatusCode::OK, issue_object(issue))
}

/// `q`: `repo:o/r`, `is:issue`, `is:pr`, `label:x`, `state:open|closed`, other words must be in
/// the title (case-insensitive).
async fn gh_search(
    State(s): State<Arc<Mutex<GitHubState>>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut st = s.lock().unwrap_or_else(|e| e.into_inner());
    st.seen.push("GET /search/issues".into());
    if let Some(refused) = gh_check(&mut st, &headers) {
        return refused;
    }
    let Some(query) = q.get("q").filter(|q| !q.trim().is_empty()) else {
        return validation_failed("q", "missing", "search-issues-and-pull-requests");
    };
    let (mut repo, mut label, mut state, mut words) = (None, Vec::new(), None, Vec::new());
    for term in query.split_whitespace() {
        match term.split_once(':') {
            Some(("repo", v)) => repo = Some(v.to_string()),
            Some(("label", v)) => label.push(v.trim_matches('"').to_string()),
            Some(("state", v)) => state = Some(v.to_string()),
            Some(("is", _)) => {}
            _ => words.push(term.to_lowercase()),
        }
    }
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .min(100);
    let items: Vec<Value> = st
        .issues
        .iter()
        .filter(|i| !i.deleted && repo.as_ref().is_none_or(|r| &i.repo == r))
        .filter(|i| state.as_ref().is_none_or(|s| &i.state == s))
        .filter(|i| label.iter().all(|l| i.labels.contains(l)))
        .filter(|i| words.iter().all(|w| i.title.to_lowercase().contains(w)))
        .take(per_page)
        .map(issue_object)
        .collect();
    gh_json(
        StatusCode::OK,
        json!({"total_count": items.len(), "incomplete_results": false, "items": items}),
    )
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
