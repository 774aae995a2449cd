//! Per-principal rate limits on tool calls and on approval requests (calls held for approval),
//! kept in the core so one principal's budget is shared by every transport (MCP over HTTP and
//! stdio, /rpc, /a2a); transports only turn the refusal into their answer (HTTP 429 with
//! `Retry-After`). Keyed by the principal's `sub`, so anonymous loopback callers (all `local`)
//! share one bucket. It owns no transport, store or policy.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::Serialize;

use super::config::LimitsConfig;

/// Past this many remembered principals, those whose bucket is full again are forgotten.
const PRUNE_ABOVE: usize = 10_000;

/// Which limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    ToolCalls,
    ApprovalRequests,
}

impl Limit {
    /// The config key that sets it, as errors name it.
    pub fn key(self) -> &'static str {
        match self {
            Limit::ToolCalls => "limits.tool_calls_per_minute",
            Limit::ApprovalRequests => "limits.approval_requests_per_hour",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Limit::ToolCalls => "tool calls per minute",
            Limit::ApprovalRequests => "calls held for approval per hour",
        }
    }
}

/// A call refused by a rate limit: which one, its rate, and when the principal may try again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimited {
    pub limit: Limit,
    /// The configured rate (per minute or per hour, as the limit's key says).
    pub rate: u32,
    /// Whole seconds until one more call would pass (at least 1).
    pub retry_after_seconds: u64,
}

impl RateLimited {
    /// What the caller reads: which limit, its config key, and when to retry.
    pub fn message(&self, sub: &str) -> String {
        format!(
            "rate limit: `{sub}` may make at most {} {} ({}); nothing was executed; retry in {} s",
            self.rate,
            self.limit.what(),
            self.limit.key(),
            self.retry_after_seconds
        )
    }
}

struct Bucket {
    limit: Limit,
    rate: u32,
    limiter: DefaultKeyedRateLimiter<String>,
}

impl Bucket {
    fn new(limit: Limit, rate: u32, per: Duration) -> Option<Self> {
        let burst = NonZeroU32::new(rate)?;
        // `rate` calls at once, then one more every `per / rate`.
        let quota = Quota::with_period(per / rate)?.allow_burst(burst);
        Some(Self {
            limit,
            rate,
            limiter: DefaultKeyedRateLimiter::hashmap(quota),
        })
    }

    fn check(&self, sub: &str) -> Result<(), RateLimited> {
        if self.limiter.len() > PRUNE_ABOVE {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&sub.to_string())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                RateLimited {
                    limit: self.limit,
                    rate: self.rate,
                    retry_after_seconds: wait.as_secs_f64().ceil().max(1.0) as u64,
                }
            })
    }
}

/// The limits of one server (a `0` in the config turns that limit off).
pub struct RateLimits {
    tool_calls: Option<Bucket>,
    approval_requests: Option<Bucket>,
}

impl RateLimits {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            tool_calls: Bucket::new(
                Limit::ToolCalls,
                config.tool_calls_per_minute,
                Duration::from_secs(60),
            ),
            approval_requests: Bucket::new(
                Limit::ApprovalRequests,
                config.approval_requests_per_hour,
                Duration::from_secs(3600),
            ),
        }
    }

    /// Counts one tool call of `sub`; refused past the limit.
    pub fn tool_call(&self, sub: &str) -> Result<(), RateLimited> {
        self.tool_calls.as_ref().map_or(Ok(()), |b| b.check(sub))
    }

    /// Counts one call of `sub` held for approval; refused past the limit.
    pub fn approval_request(&self, sub: &str) -> Result<(), RateLimited> {
        self.approval_requests
            .as_ref()
            .map_or(Ok(()), |b| b.check(sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(calls: u32, approvals: u32) -> RateLimits {
        RateLimits::new(&LimitsConfig {
            tool_calls_per_minute: calls,
            approval_requests_per_hour: approvals,
        })
    }

    #[test]
    fn each_principal_gets_its_own_burst_then_a_retry_time() {
        let l = limits(3, 0);
        for _ in 0..3 {
            assert_eq!(l.tool_call("alice"), Ok(()));
        }
        let refused = l.tool_call("alice").expect_err("fourth call in a minute");
        assert_eq!(refused.limit, Limit::ToolCalls);
        // One call every 20 s refills the bucket.
        assert!(
            (1..=20).contains(&refused.retry_after_seconds),
            "{refused:?}"
        );
        let message = refused.message("alice");
        assert!(
            message.contains("limits.tool_calls_per_minute") && message.contains("retry in"),
            "{message}"
        );
        assert_eq!(
            l.tool_call("bob"),
            Ok(()),
            "another principal is not held back"
        );
    }

    #[test]
    fn approval_requests_have_their_own_limit_and_zero_turns_a_limit_off() {
        let l = limits(0, 1);
        for _ in 0..1000 {
            assert_eq!(l.tool_call("alice"), Ok(()), "tool calls unlimited");
        }
        assert_eq!(l.approval_request("alice"), Ok(()));
        let refused = l.approval_request("alice").expect_err("second in an hour");
        assert_eq!(refused.limit.key(), "limits.approval_requests_per_hour");
        assert!(refused.retry_after_seconds > 60, "{refused:?}");
    }
}
