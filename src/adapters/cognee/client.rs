//! Cognee's REST API (the `cognee` Python package's server, checked against its OpenAPI document
//! 1.6.5): login (form → bearer, logged in again on 401) or `X-Api-Key`, `POST /api/v1/add`
//! (multipart `data` files + `datasetName`), `POST /api/v1/cognify {datasets, runInBackground}`,
//! `GET /api/v1/datasets`, `GET /api/v1/datasets/status?dataset=<id>`,
//! `POST /api/v1/search {searchType, query, datasets, topK}`. Every request goes through the kit's
//! `Upstream` (timeouts, breaker, metrics, correlation id); reads and the login are retried,
//! `add` and `cognify` go out once.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use reqwest::header::HeaderName;
use serde_json::{Value, json};

use super::config::{CogneeAuth, CogneeConfig};
use super::datapoint::Document;
use crate::adapters::http::{
    CallError, Credential, Health, HttpAuth, Reply, Retry, Secret, Session, Upstream,
};

/// Search types toolgate sends (Cognee's `SearchType`, less the ones that need extra arguments
/// — CODE, AGENTIC_COMPLETION, CYPHER — and never the removed INSIGHTS).
pub const SEARCH_TYPES: [&str; 9] = [
    "CHUNKS",
    "CHUNKS_LEXICAL",
    "SUMMARIES",
    "RAG_COMPLETION",
    "GRAPH_COMPLETION",
    "HYBRID_COMPLETION",
    "GRAPH_SUMMARY_COMPLETION",
    "TRIPLET_COMPLETION",
    "TEMPORAL",
];

/// Why a memory call failed. Every message names Cognee.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    #[error("Cognee is not configured: set memory.cognee.url (or TOOLGATE_MEMORY_COGNEE_URL)")]
    NotConfigured,
    /// Unreachable, timing out, failing with 5xx, or its breaker is open.
    #[error("Cognee is unavailable: {0}")]
    Unavailable(String),
    #[error(
        "Cognee refused toolgate's credentials (HTTP {status}: {message}); check memory.cognee.auth"
    )]
    Unauthorized { status: u16, message: String },
    #[error("Cognee rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("Cognee sent an unexpected answer: {0}")]
    BadAnswer(String),
    /// Arguments refused before anything was sent.
    #[error("{0}")]
    Invalid(String),
    /// The durable queue could not be read or written.
    #[error("the memory queue in the store failed: {0}")]
    Queue(String),
}

impl MemoryError {
    /// Whether Cognee could not be reached (what queues adds and turns searches to the fallback).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            MemoryError::Unavailable(_) | MemoryError::NotConfigured
        )
    }
}

/// `PipelineRunInfo`: what `add` and `cognify` answer per dataset.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct RunInfo {
    /// PipelineRunStarted | PipelineRunYield | PipelineRunCompleted | PipelineRunAlreadyCompleted
    /// | PipelineRunErrored.
    pub status: String,
    pub pipeline_run_id: String,
    pub dataset_id: String,
    pub dataset_name: String,
}

/// A dataset as `GET /api/v1/datasets` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub id: String,
    pub name: String,
}

/// One search result: the text and the dataset it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub text: String,
    pub dataset_id: Option<String>,
    pub dataset_name: Option<String>,
}

pub struct Cognee {
    base: String,
    upstream: Upstream,
    auth: CogneeAuth,
    /// The login's bearer token (with `CogneeAuth::Login`).
    session: Session,
}

impl Cognee {
    pub fn new(config: &CogneeConfig) -> Result<Self, String> {
        let auth = match &config.auth {
            CogneeAuth::ApiKey(key) => HttpAuth::Header {
                name: HeaderName::from_static("x-api-key"),
                prefix: String::new(),
                value: key.clone(),
            },
            // The login's token is put on each request here (it is renewed on 401).
            CogneeAuth::None | CogneeAuth::Login { .. } => HttpAuth::None,
        };
        let upstream = Upstream::new("cognee", "Cognee", &config.endpoint.settings, auth)
            .map_err(|e| format!("memory.cognee: {e}"))?;
        Ok(Self {
            base: config.endpoint.url.clone(),
            upstream,
            auth: config.auth.clone(),
            session: Session::new(),
        })
    }

    pub fn health(&self) -> Health {
        self.upstream.guard().health()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /api/v1/auth/login` (a form): the login's bearer token.
    async fn login(&self, username: &str, password: &Credential) -> Result<Secret, MemoryError> {
        let password = password
            .current()
            .await
            .map_err(|e| MemoryError::Unavailable(format!("memory.cognee.auth.password: {e}")))?;
        let url = self.url("/api/v1/auth/login");
        let form = [("username", username), ("password", password.expose())];
        let reply = self
            .upstream
            .send(Retry::Read, || {
                Ok(self.upstream.http().post(&url).form(&form))
            })
            .await
            .map_err(unavailable)?;
        if !reply.status.is_success() {
            // FastAPI-Users answers 400 LOGIN_BAD_CREDENTIALS.
            return Err(MemoryError::Unauthorized {
                status: reply.status.as_u16(),
                message: error_text(&reply),
            });
        }
        let body = json_body(&reply)?;
        body.get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(Secret::new)
            .ok_or_else(|| MemoryError::BadAnswer("login answer has no access_token".into()))
    }

    /// Send a request built by `build` with the credentials (a login's token is renewed once
    /// on 401). 401/403 become `Unauthorized`.
    async fn send(
        &self,
        retry: Retry,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Reply, MemoryError> {
        let reply = match &self.auth {
            CogneeAuth::Login { username, password } => {
                self.session
                    .send(
                        &self.upstream,
                        retry,
                        || self.login(username, password),
                        build,
                        unavailable,
                    )
                    .await?
            }
            _ => self
                .upstream
                .send(retry, || Ok(build(self.upstream.http())))
                .await
                .map_err(unavailable)?,
        };
        if matches!(
            reply.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(MemoryError::Unauthorized {
                status: reply.status.as_u16(),
                message: error_text(&reply),
            });
        }
        Ok(reply)
    }

    /// `POST /api/v1/add`: the documents as `data` file parts of one multipart request.
    pub async fn add(&self, dataset: &str, documents: &[Document]) -> Result<RunInfo, MemoryError> {
        let url = self.url("/api/v1/add");
        let reply = self
            .send(Retry::Write, |http| {
                let mut form =
                    reqwest::multipart::Form::new().text("datasetName", dataset.to_string());
                for d in documents {
                    let part = reqwest::multipart::Part::text(d.text.clone())
                        .file_name(d.file_name.clone());
                    let part = match part.mime_str("text/markdown") {
                        Ok(p) => p,
                        // A constant that always parses; the plain part is the same bytes.
                        Err(_) => reqwest::multipart::Part::text(d.text.clone())
                            .file_name(d.file_name.clone()),
                    };
                    form = form.part("data", part);
                }
                http.post(&url).multipart(form)
            })
            .await?;
        let body = success(&reply)?;
        run_info(&body)
            .ok_or_else(|| MemoryError::BadAnswer("add answer is not a PipelineRunInfo".into()))
    }

    /// `POST /api/v1/cognify` for one dataset; `background`: answer at once with the run id.
    pub async fn cognify(&self, dataset: &str, background: bool) -> Result<RunInfo, MemoryError> {
        let url = self.url("/api/v1/cognify");
        let body = json!({"datasets": [dataset], "runInBackground": background});
        let reply = self
            .send(Retry::Write, |http| http.post(&url).json(&body))
            .await?;
        let answer = success(&reply)?;
        // `{dataset_id: PipelineRunInfo}`
        answer
            .as_object()
            .and_then(|m| m.values().find_map(run_info))
            .ok_or_else(|| MemoryError::BadAnswer("cognify answer holds no PipelineRunInfo".into()))
    }

    /// `GET /api/v1/datasets`.
    pub async fn datasets(&self) -> Result<Vec<Dataset>, MemoryError> {
        let url = self.url("/api/v1/datasets");
        let reply = self.send(Retry::Read, |http| http.get(&url)).await?;
        let body = success(&reply)?;
        Ok(body
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|d| {
                Some(Dataset {
                    id: d.get("id")?.as_str()?.to_string(),
                    name: d.get("name")?.as_str()?.to_string(),
                })
            })
            .collect())
    }

    /// `GET /api/v1/datasets/status?dataset=<id>` (the cognify pipeline): dataset id → status
    /// (`DATASET_PROCESSING_INITIATED|STARTED|COMPLETED|ERRORED`).
    pub async fn status(
        &self,
        dataset_ids: &[String],
    ) -> Result<BTreeMap<String, String>, MemoryError> {
        let mut url = reqwest::Url::parse(&self.url("/api/v1/datasets/status"))
            .map_err(|e| MemoryError::Invalid(format!("memory.cognee.url: {e}")))?;
        for id in dataset_ids {
            url.query_pairs_mut().append_pair("dataset", id);
        }
        let reply = self.send(Retry::Read, |http| http.get(url.clone())).await?;
        let body = success(&reply)?;
        Ok(body
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let status = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), status)
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `POST /api/v1/search`; results flattened into one hit per text.
    pub async fn search(
        &self,
        search_type: &str,
        query: &str,
        datasets: &[String],
        top_k: usize,
    ) -> Result<Vec<Hit>, MemoryError> {
        if !SEARCH_TYPES.contains(&search_type) {
            return Err(MemoryError::Invalid(format!(
                "search_type `{search_type}` is not supported; use one of {}",
                SEARCH_TYPES.join(", ")
            )));
        }
        let url = self.url("/api/v1/search");
        let body = json!({
            "searchType": search_type,
            "query": query,
            "datasets": datasets,
            "topK": top_k,
        });
        let reply = self
            .send(Retry::Read, |http| http.post(&url).json(&body))
            .await?;
        let answer = success(&reply)?;
        let mut hits = Vec::new();
        for item in answer.as_array().map(Vec::as_slice).unwrap_or_default() {
            match item.get("search_result") {
                // A `SearchResult`: the result with its dataset.
                Some(result) => {
                    let dataset_id = item
                        .get("dataset_id")
                        .and_then(Value::as_str)
                        .map(String::from);
                    let dataset_name = item
                        .get("dataset_name")
                        .and_then(Value::as_str)
                        .map(String::from);
                    for text in texts(result) {
                        hits.push(Hit {
                            text,
                            dataset_id: dataset_id.clone(),
                            dataset_name: dataset_name.clone(),
                        });
                    }
                }
                None => hits.extend(texts(item).into_iter().map(|text| Hit {
                    text,
                    dataset_id: None,
                    dataset_name: None,
                })),
            }
        }
        Ok(hits)
    }
}

/// The texts of a search result: a string, an object's `text` (chunks), a list of either.
fn texts(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(texts).collect(),
        Value::Object(m) => {
            for key in ["text", "content", "summary", "description", "name"] {
                if let Some(Value::String(s)) = m.get(key) {
                    return vec![s.clone()];
                }
            }
            vec![v.to_string()]
        }
        Value::Null => Vec::new(),
        other => vec![other.to_string()],
    }
}

fn unavailable(e: CallError) -> MemoryError {
    MemoryError::Unavailable(match e {
        CallError::CircuitOpen(_) => e.to_string(),
        CallError::Failed(m) | CallError::RateLimited { message: m, .. } => m,
    })
}

fn json_body(reply: &Reply) -> Result<Value, MemoryError> {
    serde_json::from_slice(&reply.body).map_err(|e| {
        MemoryError::BadAnswer(format!(
            "HTTP {} with a body that is not JSON ({e})",
            reply.status.as_u16()
        ))
    })
}

/// The JSON of a 2xx answer; a 4xx is Cognee's refusal with its own message.
fn success(reply: &Reply) -> Result<Value, MemoryError> {
    if !reply.status.is_success() {
        return Err(MemoryError::Rejected {
            status: reply.status.as_u16(),
            message: error_text(reply),
        });
    }
    json_body(reply)
}

fn run_info(v: &Value) -> Option<RunInfo> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    Some(RunInfo {
        status: text("status")?,
        pipeline_run_id: text("pipeline_run_id")?,
        dataset_id: text("dataset_id")?,
        dataset_name: text("dataset_name").unwrap_or_default(),
    })
}

/// Cognee's own message: `{error, detail}` (its ErrorResponse), FastAPI's `{detail}` (a string
/// or validation errors), else the text; bounded.
pub fn error_text(reply: &Reply) -> String {
    let text = match serde_json::from_slice::<Value>(&reply.body) {
        Ok(v) => {
            let error = v.get("error").and_then(Value::as_str);
            let detail = match v.get("detail") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Array(items)) => Some(
                    items
                        .iter()
                        .map(|i| {
                            let loc = i
                                .get("loc")
                                .and_then(Value::as_array)
                                .map(|l| {
                                    l.iter()
                                        .map(|p| {
                                            p.as_str()
                                                .map(String::from)
                                                .unwrap_or_else(|| p.to_string())
                                        })
                                        .collect::<Vec<_>>()
                                        .join(".")
                                })
                                .unwrap_or_default();
                            let msg = i.get("msg").and_then(Value::as_str).unwrap_or_default();
                            format!("{loc}: {msg}")
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                _ => None,
            };
            match (error, detail) {
                (Some(e), Some(d)) => format!("{e}: {d}"),
                (Some(e), None) => e.to_string(),
                (None, Some(d)) => d,
                (None, None) => reply.text(),
            }
        }
        Err(_) => reply.text(),
    };
    let text = text.trim();
    if text.is_empty() {
        return format!("empty body with HTTP {}", reply.status.as_u16());
    }
    let cut: String = text.chars().take(1000).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).expect("status"),
            body: body.as_bytes().to_vec(),
            headers: Default::default(),
        }
    }

    #[test]
    fn cognee_messages_are_read_from_its_error_shapes() {
        assert_eq!(
            error_text(&reply(
                500,
                r#"{"error":"Pipeline run errored","detail":"LLM down"}"#
            )),
            "Pipeline run errored: LLM down"
        );
        assert_eq!(
            error_text(&reply(400, r#"{"detail":"LOGIN_BAD_CREDENTIALS"}"#)),
            "LOGIN_BAD_CREDENTIALS"
        );
        assert_eq!(
            error_text(&reply(
                422,
                r#"{"detail":[{"loc":["body","query"],"msg":"Field required"}]}"#
            )),
            "body.query: Field required"
        );
        assert_eq!(error_text(&reply(502, "")), "empty body with HTTP 502");
    }

    #[test]
    fn search_results_flatten_to_texts() {
        let v: Value = serde_json::from_str(
            r#"[{"search_result":[{"id":"1","text":"a"},"b"],"dataset_id":"d","dataset_name":"n"}]"#,
        )
        .expect("json");
        let item = &v[0];
        assert_eq!(texts(&item["search_result"]), vec!["a", "b"]);
        assert_eq!(texts(&Value::Null), Vec::<String>::new());
    }
}
