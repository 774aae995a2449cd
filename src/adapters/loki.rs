//! Loki HTTP API: LogQL log queries over `/loki/api/v1/query_range`, and label discovery
//! (`/loki/api/v1/labels`, `/loki/api/v1/label/{name}/values`). Every request carries the
//! configured tenant as `X-Scope-OrgID`. Loki's errors are plain text ("parse error …").

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde_json::Value;

use super::observability::{HttpApi, ObsError};
use crate::config::HttpUpstream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Newest first (Loki's default).
    Backward,
    Forward,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Backward => "backward",
            Direction::Forward => "forward",
        }
    }
}

/// One log stream: its labels and its entries (nanoseconds since the epoch, line).
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub labels: BTreeMap<String, String>,
    pub entries: Vec<(i128, String)>,
}

/// What the log tools need from a log backend.
pub trait Logs: Send + Sync {
    /// The upstream's breaker and last results, for `/readyz` (fakes have none).
    fn health(&self) -> Option<super::http::Health> {
        None
    }

    fn query_range<'a>(
        &'a self,
        query: &'a str,
        start: Timestamp,
        end: Timestamp,
        limit: u32,
        direction: Direction,
    ) -> BoxFuture<'a, Result<Vec<Stream>, ObsError>>;
    fn labels(
        &self,
        start: Timestamp,
        end: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<String>, ObsError>>;
    fn label_values<'a>(
        &'a self,
        name: &'a str,
        start: Timestamp,
        end: Timestamp,
        query: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, ObsError>>;
}

impl Logs for Loki {
    fn health(&self) -> Option<super::http::Health> {
        Some(self.api.health())
    }

    fn query_range<'a>(
        &'a self,
        query: &'a str,
        start: Timestamp,
        end: Timestamp,
        limit: u32,
        direction: Direction,
    ) -> BoxFuture<'a, Result<Vec<Stream>, ObsError>> {
        Box::pin(Loki::query_range(self, query, start, end, limit, direction))
    }

    fn labels(
        &self,
        start: Timestamp,
        end: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<String>, ObsError>> {
        Box::pin(Loki::labels(self, start, end))
    }

    fn label_values<'a>(
        &'a self,
        name: &'a str,
        start: Timestamp,
        end: Timestamp,
        query: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, ObsError>> {
        Box::pin(Loki::label_values(self, name, start, end, query))
    }
}

pub struct Loki {
    api: HttpApi,
}

impl Loki {
    pub fn new(config: &HttpUpstream, tenant: Option<String>) -> Result<Self, String> {
        let headers = tenant
            .map(|t| vec![("X-Scope-OrgID", t)])
            .unwrap_or_default();
        Ok(Self {
            api: HttpApi::new("Loki", config, headers)?,
        })
    }

    /// Log lines of a LogQL log query between `start` and `end`, at most `limit`.
    pub async fn query_range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Stream>, ObsError> {
        let params = [
            ("query", query.to_string()),
            ("start", start.as_nanosecond().to_string()),
            ("end", end.as_nanosecond().to_string()),
            ("limit", limit.to_string()),
            ("direction", direction.as_str().to_string()),
        ];
        let body = self.get_json("/loki/api/v1/query_range", &params).await?;
        let data = &body["data"];
        match data.get("resultType").and_then(Value::as_str) {
            Some("streams") => {}
            Some("matrix") | Some("vector") => {
                return Err(ObsError::Unsupported {
                    upstream: "Loki",
                    message: "this is a LogQL metric query (rate, count_over_time …), which returns numbers; this tool returns log lines: use a log query such as {app=\"web\"} |= \"error\"".into(),
                });
            }
            other => {
                return Err(self
                    .api
                    .bad_answer(format!("unknown resultType {}", other.unwrap_or("(none)"))));
            }
        }
        let mut streams = Vec::new();
        for s in data["result"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let labels = s["stream"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let mut entries = Vec::new();
            for v in s["values"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let ns = v[0]
                    .as_str()
                    .and_then(|t| t.parse::<i128>().ok())
                    .ok_or_else(|| {
                        self.api
                            .bad_answer("an entry without a nanosecond timestamp")
                    })?;
                entries.push((ns, v[1].as_str().unwrap_or_default().to_string()));
            }
            streams.push(Stream { labels, entries });
        }
        Ok(streams)
    }

    /// Label names seen between `start` and `end`.
    pub async fn labels(&self, start: Timestamp, end: Timestamp) -> Result<Vec<String>, ObsError> {
        let params = [
            ("start", start.as_nanosecond().to_string()),
            ("end", end.as_nanosecond().to_string()),
        ];
        let body = self.get_json("/loki/api/v1/labels", &params).await?;
        Ok(strings(&body["data"]))
    }

    /// Values of label `name` between `start` and `end`, optionally only in streams matching
    /// the stream selector `query`.
    pub async fn label_values(
        &self,
        name: &str,
        start: Timestamp,
        end: Timestamp,
        query: Option<&str>,
    ) -> Result<Vec<String>, ObsError> {
        let mut params = vec![
            ("start", start.as_nanosecond().to_string()),
            ("end", end.as_nanosecond().to_string()),
        ];
        if let Some(q) = query {
            params.push(("query", q.to_string()));
        }
        // Label names are [a-zA-Z_][a-zA-Z0-9_]*; anything else never reaches the path.
        let valid = !name.is_empty()
            && name
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if !valid {
            return Err(ObsError::Rejected {
                upstream: "Loki",
                status: 400,
                message: format!("`{name}` is not a label name; expected [a-zA-Z_][a-zA-Z0-9_]*"),
            });
        }
        let body = self
            .get_json(&format!("/loki/api/v1/label/{name}/values"), &params)
            .await?;
        Ok(strings(&body["data"]))
    }

    async fn get_json(&self, path: &str, params: &[(&str, String)]) -> Result<Value, ObsError> {
        let reply = self.api.get(path, params).await?;
        if !reply.status.is_success() {
            return Err(self.api.rejected(&reply));
        }
        let body = self.api.json(&reply)?;
        if body.get("status").and_then(Value::as_str) != Some("success") {
            return Err(self.api.bad_answer(format!(
                "status is {}",
                body.get("status").unwrap_or(&Value::Null)
            )));
        }
        Ok(body)
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}
