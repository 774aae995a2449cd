//! `k8s.delete_resource`: delete one object, with kubectl's propagation policies.

use ::kube::api::{DeleteParams, PropagationPolicy};
use ::kube::core::Request;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::redact::sanitize;
use super::rows::at;
use super::target::{Omitted, target, tool_error};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, TypedTool};

/// What happens to dependents (pods of a ReplicaSet, ReplicaSets of a Deployment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Propagation {
    /// Delete dependents first, then the object.
    Foreground,
    /// Delete the object now and dependents in the background (the API default for most kinds).
    Background,
    /// Keep dependents, removing their owner reference.
    Orphan,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteArgs {
    /// Kind as kubectl accepts it: `pod`, `deploy`, `cm`, a CRD's short name, or `kind.group`.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Namespace; default: the cluster context's namespace. Ignored for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// `group/version` to pin when a kind exists in several.
    pub api_version: Option<String>,
    /// Foreground, Background or Orphan; default: the kind's API default.
    pub propagation_policy: Option<Propagation>,
    /// Seconds the object may take to terminate gracefully (0 = immediately).
    pub grace_period_seconds: Option<u32>,
    /// Check the deletion on the server without deleting anything (dryRun=All).
    #[serde(default)]
    pub dry_run: bool,
    /// Configured cluster name; default: the default cluster.
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeleteOutput {
    pub cluster: String,
    pub kind: String,
    pub api_version: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// True when nothing was deleted.
    pub dry_run: bool,
    /// `deleted`, or `deleting` while finalizers or graceful termination run.
    pub status: String,
    /// The object as the API server returned it (Secrets: key names and sizes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
}

pub struct DeleteResource;

impl TypedTool for DeleteResource {
    type Params = DeleteArgs;
    type Output = DeleteOutput;
    const NAME: &'static str = "k8s.delete_resource";
    const TITLE: &'static str = "Delete a Kubernetes object";
    const DESCRIPTION: &'static str = "Delete one object of any kind, like `kubectl delete`, with an optional propagation policy (Foreground, Background, Orphan) and grace period. Deleting a pod owned by a controller makes it recreate the pod; run with dry_run=true first to check.";
    const RISK: Risk = Risk::Write;
    const IDEMPOTENT: bool = true;

    async fn call(&self, ctx: &ToolContext, p: DeleteArgs) -> Result<DeleteOutput, ToolError> {
        let t = target(
            ctx,
            p.cluster.as_deref(),
            &p.kind,
            p.api_version.as_deref(),
            p.namespace.as_deref(),
            Omitted::DefaultNamespace,
        )
        .await?;
        let dp = DeleteParams {
            dry_run: p.dry_run,
            grace_period_seconds: p.grace_period_seconds,
            propagation_policy: p.propagation_policy.map(|pp| match pp {
                Propagation::Foreground => PropagationPolicy::Foreground,
                Propagation::Background => PropagationPolicy::Background,
                Propagation::Orphan => PropagationPolicy::Orphan,
            }),
            preconditions: None,
        };
        let client = t.cluster.client();
        let req = Request::new(t.url_path())
            .delete(&p.name, &dp)
            .map_err(|e| ToolError::internal(format!("cannot build the request: {e}")))?;
        let answer: Value = match t.cluster.write(client.request::<Value>(req)).await {
            Ok(a) => a,
            Err(e) if e.is_not_found() => return Err(t.not_found(&p.name).await),
            Err(e) => return Err(tool_error(e)),
        };
        // The API answers with the object (still present while finalizers run) or a Status.
        let (status, object) = if answer.get("kind").and_then(Value::as_str) == Some("Status") {
            ("deleted", None)
        } else {
            let mut v = answer;
            sanitize(&mut v);
            let pending = at(&v, &["metadata", "deletionTimestamp"]).is_some_and(|d| !d.is_null());
            (
                if pending && !p.dry_run {
                    "deleting"
                } else {
                    "deleted"
                },
                Some(v),
            )
        };
        Ok(DeleteOutput {
            cluster: t.cluster.name().to_string(),
            kind: t.kind.info.kind.clone(),
            api_version: t.kind.info.api_version(),
            name: p.name,
            namespace: t.namespace,
            dry_run: p.dry_run,
            status: status.into(),
            object,
        })
    }
}
