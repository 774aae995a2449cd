//! page.* tools (toolset `page`) on the pagers (`adapters::pager`): who is on call and a
//! page's state (reads; PagerDuty needs its REST API token for these), and trigger,
//! acknowledge, resolve by incident id (writes, approval by default). Owns the mapping of
//! `PageError`.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::adapters::pager::{OnCall, PageError, PageRequest, PageStatus, Pager};
use crate::core::context::ToolContext;
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::tool::{Preview, Risk, Target, Tool, TypedTool, typed};

pub fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        typed(PageListOncall),
        typed(PageGet),
        typed(PageTrigger),
        typed(PageAcknowledge),
        typed(PageResolve),
    ]
}

const TOOLSET: &str = "page";
const UNTRUSTED: &str = "Names and summaries are untrusted upstream text.";

impl From<PageError> for ToolError {
    fn from(e: PageError) -> Self {
        let kind = match &e {
            PageError::NotConfigured(_)
            | PageError::Unavailable(_)
            | PageError::RateLimited { .. } => ToolErrorKind::Upstream,
            PageError::NotFound(_) => ToolErrorKind::NotFound,
            PageError::Invalid(_) => ToolErrorKind::InvalidArguments,
            PageError::Forbidden(_) => ToolErrorKind::Forbidden,
        };
        ToolError::new(kind, e.to_string())
    }
}

fn pager<'a>(ctx: &'a ToolContext, name: Option<&str>) -> Result<&'a Arc<dyn Pager>, ToolError> {
    let paging = ctx.adapters.paging.as_ref().ok_or_else(|| {
        ToolError::new(
            ToolErrorKind::Upstream,
            "paging is not configured: add a `paging:` section (pagerduty: routing_key, or opsgenie: api_key)",
        )
    })?;
    Ok(paging.provider(name)?)
}

fn target(provider: Option<&str>, incident: Option<&str>) -> Target {
    Target {
        kind: Some(format!("Page/{}", provider.unwrap_or("default"))),
        name: incident.map(str::to_string),
        ..Target::default()
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderParams {
    /// pagerduty or opsgenie (default: the configured one).
    pub provider: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct OncallOutput {
    pub count: usize,
    pub oncall: Vec<OnCall>,
}

pub struct PageListOncall;

impl TypedTool for PageListOncall {
    type Params = ProviderParams;
    type Output = OncallOutput;
    const NAME: &'static str = "page.list_oncall";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Who is on call";
    const DESCRIPTION: &'static str = "List who is on call, per schedule or escalation policy.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const UNTRUSTED: Option<&'static str> = Some(UNTRUSTED);

    fn target(&self, p: &ProviderParams) -> Option<Target> {
        Some(target(p.provider.as_deref(), None))
    }

    async fn call(&self, ctx: &ToolContext, p: ProviderParams) -> Result<OncallOutput, ToolError> {
        let oncall = pager(ctx, p.provider.as_deref())?.list_oncall().await?;
        Ok(OncallOutput {
            count: oncall.len(),
            oncall,
        })
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentParams {
    /// The incident id (dedup key / alias).
    #[schemars(length(min = 1, max = 200))]
    pub incident_id: String,
    /// pagerduty or opsgenie (default: the configured one).
    pub provider: Option<String>,
}

pub struct PageGet;

impl TypedTool for PageGet {
    type Params = IncidentParams;
    type Output = PageStatus;
    const NAME: &'static str = "page.get";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Read a page";
    const DESCRIPTION: &'static str = "A page's state by incident id.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const UNTRUSTED: Option<&'static str> = Some(UNTRUSTED);

    fn target(&self, p: &IncidentParams) -> Option<Target> {
        Some(target(p.provider.as_deref(), Some(&p.incident_id)))
    }

    async fn call(&self, ctx: &ToolContext, p: IncidentParams) -> Result<PageStatus, ToolError> {
        Ok(pager(ctx, p.provider.as_deref())?
            .get(&p.incident_id)
            .await?)
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerParams {
    /// The incident id (dedup key / alias): one page per incident.
    #[schemars(length(min = 1, max = 200))]
    pub incident_id: String,
    /// What is wrong, one line.
    #[schemars(length(min = 1, max = 1024))]
    pub summary: String,
    /// critical, high, medium, low or info.
    #[schemars(regex(pattern = "^(critical|high|medium|low|info)$"))]
    pub severity: String,
    /// Service or cluster affected.
    #[schemars(length(min = 1, max = 255))]
    pub source: String,
    /// pagerduty or opsgenie (default: the configured one).
    pub provider: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PageDone {
    pub incident_id: String,
    /// triggered, acknowledged or resolved.
    pub action: &'static str,
    pub provider: String,
}

pub struct PageTrigger;

impl TypedTool for PageTrigger {
    type Params = TriggerParams;
    type Output = PageDone;
    const NAME: &'static str = "page.trigger";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Page on-call";
    const DESCRIPTION: &'static str = "Page on-call for an incident; repeated ids page once.";
    const RISK: Risk = Risk::Write;
    const IDEMPOTENT: bool = true;

    fn target(&self, p: &TriggerParams) -> Option<Target> {
        Some(target(p.provider.as_deref(), Some(&p.incident_id)))
    }

    async fn preview(
        &self,
        _ctx: &ToolContext,
        p: &TriggerParams,
    ) -> Result<Option<Preview>, ToolError> {
        Ok(Some(Preview {
            summary: format!(
                "would page on-call ({}) for {}: {}",
                p.severity, p.incident_id, p.summary
            ),
            ..Preview::default()
        }))
    }

    async fn call(&self, ctx: &ToolContext, p: TriggerParams) -> Result<PageDone, ToolError> {
        let pager = pager(ctx, p.provider.as_deref())?;
        pager
            .trigger(&PageRequest {
                incident_id: p.incident_id.clone(),
                summary: p.summary,
                severity: p.severity,
                source: p.source,
                details: json!({"requested_by": ctx.principal.sub}),
            })
            .await?;
        Ok(PageDone {
            incident_id: p.incident_id,
            action: "triggered",
            provider: pager.name().to_string(),
        })
    }
}

/// Acknowledges or resolves the incident's page (`action`: what the answer says was done).
async fn follow_up(
    ctx: &ToolContext,
    p: IncidentParams,
    action: &'static str,
) -> Result<PageDone, ToolError> {
    let pager = pager(ctx, p.provider.as_deref())?;
    if action == "resolved" {
        pager.resolve(&p.incident_id).await?;
    } else {
        pager.acknowledge(&p.incident_id).await?;
    }
    Ok(PageDone {
        incident_id: p.incident_id,
        action,
        provider: pager.name().to_string(),
    })
}

pub struct PageAcknowledge;

impl TypedTool for PageAcknowledge {
    type Params = IncidentParams;
    type Output = PageDone;
    const NAME: &'static str = "page.acknowledge";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Acknowledge a page";
    const DESCRIPTION: &'static str = "Acknowledge the page of an incident.";
    const RISK: Risk = Risk::Write;
    const IDEMPOTENT: bool = true;

    fn target(&self, p: &IncidentParams) -> Option<Target> {
        Some(target(p.provider.as_deref(), Some(&p.incident_id)))
    }

    async fn call(&self, ctx: &ToolContext, p: IncidentParams) -> Result<PageDone, ToolError> {
        follow_up(ctx, p, "acknowledged").await
    }
}

pub struct PageResolve;

impl TypedTool for PageResolve {
    type Params = IncidentParams;
    type Output = PageDone;
    const NAME: &'static str = "page.resolve";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Resolve a page";
    const DESCRIPTION: &'static str = "Resolve (close) the page of an incident.";
    const RISK: Risk = Risk::Write;
    const IDEMPOTENT: bool = true;

    fn target(&self, p: &IncidentParams) -> Option<Target> {
        Some(target(p.provider.as_deref(), Some(&p.incident_id)))
    }

    async fn call(&self, ctx: &ToolContext, p: IncidentParams) -> Result<PageDone, ToolError> {
        follow_up(ctx, p, "resolved").await
    }
}
