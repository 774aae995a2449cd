//! The kit as a tower layer, for clients that are tower stacks (kube's): every request passes
//! the upstream's `Guard` (breaker, metrics, health), gets the correlation headers, has a total
//! time limit to its answer's head, and an answer body capped in bytes. Errors it makes are
//! its own types (`CircuitOpen`, `TimedOut`, a body over the cap), so callers can tell them apart.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http::{Request, Response};
use http_body_util::Limited;
use tower::{BoxError, Layer, Service};

use super::correlation;
use super::guard::{Guard, Outcome};

/// The request got no answer head within the time limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no answer within {} ms", .0.as_millis())]
pub struct TimedOut(pub Duration);

#[derive(Clone)]
pub struct GuardLayer {
    guard: Arc<Guard>,
    timeout: Duration,
    max_body: usize,
}

impl GuardLayer {
    pub fn new(guard: Arc<Guard>, timeout: Duration, max_body: usize) -> Self {
        Self {
            guard,
            timeout,
            max_body,
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded {
            inner,
            layer: self.clone(),
        }
    }
}

pub struct Guarded<S> {
    inner: S,
    layer: GuardLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Guarded<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ResBody: http_body::Body + Send + 'static,
{
    type Response = Response<Limited<ResBody>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let GuardLayer {
            guard,
            timeout,
            max_body,
        } = self.layer.clone();
        let permit = match guard.admit() {
            Ok(permit) => permit,
            Err(open) => return Box::pin(async move { Err(Box::new(open) as BoxError) }),
        };
        for (name, value) in correlation::headers() {
            request.headers_mut().insert(name, value);
        }
        let answer = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    let outcome = Outcome::of_status(status);
                    let text = format!("{} answered HTTP {status}", guard.name());
                    guard.finish(permit, outcome, outcome.is_fault().then_some(text.as_str()));
                    Ok(response.map(|body| Limited::new(body, max_body)))
                }
                Ok(Err(e)) => {
                    let e: BoxError = e.into();
                    let text = format!("{}: {e}", guard.name());
                    guard.finish(permit, Outcome::Connect, Some(&text));
                    tracing::warn!(upstream = %guard.id(), request_id = %correlation::current(), error = %e, "upstream request failed");
                    Err(e)
                }
                Err(_) => {
                    let text = format!(
                        "{}: no answer within {} ms",
                        guard.name(),
                        timeout.as_millis()
                    );
                    guard.finish(permit, Outcome::Timeout, Some(&text));
                    tracing::warn!(upstream = %guard.id(), request_id = %correlation::current(), error = %text, "upstream request timed out");
                    Err(Box::new(TimedOut(timeout)) as BoxError)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::http::breaker::BreakerConfig;
    use crate::adapters::http::guard::CircuitOpen;
    use http_body_util::{BodyExt, Full};
    use tower::ServiceExt;

    fn guard(id: &str) -> Arc<Guard> {
        Arc::new(Guard::new(
            id,
            "cluster t",
            BreakerConfig {
                failures: 2,
                cooldown: Duration::from_secs(60),
            },
        ))
    }

    type Handle = tower_test::mock::Handle<Request<String>, Response<Full<bytes::Bytes>>>;

    /// The mocked API server answers the next request with `status`; returns that request.
    async fn answer(handle: &mut Handle, status: u16) -> Request<String> {
        let (req, send) = handle.next_request().await.expect("request");
        send.send_response(
            Response::builder()
                .status(status)
                .body(Full::new(bytes::Bytes::from_static(b"{}")))
                .expect("response"),
        );
        req
    }

    #[tokio::test]
    async fn the_layer_counts_faults_not_caller_errors_and_tags_requests() {
        let (mock, mut handle) =
            tower_test::mock::pair::<Request<String>, Response<Full<bytes::Bytes>>>();
        let g = guard("layer-test");
        let mut svc = GuardLayer::new(g.clone(), Duration::from_secs(5), 1024).layer(mock);
        for _ in 0..5 {
            let call = svc
                .ready()
                .await
                .expect("ready")
                .call(Request::new(String::new()));
            let (resp, req) = tokio::join!(call, answer(&mut handle, 404));
            assert_eq!(resp.expect("answer").status(), 404);
            assert!(req.headers().contains_key("x-request-id"));
            assert!(req.headers().contains_key("traceparent"));
        }
        assert!(!g.breaker_open(), "404s do not open it");
        for _ in 0..2 {
            let call = svc
                .ready()
                .await
                .expect("ready")
                .call(Request::new(String::new()));
            let (resp, _) = tokio::join!(call, answer(&mut handle, 503));
            assert_eq!(resp.expect("answer").status(), 503);
        }
        assert!(g.breaker_open(), "two 5xx open it");
        let err = svc
            .ready()
            .await
            .expect("ready")
            .call(Request::new(String::new()))
            .await
            .expect_err("refused without reaching the server");
        assert!(err.downcast_ref::<CircuitOpen>().is_some(), "{err}");
    }

    #[tokio::test]
    async fn slow_answers_time_out_and_bodies_are_capped() {
        let (mock, mut handle) =
            tower_test::mock::pair::<Request<String>, Response<Full<bytes::Bytes>>>();
        let g = guard("layer-timeout");
        let mut svc = GuardLayer::new(g.clone(), Duration::from_millis(50), 4).layer(mock);
        let call = svc
            .ready()
            .await
            .expect("ready")
            .call(Request::new(String::new()));
        let hold = async {
            let (_req, send) = handle.next_request().await.expect("request");
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(send);
        };
        let (err, _) = tokio::join!(call, hold);
        let err = err.expect_err("too slow");
        assert!(err.downcast_ref::<TimedOut>().is_some(), "{err}");
        assert_eq!(g.health().state, "degraded");

        let call = svc
            .ready()
            .await
            .expect("ready")
            .call(Request::new(String::new()));
        let send = async {
            let (_req, send) = handle.next_request().await.expect("request");
            send.send_response(Response::new(Full::new(bytes::Bytes::from_static(
                b"0123456789",
            ))));
        };
        let (resp, _) = tokio::join!(call, send);
        let body = resp.expect("head arrives").into_body().collect().await;
        assert!(body.is_err(), "10 bytes over a 4-byte cap");
    }
}
