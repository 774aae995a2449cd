//! `k8s.rollout_restart`: restart a Deployment, StatefulSet or DaemonSet the way
//! `kubectl rollout restart` does, by stamping the pod template with `restartedAt`.

use ::kube::api::{Api, DynamicObject, Patch, PatchParams};
use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::apply::FIELD_MANAGER;
use super::redact::sanitize;
use super::rows::at;
use super::target::{Omitted, target, tool_error};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, TypedTool};

/// The annotation kubectl sets (kube's `restart()` uses another one).
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
const RESTARTABLE: &[&str] = &["Deployment", "StatefulSet", "DaemonSet"];

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartParams {
    /// `deployment` (`deploy`), `statefulset` (`sts`) or `daemonset` (`ds`).
    pub kind: String,
    /// Workload name.
    pub name: String,
    /// Namespace; default: the cluster context's namespace.
    pub namespace: Option<String>,
    /// Check the patch on the server without restarting anything (dryRun=All).
    #[serde(default)]
    pub dry_run: bool,
    /// Configured cluster name; default: the default cluster.
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RestartOutput {
    pub cluster: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    /// True when nothing was changed.
    pub dry_run: bool,
    /// Value written to the pod template's `kubectl.kubernetes.io/restartedAt` annotation.
    pub restarted_at: String,
    /// The workload after the patch.
    pub object: Value,
}

pub struct RolloutRestart;

impl TypedTool for RolloutRestart {
    type Params = RestartParams;
    type Output = RestartOutput;
    const NAME: &'static str = "k8s.rollout_restart";
    const TITLE: &'static str = "Restart a workload";
    const DESCRIPTION: &'static str = "Restart all pods of a Deployment, StatefulSet or DaemonSet with a rolling update, exactly like `kubectl rollout restart`. Watch progress afterwards with k8s.describe_resource on the workload.";
    const RISK: Risk = Risk::Write;

    async fn call(&self, ctx: &ToolContext, p: RestartParams) -> Result<RestartOutput, ToolError> {
        let t = target(
            ctx,
            p.cluster.as_deref(),
            &p.kind,
            None,
            p.namespace.as_deref(),
            Omitted::DefaultNamespace,
        )
        .await?;
        let kind = t.kind.info.kind.clone();
        if t.kind.info.group != "apps" || !RESTARTABLE.contains(&kind.as_str()) {
            return Err(ToolError::invalid_arguments(format!(
                "{} cannot be restarted; kind must be deployment, statefulset or daemonset",
                t.kind.info.qualified()
            )));
        }
        let current = t.get(&p.name).await?;
        if at(&current, &["spec", "paused"]).and_then(Value::as_bool) == Some(true) {
            return Err(ToolError::invalid_arguments(format!(
                "{} is paused; resume the rollout first (set spec.paused=false)",
                t.describe(&p.name)
            )));
        }
        let namespace = t.namespace.clone().unwrap_or_default();
        let restarted_at = now_rfc3339();
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: restarted_at}}}}});
        let mut pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        if p.dry_run {
            pp = pp.dry_run();
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(t.cluster.client(), &namespace, &t.kind.resource);
        let obj = t
            .cluster
            .write(api.patch(&p.name, &pp, &Patch::Merge(&patch)))
            .await
            .map_err(tool_error)?;
        let mut object = serde_json::to_value(&obj).unwrap_or(Value::Null);
        sanitize(&mut object);
        Ok(RestartOutput {
            cluster: t.cluster.name().to_string(),
            kind,
            name: p.name,
            namespace,
            dry_run: p.dry_run,
            restarted_at,
            object,
        })
    }
}

/// Now as kubectl writes it: RFC 3339, whole seconds, UTC.
fn now_rfc3339() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339_seconds() {
        let s = super::now_rfc3339();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.parse::<jiff::Timestamp>().is_ok(), "{s}");
    }
}
