//! toolgate: a tool server for LLM agents doing SRE work.
//!
//! Transports (MCP stdio/HTTP, later JSON-RPC and A2A) translate only; every call goes through
//! [`core::dispatch::Dispatcher`], which owns lookup, validation, policy, timeouts and output budgets.

pub mod adapters;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod core;
pub mod incidents;
pub mod integrations;
pub mod intents;
pub mod knowledge;
pub mod metrics;
pub mod review;
pub mod store;
pub mod telemetry;
pub mod tool_schemas;
pub mod tools;
pub mod transport;
