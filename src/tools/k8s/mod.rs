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
        typed(exec::ExecCommand),
        typed(apply::ApplyManifest),
        typed(delete::DeleteResource),
        typed(restart::RolloutRestart),
    ]
}
