//! What a tool gets besides its params: who calls, through which transport, the page to
//! continue from, the adapters (upstreams) it may use, a read-only view of approvals, and a
//! way to report progress.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::adapters::Adapters;
use crate::core::error::ToolError;
use crate::core::principal::Principal;

/// Where a cut or paged answer continues: decoded from the core's `cursor` argument.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Upstream continuation token to fetch from (e.g. the API server's `continue`);
    /// `None` = from the start. Budgeted tools must fetch from here when it is set,
    /// in preference to a `continue` argument of their own.
    pub upstream: Option<String>,
    /// Items of that upstream page already delivered; the core skips them itself, unless the
    /// tool says where its items came from (`core::budget::Anchor`).
    pub skip: usize,
    /// The output budget of this answer, in bytes (`None`: the tool has no budget). A tool
    /// that reads its upstream in pages reads only about what fits.
    pub max_bytes: Option<usize>,
}

/// Read-only access to approval requests, for the `approval.status` tool. Tools never change
/// approvals: deciding is the core's job.
pub trait ApprovalLookup: Send + Sync {
    /// The request as `viewer` may see it (state, decisions, result), or NotFound when it does
    /// not exist or `viewer` may not see it (neither its requester, an approver of it, nor an
    /// auditor).
    fn status<'a>(
        &'a self,
        viewer: &'a Principal,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Value, ToolError>>;
    /// Wait until the request changes (or `timeout` passes); returns the new status.
    fn wait_change<'a>(
        &'a self,
        viewer: &'a Principal,
        id: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Value, ToolError>>;
}

/// Progress reports of a long call (`progress`, `total`, message); the transport turns them
/// into its own notifications (MCP `notifications/progress`).
pub type ProgressSink = Arc<dyn Fn(f64, Option<f64>, String) + Send + Sync>;

/// Per-call context handed to a tool.
pub struct ToolContext {
    pub principal: Principal,
    pub transport: &'static str,
    pub request_id: String,
    pub page: Page,
    pub adapters: Arc<Adapters>,
    /// Present when the server has an approval queue.
    pub approvals: Option<Arc<dyn ApprovalLookup>>,
    /// Present when the caller asked for progress notifications.
    pub progress: Option<ProgressSink>,
    /// The embedded knowledge index, when `knowledge:` is configured.
    pub knowledge: Option<Arc<crate::knowledge::Knowledge>>,
    /// Pull request review (analyses, steps, XP), when `review:` is configured.
    pub review: Option<Arc<crate::review::Review>>,
}
