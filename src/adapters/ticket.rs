//! What toolgate needs of a ticket system, whichever it is: [`TicketProvider`] (Jira today;
//! GitHub Issues slots in beside it), the providers configured ([`Ticketing`]), and the error
//! every provider maps its answers to. Owns no protocol.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;

use super::http::Health;

/// A ticket as the tools and the facts consumer see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Ticket {
    /// The provider's key (`SRE-12`).
    pub key: String,
    pub summary: String,
    /// The workflow status by name (`Open`, `Resolved`).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    pub labels: Vec<String>,
    /// Link for humans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// What a new ticket says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub summary: String,
    /// Plain text, paragraphs separated by blank lines.
    pub description: String,
    pub labels: Vec<String>,
    /// The incident's severity (`critical`, `high`, `medium`, `low`, `info`): the provider maps
    /// it to its own priority.
    pub severity: String,
}

/// Why a ticket call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The provider is not configured (no section, or not this provider).
    #[error("{0}")]
    NotConfigured(String),
    #[error("{0}")]
    NotFound(String),
    /// The request was refused as wrong (400/422: the provider's own words).
    #[error("{0}")]
    Invalid(String),
    /// The credentials were refused (401/403).
    #[error("{0}")]
    Forbidden(String),
    /// No answer: down, timed out, 5xx, 429 after retries, breaker open.
    #[error("{0}")]
    Unavailable(String),
    /// The provider is rate limiting toolgate: try again after `retry_after` (the message
    /// says when).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
}

impl TicketError {
    /// Whether trying again later may succeed (the fact is redelivered, not dead-lettered).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TicketError::Unavailable(_) | TicketError::RateLimited { .. }
        )
    }

    /// How long the provider asked to be left alone, when it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            TicketError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl From<super::http::CallError> for TicketError {
    fn from(e: super::http::CallError) -> Self {
        match e.retry_after() {
            Some(retry_after) => TicketError::RateLimited {
                message: e.to_string(),
                retry_after,
            },
            None => TicketError::Unavailable(e.into_message()),
        }
    }
}

/// A ticket system. Every call goes through the upstream kit.
pub trait TicketProvider: Send + Sync {
    /// `jira`, `github`: the name config and the store use.
    fn name(&self) -> &'static str;
    fn create<'a>(&'a self, ticket: &'a NewTicket) -> BoxFuture<'a, Result<Ticket, TicketError>>;
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Ticket, TicketError>>;
    /// Tickets matching the provider's query language (JQL for Jira), at most `limit`.
    fn search<'a>(
        &'a self,
        query: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Ticket>, TicketError>>;
    /// The open or closed ticket carrying `label` (the incident's label), if any: how a
    /// redelivered fact finds the ticket a crash kept it from recording.
    fn find_labelled<'a>(
        &'a self,
        label: &'a str,
    ) -> BoxFuture<'a, Result<Option<Ticket>, TicketError>>;
    fn comment<'a>(&'a self, key: &'a str, text: &'a str)
    -> BoxFuture<'a, Result<(), TicketError>>;
    /// Moves the ticket through the transition named `name` (case-insensitive), or to the
    /// status of that name; already there is success. Returns the new status.
    fn transition<'a>(
        &'a self,
        key: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<String, TicketError>>;
    fn health(&self) -> Health;
}

/// The configured ticket providers and the default one.
#[derive(Clone, Default)]
pub struct Ticketing {
    pub default_provider: String,
    pub providers: BTreeMap<&'static str, Arc<dyn TicketProvider>>,
    /// Transition names: resolving and closing.
    pub resolve_transition: String,
    pub close_transition: String,
}

impl Ticketing {
    /// The provider `name`, or the default one.
    pub fn provider(&self, name: Option<&str>) -> Result<&Arc<dyn TicketProvider>, TicketError> {
        let name = name.unwrap_or(&self.default_provider);
        self.providers.get(name).ok_or_else(|| {
            TicketError::NotConfigured(format!(
                "ticket provider `{name}` is not configured; configured: {}",
                self.providers
                    .keys()
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    pub fn health(&self) -> Vec<Health> {
        self.providers.values().map(|p| p.health()).collect()
    }
}
