//! obs.* tools: metrics (Prometheus), logs (Loki), traces (Tempo), dashboards and
//! annotations (Grafana). Tools reach upstreams only through `ctx.adapters.observability`;
//! an upstream that is not configured answers "not configured: set observability.<x>.url".

use std::sync::Arc;

use crate::adapters::observability::ObsError;
use crate::core::error::{ToolError, ToolErrorKind};
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

/// How an observability upstream's failure reads to the model (the adapter knows no tool errors).
impl From<ObsError> for ToolError {
    fn from(e: ObsError) -> Self {
        let kind = match &e {
            ObsError::NotConfigured(_) | ObsError::Unavailable { .. } => ToolErrorKind::Upstream,
            ObsError::Rejected { .. } | ObsError::Unsupported { .. } => {
                ToolErrorKind::InvalidArguments
            }
            ObsError::Unauthorized { .. } => ToolErrorKind::Forbidden,
            ObsError::NotFound { .. } => ToolErrorKind::NotFound,
            ObsError::BadAnswer { .. } => ToolErrorKind::Upstream,
        };
        ToolError::new(kind, e.to_string())
    }
}
