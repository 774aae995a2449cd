//! Transports translate between a wire protocol and the dispatch core; nothing else.

pub mod http;
pub mod mcp;
