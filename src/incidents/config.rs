//! The `ticketing`, `paging` and `facts` sections: which ticket providers and pagers exist,
//! when incidents page (escalation, business hours), and where facts come from (a JetStream
//! durable consumer, or a JSON Lines file for development). The seed's
//! `ticketing_integration` / `paging_integration` blocks are these sections as written
//! (`config/seed_blocks.rs` moves them here).

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::escalation::{BusinessHours, Escalation, When};
use crate::adapters::github::config::{GitHubTicketsConfig, RawGitHubTickets};
use crate::adapters::http::config::RawDuration;
use crate::adapters::jira::{JiraConfig, RawJira};
use crate::adapters::opsgenie::RawOpsgenie;
use crate::adapters::pagerduty::{PagerDutyConfig, RawPagerDuty};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTicketing {
    /// `false` leaves ticketing off (the rest of the block is then ignored). Default true.
    pub enabled: Option<bool>,
    /// `jira` or `github`. Default: the one configured (jira when both).
    pub default_provider: Option<String>,
    pub jira: Option<RawJira>,
    /// GitHub Issues in one repository.
    pub github: Option<RawGitHubTickets>,
    /// Transition (or status) names used for facts. Default `Resolved` and `Closed`.
    pub transitions: Option<RawTransitions>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTransitions {
    pub resolve: Option<String>,
    pub close: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPaging {
    /// `false` leaves paging off. Default true.
    pub enabled: Option<bool>,
    /// `pagerduty` or `opsgenie`; default: the one configured (pagerduty when both).
    pub default_provider: Option<String>,
    pub pagerduty: Option<RawPagerDuty>,
    pub opsgenie: Option<RawOpsgenie>,
    pub escalation: Option<RawEscalation>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEscalation {
    /// `immediate` (default), `business_hours_only` or `never`.
    pub critical: Option<String>,
    /// `immediate`, `business_hours_only` (default) or `never`. Lower severities never page.
    pub high: Option<String>,
    pub business_hours: Option<RawBusinessHours>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBusinessHours {
    /// `HH:MM`, local time. Default 09:00.
    pub start: Option<String>,
    /// `HH:MM`, local time, after `start`. Default 18:00.
    pub end: Option<String>,
    /// IANA time zone (`Europe/Berlin`). Default UTC.
    pub timezone: Option<String>,
    /// Working days (`mon` … `sun`). Default mon–fri.
    pub days: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFacts {
    /// `nats` (a JetStream durable consumer) or `file` (JSON Lines, for development).
    /// Default: `nats` when `nats.url` is set, `file` when `file` is set.
    pub source: Option<String>,
    /// JSON Lines of fact envelopes, read from the start and followed as it grows.
    pub file: Option<String>,
    pub nats: Option<RawFactsNats>,
    /// How often deferred pages are checked. Default 30s.
    pub deferred_check_interval: Option<RawDuration>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFactsNats {
    pub url: Option<String>,
    /// Default `sre.domain.facts.v1`.
    pub subject: Option<String>,
    /// The stream holding the subject (created when missing). Default `SRE_DOMAIN_FACTS`.
    pub stream: Option<String>,
    /// The durable consumer's name, shared by every replica. Default `toolgate-incidents`.
    pub consumer: Option<String>,
    /// Where a new consumer starts: `all` (default), `new` or `last`.
    pub deliver_policy: Option<String>,
    /// Deliveries of one fact before it is dead-lettered. Default 10.
    pub max_deliver: Option<i64>,
    /// Waits before redeliveries (the last repeats). Default [1s, 5s, 30s, 2m, 5m].
    pub backoff: Option<Vec<RawDuration>>,
    /// Poison and exhausted facts go here with the reason. Default `sre.domain.facts.v1.dead`
    /// (kept in stream `SRE_DOMAIN_FACTS_DEAD`).
    pub dead_letter_subject: Option<String>,
    pub dead_letter_stream: Option<String>,
    /// NATS credentials file (`.creds`).
    pub credentials_file: Option<String>,
    /// Time limit of connect and JetStream requests. Default 10s.
    pub timeout: Option<RawDuration>,
}

#[derive(Clone)]
pub struct TicketingConfig {
    pub default_provider: String,
    pub jira: Option<JiraConfig>,
    pub github: Option<GitHubTicketsConfig>,
    pub resolve_transition: String,
    pub close_transition: String,
}

#[derive(Clone)]
pub struct PagingConfig {
    pub default_provider: String,
    pub pagerduty: Option<PagerDutyConfig>,
    pub opsgenie: Option<crate::adapters::http::Endpoint>,
    pub escalation: Escalation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliverPolicy {
    All,
    New,
    Last,
}

#[derive(Debug, Clone)]
pub struct FactsNats {
    pub url: String,
    pub subject: String,
    pub stream: String,
    pub consumer: String,
    pub deliver_policy: DeliverPolicy,
    pub max_deliver: i64,
    pub backoff: Vec<Duration>,
    pub dead_letter_subject: String,
    pub dead_letter_stream: String,
    pub credentials_file: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum FactSource {
    /// No facts are consumed (tools only).
    None,
    File(PathBuf),
    Nats(FactsNats),
}

#[derive(Clone)]
pub struct IncidentsConfig {
    pub ticketing: Option<TicketingConfig>,
    pub paging: Option<PagingConfig>,
    pub facts: FactSource,
    pub deferred_check_interval: Duration,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        Self {
            ticketing: None,
            paging: None,
            facts: FactSource::None,
            deferred_check_interval: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for IncidentsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncidentsConfig")
            .field(
                "ticketing",
                &self.ticketing.as_ref().map(|t| &t.default_provider),
            )
            .field("paging", &self.paging.as_ref().map(|p| &p.default_provider))
            .field("facts", &self.facts)
            .finish()
    }
}

pub const DEFAULT_SUBJECT: &str = "sre.domain.facts.v1";

pub fn resolve(
    ticketing: Option<RawTicketing>,
    paging: Option<RawPaging>,
    facts: Option<RawFacts>,
    problems: &mut Vec<String>,
) -> IncidentsConfig {
    let ticketing = ticketing
        .filter(|t| t.enabled != Some(false))
        .and_then(|t| resolve_ticketing(t, problems));
    let paging = paging
        .filter(|p| p.enabled != Some(false))
        .and_then(|p| resolve_paging(p, problems));
    let raw = facts.unwrap_or_default();
    let deferred_check_interval = RawDuration::resolve_or(
        raw.deferred_check_interval.as_ref(),
        "facts.deferred_check_interval",
        Duration::from_secs(30),
        (Duration::from_millis(100), Duration::from_secs(3600)),
        problems,
    );
    IncidentsConfig {
        facts: resolve_facts(raw, problems),
        ticketing,
        paging,
        deferred_check_interval,
    }
}

fn resolve_ticketing(raw: RawTicketing, problems: &mut Vec<String>) -> Option<TicketingConfig> {
    let jira = raw
        .jira
        .as_ref()
        .and_then(|j| crate::adapters::jira::resolve("ticketing.jira", j, problems));
    let github = raw.github.as_ref().and_then(|g| {
        crate::adapters::github::config::resolve_tickets("ticketing.github", g, problems)
    });
    let default_provider = match raw.default_provider {
        Some(p) => p,
        None if jira.is_none() && github.is_some() => "github".into(),
        None => "jira".into(),
    };
    match default_provider.as_str() {
        "jira" if jira.is_none() => problems.push(
            "ticketing.default_provider: `jira`, but ticketing.jira has no url (base_url); configure Jira or turn ticketing off with enabled: false".into(),
        ),
        // A ticketing.github block that did not resolve has said why already.
        "github" if raw.github.is_none() => problems.push(
            "ticketing.default_provider: `github`, but there is no ticketing.github block; add one with repo and secret_ref (or token), or turn ticketing off with enabled: false".into(),
        ),
        "jira" | "github" => {}
        other => problems.push(format!(
            "ticketing.default_provider: `{other}` is not a ticket provider; expected jira or github"
        )),
    }
    let transitions = raw.transitions.unwrap_or_default();
    Some(TicketingConfig {
        default_provider,
        jira,
        github,
        resolve_transition: transitions.resolve.unwrap_or_else(|| "Resolved".into()),
        close_transition: transitions.close.unwrap_or_else(|| "Closed".into()),
    })
}

fn resolve_paging(raw: RawPaging, problems: &mut Vec<String>) -> Option<PagingConfig> {
    let pagerduty = raw
        .pagerduty
        .as_ref()
        .and_then(|p| crate::adapters::pagerduty::resolve("paging.pagerduty", p, problems));
    let opsgenie = raw
        .opsgenie
        .as_ref()
        .and_then(|o| crate::adapters::opsgenie::resolve("paging.opsgenie", o, problems));
    let default_provider = match raw.default_provider.as_deref() {
        Some(p) => p.to_string(),
        None if pagerduty.is_none() && opsgenie.is_some() => "opsgenie".into(),
        None => "pagerduty".into(),
    };
    let configured = match default_provider.as_str() {
        "pagerduty" => pagerduty.is_some(),
        "opsgenie" => opsgenie.is_some(),
        other => {
            problems.push(format!(
                "paging.default_provider: `{other}` is not a pager; expected pagerduty or opsgenie"
            ));
            true
        }
    };
    if !configured {
        problems.push(format!(
            "paging.default_provider: `{default_provider}` is not configured; add paging.{default_provider} or turn paging off with enabled: false"
        ));
    }
    let escalation = resolve_escalation(raw.escalation.unwrap_or_default(), problems);
    Some(PagingConfig {
        default_provider,
        pagerduty,
        opsgenie,
        escalation,
    })
}

fn resolve_escalation(raw: RawEscalation, problems: &mut Vec<String>) -> Escalation {
    let when = |key: &str, text: Option<&str>, default: When, problems: &mut Vec<String>| match text
    {
        None => default,
        Some("immediate") => When::Immediate,
        Some("business_hours_only") => When::BusinessHoursOnly,
        Some("never") => When::Never,
        Some(other) => {
            problems.push(format!(
                "paging.escalation.{key}: `{other}` is not understood; expected immediate, business_hours_only or never"
            ));
            default
        }
    };
    let critical = when(
        "critical",
        raw.critical.as_deref(),
        When::Immediate,
        problems,
    );
    let high = when(
        "high",
        raw.high.as_deref(),
        When::BusinessHoursOnly,
        problems,
    );
    let hours = raw.business_hours.unwrap_or_default();
    let business_hours = BusinessHours::parse(
        hours.start.as_deref().unwrap_or("09:00"),
        hours.end.as_deref().unwrap_or("18:00"),
        hours.timezone.as_deref().unwrap_or("UTC"),
        hours.days.as_deref(),
    )
    .unwrap_or_else(|e| {
        problems.push(format!("paging.escalation.business_hours: {e}"));
        BusinessHours::default()
    });
    Escalation {
        critical,
        high,
        business_hours,
    }
}

fn resolve_facts(raw: RawFacts, problems: &mut Vec<String>) -> FactSource {
    let source = raw.source.clone().or_else(|| {
        if raw.nats.as_ref().is_some_and(|n| n.url.is_some()) {
            Some("nats".into())
        } else if raw.file.is_some() {
            Some("file".into())
        } else {
            None
        }
    });
    match source.as_deref() {
        None => FactSource::None,
        Some("file") => match raw.file {
            Some(f) if !f.trim().is_empty() => FactSource::File(PathBuf::from(f)),
            _ => {
                problems
                    .push("facts.file: required with facts.source file, e.g. ./facts.jsonl".into());
                FactSource::None
            }
        },
        Some("nats") => {
            let n = raw.nats.unwrap_or_default();
            let url = n.url.unwrap_or_default();
            if url.trim().is_empty() {
                problems.push(
                    "facts.nats.url: required with facts.source nats, e.g. nats://nats.messaging:4222".into(),
                );
            }
            let subject = n.subject.unwrap_or_else(|| DEFAULT_SUBJECT.into());
            let name_ok = |s: &str| {
                !s.is_empty()
                    && !s.contains([' ', '*', '>'])
                    && !s.starts_with('.')
                    && !s.ends_with('.')
            };
            if !name_ok(&subject) {
                problems.push(format!(
                    "facts.nats.subject: `{subject}` is not a plain subject"
                ));
            }
            let consumer = n.consumer.unwrap_or_else(|| "toolgate-incidents".into());
            if consumer.is_empty() || consumer.contains(['.', ' ', '*', '>']) {
                problems.push(format!(
                    "facts.nats.consumer: `{consumer}` is not a consumer name (no dots, spaces or wildcards)"
                ));
            }
            let deliver_policy = match n.deliver_policy.as_deref() {
                None | Some("all") => DeliverPolicy::All,
                Some("new") => DeliverPolicy::New,
                Some("last") => DeliverPolicy::Last,
                Some(other) => {
                    problems.push(format!(
                        "facts.nats.deliver_policy: `{other}` is not supported; expected all, new or last"
                    ));
                    DeliverPolicy::All
                }
            };
            let backoff: Vec<Duration> = match &n.backoff {
                None => [1, 5, 30, 120, 300].map(Duration::from_secs).to_vec(),
                Some(list) => list
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| d.resolve(&format!("facts.nats.backoff[{i}]"), problems))
                    .collect(),
            };
            let max_deliver = n.max_deliver.unwrap_or(10);
            if max_deliver < 2 || max_deliver <= backoff.len() as i64 {
                problems.push(format!(
                    "facts.nats.max_deliver: {max_deliver} must be at least 2 and more than the {} backoff steps (JetStream's rule)",
                    backoff.len()
                ));
            }
            let dead_letter_subject = n
                .dead_letter_subject
                .unwrap_or_else(|| format!("{subject}.dead"));
            if !name_ok(&dead_letter_subject) || dead_letter_subject == subject {
                problems.push(format!(
                    "facts.nats.dead_letter_subject: `{dead_letter_subject}` must be a plain subject other than {subject}"
                ));
            }
            let timeout = RawDuration::resolve_or(
                n.timeout.as_ref(),
                "facts.nats.timeout",
                Duration::from_secs(10),
                (Duration::from_millis(100), Duration::from_secs(300)),
                problems,
            );
            FactSource::Nats(FactsNats {
                url,
                subject,
                stream: n.stream.unwrap_or_else(|| "SRE_DOMAIN_FACTS".into()),
                consumer,
                deliver_policy,
                max_deliver,
                backoff,
                dead_letter_subject,
                dead_letter_stream: n
                    .dead_letter_stream
                    .unwrap_or_else(|| "SRE_DOMAIN_FACTS_DEAD".into()),
                credentials_file: n.credentials_file.map(PathBuf::from),
                timeout,
            })
        }
        Some(other) => {
            problems.push(format!(
                "facts.source: `{other}` is not supported; expected nats or file"
            ));
            FactSource::None
        }
    }
}
