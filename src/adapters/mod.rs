//! Upstream adapters, one module each: a trait the tools use and a real implementation.
//! Adapters import nothing of toolgate's but errors and config.

pub mod argocd;
pub mod cognee;
pub mod embeddings;
pub mod github;
pub mod grafana;
pub mod http;
pub mod jira;
pub mod kube;
pub mod loki;
pub mod nats;
pub mod observability;
pub mod openbao;
pub mod opsgenie;
pub mod pager;
pub mod pagerduty;
pub mod prometheus;
pub mod prquest;
pub mod tempo;
pub mod ticket;

use std::sync::Arc;

/// Every adapter the tools can reach, built once from the config.
pub struct Adapters {
    pub kube: Arc<dyn kube::Kube>,
    /// Prometheus, Loki, Tempo, Grafana (each only when configured).
    pub observability: Arc<observability::Observability>,
    /// OpenBao (KV v2, PKI), when the config has an `openbao` section.
    pub openbao: Option<Arc<openbao::OpenBao>>,
    /// Cognee, the queue of adds made while it was down, and the fallback index (`memory.*`).
    pub memory: Arc<cognee::Memory>,
    /// ArgoCD (`argocd.*` tools, the poller), when the config has an `argocd` section.
    pub argocd: Option<Arc<argocd::ArgoCd>>,
    /// GitHub's REST API, when the config has a `review` section.
    pub github: Option<Arc<github::GitHub>>,
    /// PR-QUEST, when `review.prquest.url` is set.
    pub prquest: Option<Arc<prquest::PrQuest>>,
    /// Ticket providers (`ticket.*`, the facts consumer), when `ticketing` is configured.
    pub ticketing: Option<Arc<ticket::Ticketing>>,
    /// Pagers (`page.*`, the facts consumer), when `paging` is configured.
    pub paging: Option<Arc<pager::Paging>>,
}

impl Adapters {
    /// Only Kubernetes; every other upstream unconfigured. Adapters added later default here,
    /// so a caller that needs one more sets just that field: `Adapters { x, ..Adapters::new(kube) }`.
    pub fn new(kube: Arc<dyn kube::Kube>) -> Adapters {
        Adapters {
            kube,
            observability: Default::default(),
            openbao: None,
            memory: Default::default(),
            argocd: None,
            github: None,
            prquest: None,
            ticketing: None,
            paging: None,
        }
    }
}
