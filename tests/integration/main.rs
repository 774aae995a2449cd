//! Integration tests: one binary, one module per area.
mod approvals_api;
mod approvals_web;
mod authz;
mod cli;
mod deploy;
mod fake_kube;
mod gate;
mod harness;
mod jsonrpc;
mod k8s_previews;
mod k8s_tools;
mod kubectl;
mod mcp;
mod postgres;
mod python_sdk;
mod service_token;
mod zitadel;
