//! Tempo HTTP API: a trace by id (`/api/traces/{id}`, OTLP JSON: `batches` or
//! `resourceSpans`, each with `scopeSpans`), flattened into spans; TraceQL search
//! (`/api/search`). A missing trace is Tempo's 404 with an empty body.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::future::BoxFuture;
use jiff::Timestamp;
use serde_json::Value;

use super::observability::{HttpApi, ObsError};
use crate::config::HttpUpstream;

/// One span of a trace, flattened out of OTLP.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub service: String,
    pub name: String,
    /// `server`, `client`, `internal`, `producer`, `consumer` or `unspecified`.
    pub kind: String,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// Status `error`.
    pub error: bool,
    pub status_message: String,
    /// Attributes as `key=value` strings (span attributes only).
    pub attributes: Vec<(String, String)>,
}

impl Span {
    pub fn duration_ms(&self) -> f64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano) as f64 / 1e6
    }
}

/// One hit of a TraceQL search.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceHit {
    pub trace_id: String,
    pub root_service: String,
    pub root_name: String,
    pub start_unix_nano: u64,
    pub duration_ms: u64,
    /// Spans that matched, from the span sets.
    pub matched_spans: u64,
}

/// What the trace tools need from a trace backend.
pub trait Traces: Send + Sync {
    /// The upstream's breaker and last results, for `/readyz` (fakes have none).
    fn health(&self) -> Option<super::http::Health> {
        None
    }

    /// All spans of a trace, in start order.
    fn trace<'a>(&'a self, trace_id: &'a str) -> BoxFuture<'a, Result<Vec<Span>, ObsError>>;
    fn search<'a>(
        &'a self,
        query: &'a str,
        limit: u32,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> BoxFuture<'a, Result<Vec<TraceHit>, ObsError>>;
}

impl Traces for Tempo {
    fn health(&self) -> Option<super::http::Health> {
        Some(self.api.health())
    }

    fn trace<'a>(&'a self, trace_id: &'a str) -> BoxFuture<'a, Result<Vec<Span>, ObsError>> {
        Box::pin(Tempo::trace(self, trace_id))
    }

    fn search<'a>(
        &'a self,
        query: &'a str,
        limit: u32,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> BoxFuture<'a, Result<Vec<TraceHit>, ObsError>> {
        Box::pin(Tempo::search(self, query, limit, start, end))
    }
}

pub struct Tempo {
    api: HttpApi,
}

impl Tempo {
    pub fn new(config: &HttpUpstream) -> Result<Self, String> {
        Ok(Self {
            api: HttpApi::new("Tempo", config, Vec::new())?,
        })
    }

    /// All spans of trace `trace_id` (hex, 1–32 digits).
    pub async fn trace(&self, trace_id: &str) -> Result<Vec<Span>, ObsError> {
        let reply = self
            .api
            .get(&format!("/api/traces/{trace_id}"), &[])
            .await?;
        if reply.status == reqwest::StatusCode::NOT_FOUND {
            return Err(ObsError::NotFound {
                upstream: "Tempo",
                message: format!(
                    "trace {trace_id} not found (it may be older than Tempo's retention or not flushed yet)"
                ),
            });
        }
        if !reply.status.is_success() {
            return Err(self.api.rejected(&reply));
        }
        let body = self.api.json(&reply)?;
        let batches = body
            .get("batches")
            .or_else(|| body.pointer("/trace/resourceSpans"))
            .or_else(|| body.get("resourceSpans"))
            .and_then(Value::as_array)
            .ok_or_else(|| self.api.bad_answer("no `batches` in the trace"))?;
        let mut spans = Vec::new();
        for batch in batches {
            let service = attr(&batch["resource"]["attributes"], "service.name")
                .unwrap_or_else(|| "unknown".into());
            let scopes = batch
                .get("scopeSpans")
                .or_else(|| batch.get("instrumentationLibrarySpans"))
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            for scope in scopes {
                for s in scope["spans"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    spans.push(span(s, &service));
                }
            }
        }
        spans.sort_by_key(|s| s.start_unix_nano);
        Ok(spans)
    }

    /// Traces matching TraceQL `query` in the time range (Tempo's default range when `None`).
    pub async fn search(
        &self,
        query: &str,
        limit: u32,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> Result<Vec<TraceHit>, ObsError> {
        let mut params = vec![("q", query.to_string()), ("limit", limit.to_string())];
        if let Some(s) = start {
            params.push(("start", s.as_second().to_string()));
        }
        if let Some(e) = end {
            params.push(("end", e.as_second().to_string()));
        }
        let reply = self.api.get("/api/search", &params).await?;
        if !reply.status.is_success() {
            return Err(self.api.rejected(&reply));
        }
        let body = self.api.json(&reply)?;
        let traces = body["traces"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(traces
            .iter()
            .map(|t| {
                let sets: Vec<&Value> = t["spanSets"]
                    .as_array()
                    .map(|a| a.iter().collect())
                    .or_else(|| t.get("spanSet").map(|s| vec![s]))
                    .unwrap_or_default();
                TraceHit {
                    trace_id: text(&t["traceID"]),
                    root_service: text(&t["rootServiceName"]),
                    root_name: text(&t["rootTraceName"]),
                    start_unix_nano: number(&t["startTimeUnixNano"]),
                    duration_ms: number(&t["durationMs"]),
                    matched_spans: sets.iter().map(|s| number(&s["matched"])).sum(),
                }
            })
            .collect())
    }
}

fn span(s: &Value, service: &str) -> Span {
    let kind = match &s["kind"] {
        Value::String(k) => k
            .strip_prefix("SPAN_KIND_")
            .unwrap_or(k)
            .to_ascii_lowercase(),
        Value::Number(n) => match n.as_u64() {
            Some(1) => "internal",
            Some(2) => "server",
            Some(3) => "client",
            Some(4) => "producer",
            Some(5) => "consumer",
            _ => "unspecified",
        }
        .to_string(),
        _ => "unspecified".into(),
    };
    let error = match &s["status"]["code"] {
        Value::String(c) => c == "STATUS_CODE_ERROR",
        Value::Number(n) => n.as_u64() == Some(2),
        _ => false,
    };
    let attributes = s["attributes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|kv| Some((kv["key"].as_str()?.to_string(), any_value(&kv["value"]))))
                .collect()
        })
        .unwrap_or_default();
    Span {
        span_id: id(&s["spanId"]),
        parent_span_id: id(&s["parentSpanId"]),
        service: service.to_string(),
        name: text(&s["name"]),
        kind,
        start_unix_nano: number(&s["startTimeUnixNano"]),
        end_unix_nano: number(&s["endTimeUnixNano"]),
        error,
        status_message: text(&s["status"]["message"]),
        attributes,
    }
}

/// Span ids are hex in OTLP JSON and base64 in Tempo's protobuf-JSON; show hex.
fn id(v: &Value) -> String {
    let raw = v.as_str().unwrap_or_default();
    let is_hex = raw.len().is_multiple_of(2) && raw.bytes().all(|b| b.is_ascii_hexdigit());
    if raw.is_empty() || is_hex {
        return raw.to_ascii_lowercase();
    }
    match STANDARD.decode(raw) {
        Ok(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => raw.to_string(),
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// int64 fields are strings in OTLP JSON, numbers in some encoders.
fn number(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn any_value(v: &Value) -> String {
    for key in ["stringValue", "intValue", "doubleValue", "boolValue"] {
        if let Some(x) = v.get(key) {
            return match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
        }
    }
    v.to_string()
}

fn attr(attrs: &Value, key: &str) -> Option<String> {
    attrs
        .as_array()?
        .iter()
        .find(|kv| kv["key"].as_str() == Some(key))
        .map(|kv| any_value(&kv["value"]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn otlp_spans_are_flattened_with_hex_ids() {
        let s = span(
            &json!({"spanId": "AAAAAAAAAAE=", "parentSpanId": "", "name": "GET /",
                    "kind": "SPAN_KIND_SERVER", "startTimeUnixNano": "1000000", "endTimeUnixNano": "3500000",
                    "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
                    "attributes": [{"key": "http.status_code", "value": {"intValue": "500"}}]}),
            "web",
        );
        assert_eq!(s.span_id, "0000000000000001");
        assert_eq!(s.kind, "server");
        assert!(s.error);
        assert_eq!(s.duration_ms(), 2.5);
        assert_eq!(
            s.attributes,
            vec![("http.status_code".into(), "500".into())]
        );
        assert_eq!(id(&json!("ABCDEF0123456789")), "abcdef0123456789");
    }
}
