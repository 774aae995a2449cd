//! `k8s.delete_resource`: delete one object, with kubectl's propagation policies.

use std::collections::{HashMap, HashSet, VecDeque};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::preview::{count_of, list_all, object_label};
use super::redact::sanitize;
use super::rows::{at, str_at};
use super::target::{Cluster, Omitted, Scope, scope, settle_kind, tool_error};
use crate::adapters::kube::{DeleteOptions, KubeError, ListQuery, ResolvedKind};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Preview, Risk, Target, TypedTool};

/// Kinds whose objects are commonly owned by another object of their namespace (ReplicaSets
/// of a Deployment, pods, Jobs of a CronJob, revisions of a StatefulSet, PVCs a StatefulSet
/// deletes with it): listed, when discovery offers them, to find what a delete takes along.
const OWNABLE: &[(&str, &str)] = &[
    ("replicasets", "apps/v1"),
    ("pods", "v1"),
    ("jobs", "batch/v1"),
    ("controllerrevisions", "apps/v1"),
    ("persistentvolumeclaims", "v1"),
];
/// What a preview counts in a namespace about to be deleted with everything in it.
const NAMESPACE_CONTENT: &[(&str, &str)] = &[
    ("deployments", "apps/v1"),
    ("statefulsets", "apps/v1"),
    ("daemonsets", "apps/v1"),
    ("cronjobs", "batch/v1"),
    ("jobs", "batch/v1"),
    ("pods", "v1"),
    ("services", "v1"),
    ("configmaps", "v1"),
    ("secrets", "v1"),
    ("persistentvolumeclaims", "v1"),
];
/// Dependents listed one by one in a preview's detail.
const DETAIL_DEPENDENTS: usize = 200;

/// What happens to dependents (pods of a ReplicaSet, ReplicaSets of a Deployment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Propagation {
    /// Delete dependents first, then the object.
    Foreground,
    /// Delete the object now and dependents in the background (the API default for most kinds).
    Background,
    /// Keep dependents, removing their owner reference.
    Orphan,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteArgs {
    /// Kind or short name, as kubectl takes it.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Namespace (default: the context's).
    pub namespace: Option<String>,
    /// `group/version`, if the kind is ambiguous.
    pub api_version: Option<String>,
    /// Default: the API's.
    pub propagation_policy: Option<Propagation>,
    /// Grace period in seconds (0: now).
    pub grace_period_seconds: Option<u32>,
    /// Server-side dry run only.
    #[serde(default)]
    pub dry_run: bool,
    /// Cluster (default: the default one).
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeleteOutput {
    pub cluster: String,
    pub kind: String,
    pub api_version: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// True when nothing was deleted.
    pub dry_run: bool,
    /// `deleted`, or `deleting` while finalizers or graceful termination run.
    pub status: String,
    /// The object as the API server returned it (Secrets: key names and sizes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
}

pub struct DeleteResource;

impl TypedTool for DeleteResource {
    type Params = DeleteArgs;
    type Output = DeleteOutput;
    const NAME: &'static str = "k8s.delete_resource";
    const TOOLSET: &'static str = "k8s";
    const TITLE: &'static str = "Delete a Kubernetes object";
    const DESCRIPTION: &'static str = "Delete one object of any kind, like `kubectl delete`. A controller recreates a pod it owns. Try dry_run first.";
    const RISK: Risk = Risk::Write;
    const IDEMPOTENT: bool = true;

    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut DeleteArgs,
    ) -> Result<Option<Target>, ToolError> {
        settle_kind(
            ctx,
            &mut p.cluster,
            &mut p.kind,
            &mut p.api_version,
            &mut p.namespace,
            &[("name", p.name.as_str())],
            Omitted::DefaultNamespace,
        )
        .await
    }

    async fn call(&self, ctx: &ToolContext, p: DeleteArgs) -> Result<DeleteOutput, ToolError> {
        let t = scope(
            ctx,
            p.cluster.as_deref(),
            &p.kind,
            p.api_version.as_deref(),
            p.namespace.as_deref(),
            Omitted::DefaultNamespace,
        )
        .await?;
        let answer = send_delete(&t, &p.name, delete_params(&p, p.dry_run)).await?;
        // The API answers with the object (still present while finalizers run) or a Status.
        let (status, object) = if answer.get("kind").and_then(Value::as_str) == Some("Status") {
            ("deleted", None)
        } else {
            let mut v = answer;
            sanitize(&mut v);
            let pending = at(&v, &["metadata", "deletionTimestamp"]).is_some_and(|d| !d.is_null());
            (
                if pending && !p.dry_run {
                    "deleting"
                } else {
                    "deleted"
                },
                Some(v),
            )
        };
        Ok(DeleteOutput {
            cluster: t.cluster.name().to_string(),
            kind: t.kind.info.kind.clone(),
            api_version: t.kind.info.api_version(),
            name: p.name,
            namespace: t.namespace,
            dry_run: p.dry_run,
            status: status.into(),
            object,
        })
    }

    /// The object, everything it owns in its namespace (found through ownerReferences) and a
    /// dryRun=All delete to validate; nothing is deleted.
    async fn preview(
        &self,
        ctx: &ToolContext,
        p: &DeleteArgs,
    ) -> Result<Option<Preview>, ToolError> {
        let t = resolve_target(ctx, p).await?;
        let obj = t.get(&p.name).await?;
        let label = object_label(&t.kind.info.singular, t.namespace.as_deref(), &p.name);
        let (policy, defaulted) = match p.propagation_policy {
            Some(pp) => (pp, false),
            None => (default_policy(&t.kind), true),
        };
        let mut detail = json!({
            "cluster": t.cluster.name(),
            "kind": t.kind.info.kind,
            "api_version": t.kind.info.api_version(),
            "name": p.name,
            "namespace": t.namespace,
            "propagation_policy": policy_name(policy),
            "propagation_policy_is_default": defaulted,
        });
        let mut summary = if t.kind.info.kind == "Namespace" && t.kind.info.group.is_empty() {
            let (counts, unchecked) = namespace_content(&t.cluster, &p.name).await?;
            let contents: Vec<Value> = counts
                .iter()
                .map(|(s, pl, n, more)| {
                    json!({"kind": s, "plural": pl, "count": n, "at_least": more})
                })
                .collect();
            detail["contents"] = Value::Array(contents);
            if !unchecked.is_empty() {
                detail["unchecked"] = json!(unchecked);
            }
            let listed: Vec<String> = counts
                .iter()
                .filter(|(_, _, n, _)| *n > 0)
                .map(|(s, pl, n, more)| {
                    format!("{}{}", count_of(*n, s, pl), if *more { "+" } else { "" })
                })
                .collect();
            if listed.is_empty() {
                format!("would delete {label} and everything in it")
            } else {
                format!(
                    "would delete {label} and everything in it ({})",
                    listed.join(", ")
                )
            }
        } else if t.kind.info.kind == "CustomResourceDefinition" {
            let (what, n, more) = custom_resources(&t.cluster, &obj).await?;
            detail["custom_resources"] = json!({"kind": what, "count": n, "at_least": more});
            format!(
                "would delete {label} and all {n}{} {what} (every custom resource of it, in every namespace)",
                if more { "+" } else { "" }
            )
        } else {
            let uid = str_at(&obj, &["metadata", "uid"]).to_string();
            let found = find_dependents(&t, &p.name, &uid).await?;
            let text = dependents_phrase(&label, &found, policy, defaulted, &t.kind);
            let listed: Vec<Value> = found
                .items
                .iter()
                .take(DETAIL_DEPENDENTS)
                .map(
                    |d| json!({"kind": d.kind, "name": d.name, "owner": d.owner, "depth": d.depth}),
                )
                .collect();
            detail["dependents_total"] = json!(found.items.len());
            detail["dependents"] = json!(listed);
            if found.items.len() > DETAIL_DEPENDENTS || found.incomplete {
                detail["dependents_truncated"] = json!(true);
            }
            if !found.unchecked.is_empty() {
                detail["unchecked"] = json!(found.unchecked);
            }
            text
        };
        if let Some(owner) = controller_of(&obj) {
            summary.push_str(&format!(
                "; it is managed by {owner}, which may recreate it"
            ));
        }
        let finalizers: Vec<&str> = at(&obj, &["metadata", "finalizers"])
            .and_then(Value::as_array)
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !finalizers.is_empty() {
            summary.push_str(&format!(
                "; it has finalizers ({}) and stays until they are done",
                finalizers.join(", ")
            ));
            detail["finalizers"] = json!(finalizers);
        }
        // Validate on the server (authorization, admission) without deleting anything.
        send_delete(&t, &p.name, delete_params(p, true)).await?;
        if p.dry_run {
            summary = format!("dry run only, nothing is deleted: {summary}");
        }
        Ok(Some(Preview {
            summary,
            diff: None,
            target_version: Some(str_at(&obj, &["metadata", "resourceVersion"]).to_string()),
            detail,
        }))
    }

    /// The object's resourceVersion; `None` once it is gone.
    async fn target_version(
        &self,
        ctx: &ToolContext,
        p: &DeleteArgs,
    ) -> Result<Option<String>, ToolError> {
        let t = resolve_target(ctx, p).await?;
        Ok(t.get_opt(&p.name)
            .await?
            .map(|o| str_at(&o, &["metadata", "resourceVersion"]).to_string()))
    }
}

async fn resolve_target(ctx: &ToolContext, p: &DeleteArgs) -> Result<Scope, ToolError> {
    scope(
        ctx,
        p.cluster.as_deref(),
        &p.kind,
        p.api_version.as_deref(),
        p.namespace.as_deref(),
        Omitted::DefaultNamespace,
    )
    .await
}

fn delete_params(p: &DeleteArgs, dry_run: bool) -> DeleteOptions {
    use crate::adapters::kube::Propagation as Policy;
    DeleteOptions {
        dry_run,
        grace_period_seconds: p.grace_period_seconds,
        propagation: p.propagation_policy.map(|pp| match pp {
            Propagation::Foreground => Policy::Foreground,
            Propagation::Background => Policy::Background,
            Propagation::Orphan => Policy::Orphan,
        }),
    }
}

/// DELETE one object; the API's answer (the object, or a Status).
async fn send_delete(t: &Scope, name: &str, options: DeleteOptions) -> Result<Value, ToolError> {
    match t
        .cluster
        .delete(
            t.kind.info.resource(),
            t.namespace.as_deref(),
            name,
            &options,
        )
        .await
    {
        Ok(a) => Ok(a),
        Err(e) if e.is_not_found() => Err(t.not_found(name).await),
        Err(e) => Err(tool_error(e)),
    }
}

/// What the API does when a delete names no propagation policy: batch/v1 Jobs and core
/// ReplicationControllers orphan their pods (kept for compatibility); everything else deletes
/// dependents in the background.
fn default_policy(kind: &ResolvedKind) -> Propagation {
    match (kind.info.group.as_str(), kind.info.kind.as_str()) {
        ("batch", "Job") | ("", "ReplicationController") => Propagation::Orphan,
        _ => Propagation::Background,
    }
}

fn policy_name(p: Propagation) -> &'static str {
    match p {
        Propagation::Foreground => "Foreground",
        Propagation::Background => "Background",
        Propagation::Orphan => "Orphan",
    }
}

/// `replicaset web-abc` when the object has a controller owner.
fn controller_of(obj: &Value) -> Option<String> {
    at(obj, &["metadata", "ownerReferences"])?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            format!(
                "{} {}",
                str_at(r, &["kind"]).to_lowercase(),
                str_at(r, &["name"])
            )
        })
}

/// A kind as discovery knows it, or `None` when the cluster does not serve it.
async fn resolve_opt(
    c: &Cluster,
    resource: &str,
    api_version: &str,
) -> Result<Option<ResolvedKind>, ToolError> {
    match c.resolve(resource, Some(api_version)).await {
        Ok(k) => Ok(Some(k)),
        Err(KubeError::KindNotFound { .. }) => Ok(None),
        Err(e) => Err(tool_error(e)),
    }
}

struct Dependent {
    kind: String,
    plural: String,
    name: String,
    /// `kind/name` of the owner it was found under.
    owner: String,
    /// 1 = owned by the deleted object itself.
    depth: usize,
}

#[derive(Default)]
struct Dependents {
    items: Vec<Dependent>,
    /// A list had more pages than a preview reads.
    incomplete: bool,
    /// Kinds that could not be listed, with the reason.
    unchecked: Vec<String>,
}

/// Objects of [`OWNABLE`] kinds in the object's namespace that it owns, directly or through
/// other dependents (Deployment → ReplicaSets → pods), breadth first.
async fn find_dependents(
    t: &Scope,
    root_name: &str,
    root_uid: &str,
) -> Result<Dependents, ToolError> {
    let mut out = Dependents::default();
    if root_uid.is_empty() {
        return Ok(out);
    }
    let Some(ns) = t.namespace.clone() else {
        // Cluster-scoped owners (nodes…) rarely own what a delete would take along; listing
        // every namespace is not cheap.
        return Ok(out);
    };
    // (singular, plural, metadata) of every candidate object.
    let mut objects: Vec<(String, String, Value)> = Vec::new();
    for (resource, api_version) in OWNABLE {
        let Some(kind) = resolve_opt(&t.cluster, resource, api_version).await? else {
            continue;
        };
        if !kind.namespaced() || !kind.info.supports("list") {
            continue;
        }
        let (singular, plural) = (kind.info.singular.clone(), kind.info.plural.clone());
        let lt = Scope {
            cluster: t.cluster.clone(),
            kind,
            namespace: Some(ns.clone()),
        };
        match list_all(&lt, &ListQuery::default().metadata_only()).await {
            Ok((items, more)) => {
                out.incomplete |= more;
                objects.extend(
                    items
                        .into_iter()
                        .map(|i| (singular.clone(), plural.clone(), i)),
                );
            }
            Err(e) => out.unchecked.push(format!("{plural}: {}", e.message)),
        }
    }
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (_, _, o)) in objects.iter().enumerate() {
        for r in at(o, &["metadata", "ownerReferences"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(uid) = r.get("uid").and_then(Value::as_str) {
                children.entry(uid).or_default().push(i);
            }
        }
    }
    let root_label = format!("{}/{root_name}", t.kind.info.singular);
    let mut seen: HashSet<usize> = HashSet::new();
    let mut queue: VecDeque<(String, String, usize)> = VecDeque::new();
    queue.push_back((root_uid.to_string(), root_label, 0));
    while let Some((uid, owner, depth)) = queue.pop_front() {
        for &i in children.get(uid.as_str()).into_iter().flatten() {
            if !seen.insert(i) {
                continue;
            }
            let (singular, plural, o) = &objects[i];
            let name = str_at(o, &["metadata", "name"]).to_string();
            let me = format!("{singular}/{name}");
            out.items.push(Dependent {
                kind: singular.clone(),
                plural: plural.clone(),
                name,
                owner: owner.clone(),
                depth: depth + 1,
            });
            let child_uid = str_at(o, &["metadata", "uid"]).to_string();
            if !child_uid.is_empty() && child_uid != root_uid {
                queue.push_back((child_uid, me, depth + 1));
            }
        }
    }
    Ok(out)
}

/// `1 replicaset, 3 pods`, in the order the kinds were met.
fn breakdown<'a>(items: impl Iterator<Item = &'a Dependent>) -> (usize, String) {
    let mut counts: Vec<(&str, &str, usize)> = Vec::new();
    let mut total = 0;
    for d in items {
        total += 1;
        match counts.iter_mut().find(|(k, _, _)| *k == d.kind) {
            Some(c) => c.2 += 1,
            None => counts.push((&d.kind, &d.plural, 1)),
        }
    }
    let text = counts
        .iter()
        .map(|(s, p, n)| count_of(*n, s, p))
        .collect::<Vec<_>>()
        .join(", ");
    (total, text)
}

fn dependents_phrase(
    label: &str,
    found: &Dependents,
    policy: Propagation,
    defaulted: bool,
    kind: &ResolvedKind,
) -> String {
    let at_least = if found.incomplete { "at least " } else { "" };
    let mut text = match policy {
        Propagation::Orphan => {
            let (direct, direct_text) = breakdown(found.items.iter().filter(|d| d.depth == 1));
            let (deeper, deeper_text) = breakdown(found.items.iter().filter(|d| d.depth > 1));
            if direct == 0 {
                format!("would delete {label} ({at_least}no dependents to orphan)")
            } else {
                let mut t = format!(
                    "would delete {label} and orphan its {at_least}{direct} dependent{} ({direct_text})",
                    if direct == 1 { "" } else { "s" }
                );
                if deeper > 0 {
                    t.push_str(&format!(
                        ", whose own {deeper} dependent{} ({deeper_text}) stay{} with {}",
                        if deeper == 1 { "" } else { "s" },
                        if deeper == 1 { "s" } else { "" },
                        if direct == 1 { "it" } else { "them" }
                    ));
                }
                if defaulted {
                    t.push_str(&format!(
                        " — the API's default for {}; pass propagation_policy Background to delete them",
                        kind.info.plural
                    ));
                }
                t
            }
        }
        Propagation::Background | Propagation::Foreground => {
            let (n, text) = breakdown(found.items.iter());
            if n == 0 {
                format!("would delete {label} ({at_least}no dependents)")
            } else {
                format!(
                    "would delete {label} and its {at_least}{n} dependent{} ({text})",
                    if n == 1 { "" } else { "s" }
                )
            }
        }
    };
    if !found.unchecked.is_empty() {
        text.push_str(&format!("; could not check {}", found.unchecked.join("; ")));
    }
    text
}

/// How many objects of [`NAMESPACE_CONTENT`] kinds a namespace holds: (singular, plural,
/// count, more-than-counted), and the kinds that could not be listed.
#[allow(clippy::type_complexity)]
async fn namespace_content(
    c: &Cluster,
    ns: &str,
) -> Result<(Vec<(String, String, usize, bool)>, Vec<String>), ToolError> {
    let mut counts = Vec::new();
    let mut unchecked = Vec::new();
    for (resource, api_version) in NAMESPACE_CONTENT {
        let Some(kind) = resolve_opt(c, resource, api_version).await? else {
            continue;
        };
        let (singular, plural) = (kind.info.singular.clone(), kind.info.plural.clone());
        let lt = Scope {
            cluster: c.clone(),
            kind,
            namespace: Some(ns.to_string()),
        };
        // Metadata only: counting Secrets must not fetch their values.
        match list_all(&lt, &ListQuery::default().metadata_only()).await {
            Ok((items, more)) => counts.push((singular, plural, items.len(), more)),
            Err(e) => unchecked.push(format!("{plural}: {}", e.message)),
        }
    }
    Ok((counts, unchecked))
}

/// The custom resources a CRD's deletion removes: (plural, count, more-than-counted).
async fn custom_resources(c: &Cluster, crd: &Value) -> Result<(String, usize, bool), ToolError> {
    let group = str_at(crd, &["spec", "group"]);
    let plural = str_at(crd, &["spec", "names", "plural"]).to_string();
    let Ok(kind) = c.resolve(&format!("{plural}.{group}"), None).await else {
        return Ok((plural, 0, false));
    };
    let lt = Scope {
        cluster: c.clone(),
        kind,
        namespace: None,
    };
    let (items, more) = list_all(&lt, &ListQuery::default().metadata_only()).await?;
    Ok((plural, items.len(), more))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(kind: &str, plural: &str, name: &str, depth: usize) -> Dependent {
        Dependent {
            kind: kind.into(),
            plural: plural.into(),
            name: name.into(),
            owner: String::new(),
            depth,
        }
    }

    #[test]
    fn dependents_are_counted_by_kind() {
        let found = Dependents {
            items: vec![
                dep("replicaset", "replicasets", "web-1", 1),
                dep("pod", "pods", "web-1-a", 2),
                dep("pod", "pods", "web-1-b", 2),
                dep("pod", "pods", "web-1-c", 2),
            ],
            ..Dependents::default()
        };
        let info = crate::adapters::kube::KindInfo {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
            singular: "deployment".into(),
            short_names: vec![],
            namespaced: true,
            verbs: vec![],
            preferred: true,
        };
        let kind = ResolvedKind {
            resource: info.api_resource(),
            info,
        };
        assert_eq!(
            dependents_phrase(
                "deployment shop/web",
                &found,
                Propagation::Background,
                true,
                &kind
            ),
            "would delete deployment shop/web and its 4 dependents (1 replicaset, 3 pods)"
        );
        assert_eq!(
            dependents_phrase(
                "deployment shop/web",
                &found,
                Propagation::Orphan,
                false,
                &kind
            ),
            "would delete deployment shop/web and orphan its 1 dependent (1 replicaset), whose own 3 dependents (3 pods) stay with it"
        );
        assert_eq!(default_policy(&kind), Propagation::Background);
    }
}
