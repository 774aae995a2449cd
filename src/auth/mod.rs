//! Who is calling over HTTP. An `Authenticator` turns request headers into a `Principal`; the
//! gate and the transports only see principals, so another mode (Zitadel) plugs in here.
//! `layer` is the one inbound authentication layer, which puts a request's `Caller` into it;
//! `page_login` the approvals page's OIDC sign-in. Nothing here decides what a principal may do with a tool (that is the core's).

pub mod caller;
pub mod config;
pub mod layer;
pub mod local;
pub mod oidc_discovery;
pub mod page_login;
pub mod service_token;
pub mod zitadel;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde_json::json;

use crate::core::principal::Principal;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials, and this surface needs some.
    #[error("authentication required: send `Authorization: Bearer <token>`")]
    Missing,
    /// Credentials given but not valid. The message never echoes the token.
    #[error("invalid bearer token")]
    Invalid,
    /// The identity provider could not be asked, so the token was not checked (→ 503).
    #[error("the identity provider is unavailable; try again shortly")]
    Unavailable,
}

impl AuthError {
    /// The HTTP answer for this error: 401 with `WWW-Authenticate`, or 503 with `Retry-After`.
    pub fn response(&self) -> Response {
        let (status, code) = match self {
            AuthError::Missing | AuthError::Invalid => {
                (StatusCode::UNAUTHORIZED, "unauthenticated")
            }
            AuthError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "auth_unavailable"),
        };
        let body = json!({"error": {"code": code, "message": self.to_string()}}).to_string();
        let json = (header::CONTENT_TYPE, "application/json");
        match self {
            AuthError::Unavailable => {
                (status, [(header::RETRY_AFTER, "5"), json], body).into_response()
            }
            _ => (status, [(header::WWW_AUTHENTICATE, "Bearer"), json], body).into_response(),
        }
    }
}

pub trait Authenticator: Send + Sync {
    /// The principal behind a request's headers.
    fn authenticate<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, Result<Principal, AuthError>>;

    /// The identity provider's breaker and last results, for `/readyz` (none for local tokens).
    fn health(&self) -> Option<crate::adapters::http::Health> {
        None
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_is_503_with_retry_after_and_the_rest_401_with_a_challenge() {
        let r = AuthError::Unavailable.response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
        for err in [AuthError::Missing, AuthError::Invalid] {
            let r = err.response();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        }
    }
}
