//! Scheduled SLI windows: on each cron tick, every configured SLI's good and total PromQL are
//! evaluated at the tick time and a `RecordSLIWindowRequested` intent with the ratio is written.
//! The tick time is part of the dedup key, so replicas evaluating the same tick emit it once.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::config::{SliConfig, SliDefinition, parse_schedule};
use super::{Envelope, IntentType, Intents, Signal};

pub const SOURCE: &str = "toolgate/sli";
/// Dedup records of SLI ticks are kept this long (a tick is never evaluated twice in a day).
const DEDUP_WINDOW_MS: i64 = 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum SliError {
    #[error("prometheus: {0}")]
    Upstream(String),
    #[error("prometheus: query `{query}`: {reason}")]
    Query { query: String, reason: String },
}

/// Where SLI numbers come from: one number per PromQL at an instant (None: no series).
pub trait SliSource: Send + Sync {
    fn scalar<'a>(
        &'a self,
        promql: &'a str,
        at: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Option<f64>, SliError>>;
}

/// A minimal Prometheus `/api/v1/query` client.
// The lead will switch this to the shared Prometheus adapter (src/adapters/prometheus.rs),
// written in parallel; only this impl changes, SliSource stays.
pub struct PrometheusSli {
    base: String,
    http: reqwest::Client,
}

impl PrometheusSli {
    pub fn new(base: &str, timeout: Duration) -> Result<PrometheusSli, SliError> {
        crate::app::init_crypto();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| SliError::Upstream(format!("http client: {e}")))?;
        Ok(PrometheusSli {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }
}

/// Attempts of one query when Prometheus is unreachable or answers 5xx (queries are reads).
const ATTEMPTS: u32 = 3;

impl SliSource for PrometheusSli {
    fn scalar<'a>(
        &'a self,
        promql: &'a str,
        at: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Option<f64>, SliError>> {
        Box::pin(async move {
            let mut delay = Duration::from_millis(250);
            let mut attempt = 1;
            loop {
                match self.query_once(promql, at).await {
                    Err(SliError::Upstream(_)) if attempt < ATTEMPTS => {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
    }
}

impl PrometheusSli {
    async fn query_once(&self, promql: &str, at: jiff::Timestamp) -> Result<Option<f64>, SliError> {
        let query_err = |reason: String| SliError::Query {
            query: promql.to_string(),
            reason,
        };
        let time = format!("{}", at.as_millisecond() as f64 / 1000.0);
        let response = self
            .http
            .post(format!("{}/api/v1/query", self.base))
            .form(&[("query", promql), ("time", time.as_str())])
            .send()
            .await
            .map_err(|e| SliError::Upstream(format!("{}: {e}", self.base)))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| {
            SliError::Upstream(format!(
                "{}: HTTP {status}, body is not JSON: {e}",
                self.base
            ))
        })?;
        if body["status"] == "error" {
            return Err(query_err(format!(
                "{}: {}",
                body["errorType"].as_str().unwrap_or("error"),
                body["error"].as_str().unwrap_or("(no message)")
            )));
        }
        if !status.is_success() || body["status"] != "success" {
            return Err(SliError::Upstream(format!(
                "{}: HTTP {status} without a success status",
                self.base
            )));
        }
        let data = &body["data"];
        let sample = match data["resultType"].as_str() {
            Some("scalar") => &data["result"],
            Some("vector") => match data["result"].as_array().map(Vec::as_slice) {
                Some([]) => return Ok(None),
                Some([one]) => &one["value"],
                Some(many) => {
                    return Err(query_err(format!(
                        "returned {} series; an SLI query must return one (wrap it in sum())",
                        many.len()
                    )));
                }
                None => return Err(query_err("vector result is not a list".into())),
            },
            other => {
                return Err(query_err(format!(
                    "result type {other:?} is not a scalar or instant vector"
                )));
            }
        };
        let value = sample[1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| query_err(format!("sample {sample} has no numeric value")))?;
        Ok(Some(value))
    }
}

/// Evaluates one SLI window ending at `at` into its intent (None: the total query has no data).
pub async fn evaluate(
    source: &dyn SliSource,
    sli: &SliDefinition,
    at: jiff::Timestamp,
) -> Result<Option<Signal>, SliError> {
    let good_query = sli.good.replace("$window", &sli.window_text);
    let total_query = sli.total.replace("$window", &sli.window_text);
    let Some(total) = source.scalar(&total_query, at).await? else {
        return Ok(None);
    };
    let good = source.scalar(&good_query, at).await?.unwrap_or(0.0);
    let ratio = (total > 0.0 && total.is_finite() && good.is_finite()).then(|| good / total);
    let window_ms = i64::try_from(sli.window.as_millis()).unwrap_or(i64::MAX);
    let start = jiff::Timestamp::from_millisecond(at.as_millisecond().saturating_sub(window_ms))
        .unwrap_or(at);
    let key = format!("sli:{}:{}", sli.name, at);
    let envelope = Envelope::new(
        IntentType::RecordSliWindowRequested,
        key.clone(),
        SOURCE,
        format!("sli:{}", sli.name),
        jiff::Timestamp::now(),
        json!({
            "sli": sli.name,
            "window": sli.window_text,
            "window_seconds": sli.window.as_secs_f64(),
            "window_start": start.to_string(),
            "window_end": at.to_string(),
            "good": good,
            "total": total,
            "ratio": ratio,
            "good_query": good_query,
            "total_query": total_query,
        }),
    );
    Ok(Some(Signal {
        dedup_key: key,
        intents: vec![envelope],
    }))
}

/// Runs the schedule until `shutdown` (nothing when no SLIs are configured).
pub fn spawn(config: &SliConfig, intents: &Intents, shutdown: CancellationToken) {
    if config.slis.is_empty() {
        return;
    }
    let Some(url) = &config.prometheus_url else {
        return;
    };
    let source = match PrometheusSli::new(url, config.timeout) {
        Ok(s) => Arc::new(s) as Arc<dyn SliSource>,
        Err(e) => {
            tracing::error!(error = %e, "SLI windows disabled");
            return;
        }
    };
    spawn_with(config.clone(), source, intents.clone(), shutdown);
}

/// Same with any source (tests).
pub fn spawn_with(
    config: SliConfig,
    source: Arc<dyn SliSource>,
    intents: Intents,
    shutdown: CancellationToken,
) {
    let cron = match parse_schedule(&config.schedule) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "SLI windows disabled: bad schedule");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
            let next = match cron.find_next_occurrence(&now, false) {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "SLI schedule has no next occurrence; stopping");
                    return;
                }
            };
            let wait = now.duration_until(&next);
            let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let at = next.timestamp();
            for sli in &config.slis {
                match evaluate(source.as_ref(), sli, at).await {
                    Ok(Some(signal)) => {
                        if let Err(e) = intents.emit(SOURCE, &[signal], DEDUP_WINDOW_MS).await {
                            tracing::warn!(sli = %sli.name, error = %e, "recording the SLI window failed");
                        }
                    }
                    Ok(None) => {
                        tracing::warn!(sli = %sli.name, "SLI total query returned no data; window skipped")
                    }
                    Err(e) => {
                        crate::metrics::upstream_error("prometheus");
                        tracing::warn!(sli = %sli.name, error = %e, "SLI window not computed; trying at the next tick")
                    }
                }
            }
        }
    });
}
