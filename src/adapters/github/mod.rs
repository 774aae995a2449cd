//! GitHub's REST API, a general client on the upstream kit: base URL configurable (GitHub
//! Enterprise), bearer token from a credential (a `secret_ref` too), `Accept:
//! application/vnd.github+json` and `X-GitHub-Api-Version: 2022-11-28` on every request. Rate
//! limits are answered, not retried blindly: a 429, or a 403 with `x-ratelimit-remaining: 0`,
//! is [`GitHubError::RateLimited`] naming when the limit resets (`x-ratelimit-reset`,
//! `retry-after`). Reads are retried on faults; writes go out once. The calls of each API area
//! live in their own file (`pulls.rs`, `issues.rs`); `tickets.rs` makes GitHub Issues a
//! [`TicketProvider`](crate::adapters::ticket::TicketProvider). Imports only the upstream kit
//! and the ticket vocabulary.

pub mod config;
pub mod issues;
pub mod pulls;
pub mod tickets;

use reqwest::header::{ACCEPT, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use self::config::GitHubConfig;
use crate::adapters::http::{Health, Reply, Retry, Upstream};

pub use self::issues::Issue;
pub use self::pulls::{Comment, PullFile, PullRequest};

pub const API_VERSION: &str = "2022-11-28";
pub const JSON_MEDIA_TYPE: &str = "application/vnd.github+json";
pub const DIFF_MEDIA_TYPE: &str = "application/vnd.github.diff";

/// Why a GitHub call failed. Every message names GitHub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitHubError {
    #[error("GitHub has no {0} (HTTP 404), or the token cannot see it")]
    NotFound(String),
    #[error("GitHub refused toolgate's token (HTTP {status}: {message}); check {setting}")]
    Unauthorized {
        status: u16,
        message: String,
        /// The config key of the token (`review.github.token`).
        setting: String,
    },
    /// A rate limit: nothing was retried; `resets` says when to try again, `wait` how long
    /// that is from now (when GitHub said).
    #[error("GitHub's rate limit is reached (HTTP {status}); {resets}")]
    RateLimited {
        status: u16,
        resets: String,
        wait: Option<std::time::Duration>,
    },
    /// The resource is gone for good (HTTP 410: a deleted issue, issues turned off).
    #[error("GitHub says {what} is gone (HTTP 410): {message}")]
    Gone { what: String, message: String },
    #[error("GitHub rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    /// Unreachable, timing out, 5xx after every attempt, or its breaker is open.
    #[error("GitHub is unavailable: {0}")]
    Unavailable(String),
    #[error("GitHub sent an unexpected answer: {0}")]
    BadAnswer(String),
}

pub struct GitHub {
    base: String,
    upstream: Upstream,
    web_host: String,
    /// The config key of the token, for refusals.
    token_key: String,
}

impl GitHub {
    /// The review client (`review.github`; metrics and `/readyz` as `github`).
    pub fn new(config: &GitHubConfig) -> Result<Self, String> {
        Self::named(config, "github", "GitHub", "review.github")
    }

    /// A client of its own for the config block `key` (`ticketing.github`): its own breaker,
    /// metrics and `/readyz` entry `id`.
    pub fn named(config: &GitHubConfig, id: &str, name: &str, key: &str) -> Result<Self, String> {
        let upstream = Upstream::new(
            id,
            name,
            &config.endpoint.settings,
            config.endpoint.auth.clone(),
        )
        .map_err(|e| format!("{key}: {e}"))?
        .answering_rate_limits();
        Ok(Self {
            base: config.endpoint.url.clone(),
            upstream,
            web_host: config.web_host.clone(),
            token_key: format!("{key}.token"),
        })
    }

    pub fn health(&self) -> Health {
        self.upstream.guard().health()
    }

    /// The host pull request URLs are on (`github.com`, or the Enterprise host).
    pub fn web_host(&self) -> &str {
        &self.web_host
    }

    /// One request to `path` (`/repos/o/r/pulls/1`, query included), `accept` as the media
    /// type, `body` as JSON. `what` names the resource in a 404. Non-2xx answers are errors.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Reply, GitHubError> {
        let url = format!("{}{path}", self.base);
        // A PATCH here sets fields to values (an issue's state): repeating it changes nothing.
        let retry = if method == Method::GET || method == Method::PATCH {
            Retry::Read
        } else {
            Retry::Write
        };
        let reply = self
            .upstream
            .send(retry, || {
                let mut request = self
                    .upstream
                    .http()
                    .request(method.clone(), &url)
                    .header(ACCEPT, accept)
                    .header("x-github-api-version", API_VERSION)
                    .header(reqwest::header::USER_AGENT, "toolgate");
                if let Some(body) = body {
                    request = request.json(body);
                }
                Ok(request)
            })
            .await
            .map_err(|e| GitHubError::Unavailable(e.into_message()))?;
        check(reply, what, &self.token_key)
    }

    /// A GET answering JSON.
    pub async fn get_json(&self, path: &str, what: &str) -> Result<Value, GitHubError> {
        let reply = self
            .request(Method::GET, path, JSON_MEDIA_TYPE, None, what)
            .await?;
        json(&reply)
    }
}

pub(crate) fn json(reply: &Reply) -> Result<Value, GitHubError> {
    serde_json::from_slice(&reply.body)
        .map_err(|e| GitHubError::BadAnswer(format!("not JSON: {e}")))
}

/// A rate-limit answer: 429, or 403 with no requests left.
fn rate_limited(status: StatusCode, headers: &HeaderMap) -> bool {
    let remaining_zero = header(headers, "x-ratelimit-remaining").as_deref() == Some("0");
    status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && (remaining_zero || headers.contains_key("retry-after")))
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

/// How long until the limit lifts, from `retry-after` or `x-ratelimit-reset`.
pub fn reset_wait(headers: &HeaderMap) -> Option<std::time::Duration> {
    if let Some(wait) = crate::adapters::http::retry_after(headers) {
        return Some(wait);
    }
    let epoch = header(headers, "x-ratelimit-reset")?.parse::<i64>().ok()?;
    let ms = epoch.saturating_mul(1000) - jiff::Timestamp::now().as_millisecond();
    Some(std::time::Duration::from_millis(
        u64::try_from(ms).unwrap_or(0),
    ))
}

/// When the limit lifts, from `retry-after` (seconds) or `x-ratelimit-reset` (epoch seconds).
pub fn reset_text(headers: &HeaderMap) -> String {
    if let Some(secs) = header(headers, "retry-after").and_then(|s| s.parse::<u64>().ok()) {
        return format!("retry after {secs}s (retry-after)");
    }
    if let Some(epoch) = header(headers, "x-ratelimit-reset").and_then(|s| s.parse::<i64>().ok())
        && let Ok(at) = jiff::Timestamp::from_second(epoch)
    {
        return format!("it resets at {at} (x-ratelimit-reset)");
    }
    "GitHub did not say when it resets; wait a minute".into()
}

fn check(reply: Reply, what: &str, token_key: &str) -> Result<Reply, GitHubError> {
    let status = reply.status;
    if status.is_success() {
        return Ok(reply);
    }
    if rate_limited(status, &reply.headers) {
        return Err(GitHubError::RateLimited {
            status: status.as_u16(),
            resets: reset_text(&reply.headers),
            wait: reset_wait(&reply.headers),
        });
    }
    let message = error_text(&reply);
    Err(match status {
        StatusCode::NOT_FOUND => GitHubError::NotFound(what.to_string()),
        StatusCode::GONE => GitHubError::Gone {
            what: what.to_string(),
            message,
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => GitHubError::Unauthorized {
            status: status.as_u16(),
            message,
            setting: token_key.to_string(),
        },
        s => GitHubError::Rejected {
            status: s.as_u16(),
            message,
        },
    })
}

/// GitHub's `{message, errors?, documentation_url}`: the message, and for a 422 what each
/// error names (`title: missing_field`), bounded.
fn error_text(reply: &Reply) -> String {
    let doc = serde_json::from_slice::<Value>(&reply.body).ok();
    let text = doc
        .as_ref()
        .and_then(|v| v.get("message").and_then(Value::as_str))
        .map(|m| {
            let details: Vec<String> = doc
                .as_ref()
                .and_then(|v| v.get("errors").and_then(Value::as_array))
                .map(|errors| {
                    errors
                        .iter()
                        .map(|e| match e {
                            Value::String(s) => s.clone(),
                            e => {
                                let field = e.get("field").and_then(Value::as_str);
                                let words = e
                                    .get("message")
                                    .or_else(|| e.get("code"))
                                    .and_then(Value::as_str)
                                    .unwrap_or("invalid");
                                match field {
                                    Some(f) => format!("{f}: {words}"),
                                    None => words.to_string(),
                                }
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            if details.is_empty() {
                m.to_string()
            } else {
                format!("{m} ({})", details.join("; "))
            }
        })
        .unwrap_or_else(|| reply.text());
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn reply(status: u16, headers: &[(&'static str, &'static str)]) -> Reply {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_static(v));
        }
        Reply {
            status: StatusCode::from_u16(status).expect("status"),
            body: br#"{"message":"API rate limit exceeded"}"#.to_vec(),
            headers: map,
        }
    }

    #[test]
    fn rate_limits_name_the_reset_time_and_other_403s_are_refusals() {
        let err = check(
            reply(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1767225600"),
                ],
            ),
            "pull",
            "review.github.token",
        )
        .expect_err("limited");
        assert_eq!(
            err.to_string(),
            "GitHub's rate limit is reached (HTTP 403); it resets at 2026-01-01T00:00:00Z (x-ratelimit-reset)"
        );
        let err = check(reply(429, &[("retry-after", "30")]), "pull", "k").expect_err("limited");
        assert!(err.to_string().contains("retry after 30s"), "{err}");
        let err =
            check(reply(403, &[("x-ratelimit-remaining", "12")]), "pull", "k").expect_err("403");
        assert!(
            matches!(err, GitHubError::Unauthorized { status: 403, .. }),
            "{err:?}"
        );
        let err = check(reply(404, &[]), "pull request o/r#1", "k").expect_err("404");
        assert!(err.to_string().contains("no pull request o/r#1"), "{err}");
    }
}
