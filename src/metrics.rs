//! Prometheus metrics (text format at `/metrics`): tool calls by tool, transport and outcome,
//! a latency histogram per tool, the upstream kit's per-upstream families, and rows pruned by
//! the retention job by table. Process-wide, so any module
//! can record without plumbing.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    tool: String,
    transport: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: String,
}

struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Family<ToolLabels, Histogram>,
    retention_pruned: Family<TableLabels, Counter>,
}

fn new_latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("toolgate");
        let calls = Family::<CallLabels, Counter>::default();
        let latency = Family::<ToolLabels, Histogram>::new_with_constructor(
            new_latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "tool_calls",
            "Tool calls by tool, transport and outcome",
            calls.clone(),
        );
        registry.register(
            "tool_call_duration_seconds",
            "Tool call latency in seconds",
            latency.clone(),
        );
        // Per-upstream requests, latency and breaker state: the upstream kit's own families.
        crate::adapters::http::metrics::register(&mut registry);
        // The incident facts consumer's families.
        crate::incidents::metrics::register(&mut registry);
        let retention_pruned = Family::<TableLabels, Counter>::default();
        registry.register(
            "retention_pruned",
            "Rows deleted by the retention job, by table",
            retention_pruned.clone(),
        );
        Metrics {
            registry,
            calls,
            latency,
            retention_pruned,
        }
    })
}

/// Record one finished tool call.
pub fn tool_call(tool: &str, transport: &str, outcome: &str, elapsed: Duration) {
    let m = metrics();
    m.calls
        .get_or_create(&CallLabels {
            tool: tool.into(),
            transport: transport.into(),
            outcome: outcome.into(),
        })
        .inc();
    m.latency
        .get_or_create(&ToolLabels { tool: tool.into() })
        .observe(elapsed.as_secs_f64());
}

/// Record `rows` deleted from `table` by the retention job.
pub fn retention_pruned(table: &str, rows: u64) {
    metrics()
        .retention_pruned
        .get_or_create(&TableLabels {
            table: table.into(),
        })
        .inc_by(rows);
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &metrics().registry).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn retention_counts_are_exposed_per_table() {
        super::retention_pruned("test_table", 3);
        super::retention_pruned("test_table", 2);
        let text = super::render();
        assert!(
            text.contains("toolgate_retention_pruned_total{table=\"test_table\"} 5"),
            "{text}"
        );
    }
}
