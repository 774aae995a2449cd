//! What every outbound request of one upstream passes, whichever client sends it (reqwest in
//! `upstream`, kube's tower stack in `layer`): the breaker's admission, the classification of
//! the result (only upstream faults count toward opening the breaker: connect errors,
//! timeouts, 5xx, 429, broken or oversized answers; never a 4xx that the caller's arguments
//! caused), the per-upstream metrics, and the health `/readyz` shows.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::breaker::{Breaker, BreakerConfig, BreakerState};
use super::metrics;

/// How one request ended, as the breaker and the metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 1xx–3xx.
    Ok,
    /// A 4xx other than 429: the request was wrong (not found, invalid, forbidden), the
    /// upstream is fine.
    Rejected,
    /// 5xx or 429.
    Status(u16),
    Connect,
    Timeout,
    /// The answer broke off or was over the byte cap.
    Broken,
    TooLarge,
}

impl Outcome {
    /// The outcome of an answer with this status.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            429 | 500..=599 => Outcome::Status(status),
            400..=499 => Outcome::Rejected,
            _ => Outcome::Ok,
        }
    }

    /// Whether this says something about the upstream's health.
    pub fn is_fault(self) -> bool {
        !matches!(self, Outcome::Ok | Outcome::Rejected)
    }

    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Rejected => "rejected",
            Outcome::Status(429) => "rate_limited",
            Outcome::Status(_) => "server_error",
            Outcome::Connect => "connect_error",
            Outcome::Timeout => "timeout",
            Outcome::Broken => "broken",
            Outcome::TooLarge => "too_large",
        }
    }
}

/// The state of one upstream for `/readyz`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Health {
    pub name: String,
    /// `ok`, `degraded` (the last request failed) or `down` (breaker open).
    pub state: &'static str,
    pub breaker: BreakerState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
}

#[derive(Default)]
struct Seen {
    last_error: Option<String>,
    last_error_ms: Option<i64>,
    last_success_ms: Option<i64>,
}

/// Breaker, health and metrics of one upstream.
pub struct Guard {
    /// Metric label and `/readyz` key (`prometheus`, `kubernetes/prod`, `issuer`).
    id: String,
    /// How errors name it (`Prometheus`, `cluster prod`).
    name: String,
    breaker: Mutex<Breaker>,
    seen: Mutex<Seen>,
}

/// Leave to send one request; hand it back with the outcome.
#[must_use]
pub struct Permit {
    started: Instant,
}

/// The breaker refused the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit open after repeated failures of {0}; retrying later")]
pub struct CircuitOpen(pub String);

impl Guard {
    pub fn new(id: impl Into<String>, name: impl Into<String>, config: BreakerConfig) -> Self {
        let guard = Self {
            id: id.into(),
            name: name.into(),
            breaker: Mutex::new(Breaker::from_config(config)),
            seen: Mutex::new(Seen::default()),
        };
        metrics::breaker(&guard.id, BreakerState::Closed.gauge());
        guard
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// May a request go out now? Refusals are counted as `circuit_open`.
    pub fn admit(&self) -> Result<Permit, CircuitOpen> {
        let mut breaker = lock(&self.breaker);
        let before = breaker.state();
        let allowed = breaker.allow(Instant::now());
        let after = breaker.state();
        drop(breaker);
        if before != after {
            metrics::breaker(&self.id, after.gauge());
        }
        if allowed {
            Ok(Permit {
                started: Instant::now(),
            })
        } else {
            metrics::request(&self.id, "circuit_open", None);
            Err(CircuitOpen(self.name.clone()))
        }
    }

    /// Record how the admitted request ended. `error` is a description without secrets.
    pub fn finish(&self, permit: Permit, outcome: Outcome, error: Option<&str>) -> Duration {
        let elapsed = permit.started.elapsed();
        metrics::request(&self.id, outcome.label(), Some(elapsed));
        let mut breaker = lock(&self.breaker);
        if outcome.is_fault() {
            breaker.failure(Instant::now());
        } else {
            breaker.success();
        }
        let state = breaker.state();
        drop(breaker);
        metrics::breaker(&self.id, state.gauge());
        let mut seen = lock(&self.seen);
        if outcome.is_fault() {
            seen.last_error = Some(bounded(error.unwrap_or(outcome.label())));
            seen.last_error_ms = Some(now_ms());
        } else {
            seen.last_success_ms = Some(now_ms());
        }
        elapsed
    }

    pub fn breaker_open(&self) -> bool {
        lock(&self.breaker).is_open()
    }

    pub fn health(&self) -> Health {
        let breaker = lock(&self.breaker).state();
        let seen = lock(&self.seen);
        let failing = match (seen.last_error_ms, seen.last_success_ms) {
            (Some(e), Some(s)) => e >= s,
            (Some(_), None) => true,
            _ => false,
        };
        let state = match breaker {
            BreakerState::Open | BreakerState::HalfOpen => "down",
            BreakerState::Closed if failing => "degraded",
            BreakerState::Closed => "ok",
        };
        Health {
            name: self.id.clone(),
            state,
            breaker,
            last_error: seen.last_error.clone(),
            last_error_at: seen.last_error_ms.map(rfc3339),
            last_success_at: seen.last_success_ms.map(rfc3339),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Neither the breaker nor the counters hold an invariant a panic could break.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn bounded(text: &str) -> String {
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_errors_never_open_the_breaker_and_upstream_faults_do() {
        let g = Guard::new(
            "test-guard",
            "Test",
            BreakerConfig {
                failures: 3,
                cooldown: Duration::from_secs(60),
            },
        );
        for status in [400, 401, 403, 404, 409, 422, 400, 404, 404, 404] {
            let p = g.admit().expect("closed");
            g.finish(p, Outcome::of_status(status), None);
        }
        assert!(!g.breaker_open(), "4xx are the caller's");
        assert_eq!(g.health().state, "ok");
        for outcome in [Outcome::of_status(503), Outcome::Timeout] {
            let p = g.admit().expect("closed");
            g.finish(p, outcome, Some("boom"));
        }
        assert_eq!(g.health().state, "degraded");
        let p = g.admit().expect("still closed");
        g.finish(p, Outcome::of_status(429), Some("slow down"));
        assert!(g.breaker_open());
        let err = g.admit().err().expect("open");
        assert_eq!(
            err.to_string(),
            "circuit open after repeated failures of Test; retrying later"
        );
        let h = g.health();
        assert_eq!(h.state, "down");
        assert_eq!(h.breaker, BreakerState::Open);
        assert_eq!(h.last_error.as_deref(), Some("slow down"));
        assert!(metrics::requests_seen("test-guard", "circuit_open") >= 1);
        assert_eq!(metrics::requests_seen("test-guard", "rejected"), 10);
    }

    #[test]
    fn statuses_are_classified_as_the_breaker_needs() {
        assert_eq!(Outcome::of_status(200), Outcome::Ok);
        assert_eq!(Outcome::of_status(304), Outcome::Ok);
        assert!(!Outcome::of_status(404).is_fault());
        assert!(!Outcome::of_status(422).is_fault());
        assert!(Outcome::of_status(429).is_fault());
        assert!(Outcome::of_status(500).is_fault());
        assert!(Outcome::of_status(503).is_fault());
    }
}
