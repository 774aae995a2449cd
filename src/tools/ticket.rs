//! ticket.* tools (toolset `ticket`) on the ticket providers (`adapters::ticket`): read and
//! search tickets; create, comment, transition (writes: by default comments run at once,
//! creating and transitioning need approval, see policies/default.yaml). Answers carry ticket
//! text written by people, so they are marked untrusted. Owns the mapping of `TicketError`.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::ticket::{NewTicket, Ticket, TicketError, TicketProvider};
use crate::core::context::ToolContext;
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::tool::{Preview, Risk, Target, Tool, TypedTool, typed};

pub fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        typed(TicketGet),
        typed(TicketSearch),
        typed(TicketCreate),
        typed(TicketComment),
        typed(TicketTransition),
    ]
}

const TOOLSET: &str = "ticket";
const UNTRUSTED: &str = "Ticket text is untrusted upstream text.";

impl From<TicketError> for ToolError {
    fn from(e: TicketError) -> Self {
        let kind = match &e {
            TicketError::NotConfigured(_)
            | TicketError::Unavailable(_)
            | TicketError::RateLimited { .. } => ToolErrorKind::Upstream,
            TicketError::NotFound(_) => ToolErrorKind::NotFound,
            TicketError::Invalid(_) => ToolErrorKind::InvalidArguments,
            TicketError::Forbidden(_) => ToolErrorKind::Forbidden,
        };
        ToolError::new(kind, e.to_string())
    }
}

/// The provider asked for (or the default one), or the error saying how to configure it.
fn provider<'a>(
    ctx: &'a ToolContext,
    name: Option<&str>,
) -> Result<&'a Arc<dyn TicketProvider>, ToolError> {
    let ticketing = ctx.adapters.ticketing.as_ref().ok_or_else(|| {
        ToolError::new(
            ToolErrorKind::Upstream,
            "ticketing is not configured: add a `ticketing:` section (jira: url, project_key, email, api_token; or github: repo, secret_ref)",
        )
    })?;
    Ok(ticketing.provider(name)?)
}

/// What policy sees: the provider and the ticket.
fn target(provider: Option<&str>, key: Option<&str>) -> Target {
    Target {
        kind: Some(format!("Ticket/{}", provider.unwrap_or("default"))),
        name: key.map(str::to_string),
        ..Target::default()
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyParams {
    /// Ticket key: Jira `SRE-12`; GitHub Issues `org/repo#12` (or `#12`, `12`).
    #[schemars(regex(
        pattern = r"^([A-Za-z0-9_-]{1,64}|([A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100})?#[0-9]{1,10})$"
    ))]
    pub key: String,
    /// Provider, jira or github (default: the configured one).
    pub provider: Option<String>,
}

pub struct TicketGet;

impl TypedTool for TicketGet {
    type Params = KeyParams;
    type Output = Ticket;
    const NAME: &'static str = "ticket.get";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Read a ticket";
    const DESCRIPTION: &'static str = "Read one ticket: summary, status, priority, labels.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const UNTRUSTED: Option<&'static str> = Some(UNTRUSTED);

    fn target(&self, p: &KeyParams) -> Option<Target> {
        Some(target(p.provider.as_deref(), Some(&p.key)))
    }

    async fn call(&self, ctx: &ToolContext, p: KeyParams) -> Result<Ticket, ToolError> {
        Ok(provider(ctx, p.provider.as_deref())?.get(&p.key).await?)
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// JQL for Jira, issue search terms for GitHub (e.g. `label:incident-42`).
    #[schemars(length(min = 1, max = 2000))]
    pub query: String,
    /// Most tickets (default 20).
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// Provider, jira or github (default: the configured one).
    pub provider: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchOutput {
    pub count: usize,
    pub tickets: Vec<Ticket>,
}

pub struct TicketSearch;

impl TypedTool for TicketSearch {
    type Params = SearchParams;
    type Output = SearchOutput;
    const NAME: &'static str = "ticket.search";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Search tickets";
    const DESCRIPTION: &'static str =
        "Find tickets with a query (Jira: JQL; GitHub Issues: its search syntax).";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("tickets");
    const UNTRUSTED: Option<&'static str> = Some(UNTRUSTED);

    fn target(&self, p: &SearchParams) -> Option<Target> {
        Some(target(p.provider.as_deref(), None))
    }

    async fn call(&self, ctx: &ToolContext, p: SearchParams) -> Result<SearchOutput, ToolError> {
        let tickets = provider(ctx, p.provider.as_deref())?
            .search(&p.query, p.limit.unwrap_or(20))
            .await?;
        Ok(SearchOutput {
            count: tickets.len(),
            tickets,
        })
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateParams {
    /// One-line title.
    #[schemars(length(min = 1, max = 255))]
    pub summary: String,
    /// Plain text; blank lines separate paragraphs.
    #[serde(default)]
    pub description: String,
    /// critical, high, medium, low or info (sets the priority).
    #[schemars(regex(pattern = "^(critical|high|medium|low|info)$"))]
    pub severity: String,
    /// Labels (no spaces).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Provider, jira or github (default: the configured one).
    pub provider: Option<String>,
}

pub struct TicketCreate;

impl TypedTool for TicketCreate {
    type Params = CreateParams;
    type Output = Ticket;
    const NAME: &'static str = "ticket.create";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Create a ticket";
    const DESCRIPTION: &'static str = "Open a ticket; priority follows severity.";
    const RISK: Risk = Risk::Write;

    fn target(&self, p: &CreateParams) -> Option<Target> {
        Some(target(p.provider.as_deref(), None))
    }

    async fn preview(
        &self,
        _ctx: &ToolContext,
        p: &CreateParams,
    ) -> Result<Option<Preview>, ToolError> {
        Ok(Some(Preview {
            summary: format!("would open a {} ticket: {}", p.severity, p.summary),
            ..Preview::default()
        }))
    }

    async fn call(&self, ctx: &ToolContext, p: CreateParams) -> Result<Ticket, ToolError> {
        if let Some(bad) = p
            .labels
            .iter()
            .find(|l| l.is_empty() || l.contains(char::is_whitespace))
        {
            return Err(ToolError::invalid_arguments(format!(
                "argument `labels`: `{bad}` has whitespace or is empty; use e.g. incident-42"
            )));
        }
        let ticket = NewTicket {
            summary: p.summary,
            description: p.description,
            labels: p.labels,
            severity: p.severity,
        };
        Ok(provider(ctx, p.provider.as_deref())?
            .create(&ticket)
            .await?)
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentParams {
    /// Ticket key: Jira `SRE-12`; GitHub Issues `org/repo#12` (or `#12`, `12`).
    #[schemars(regex(
        pattern = r"^([A-Za-z0-9_-]{1,64}|([A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100})?#[0-9]{1,10})$"
    ))]
    pub key: String,
    /// Plain text.
    #[schemars(length(min = 1, max = 30000))]
    pub text: String,
    /// Provider, jira or github (default: the configured one).
    pub provider: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Done {
    pub key: String,
    /// The ticket's status after the call, when it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

pub struct TicketComment;

impl TypedTool for TicketComment {
    type Params = CommentParams;
    type Output = Done;
    const NAME: &'static str = "ticket.comment";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Comment on a ticket";
    const DESCRIPTION: &'static str = "Add a plain-text comment to a ticket.";
    const RISK: Risk = Risk::Write;

    fn target(&self, p: &CommentParams) -> Option<Target> {
        Some(target(p.provider.as_deref(), Some(&p.key)))
    }

    async fn call(&self, ctx: &ToolContext, p: CommentParams) -> Result<Done, ToolError> {
        provider(ctx, p.provider.as_deref())?
            .comment(&p.key, &p.text)
            .await?;
        Ok(Done {
            key: p.key,
            status: None,
        })
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionParams {
    /// Ticket key: Jira `SRE-12`; GitHub Issues `org/repo#12` (or `#12`, `12`).
    #[schemars(regex(
        pattern = r"^([A-Za-z0-9_-]{1,64}|([A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100})?#[0-9]{1,10})$"
    ))]
    pub key: String,
    /// Transition name, e.g. Resolved; GitHub: resolved, closed, not_planned, reopen.
    #[schemars(length(min = 1, max = 100))]
    pub transition: String,
    /// Provider, jira or github (default: the configured one).
    pub provider: Option<String>,
}

pub struct TicketTransition;

impl TypedTool for TicketTransition {
    type Params = TransitionParams;
    type Output = Done;
    const NAME: &'static str = "ticket.transition";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Move a ticket";
    const DESCRIPTION: &'static str = "Move a ticket through a workflow transition found by name.";
    const RISK: Risk = Risk::Write;

    fn target(&self, p: &TransitionParams) -> Option<Target> {
        Some(target(p.provider.as_deref(), Some(&p.key)))
    }

    async fn preview(
        &self,
        _ctx: &ToolContext,
        p: &TransitionParams,
    ) -> Result<Option<Preview>, ToolError> {
        Ok(Some(Preview {
            summary: format!("would move {} through `{}`", p.key, p.transition),
            ..Preview::default()
        }))
    }

    async fn call(&self, ctx: &ToolContext, p: TransitionParams) -> Result<Done, ToolError> {
        let status = provider(ctx, p.provider.as_deref())?
            .transition(&p.key, &p.transition)
            .await?;
        Ok(Done {
            key: p.key,
            status: Some(status),
        })
    }
}
