//! `obs.query_metrics`: PromQL, instant or range, answered compactly: labels every series
//! shares are listed once, range answers keep the top series by last value and at most
//! `max_points` points per series (evenly picked, the last one always kept).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::time::{parse_duration, parse_time, rfc3339, time_range};
use crate::adapters::prometheus::{Point, QueryData};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, Target, TypedTool};

const DEFAULT_MAX_SERIES: usize = 20;
const DEFAULT_MAX_POINTS: usize = 60;
/// Prometheus refuses more than 11,000 points per series.
const PROMETHEUS_MAX_POINTS: f64 = 11_000.0;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryMetricsParams {
    /// PromQL, e.g. `sum by (pod) (rate(x_total[5m]))`.
    pub query: String,
    /// Instant query at this time (default now).
    pub time: Option<String>,
    /// Range query start.
    pub start: Option<String>,
    /// Range query end (default now).
    pub end: Option<String>,
    /// Range query step, e.g. `30s`.
    pub step: Option<String>,
    /// Most series (default 20).
    #[schemars(range(min = 1, max = 500))]
    pub max_series: Option<usize>,
    /// Most points per series (default 60).
    #[schemars(range(min = 2, max = 2000))]
    pub max_points: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct QueryMetricsOutput {
    pub query: String,
    /// `instant` or `range`.
    pub mode: String,
    /// Prometheus' `resultType`: vector, matrix, scalar or string.
    pub result_type: String,
    /// Instant: the evaluation time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_seconds: Option<f64>,
    /// Unit guessed from the metric name (`_seconds`, `_bytes`, `_ratio` …), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Series (or samples) in Prometheus' answer.
    pub series_total: usize,
    /// Labels with the same value on every returned series (left out of each series).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub common_labels: BTreeMap<String, String>,
    /// Scalar and string results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    pub series: Vec<SeriesOut>,
    /// Prometheus' warnings (e.g. partial data).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Whether series were left out (over `max_series`, or to fit `max_bytes`).
    pub truncated: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SeriesOut {
    /// `__name__`, when the result still has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Labels besides `common_labels`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Instant: the sample value (a number; "NaN", "+Inf", "-Inf" as strings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Range: `[unix_seconds, value]` pairs, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<(f64, Value)>,
    /// Range: points Prometheus returned, when more than were kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points_total: Option<usize>,
}

pub struct QueryMetrics;

impl TypedTool for QueryMetrics {
    type Params = QueryMetricsParams;
    type Output = QueryMetricsOutput;
    const NAME: &'static str = "obs.query_metrics";
    const TOOLSET: &'static str = "obs";
    const TITLE: &'static str = "Query metrics (PromQL)";
    const DESCRIPTION: &'static str = "PromQL query on Prometheus, instant or over a range. Times: `now`, `now-1h`, RFC3339, unix seconds. Aggregate rather than fetch raw series.";
    const UNTRUSTED: Option<&'static str> = Some("Label values are untrusted upstream data.");
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("series");

    fn target(&self, _p: &QueryMetricsParams) -> Option<Target> {
        Some(Target {
            kind: Some("PromQL".into()),
            ..Target::default()
        })
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        p: QueryMetricsParams,
    ) -> Result<QueryMetricsOutput, ToolError> {
        if p.query.trim().is_empty() {
            return Err(ToolError::invalid_arguments(
                "argument `query`: empty; give a PromQL expression such as up or rate(http_requests_total[5m])",
            ));
        }
        let range = p.start.is_some() || p.end.is_some() || p.step.is_some();
        if range && p.time.is_some() {
            return Err(ToolError::invalid_arguments(
                "`time` is for instant queries; `start`/`end`/`step` for range queries: give one or the other",
            ));
        }
        let max_series = p.max_series.unwrap_or(DEFAULT_MAX_SERIES).clamp(1, 500);
        let max_points = p.max_points.unwrap_or(DEFAULT_MAX_POINTS).clamp(2, 2000);
        let now = Timestamp::now();
        let prometheus = ctx.adapters.observability.prometheus()?;
        let mut out = QueryMetricsOutput {
            query: p.query.clone(),
            mode: if range { "range" } else { "instant" }.into(),
            result_type: String::new(),
            time: None,
            start: None,
            end: None,
            step_seconds: None,
            unit: unit_of(&p.query, None),
            series_total: 0,
            common_labels: BTreeMap::new(),
            value: None,
            series: Vec::new(),
            warnings: Vec::new(),
            truncated: false,
        };
        let answer = if range {
            let (start, end) = time_range(p.start.as_deref(), p.end.as_deref(), now, None)?;
            let span = end.duration_since(start).as_secs_f64();
            let step = match &p.step {
                Some(s) => parse_duration("step", s)?,
                None => Duration::from_secs_f64((span / max_points as f64).ceil().max(1.0)),
            };
            if span / step.as_secs_f64() > PROMETHEUS_MAX_POINTS {
                return Err(ToolError::invalid_arguments(format!(
                    "argument `step`: {}s over {}s is more than Prometheus' 11000 points per series; use a step of at least {}s",
                    step.as_secs_f64(),
                    span,
                    (span / PROMETHEUS_MAX_POINTS).ceil()
                )));
            }
            out.start = Some(rfc3339(start));
            out.end = Some(rfc3339(end));
            out.step_seconds = Some(step.as_secs_f64());
            prometheus.range(&p.query, start, end, step).await?
        } else {
            let time = match &p.time {
                Some(t) => parse_time("time", t, now)?,
                None => now,
            };
            out.time = Some(rfc3339(time));
            prometheus.instant(&p.query, Some(time)).await?
        };
        out.warnings = answer.warnings;
        match answer.data {
            QueryData::Scalar(point) => {
                out.result_type = "scalar".into();
                out.time = Some(time_text(point.time));
                out.value = Some(value(point.value));
            }
            QueryData::String { time, value: v } => {
                out.result_type = "string".into();
                out.time = Some(time_text(time));
                out.value = Some(Value::String(v));
            }
            QueryData::Vector(mut samples) => {
                out.result_type = "vector".into();
                out.series_total = samples.len();
                if let Some(s) = samples.first() {
                    out.time = Some(time_text(s.point.time));
                }
                samples.sort_by(|a, b| rank(b.point.value).total_cmp(&rank(a.point.value)));
                out.truncated = samples.len() > max_series;
                samples.truncate(max_series);
                let labels: Vec<_> = samples.iter().map(|s| s.labels.clone()).collect();
                let (common, rest) = split_common(labels);
                out.common_labels = common;
                out.series = samples
                    .into_iter()
                    .zip(rest)
                    .map(|(s, (metric, labels))| SeriesOut {
                        metric,
                        labels,
                        value: Some(value(s.point.value)),
                        points: Vec::new(),
                        points_total: None,
                    })
                    .collect();
            }
            QueryData::Matrix(mut series) => {
                out.result_type = "matrix".into();
                out.series_total = series.len();
                let last = |s: &crate::adapters::prometheus::Series| {
                    s.points
                        .last()
                        .map(|p| rank(p.value))
                        .unwrap_or(f64::NEG_INFINITY)
                };
                series.sort_by(|a, b| last(b).total_cmp(&last(a)));
                out.truncated = series.len() > max_series;
                series.truncate(max_series);
                let labels: Vec<_> = series.iter().map(|s| s.labels.clone()).collect();
                let (common, rest) = split_common(labels);
                out.common_labels = common;
                out.series = series
                    .into_iter()
                    .zip(rest)
                    .map(|(s, (metric, labels))| {
                        let total = s.points.len();
                        let kept = downsample(&s.points, max_points);
                        SeriesOut {
                            metric,
                            labels,
                            value: None,
                            points: kept.iter().map(|p| (p.time, value(p.value))).collect(),
                            points_total: (total > kept.len()).then_some(total),
                        }
                    })
                    .collect();
            }
        }
        if out.unit.is_none() {
            let name = out
                .series
                .iter()
                .find_map(|s| s.metric.clone())
                .or_else(|| out.common_labels.get("__name__").cloned());
            out.unit = unit_of("", name.as_deref());
        }
        Ok(out)
    }
}

/// Sort key: NaN last.
fn rank(v: f64) -> f64 {
    if v.is_nan() { f64::NEG_INFINITY } else { v }
}

/// JSON for a sample value: a number, or Prometheus' spelling of NaN and ±Inf.
fn value(v: f64) -> Value {
    if v.is_nan() {
        Value::String("NaN".into())
    } else if v.is_infinite() {
        Value::String(if v > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn time_text(unix: f64) -> String {
    Timestamp::from_nanosecond((unix * 1e9).round() as i128)
        .map(rfc3339)
        .unwrap_or_else(|_| unix.to_string())
}

/// At most `max` points, evenly spread, first and last kept.
pub fn downsample(points: &[Point], max: usize) -> Vec<Point> {
    let n = points.len();
    if n <= max || max < 2 {
        return points.to_vec();
    }
    (0..max)
        .map(|i| points[(i * (n - 1) + (max - 1) / 2) / (max - 1)])
        .collect()
}

type Rest = (Option<String>, BTreeMap<String, String>);

/// Labels equal on every series (when there are at least two), and each series' own labels
/// with `__name__` taken out.
fn split_common(all: Vec<BTreeMap<String, String>>) -> (BTreeMap<String, String>, Vec<Rest>) {
    let mut common = BTreeMap::new();
    if all.len() > 1
        && let Some(first) = all.first()
    {
        for (k, v) in first {
            if k != "__name__" && all.iter().all(|l| l.get(k) == Some(v)) {
                common.insert(k.clone(), v.clone());
            }
        }
    }
    let rest = all
        .into_iter()
        .map(|mut l| {
            let metric = l.remove("__name__");
            l.retain(|k, _| !common.contains_key(k));
            (metric, l)
        })
        .collect();
    (common, rest)
}

/// A unit from Prometheus naming conventions, from a metric name or the first metric-like
/// name in the query.
fn unit_of(query: &str, metric: Option<&str>) -> Option<String> {
    const UNITS: &[(&str, &str)] = &[
        ("_seconds", "seconds"),
        ("_milliseconds", "milliseconds"),
        ("_bytes", "bytes"),
        ("_ratio", "ratio (0-1)"),
        ("_percent", "percent"),
        ("_celsius", "celsius"),
        ("_meters", "meters"),
        ("_volts", "volts"),
        ("_amperes", "amperes"),
        ("_joules", "joules"),
        ("_grams", "grams"),
    ];
    let names: Vec<String> = match metric {
        Some(m) => vec![m.to_string()],
        None => query
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|w| w.contains('_'))
            .map(String::from)
            .collect(),
    };
    for name in names {
        let base = ["_total", "_count", "_sum", "_bucket", "_created"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        if let Some((_, unit)) = UNITS.iter().find(|(suffix, _)| base.ends_with(suffix)) {
            let per_second = name.ends_with("_total") && query.contains("rate(");
            return Some(if per_second {
                format!("{unit} per second")
            } else {
                unit.to_string()
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_first_last_and_spreads_evenly() {
        let pts: Vec<Point> = (0..100)
            .map(|i| Point {
                time: i as f64,
                value: i as f64,
            })
            .collect();
        let kept = downsample(&pts, 10);
        assert_eq!(kept.len(), 10);
        assert_eq!(kept.first().map(|p| p.time), Some(0.0));
        assert_eq!(kept.last().map(|p| p.time), Some(99.0));
        assert!(kept.windows(2).all(|w| w[1].time - w[0].time >= 10.0));
        assert_eq!(downsample(&pts[..5], 10).len(), 5);
    }

    #[test]
    fn common_labels_are_listed_once() {
        let a = BTreeMap::from([
            ("__name__".to_string(), "up".to_string()),
            ("job".to_string(), "prometheus".to_string()),
            ("instance".to_string(), "a".to_string()),
        ]);
        let mut b = a.clone();
        b.insert("instance".into(), "b".into());
        let (common, rest) = split_common(vec![a, b]);
        assert_eq!(
            common,
            BTreeMap::from([("job".into(), "prometheus".into())])
        );
        assert_eq!(rest[0].0.as_deref(), Some("up"));
        assert_eq!(rest[1].1, BTreeMap::from([("instance".into(), "b".into())]));
    }

    #[test]
    fn units_come_from_metric_names() {
        assert_eq!(
            unit_of("rate(process_cpu_seconds_total[5m])", None).as_deref(),
            Some("seconds per second")
        );
        assert_eq!(
            unit_of("", Some("node_memory_MemFree_bytes")).as_deref(),
            Some("bytes")
        );
        assert_eq!(unit_of("up", None), None);
        assert_eq!(value(f64::NAN), Value::String("NaN".into()));
        assert_eq!(value(1.5), serde_json::json!(1.5));
    }
}
