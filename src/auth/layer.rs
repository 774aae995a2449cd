//! The one inbound authentication layer (a tower layer) of `/mcp`, `/rpc`, `/a2a` and `/api`:
//! it turns a request's credentials into a `Caller` (principal, token or not) in the request's
//! extensions, checks the
//! surface's permission, audits refusals under the surface's transport label, and answers a
//! refusal in the surface's own error shape. It must not decide anything about a tool call.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;
use futures::future::BoxFuture;
use tower::{Layer, Service};

use super::caller::Caller;
use super::{AuthError, Authenticator, bearer};
use crate::core::principal::Principal;

/// Headers a local reverse proxy adds: a request carrying one did not come from this machine's
/// own user, so it never gets the anonymous loopback principal.
const FORWARDED_HEADERS: [&str; 2] = ["forwarded", "x-forwarded-for"];

/// Why the layer refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No, bad or uncheckable credentials.
    Unauthenticated(AuthError),
    /// Valid credentials without the surface's permission.
    Forbidden { permission: &'static str },
}

/// What the layer needs from the core: permission checks and the audit of refusals.
pub trait Gatekeeper: Send + Sync {
    fn permitted(&self, principal: &Principal, permission: &str) -> bool;
    /// Records a refused request; never fails the request further.
    fn refused<'a>(
        &'a self,
        transport: &'a str,
        who: Option<&'a Principal>,
        decision: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, ()>;
}

/// This surface's answer to a refusal (a challenge, a JSON error, …).
pub type Refuse = Arc<dyn Fn(&Refusal) -> Response + Send + Sync>;

/// One authenticated surface.
#[derive(Clone)]
pub struct Surface {
    /// Transport label of this surface's refusals in the audit log.
    pub transport: &'static str,
    /// Whether a request without a token may pass as the anonymous loopback principal (when
    /// the authenticator has one).
    pub anonymous: bool,
    /// The permission every caller must hold, if any.
    pub permission: Option<&'static str>,
    pub refuse: Refuse,
}

struct Shared {
    auth: Arc<dyn Authenticator>,
    keeper: Arc<dyn Gatekeeper>,
    surface: Surface,
}

/// The layer: one per surface, all sharing the same authenticator.
#[derive(Clone)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

impl AuthLayer {
    pub fn new(
        auth: Arc<dyn Authenticator>,
        keeper: Arc<dyn Gatekeeper>,
        surface: Surface,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                auth,
                keeper,
                surface,
            }),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Whether the request passed a reverse proxy that says so.
pub fn forwarded(headers: &HeaderMap) -> bool {
    FORWARDED_HEADERS.iter().any(|h| headers.contains_key(*h))
}

impl Shared {
    /// The caller of a request, or this surface's refusal.
    async fn admit(&self, headers: &HeaderMap) -> Result<Caller, Response> {
        let surface = &self.surface;
        let anonymous_ok = surface.anonymous && !forwarded(headers);
        let has_token = bearer(headers).is_some();
        let outcome = if !has_token && !anonymous_ok {
            Err(AuthError::Missing)
        } else {
            self.auth.authenticate(headers).await
        };
        let principal = match outcome {
            Ok(p) => p,
            Err(err) => {
                // A first request without a token is how clients discover the challenge: only
                // refused credentials are worth an audit record.
                if err != AuthError::Missing {
                    self.keeper
                        .refused(surface.transport, None, "unauthenticated", &err.to_string())
                        .await;
                }
                return Err((surface.refuse)(&Refusal::Unauthenticated(err)));
            }
        };
        if let Some(permission) = surface.permission
            && !self.keeper.permitted(&principal, permission)
        {
            let reason = format!("calling tools needs the permission {permission}");
            self.keeper
                .refused(surface.transport, Some(&principal), "forbidden", &reason)
                .await;
            return Err((surface.refuse)(&Refusal::Forbidden { permission }));
        }
        Ok(Caller {
            principal,
            has_token,
        })
    }
}

impl<S> Service<Request> for AuthService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let shared = self.shared.clone();
        // The clone that was polled ready handles this request (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match shared.admit(req.headers()).await {
                Ok(caller) => {
                    req.extensions_mut().insert(caller);
                    inner.call(req).await
                }
                Err(refusal) => Ok(refusal),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::local::LocalTokens;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use std::sync::Mutex;
    use tower::ServiceExt;

    const TOKEN: &str = "caller-token-0123456789";

    #[derive(Default)]
    struct Recorder {
        refusals: Mutex<Vec<(String, String)>>,
    }

    impl Gatekeeper for Recorder {
        fn permitted(&self, principal: &Principal, permission: &str) -> bool {
            principal.roles.iter().any(|r| r == permission)
        }
        fn refused<'a>(
            &'a self,
            transport: &'a str,
            _who: Option<&'a Principal>,
            decision: &'a str,
            _reason: &'a str,
        ) -> BoxFuture<'a, ()> {
            self.refusals
                .lock()
                .expect("lock")
                .push((transport.to_string(), decision.to_string()));
            Box::pin(async {})
        }
    }

    fn service(
        anonymous: bool,
        keeper: Arc<Recorder>,
    ) -> impl Service<Request, Response = Response, Error = std::convert::Infallible> + Clone {
        let tokens = LocalTokens::new(
            vec![
                (
                    TOKEN.to_string(),
                    Principal::new("c", "c", vec!["toolgate.caller".into()]),
                ),
                (
                    "norole-token-0123456789".to_string(),
                    Principal::new("n", "n", Vec::new()),
                ),
            ],
            Some(Principal::local("local")),
        );
        let surface = Surface {
            transport: "jsonrpc",
            anonymous,
            permission: Some("toolgate.caller"),
            refuse: Arc::new(|r: &Refusal| match r {
                Refusal::Unauthenticated(_) => StatusCode::UNAUTHORIZED.into_response(),
                Refusal::Forbidden { .. } => StatusCode::FORBIDDEN.into_response(),
            }),
        };
        let layer = AuthLayer::new(Arc::new(tokens), keeper, surface);
        layer.layer(tower::service_fn(|req: Request| async move {
            let who = Caller::of(req.extensions())
                .map(|c| format!("{} token={}", c.principal.sub, c.has_token))
                .unwrap_or_default();
            Ok::<_, std::convert::Infallible>(who.into_response())
        }))
    }

    async fn status(
        svc: impl Service<Request, Response = Response, Error = std::convert::Infallible>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let mut req = Request::builder().uri("/rpc");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = svc
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1024)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn anonymous_loopback_callers_pass_unless_a_proxy_forwarded_them() {
        let keeper = Arc::new(Recorder::default());
        let svc = service(true, keeper.clone());
        assert_eq!(
            status(svc.clone(), &[]).await,
            (StatusCode::OK, "local token=false".into())
        );
        for header in ["forwarded", "x-forwarded-for"] {
            let (code, _) = status(svc.clone(), &[(header, "for=192.0.2.1")]).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{header}");
        }
        let bearer = format!("Bearer {TOKEN}");
        let (code, who) = status(
            svc.clone(),
            &[("authorization", &bearer), ("x-forwarded-for", "192.0.2.1")],
        )
        .await;
        assert_eq!(
            (code, who.as_str()),
            (StatusCode::OK, "c token=true"),
            "a token still works"
        );
        assert!(
            keeper.refusals.lock().expect("lock").is_empty(),
            "challenges are not audited"
        );
    }

    #[tokio::test]
    async fn refusals_are_audited_under_the_surface_label() {
        let keeper = Arc::new(Recorder::default());
        let svc = service(false, keeper.clone());
        assert_eq!(status(svc.clone(), &[]).await.0, StatusCode::UNAUTHORIZED);
        let (code, _) = status(
            svc.clone(),
            &[("authorization", "Bearer wrong-wrong-wrong-wrong")],
        )
        .await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let (code, _) = status(
            svc.clone(),
            &[("authorization", "Bearer norole-token-0123456789")],
        )
        .await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert_eq!(
            *keeper.refusals.lock().expect("lock"),
            vec![
                ("jsonrpc".to_string(), "unauthenticated".to_string()),
                ("jsonrpc".to_string(), "forbidden".to_string())
            ]
        );
    }
}
