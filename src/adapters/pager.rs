//! What toolgate needs of an on-call pager, whichever it is: [`Pager`] (PagerDuty Events v2 and
//! Opsgenie today; kept small so Opsgenie's successor slots in when its REST API ends on
//! 2027-04-05), the pagers configured ([`Paging`]), and their one error type. Owns no protocol.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;

use super::http::Health;

/// A page to send: one per incident, deduplicated by the incident id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The incident id: PagerDuty's `dedup_key`, Opsgenie's `alias`.
    pub incident_id: String,
    pub summary: String,
    /// `critical`, `high`, `medium`, `low`, `info`.
    pub severity: String,
    /// Where the incident comes from (service, cluster).
    pub source: String,
    pub details: serde_json::Value,
}

/// A page (an alert or an incident of the pager) as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PageStatus {
    /// The incident id it was sent with (dedup key / alias).
    pub incident_id: String,
    /// `triggered`, `acknowledged`, `resolved` (PagerDuty) or `open`, `closed` (Opsgenie).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Who is on call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct OnCall {
    /// Escalation policy or schedule.
    pub schedule: String,
    pub user: String,
    pub level: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    NotConfigured(String),
    #[error("{0}")]
    NotFound(String),
    /// Refused as wrong (400, 422).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    /// No answer: down, timed out, 5xx or 429 after retries, breaker open.
    #[error("{0}")]
    Unavailable(String),
    /// The pager is rate limiting toolgate (a 429 whose `Retry-After` was too long to wait
    /// out): try again after `retry_after`.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
}

impl PageError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PageError::Unavailable(_) | PageError::RateLimited { .. }
        )
    }

    /// How long the pager asked to be left alone, when it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            PageError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl From<super::http::CallError> for PageError {
    fn from(e: super::http::CallError) -> Self {
        match e.retry_after() {
            Some(retry_after) => PageError::RateLimited {
                message: e.to_string(),
                retry_after,
            },
            None => PageError::Unavailable(e.into_message()),
        }
    }
}

/// An on-call pager. Trigger, acknowledge and resolve are keyed by the incident id, so sending
/// one twice changes nothing at the pager.
pub trait Pager: Send + Sync {
    /// `pagerduty`, `opsgenie`.
    fn name(&self) -> &'static str;
    fn trigger<'a>(&'a self, page: &'a PageRequest) -> BoxFuture<'a, Result<(), PageError>>;
    fn acknowledge<'a>(&'a self, incident_id: &'a str) -> BoxFuture<'a, Result<(), PageError>>;
    fn resolve<'a>(&'a self, incident_id: &'a str) -> BoxFuture<'a, Result<(), PageError>>;
    fn get<'a>(&'a self, incident_id: &'a str) -> BoxFuture<'a, Result<PageStatus, PageError>>;
    fn list_oncall(&self) -> BoxFuture<'_, Result<Vec<OnCall>, PageError>>;
    fn health(&self) -> Vec<Health>;
}

/// The configured pagers and the default one.
#[derive(Clone, Default)]
pub struct Paging {
    pub default_provider: String,
    pub providers: BTreeMap<&'static str, Arc<dyn Pager>>,
}

impl Paging {
    pub fn provider(&self, name: Option<&str>) -> Result<&Arc<dyn Pager>, PageError> {
        let name = name.unwrap_or(&self.default_provider);
        self.providers.get(name).ok_or_else(|| {
            PageError::NotConfigured(format!(
                "pager `{name}` is not configured; configured: {}",
                self.providers
                    .keys()
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    pub fn health(&self) -> Vec<Health> {
        self.providers.values().flat_map(|p| p.health()).collect()
    }
}

/// The provider's words from an error body: Jira's `{errorMessages, errors}`, PagerDuty's
/// `{message, errors}`, Opsgenie's `{message}`; else the first line, bounded.
pub fn error_words(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut words: Vec<String> = Vec::new();
    if let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) {
        for key in ["errorMessages", "errors"] {
            match doc.get(key) {
                Some(serde_json::Value::Array(items)) => {
                    words.extend(items.iter().filter_map(|v| v.as_str().map(str::to_string)))
                }
                Some(serde_json::Value::Object(map)) => words.extend(
                    map.iter()
                        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default())),
                ),
                _ => {}
            }
        }
        if let Some(m) = doc.get("message").and_then(|m| m.as_str()) {
            words.insert(0, m.to_string());
        }
    }
    let joined = if words.is_empty() {
        text.lines().next().unwrap_or_default().trim().to_string()
    } else {
        words.join("; ")
    };
    joined.chars().take(300).collect()
}

/// `base` + `segments`, each percent-encoded as one path segment (an incident id or alias
/// never changes the path's shape).
pub fn url_with(base: &str, segments: &[&str]) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(base).map_err(|e| format!("`{base}` is not a URL ({e})"))?;
    url.path_segments_mut()
        .map_err(|()| format!("`{base}` cannot have a path"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// The configured base URL of an upstream block whose `url` has a vendor default.
pub fn with_default_url(url: &Option<String>, default: &str) -> Option<String> {
    Some(url.clone().unwrap_or_else(|| default.to_string()))
}
