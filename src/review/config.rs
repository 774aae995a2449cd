//! The `review` config section: PR-QUEST (`review.prquest`, the kit's endpoint keys), GitHub
//! (`review.github`: url, token), the diff cap, the retry backoff of analyses made without
//! PR-QUEST, how often an outage is told again, and documentation links per risk rule. `config.rs` embeds the raw block and calls
//! [`resolve`]; the checks live here.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::github::config::{GitHubConfig, RawGitHub};
use crate::adapters::http::config::RawDuration;
use crate::adapters::prquest::config::{PrQuestConfig, RawPrQuest};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReview {
    /// The PR-QUEST service (grouping by its LLM). Unset: every analysis uses toolgate's own
    /// grouping and says `degraded: true`.
    pub prquest: Option<RawPrQuest>,
    /// GitHub's REST API: `url` (default https://api.github.com) and `token`.
    pub github: Option<RawGitHub>,
    /// Larger diffs are not analysed (default 3 MiB).
    pub max_diff_bytes: Option<usize>,
    /// First wait before PR-QUEST is asked again for a degraded analysis (default 30s; doubles
    /// per failure up to `retry_max_backoff`).
    pub retry_backoff: Option<RawDuration>,
    /// Longest wait between retries (default 30m).
    pub retry_max_backoff: Option<RawDuration>,
    /// How often queued analyses and due retries are looked for (default 5s).
    pub poll_interval: Option<RawDuration>,
    /// Administrators hear of a PR-QUEST outage once, and again only after this long while it
    /// lasts (default 15m); the notices held back are counted in the next one.
    pub notice_interval: Option<RawDuration>,
    /// Documentation links per risk rule (replacing the built-in links of that rule).
    pub doc_links: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewConfig {
    pub prquest: Option<PrQuestConfig>,
    pub github: GitHubConfig,
    pub max_diff_bytes: usize,
    pub retry_backoff: Duration,
    pub retry_max_backoff: Duration,
    pub poll_interval: Duration,
    pub notice_interval: Duration,
    pub doc_links: BTreeMap<String, Vec<String>>,
}

pub const DEFAULT_MAX_DIFF_BYTES: usize = 3 << 20;

impl ReviewConfig {
    /// No PR-QUEST, api.github.com, defaults (tests, the bench).
    pub fn defaults() -> Self {
        Self {
            prquest: None,
            github: GitHubConfig::public(),
            max_diff_bytes: DEFAULT_MAX_DIFF_BYTES,
            retry_backoff: Duration::from_secs(30),
            retry_max_backoff: Duration::from_secs(1800),
            poll_interval: Duration::from_secs(5),
            notice_interval: Duration::from_secs(15 * 60),
            doc_links: BTreeMap::new(),
        }
    }
}

/// `None` when there is no `review:` section (the toolset is then not offered by default).
pub fn resolve(raw: Option<RawReview>, problems: &mut Vec<String>) -> Option<ReviewConfig> {
    let raw = raw?;
    let d = ReviewConfig::defaults();
    let range =
        |min_ms: u64, max_s: u64| (Duration::from_millis(min_ms), Duration::from_secs(max_s));
    let max_diff_bytes = match raw.max_diff_bytes {
        Some(n) if n >= 1024 => n,
        Some(n) => {
            problems.push(format!(
                "review.max_diff_bytes: {n} is too small; expected at least 1024"
            ));
            d.max_diff_bytes
        }
        None => d.max_diff_bytes,
    };
    let retry_backoff = RawDuration::resolve_or(
        raw.retry_backoff.as_ref(),
        "review.retry_backoff",
        d.retry_backoff,
        range(10, 86_400),
        problems,
    );
    let retry_max_backoff = RawDuration::resolve_or(
        raw.retry_max_backoff.as_ref(),
        "review.retry_max_backoff",
        d.retry_max_backoff,
        range(10, 86_400),
        problems,
    );
    if retry_max_backoff < retry_backoff {
        problems.push("review.retry_max_backoff: shorter than review.retry_backoff".into());
    }
    let poll_interval = RawDuration::resolve_or(
        raw.poll_interval.as_ref(),
        "review.poll_interval",
        d.poll_interval,
        range(10, 3600),
        problems,
    );
    let notice_interval = RawDuration::resolve_or(
        raw.notice_interval.as_ref(),
        "review.notice_interval",
        d.notice_interval,
        range(10, 7 * 86_400),
        problems,
    );
    let doc_links = raw.doc_links.unwrap_or_default();
    for (rule, links) in &doc_links {
        if !crate::review::risk::RULES
            .iter()
            .any(|(name, _, _)| name == rule)
        {
            let names: Vec<&str> = crate::review::risk::RULES
                .iter()
                .map(|(n, _, _)| *n)
                .collect();
            problems.push(format!(
                "review.doc_links: `{rule}` is no risk rule; rules: {}",
                names.join(", ")
            ));
        }
        for link in links {
            if !(link.starts_with("https://") || link.starts_with("http://")) {
                problems.push(format!(
                    "review.doc_links.{rule}: `{link}` is not an http(s) URL"
                ));
            }
        }
    }
    Some(ReviewConfig {
        prquest: crate::adapters::prquest::config::resolve(raw.prquest.as_ref(), problems),
        github: crate::adapters::github::config::resolve(raw.github.as_ref(), problems),
        max_diff_bytes,
        retry_backoff,
        retry_max_backoff,
        poll_interval,
        notice_interval,
        doc_links,
    })
}
