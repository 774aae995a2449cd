//! The adapter's one error type. Messages say what happened in ArgoCD's terms and what to do;
//! ArgoCD's own `message` is kept (it names applications and reasons, never credentials).

/// How a tool reports an [`ArgoCdError`] (the core's `ToolErrorKind` of the same name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    InvalidArguments,
    NotFound,
    Forbidden,
    Upstream,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgoCdError {
    #[error(
        "ArgoCD is not configured: add an argocd section (url, auth.bearer_token) to toolgate's config"
    )]
    NotConfigured,
    /// Unreachable, timing out, 5xx, or the breaker is open after repeated failures.
    #[error("ArgoCD is down: {0}")]
    Down(String),
    /// 404.
    #[error(
        "{what} was not found in ArgoCD (HTTP 404); list applications with argocd.list_applications"
    )]
    NotFound { what: String },
    /// 403: ArgoCD answers it also for an application that exists but is outside the account's
    /// RBAC, and for one that does not exist when the account may not list it.
    #[error(
        "ArgoCD refused toolgate's account access to {what} (HTTP 403): {message}; the application may not exist, or toolgate's ArgoCD role does not grant it"
    )]
    PermissionDenied { what: String, message: String },
    /// 401: the token (or login) was refused.
    #[error(
        "ArgoCD refused toolgate's credentials (HTTP 401): {0}; check argocd.auth.bearer_token or argocd.session"
    )]
    Unauthorized(String),
    /// Another 4xx (400 invalid request, 409 an operation already running, …).
    #[error("ArgoCD refused to {action} {what} (HTTP {status}): {message}")]
    Rejected {
        action: &'static str,
        what: String,
        status: u16,
        message: String,
    },
    /// An application (or a project asked for) outside `argocd.projects`.
    #[error(
        "{what} is in ArgoCD project `{project}`, which toolgate does not serve (argocd.projects: {allowed})"
    )]
    OutsideProjects {
        what: String,
        project: String,
        allowed: String,
    },
    /// A 2xx answer that is not what the API documents.
    #[error("ArgoCD sent an unexpected answer: {0}")]
    BadAnswer(String),
}

impl ArgoCdError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ArgoCdError::NotFound { .. } => ErrorClass::NotFound,
            ArgoCdError::PermissionDenied { .. }
            | ArgoCdError::Unauthorized(_)
            | ArgoCdError::OutsideProjects { .. } => ErrorClass::Forbidden,
            ArgoCdError::Rejected { status, .. } if *status == 400 || *status == 409 => {
                ErrorClass::InvalidArguments
            }
            ArgoCdError::NotConfigured
            | ArgoCdError::Down(_)
            | ArgoCdError::Rejected { .. }
            | ArgoCdError::BadAnswer(_) => ErrorClass::Upstream,
        }
    }
}

/// ArgoCD's error body (`{error, code, message}`, grpc-gateway's `runtimeError`) as one bounded
/// line: `message`, else `error`, else the raw text.
pub fn error_message(body: &[u8]) -> String {
    let parsed = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            ["message", "error"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|m| m.as_str()).map(str::to_string))
                .filter(|m| !m.trim().is_empty())
        });
    let text = parsed.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        "no error message".into()
    } else {
        line.chars().take(500).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argocd_error_bodies_become_one_line() {
        assert_eq!(
            error_message(
                br#"{"error":"applications.argoproj.io \"x\" not found","code":5,"message":"applications.argoproj.io \"x\" not found"}"#
            ),
            "applications.argoproj.io \"x\" not found"
        );
        assert_eq!(
            error_message(br#"{"code":7,"error":"permission denied"}"#),
            "permission denied"
        );
        assert_eq!(
            error_message(b"upstream\n connect error"),
            "upstream connect error"
        );
        assert_eq!(error_message(b""), "no error message");
        let conflict = ArgoCdError::Rejected {
            action: "sync",
            what: "application web".into(),
            status: 409,
            message: "another operation is already in progress".into(),
        };
        assert_eq!(conflict.class(), ErrorClass::InvalidArguments);
        assert_eq!(ArgoCdError::Down("x".into()).class(), ErrorClass::Upstream);
    }
}
