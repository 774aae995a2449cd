//! Errors of the dispatch core. A `ToolError` is what a model reads when a tool ran (or was
//! refused) and failed: it must say what to change, never carry a stack or a secret.

use serde::Serialize;

use crate::core::rate_limit::RateLimited;

/// Machine-readable class of a tool error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolErrorKind {
    /// Arguments failed validation; nothing ran.
    InvalidArguments,
    /// The target does not exist (namespace, object, container, cluster...).
    NotFound,
    /// The call needs a human approval that cannot be obtained here.
    ApprovalRequired,
    /// Refused by policy or by the upstream's authorization.
    Forbidden,
    /// An upstream (Kubernetes API, Prometheus...) failed or is unreachable.
    Upstream,
    /// The tool did not answer in time.
    Timeout,
    /// The answer does not fit the output budget and cannot be cut.
    OutputTooLarge,
    /// A bug or an unexpected condition inside toolgate.
    Internal,
    /// The principal passed a rate limit; nothing ran. `rate_limit` says when to retry.
    RateLimited,
}

#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[error("{message}")]
pub struct ToolError {
    pub kind: ToolErrorKind,
    pub message: String,
    /// Set with `RateLimited`: which limit, and when to retry (transports answer 429).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimited>,
}

impl ToolError {
    pub fn new(kind: ToolErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            rate_limit: None,
        }
    }
    /// A call refused by `limited` for principal `sub`.
    pub fn rate_limited(sub: &str, limited: RateLimited) -> Self {
        Self {
            kind: ToolErrorKind::RateLimited,
            message: limited.message(sub),
            rate_limit: Some(limited),
        }
    }
    pub fn invalid_arguments(message: impl Into<String>) -> Self {
        Self::new(ToolErrorKind::InvalidArguments, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ToolErrorKind::NotFound, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ToolErrorKind::Forbidden, message)
    }
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(ToolErrorKind::Upstream, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ToolErrorKind::Internal, message)
    }
}
