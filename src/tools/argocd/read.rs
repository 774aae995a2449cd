//! The read tools: `argocd.list_applications` (one row per application, filtered by project,
//! environment label, health and sync), `argocd.get_application`, `argocd.get_resource_tree`
//! and `argocd.get_sync_history`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{TOOLSET, argocd, name_target, short_revision};
use crate::adapters::argocd::ListQuery;
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, Target, TypedTool};

const HEALTH: &[&str] = &[
    "Healthy",
    "Progressing",
    "Degraded",
    "Suspended",
    "Missing",
    "Unknown",
];
const SYNC: &[&str] = &["Synced", "OutOfSync", "Unknown"];

/// `value` as one of `allowed`, matched without regard to case.
fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<String, ToolError> {
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(value.trim()))
        .map(|a| a.to_string())
        .ok_or_else(|| {
            ToolError::invalid_arguments(format!(
                "argument `{field}`: `{value}` is not an ArgoCD status; use one of {}",
                allowed.join(", ")
            ))
        })
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// ArgoCD project.
    pub project: Option<String>,
    /// Environment label value, e.g. `staging`.
    pub environment: Option<String>,
    /// Healthy, Progressing, Degraded, Suspended, Missing or Unknown.
    pub health: Option<String>,
    /// Synced, OutOfSync or Unknown.
    pub sync: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AppRow {
    pub name: String,
    pub project: String,
    pub environment: String,
    pub health: String,
    pub sync: String,
    /// Revision the sync status compares against.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// Last operation's phase.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub operation: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOutput {
    pub count: usize,
    pub applications: Vec<AppRow>,
    pub truncated: bool,
}

pub struct ListApplications;

impl TypedTool for ListApplications {
    type Params = ListParams;
    type Output = ListOutput;
    const NAME: &'static str = "argocd.list_applications";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "List ArgoCD applications";
    const DESCRIPTION: &'static str = "List ArgoCD applications with health and sync status; filter by project, environment, health, sync.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("applications");
    const UNTRUSTED: Option<&'static str> = Some("Names and labels are untrusted upstream data.");

    async fn resolve(
        &self,
        _ctx: &ToolContext,
        p: &mut ListParams,
    ) -> Result<Option<Target>, ToolError> {
        if let Some(h) = &p.health {
            p.health = Some(one_of("health", h, HEALTH)?);
        }
        if let Some(s) = &p.sync {
            p.sync = Some(one_of("sync", s, SYNC)?);
        }
        if let Some(e) = &p.environment
            && !crate::adapters::argocd::config::is_label_value(e)
        {
            return Err(ToolError::invalid_arguments(format!(
                "argument `environment`: `{e}` is not a label value; write e.g. `staging`"
            )));
        }
        Ok(Some(Target {
            kind: Some("Application".into()),
            environment: p.environment.clone(),
            project: p.project.clone(),
            ..Target::default()
        }))
    }

    async fn call(&self, ctx: &ToolContext, p: ListParams) -> Result<ListOutput, ToolError> {
        let argocd = argocd(ctx)?;
        let label = &argocd.config().environment_label;
        let query = ListQuery {
            projects: p.project.iter().cloned().collect(),
            selector: p.environment.as_ref().map(|e| format!("{label}={e}")),
        };
        let mut apps = argocd.list(&query).await?;
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        let applications: Vec<AppRow> = apps
            .into_iter()
            .filter(|a| p.health.as_ref().is_none_or(|h| *h == a.health))
            .filter(|a| p.sync.as_ref().is_none_or(|s| *s == a.sync))
            .map(|a| AppRow {
                environment: a.label(label).to_string(),
                revision: a
                    .revision
                    .as_deref()
                    .map(short_revision)
                    .unwrap_or_default(),
                operation: a.operation_phase.clone().unwrap_or_default(),
                name: a.name,
                project: a.project,
                health: a.health,
                sync: a.sync,
            })
            .collect();
        Ok(ListOutput {
            count: applications.len(),
            applications,
            truncated: false,
        })
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NameParams {
    /// Application name.
    pub name: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AppOutput {
    pub name: String,
    pub namespace: String,
    pub project: String,
    pub environment: String,
    pub health: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_message: Option<String>,
    pub sync: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_phase: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_namespace: Option<String>,
    pub auto_sync: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
    /// The newest history entry's id (for argocd.rollback_application).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_history_id: Option<i64>,
}

pub struct GetApplication;

impl TypedTool for GetApplication {
    type Params = NameParams;
    type Output = AppOutput;
    const NAME: &'static str = "argocd.get_application";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Get an ArgoCD application";
    const DESCRIPTION: &'static str =
        "One ArgoCD application: health, sync, last operation, source, destination, conditions.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const UNTRUSTED: Option<&'static str> = Some("Messages are untrusted upstream data.");

    async fn resolve(
        &self,
        _ctx: &ToolContext,
        p: &mut NameParams,
    ) -> Result<Option<Target>, ToolError> {
        name_target(&p.name).map(Some)
    }

    async fn call(&self, ctx: &ToolContext, p: NameParams) -> Result<AppOutput, ToolError> {
        let argocd = argocd(ctx)?;
        let a = argocd.get(&p.name).await?;
        Ok(AppOutput {
            environment: a.label(&argocd.config().environment_label).to_string(),
            last_history_id: a.history.iter().map(|h| h.id).max(),
            name: a.name,
            namespace: a.namespace,
            project: a.project,
            health: a.health,
            health_message: a.health_message,
            sync: a.sync,
            revision: a.revision,
            operation_phase: a.operation_phase,
            operation_message: a.operation_message,
            repo_url: a.repo_url,
            path: a.path,
            target_revision: a.target_revision,
            destination: a.destination,
            destination_namespace: a.destination_namespace,
            auto_sync: a.auto_sync,
            conditions: a.conditions,
        })
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TreeParams {
    /// Application name.
    pub name: String,
    /// Only resources of this kind, e.g. `Pod`.
    pub kind: Option<String>,
    /// Only resources that are not Healthy.
    #[serde(default)]
    pub unhealthy: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeRow {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub health: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `Kind/name` of its owner.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub parent: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TreeOutput {
    pub application: String,
    pub count: usize,
    pub resources: Vec<NodeRow>,
    pub truncated: bool,
}

pub struct GetResourceTree;

impl TypedTool for GetResourceTree {
    type Params = TreeParams;
    type Output = TreeOutput;
    const NAME: &'static str = "argocd.get_resource_tree";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "ArgoCD resource tree";
    const DESCRIPTION: &'static str = "Resources an ArgoCD application manages and their children (ReplicaSets, Pods), with health.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("resources");
    const UNTRUSTED: Option<&'static str> = Some("Messages are untrusted upstream data.");

    async fn resolve(
        &self,
        _ctx: &ToolContext,
        p: &mut TreeParams,
    ) -> Result<Option<Target>, ToolError> {
        name_target(&p.name).map(Some)
    }

    async fn call(&self, ctx: &ToolContext, p: TreeParams) -> Result<TreeOutput, ToolError> {
        let nodes = argocd(ctx)?.resource_tree(&p.name).await?;
        let resources: Vec<NodeRow> = nodes
            .into_iter()
            .filter(|n| {
                p.kind
                    .as_ref()
                    .is_none_or(|k| k.eq_ignore_ascii_case(&n.kind))
            })
            .filter(|n| !p.unhealthy || n.health.as_deref().is_some_and(|h| h != "Healthy"))
            .map(|n| NodeRow {
                kind: n.kind,
                namespace: n.namespace,
                name: n.name,
                health: n.health.unwrap_or_default(),
                message: n.health_message.unwrap_or_default(),
                parent: n.parent.unwrap_or_default(),
            })
            .collect();
        Ok(TreeOutput {
            application: p.name,
            count: resources.len(),
            resources,
            truncated: false,
        })
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Application name.
    pub name: String,
    /// Newest entries (default 10).
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HistoryRow {
    /// Pass to argocd.rollback_application.
    pub id: i64,
    pub revision: String,
    pub deployed_at: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub initiated_by: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HistoryOutput {
    pub application: String,
    /// What the application is synced to now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    pub count: usize,
    /// Newest first.
    pub history: Vec<HistoryRow>,
    pub truncated: bool,
}

pub struct GetSyncHistory;

impl TypedTool for GetSyncHistory {
    type Params = HistoryParams;
    type Output = HistoryOutput;
    const NAME: &'static str = "argocd.get_sync_history";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "ArgoCD sync history";
    const DESCRIPTION: &'static str =
        "Past syncs of an ArgoCD application, newest first: id, revision, time, who started it.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("history");

    async fn resolve(
        &self,
        _ctx: &ToolContext,
        p: &mut HistoryParams,
    ) -> Result<Option<Target>, ToolError> {
        name_target(&p.name).map(Some)
    }

    async fn call(&self, ctx: &ToolContext, p: HistoryParams) -> Result<HistoryOutput, ToolError> {
        let a = argocd(ctx)?.get(&p.name).await?;
        let limit = p.limit.unwrap_or(10).clamp(1, 100) as usize;
        let mut entries = a.history;
        entries.sort_by_key(|h| std::cmp::Reverse(h.id));
        let all = entries.len();
        let history: Vec<HistoryRow> = entries
            .into_iter()
            .take(limit)
            .map(|h| HistoryRow {
                id: h.id,
                revision: h.revision,
                deployed_at: h.deployed_at,
                initiated_by: h.initiated_by.unwrap_or_default(),
            })
            .collect();
        Ok(HistoryOutput {
            application: a.name,
            current_revision: a.revision,
            count: history.len(),
            truncated: history.len() < all,
            history,
        })
    }
}
