//! Which requests may be repeated, and how long to wait between attempts: exponential backoff
//! with full jitter (a uniform wait in `[0, min(max, base·2^(n-1))]`), so replicas retrying the
//! same failed upstream spread out instead of arriving together.
//!
//! The attempt loop itself is in `upstream::Upstream::send` rather than tower's `Retry` layer:
//! requests are rebuilt per attempt (signed client assertions and service tokens must be fresh,
//! and a JWT assertion may not be replayed), which `tower::retry::Policy::clone_request` cannot do.

use std::time::Duration;

/// Whether a request may be repeated. `Read` is for idempotent requests only: GET/HEAD, or a
/// POST that changes nothing (a query, a token introspection) or carries an idempotency key.
/// `Write` goes out once: a lost answer to a POST must not turn into two annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Read,
    Write,
}

/// Attempts per idempotent request and the backoff between them (config `retry: {attempts,
/// backoff, max_backoff}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: no retry).
    pub attempts: u32,
    /// The ceiling of the first wait; doubles per attempt.
    pub backoff: Duration,
    /// No wait is longer than this.
    pub max_backoff: Duration,
    /// A 429's `Retry-After` up to this long is waited out before the next attempt of an
    /// idempotent request; a longer one ends the call with [`super::CallError::RateLimited`].
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// How many attempts a request of this kind gets.
    pub fn attempts_for(&self, retry: Retry) -> u32 {
        match retry {
            Retry::Read => self.attempts.max(1),
            Retry::Write => 1,
        }
    }

    /// The wait before attempt `attempt + 1` (`attempt` ≥ 1 failed attempts so far).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            return Duration::ZERO;
        }
        let draw = getrandom::u64().unwrap_or(millis / 2);
        Duration::from_millis(draw % (millis + 1))
    }

    /// The largest wait after `attempt` failed attempts.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_get_one_attempt_and_reads_the_configured_number() {
        let p = RetryPolicy {
            attempts: 4,
            ..RetryPolicy::default()
        };
        assert_eq!(p.attempts_for(Retry::Write), 1);
        assert_eq!(p.attempts_for(Retry::Read), 4);
        let none = RetryPolicy {
            attempts: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(none.attempts_for(Retry::Read), 1, "at least the first try");
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_capped_ceiling() {
        let p = RetryPolicy {
            attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            ..RetryPolicy::default()
        };
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(3), Duration::from_millis(400));
        assert_eq!(p.ceiling(4), Duration::from_millis(500), "capped");
        assert_eq!(p.ceiling(60), Duration::from_millis(500), "no overflow");
        let draws: Vec<Duration> = (0..200).map(|_| p.backoff(3)).collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_millis(400)));
        // Full jitter: waits spread over the whole range, some well under half the ceiling.
        assert!(draws.iter().any(|d| *d < Duration::from_millis(150)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(250)));
    }
}
