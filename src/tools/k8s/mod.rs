//! k8s.* tools: read (get, list, logs, describe, events, list_clusters) and write (exec, apply, delete,
//! rollout restart) on any configured cluster. Tools reach Kubernetes only through
//! `ctx.adapters.kube`; they never build clients, and never return Secret values. Each tool
//! settles its arguments before policy judges the call (`target::settle`): policy sees the
//! cluster, namespace, kind and name that will run, never what was typed.

use std::sync::Arc;

use crate::core::tool::{Tool, typed};

pub use apply::redact_manifest;

mod apply;
mod clusters;
mod delete;
mod describe;
mod events;
mod exec;
mod get;
mod list;
mod logs;
pub(crate) mod preview;
pub mod redact;
mod restart;
pub mod rows;
pub(crate) mod target;
pub mod view;

pub fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        typed(get::GetResource),
        typed(list::ListResources::default()),
        typed(logs::GetLogs),
        typed(describe::DescribeResource),
        typed(events::GetEvents),
        typed(clusters::ListClusters),
        typed(exec::ExecCommand),
        typed(apply::ApplyManifest),
        typed(delete::DeleteResource),
        typed(restart::RolloutRestart),
    ]
}
