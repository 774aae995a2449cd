//! Scheduled SLI windows: on each cron tick, every configured SLI's good and total PromQL are
//! evaluated at the tick time and a `RecordSLIWindowRequested` intent with the ratio is written.
//! The tick time is part of the dedup key, so replicas evaluating the same tick emit it once.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::config::{SliConfig, SliDefinition, parse_schedule};
use super::{Envelope, IntentType, Intents, Signal};
use crate::adapters::observability::ObsError;
use crate::adapters::prometheus::{Metrics, Prometheus, QueryData};
use crate::config::HttpUpstream;

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

/// SLI numbers from the shared Prometheus adapter (src/adapters/prometheus.rs): its timeouts,
/// retries with backoff, circuit breaker, auth and TLS options.
pub struct PrometheusSli {
    metrics: Arc<dyn Metrics>,
}

impl PrometheusSli {
    /// A Prometheus at `base` without credentials, with `timeout` per request.
    pub fn new(base: &str, timeout: Duration) -> Result<PrometheusSli, SliError> {
        Self::for_upstream(&HttpUpstream::plain(base, timeout))
    }

    /// The Prometheus of an upstream configuration (e.g. `observability.prometheus`).
    pub fn for_upstream(upstream: &HttpUpstream) -> Result<PrometheusSli, SliError> {
        crate::adapters::http::init_crypto();
        let prometheus = Prometheus::new(upstream).map_err(SliError::Upstream)?;
        Ok(PrometheusSli {
            metrics: Arc::new(prometheus),
        })
    }
}

impl SliSource for PrometheusSli {
    fn scalar<'a>(
        &'a self,
        promql: &'a str,
        at: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Option<f64>, SliError>> {
        Box::pin(async move {
            let query_err = |reason: String| SliError::Query {
                query: promql.to_string(),
                reason,
            };
            let answer = match self.metrics.instant(promql, Some(at)).await {
                Ok(a) => a,
                Err(e @ (ObsError::Rejected { .. } | ObsError::Unsupported { .. })) => {
                    return Err(query_err(e.to_string()));
                }
                Err(e) => return Err(SliError::Upstream(e.to_string())),
            };
            match &answer.data {
                QueryData::Scalar(p) => Ok(Some(p.value)),
                QueryData::Vector(samples) => match samples.as_slice() {
                    [] => Ok(None),
                    [one] => Ok(Some(one.point.value)),
                    many => Err(query_err(format!(
                        "returned {} series; an SLI query must return one (wrap it in sum())",
                        many.len()
                    ))),
                },
                _ => Err(query_err(
                    "the result is not a scalar or an instant vector".to_string(),
                )),
            }
        })
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
/// The Prometheus is `sli_calculation.prometheus_url` when set, else `observability.prometheus`.
pub fn spawn(
    config: &SliConfig,
    observability_prometheus: Option<&HttpUpstream>,
    intents: &Intents,
    shutdown: CancellationToken,
) {
    if config.slis.is_empty() {
        return;
    }
    let source = match (&config.prometheus_url, observability_prometheus) {
        (Some(url), _) => PrometheusSli::new(url, config.timeout),
        (None, Some(upstream)) => PrometheusSli::for_upstream(upstream),
        (None, None) => return,
    };
    let source = match source {
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
                        tracing::warn!(sli = %sli.name, error = %e, "SLI window not computed; trying at the next tick")
                    }
                }
            }
        }
    });
}
