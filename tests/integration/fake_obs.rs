//! Protocol-faithful fakes of Loki, Tempo and Grafana (in-process axum on 127.0.0.1:0), built
//! from their documented HTTP APIs including their error bodies: Loki answers bad LogQL with a
//! plain-text 400 "parse error …" and a missing tenant with 401 "no org id"; Tempo answers an
//! unknown trace with an empty 404 and trace JSON with base64 ids (as its protobuf-JSON does);
//! Grafana answers a missing or wrong token with 401 `{"message":"Unauthorized"}`.
//! Every request is recorded so tests can assert on headers and query parameters. Switches
//! (`Fake::answer_next_with`, `Fake::answer_every_request_with`) make a fake answer with given
//! statuses instead, for tests of what toolgate does when an upstream refuses or fails.
//! `webhook` is a Slack-compatible incoming webhook on the same machinery.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Lower-cased header names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

type Handler = fn(&Shared, &Recorded) -> Response;

pub struct Shared {
    requests: Mutex<Vec<Recorded>>,
    /// Loki: streams `(labels, [(ns, line)])`; Tempo: traces by hex id; Grafana: dashboards.
    pub data: Mutex<Value>,
    /// Annotations Grafana stored.
    pub annotations: Mutex<Vec<Value>>,
    /// Answers for the next requests, one each, before `forced` and the handler.
    queued: Mutex<VecDeque<(StatusCode, String)>>,
    /// Set: every request is answered with this status and body instead of the handler's.
    forced: Mutex<Option<(StatusCode, String)>>,
    handler: Handler,
}

/// A running fake.
pub struct Fake {
    pub url: String,
    shared: Arc<Shared>,
}

impl Fake {
    async fn start(handler: Handler, data: Value) -> Fake {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            data: Mutex::new(data),
            annotations: Mutex::new(Vec::new()),
            queued: Mutex::new(VecDeque::new()),
            forced: Mutex::new(None),
            handler,
        });
        let app = Router::new().fallback(dispatch).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake {
            url: format!("http://{addr}"),
            shared,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }

    /// Change one key of the fake's data (Grafana: `token`, the bearer token it accepts).
    pub fn set(&self, key: &str, value: Value) {
        self.shared.data.lock().unwrap_or_else(|e| e.into_inner())[key] = value;
    }

    /// Answer the next requests with these statuses and bodies (a JSON body when it parses as
    /// JSON, else text), one each in order, as an upstream refusing them would; then as before.
    pub fn answer_next_with(&self, answers: &[(u16, &str)]) {
        self.shared
            .queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(answers.iter().map(|&(status, body)| answer(status, body)));
    }

    /// From now on answer every request with `status` and `body`, as a failing upstream
    /// would; `None` ends it.
    pub fn answer_every_request_with(&self, forced: Option<(u16, &str)>) {
        *self.shared.forced.lock().unwrap_or_else(|e| e.into_inner()) =
            forced.map(|(status, body)| answer(status, body));
    }

    pub fn annotations(&self) -> Vec<Value> {
        self.shared
            .annotations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn dispatch(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let query = parts
        .uri
        .query()
        .map(|q| {
            reqwest::Url::parse(&format!("http://x/?{q}"))
                .map(|u| u.query_pairs().into_owned().collect())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query,
        headers: headers(&parts.headers),
        body: body.to_vec(),
    };
    shared
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(recorded.clone());
    let queued = shared
        .queued
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop_front();
    let forced = queued.or_else(|| {
        shared
            .forced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    });
    match forced {
        Some((status, body)) => match serde_json::from_str::<Value>(&body) {
            Ok(json) => json_response(status, json),
            Err(_) => text(status, &body),
        },
        None => (shared.handler)(&shared, &recorded),
    }
}

fn answer(status: u16, body: &str) -> (StatusCode, String) {
    (
        StatusCode::from_u16(status).expect("an HTTP status"),
        body.to_string(),
    )
}

fn headers(h: &HeaderMap) -> BTreeMap<String, String> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn text(status: StatusCode, body: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

// ---------------------------------------------------------------- Loki

/// Loki with multi-tenancy on (auth_enabled: true): requests need `X-Scope-OrgID`.
/// `streams` is `[{"stream": {labels}, "values": [["<ns>", "line"], …]}]`.
pub async fn loki(streams: Value) -> Fake {
    Fake::start(loki_handler, streams).await
}

/// A stream selector `{k="v", k2=~"re"}` with optional `|= "text"` / `!= "text"` filters: the
/// subset of LogQL this fake evaluates. Anything else is a parse error, worded like Loki's.
struct LogQuery {
    matchers: Vec<(String, String, String)>,
    filters: Vec<(bool, String)>,
}

fn parse_error(col: usize, unexpected: &str) -> String {
    format!("parse error at line 1, col {col}: syntax error: unexpected {unexpected}")
}

fn parse_logql(q: &str) -> Result<LogQuery, String> {
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let string = |i: &mut usize| -> Result<String, String> {
        if chars.get(*i) != Some(&'"') {
            return Err(parse_error(*i + 1, "IDENTIFIER, expecting STRING"));
        }
        *i += 1;
        let mut s = String::new();
        while *i < chars.len() && chars[*i] != '"' {
            if chars[*i] == '\\' && *i + 1 < chars.len() {
                *i += 1;
            }
            s.push(chars[*i]);
            *i += 1;
        }
        if *i >= chars.len() {
            return Err(parse_error(*i + 1, "$end, expecting STRING"));
        }
        *i += 1;
        Ok(s)
    };
    skip_ws(&mut i);
    if chars.get(i) != Some(&'{') {
        return Err(parse_error(i + 1, "IDENTIFIER"));
    }
    i += 1;
    let mut matchers = Vec::new();
    loop {
        skip_ws(&mut i);
        if chars.get(i) == Some(&'}') {
            i += 1;
            break;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        if i == start {
            return Err(parse_error(
                i + 1,
                if i >= chars.len() {
                    "$end"
                } else {
                    "IDENTIFIER"
                },
            ));
        }
        let name: String = chars[start..i].iter().collect();
        skip_ws(&mut i);
        let op = if chars.get(i) == Some(&'=') && chars.get(i + 1) == Some(&'~') {
            i += 2;
            "=~"
        } else if chars.get(i) == Some(&'=') {
            i += 1;
            "="
        } else if chars.get(i) == Some(&'!') && chars.get(i + 1) == Some(&'=') {
            i += 2;
            "!="
        } else {
            return Err(parse_error(i + 1, "IDENTIFIER, expecting EQ"));
        };
        skip_ws(&mut i);
        let value = string(&mut i)?;
        matchers.push((name, op.to_string(), value));
        skip_ws(&mut i);
        match chars.get(i) {
            Some(',') => i += 1,
            Some('}') => {}
            None => return Err(parse_error(i + 1, "$end, expecting } or ,")),
            Some(_) => return Err(parse_error(i + 1, "IDENTIFIER, expecting } or ,")),
        }
    }
    let mut filters = Vec::new();
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        let keep = match (chars.get(i), chars.get(i + 1)) {
            (Some('|'), Some('=')) => true,
            (Some('!'), Some('=')) => false,
            _ => return Err(parse_error(i + 1, "IDENTIFIER")),
        };
        i += 2;
        skip_ws(&mut i);
        filters.push((keep, string(&mut i)?));
    }
    if matchers.is_empty() {
        return Err(
            "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"
                .into(),
        );
    }
    Ok(LogQuery { matchers, filters })
}

fn stream_matches(q: &LogQuery, labels: &Value) -> bool {
    q.matchers.iter().all(|(k, op, v)| {
        let actual = labels.get(k).and_then(Value::as_str).unwrap_or("");
        match op.as_str() {
            "=" => actual == v,
            "!=" => actual != v,
            _ => regex::Regex::new(&format!("^(?:{v})$"))
                .map(|r| r.is_match(actual))
                .unwrap_or(false),
        }
    })
}

/// A nanosecond timestamp parameter, or Loki's error text for it.
fn ns_param(r: &Recorded, name: &str) -> Result<i128, String> {
    let raw = r.param(name).unwrap_or_default();
    raw.parse::<i128>().map_err(|_| {
        format!("invalid parameter \"{name}\": could not parse '{raw}' as a timestamp")
    })
}

fn loki_handler(shared: &Shared, r: &Recorded) -> Response {
    if r.header("x-scope-orgid").is_none_or(str::is_empty) {
        return text(StatusCode::UNAUTHORIZED, "no org id\n");
    }
    let streams = shared
        .data
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let streams = streams.as_array().cloned().unwrap_or_default();
    let (start, end) = match (ns_param(r, "start"), ns_param(r, "end")) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return text(StatusCode::BAD_REQUEST, &e),
    };
    let in_range = |ns: i128| ns >= start && ns < end;
    if r.path == "/loki/api/v1/query_range" {
        let q = match parse_logql(r.param("query").unwrap_or_default()) {
            Ok(q) => q,
            Err(e) => return text(StatusCode::BAD_REQUEST, &e),
        };
        let limit: usize = r.param("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
        let forward = r.param("direction") == Some("forward");
        // Every matching entry, then the `limit` first in `direction` order.
        let mut all: Vec<(i128, usize, String)> = Vec::new();
        for (si, s) in streams.iter().enumerate() {
            if !stream_matches(&q, &s["stream"]) {
                continue;
            }
            for v in s["values"].as_array().cloned().unwrap_or_default() {
                let ns: i128 = v[0].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
                let line = v[1].as_str().unwrap_or_default().to_string();
                let keep = q
                    .filters
                    .iter()
                    .all(|(keep, t)| line.contains(t.as_str()) == *keep);
                if in_range(ns) && keep {
                    all.push((ns, si, line));
                }
            }
        }
        all.sort_by_key(|e| e.0);
        if !forward {
            all.reverse();
        }
        all.truncate(limit);
        let mut result: Vec<Value> = Vec::new();
        let mut index: BTreeMap<usize, usize> = BTreeMap::new();
        for (ns, si, line) in all {
            let slot = *index.entry(si).or_insert_with(|| {
                result.push(json!({"stream": streams[si]["stream"], "values": []}));
                result.len() - 1
            });
            if let Some(values) = result[slot]["values"].as_array_mut() {
                values.push(json!([ns.to_string(), line]));
            }
        }
        return json_response(
            StatusCode::OK,
            json!({"status": "success", "data": {"resultType": "streams", "result": result,
                   "stats": {"summary": {"totalEntriesReturned": 0}}}}),
        );
    }
    let active = |s: &&Value| {
        s["values"].as_array().is_some_and(|vs| {
            vs.iter()
                .any(|v| in_range(v[0].as_str().and_then(|t| t.parse().ok()).unwrap_or(0)))
        })
    };
    if r.path == "/loki/api/v1/labels" {
        let mut names: Vec<String> = streams
            .iter()
            .filter(active)
            .flat_map(|s| {
                s["stream"]
                    .as_object()
                    .map(|m| m.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .collect();
        names.sort();
        names.dedup();
        return json_response(StatusCode::OK, json!({"status": "success", "data": names}));
    }
    if let Some(name) = r
        .path
        .strip_prefix("/loki/api/v1/label/")
        .and_then(|p| p.strip_suffix("/values"))
    {
        let selector = match r.param("query") {
            Some(q) => match parse_logql(q) {
                Ok(q) => Some(q),
                Err(e) => return text(StatusCode::BAD_REQUEST, &e),
            },
            None => None,
        };
        let mut values: Vec<String> = streams
            .iter()
            .filter(active)
            .filter(|s| {
                selector
                    .as_ref()
                    .is_none_or(|q| stream_matches(q, &s["stream"]))
            })
            .filter_map(|s| s["stream"][name].as_str().map(String::from))
            .collect();
        values.sort();
        values.dedup();
        return json_response(StatusCode::OK, json!({"status": "success", "data": values}));
    }
    text(StatusCode::NOT_FOUND, "404 page not found\n")
}

// ---------------------------------------------------------------- Tempo

/// Tempo with `traces`: `{"<hex id>": <trace JSON as /api/traces returns it>}` and search hits
/// `search`: `[{"traceID", "rootServiceName", …}]` under key "search".
pub async fn tempo(data: Value) -> Fake {
    Fake::start(tempo_handler, data).await
}

fn tempo_handler(shared: &Shared, r: &Recorded) -> Response {
    let data = shared
        .data
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(id) = r.path.strip_prefix("/api/traces/") {
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return text(StatusCode::BAD_REQUEST, "invalid trace id");
        }
        // Tempo pads ids to 32 hex digits.
        let padded = format!("{:0>32}", id.to_ascii_lowercase());
        return match data["traces"].get(&padded) {
            Some(t) => json_response(StatusCode::OK, t.clone()),
            None => Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(Body::empty())
                .unwrap_or_default(),
        };
    }
    if r.path == "/api/search" {
        let q = r.param("q").unwrap_or("{}").trim();
        if !(q.starts_with('{') && q.ends_with('}')) {
            return text(
                StatusCode::BAD_REQUEST,
                "invalid TraceQL query: parse error at line 1, col 1: syntax error: unexpected IDENTIFIER",
            );
        }
        let limit: usize = r.param("limit").and_then(|l| l.parse().ok()).unwrap_or(20);
        let mut hits = data["search"].as_array().cloned().unwrap_or_default();
        // The fake evaluates only `{ resource.service.name = "x" }`.
        if let Some(service) = q
            .split("resource.service.name")
            .nth(1)
            .and_then(|rest| rest.split('"').nth(1))
        {
            hits.retain(|h| h["rootServiceName"].as_str() == Some(service));
        }
        hits.truncate(limit);
        return json_response(
            StatusCode::OK,
            json!({"traces": hits, "metrics": {"inspectedBytes": "1024", "completedJobs": 1, "totalJobs": 1}}),
        );
    }
    text(StatusCode::NOT_FOUND, "404 page not found\n")
}

// ---------------------------------------------------------------- Grafana

/// Grafana accepting only `Authorization: Bearer <token>`, with `dashboards`:
/// `[{"uid", "title", "tags", "folderTitle"}]`.
pub async fn grafana(token: &str, dashboards: Value) -> Fake {
    Fake::start(
        grafana_handler,
        json!({"token": token, "dashboards": dashboards}),
    )
    .await
}

fn slug(title: &str) -> String {
    let mut s = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    s.trim_matches('-').to_string()
}

fn grafana_handler(shared: &Shared, r: &Recorded) -> Response {
    let data = shared
        .data
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let expected = format!("Bearer {}", data["token"].as_str().unwrap_or_default());
    if r.header("authorization") != Some(expected.as_str()) {
        return json_response(StatusCode::UNAUTHORIZED, json!({"message": "Unauthorized"}));
    }
    if r.method == Method::GET.as_str() && r.path == "/api/search" {
        let query = r.param("query").unwrap_or_default().to_ascii_lowercase();
        let tags = r.params("tag");
        let uids = r.params("dashboardUIDs");
        let limit: usize = r
            .param("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(1000);
        let hits: Vec<Value> = data["dashboards"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| {
                let title = d["title"].as_str().unwrap_or_default();
                let dtags: Vec<&str> = d["tags"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                title.to_ascii_lowercase().contains(&query)
                    && tags.iter().all(|t| dtags.contains(t))
                    && (uids.is_empty() || uids.contains(&d["uid"].as_str().unwrap_or_default()))
            })
            .take(limit)
            .enumerate()
            .map(|(i, d)| {
                let uid = d["uid"].as_str().unwrap_or_default();
                let title = d["title"].as_str().unwrap_or_default();
                json!({
                    "id": i + 1, "uid": uid, "title": title,
                    "uri": format!("db/{}", slug(title)),
                    "url": format!("/d/{uid}/{}", slug(title)),
                    "slug": "", "type": "dash-db", "tags": d["tags"], "isStarred": false,
                    "folderUid": "f1", "folderTitle": d["folderTitle"], "sortMeta": 0
                })
            })
            .collect();
        return json_response(StatusCode::OK, Value::Array(hits));
    }
    if r.method == Method::POST.as_str() && r.path == "/api/annotations" {
        let body: Value = match serde_json::from_slice(&r.body) {
            Ok(v) => v,
            Err(_) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"message": "bad request data"}),
                );
            }
        };
        if body["text"].as_str().is_none_or(str::is_empty) {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"message": "Failed to save annotation"}),
            );
        }
        let mut stored = shared.annotations.lock().unwrap_or_else(|e| e.into_inner());
        stored.push(body);
        let id = stored.len();
        return json_response(
            StatusCode::OK,
            json!({"message": "Annotation added", "id": id}),
        );
    }
    json_response(StatusCode::NOT_FOUND, json!({"message": "Not found"}))
}

// ---------------------------------------------------------------- a Slack-style webhook

/// A Slack-compatible incoming webhook: every POST with a `text` is recorded and answered
/// `200 ok`, as Slack does; the switches give its refusals (`400 invalid_payload`, `404
/// no_service`) or its outages.
pub async fn webhook() -> Fake {
    Fake::start(webhook_handler, Value::Null).await
}

fn webhook_handler(_shared: &Shared, r: &Recorded) -> Response {
    if r.method != Method::POST.as_str() {
        return text(StatusCode::METHOD_NOT_ALLOWED, "invalid_method");
    }
    match serde_json::from_slice::<Value>(&r.body) {
        Ok(body) if body["text"].is_string() => text(StatusCode::OK, "ok"),
        _ => text(StatusCode::BAD_REQUEST, "invalid_payload"),
    }
}
