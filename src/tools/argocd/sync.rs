//! `argocd.sync_application`: sync an application to its target (or a given revision). Held for
//! approval; the preview shows what would change: each managed resource whose live state
//! differs from its target (ArgoCD's managed-resources, Secret values left out) as a diff, and
//! what a dry-run sync reports where the server accepts one. An approved sync runs only if the
//! revision it compares against is still the one approvers saw.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{TOOLSET, app_target, argocd, short_revision};
use crate::adapters::argocd::{ResourceDiff, SyncRequest, model};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Preview, Risk, Target, TypedTool};
use crate::tools::k8s::preview::{cap_diff, count_of, to_yaml, unified_diff};
use crate::tools::k8s::redact::sanitize;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncParams {
    /// Application name.
    pub name: String,
    /// Git revision, tag or chart version (default: the app's target).
    pub revision: Option<String>,
    /// Delete resources no longer in git.
    #[serde(default)]
    pub prune: bool,
    /// ArgoCD dry run only.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SyncOutput {
    pub application: String,
    pub dry_run: bool,
    /// The operation's phase as ArgoCD answered (`Running` right after a sync starts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// What the sync did to each resource, when ArgoCD says already.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

pub struct SyncApplication;

/// `Kind namespace/name` of a managed resource.
fn resource_label(r: &ResourceDiff) -> String {
    if r.namespace.is_empty() {
        format!("{} {}", r.kind, r.name)
    } else {
        format!("{} {}/{}", r.kind, r.namespace, r.name)
    }
}

/// YAML of a state with Secret values removed (the empty string for none).
fn state_yaml(v: &Value) -> Result<String, ToolError> {
    let mut v = v.clone();
    sanitize(&mut v);
    to_yaml(&v)
}

/// The diff of every resource that would change, and counts (create, change, delete).
pub(super) fn managed_diff(
    items: &[ResourceDiff],
) -> Result<(Option<String>, [usize; 3]), ToolError> {
    let mut text = String::new();
    let mut counts = [0; 3];
    for r in items.iter().filter(|r| !r.hook) {
        let (live, target) = (state_yaml(&r.live)?, state_yaml(&r.target)?);
        let label = resource_label(r);
        let Some(d) = unified_diff(
            &live,
            &target,
            &format!("live {label}"),
            &format!("target {label}"),
        ) else {
            continue;
        };
        match (r.live.is_null(), r.target.is_null()) {
            (true, _) => counts[0] += 1,
            (false, true) => counts[2] += 1,
            (false, false) => counts[1] += 1,
        }
        text.push_str(&d);
    }
    Ok(((!text.is_empty()).then(|| cap_diff(text)), counts))
}

impl TypedTool for SyncApplication {
    type Params = SyncParams;
    type Output = SyncOutput;
    const NAME: &'static str = "argocd.sync_application";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Sync an ArgoCD application";
    const DESCRIPTION: &'static str = "Sync an ArgoCD application to its target or a given revision; approvers see the diff first.";
    const RISK: Risk = Risk::Write;

    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut SyncParams,
    ) -> Result<Option<Target>, ToolError> {
        if let Some(rev) = &p.revision
            && (rev.trim().is_empty() || rev.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(ToolError::invalid_arguments(format!(
                "argument `revision`: {} is not a revision; give a commit, tag, branch or chart version, or leave it out",
                Value::from(rev.as_str())
            )));
        }
        let (_, target) = app_target(ctx, &p.name).await?;
        Ok(Some(target))
    }

    async fn call(&self, ctx: &ToolContext, p: SyncParams) -> Result<SyncOutput, ToolError> {
        let request = SyncRequest {
            revision: p.revision.clone(),
            prune: p.prune,
            dry_run: p.dry_run,
        };
        let answer = argocd(ctx)?.sync(&p.name, &request).await?;
        let text = |ptr: &str| {
            answer
                .pointer(ptr)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (phase, message) = model::operation_of(&answer);
        Ok(SyncOutput {
            application: p.name,
            dry_run: p.dry_run,
            phase,
            message,
            revision: p
                .revision
                .or_else(|| text("/operation/sync/revision"))
                .or_else(|| text("/status/sync/revision")),
            resources: model::sync_results(&answer),
        })
    }

    /// The managed resources that differ from their target, as a diff, and a dry-run sync.
    async fn preview(
        &self,
        ctx: &ToolContext,
        p: &SyncParams,
    ) -> Result<Option<Preview>, ToolError> {
        let argocd = argocd(ctx)?;
        let app = argocd.get(&p.name).await?;
        let items = argocd.managed_resources(&p.name).await?;
        let (diff, [create, change, delete]) = managed_diff(&items)?;
        let mut detail = json!({
            "application": app.name,
            "environment": app.label(&argocd.config().environment_label),
            "project": app.project,
            "health": app.health,
            "sync": app.sync,
            "revision": app.revision,
            "resources": items.len(),
            "to_create": create,
            "to_change": change,
            "to_delete": delete,
            "prune": p.prune,
        });
        // ArgoCD runs a dry-run sync as an operation; servers (or RBAC) that refuse it still
        // leave approvers the diff above.
        let dry = SyncRequest {
            revision: p.revision.clone(),
            prune: p.prune,
            dry_run: true,
        };
        match argocd.sync(&p.name, &dry).await {
            Ok(answer) => detail["dry_run"] = json!(model::sync_results(&answer)),
            Err(e) => detail["dry_run_unavailable"] = json!(e.to_string()),
        }
        let to = match &p.revision {
            Some(r) => format!("revision {r}"),
            None => match &app.revision {
                Some(r) => format!("its target ({})", short_revision(r)),
                None => "its target".to_string(),
            },
        };
        let changes = create + change + delete;
        let what = if changes == 0 {
            "no managed resource differs from its target".to_string()
        } else {
            format!(
                "{} differ ({create} to create, {change} to change, {delete} deleted in git{})",
                count_of(changes, "resource", "resources"),
                if p.prune {
                    ", pruned"
                } else {
                    ", kept: prune is off"
                }
            )
        };
        let mut summary = format!(
            "would sync application {} ({}, {}) to {to}: {what}",
            app.name, app.sync, app.health
        );
        if p.dry_run {
            summary = format!("dry run only, nothing changes: {summary}");
        }
        Ok(Some(Preview {
            summary,
            diff,
            target_version: app.revision.clone(),
            detail,
        }))
    }

    /// The revision the sync status compares against: a new commit means a new diff.
    async fn target_version(
        &self,
        ctx: &ToolContext,
        p: &SyncParams,
    ) -> Result<Option<String>, ToolError> {
        Ok(argocd(ctx)?.get(&p.name).await?.revision)
    }
}
