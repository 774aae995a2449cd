//! The adapter's one error type. Every message says what happened in OpenBao's terms and what
//! to do; none carries a token, a JWT or a secret value (OpenBao's own error strings are kept:
//! they name paths and reasons, never values).

use super::path::PathError;

/// How a tool reports an [`OpenBaoError`] (the core's `ToolErrorKind` of the same name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    InvalidArguments,
    NotFound,
    Forbidden,
    Upstream,
    RateLimited,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenBaoError {
    #[error(
        "OpenBao is not configured: add an openbao section (address, auth) to toolgate's config"
    )]
    NotConfigured,
    /// The PKI engine's mount is not configured.
    #[error("certificates cannot be issued: set openbao.pki.mount (e.g. pki) in toolgate's config")]
    PkiNotConfigured,
    /// The transit key (fingerprints, sealed values) is not configured.
    #[error(
        "secret values cannot be fingerprinted or sealed: set openbao.transit (mount, key) in toolgate's config and create the key in OpenBao"
    )]
    TransitNotConfigured,
    #[error(transparent)]
    BadPath(#[from] PathError),
    /// 503 `Vault is sealed`.
    #[error(
        "OpenBao is sealed (HTTP 503): nothing can be read or written until an operator unseals it"
    )]
    Sealed,
    /// Unreachable, timing out, 5xx, or the breaker is open after repeated failures.
    #[error("OpenBao is down: {0}")]
    Down(String),
    /// 403 on a path.
    #[error(
        "OpenBao denied toolgate permission to {action} {what} (HTTP 403): toolgate's OpenBao policy does not grant it; ask for the capability on {api_path}"
    )]
    PermissionDenied {
        action: &'static str,
        what: String,
        api_path: String,
    },
    /// 404: missing, or (OpenBao answers alike) not visible to toolgate's policy.
    #[error(
        "{what} was not found in OpenBao (HTTP 404); OpenBao answers 404 also when toolgate's policy may not {action} it, so check the path and the policy"
    )]
    NotFound { action: &'static str, what: String },
    #[error("OpenBao is rate limiting toolgate (HTTP 429); retry in a few seconds")]
    RateLimited,
    /// 400 `check-and-set parameter did not match the current version`.
    #[error(
        "check-and-set failed on {what}: the write expected {expected}, but the secret has changed; read its metadata for the current version and write again with cas set to it"
    )]
    CasMismatch { what: String, expected: String },
    /// Another 4xx: OpenBao's own message.
    #[error("OpenBao refused to {action} {what} (HTTP {status}): {message}")]
    Rejected {
        action: &'static str,
        what: String,
        status: u16,
        message: String,
    },
    /// toolgate could not log in (or its fixed token was refused).
    #[error("toolgate cannot log in to OpenBao: {0}")]
    Login(String),
    /// A 2xx answer that is not what the API documents.
    #[error("OpenBao sent an unexpected answer: {0}")]
    BadAnswer(String),
}

impl OpenBaoError {
    /// The tool-error kind this maps to.
    pub fn class(&self) -> ErrorClass {
        match self {
            OpenBaoError::BadPath(_) | OpenBaoError::CasMismatch { .. } => {
                ErrorClass::InvalidArguments
            }
            OpenBaoError::Rejected { status, .. } if *status == 400 => ErrorClass::InvalidArguments,
            OpenBaoError::NotFound { .. } => ErrorClass::NotFound,
            OpenBaoError::PermissionDenied { .. } => ErrorClass::Forbidden,
            OpenBaoError::RateLimited => ErrorClass::RateLimited,
            OpenBaoError::NotConfigured
            | OpenBaoError::PkiNotConfigured
            | OpenBaoError::TransitNotConfigured
            | OpenBaoError::Sealed
            | OpenBaoError::Down(_)
            | OpenBaoError::Rejected { .. }
            | OpenBaoError::Login(_)
            | OpenBaoError::BadAnswer(_) => ErrorClass::Upstream,
        }
    }
}

/// OpenBao's `{"errors": [...]}` as one line (`1 error occurred: * permission denied` becomes
/// `permission denied`), bounded; the raw text when the body is not that.
pub fn error_message(body: &[u8]) -> String {
    let parsed: Option<Vec<String>> = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("errors")?.as_array().map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e.as_str())
                    .map(tidy)
                    .filter(|e| !e.is_empty())
                    .collect()
            })
        });
    let text = match parsed {
        Some(errors) if errors.is_empty() => "no error message".to_string(),
        Some(errors) => errors.join("; "),
        None => tidy(&String::from_utf8_lossy(body)),
    };
    text.chars().take(500).collect()
}

/// Whitespace collapsed, go-multierror's `N error(s) occurred:` and `*` bullets removed.
fn tidy(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut rest = &words[..];
    if rest.len() >= 3 && rest[1].starts_with("error") && rest[2] == "occurred:" {
        rest = &rest[3..];
    }
    rest.iter()
        .filter(|w| **w != "*")
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openbao_error_bodies_become_one_line() {
        assert_eq!(
            error_message(br#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#),
            "permission denied"
        );
        assert_eq!(
            error_message(br#"{"errors":["2 errors occurred:\n\t* a\n\t* b\n\n"]}"#),
            "a b"
        );
        assert_eq!(error_message(br#"{"errors":[]}"#), "no error message");
        assert_eq!(error_message(b"Vault is sealed\n"), "Vault is sealed");
    }

    #[test]
    fn each_error_has_its_class_and_says_what_to_do() {
        let nf = OpenBaoError::NotFound {
            action: "read",
            what: "secret/x".into(),
        };
        assert_eq!(nf.class(), ErrorClass::NotFound);
        assert!(
            nf.to_string().contains("check the path and the policy"),
            "{nf}"
        );
        let cas = OpenBaoError::CasMismatch {
            what: "secret/x".into(),
            expected: "version 3".into(),
        };
        assert_eq!(cas.class(), ErrorClass::InvalidArguments);
        assert!(
            cas.to_string()
                .starts_with("check-and-set failed on secret/x: the write expected version 3")
        );
        assert_eq!(OpenBaoError::Sealed.class(), ErrorClass::Upstream);
        assert!(
            OpenBaoError::Sealed
                .to_string()
                .starts_with("OpenBao is sealed")
        );
        assert_eq!(OpenBaoError::RateLimited.class(), ErrorClass::RateLimited);
    }
}
