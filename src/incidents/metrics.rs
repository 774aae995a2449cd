//! The facts consumer's metrics: facts handled by type and outcome, dead-lettered facts,
//! and the consumer's lag (facts in the stream not yet delivered to it).

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FactLabels {
    fact_type: String,
    outcome: String,
}

struct Families {
    handled: Family<FactLabels, Counter>,
    dead: Counter,
    lag: Gauge,
}

fn families() -> &'static Families {
    static F: OnceLock<Families> = OnceLock::new();
    F.get_or_init(|| Families {
        handled: Family::default(),
        dead: Counter::default(),
        lag: Gauge::default(),
    })
}

/// Adds the families to the process registry (`metrics.rs`).
pub fn register(registry: &mut Registry) {
    let f = families();
    registry.register(
        "facts_handled",
        "Facts handled by the incident consumer, by type and outcome (applied, duplicate, ignored, retried, dead_lettered)",
        f.handled.clone(),
    );
    registry.register(
        "facts_dead_lettered",
        "Facts sent to the dead-letter subject (poison, or given up)",
        f.dead.clone(),
    );
    registry.register(
        "facts_consumer_lag",
        "Facts in the stream not yet delivered to the consumer",
        f.lag.clone(),
    );
}

pub fn handled(fact_type: &str, outcome: &str) {
    families()
        .handled
        .get_or_create(&FactLabels {
            fact_type: fact_type.into(),
            outcome: outcome.into(),
        })
        .inc();
}

pub fn dead_lettered() {
    families().dead.inc();
}

pub fn set_lag(pending: u64) {
    families()
        .lag
        .set(i64::try_from(pending).unwrap_or(i64::MAX));
}

/// Current counts, for `/readyz`: (dead-lettered, lag).
pub fn snapshot() -> (u64, i64) {
    let f = families();
    (f.dead.get(), f.lag.get())
}
