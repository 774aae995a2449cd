//! Transports translate between a wire protocol and the dispatch core; nothing else.

pub mod a2a;
pub mod answer_text;
pub mod approvals;
pub mod approvals_page;
pub mod config;
pub mod http;
pub mod inbound;
pub mod jsonrpc;
pub mod mcp;
pub mod mcp_direct;
pub mod mcp_resume;
pub mod mcp_tasks;
pub mod server;
pub mod sse_coalesce;
pub mod webhooks;
