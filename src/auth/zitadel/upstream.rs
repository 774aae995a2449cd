//! Calls to the issuer over the upstream kit (`adapters::http`: timeouts,
//! retries with backoff, circuit breaker). Adds only what the issuer needs: JSON answers and
//! `VerifyError::Unavailable` for every failure. Request bodies (tokens, client credentials)
//! never reach an error or a log line.

use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

use super::VerifyError;
use crate::adapters::http::{self, CallError, HttpAuth, Retry, Settings};

/// Discovery documents, key sets and introspection answers are small; refuse anything larger.
const MAX_BODY: usize = 1 << 20;

/// A response the issuer gave (any status), body parsed as JSON when it was JSON.
pub(super) struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

pub(super) struct Upstream {
    inner: http::Upstream,
}

impl Upstream {
    pub(super) fn new(timeout: Duration) -> Result<Self, String> {
        // Token endpoints must not bounce requests (and their credentials) elsewhere: the
        // kit's clients follow no redirects.
        let settings = Settings {
            max_response_bytes: MAX_BODY,
            ..Settings::with_timeout(timeout)
        };
        let inner = http::Upstream::new("issuer", "the issuer", &settings, HttpAuth::None)
            .map_err(|e| format!("{e} (for the issuer)"))?;
        Ok(Self { inner })
    }

    /// The kit's upstream, for readers shared with other modules (OIDC discovery).
    pub(super) fn kit(&self) -> &http::Upstream {
        &self.inner
    }

    pub(super) fn http(&self) -> &reqwest::Client {
        self.inner.http()
    }

    /// GET a JSON document; anything but 200 with JSON is the issuer being unavailable.
    pub(super) async fn get_json(&self, url: &str, what: &str) -> Result<Value, VerifyError> {
        let answer = self.call(what, || Ok(self.http().get(url))).await?;
        if answer.status != StatusCode::OK {
            return Err(VerifyError::Unavailable(format!(
                "{what}: the issuer answered HTTP {}",
                answer.status.as_u16()
            )));
        }
        Ok(answer.body)
    }

    /// Send a request built by `build` (called once per attempt, so signed client assertions
    /// are fresh), retrying transport errors, 429 and 5xx with backoff, behind the breaker.
    /// 4xx answers are returned, not retried.
    pub(super) async fn call(
        &self,
        what: &str,
        build: impl Fn() -> Result<RequestBuilder, String>,
    ) -> Result<Answer, VerifyError> {
        // Introspection is a POST but changes nothing at the issuer: retried like a read.
        let reply = self
            .inner
            .send(Retry::Read, build)
            .await
            .map_err(|e| match e {
                CallError::CircuitOpen(_) => VerifyError::Unavailable(format!("{what}: {e}")),
                CallError::Failed(m) | CallError::RateLimited { message: m, .. } => {
                    VerifyError::Unavailable(format!("{what}: {m}"))
                }
            })?;
        let body = match serde_json::from_slice(&reply.body) {
            Ok(v) => v,
            Err(_) if reply.status == StatusCode::OK => {
                return Err(VerifyError::Unavailable(format!(
                    "{what}: the issuer answered 200 with a body that is not JSON"
                )));
            }
            Err(_) => Value::Null,
        };
        Ok(Answer {
            status: reply.status,
            body,
        })
    }

    #[cfg(test)]
    pub(super) fn breaker_open(&self) -> bool {
        self.inner.breaker_open()
    }

    /// Breaker state and last results, for `/readyz`.
    pub(super) fn health(&self) -> http::Health {
        self.inner.guard().health()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::http::BREAKER_THRESHOLD;
    use std::time::Instant;

    #[tokio::test]
    async fn unreachable_issuer_is_unavailable_and_opens_the_breaker() {
        // A port bound but not listening: connections are refused, and no test running in
        // parallel can take it over meanwhile.
        let reserved = tokio::net::TcpSocket::new_v4().expect("socket");
        reserved.bind(([127, 0, 0, 1], 0).into()).expect("bind");
        let port = reserved.local_addr().expect("addr").port();
        let up = Upstream::new(Duration::from_secs(1)).expect("client");
        let url = format!("http://127.0.0.1:{port}/jwks");
        // Every attempt counts (reads are tried three times): open within the threshold.
        for _ in 0..BREAKER_THRESHOLD {
            match up.get_json(&url, "JWKS").await {
                Err(VerifyError::Unavailable(m)) => assert!(
                    m.contains("cannot connect") || m.contains("circuit open"),
                    "{m}"
                ),
                other => panic!("expected Unavailable, got {other:?}"),
            }
        }
        assert!(up.breaker_open());
        let started = Instant::now();
        match up.get_json(&url, "JWKS").await {
            Err(VerifyError::Unavailable(m)) => assert!(m.contains("circuit open"), "{m}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_millis(50), "fails fast");
    }
}
