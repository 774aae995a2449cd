//! `k8s.list_clusters`: the configured clusters, each probed once (its version endpoint) with
//! its reachability, server version and breaker state. A cluster that is down is a row saying
//! so, never an error of the call.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::context::ToolContext;
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::tool::{Risk, Target, TypedTool};

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListClustersParams {
    /// Only this cluster (default: every configured one).
    pub cluster: Option<String>,
}

/// One cluster.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ClusterRow {
    /// The name calls pass as `cluster`.
    pub name: String,
    /// Used when a call names no cluster.
    pub default: bool,
    /// Its API server answered just now.
    pub reachable: bool,
    /// The API server's version (`v1.32.1`), when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why it did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The circuit breaker toolgate keeps for it: `closed`, `open`, `half_open`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListClustersOutput {
    pub clusters: Vec<ClusterRow>,
}

pub struct ListClusters;

impl TypedTool for ListClusters {
    type Params = ListClustersParams;
    type Output = ListClustersOutput;
    const NAME: &'static str = "k8s.list_clusters";
    const TOOLSET: &'static str = "k8s";
    const TITLE: &'static str = "List Kubernetes clusters";
    const DESCRIPTION: &'static str = "The clusters toolgate can reach (names for the `cluster` argument of every k8s tool), whether each answers now, its Kubernetes version and which one is the default.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;

    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut ListClustersParams,
    ) -> Result<Option<Target>, ToolError> {
        p.cluster = p.cluster.take().filter(|c| !c.trim().is_empty());
        if let Some(name) = &p.cluster {
            let known = ctx.adapters.kube.cluster_names();
            if !known.contains(name) {
                return Err(ToolError::new(
                    ToolErrorKind::NotFound,
                    format!(
                        "cluster `{name}` is not configured; clusters: {}",
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(Some(Target {
            cluster: p.cluster.clone(),
            ..Target::default()
        }))
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        p: ListClustersParams,
    ) -> Result<ListClustersOutput, ToolError> {
        let kube = &ctx.adapters.kube;
        let default = kube.default_cluster();
        let clusters = kube
            .readiness()
            .await
            .into_iter()
            .filter(|c| p.cluster.as_ref().is_none_or(|n| *n == c.name))
            .map(|c| ClusterRow {
                default: c.name == default,
                reachable: c.error.is_none(),
                version: c.version,
                error: c.error,
                breaker: c
                    .health
                    .and_then(|h| serde_json::to_value(h.breaker).ok())
                    .and_then(|v| v.as_str().map(String::from)),
                name: c.name,
            })
            .collect();
        Ok(ListClustersOutput { clusters })
    }
}
