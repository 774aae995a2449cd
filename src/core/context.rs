//! What a tool gets besides its params: who calls, through which transport, the page to
//! continue from, and the adapters (upstreams) it may use.

use std::sync::Arc;

use crate::adapters::Adapters;
use crate::core::principal::Principal;

/// Where a cut or paged answer continues: decoded from the core's `cursor` argument.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Upstream continuation token to fetch from (e.g. the API server's `continue`);
    /// `None` = from the start. Budgeted tools must fetch from here when it is set,
    /// in preference to a `continue` argument of their own.
    pub upstream: Option<String>,
    /// Items of that upstream page already delivered; the core skips them itself.
    pub skip: usize,
}

/// Per-call context handed to a tool.
pub struct ToolContext {
    pub principal: Principal,
    pub transport: &'static str,
    pub request_id: String,
    pub page: Page,
    pub adapters: Arc<Adapters>,
}
