//! Integration tests: one binary, one module per area.
mod cli;
mod deploy;
mod fake_kube;
mod harness;
mod k8s_tools;
mod kubectl;
mod mcp;
mod python_sdk;
