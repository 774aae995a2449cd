//! Transports translate between a wire protocol and the dispatch core; nothing else.

pub mod approvals;
pub mod approvals_page;
pub mod http;
pub mod jsonrpc;
pub mod mcp;
pub mod webhooks;
