//! `k8s.rollout_restart`: restart a Deployment, StatefulSet or DaemonSet the way
//! `kubectl rollout restart` does, by stamping the pod template with `restartedAt`.

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::preview::{
    cap_diff, count_of, list_all, object_label, selector_query, to_yaml, unified_diff,
};
use super::redact::sanitize;
use super::rows::{at, str_at};
use super::target::{Coords, Omitted, POD, Scope, scope, settle, tool_error};
use crate::adapters::kube::ListQuery;
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Preview, Risk, Target, TypedTool};

const RESTARTABLE: &[&str] = &["Deployment", "StatefulSet", "DaemonSet"];

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartParams {
    /// `deploy`, `sts` or `ds`.
    pub kind: String,
    /// Workload name.
    pub name: String,
    /// Namespace (default: the context's).
    pub namespace: Option<String>,
    /// Server-side dry run only.
    #[serde(default)]
    pub dry_run: bool,
    /// Cluster (default: the default one).
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RestartOutput {
    pub cluster: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    /// True when nothing was changed.
    pub dry_run: bool,
    /// Value written to the pod template's `kubectl.kubernetes.io/restartedAt` annotation.
    pub restarted_at: String,
    /// The workload after the patch.
    pub object: Value,
}

pub struct RolloutRestart;

impl TypedTool for RolloutRestart {
    type Params = RestartParams;
    type Output = RestartOutput;
    const NAME: &'static str = "k8s.rollout_restart";
    const TOOLSET: &'static str = "k8s";
    const TITLE: &'static str = "Restart a workload";
    const DESCRIPTION: &'static str =
        "Restart a workload's pods with a rolling update, like `kubectl rollout restart`.";
    const RISK: Risk = Risk::Write;

    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut RestartParams,
    ) -> Result<Option<Target>, ToolError> {
        let coords = Coords {
            cluster: &mut p.cluster,
            kind: Some(&mut p.kind),
            api_version: None,
            namespace: &mut p.namespace,
        };
        let names = [("name", p.name.as_str())];
        let (t, target) = settle(ctx, coords, POD, &names, Omitted::DefaultNamespace).await?;
        restartable(&t)?;
        Ok(Some(target))
    }

    async fn call(&self, ctx: &ToolContext, p: RestartParams) -> Result<RestartOutput, ToolError> {
        let t = workload(ctx, &p).await?;
        let kind = t.kind.info.kind.clone();
        let current = t.get(&p.name).await?;
        if is_paused(&current) {
            return Err(ToolError::invalid_arguments(paused_message(&t, &p.name)));
        }
        let namespace = t.namespace.clone().unwrap_or_default();
        let restarted_at = now_rfc3339();
        let obj = patch_restart(&t, &p.name, &restarted_at, p.dry_run).await?;
        let mut object = obj;
        sanitize(&mut object);
        Ok(RestartOutput {
            cluster: t.cluster.name().to_string(),
            kind,
            name: p.name,
            namespace,
            dry_run: p.dry_run,
            restarted_at,
            object,
        })
    }

    /// The workload, the pods its selector matches, how its strategy replaces them, and the
    /// pod template annotation a dryRun=All patch adds; nothing is changed.
    async fn preview(
        &self,
        ctx: &ToolContext,
        p: &RestartParams,
    ) -> Result<Option<Preview>, ToolError> {
        let t = workload(ctx, p).await?;
        let current = t.get(&p.name).await?;
        let label = object_label(&t.kind.info.singular, t.namespace.as_deref(), &p.name);
        let version = Some(str_at(&current, &["metadata", "resourceVersion"]).to_string());
        let mut detail = json!({
            "cluster": t.cluster.name(),
            "kind": t.kind.info.kind,
            "name": p.name,
            "namespace": t.namespace,
            "replicas": at(&current, &["spec", "replicas"]),
        });
        if is_paused(&current) {
            detail["paused"] = json!(true);
            return Ok(Some(Preview {
                summary: format!("would fail: {}", paused_message(&t, &p.name)),
                diff: None,
                target_version: version,
                detail,
            }));
        }
        let pods = match at(&current, &["spec", "selector"]).and_then(selector_query) {
            Some(selector) => {
                detail["selector"] = json!(selector);
                Some(running_pods(&t, &selector).await?)
            }
            None => None,
        };
        let pods_text = match &pods {
            Some((names, more)) => {
                detail["pods"] = json!(names.iter().take(PODS_IN_DETAIL).collect::<Vec<_>>());
                detail["pod_count"] = json!(names.len());
                if *more {
                    detail["pod_count_at_least"] = json!(true);
                }
                format!(
                    "{}{}",
                    count_of(names.len(), "pod", "pods"),
                    if *more { "+" } else { "" }
                )
            }
            None => "its pods (selector not understood, not counted)".to_string(),
        };
        let how = rollout_plan(&t.kind.info.kind, &current, &pods_text);
        detail["strategy"] = strategy_of(&t.kind.info.kind, &current);
        let restarted_at = now_rfc3339();
        let after = patch_restart(&t, &p.name, &restarted_at, true).await?;
        detail["restarted_at"] = json!(restarted_at);
        let template = |v: &Value| {
            let meta = at(v, &["spec", "template", "metadata"])
                .cloned()
                .unwrap_or_else(|| json!({}));
            json!({"spec": {"template": {"metadata": meta}}})
        };
        let diff = unified_diff(
            &to_yaml(&template(&current))?,
            &to_yaml(&template(&after))?,
            "live",
            "after restart",
        )
        .map(cap_diff);
        let no_pods = matches!(&pods, Some((names, false)) if names.is_empty());
        let mut summary = if no_pods {
            format!("would restart {label}: no pods run, only the pod template changes")
        } else {
            format!("would restart {label}: {how}")
        };
        if p.dry_run {
            summary = format!("dry run only, nothing restarts: {summary}");
        }
        Ok(Some(Preview {
            summary,
            diff,
            target_version: version,
            detail,
        }))
    }

    /// The workload's resourceVersion; `None` once it is gone.
    async fn target_version(
        &self,
        ctx: &ToolContext,
        p: &RestartParams,
    ) -> Result<Option<String>, ToolError> {
        let t = workload(ctx, p).await?;
        Ok(t.get_opt(&p.name)
            .await?
            .map(|o| str_at(&o, &["metadata", "resourceVersion"]).to_string()))
    }
}

/// Pod names listed in a preview's detail.
const PODS_IN_DETAIL: usize = 50;

/// Settle cluster, kind and namespace; only apps/v1 Deployments, StatefulSets and DaemonSets.
async fn workload(ctx: &ToolContext, p: &RestartParams) -> Result<Scope, ToolError> {
    let t = scope(
        ctx,
        p.cluster.as_deref(),
        &p.kind,
        None,
        p.namespace.as_deref(),
        Omitted::DefaultNamespace,
    )
    .await?;
    restartable(&t)?;
    Ok(t)
}

fn restartable(t: &Scope) -> Result<(), ToolError> {
    if t.kind.info.group != "apps" || !RESTARTABLE.contains(&t.kind.info.kind.as_str()) {
        return Err(ToolError::invalid_arguments(format!(
            "{} cannot be restarted; kind must be deployment, statefulset or daemonset",
            t.kind.info.qualified()
        )));
    }
    Ok(())
}

fn is_paused(workload: &Value) -> bool {
    at(workload, &["spec", "paused"]).and_then(Value::as_bool) == Some(true)
}

fn paused_message(t: &Scope, name: &str) -> String {
    format!(
        "{} is paused; resume the rollout first (set spec.paused=false)",
        t.describe(name)
    )
}

/// Stamp the pod template with `restartedAt` (a merge patch, like kubectl); the workload as
/// the API server returned it.
async fn patch_restart(
    t: &Scope,
    name: &str,
    restarted_at: &str,
    dry_run: bool,
) -> Result<Value, ToolError> {
    let namespace = t.namespace.clone().unwrap_or_default();
    t.cluster
        .restart(
            t.kind.info.resource(),
            &namespace,
            name,
            restarted_at,
            dry_run,
        )
        .await
        .map_err(tool_error)
}

/// Names of the pods a restart replaces: those the selector matches that are not finished
/// or already terminating; the flag tells whether there were more than a preview reads.
async fn running_pods(t: &Scope, selector: &str) -> Result<(Vec<String>, bool), ToolError> {
    let kind = t
        .cluster
        .resolve("pods", Some("v1"))
        .await
        .map_err(tool_error)?;
    let pods = Scope {
        cluster: t.cluster.clone(),
        kind,
        namespace: t.namespace.clone(),
    };
    let (items, more) = list_all(&pods, &ListQuery::default().labels(selector)).await?;
    let names = items
        .iter()
        .filter(|p| !matches!(str_at(p, &["status", "phase"]), "Succeeded" | "Failed"))
        .filter(|p| at(p, &["metadata", "deletionTimestamp"]).is_none_or(Value::is_null))
        .map(|p| str_at(p, &["metadata", "name"]).to_string())
        .collect();
    Ok((names, more))
}

/// `25%` or `1` (an IntOrString), or the default.
fn int_or_string(v: Option<&Value>, default: &str) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => default.to_string(),
    }
}

/// The update strategy as the API defaults it.
fn strategy_of(kind: &str, w: &Value) -> Value {
    let field = if kind == "Deployment" {
        "strategy"
    } else {
        "updateStrategy"
    };
    at(w, &["spec", field])
        .cloned()
        .unwrap_or_else(|| json!({"type": "RollingUpdate"}))
}

/// How the controller replaces `pods` (e.g. `3 pods`) after the template changes.
fn rollout_plan(kind: &str, w: &Value, pods: &str) -> String {
    let strategy = strategy_of(kind, w);
    let kind_of = str_at(&strategy, &["type"]);
    let rolling = |field: &str| at(&strategy, &["rollingUpdate", field]);
    match (kind, kind_of) {
        ("Deployment", "Recreate") => format!(
            "{pods} stopped all at once, then recreated (Recreate strategy: the workload is down in between)"
        ),
        ("Deployment", _) => format!(
            "{pods} replaced by a rolling update (maxUnavailable {}, maxSurge {})",
            int_or_string(rolling("maxUnavailable"), "25%"),
            int_or_string(rolling("maxSurge"), "25%")
        ),
        (_, "OnDelete") => format!(
            "nothing restarts by itself: with updateStrategy OnDelete each of {pods} picks up the change only when it is deleted"
        ),
        ("StatefulSet", _) => {
            let partition = rolling("partition").and_then(Value::as_i64).unwrap_or(0);
            let scope = if partition > 0 {
                format!(" (only ordinals ≥ {partition}: partition {partition})")
            } else {
                String::new()
            };
            format!(
                "{pods} replaced one at a time, highest ordinal first{scope} (maxUnavailable {})",
                int_or_string(rolling("maxUnavailable"), "1")
            )
        }
        _ => format!(
            "{pods} replaced node by node (maxUnavailable {}, maxSurge {})",
            int_or_string(rolling("maxUnavailable"), "1"),
            int_or_string(rolling("maxSurge"), "0")
        ),
    }
}

/// Now as kubectl writes it: RFC 3339, whole seconds, UTC.
fn now_rfc3339() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn rollout_plans_follow_the_strategy() {
        let d = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "50%"}}}});
        assert_eq!(
            super::rollout_plan("Deployment", &d, "3 pods"),
            "3 pods replaced by a rolling update (maxUnavailable 0, maxSurge 50%)"
        );
        assert_eq!(
            super::rollout_plan("Deployment", &json!({}), "3 pods"),
            "3 pods replaced by a rolling update (maxUnavailable 25%, maxSurge 25%)"
        );
        let r = json!({"spec": {"strategy": {"type": "Recreate"}}});
        assert!(super::rollout_plan("Deployment", &r, "2 pods").contains("Recreate"));
        let s = json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}});
        assert!(super::rollout_plan("StatefulSet", &s, "3 pods").contains("partition 2"));
        let o = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
        assert!(super::rollout_plan("DaemonSet", &o, "3 pods").starts_with("nothing restarts"));
    }

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        let s = super::now_rfc3339();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.parse::<jiff::Timestamp>().is_ok(), "{s}");
    }
}
