//! The poller's last cycles as `/readyz` and `/metrics` show them: when it last polled, whether
//! that worked, the last success and error. Written by the poller (src/intents/argocd.rs), read
//! by readiness; process-local (each replica polls for itself).

use std::sync::Mutex;

#[derive(Debug, Clone, Default)]
struct Seen {
    last_poll_ms: Option<i64>,
    last_ok_ms: Option<i64>,
    last_error: Option<String>,
    last_error_ms: Option<i64>,
    failures_in_a_row: u32,
    applications: usize,
}

/// The poller's record (interior mutability: the adapter is shared).
#[derive(Debug, Default)]
pub struct PollStatus(Mutex<Seen>);

/// What `/readyz` lists as `argocd/poller`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollHealth {
    /// `ok` (the last cycle worked), `degraded` (it failed; tools may still work) or
    /// `pending` (no cycle finished yet).
    pub state: &'static str,
    pub last_poll_at: Option<String>,
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub failures_in_a_row: u32,
    pub applications: usize,
}

fn rfc3339(ms: Option<i64>) -> Option<String> {
    ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.to_string())
}

impl PollStatus {
    fn with<R>(&self, f: impl FnOnce(&mut Seen) -> R) -> R {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut seen)
    }

    pub fn record_ok(&self, at_ms: i64, applications: usize) {
        self.with(|s| {
            s.last_poll_ms = Some(at_ms);
            s.last_ok_ms = Some(at_ms);
            s.failures_in_a_row = 0;
            s.applications = applications;
        })
    }

    pub fn record_failure(&self, at_ms: i64, error: &str) {
        self.with(|s| {
            s.last_poll_ms = Some(at_ms);
            s.last_error = Some(error.to_string());
            s.last_error_ms = Some(at_ms);
            s.failures_in_a_row = s.failures_in_a_row.saturating_add(1);
        })
    }

    pub fn failures_in_a_row(&self) -> u32 {
        self.with(|s| s.failures_in_a_row)
    }

    pub fn health(&self) -> PollHealth {
        self.with(|s| PollHealth {
            state: match (s.last_poll_ms, s.failures_in_a_row) {
                (None, _) => "pending",
                (Some(_), 0) => "ok",
                _ => "degraded",
            },
            last_poll_at: rfc3339(s.last_poll_ms),
            last_success_at: rfc3339(s.last_ok_ms),
            last_error: s.last_error.clone(),
            last_error_at: rfc3339(s.last_error_ms),
            failures_in_a_row: s.failures_in_a_row,
            applications: s.applications,
        })
    }
}
