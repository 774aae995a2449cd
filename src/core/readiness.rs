//! What `/readyz` reports: one entry per integration (`ok`, `degraded`, `down`, the breaker's
//! state, last error, last success). Only the store decides readiness: without it nothing can
//! be audited, so the replica must leave the load balancer (503). A cluster or an observability
//! upstream that is down makes the replica `degraded` but ready (200): one bad cluster must not
//! take every replica out of service. Clusters are probed; HTTP upstreams (the approvals
//! webhook included, and what `extra` brings: the identity provider, the intents sink) report
//! what their last requests saw (a probe per readiness check would hammer them); the ArgoCD
//! poller reports its last cycle (`argocd/poller`: `last_poll_at`, and `degraded` when it failed).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::adapters::http::{BreakerState, Health};
use crate::core::dispatch::Dispatcher;

/// How long the cluster probes may take in all.
const PROBE_LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// `ready`, `degraded` (ready, some integration is not ok) or `not_ready`.
    pub status: &'static str,
    pub integrations: BTreeMap<String, Integration>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status != "not_ready"
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Integration {
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
    /// A poller's last cycle, whatever its outcome (`state` says the outcome).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_poll_at: Option<String>,
    /// What a signal source adds (the watch: connected, last event, last reconcile).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Map<String, serde_json::Value>>,
}

impl From<Health> for Integration {
    fn from(h: Health) -> Self {
        Self {
            state: h.state,
            breaker: Some(h.breaker),
            last_error: h.last_error,
            last_error_at: h.last_error_at,
            last_success_at: h.last_success_at,
            last_poll_at: None,
            detail: None,
        }
    }
}

impl From<crate::adapters::argocd::PollHealth> for Integration {
    fn from(p: crate::adapters::argocd::PollHealth) -> Self {
        Self {
            state: p.state,
            breaker: None,
            last_error: p.last_error,
            last_error_at: p.last_error_at,
            last_success_at: p.last_success_at,
            last_poll_at: p.last_poll_at,
            detail: None,
        }
    }
}

impl Integration {
    /// A signal source's entry: its state, last error and figures of its own.
    pub fn signal(
        state: &'static str,
        error: Option<String>,
        detail: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        Self {
            detail: Some(detail),
            ..Self::plain(state, error)
        }
    }

    pub fn plain(state: &'static str, error: Option<String>) -> Self {
        Self {
            state,
            breaker: None,
            last_error: error,
            last_error_at: None,
            last_success_at: None,
            last_poll_at: None,
            detail: None,
        }
    }
}

impl Dispatcher {
    /// Probe the store and the clusters, collect every upstream's health. `extra` adds
    /// integrations the core does not hold (the identity provider, the intents sink).
    pub async fn readiness(&self, extra: Vec<Health>) -> Readiness {
        self.readiness_with(extra, Vec::new()).await
    }

    /// Same, with entries of signal sources (the Kubernetes watch) under their own names.
    pub async fn readiness_with(
        &self,
        extra: Vec<Health>,
        signals: Vec<(String, Integration)>,
    ) -> Readiness {
        let mut integrations = BTreeMap::new();
        let store = match tokio::time::timeout(PROBE_LIMIT, self.gate().store.ping()).await {
            Ok(Ok(())) => Integration::plain("ok", None),
            Ok(Err(e)) => Integration::plain("down", Some(e.to_string())),
            Err(_) => {
                Integration::plain("down", Some("the store did not answer within 5 s".into()))
            }
        };
        let store_ok = store.state == "ok";
        integrations.insert("store".to_string(), store);
        let kube = self.adapters().kube.clone();
        match tokio::time::timeout(PROBE_LIMIT, kube.readiness()).await {
            Ok(clusters) => {
                for c in clusters {
                    let mut entry = c
                        .health
                        .map(Integration::from)
                        .unwrap_or_else(|| Integration::plain("ok", None));
                    if let Some(error) = c.error {
                        entry.state = "down";
                        entry.last_error = Some(error);
                    }
                    integrations.insert(format!("kubernetes/{}", c.name), entry);
                }
            }
            Err(_) => {
                integrations.insert(
                    "kubernetes".to_string(),
                    Integration::plain("down", Some("clusters did not answer within 5 s".into())),
                );
            }
        }
        let webhook = self.gate().webhook.as_ref().map(|w| w.health());
        let openbao = self.adapters().openbao.as_ref().map(|o| o.health());
        // ArgoCD: its API (breaker, last requests) and the poller's last cycle. A poller that
        // has not finished a cycle yet is not a fault.
        if let Some(argocd) = &self.adapters().argocd {
            let poll = argocd.poll_status().health();
            if argocd.config().poll {
                let mut entry = Integration::from(poll);
                if entry.state == "pending" {
                    entry.state = "ok";
                }
                integrations.insert("argocd/poller".to_string(), entry);
            }
        }
        let argocd = self.adapters().argocd.as_ref().map(|a| a.health());
        let memory = self.adapters().memory.health();
        let embeddings = self.knowledge().and_then(|k| k.embeddings_health());
        let topics = self.knowledge().and_then(|k| k.topics_health());
        let github = self.adapters().github.as_ref().map(|g| g.health());
        let prquest = self.adapters().prquest.as_ref().map(|p| p.health());
        let tickets = self.adapters().ticketing.iter().flat_map(|t| t.health());
        let pages = self.adapters().paging.iter().flat_map(|p| p.health());
        for h in self
            .adapters()
            .observability
            .health()
            .into_iter()
            .chain(openbao)
            .chain(argocd)
            .chain(webhook)
            .chain(memory)
            .chain(embeddings)
            .chain(topics)
            .chain(github)
            .chain(prquest)
            .chain(tickets)
            .chain(pages)
            .chain(extra)
        {
            integrations.insert(h.name.clone(), Integration::from(h));
        }
        integrations.extend(signals);
        let status = if !store_ok {
            "not_ready"
        } else if integrations.values().all(|i| i.state == "ok") {
            "ready"
        } else {
            "degraded"
        };
        Readiness {
            status,
            integrations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::Adapters;
    use crate::adapters::kube::{Cluster, ClusterReadiness, Kube, KubeError};
    use crate::core::approval::Gate;
    use crate::core::registry::Registry;
    use futures::future::BoxFuture;
    use std::sync::Arc;

    /// Two clusters: `good` answers, `bad` does not.
    struct TwoClusters;

    impl Kube for TwoClusters {
        fn cluster_names(&self) -> Vec<String> {
            vec!["good".into(), "bad".into()]
        }
        fn default_cluster(&self) -> String {
            "good".into()
        }
        fn log_tail_lines(&self) -> i64 {
            500
        }
        fn readiness(&self) -> BoxFuture<'_, Vec<ClusterReadiness>> {
            Box::pin(async {
                vec![
                    ClusterReadiness {
                        name: "good".into(),
                        error: None,
                        health: None,
                        version: Some("v1.32.0".into()),
                    },
                    ClusterReadiness {
                        name: "bad".into(),
                        error: Some("cluster `bad`: the API server is unreachable".into()),
                        health: None,
                        version: None,
                    },
                ]
            })
        }
        fn cluster<'a>(
            &'a self,
            name: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Cluster, KubeError>> {
            Box::pin(async move {
                Err(KubeError::UnknownCluster {
                    name: name.unwrap_or_default().into(),
                    known: vec![],
                })
            })
        }
    }

    #[tokio::test]
    async fn a_bad_cluster_degrades_and_only_the_store_makes_it_not_ready() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::connect(&format!(
            "sqlite://{}",
            dir.path().join("t.db").display()
        ))
        .await
        .expect("store");
        let gate = Gate::new(
            Arc::new(crate::core::policy::PolicyHandle::new(
                crate::core::policy::PolicySet::builtin_default(),
                None,
            )),
            store.clone(),
            "http://toolgate.test".into(),
            None,
        );
        let adapters = Adapters::new(Arc::new(TwoClusters));
        let d = Dispatcher::new(
            Arc::new(Registry::new(Vec::new()).expect("registry")),
            Arc::new(adapters),
            crate::config::Config::default().tools,
            gate,
            &crate::config::LimitsConfig::OFF,
        );
        let r = d.readiness(Vec::new()).await;
        assert!(r.is_ready());
        assert_eq!(r.status, "degraded");
        assert_eq!(r.integrations["store"].state, "ok");
        assert_eq!(r.integrations["kubernetes/good"].state, "ok");
        let bad = &r.integrations["kubernetes/bad"];
        assert_eq!(bad.state, "down");
        assert!(
            bad.last_error
                .as_deref()
                .unwrap_or_default()
                .contains("unreachable")
        );

        store.close().await;
        let r = d.readiness(Vec::new()).await;
        assert!(!r.is_ready(), "no store, no audit: not ready");
        assert_eq!(r.status, "not_ready");
        assert_eq!(r.integrations["store"].state, "down");
    }
}
