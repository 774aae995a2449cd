//! Prometheus HTTP API: instant and range queries (`/api/v1/query`, `/api/v1/query_range`),
//! POSTed as forms so long PromQL fits. Answers are parsed into typed samples; Prometheus'
//! own error message (`{status:"error", errorType, error}`) is kept verbatim.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde_json::Value;

use super::observability::{HttpApi, ObsError};
use crate::config::HttpUpstream;

/// One value: unix seconds and the sample value (NaN and ±Inf included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub time: f64,
    pub value: f64,
}

/// A labelled sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub point: Point,
}

/// A labelled series of a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<Point>,
}

/// The `data` of a query answer, by `resultType`.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryData {
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
    Scalar(Point),
    String { time: f64, value: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryAnswer {
    pub data: QueryData,
    /// Prometheus' `warnings` (e.g. partial results).
    pub warnings: Vec<String>,
}

impl QueryAnswer {
    /// The samples of an instant vector (empty for other result types).
    pub fn samples(&self) -> &[Sample] {
        match &self.data {
            QueryData::Vector(s) => s,
            _ => &[],
        }
    }

    /// The one number a ratio-style query gives (`sum(good) / sum(total)`): a scalar, or a
    /// vector of exactly one sample. `None` when there is no sample or several.
    pub fn single_value(&self) -> Option<f64> {
        match &self.data {
            QueryData::Scalar(p) => Some(p.value),
            QueryData::Vector(s) if s.len() == 1 => Some(s[0].point.value),
            _ => None,
        }
    }
}

/// What tools and other modules (SLI windows) need from a metrics backend.
pub trait Metrics: Send + Sync {
    /// The upstream's breaker and last results, for `/readyz` (fakes have none).
    fn health(&self) -> Option<super::http::Health> {
        None
    }

    /// Evaluate `query` at `time` (default: the backend's now).
    fn instant<'a>(
        &'a self,
        query: &'a str,
        time: Option<Timestamp>,
    ) -> BoxFuture<'a, Result<QueryAnswer, ObsError>>;
    /// Evaluate `query` from `start` to `end` every `step`.
    fn range<'a>(
        &'a self,
        query: &'a str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> BoxFuture<'a, Result<QueryAnswer, ObsError>>;
}

impl Metrics for Prometheus {
    fn health(&self) -> Option<super::http::Health> {
        Some(self.api.health())
    }

    fn instant<'a>(
        &'a self,
        query: &'a str,
        time: Option<Timestamp>,
    ) -> BoxFuture<'a, Result<QueryAnswer, ObsError>> {
        Box::pin(Prometheus::instant(self, query, time))
    }

    fn range<'a>(
        &'a self,
        query: &'a str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> BoxFuture<'a, Result<QueryAnswer, ObsError>> {
        Box::pin(Prometheus::range(self, query, start, end, step))
    }
}

pub struct Prometheus {
    api: HttpApi,
}

impl Prometheus {
    pub fn new(config: &HttpUpstream) -> Result<Self, String> {
        Ok(Self {
            api: HttpApi::new("Prometheus", config, Vec::new())?,
        })
    }

    /// Evaluate `query` at `time` (default: Prometheus' now).
    pub async fn instant(
        &self,
        query: &str,
        time: Option<Timestamp>,
    ) -> Result<QueryAnswer, ObsError> {
        let mut form = vec![("query", query.to_string())];
        if let Some(t) = time {
            form.push(("time", unix(t)));
        }
        let reply = self.api.post_form_read("/api/v1/query", &form).await?;
        self.answer(&reply)
    }

    /// Evaluate `query` from `start` to `end` every `step`.
    pub async fn range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> Result<QueryAnswer, ObsError> {
        let form = vec![
            ("query", query.to_string()),
            ("start", unix(start)),
            ("end", unix(end)),
            ("step", format!("{}", step.as_secs_f64())),
        ];
        let reply = self
            .api
            .post_form_read("/api/v1/query_range", &form)
            .await?;
        self.answer(&reply)
    }

    fn answer(&self, reply: &super::http::Reply) -> Result<QueryAnswer, ObsError> {
        // Errors come with 400 (bad_data), 422 (execution), 503 (timeout/canceled).
        let body: Value = match serde_json::from_slice(&reply.body) {
            Ok(v) => v,
            Err(_) if !reply.status.is_success() => return Err(self.api.rejected(reply)),
            Err(e) => return Err(self.api.bad_answer(format!("body is not JSON ({e})"))),
        };
        if body.get("status").and_then(Value::as_str) != Some("success") {
            let message = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no error message")
                .to_string();
            let error_type = body
                .get("errorType")
                .and_then(Value::as_str)
                .unwrap_or("error");
            return Err(ObsError::Rejected {
                upstream: "Prometheus",
                status: reply.status.as_u16(),
                message: format!("{error_type}: {message}"),
            });
        }
        let warnings = body
            .get("warnings")
            .and_then(Value::as_array)
            .map(|w| {
                w.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let data = &body["data"];
        let result = &data["result"];
        let bad = |what: &str| self.api.bad_answer(format!("malformed {what}"));
        let data = match data.get("resultType").and_then(Value::as_str) {
            Some("vector") => QueryData::Vector(
                items(result)
                    .iter()
                    .map(|s| {
                        Ok(Sample {
                            labels: labels(&s["metric"]),
                            point: point(&s["value"]).ok_or_else(|| bad("vector sample"))?,
                        })
                    })
                    .collect::<Result<_, ObsError>>()?,
            ),
            Some("matrix") => QueryData::Matrix(
                items(result)
                    .iter()
                    .map(|s| {
                        Ok(Series {
                            labels: labels(&s["metric"]),
                            points: items(&s["values"])
                                .iter()
                                .map(|p| point(p).ok_or_else(|| bad("matrix point")))
                                .collect::<Result<_, ObsError>>()?,
                        })
                    })
                    .collect::<Result<_, ObsError>>()?,
            ),
            Some("scalar") => QueryData::Scalar(point(result).ok_or_else(|| bad("scalar"))?),
            Some("string") => QueryData::String {
                time: result[0].as_f64().ok_or_else(|| bad("string"))?,
                value: result[1].as_str().unwrap_or_default().to_string(),
            },
            other => {
                return Err(self
                    .api
                    .bad_answer(format!("unknown resultType {}", other.unwrap_or("(none)"))));
            }
        };
        Ok(QueryAnswer { data, warnings })
    }
}

fn unix(t: Timestamp) -> String {
    let ms = t.as_millisecond();
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// `[<unix seconds>, "<value>"]`; values are strings so NaN and ±Inf survive JSON.
fn point(v: &Value) -> Option<Point> {
    let time = v.get(0)?.as_f64()?;
    let value = match v.get(1)?.as_str()? {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        s => s.parse().ok()?,
    };
    Some(Point { time, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn points_keep_special_values() {
        let p = point(&json!([1700000000.5, "+Inf"])).expect("point");
        assert_eq!(p.time, 1700000000.5);
        assert!(p.value.is_infinite());
        assert!(point(&json!([1, "NaN"])).expect("nan").value.is_nan());
        assert_eq!(point(&json!([1, "0.25"])).expect("num").value, 0.25);
        assert!(point(&json!([1, "x"])).is_none());
    }

    #[test]
    fn a_ratio_is_one_value() {
        let one = QueryAnswer {
            data: QueryData::Vector(vec![Sample {
                labels: BTreeMap::new(),
                point: Point {
                    time: 1.0,
                    value: 0.999,
                },
            }]),
            warnings: Vec::new(),
        };
        assert_eq!(one.single_value(), Some(0.999));
        assert_eq!(one.samples().len(), 1);
        let none = QueryAnswer {
            data: QueryData::Vector(Vec::new()),
            warnings: Vec::new(),
        };
        assert_eq!(none.single_value(), None);
        let scalar = QueryAnswer {
            data: QueryData::Scalar(Point {
                time: 1.0,
                value: 2.0,
            }),
            warnings: Vec::new(),
        };
        assert_eq!(scalar.single_value(), Some(2.0));
        assert!(scalar.samples().is_empty());
    }

    #[test]
    fn timestamps_are_sent_as_unix_seconds_with_milliseconds() {
        let t: Timestamp = "2026-11-23T10:00:00.250Z".parse().expect("ts");
        assert_eq!(unix(t), "1795428000.250");
    }
}
