//! argocd.* tools: applications (list, get, resource tree, sync history) and the two writes,
//! sync and rollback, held for approval with a preview of what would change. Tools reach ArgoCD
//! only through `ctx.adapters.argocd`; application names are checked as DNS-1123 subdomains
//! before policy sees a call, and the writes settle the application's environment and project
//! (`target.environment`, `target.project`) from ArgoCD, so rules judge what will run.

use std::sync::Arc;

use crate::adapters::argocd::{Application, ArgoCd, ArgoCdError, ErrorClass};
use crate::core::context::ToolContext;
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::tool::{Target, Tool, typed};

mod read;
mod rollback;
mod sync;

pub const TOOLSET: &str = "argocd";

pub fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        typed(read::ListApplications),
        typed(read::GetApplication),
        typed(read::GetResourceTree),
        typed(read::GetSyncHistory),
        typed(sync::SyncApplication),
        typed(rollback::RollbackApplication),
    ]
}

/// How an ArgoCD failure reads to the model (the adapter knows no tool errors).
impl From<ArgoCdError> for ToolError {
    fn from(e: ArgoCdError) -> Self {
        let kind = match e.class() {
            ErrorClass::InvalidArguments => ToolErrorKind::InvalidArguments,
            ErrorClass::NotFound => ToolErrorKind::NotFound,
            ErrorClass::Forbidden => ToolErrorKind::Forbidden,
            ErrorClass::Upstream => ToolErrorKind::Upstream,
        };
        ToolError::new(kind, e.to_string())
    }
}

fn argocd(ctx: &ToolContext) -> Result<&Arc<ArgoCd>, ToolError> {
    ctx.adapters
        .argocd
        .as_ref()
        .ok_or_else(|| ArgoCdError::NotConfigured.into())
}

/// An application name as ArgoCD (a Kubernetes object name) accepts it.
fn check_app_name(name: &str) -> Result<(), ToolError> {
    crate::tools::k8s::target::check_subdomain("name", name, "web")
}

/// The target of a read: the checked name, nothing fetched.
fn name_target(name: &str) -> Result<Target, ToolError> {
    check_app_name(name)?;
    Ok(Target {
        kind: Some("Application".into()),
        name: Some(name.to_string()),
        ..Target::default()
    })
}

/// The target of a write: the application as ArgoCD has it (namespace, project, environment).
async fn app_target(ctx: &ToolContext, name: &str) -> Result<(Application, Target), ToolError> {
    check_app_name(name)?;
    let argocd = argocd(ctx)?;
    let app = argocd.get(name).await?;
    let environment = app.label(&argocd.config().environment_label).to_string();
    let target = Target {
        kind: Some("Application".into()),
        name: Some(app.name.clone()),
        namespace: Some(app.namespace.clone()).filter(|n| !n.is_empty()),
        namespaces: Some(app.namespace.clone())
            .filter(|n| !n.is_empty())
            .into_iter()
            .collect(),
        environment: Some(environment),
        project: Some(app.project.clone()),
        ..Target::default()
    };
    Ok((app, target))
}

/// `abc1234` of a long git revision (Helm versions are kept whole).
fn short_revision(rev: &str) -> String {
    if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        rev[..7].to_string()
    } else {
        rev.to_string()
    }
}
