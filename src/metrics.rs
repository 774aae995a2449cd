//! Prometheus metrics (text format at `/metrics`): tool calls by tool, transport and outcome,
//! a latency histogram per tool, the upstream kit's per-upstream families, and rows pruned by
//! the retention job by table. Process-wide, so any module
//! can record without plumbing.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchLabels {
    cluster: String,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    cluster: String,
    outcome: String,
}

/// The Kubernetes watch + poll signal source, per cluster.
struct WatchMetrics {
    connected: Family<WatchLabels, Gauge>,
    errors: Family<WatchLabels, Counter>,
    last_event: Family<ClusterLabels, Gauge>,
    last_reconcile: Family<ClusterLabels, Gauge>,
    reconciles: Family<ReconcileLabels, Counter>,
    intents: Family<ClusterLabels, Counter>,
}

struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Family<ToolLabels, Histogram>,
    retention_pruned: Family<TableLabels, Counter>,
    watch: WatchMetrics,
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
        // The ArgoCD poller's cycles.
        crate::intents::argocd::register_metrics(&mut registry);
        // The incident facts consumer's families.
        crate::incidents::metrics::register(&mut registry);
        let retention_pruned = Family::<TableLabels, Counter>::default();
        registry.register(
            "retention_pruned",
            "Rows deleted by the retention job, by table",
            retention_pruned.clone(),
        );
        let watch = WatchMetrics {
            connected: Family::default(),
            errors: Family::default(),
            last_event: Family::default(),
            last_reconcile: Family::default(),
            reconciles: Family::default(),
            intents: Family::default(),
        };
        registry.register(
            "k8s_watch_connected",
            "1 while a Kubernetes watch stream is listed and open, by cluster and resource",
            watch.connected.clone(),
        );
        registry.register(
            "k8s_watch_errors",
            "Kubernetes watch failures (dropped, refused, 410 Gone), by cluster and resource",
            watch.errors.clone(),
        );
        registry.register(
            "k8s_watch_last_event_timestamp_seconds",
            "Unix time of the last watch event received, by cluster",
            watch.last_event.clone(),
        );
        registry.register(
            "k8s_reconcile_last_timestamp_seconds",
            "Unix time of the last successful full reconcile, by cluster",
            watch.last_reconcile.clone(),
        );
        registry.register(
            "k8s_reconciles",
            "Full reconciles by cluster and outcome (ok, error)",
            watch.reconciles.clone(),
        );
        registry.register(
            "k8s_signal_intents",
            "Intents written by the Kubernetes signal source, by cluster",
            watch.intents.clone(),
        );
        let (fallbacks, retries, notices) = review();
        registry.register(
            "review_fallbacks",
            "Review analyses run without PR-QUEST because it was unavailable",
            fallbacks.clone(),
        );
        registry.register(
            "review_retries",
            "Retries of degraded review analyses against PR-QUEST, by outcome",
            retries.clone(),
        );
        registry.register(
            "review_fallback_notices",
            "Notices of PR-QUEST outages to administrators, by outcome (sent, suppressed: held back within review.notice_interval)",
            notices.clone(),
        );
        Metrics {
            registry,
            calls,
            latency,
            retention_pruned,
            watch,
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

fn stream_of(cluster: &str, resource: &str) -> WatchLabels {
    WatchLabels {
        cluster: cluster.into(),
        resource: resource.into(),
    }
}

fn of_cluster(cluster: &str) -> ClusterLabels {
    ClusterLabels {
        cluster: cluster.into(),
    }
}

/// A watch stream of `cluster` for `resource` is (`true`) or is not open.
pub fn k8s_watch_connected(cluster: &str, resource: &str, connected: bool) {
    let labels = stream_of(cluster, resource);
    metrics()
        .watch
        .connected
        .get_or_create(&labels)
        .set(i64::from(connected));
}

/// A watch stream of `cluster` for `resource` failed.
pub fn k8s_watch_error(cluster: &str, resource: &str) {
    let labels = stream_of(cluster, resource);
    metrics().watch.errors.get_or_create(&labels).inc();
}

/// A watch event of `cluster` arrived at `unix_seconds`.
pub fn k8s_watch_event(cluster: &str, unix_seconds: i64) {
    let labels = of_cluster(cluster);
    metrics()
        .watch
        .last_event
        .get_or_create(&labels)
        .set(unix_seconds);
}

/// A full reconcile of `cluster` ended (`ok`: it listed everything).
pub fn k8s_reconcile(cluster: &str, ok: bool, unix_seconds: i64) {
    let m = &metrics().watch;
    let outcome = if ok { "ok" } else { "error" };
    m.reconciles
        .get_or_create(&ReconcileLabels {
            cluster: cluster.into(),
            outcome: outcome.into(),
        })
        .inc();
    if ok {
        m.last_reconcile
            .get_or_create(&of_cluster(cluster))
            .set(unix_seconds);
    }
}

/// `n` intents written for `cluster`.
pub fn k8s_signal_intents(cluster: &str, n: u64) {
    let labels = of_cluster(cluster);
    metrics().watch.intents.get_or_create(&labels).inc_by(n);
}

/// An analysis ran without PR-QUEST because it was unavailable (review fallback mode).
pub fn review_fallback() {
    review().0.inc();
}

/// A retry of a degraded analysis: `completed` (PR-QUEST answered) or `failed`.
pub fn review_retry(outcome: &str) {
    review()
        .1
        .get_or_create(&OutcomeLabels {
            outcome: outcome.into(),
        })
        .inc();
}

/// A fallback notice to administrators: `sent`, or `suppressed` (held back: the outage was
/// told less than `review.notice_interval` ago).
pub fn review_fallback_notice(outcome: &str) {
    review()
        .2
        .get_or_create(&OutcomeLabels {
            outcome: outcome.into(),
        })
        .inc();
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

type ReviewFamilies = (
    Counter,
    Family<OutcomeLabels, Counter>,
    Family<OutcomeLabels, Counter>,
);

/// The review families, registered with the others on first use.
fn review() -> &'static ReviewFamilies {
    static REVIEW: OnceLock<ReviewFamilies> = OnceLock::new();
    REVIEW.get_or_init(|| (Counter::default(), Family::default(), Family::default()))
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
