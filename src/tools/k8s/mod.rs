//! k8s.* tools: read (get, list, logs, describe, events) and write (exec, apply, delete,
//! rollout restart) on any configured cluster. Tools reach Kubernetes only through
//! `ctx.adapters.kube`; they never build clients, and never return Secret values.

use std::sync::Arc;

use crate::core::tool::{Tool, typed};

pub use apply::redact_manifest;

mod apply;
mod delete;
mod describe;
mod events;
mod exec;
mod get;
mod list;
mod logs;
mod preview;
mod prune;
pub mod redact;
mod restart;
pub mod rows;
mod target;

pub fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        typed(get::GetResource),
        typed(list::ListResources),
        typed(logs::GetLogs),
        typed(describe::DescribeResource),
        typed(events::GetEvents),
        // Write tools: policy must see the namespace the call will really touch.
        Arc::new(DefaultNamespace(typed(exec::ExecCommand))),
        Arc::new(DefaultNamespace(typed(apply::ApplyManifest))),
        Arc::new(DefaultNamespace(typed(delete::DeleteResource))),
        Arc::new(DefaultNamespace(typed(restart::RolloutRestart))),
    ]
}

/// A k8s tool whose target, when the call names no namespace, gets the one the cluster would
/// use (the kubeconfig context's): a delete in a `prod` default namespace is judged as one.
struct DefaultNamespace(Arc<dyn Tool>);

impl Tool for DefaultNamespace {
    fn spec(&self) -> &crate::core::tool::ToolSpec {
        self.0.spec()
    }

    fn invoke<'a>(
        &'a self,
        ctx: &'a crate::core::context::ToolContext,
        args: serde_json::Value,
    ) -> futures::future::BoxFuture<'a, Result<serde_json::Value, crate::core::error::ToolError>>
    {
        self.0.invoke(ctx, args)
    }

    fn target(&self, args: &serde_json::Value) -> crate::core::tool::Target {
        self.0.target(args)
    }

    fn resolve_target<'a>(
        &'a self,
        ctx: &'a crate::core::context::ToolContext,
        args: &'a serde_json::Value,
    ) -> futures::future::BoxFuture<'a, crate::core::tool::Target> {
        Box::pin(async move {
            let mut t = self.0.target(args);
            if let Ok(cluster) = ctx.adapters.kube.cluster(t.cluster.as_deref()).await {
                if t.namespace.is_none() {
                    t.namespace = Some(cluster.default_namespace().to_string());
                }
                t.cluster.get_or_insert_with(|| cluster.name().to_string());
            }
            t
        })
    }

    fn redact_args(&self, args: &serde_json::Value) -> serde_json::Value {
        self.0.redact_args(args)
    }

    fn preview<'a>(
        &'a self,
        ctx: &'a crate::core::context::ToolContext,
        args: &'a serde_json::Value,
    ) -> futures::future::BoxFuture<
        'a,
        Result<Option<crate::core::tool::Preview>, crate::core::error::ToolError>,
    > {
        self.0.preview(ctx, args)
    }

    fn target_version<'a>(
        &'a self,
        ctx: &'a crate::core::context::ToolContext,
        args: &'a serde_json::Value,
    ) -> futures::future::BoxFuture<'a, Result<Option<String>, crate::core::error::ToolError>> {
        self.0.target_version(ctx, args)
    }
}
