//! The caller of an HTTP request, as the inbound authentication layer (`auth::layer`) found it:
//! who (`Principal`) and how (whether a bearer token came with the request). The layer puts one
//! into the request's extensions; every surface (`/mcp`, `/rpc`, `/a2a`, `/api`) reads it from
//! there. It decides nothing: what a caller may do is the core's question.

use axum::extract::FromRequestParts;
use axum::http::Extensions;
use axum::http::request::Parts;
use axum::response::Response;

use super::AuthError;
use crate::core::principal::Principal;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    /// Whether the request carried a bearer token: anonymous loopback callers (local mode)
    /// carry none, and may not read the approval queue.
    pub has_token: bool,
}

impl Caller {
    /// The caller the layer put into a request's extensions; `None` on a route without it.
    pub fn of(extensions: &Extensions) -> Option<&Caller> {
        extensions.get::<Caller>()
    }
}

/// A handler's `Caller` argument. Missing only on a route without the layer: refused (401)
/// rather than guessed.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Caller::of(&parts.extensions)
            .cloned()
            .ok_or_else(|| AuthError::Missing.response())
    }
}
