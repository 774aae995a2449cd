//! `argocd.rollback_application`: deploy an earlier history entry again
//! (`POST …/rollback {id}`). Held for approval like every write; the default policy makes it
//! critical (two approvers, a reason) when the application's environment is prod-like. The id
//! is checked against the application's history before policy sees the call.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{TOOLSET, app_target, argocd, short_revision};
use crate::adapters::argocd::Application;
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Preview, Risk, Target, TypedTool};

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackParams {
    /// Application name.
    pub name: String,
    /// History id to go back to (argocd.get_sync_history).
    pub id: i64,
    /// Delete resources the old revision lacks.
    #[serde(default)]
    pub prune: bool,
    /// ArgoCD dry run only.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RollbackOutput {
    pub application: String,
    pub id: i64,
    pub revision: String,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

pub struct RollbackApplication;

/// The history entry `id` of `app`, or an error listing the ids there are.
fn entry(app: &Application, id: i64) -> Result<&crate::adapters::argocd::HistoryEntry, ToolError> {
    app.history.iter().find(|h| h.id == id).ok_or_else(|| {
        let ids: Vec<String> = app.history.iter().map(|h| h.id.to_string()).collect();
        ToolError::invalid_arguments(format!(
            "argument `id`: application `{}` has no history entry {id}; its ids are {} (see argocd.get_sync_history)",
            app.name,
            if ids.is_empty() { "none".to_string() } else { ids.join(", ") }
        ))
    })
}

impl TypedTool for RollbackApplication {
    type Params = RollbackParams;
    type Output = RollbackOutput;
    const NAME: &'static str = "argocd.rollback_application";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Roll back an ArgoCD application";
    const DESCRIPTION: &'static str =
        "Redeploy an earlier sync-history entry of an ArgoCD application (auto-sync must be off).";
    const RISK: Risk = Risk::Write;

    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut RollbackParams,
    ) -> Result<Option<Target>, ToolError> {
        let (app, target) = app_target(ctx, &p.name).await?;
        entry(&app, p.id)?;
        Ok(Some(target))
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        p: RollbackParams,
    ) -> Result<RollbackOutput, ToolError> {
        let argocd = argocd(ctx)?;
        let app = argocd.get(&p.name).await?;
        let revision = entry(&app, p.id)?.revision.clone();
        let answer = argocd.rollback(&p.name, p.id, p.prune, p.dry_run).await?;
        let (phase, message) = crate::adapters::argocd::model::operation_of(&answer);
        Ok(RollbackOutput {
            application: p.name,
            id: p.id,
            revision,
            dry_run: p.dry_run,
            phase,
            message,
        })
    }

    async fn preview(
        &self,
        ctx: &ToolContext,
        p: &RollbackParams,
    ) -> Result<Option<Preview>, ToolError> {
        let argocd = argocd(ctx)?;
        let app = argocd.get(&p.name).await?;
        let to = entry(&app, p.id)?;
        let environment = app.label(&argocd.config().environment_label).to_string();
        let from = app
            .revision
            .as_deref()
            .map(short_revision)
            .unwrap_or_else(|| "?".into());
        let mut summary = format!(
            "would roll back application {} ({}) from {from} to history {} (revision {}, deployed {})",
            app.name,
            if environment.is_empty() {
                "no environment label".to_string()
            } else {
                format!("environment {environment}")
            },
            to.id,
            short_revision(&to.revision),
            to.deployed_at
        );
        if app.auto_sync {
            // ArgoCD refuses a rollback while automated sync is on.
            summary = format!(
                "would fail: auto-sync is on for {}; turn it off first. {summary}",
                app.name
            );
        }
        if p.dry_run {
            summary = format!("dry run only, nothing changes: {summary}");
        }
        Ok(Some(Preview {
            summary,
            diff: None,
            target_version: app.revision.clone(),
            detail: json!({
                "application": app.name,
                "environment": environment,
                "project": app.project,
                "current_revision": app.revision,
                "to_id": to.id,
                "to_revision": to.revision,
                "to_deployed_at": to.deployed_at,
                "auto_sync": app.auto_sync,
                "prune": p.prune,
            }),
        }))
    }

    async fn target_version(
        &self,
        ctx: &ToolContext,
        p: &RollbackParams,
    ) -> Result<Option<String>, ToolError> {
        Ok(argocd(ctx)?.get(&p.name).await?.revision)
    }
}
