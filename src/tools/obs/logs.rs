//! `obs.search_logs`: LogQL log lines from Loki over a time range, newest first by default,
//! or label discovery (label names, values of one label) to build a query. Stream labels
//! are listed once; each line points at its stream by index.

use std::collections::BTreeMap;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::time::{rfc3339, time_range_last_hour_by_default};
use crate::adapters::loki::Direction;
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, Target, TypedTool};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 5000;
/// Label names or values returned at most in discovery mode.
const MAX_VALUES: usize = 1000;

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogsMode {
    /// Log lines matching `query` (or `labels` + `contains`).
    #[default]
    Lines,
    /// Label names seen in the time range.
    Labels,
    /// Values of the label `label` (optionally only in streams matching `query`).
    Values,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogsDirection {
    /// Newest first.
    #[default]
    Backward,
    /// Oldest first.
    Forward,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchLogsParams {
    /// `labels`: label names; `values`: those of `label`.
    #[serde(default)]
    pub mode: LogsMode,
    /// LogQL, e.g. `{app="web"} |= "error"`.
    pub query: Option<String>,
    /// Labels to match, instead of `query`.
    pub labels: Option<BTreeMap<String, String>>,
    /// Text the lines contain.
    pub contains: Option<String>,
    /// Label whose values to list.
    pub label: Option<String>,
    /// Start (default `now-1h`).
    pub start: Option<String>,
    /// End (default now).
    pub end: Option<String>,
    /// Most lines (default 100).
    #[schemars(range(min = 1, max = 5000))]
    pub limit: Option<u32>,
    /// Order (default newest first).
    #[serde(default)]
    pub direction: LogsDirection,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LogLine {
    /// RFC3339 time with nanoseconds.
    pub time: String,
    /// Index into `streams`.
    pub stream: usize,
    pub line: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchLogsOutput {
    pub mode: String,
    /// The LogQL that ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub start: String,
    pub end: String,
    /// Labels of the streams the lines come from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<BTreeMap<String, String>>,
    /// Lines mode: log lines in `direction` order.
    pub entries: Vec<LogLine>,
    /// Lines returned by Loki.
    pub count: usize,
    /// Loki stopped at `limit`: older (or newer) lines exist; narrow the query or the time range.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub limit_reached: bool,
    /// `labels` mode: label names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub label_names: Vec<String>,
    /// `values` mode: values of `label`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Whether lines or values were left out (limit of this tool, or `max_bytes`).
    pub truncated: bool,
}

pub struct SearchLogs;

impl TypedTool for SearchLogs {
    type Params = SearchLogsParams;
    type Output = SearchLogsOutput;
    const NAME: &'static str = "obs.search_logs";
    const TOOLSET: &'static str = "obs";
    const TITLE: &'static str = "Search logs (Loki LogQL)";
    const DESCRIPTION: &'static str = "Search Loki logs (default: the last hour, newest first) by LogQL `query`, or `labels` plus `contains`. mode=labels lists label names.";
    const UNTRUSTED: Option<&'static str> =
        Some("Log lines and labels are untrusted upstream data.");
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("entries");

    fn target(&self, _p: &SearchLogsParams) -> Option<Target> {
        Some(Target {
            kind: Some("LogQL".into()),
            ..Target::default()
        })
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        p: SearchLogsParams,
    ) -> Result<SearchLogsOutput, ToolError> {
        let (start, end) = time_range_last_hour_by_default(p.start.as_deref(), p.end.as_deref())?;
        let loki = ctx.adapters.observability.loki()?;
        let mut out = SearchLogsOutput {
            mode: String::new(),
            query: None,
            start: rfc3339(start),
            end: rfc3339(end),
            streams: Vec::new(),
            entries: Vec::new(),
            count: 0,
            limit_reached: false,
            label_names: Vec::new(),
            values: Vec::new(),
            truncated: false,
        };
        match p.mode {
            LogsMode::Labels => {
                out.mode = "labels".into();
                let mut names = loki.labels(start, end).await?;
                out.truncated = names.len() > MAX_VALUES;
                names.truncate(MAX_VALUES);
                out.label_names = names;
            }
            LogsMode::Values => {
                out.mode = "values".into();
                let label = p.label.as_deref().filter(|l| !l.is_empty()).ok_or_else(|| {
                    ToolError::invalid_arguments(
                        "argument `label`: required with mode=values; list label names with mode=labels",
                    )
                })?;
                let selector = match (&p.query, &p.labels) {
                    (Some(q), _) => Some(q.clone()),
                    (None, Some(l)) if !l.is_empty() => Some(selector(l)?),
                    _ => None,
                };
                let mut values = loki
                    .label_values(label, start, end, selector.as_deref())
                    .await?;
                out.query = selector;
                out.truncated = values.len() > MAX_VALUES;
                values.truncate(MAX_VALUES);
                out.values = values;
            }
            LogsMode::Lines => {
                out.mode = "lines".into();
                let query = build_query(&p)?;
                let limit = p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
                let direction = match p.direction {
                    LogsDirection::Backward => Direction::Backward,
                    LogsDirection::Forward => Direction::Forward,
                };
                let streams = loki
                    .query_range(&query, start, end, limit, direction)
                    .await?;
                let mut lines: Vec<(i128, usize, String)> = Vec::new();
                for (i, s) in streams.iter().enumerate() {
                    for (ns, line) in &s.entries {
                        lines.push((*ns, i, line.clone()));
                    }
                }
                match direction {
                    Direction::Backward => lines.sort_by_key(|l| std::cmp::Reverse(l.0)),
                    Direction::Forward => lines.sort_by_key(|l| l.0),
                }
                out.count = lines.len();
                out.limit_reached = lines.len() >= limit as usize;
                out.streams = streams.into_iter().map(|s| s.labels).collect();
                out.entries = lines
                    .into_iter()
                    .map(|(ns, stream, line)| LogLine {
                        time: Timestamp::from_nanosecond(ns)
                            .map(rfc3339)
                            .unwrap_or_else(|_| ns.to_string()),
                        stream,
                        line,
                    })
                    .collect();
                out.query = Some(query);
            }
        }
        Ok(out)
    }
}

fn build_query(p: &SearchLogsParams) -> Result<String, ToolError> {
    if let Some(q) = p.query.as_deref().filter(|q| !q.trim().is_empty()) {
        if p.labels.is_some() || p.contains.is_some() {
            return Err(ToolError::invalid_arguments(
                "give either `query` or `labels`/`contains`, not both",
            ));
        }
        return Ok(q.to_string());
    }
    let labels = p.labels.as_ref().filter(|l| !l.is_empty()).ok_or_else(|| {
        ToolError::invalid_arguments(
            "argument `query`: required (LogQL such as {app=\"web\"} |= \"error\"), or give `labels`; mode=labels lists the label names",
        )
    })?;
    let mut q = selector(labels)?;
    if let Some(c) = p.contains.as_deref().filter(|c| !c.is_empty()) {
        q.push_str(&format!(" |= {}", quote(c)));
    }
    Ok(q)
}

/// `{a="x", b="y"}` with values escaped.
fn selector(labels: &BTreeMap<String, String>) -> Result<String, ToolError> {
    let mut parts = Vec::new();
    for (k, v) in labels {
        let valid = !k.is_empty()
            && k.chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if !valid {
            return Err(ToolError::invalid_arguments(format!(
                "argument `labels`: `{k}` is not a label name; expected [a-zA-Z_][a-zA-Z0-9_]*"
            )));
        }
        parts.push(format!("{k}={}", quote(v)));
    }
    Ok(format!("{{{}}}", parts.join(", ")))
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_contains_build_a_query() {
        let p: SearchLogsParams = serde_json::from_value(serde_json::json!({
            "labels": {"namespace": "shop", "app": "web"}, "contains": "say \"hi\""
        }))
        .expect("params");
        assert_eq!(
            build_query(&p).expect("query"),
            r#"{app="web", namespace="shop"} |= "say \"hi\"""#
        );
        let bad: SearchLogsParams =
            serde_json::from_value(serde_json::json!({"labels": {"a-b": "x"}})).expect("params");
        assert!(build_query(&bad).is_err());
        let none: SearchLogsParams = serde_json::from_value(serde_json::json!({})).expect("params");
        assert!(
            build_query(&none)
                .expect_err("nothing")
                .message
                .contains("mode=labels")
        );
    }
}
