//! Calls to the issuer: one `reqwest::Client` with connect and total timeouts, retries with
//! backoff and jitter for reads, and a circuit breaker. Owns no protocol knowledge; request
//! bodies (which carry tokens and client credentials) never reach an error or a log line.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

use super::VerifyError;

/// Consecutive failed calls that open the breaker.
const BREAKER_THRESHOLD: u32 = 5;
/// How long an open breaker refuses calls before letting one probe through.
const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);
/// Attempts per call (first try included).
const ATTEMPTS: u32 = 3;
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Discovery documents, key sets and introspection answers are small; refuse anything larger.
const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; another may go once `since` is a cooldown old (a dropped probe must
    /// not wedge the breaker).
    HalfOpen {
        since: Instant,
    },
}

/// Circuit breaker state machine; time is passed in so tests can drive it.
#[derive(Debug)]
pub(super) struct Breaker {
    state: State,
    threshold: u32,
    cooldown: Duration,
}

impl Breaker {
    pub(super) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            state: State::Closed { failures: 0 },
            threshold,
            cooldown,
        }
    }

    /// May a call go out now?
    pub(super) fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen { since: now };
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { since } if now.duration_since(since) >= self.cooldown => {
                self.state = State::HalfOpen { since: now };
                true
            }
            State::HalfOpen { .. } => false,
        }
    }

    pub(super) fn success(&mut self) {
        self.state = State::Closed { failures: 0 };
    }

    pub(super) fn failure(&mut self, now: Instant) {
        self.state = match self.state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            _ => State::Open {
                until: now + self.cooldown,
            },
        };
    }

    #[cfg(test)]
    pub(super) fn is_open(&self) -> bool {
        !matches!(self.state, State::Closed { .. })
    }
}

/// A response the issuer gave (any status), body parsed as JSON when it was JSON.
pub(super) struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

pub(super) struct Upstream {
    http: reqwest::Client,
    breaker: Mutex<Breaker>,
}

impl Upstream {
    pub(super) fn new(timeout: Duration) -> Result<Self, String> {
        crate::app::init_crypto();
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            // Token endpoints must not bounce requests (and their credentials) elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("toolgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the HTTP client for the issuer: {e}"))?;
        Ok(Self {
            http,
            breaker: Mutex::new(Breaker::new(BREAKER_THRESHOLD, BREAKER_COOLDOWN)),
        })
    }

    pub(super) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// GET a JSON document; anything but 200 with JSON is the issuer being unavailable.
    pub(super) async fn get_json(&self, url: &str, what: &str) -> Result<Value, VerifyError> {
        let answer = self.call(what, || Ok(self.http.get(url))).await?;
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
        if !self.lock().allow(Instant::now()) {
            return Err(VerifyError::Unavailable(format!(
                "{what}: circuit open after repeated failures of the issuer; retrying later"
            )));
        }
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let request = build().map_err(|m| VerifyError::Unavailable(format!("{what}: {m}")))?;
            match self.attempt(request).await {
                Ok(answer) if retryable(answer.status) => {
                    last = format!("the issuer answered HTTP {}", answer.status.as_u16());
                }
                Ok(answer) => {
                    self.lock().success();
                    return Ok(answer);
                }
                Err(message) => last = message,
            }
        }
        self.lock().failure(Instant::now());
        tracing::warn!(what, error = %last, attempts = ATTEMPTS, "identity provider call failed");
        Err(VerifyError::Unavailable(format!("{what}: {last}")))
    }

    async fn attempt(&self, request: RequestBuilder) -> Result<Answer, String> {
        let mut response = request.send().await.map_err(describe)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("response larger than {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let body = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) if status == StatusCode::OK => {
                return Err("the issuer answered 200 with a body that is not JSON".into());
            }
            Err(_) => Value::Null,
        };
        Ok(Answer { status, body })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // The breaker holds no invariant a panic could break: keep using it.
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    pub(super) fn breaker_open(&self) -> bool {
        self.lock().is_open()
    }
}

fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// 100 ms, 200 ms, … plus up to the same again of jitter.
fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_BASE * 2u32.saturating_pow(attempt.saturating_sub(1));
    let jitter = getrandom::u32().unwrap_or(0) % (base.as_millis() as u32).max(1);
    base + Duration::from_millis(u64::from(jitter))
}

/// A transport error without anything from the request body (reqwest only names the URL).
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "broken response"
    } else {
        "request failed"
    };
    match e.url() {
        Some(url) => format!("{kind} ({})", url.as_str()),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_threshold_and_lets_one_probe_through_after_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(30));
        for _ in 0..2 {
            assert!(b.allow(t0));
            b.failure(t0);
        }
        assert!(b.allow(t0), "two failures: still closed");
        b.failure(t0);
        assert!(b.is_open());
        assert!(!b.allow(t0 + Duration::from_secs(29)), "open: fail fast");
        assert!(
            b.allow(t0 + Duration::from_secs(30)),
            "cooldown over: probe"
        );
        assert!(
            !b.allow(t0 + Duration::from_secs(31)),
            "only one probe at a time"
        );
        b.failure(t0 + Duration::from_secs(31));
        assert!(
            !b.allow(t0 + Duration::from_secs(60)),
            "failed probe re-opens"
        );
        assert!(b.allow(t0 + Duration::from_secs(61)));
        b.success();
        assert!(!b.is_open());
        assert!(b.allow(t0 + Duration::from_secs(61)));
    }

    #[test]
    fn a_dropped_probe_does_not_wedge_the_breaker() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, Duration::from_secs(10));
        b.failure(t0);
        assert!(b.allow(t0 + Duration::from_secs(10)));
        // The probe never reports back.
        assert!(!b.allow(t0 + Duration::from_secs(15)));
        assert!(b.allow(t0 + Duration::from_secs(20)));
    }

    #[test]
    fn success_resets_the_failure_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(2, Duration::from_secs(10));
        b.failure(t0);
        b.success();
        b.failure(t0);
        assert!(!b.is_open());
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let first = backoff(1);
        assert!(first >= Duration::from_millis(100) && first < Duration::from_millis(200));
        let second = backoff(2);
        assert!(second >= Duration::from_millis(200) && second < Duration::from_millis(400));
    }

    #[tokio::test]
    async fn unreachable_issuer_is_unavailable_and_opens_the_breaker() {
        // A port nobody listens on: bind, note it, close it.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let up = Upstream::new(Duration::from_secs(1)).expect("client");
        let url = format!("http://127.0.0.1:{port}/jwks");
        for _ in 0..BREAKER_THRESHOLD {
            match up.get_json(&url, "JWKS").await {
                Err(VerifyError::Unavailable(m)) => assert!(m.contains("cannot connect"), "{m}"),
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
