//! Per-upstream metrics: requests by outcome, a latency histogram, and the breaker's state as a
//! gauge (0 closed, 1 half-open, 2 open). Process-wide families, registered into toolgate's
//! registry by `crate::metrics` (the kit imports nothing of toolgate).

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    upstream: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

struct Families {
    requests: Family<OutcomeLabels, Counter>,
    duration: Family<UpstreamLabels, Histogram>,
    breaker: Family<UpstreamLabels, Gauge>,
}

fn new_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

fn families() -> &'static Families {
    static F: OnceLock<Families> = OnceLock::new();
    F.get_or_init(|| Families {
        requests: Family::default(),
        duration: Family::new_with_constructor(new_histogram as fn() -> Histogram),
        breaker: Family::default(),
    })
}

/// Add the kit's families to `registry` (once, at start-up).
pub fn register(registry: &mut Registry) {
    let f = families();
    registry.register(
        "upstream_requests",
        "Outbound requests by upstream and outcome",
        f.requests.clone(),
    );
    registry.register(
        "upstream_request_duration_seconds",
        "Outbound request latency in seconds",
        f.duration.clone(),
    );
    registry.register(
        "upstream_breaker_state",
        "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open",
        f.breaker.clone(),
    );
}

pub(crate) fn request(upstream: &str, outcome: &str, elapsed: Option<Duration>) {
    let f = families();
    f.requests
        .get_or_create(&OutcomeLabels {
            upstream: upstream.into(),
            outcome: outcome.into(),
        })
        .inc();
    if let Some(elapsed) = elapsed {
        f.duration
            .get_or_create(&UpstreamLabels {
                upstream: upstream.into(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

pub(crate) fn breaker(upstream: &str, state: i64) {
    families()
        .breaker
        .get_or_create(&UpstreamLabels {
            upstream: upstream.into(),
        })
        .set(state);
}

/// Requests counted so far for `upstream` with `outcome` (tests).
pub fn requests_seen(upstream: &str, outcome: &str) -> u64 {
    families()
        .requests
        .get_or_create(&OutcomeLabels {
            upstream: upstream.into(),
            outcome: outcome.into(),
        })
        .get()
}
