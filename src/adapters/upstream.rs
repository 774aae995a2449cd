//! Outbound HTTP plumbing shared by every HTTP upstream (the identity provider, Prometheus,
//! Loki, Tempo, Grafana): one `reqwest::Client` per upstream with connect and total timeouts
//! and its TLS options, retries with backoff and jitter for reads, and a circuit breaker.
//! Owns no protocol knowledge; request bodies and credentials never reach an error or a log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, StatusCode};

use crate::config::{HttpAuth, TlsSettings};

/// Consecutive failed calls that open the breaker.
pub const BREAKER_THRESHOLD: u32 = 5;
/// How long an open breaker refuses calls before letting one probe through.
pub const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);
/// Attempts per read (first try included).
pub const ATTEMPTS: u32 = 3;
const BACKOFF_BASE: Duration = Duration::from_millis(100);

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
pub struct Breaker {
    state: State,
    threshold: u32,
    cooldown: Duration,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            state: State::Closed { failures: 0 },
            threshold,
            cooldown,
        }
    }

    /// May a call go out now?
    pub fn allow(&mut self, now: Instant) -> bool {
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

    pub fn success(&mut self) {
        self.state = State::Closed { failures: 0 };
    }

    pub fn failure(&mut self, now: Instant) {
        self.state = match self.state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            _ => State::Open {
                until: now + self.cooldown,
            },
        };
    }

    /// Whether calls are (or may soon be) refused.
    pub fn is_open(&self) -> bool {
        !matches!(self.state, State::Closed { .. })
    }
}

/// Whether a request may be repeated: reads yes, writes never (a lost answer to a POST must
/// not turn into two annotations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Read,
    Write,
}

/// An answer of the upstream (any status), body read up to the size limit.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The breaker is open: the upstream failed repeatedly and is left alone for a while.
    #[error("circuit open after repeated failures of {0}; retrying later")]
    CircuitOpen(String),
    /// Transport failure, timeout, 5xx or 429 after every attempt, or an oversized answer.
    #[error("{0}")]
    Failed(String),
}

/// One upstream: its client and its breaker.
pub struct Upstream {
    /// How errors name it ("the issuer", "Prometheus").
    name: String,
    http: reqwest::Client,
    breaker: Mutex<Breaker>,
    max_body: usize,
}

impl Upstream {
    pub fn new(name: impl Into<String>, http: reqwest::Client, max_body: usize) -> Self {
        Self {
            name: name.into(),
            http,
            breaker: Mutex::new(Breaker::new(BREAKER_THRESHOLD, BREAKER_COOLDOWN)),
            max_body,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Send a request built by `build` (called once per attempt, so signed client assertions
    /// are fresh) behind the breaker. Reads retry transport errors, 429 and 5xx with backoff;
    /// writes go out once. Other answers (2xx, 4xx) are returned as they are.
    pub async fn send(
        &self,
        retry: Retry,
        build: impl Fn() -> Result<RequestBuilder, String>,
    ) -> Result<Reply, CallError> {
        if !self.lock().allow(Instant::now()) {
            return Err(CallError::CircuitOpen(self.name.clone()));
        }
        let attempts = match retry {
            Retry::Read => ATTEMPTS,
            Retry::Write => 1,
        };
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let request = build().map_err(CallError::Failed)?;
            match self.attempt(request).await {
                Ok(reply) if retryable(reply.status) => {
                    last = format!(
                        "{} answered HTTP {}{}",
                        self.name,
                        reply.status.as_u16(),
                        short_body(&reply.body)
                    );
                }
                Ok(reply) => {
                    self.lock().success();
                    return Ok(reply);
                }
                Err(message) => last = message,
            }
        }
        self.lock().failure(Instant::now());
        tracing::warn!(upstream = %self.name, error = %last, attempts, "upstream call failed");
        Err(CallError::Failed(last))
    }

    async fn attempt(&self, request: RequestBuilder) -> Result<Reply, String> {
        let mut response = request.send().await.map_err(describe)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe)? {
            if body.len() + chunk.len() > self.max_body {
                return Err(format!(
                    "{} sent a response larger than {} bytes",
                    self.name, self.max_body
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply { status, body })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // The breaker holds no invariant a panic could break: keep using it.
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn breaker_open(&self) -> bool {
        self.lock().is_open()
    }
}

/// A client with connect and total timeouts, no redirects (they would carry credentials
/// elsewhere) and the upstream's TLS options.
pub fn client(timeout: Duration, tls: &TlsSettings) -> Result<reqwest::Client, String> {
    crate::app::init_crypto();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("toolgate/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &tls.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("CA file {} is not PEM certificates: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "CA file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ));
        }
        builder = builder.tls_certs_merge(certs);
    }
    if tls.insecure_skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

/// Add the configured credentials to a request.
pub fn authorize(request: RequestBuilder, auth: &HttpAuth) -> RequestBuilder {
    match auth {
        HttpAuth::None => request,
        HttpAuth::Bearer(token) => request.bearer_auth(token.expose()),
        HttpAuth::Basic { username, password } => {
            request.basic_auth(username, Some(password.expose()))
        }
    }
}

pub fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// 100 ms, 200 ms, … plus up to the same again of jitter.
pub fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_BASE * 2u32.saturating_pow(attempt.saturating_sub(1));
    let jitter = getrandom::u32().unwrap_or(0) % (base.as_millis() as u32).max(1);
    base + Duration::from_millis(u64::from(jitter))
}

/// A transport error without anything from the request (reqwest only names the URL).
pub fn describe(e: reqwest::Error) -> String {
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
        Some(url) => {
            let mut url = url.clone();
            // Query strings may hold a user's query; the path is enough to say where.
            url.set_query(None);
            format!("{kind} ({})", url.as_str())
        }
        None => kind.to_string(),
    }
}

/// The first line of an error body, for messages (": upstream said …"), bounded.
fn short_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().next().unwrap_or_default().trim();
    if line.is_empty() {
        String::new()
    } else {
        let cut: String = line.chars().take(200).collect();
        format!(": {cut}")
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
    async fn a_write_goes_out_once_and_a_read_is_retried() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A server that answers every request with 503.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbusy")
                    .await;
            }
        });
        let http = client(Duration::from_secs(2), &TlsSettings::default()).expect("client");
        let up = Upstream::new("Test", http, 1 << 20);
        let url = format!("http://{addr}/x");
        let err = up
            .send(Retry::Write, || Ok(up.http().post(&url)))
            .await
            .expect_err("503");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "a write is sent once");
        assert_eq!(
            err,
            CallError::Failed("Test answered HTTP 503: busy".into())
        );
        up.send(Retry::Read, || Ok(up.http().get(&url)))
            .await
            .expect_err("503");
        assert_eq!(hits.load(Ordering::SeqCst), 1 + ATTEMPTS as usize);
    }
}
