//! Protocol-faithful fakes of Jira Cloud REST v3, PagerDuty Events API v2 (+ the REST reads)
//! and Opsgenie's Alert API, from their published documents, on one in-process axum server
//! (their paths do not overlap): Basic / `Token token=` / `GenieKey` auth, Jira's
//! `{errorMessages, errors}`, PagerDuty's `{status, message, errors}`, Opsgenie's 202
//! `{result, took, requestId}`, and 429 with `Retry-After` or 503 on demand.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const JIRA_EMAIL: &str = "sre@example.com";
pub const JIRA_TOKEN: &str = "jira-api-token";
pub const ROUTING_KEY: &str = "R0UTINGKEY0123456789012345678901";
pub const PD_API_TOKEN: &str = "pd-api-token";
pub const GENIE_KEY: &str = "genie-key-0123";

#[derive(Debug, Clone)]
pub struct Issue {
    pub key: String,
    pub summary: String,
    pub description: Value,
    pub labels: Vec<String>,
    pub priority: Option<String>,
    pub status: String,
    pub comments: Vec<String>,
}

/// An Opsgenie alert: (alias, status, acknowledged, count, the create request's body).
pub type Alert = (String, String, bool, u32, Value);

#[derive(Default)]
pub struct Upstreams {
    pub issues: Mutex<Vec<Issue>>,
    /// Every accepted PagerDuty event, in order.
    pub events: Mutex<Vec<Value>>,
    /// Opsgenie alerts, oldest first.
    pub alerts: Mutex<Vec<Alert>>,
    /// Requests of every kind, counted (including refused ones).
    pub requests: AtomicUsize,
    /// Answer 503 to everything.
    pub down: AtomicBool,
    /// Answer this many next requests with 429 and `Retry-After` (seconds: `retry_after`).
    pub rate_limit: AtomicUsize,
    /// The `Retry-After` of those answers, in seconds; 0 means 1.
    pub retry_after: AtomicU64,
}

pub struct FakeIncidents {
    /// One base URL for all three vendors.
    pub url: String,
    pub state: Arc<Upstreams>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeIncidents {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeIncidents {
    pub async fn start() -> FakeIncidents {
        let state = Arc::new(Upstreams::default());
        let app = Router::new()
            .route("/rest/api/3/issue", post(jira_create))
            .route("/rest/api/3/issue/{key}", get(jira_get))
            .route("/rest/api/3/issue/{key}/comment", post(jira_comment))
            .route(
                "/rest/api/3/issue/{key}/transitions",
                get(jira_transitions).post(jira_transition),
            )
            .route("/rest/api/3/search/jql", post(jira_search))
            .route("/v2/enqueue", post(pd_enqueue))
            .route("/incidents", get(pd_incidents))
            .route("/oncalls", get(pd_oncalls))
            .route("/v2/alerts", post(og_create))
            .route("/v2/alerts/{alias}", get(og_get))
            .route("/v2/alerts/{alias}/{action}", post(og_action))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the incident fakes");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeIncidents {
            url: format!("http://{addr}"),
            state,
            task,
        }
    }

    pub fn issues(&self) -> Vec<Issue> {
        self.state.issues.lock().expect("lock").clone()
    }

    pub fn events(&self) -> Vec<Value> {
        self.state.events.lock().expect("lock").clone()
    }

    /// (alias, status, acknowledged, count)
    pub fn alerts(&self) -> Vec<(String, String, bool, u32)> {
        self.state
            .alerts
            .lock()
            .expect("lock")
            .iter()
            .map(|(a, s, ack, n, _)| (a.clone(), s.clone(), *ack, *n))
            .collect()
    }
}

/// 503 when down, 429 when rate limiting; `None` to go on.
fn gate(s: &Upstreams) -> Option<Response> {
    s.requests.fetch_add(1, Ordering::SeqCst);
    if s.down.load(Ordering::SeqCst) {
        return Some((StatusCode::SERVICE_UNAVAILABLE, "upstream down").into_response());
    }
    if s.rate_limit
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let wait = s.retry_after.load(Ordering::SeqCst).max(1).to_string();
        return Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", wait)],
                Json(json!({"errorMessages": ["Rate limit exceeded"], "message": "Rate limit exceeded"})),
            )
                .into_response(),
        );
    }
    None
}

fn jira_auth(h: &HeaderMap) -> Option<Response> {
    use base64::Engine;
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{JIRA_EMAIL}:{JIRA_TOKEN}"))
    );
    if h.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str()) {
        return None;
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"errorMessages": ["You are not authenticated. Authentication required to perform this operation."], "errors": {}})),
        )
            .into_response(),
    )
}

fn jira_err(status: StatusCode, messages: &[&str], errors: Value) -> Response {
    (
        status,
        Json(json!({"errorMessages": messages, "errors": errors})),
    )
        .into_response()
}

fn issue_json(i: &Issue) -> Value {
    json!({
        "id": i.key.trim_start_matches("SRE-"), "key": i.key,
        "fields": {
            "summary": i.summary, "labels": i.labels,
            "status": {"name": i.status},
            "priority": i.priority.as_ref().map(|p| json!({"name": p})),
        }
    })
}

async fn jira_create(
    State(s): State<Arc<Upstreams>>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&s).or_else(|| jira_auth(&h)) {
        return r;
    }
    let f = &body["fields"];
    if f["project"]["key"] != "SRE" {
        return jira_err(
            StatusCode::BAD_REQUEST,
            &[],
            json!({"project": "valid project is required"}),
        );
    }
    if f["summary"].as_str().is_none_or(str::is_empty) {
        return jira_err(
            StatusCode::BAD_REQUEST,
            &[],
            json!({"summary": "You must specify a summary of the issue."}),
        );
    }
    if f["description"]["type"] != "doc" || f["description"]["version"] != 1 {
        return jira_err(
            StatusCode::BAD_REQUEST,
            &[],
            json!({"description": "Operation value must be an Atlassian Document (see the Atlassian Document Format)"}),
        );
    }
    let labels: Vec<String> = f["labels"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if labels.iter().any(|l| l.contains(' ')) {
        return jira_err(
            StatusCode::BAD_REQUEST,
            &[],
            json!({"labels": "The label must not contain spaces."}),
        );
    }
    let mut issues = s.issues.lock().expect("lock");
    let key = format!("SRE-{}", issues.len() + 1);
    issues.push(Issue {
        key: key.clone(),
        summary: f["summary"].as_str().unwrap_or_default().to_string(),
        description: f["description"].clone(),
        labels,
        priority: f["priority"]["name"].as_str().map(str::to_string),
        status: "Open".into(),
        comments: Vec::new(),
    });
    (
        StatusCode::CREATED,
        Json(json!({"id": key.trim_start_matches("SRE-"), "key": key, "self": format!("/rest/api/3/issue/{key}")})),
    )
        .into_response()
}

async fn jira_get(
    State(s): State<Arc<Upstreams>>,
    h: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    if let Some(r) = gate(&s).or_else(|| jira_auth(&h)) {
        return r;
    }
    match s.issues.lock().expect("lock").iter().find(|i| i.key == key) {
        Some(i) => Json(issue_json(i)).into_response(),
        None => jira_err(
            StatusCode::NOT_FOUND,
            &["Issue does not exist or you do not have permission to see it."],
            json!({}),
        ),
    }
}

async fn jira_comment(
    State(s): State<Arc<Upstreams>>,
    h: HeaderMap,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&s).or_else(|| jira_auth(&h)) {
        return r;
    }
    if body["body"]["type"] != "doc" {
        return jira_err(
            StatusCode::BAD_REQUEST,
            &[],
            json!({"comment": "Comment body must be an Atlassian Document."}),
        );
    }
    let text = body["body"]["content"][0]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut issues = s.issues.lock().expect("lock");
    match issues.iter_mut().find(|i| i.key == key) {
        Some(i) => {
            i.comments.push(text);
            (StatusCode::CREATED, Json(json!({"id": "10000"}))).into_response()
        }
        None => jira_err(
            StatusCode::NOT_FOUND,
            &["Issue does not exist or you do not have permission to see it."],
            json!({}),
        ),
    }
}

/// The workflow: Open -Resolve→ Resolved -Close→ Closed, Open -Close→ Closed, Resolved -Reopen→ Open.
fn transitions_from(status: &str) -> Vec<Value> {
    match status {
        "Open" => vec![
            json!({"id": "21", "name": "Resolve", "to": {"name": "Resolved"}}),
            json!({"id": "31", "name": "Close", "to": {"name": "Closed"}}),
        ],
        "Resolved" => vec![
            json!({"id": "31", "name": "Close", "to": {"name": "Closed"}}),
            json!({"id": "41", "name": "Reopen", "to": {"name": "Open"}}),
        ],
        _ => vec![json!({"id": "41", "name": "Reopen", "to": {"name": "Open"}})],
    }
}

async fn jira_transitions(
    State(s): State<Arc<Upstreams>>,
    h: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    if let Some(r) = gate(&s).or_else(|| jira_auth(&h)) {
        return r;
    }
    match s.issues.lock().expect("lock").iter().find(|i| i.key == key) {
        Some(i) => {
            Json(json!({"expand": "transitions", "transitions": transitions_from(&i.status)}))
                .into_response()
        }
        None => jira_err(
            StatusCode::NOT_FOUND,
            &["Issue does not exist or you do not have permission to see it."],
            json!({}),
        ),
    }
}

async fn jira_transition(
    State(s): State<Arc<Upstreams>>,
    h: HeaderMap,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&s).or_else(|| jira_auth(&h)) {
        return r;
    }
    let mut issues = s.issues.lock().expect("lock");
    let Some(issue) = issues.iter_mut().find(|i| i.key == key) else {
        return jira_err(
            StatusCode::NOT_FOUND,
            &["Issue does not exist or you do not have permission to see it."],
            json!({}),
        );
    };
    let id = body["transition"]["id"].as_str().unwrap_or_default();
    match transitions_from(&issue.status)
        .iter()
        .find(|t| t["id"] == id)
    {
        Some(t) => {
            issue.status = t["to"]["name"].as_str().unwrap_or_default().to_string();
            StatusCode::NO_CONTENT.into_response()
        }
        None => jira_err(
            StatusCode::BAD_REQUEST,
            &[&format!(
                "Transition id '{id}' is not valid for this issue."
            )],
            json!({}),
        ),
    }
}

/// JQL: understands `labels = "x"` and `status = "y"` joined by AND (what toolgate sends and
/// what tests ask); anything else matches every issue.
async fn jira_search(
    State(s): State<Arc<Upstreams>>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&s).or_else(|| jira_auth(&h)) {
        return r;
    }
    let jql = body["jql"].as_str().unwrap_or_default().to_string();
    if jql.trim().is_empty() {
        return jira_err(
            StatusCode::BAD_REQUEST,
            &[
                "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.",
            ],
            json!({}),
        );
    }
    let clause = |name: &str| {
        let re = regex::Regex::new(&format!(r#"{name}\s*=\s*"([^"]*)""#)).expect("regex");
        re.captures(&jql).map(|c| c[1].to_string())
    };
    let (label, status) = (clause("labels"), clause("status"));
    let max = body["maxResults"].as_u64().unwrap_or(50) as usize;
    let issues: Vec<Value> = s
        .issues
        .lock()
        .expect("lock")
        .iter()
        .filter(|i| label.as_ref().is_none_or(|l| i.labels.contains(l)))
        .filter(|i| status.as_ref().is_none_or(|st| &i.status == st))
        .take(max)
        .map(issue_json)
        .collect();
    Json(json!({"issues": issues, "isLast": true})).into_response()
}

fn pd_invalid(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"status": "invalid event", "message": "Event object is invalid", "errors": [message]})),
    )
        .into_response()
}

async fn pd_enqueue(State(s): State<Arc<Upstreams>>, Json(body): Json<Value>) -> Response {
    if let Some(r) = gate(&s) {
        return r;
    }
    if body["routing_key"] != ROUTING_KEY {
        return pd_invalid("'routing_key' is invalid");
    }
    let action = body["event_action"].as_str().unwrap_or_default();
    if !["trigger", "acknowledge", "resolve"].contains(&action) {
        return pd_invalid("'event_action' is invalid");
    }
    if action == "trigger" {
        let p = &body["payload"];
        if p["summary"].as_str().is_none_or(str::is_empty)
            || p["source"].as_str().is_none_or(str::is_empty)
        {
            return pd_invalid("'payload.summary' and 'payload.source' are required");
        }
        if !["critical", "error", "warning", "info"]
            .contains(&p["severity"].as_str().unwrap_or_default())
        {
            return pd_invalid(
                "'payload.severity' is invalid (must be one of: critical, error, warning, info)",
            );
        }
    } else if body["dedup_key"].as_str().is_none_or(str::is_empty) {
        return pd_invalid("'dedup_key' is required for acknowledge and resolve events");
    }
    s.events.lock().expect("lock").push(body.clone());
    (
        StatusCode::ACCEPTED,
        Json(json!({"status": "success", "message": "Event processed", "dedup_key": body["dedup_key"]})),
    )
        .into_response()
}

/// The REST API's view of events: an incident per dedup key, its status the last action's.
async fn pd_incidents(
    State(s): State<Arc<Upstreams>>,
    h: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Some(r) = gate(&s) {
        return r;
    }
    if h.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Token token={PD_API_TOKEN}"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": "Unauthorized", "code": 2006}})),
        )
            .into_response();
    }
    let key = q.get("incident_key").cloned().unwrap_or_default();
    let events = s.events.lock().expect("lock");
    let mine: Vec<&Value> = events
        .iter()
        .filter(|e| e["dedup_key"] == key.as_str())
        .collect();
    let incidents: Vec<Value> = match mine.last() {
        None => vec![],
        Some(last) => {
            let status = match last["event_action"].as_str() {
                Some("acknowledge") => "acknowledged",
                Some("resolve") => "resolved",
                _ => "triggered",
            };
            let title = mine
                .iter()
                .find_map(|e| e["payload"]["summary"].as_str())
                .unwrap_or_default();
            vec![
                json!({"id": "PABC123", "incident_key": key, "status": status, "title": title, "html_url": "https://acme.pagerduty.com/incidents/PABC123"}),
            ]
        }
    };
    Json(json!({"incidents": incidents, "limit": 25, "offset": 0, "more": false})).into_response()
}

async fn pd_oncalls(State(s): State<Arc<Upstreams>>, h: HeaderMap) -> Response {
    if let Some(r) = gate(&s) {
        return r;
    }
    if h.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Token token={PD_API_TOKEN}"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": "Unauthorized", "code": 2006}})),
        )
            .into_response();
    }
    Json(json!({"oncalls": [
        {"escalation_policy": {"summary": "SRE primary"}, "user": {"summary": "Ada Lovelace"}, "escalation_level": 1},
        {"escalation_policy": {"summary": "SRE primary"}, "user": {"summary": "Grace Hopper"}, "escalation_level": 2}
    ]}))
    .into_response()
}

fn og_auth(h: &HeaderMap) -> Option<Response> {
    if h.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("GenieKey {GENIE_KEY}"))
    {
        return None;
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Could not authenticate", "took": 0.0, "requestId": "r-0"})),
        )
            .into_response(),
    )
}

fn og_accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({"result": "Request will be processed", "took": 0.01, "requestId": "r-1"})),
    )
        .into_response()
}

async fn og_create(
    State(s): State<Arc<Upstreams>>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&s).or_else(|| og_auth(&h)) {
        return r;
    }
    let message = body["message"].as_str().unwrap_or_default();
    if message.is_empty() || message.chars().count() > 130 {
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": "Request body is not processable. Please check the errors.", "errors": {"message": "Message can not be empty or longer than 130 characters."}, "took": 0.0, "requestId": "r-2"}))).into_response();
    }
    let alias = body["alias"].as_str().unwrap_or_default().to_string();
    let mut alerts = s.alerts.lock().expect("lock");
    // An open alert with the same alias is deduplicated: its count goes up.
    match alerts.iter_mut().find(|a| a.0 == alias && a.1 == "open") {
        Some(a) => a.3 += 1,
        None => alerts.push((alias, "open".into(), false, 1, body.clone())),
    }
    og_accepted()
}

async fn og_get(
    State(s): State<Arc<Upstreams>>,
    h: HeaderMap,
    Path(alias): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Some(r) = gate(&s).or_else(|| og_auth(&h)) {
        return r;
    }
    if q.get("identifierType").map(String::as_str) != Some("alias") {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "Alert does not exist", "took": 0.0, "requestId": "r-3"})),
        )
            .into_response();
    }
    match s.alerts.lock().expect("lock").iter().rev().find(|a| a.0 == alias) {
        Some(a) => Json(json!({"data": {"alias": a.0, "status": a.1, "acknowledged": a.2, "count": a.3, "message": a.4["message"]}, "took": 0.0, "requestId": "r-4"})).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "Alert does not exist", "took": 0.0, "requestId": "r-3"}))).into_response(),
    }
}

async fn og_action(
    State(s): State<Arc<Upstreams>>,
    h: HeaderMap,
    Path((alias, action)): Path<(String, String)>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Some(r) = gate(&s).or_else(|| og_auth(&h)) {
        return r;
    }
    if q.get("identifierType").map(String::as_str) != Some("alias") {
        return (StatusCode::BAD_REQUEST, Json(json!({"message": "identifierType must be alias here", "took": 0.0, "requestId": "r-5"}))).into_response();
    }
    // Asynchronous like the real API: accepted even when the alias is unknown.
    let mut alerts = s.alerts.lock().expect("lock");
    if let Some(a) = alerts.iter_mut().rev().find(|a| a.0 == alias) {
        match action.as_str() {
            "acknowledge" => a.2 = true,
            "close" => a.1 = "closed".into(),
            _ => {
                return (
                    StatusCode::NOT_FOUND,
                    Json(json!({"message": "No such action", "took": 0.0, "requestId": "r-6"})),
                )
                    .into_response();
            }
        }
    }
    og_accepted()
}
