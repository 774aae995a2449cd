//! One HTTP upstream over reqwest: its client, credentials, retry policy and `Guard`. `send`
//! makes every attempt go through the guard (breaker, metrics, health), puts the correlation
//! id and the credentials on it, caps the answer's size, and retries idempotent requests with
//! backoff. Owns no protocol knowledge; request bodies and credentials never reach an error or
//! a log.

use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode};

use super::auth::HttpAuth;
use super::breaker::BreakerConfig;
use super::client::{self, TlsSettings};
use super::correlation;
use super::guard::{Guard, Outcome};
use super::retry::{Retry, RetryPolicy};

/// Everything about how one upstream is called (each upstream's config block carries these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Total time of one attempt, answer included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    pub breaker: BreakerConfig,
    /// Larger answers are refused (and count as an upstream fault).
    pub max_response_bytes: usize,
    pub tls: TlsSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            max_response_bytes: 32 << 20,
            tls: TlsSettings::default(),
        }
    }
}

impl Settings {
    /// Defaults with this total timeout.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            ..Self::default()
        }
    }
}

/// An answer of the upstream (any status), body read up to the size limit.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// The answer's headers (rate-limit and retry-after headers, content type).
    pub headers: reqwest::header::HeaderMap,
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
    /// Transport failure, timeout, 5xx or 429 after every attempt, an oversized answer, or a
    /// credential that could not be read.
    #[error("{0}")]
    Failed(String),
    /// A 429 whose `Retry-After` could not be waited out here (a write, no attempt left, or
    /// longer than `retry.max_retry_after`): the message names when to retry.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Duration,
    },
}

impl CallError {
    /// The message, whichever kind.
    pub fn into_message(self) -> String {
        match self {
            CallError::CircuitOpen(m) | CallError::Failed(m) => m,
            CallError::RateLimited { message, .. } => message,
        }
    }

    /// How long the upstream asked to be left alone (a 429's `Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// A `Retry-After` header as a wait from now: delay-seconds, or an HTTP date (RFC 9110 §10.2.3;
/// a date in the past is no wait). `None` when absent or unreadable.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let ms = at.as_millisecond() - jiff::Timestamp::now().as_millisecond();
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// How a wait reads in a message: `30s`, `1.5s`.
pub fn seconds_text(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// One upstream: its client, credentials, retry policy and guard.
pub struct Upstream {
    guard: Guard,
    http: reqwest::Client,
    auth: HttpAuth,
    retry: RetryPolicy,
    max_body: usize,
    /// Whether errors may name the URL's path (not when the path is the secret, as in a
    /// Slack-style webhook).
    show_url: bool,
    /// Whether a rate-limit answer is handed to the caller at once instead of retried.
    rate_limits_to_caller: bool,
}

impl Upstream {
    /// `id` labels metrics and `/readyz`; `name` is how errors say it ("Prometheus"). A
    /// service-token spec in `auth` is bound to its source here.
    pub fn new(id: &str, name: &str, settings: &Settings, auth: HttpAuth) -> Result<Self, String> {
        let http = client::build(settings.connect_timeout, settings.timeout, &settings.tls)?;
        Ok(Self {
            guard: Guard::new(id, name, settings.breaker),
            http,
            auth: auth.bind()?,
            retry: settings.retry,
            max_body: settings.max_response_bytes,
            show_url: true,
            rate_limits_to_caller: false,
        })
    }

    /// Errors and log lines of this upstream never name its URL.
    pub fn hiding_urls(mut self) -> Self {
        self.show_url = false;
        self
    }

    /// A rate-limit answer (429, or 403 with `x-ratelimit-remaining: 0`) is returned to the
    /// caller at once, headers included, so it can say when the limit resets instead of
    /// retrying blindly (GitHub's rule for its REST API).
    pub fn answering_rate_limits(mut self) -> Self {
        self.rate_limits_to_caller = true;
        self
    }

    fn describe(&self, e: reqwest::Error) -> String {
        if self.show_url {
            describe(e)
        } else {
            describe(e.without_url())
        }
    }

    pub fn name(&self) -> &str {
        self.guard.name()
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    pub fn breaker_open(&self) -> bool {
        self.guard.breaker_open()
    }

    /// Send a request built by `build` (called once per attempt, so signed client assertions
    /// are fresh). Reads retry transport errors, 429 and 5xx with backoff; writes go out once.
    /// A 429 with `Retry-After` is honoured: a read waits that long before its next attempt
    /// when it is at most `retry.max_retry_after`; otherwise (a write, the last attempt, a
    /// longer wait) the call ends at once with [`CallError::RateLimited`] naming when to retry,
    /// never sooner than told. Other answers (2xx, 4xx) are returned as they are.
    pub async fn send(
        &self,
        retry: Retry,
        build: impl Fn() -> Result<RequestBuilder, String>,
    ) -> Result<Reply, CallError> {
        let attempts = self.retry.attempts_for(retry);
        let mut last = String::new();
        // One more send, not counted as a retry, when a refused credential was read again and
        // changed (a value rotated at its source): the upstream acted on nothing.
        let mut refreshed = false;
        let mut attempt = 0;
        // The wait a 429's Retry-After asked for, used instead of the backoff.
        let mut told: Option<Duration> = None;
        while attempt < attempts {
            if attempt > 0 {
                let wait = told.take().unwrap_or_else(|| self.retry.backoff(attempt));
                tokio::time::sleep(wait).await;
            }
            let permit = self
                .guard
                .admit()
                .map_err(|open| CallError::CircuitOpen(open.0))?;
            let request = match self.prepare(build()).await {
                Ok(request) => request,
                Err(message) => {
                    // Nothing went out: the upstream is not to blame.
                    self.guard.finish(permit, Outcome::Ok, None);
                    return Err(CallError::Failed(message));
                }
            };
            let (outcome, result) = self.attempt(request).await;
            match result {
                Ok(reply)
                    if self.rate_limits_to_caller
                        && reply.status == StatusCode::TOO_MANY_REQUESTS =>
                {
                    self.guard.finish(permit, outcome, Some("rate limited"));
                    return Ok(reply);
                }
                Ok(reply) if outcome.is_fault() => {
                    last = format!(
                        "{} answered HTTP {}{}",
                        self.name(),
                        reply.status.as_u16(),
                        short_body(&reply.body)
                    );
                    self.guard.finish(permit, outcome, Some(&last));
                    if reply.status == StatusCode::TOO_MANY_REQUESTS
                        && let Some(wait) = retry_after(&reply.headers)
                    {
                        let last_attempt = attempt + 1 >= attempts;
                        if last_attempt || wait > self.retry.max_retry_after {
                            let message = format!(
                                "{} is rate limiting toolgate (HTTP 429); retry after {} (Retry-After)",
                                self.name(),
                                seconds_text(wait)
                            );
                            tracing::warn!(
                                upstream = %self.guard.id(),
                                request_id = %correlation::current(),
                                retry_after_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                                "upstream rate limited the call"
                            );
                            return Err(CallError::RateLimited {
                                message,
                                retry_after: wait,
                            });
                        }
                        told = Some(wait);
                    }
                }
                Ok(reply) => {
                    self.guard.finish(permit, outcome, None);
                    let refused = matches!(
                        reply.status,
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                    );
                    if refused && !refreshed && self.auth.refresh().await {
                        refreshed = true;
                        tracing::info!(
                            upstream = %self.guard.id(),
                            status = reply.status.as_u16(),
                            "the upstream refused the credential; its source had a new value, sending again"
                        );
                        continue;
                    }
                    return Ok(reply);
                }
                Err(message) => {
                    self.guard.finish(permit, outcome, Some(&message));
                    last = message;
                }
            }
            attempt += 1;
        }
        tracing::warn!(
            upstream = %self.guard.id(),
            request_id = %correlation::current(),
            error = %last,
            attempts,
            "upstream call failed"
        );
        Err(CallError::Failed(last))
    }

    /// Credentials and correlation headers on a built request.
    async fn prepare(
        &self,
        built: Result<RequestBuilder, String>,
    ) -> Result<RequestBuilder, String> {
        let mut request = built?;
        for (name, value) in correlation::headers() {
            request = request.header(name, value);
        }
        self.auth
            .apply(request)
            .await
            .map_err(|e| format!("credentials for {}: {e}", self.name()))
    }

    async fn attempt(&self, request: RequestBuilder) -> (Outcome, Result<Reply, String>) {
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return (fault_of(&e), Err(self.describe(e))),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_body {
                        return (
                            Outcome::TooLarge,
                            Err(format!(
                                "{} sent a response larger than {} bytes",
                                self.name(),
                                self.max_body
                            )),
                        );
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return (fault_of(&e), Err(self.describe(e))),
            }
        }
        (
            Outcome::of_status(status.as_u16()),
            Ok(Reply {
                status,
                body,
                headers,
            }),
        )
    }
}

fn fault_of(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() {
        Outcome::Timeout
    } else if e.is_connect() {
        Outcome::Connect
    } else {
        Outcome::Broken
    }
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
    use crate::adapters::http::breaker::BREAKER_THRESHOLD;
    use crate::adapters::http::secret::Credential;
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server answering every request with `status` and `body`; counts requests and keeps
    /// the last request's head.
    async fn server(
        status: &'static str,
        body: &'static str,
    ) -> (String, Arc<AtomicUsize>, Arc<Mutex<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let head = Arc::new(Mutex::new(String::new()));
        let (counter, seen) = (hits.clone(), head.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                *seen.lock().unwrap_or_else(|e| e.into_inner()) =
                    String::from_utf8_lossy(&buf[..n]).into_owned();
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        (format!("http://{addr}/x"), hits, head)
    }

    /// A server answering the raw HTTP answers of `answers` in turn (the last one repeated);
    /// keeps the instant of each request.
    async fn scripted(answers: Vec<String>) -> (String, Arc<Mutex<Vec<std::time::Instant>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let times = Arc::new(Mutex::new(Vec::new()));
        let seen = times.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf).await;
                let n = {
                    let mut t = seen.lock().unwrap_or_else(|e| e.into_inner());
                    t.push(std::time::Instant::now());
                    t.len()
                };
                let answer = &answers[(n - 1).min(answers.len() - 1)];
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        (format!("http://{addr}/x"), times)
    }

    fn answer(status: &str, extra: &str) -> String {
        format!("HTTP/1.1 {status}\r\n{extra}content-length: 2\r\nconnection: close\r\n\r\n{{}}")
    }

    #[tokio::test]
    async fn a_read_waits_out_a_short_retry_after_and_then_succeeds() {
        let (url, times) = scripted(vec![
            answer("429 Too Many Requests", "retry-after: 1\r\n"),
            answer("200 OK", ""),
        ])
        .await;
        let up = Upstream::new("t-ra-short", "Test", &fast_retries(), HttpAuth::None).expect("up");
        let reply = up
            .send(Retry::Read, || Ok(up.http().get(&url)))
            .await
            .expect("the second attempt answers");
        assert_eq!(reply.status, StatusCode::OK);
        let t = times.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(t.len(), 2);
        // The backoff is at most 10 ms: the second attempt waited for the Retry-After.
        assert!(
            t[1] - t[0] >= Duration::from_millis(950),
            "waited {:?}",
            t[1] - t[0]
        );
    }

    #[tokio::test]
    async fn a_long_retry_after_or_a_write_fails_at_once_naming_when_to_retry() {
        let (url, times) =
            scripted(vec![answer("429 Too Many Requests", "retry-after: 30\r\n")]).await;
        let up = Upstream::new("t-ra-long", "Test", &fast_retries(), HttpAuth::None).expect("up");
        let err = up
            .send(Retry::Read, || Ok(up.http().get(&url)))
            .await
            .expect_err("30 s is over max_retry_after");
        assert_eq!(
            err,
            CallError::RateLimited {
                message: "Test is rate limiting toolgate (HTTP 429); retry after 30s (Retry-After)"
                    .into(),
                retry_after: Duration::from_secs(30),
            }
        );
        assert_eq!(
            times.lock().map(|t| t.len()).unwrap_or(0),
            1,
            "not retried sooner"
        );

        let (url, times) =
            scripted(vec![answer("429 Too Many Requests", "retry-after: 1\r\n")]).await;
        let up = Upstream::new("t-ra-write", "Test", &fast_retries(), HttpAuth::None).expect("up");
        let err = up
            .send(Retry::Write, || Ok(up.http().post(&url)))
            .await
            .expect_err("a write goes out once");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
        assert_eq!(times.lock().map(|t| t.len()).unwrap_or(0), 1);

        // Without Retry-After a 429 is retried with backoff as before, then fails plainly.
        let (url, times) = scripted(vec![answer("429 Too Many Requests", "")]).await;
        let up = Upstream::new("t-ra-none", "Test", &fast_retries(), HttpAuth::None).expect("up");
        let err = up
            .send(Retry::Read, || Ok(up.http().get(&url)))
            .await
            .expect_err("429");
        assert_eq!(err.retry_after(), None);
        assert_eq!(times.lock().map(|t| t.len()).unwrap_or(0), 3);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a past date: no wait"
        );
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(90);
        let text = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&later)
            .expect("date");
        h.insert(RETRY_AFTER, HeaderValue::from_str(&text).expect("value"));
        let wait = retry_after(&h).expect("a date");
        assert!(
            wait > Duration::from_secs(85) && wait <= Duration::from_secs(90),
            "{wait:?}"
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    fn fast_retries() -> Settings {
        Settings {
            retry: RetryPolicy {
                attempts: 3,
                backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(10),
                max_retry_after: Duration::from_secs(10),
            },
            ..Settings::with_timeout(Duration::from_secs(2))
        }
    }

    #[tokio::test]
    async fn a_write_goes_out_once_and_a_read_is_retried() {
        let (url, hits, _) = server("503 Service Unavailable", "busy").await;
        let up = Upstream::new("t-retry", "Test", &fast_retries(), HttpAuth::None).expect("up");
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
        assert_eq!(hits.load(Ordering::SeqCst), 1 + 3);
    }

    /// A credential whose source has a new value once (a rotation), then no newer one.
    struct Rotating(std::sync::Mutex<(&'static str, bool)>);

    impl crate::adapters::http::SecretSource for Rotating {
        fn current(
            &self,
        ) -> futures::future::BoxFuture<
            '_,
            Result<crate::adapters::http::Secret, crate::adapters::http::SecretError>,
        > {
            let value = self.0.lock().unwrap_or_else(|e| e.into_inner()).0;
            Box::pin(async move { Ok(crate::adapters::http::Secret::new(value)) })
        }
        fn describe(&self) -> String {
            "rotating".into()
        }
        fn refresh(&self) -> futures::future::BoxFuture<'_, bool> {
            let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let changed = !state.1;
            *state = ("new-value", true);
            Box::pin(async move { changed })
        }
    }

    #[tokio::test]
    async fn a_refused_credential_is_read_again_and_sent_once_more_only_when_it_changed() {
        let (url, hits, head) = server("401 Unauthorized", "no").await;
        let credential = crate::adapters::http::Credential::from_source(std::sync::Arc::new(
            Rotating(std::sync::Mutex::new(("old-value", false))),
        ));
        let up = Upstream::new(
            "t-401",
            "Test",
            &fast_retries(),
            HttpAuth::Bearer(credential),
        )
        .expect("up");
        // A write too: the upstream refused it without acting, so it may go out again.
        let reply = up
            .send(Retry::Write, || Ok(up.http().post(&url)))
            .await
            .expect("a 401 is an answer");
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            2,
            "sent again with the new value"
        );
        let last = head.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert!(last.contains("Bearer new-value"), "{last}");
        // Refused again with a value that did not change: answered as it is, no loop.
        up.send(Retry::Read, || Ok(up.http().get(&url)))
            .await
            .expect("answer");
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert!(!up.breaker_open());
    }

    #[tokio::test]
    async fn caller_errors_do_not_open_the_breaker_but_upstream_faults_do() {
        let (url, hits, _) = server("404 Not Found", "{\"error\":\"no such thing\"}").await;
        let up = Upstream::new("t-404", "Test", &fast_retries(), HttpAuth::None).expect("up");
        for _ in 0..(BREAKER_THRESHOLD * 3) {
            let reply = up
                .send(Retry::Read, || Ok(up.http().get(&url)))
                .await
                .expect("a 404 is an answer");
            assert_eq!(reply.status, StatusCode::NOT_FOUND);
        }
        assert!(!up.breaker_open(), "404s are the caller's fault");
        assert_eq!(
            hits.load(Ordering::SeqCst),
            (BREAKER_THRESHOLD * 3) as usize
        );
        assert_eq!(up.guard().health().state, "ok");

        let (url, hits, _) = server("500 Internal Server Error", "oops").await;
        let up = Upstream::new("t-500", "Test", &fast_retries(), HttpAuth::None).expect("up");
        let mut open = false;
        for _ in 0..BREAKER_THRESHOLD {
            if let Err(CallError::CircuitOpen(_)) =
                up.send(Retry::Read, || Ok(up.http().get(&url))).await
            {
                open = true;
            }
        }
        assert!(open && up.breaker_open(), "5xx faults open it");
        assert_eq!(
            hits.load(Ordering::SeqCst),
            BREAKER_THRESHOLD as usize,
            "every attempt counts; once open nothing goes out"
        );
        let h = up.guard().health();
        assert_eq!(h.state, "down");
        assert_eq!(
            h.last_error.as_deref(),
            Some("Test answered HTTP 500: oops")
        );
    }

    #[tokio::test]
    async fn requests_carry_the_correlation_id_and_credentials_and_big_answers_are_refused() {
        let (url, _, head) = server("200 OK", "0123456789").await;
        let settings = Settings {
            max_response_bytes: 5,
            ..fast_retries()
        };
        let up = Upstream::new(
            "t-head",
            "Test",
            &settings,
            HttpAuth::VaultToken(Credential::inline("hvs.test")),
        )
        .expect("up");
        let id = "0b5f8c52-8f64-4f0c-9b1e-0c6a7f3d2e11".to_string();
        let err = correlation::scope(id, up.send(Retry::Write, || Ok(up.http().get(&url))))
            .await
            .expect_err("10 bytes > 5");
        assert_eq!(
            err,
            CallError::Failed("Test sent a response larger than 5 bytes".into())
        );
        let head = head
            .lock()
            .map(|h| h.to_ascii_lowercase())
            .unwrap_or_default();
        assert!(
            head.contains("x-request-id: 0b5f8c52-8f64-4f0c-9b1e-0c6a7f3d2e11"),
            "{head}"
        );
        assert!(
            head.contains("traceparent: 00-0b5f8c528f644f0c9b1e0c6a7f3d2e11-"),
            "{head}"
        );
        assert!(head.contains("x-vault-token: hvs.test"), "{head}");
    }
}
