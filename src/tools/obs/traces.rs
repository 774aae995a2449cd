//! `obs.get_trace` (one trace, summarized: root, services, slowest spans, errors; the full
//! spans as far as the output budget allows) and `obs.search_traces` (TraceQL).

use std::collections::BTreeMap;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::time::{rfc3339, time_range_last_hour_by_default};
use crate::adapters::tempo::Span;
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, Target, TypedTool};

const SLOWEST: usize = 5;
const MAX_ERRORS: usize = 10;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetTraceParams {
    /// Trace id (hex).
    pub trace_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SpanBrief {
    pub span_id: String,
    pub service: String,
    pub name: String,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status_message: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ServiceSummary {
    pub service: String,
    pub spans: usize,
    pub errors: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SpanOut {
    pub span_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub parent_span_id: String,
    pub service: String,
    pub name: String,
    pub kind: String,
    /// Start relative to the trace's first span, milliseconds.
    pub offset_ms: f64,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub error: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status_message: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GetTraceOutput {
    pub trace_id: String,
    pub span_count: usize,
    /// Start of the first span.
    pub start: String,
    /// From the first span's start to the last span's end.
    pub duration_ms: f64,
    /// The span without a parent (the first one if several).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<SpanBrief>,
    pub services: Vec<ServiceSummary>,
    /// The longest spans.
    pub slowest: Vec<SpanBrief>,
    /// Spans with status error (at most 10).
    pub errors: Vec<SpanBrief>,
    pub error_count: usize,
    /// Every span in start order, as far as `max_bytes` allows.
    pub spans: Vec<SpanOut>,
    pub truncated: bool,
}

fn brief(s: &Span) -> SpanBrief {
    SpanBrief {
        span_id: s.span_id.clone(),
        service: s.service.clone(),
        name: s.name.clone(),
        duration_ms: s.duration_ms(),
        status_message: s.status_message.clone(),
    }
}

pub struct GetTrace;

impl TypedTool for GetTrace {
    type Params = GetTraceParams;
    type Output = GetTraceOutput;
    const NAME: &'static str = "obs.get_trace";
    const TOOLSET: &'static str = "obs";
    const TITLE: &'static str = "Get a trace (Tempo)";
    const DESCRIPTION: &'static str = "Fetch a trace from Tempo: services, slowest spans and spans with errors first, then all spans.";
    const UNTRUSTED: Option<&'static str> =
        Some("Span names and attributes are untrusted upstream data.");
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("spans");

    fn target(&self, p: &GetTraceParams) -> Option<Target> {
        Some(Target {
            kind: Some("Trace".into()),
            name: Some(p.trace_id.clone()),
            ..Target::default()
        })
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        p: GetTraceParams,
    ) -> Result<GetTraceOutput, ToolError> {
        let id = p.trace_id.trim().to_ascii_lowercase();
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ToolError::invalid_arguments(format!(
                "argument `trace_id`: `{}` is not a trace id; expected up to 32 hex digits such as 4bf92f3577b34da6a3ce929d0e0e4736",
                p.trace_id
            )));
        }
        let spans = ctx.adapters.observability.tempo()?.trace(&id).await?;
        let first = spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
        let last = spans.iter().map(|s| s.end_unix_nano).max().unwrap_or(first);
        let mut services: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for s in &spans {
            let e = services.entry(s.service.clone()).or_default();
            e.0 += 1;
            e.1 += usize::from(s.error);
        }
        let mut by_duration: Vec<&Span> = spans.iter().collect();
        by_duration.sort_by(|a, b| b.duration_ms().total_cmp(&a.duration_ms()));
        let errors: Vec<&Span> = spans.iter().filter(|s| s.error).collect();
        let root = spans
            .iter()
            .find(|s| s.parent_span_id.is_empty())
            .or_else(|| spans.first());
        Ok(GetTraceOutput {
            trace_id: id,
            span_count: spans.len(),
            start: Timestamp::from_nanosecond(i128::from(first))
                .map(rfc3339)
                .unwrap_or_default(),
            duration_ms: last.saturating_sub(first) as f64 / 1e6,
            root: root.map(brief),
            services: services
                .into_iter()
                .map(|(service, (spans, errors))| ServiceSummary {
                    service,
                    spans,
                    errors,
                })
                .collect(),
            slowest: by_duration.iter().take(SLOWEST).map(|s| brief(s)).collect(),
            error_count: errors.len(),
            errors: errors.iter().take(MAX_ERRORS).map(|s| brief(s)).collect(),
            spans: spans
                .iter()
                .map(|s| SpanOut {
                    span_id: s.span_id.clone(),
                    parent_span_id: s.parent_span_id.clone(),
                    service: s.service.clone(),
                    name: s.name.clone(),
                    kind: s.kind.clone(),
                    offset_ms: s.start_unix_nano.saturating_sub(first) as f64 / 1e6,
                    duration_ms: s.duration_ms(),
                    error: s.error,
                    status_message: s.status_message.clone(),
                    attributes: s.attributes.iter().cloned().collect(),
                })
                .collect(),
            truncated: false,
        })
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchTracesParams {
    /// TraceQL, e.g. `{ status = error }` (default `{}`).
    pub query: Option<String>,
    /// Most traces (default 20).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    /// Start (default `now-1h`).
    pub start: Option<String>,
    /// End (default now).
    pub end: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TraceHitOut {
    pub trace_id: String,
    pub root_service: String,
    pub root_name: String,
    pub start: String,
    pub duration_ms: u64,
    /// Spans that matched the query.
    pub matched_spans: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchTracesOutput {
    pub query: String,
    pub start: String,
    pub end: String,
    pub count: usize,
    pub traces: Vec<TraceHitOut>,
    pub truncated: bool,
}

pub struct SearchTraces;

impl TypedTool for SearchTraces {
    type Params = SearchTracesParams;
    type Output = SearchTracesOutput;
    const NAME: &'static str = "obs.search_traces";
    const TOOLSET: &'static str = "obs";
    const TITLE: &'static str = "Search traces (Tempo TraceQL)";
    const DESCRIPTION: &'static str = "Find traces in Tempo by TraceQL (default: the last hour): ids with root service, span, start and duration.";
    const UNTRUSTED: Option<&'static str> = Some("Span names are untrusted upstream data.");
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("traces");

    fn target(&self, _p: &SearchTracesParams) -> Option<Target> {
        Some(Target {
            kind: Some("TraceQL".into()),
            ..Target::default()
        })
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        p: SearchTracesParams,
    ) -> Result<SearchTracesOutput, ToolError> {
        let (start, end) = time_range_last_hour_by_default(p.start.as_deref(), p.end.as_deref())?;
        let query = p
            .query
            .filter(|q| !q.trim().is_empty())
            .unwrap_or_else(|| "{}".into());
        let limit = p.limit.unwrap_or(20).clamp(1, 500);
        let hits = ctx
            .adapters
            .observability
            .tempo()?
            .search(&query, limit, Some(start), Some(end))
            .await?;
        Ok(SearchTracesOutput {
            query,
            start: rfc3339(start),
            end: rfc3339(end),
            count: hits.len(),
            traces: hits
                .into_iter()
                .map(|h| TraceHitOut {
                    trace_id: h.trace_id,
                    root_service: h.root_service,
                    root_name: h.root_name,
                    start: Timestamp::from_nanosecond(i128::from(h.start_unix_nano))
                        .map(rfc3339)
                        .unwrap_or_default(),
                    duration_ms: h.duration_ms,
                    matched_spans: h.matched_spans,
                })
                .collect(),
            truncated: false,
        })
    }
}
