//! obs.* tools: metrics (Prometheus), logs (Loki), traces (Tempo), dashboards and
//! annotations (Grafana). Tools reach upstreams only through `ctx.adapters.observability`;
//! an upstream that is not configured answers "not configured: set observability.<x>.url".

use std::sync::Arc;

use crate::core::tool::{Tool, typed};

mod grafana;
mod logs;
mod metrics;
pub mod time;
mod traces;

pub fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        typed(metrics::QueryMetrics),
        typed(logs::SearchLogs),
        typed(traces::GetTrace),
        typed(traces::SearchTraces),
        typed(grafana::GetDashboardUrl),
        typed(grafana::Annotate),
    ]
}
