//! The circuit breaker of one upstream: closed → open after consecutive upstream faults →
//! one half-open probe after a cool-down. Time is passed in so tests can drive it. Knows
//! nothing of HTTP: what counts as a fault is `guard`'s decision.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Consecutive upstream faults that open the breaker, unless configured otherwise.
pub const BREAKER_THRESHOLD: u32 = 5;
/// How long an open breaker refuses calls before letting one probe through, by default.
pub const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);

/// When a breaker opens and for how long (config `breaker: {failures, cooldown}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failures: u32,
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: BREAKER_THRESHOLD,
            cooldown: BREAKER_COOLDOWN,
        }
    }
}

/// What `/readyz` and the breaker gauge show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    /// Gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

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

/// Circuit breaker state machine.
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
            threshold: threshold.max(1),
            cooldown,
        }
    }

    pub fn from_config(config: BreakerConfig) -> Self {
        Self::new(config.failures, config.cooldown)
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

    pub fn state(&self) -> BreakerState {
        match self.state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
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
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow(t0 + Duration::from_secs(29)), "open: fail fast");
        assert!(
            b.allow(t0 + Duration::from_secs(30)),
            "cooldown over: probe"
        );
        assert_eq!(b.state(), BreakerState::HalfOpen);
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
        assert_eq!(b.state(), BreakerState::Closed);
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
}
