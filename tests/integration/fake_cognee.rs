//! A protocol-faithful fake of Cognee's REST server (the `cognee` package, 1.6.5), built from its
//! route handlers and its OpenAPI document (`tests/fixtures/cognee/openapi.json`, the subset of
//! `/openapi.json` toolgate uses), not from toolgate's requests:
//!
//! - `POST /api/v1/auth/login`: form `username`, `password` → `{access_token, token_type}`;
//!   wrong credentials → 400 `{"detail": "LOGIN_BAD_CREDENTIALS"}` (FastAPI-Users).
//! - every other `/api/v1` route needs `Authorization: Bearer` or `X-Api-Key`, else 401
//!   `{"detail": "Unauthorized"}`.
//! - `POST /api/v1/add`: multipart `data` files, `datasetName` (or `datasetId`), `node_set`;
//!   neither name nor id → 400 `{error}`; data is deduplicated by content hash per dataset (as
//!   `cognee.modules.ingestion.identify` does) → `PipelineRunInfo`.
//! - `POST /api/v1/cognify` `{datasets, runInBackground}` (camelCase aliases, snake_case names
//!   also accepted) → `{dataset_id: PipelineRunInfo}`; no datasets → 400; an errored run → 500
//!   `{"error": "Pipeline run errored", "detail": …}`.
//! - `GET /api/v1/datasets` → `[DatasetDTO]` (camelCase); `GET /api/v1/datasets/status?dataset=`
//!   → `{dataset_id: "DATASET_PROCESSING_…"}`.
//! - `POST /api/v1/search` `{searchType, query, datasets, topK}` → `[{search_result, dataset_id,
//!   dataset_name}]`; CHUNKS results are chunk payloads `{id, text, chunk_index}`; an unknown
//!   search type → 422 (pydantic's `{detail: [{loc, msg}]}`).
//! - `GET /health` → `{status, health, version}`.
//!
//! `stop`/`restart` kill and bring back the server on the same port, keeping what it stored.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// What cognify does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CognifyMode {
    /// The run completes after the first status poll.
    Completes,
    /// The request answers 500 "Pipeline run errored".
    FailsAtOnce,
    /// The run starts, then the status says DATASET_PROCESSING_ERRORED.
    ErrorsInBackground,
    /// The run never finishes.
    Hangs,
}

#[derive(Debug, Clone)]
pub struct StoredData {
    pub file_name: String,
    pub text: String,
    pub hash: String,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub id: String,
    pub name: String,
    pub data: Vec<StoredData>,
    pub status: Option<String>,
    pub polls: usize,
}

/// One request, as received (multipart fields by name, JSON body, query).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: &'static str,
    pub path: &'static str,
    pub fields: Vec<String>,
    pub json: Value,
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
}

pub struct Inner {
    pub username: String,
    pub password: String,
    pub api_key: Option<String>,
    tokens: Vec<String>,
    pub datasets: BTreeMap<String, Dataset>,
    pub mode: CognifyMode,
    pub seen: Vec<Seen>,
    pub logins: usize,
    runs: usize,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeCognee {
    pub url: String,
    port: u16,
    state: Shared,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl FakeCognee {
    /// A fake with one user (login) and, optionally, an API key.
    pub async fn start(username: &str, password: &str, api_key: Option<&str>) -> FakeCognee {
        let state = Arc::new(Mutex::new(Inner {
            username: username.into(),
            password: password.into(),
            api_key: api_key.map(String::from),
            tokens: Vec::new(),
            datasets: BTreeMap::new(),
            mode: CognifyMode::Completes,
            seen: Vec::new(),
            logins: 0,
            runs: 0,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut fake = FakeCognee {
            url: format!("http://127.0.0.1:{port}"),
            port,
            state,
            server: None,
        };
        fake.serve(listener);
        fake
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = router(self.state.clone());
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// Kill the server: its port refuses connections until `restart`.
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
            let _ = s.await;
        }
    }

    /// Serve again on the same port, with what was stored before.
    pub async fn restart(&mut self) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket
            .bind(format!("127.0.0.1:{}", self.port).parse().expect("addr"))
            .expect("rebind the same port");
        let listener = socket.listen(64).expect("listen");
        self.serve(listener);
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_mode(&self, mode: CognifyMode) {
        self.state().mode = mode;
    }

    /// Forget every issued token (as a restart with a new JWT secret does).
    pub fn expire_tokens(&self) {
        self.state().tokens.clear();
    }

    /// The file names stored in `dataset`, in the order they were first added.
    pub fn stored(&self, dataset: &str) -> Vec<String> {
        self.state()
            .datasets
            .get(dataset)
            .map(|d| d.data.iter().map(|s| s.file_name.clone()).collect())
            .unwrap_or_default()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Seen> {
        self.state()
            .seen
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

impl Drop for FakeCognee {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/add", post(add))
        .route("/api/v1/cognify", post(cognify))
        .route("/api/v1/datasets", get(datasets))
        .route("/api/v1/datasets/status", get(status))
        .route("/api/v1/search", post(search))
        .with_state(state)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn uuid(seed: &str) -> String {
    let h = Sha256::digest(seed.as_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `get_authenticated_user`: a known bearer token or API key, else 401.
fn authorized(inner: &Inner, headers: &HeaderMap) -> bool {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    bearer.is_some_and(|t| inner.tokens.iter().any(|k| k == t))
        || (key.is_some() && key == inner.api_key.as_deref())
}

fn unauthorized() -> Response {
    answer(StatusCode::UNAUTHORIZED, json!({"detail": "Unauthorized"}))
}

fn record(
    inner: &mut Inner,
    path: &'static str,
    method: &'static str,
    headers: &HeaderMap,
) -> usize {
    inner.seen.push(Seen {
        method,
        path,
        fields: Vec::new(),
        json: Value::Null,
        query: Vec::new(),
        authorization: headers
            .get("authorization")
            .or_else(|| headers.get("x-api-key"))
            .and_then(|v| v.to_str().ok())
            .map(String::from),
    });
    inner.seen.len() - 1
}

async fn health() -> Response {
    answer(
        StatusCode::OK,
        json!({"status": "ready", "health": "healthy", "version": "1.6.5"}),
    )
}

async fn login(
    State(state): State<Shared>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<BTreeMap<String, String>>,
) -> Response {
    let mut inner = state.lock().unwrap_or_else(|e| e.into_inner());
    let i = record(&mut inner, "/api/v1/auth/login", "POST", &headers);
    inner.seen[i].fields = form.keys().cloned().collect();
    let (Some(u), Some(p)) = (form.get("username"), form.get("password")) else {
        return answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"loc": ["body", "username"], "msg": "Field required", "type": "missing"}]}),
        );
    };
    if *u != inner.username || *p != inner.password {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"detail": "LOGIN_BAD_CREDENTIALS"}),
        );
    }
    inner.logins += 1;
    let token = format!(
        "jwt-{}-{}",
        inner.logins,
        uuid(&format!("t{}", inner.logins))
    );
    inner.tokens.push(token.clone());
    answer(
        StatusCode::OK,
        json!({"access_token": token, "token_type": "bearer"}),
    )
}

fn run_info(status: &str, run: &str, ds: &Dataset) -> Value {
    json!({"status": status, "pipeline_run_id": run, "dataset_id": ds.id,
           "dataset_name": ds.name, "payload": null, "data_ingestion_info": null})
}

async fn add(State(state): State<Shared>, headers: HeaderMap, mut form: Multipart) -> Response {
    let mut files: Vec<(String, String)> = Vec::new();
    let mut fields = Vec::new();
    let mut dataset_name = None;
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        fields.push(name.clone());
        let file_name = field.file_name().map(String::from);
        let text = field.text().await.unwrap_or_default();
        match name.as_str() {
            "data" => files.push((file_name.unwrap_or_default(), text)),
            "datasetName" => dataset_name = Some(text),
            _ => {}
        }
    }
    let mut inner = state.lock().unwrap_or_else(|e| e.into_inner());
    let i = record(&mut inner, "/api/v1/add", "POST", &headers);
    inner.seen[i].fields = fields;
    if !authorized(&inner, &headers) {
        return unauthorized();
    }
    let Some(name) = dataset_name.filter(|n| !n.is_empty()) else {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "Either datasetId or datasetName must be provided.", "detail": null}),
        );
    };
    inner.runs += 1;
    let run = uuid(&format!("add-run-{}", inner.runs));
    let ds = inner
        .datasets
        .entry(name.clone())
        .or_insert_with(|| Dataset {
            id: uuid(&format!("dataset-{name}")),
            name: name.clone(),
            data: Vec::new(),
            status: None,
            polls: 0,
        });
    for (file_name, text) in files {
        let hash = format!("{:x}", Sha256::digest(text.as_bytes()));
        if !ds.data.iter().any(|d| d.hash == hash) {
            ds.data.push(StoredData {
                file_name,
                text,
                hash,
            });
        }
    }
    let body = run_info("PipelineRunCompleted", &run, ds);
    answer(StatusCode::OK, body)
}

/// The `datasets` list of a cognify or search payload.
fn dataset_names(body: &Value) -> Vec<String> {
    strings(body.get("datasets"))
}

/// The strings of a JSON list (none when it is not one).
fn strings(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON field by its camelCase alias or its snake_case name (`populate_by_name`).
fn field<'a>(body: &'a Value, alias: &str, name: &str) -> Option<&'a Value> {
    body.get(alias).or_else(|| body.get(name))
}

async fn cognify(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut inner = state.lock().unwrap_or_else(|e| e.into_inner());
    let i = record(&mut inner, "/api/v1/cognify", "POST", &headers);
    inner.seen[i].json = body.clone();
    if !authorized(&inner, &headers) {
        return unauthorized();
    }
    let names = dataset_names(&body);
    if names.is_empty() {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "No datasets or dataset_ids provided", "detail": null}),
        );
    }
    let background = field(&body, "runInBackground", "run_in_background")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mode = inner.mode;
    inner.runs += 1;
    let run = uuid(&format!("cognify-run-{}", inner.runs));
    let mut out = serde_json::Map::new();
    for name in names {
        let Some(ds) = inner.datasets.get_mut(&name) else {
            // cognee raises DatasetNotFoundError inside the pipeline: a 500 like other run errors.
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "Pipeline run errored", "detail": format!("No datasets found: {name}")}),
            );
        };
        if mode == CognifyMode::FailsAtOnce {
            ds.status = Some("DATASET_PROCESSING_ERRORED".into());
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "Pipeline run errored",
                       "detail": "LLMAPIKeyNotSetError: LLM API key is not set."}),
            );
        }
        ds.polls = 0;
        ds.status = Some(if background {
            "DATASET_PROCESSING_STARTED".into()
        } else {
            "DATASET_PROCESSING_COMPLETED".into()
        });
        let status = if background {
            "PipelineRunStarted"
        } else {
            "PipelineRunCompleted"
        };
        out.insert(ds.id.clone(), run_info(status, &run, ds));
    }
    answer(StatusCode::OK, Value::Object(out))
}

async fn datasets(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let mut inner = state.lock().unwrap_or_else(|e| e.into_inner());
    record(&mut inner, "/api/v1/datasets", "GET", &headers);
    if !authorized(&inner, &headers) {
        return unauthorized();
    }
    let list: Vec<Value> = inner
        .datasets
        .values()
        .map(|d| {
            json!({"id": d.id, "name": d.name, "createdAt": "2026-12-06T10:00:00Z",
                   "updatedAt": null, "ownerId": uuid("owner")})
        })
        .collect();
    answer(StatusCode::OK, Value::Array(list))
}

async fn status(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let mut inner = state.lock().unwrap_or_else(|e| e.into_inner());
    let i = record(&mut inner, "/api/v1/datasets/status", "GET", &headers);
    inner.seen[i].query = query.clone();
    if !authorized(&inner, &headers) {
        return unauthorized();
    }
    let wanted: Vec<&String> = query
        .iter()
        .filter(|(k, _)| k == "dataset")
        .map(|(_, v)| v)
        .collect();
    let mode = inner.mode;
    let mut out = serde_json::Map::new();
    for ds in inner.datasets.values_mut() {
        if !wanted.is_empty() && !wanted.contains(&&ds.id) {
            continue;
        }
        let Some(status) = ds.status.clone() else {
            continue;
        };
        ds.polls += 1;
        // A background run moves on after it was looked at once.
        if status == "DATASET_PROCESSING_STARTED" && ds.polls > 1 {
            match mode {
                CognifyMode::Completes => ds.status = Some("DATASET_PROCESSING_COMPLETED".into()),
                CognifyMode::ErrorsInBackground => {
                    ds.status = Some("DATASET_PROCESSING_ERRORED".into())
                }
                CognifyMode::Hangs | CognifyMode::FailsAtOnce => {}
            }
        }
        out.insert(ds.id.clone(), json!(status));
    }
    answer(StatusCode::OK, Value::Object(out))
}

/// Cognee's `SearchType` values (OpenAPI 1.6.5).
fn search_types() -> Vec<String> {
    let doc: Value = serde_json::from_str(include_str!("../fixtures/cognee/openapi.json"))
        .expect("openapi fixture");
    strings(doc.pointer("/components/schemas/SearchType/enum"))
}

async fn search(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut inner = state.lock().unwrap_or_else(|e| e.into_inner());
    let i = record(&mut inner, "/api/v1/search", "POST", &headers);
    inner.seen[i].json = body.clone();
    if !authorized(&inner, &headers) {
        return unauthorized();
    }
    let search_type = field(&body, "searchType", "search_type")
        .and_then(Value::as_str)
        .unwrap_or("HYBRID_COMPLETION")
        .to_string();
    if !search_types().contains(&search_type) {
        return answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"loc": ["body", "searchType"],
                   "msg": format!("Input should be one of the SearchType values; got '{search_type}'"),
                   "type": "enum"}]}),
        );
    }
    let query = field(&body, "query", "query")
        .and_then(Value::as_str)
        .unwrap_or("What is in the document?")
        .to_lowercase();
    let top_k = field(&body, "topK", "top_k")
        .and_then(Value::as_u64)
        .unwrap_or(15) as usize;
    let names = dataset_names(&body);
    let words: Vec<&str> = query
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| w.len() > 2)
        .collect();
    let mut out = Vec::new();
    for ds in inner.datasets.values() {
        if !names.is_empty() && !names.contains(&ds.name) {
            continue;
        }
        // Vector search stands in as word overlap; ties keep insertion order.
        let mut scored: Vec<(usize, usize, &StoredData)> = ds
            .data
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let text = d.text.to_lowercase();
                (words.iter().filter(|w| text.contains(**w)).count(), i, d)
            })
            .filter(|(score, _, _)| *score > 0)
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let chunks: Vec<Value> = scored
            .iter()
            .take(top_k)
            .map(|(_, i, d)| json!({"id": uuid(&d.hash), "text": d.text, "chunk_index": 0, "chunk_size": d.text.len(), "document_id": uuid(&format!("doc{i}"))}))
            .collect();
        let result = match search_type.as_str() {
            "CHUNKS" | "CHUNKS_LEXICAL" => Value::Array(chunks),
            // Completions answer generated text (the LLM's, here a fixed sentence).
            _ => json!([format!("{} related item(s) found.", chunks.len())]),
        };
        out.push(json!({"search_result": result, "dataset_id": ds.id, "dataset_name": ds.name}));
    }
    answer(StatusCode::OK, Value::Array(out))
}
