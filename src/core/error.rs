//! Errors of the dispatch core. A `ToolError` is what a model reads when a tool ran (or was
//! refused) and failed: it must say what to change, never carry a stack or a secret.

use serde::Serialize;

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
}

#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[error("{message}")]
pub struct ToolError {
    pub kind: ToolErrorKind,
    pub message: String,
}

impl ToolError {
    pub fn new(kind: ToolErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
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
