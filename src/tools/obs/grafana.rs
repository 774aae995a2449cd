//! `obs.get_dashboard_url` (Grafana dashboards by title, tag or uid → links with time range,
//! variables and panel) and `obs.annotate` (a Grafana annotation; risk write, so it waits
//! for an approval like any change).

use std::collections::BTreeMap;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::time::{parse_time, rfc3339};
use crate::adapters::grafana::{DashboardQuery, NewAnnotation};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Preview, Risk, Target, TypedTool};

/// A dashboard variable: one value or several (`var-x=a&var-x=b`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum VarValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DashboardUrlParams {
    /// Words of the title.
    pub title: Option<String>,
    /// Tags it must carry.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Dashboard uid.
    pub uid: Option<String>,
    /// Link's start (default `now-1h`).
    pub from: Option<String>,
    /// Link's end (default `now`).
    pub to: Option<String>,
    /// Name → value or list of values.
    #[serde(default)]
    // Published as a plain object (a string-or-list union is an `anyOf`, which Gemini
    // refuses); serde still refuses other values when the arguments are parsed.
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub variables: BTreeMap<String, VarValue>,
    /// Panel to open.
    pub panel_id: Option<i64>,
    /// Most dashboards (default 10).
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DashboardLink {
    pub uid: String,
    pub title: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// Link with time range, variables and panel.
    pub url: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DashboardUrlOutput {
    /// `from` and `to` as put in the links (Grafana syntax or epoch milliseconds).
    pub from: String,
    pub to: String,
    pub count: usize,
    pub dashboards: Vec<DashboardLink>,
    pub truncated: bool,
}

/// A time for a Grafana link: relative times stay relative (the link keeps moving), absolute
/// ones become epoch milliseconds.
fn link_time(arg: &str, text: &str, now: Timestamp) -> Result<String, ToolError> {
    let t = parse_time(arg, text, now)?;
    let trimmed = text.trim();
    if trimmed.starts_with("now") {
        Ok(trimmed.replace(' ', ""))
    } else {
        Ok(t.as_millisecond().to_string())
    }
}

pub struct GetDashboardUrl;

impl TypedTool for GetDashboardUrl {
    type Params = DashboardUrlParams;
    type Output = DashboardUrlOutput;
    const NAME: &'static str = "obs.get_dashboard_url";
    const TOOLSET: &'static str = "obs";
    const TITLE: &'static str = "Find Grafana dashboards";
    const DESCRIPTION: &'static str = "Find Grafana dashboards by title, tags or uid; returns links for a time range, variables and panel. Reads no data.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("dashboards");

    fn target(&self, p: &DashboardUrlParams) -> Option<Target> {
        Some(Target {
            kind: Some("Dashboard".into()),
            name: p.uid.clone(),
            ..Target::default()
        })
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        p: DashboardUrlParams,
    ) -> Result<DashboardUrlOutput, ToolError> {
        let title = p.title.filter(|t| !t.trim().is_empty());
        let uid = p.uid.filter(|u| !u.trim().is_empty());
        if title.is_none() && uid.is_none() && p.tags.is_empty() {
            return Err(ToolError::invalid_arguments(
                "give `title`, `tags` or `uid` to find dashboards by",
            ));
        }
        let now = Timestamp::now();
        let from = link_time("from", p.from.as_deref().unwrap_or("now-1h"), now)?;
        let to = link_time("to", p.to.as_deref().unwrap_or("now"), now)?;
        let grafana = ctx.adapters.observability.grafana()?;
        let found = grafana
            .search(&DashboardQuery {
                title,
                tags: p.tags,
                uid,
                limit: p.limit.unwrap_or(10).clamp(1, 100),
            })
            .await?;
        let base = grafana.public_url();
        let base_path = reqwest::Url::parse(base)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        let mut dashboards = Vec::new();
        for d in found {
            // Grafana's `url` includes its sub path; the public URL may too.
            let path = match d.path.strip_prefix(&base_path) {
                Some(rest) if !base_path.is_empty() && rest.starts_with('/') => rest.to_string(),
                _ => d.path.clone(),
            };
            let mut url = reqwest::Url::parse(&format!("{base}{path}")).map_err(|e| {
                ToolError::upstream(format!(
                    "Grafana returned a dashboard path that makes no URL: {e}"
                ))
            })?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("from", &from).append_pair("to", &to);
                for (name, value) in &p.variables {
                    let key = format!("var-{name}");
                    match value {
                        VarValue::One(v) => {
                            q.append_pair(&key, v);
                        }
                        VarValue::Many(vs) => {
                            for v in vs {
                                q.append_pair(&key, v);
                            }
                        }
                    }
                }
                if let Some(panel) = p.panel_id {
                    q.append_pair("viewPanel", &panel.to_string());
                }
            }
            dashboards.push(DashboardLink {
                uid: d.uid,
                title: d.title,
                tags: d.tags,
                folder: d.folder,
                url: url.to_string(),
            });
        }
        Ok(DashboardUrlOutput {
            from,
            to,
            count: dashboards.len(),
            dashboards,
            truncated: false,
        })
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnotateParams {
    /// What happened.
    pub text: String,
    /// Tags, e.g. ["incident"].
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only on this dashboard (uid).
    pub dashboard_uid: Option<String>,
    /// Only on this panel.
    pub panel_id: Option<i64>,
    /// When (default now).
    pub time: Option<String>,
    /// End, for a region.
    pub time_end: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AnnotateOutput {
    /// Grafana's id of the new annotation.
    pub id: i64,
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard_uid: Option<String>,
    pub tags: Vec<String>,
}

struct Resolved {
    time: Timestamp,
    time_end: Option<Timestamp>,
}

fn resolve(p: &AnnotateParams) -> Result<Resolved, ToolError> {
    if p.text.trim().is_empty() {
        return Err(ToolError::invalid_arguments(
            "argument `text`: empty; say what happened",
        ));
    }
    if p.panel_id.is_some() && p.dashboard_uid.is_none() {
        return Err(ToolError::invalid_arguments(
            "argument `panel_id` needs `dashboard_uid` (the dashboard the panel is on)",
        ));
    }
    let now = Timestamp::now();
    let time = match &p.time {
        Some(t) => parse_time("time", t, now)?,
        None => now,
    };
    let time_end = match &p.time_end {
        Some(t) => Some(parse_time("time_end", t, now)?),
        None => None,
    };
    if let Some(end) = time_end
        && end < time
    {
        return Err(ToolError::invalid_arguments(
            "`time_end` must not be before `time`",
        ));
    }
    Ok(Resolved { time, time_end })
}

pub struct Annotate;

impl TypedTool for Annotate {
    type Params = AnnotateParams;
    type Output = AnnotateOutput;
    const NAME: &'static str = "obs.annotate";
    const TOOLSET: &'static str = "obs";
    const TITLE: &'static str = "Add a Grafana annotation";
    const DESCRIPTION: &'static str =
        "Mark an event (deploy, rollback) on Grafana graphs, at a time or over a region.";
    const RISK: Risk = Risk::Write;

    fn target(&self, p: &AnnotateParams) -> Option<Target> {
        Some(Target {
            kind: Some("Annotation".into()),
            name: p.dashboard_uid.clone(),
            ..Target::default()
        })
    }

    async fn preview(
        &self,
        _ctx: &ToolContext,
        p: &AnnotateParams,
    ) -> Result<Option<Preview>, ToolError> {
        let r = resolve(p)?;
        let place = match (&p.dashboard_uid, p.panel_id) {
            (Some(uid), Some(panel)) => format!("on panel {panel} of dashboard {uid}"),
            (Some(uid), None) => format!("on dashboard {uid}"),
            _ => "organization-wide".to_string(),
        };
        let when = match r.time_end {
            Some(end) => format!("from {} to {}", rfc3339(r.time), rfc3339(end)),
            None => format!("at {}", rfc3339(r.time)),
        };
        Ok(Some(Preview {
            summary: format!(
                "would add a Grafana annotation {place} {when}: {:?} tags [{}]",
                p.text,
                p.tags.join(", ")
            ),
            ..Preview::default()
        }))
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        p: AnnotateParams,
    ) -> Result<AnnotateOutput, ToolError> {
        let r = resolve(&p)?;
        let grafana = ctx.adapters.observability.grafana()?;
        let id = grafana
            .annotate(&NewAnnotation {
                dashboard_uid: p.dashboard_uid.clone(),
                panel_id: p.panel_id,
                time_ms: r.time.as_millisecond(),
                time_end_ms: r.time_end.map(|t| t.as_millisecond()),
                tags: p.tags.clone(),
                text: p.text.clone(),
            })
            .await?;
        Ok(AnnotateOutput {
            id,
            time: rfc3339(r.time),
            time_end: r.time_end.map(rfc3339),
            dashboard_uid: p.dashboard_uid,
            tags: p.tags,
        })
    }
}
