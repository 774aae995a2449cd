//! ArgoCD's answers (swagger `v1alpha1Application`, `v1alpha1ApplicationTree`,
//! `applicationManagedResourcesResponse`, `v1alpha1RevisionHistory`) read into the few fields
//! tools and the poller use. Missing fields read as empty: ArgoCD leaves out zero values.

use std::collections::BTreeMap;

use serde_json::Value;

fn text(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        cur = match cur.get(p) {
            Some(next) => next,
            None => return String::new(),
        };
    }
    cur.as_str().unwrap_or_default().to_string()
}

fn opt(v: &Value, path: &[&str]) -> Option<String> {
    Some(text(v, path)).filter(|s| !s.is_empty())
}

/// One deployment in `status.history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub id: i64,
    pub revision: String,
    pub deployed_at: String,
    pub deploy_started_at: Option<String>,
    /// Who started it: a user name, or `automated`.
    pub initiated_by: Option<String>,
    pub repo_url: Option<String>,
}

/// An application as the tools and the poller see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub name: String,
    /// The namespace the Application object lives in (`argocd` unless apps-in-any-namespace).
    pub namespace: String,
    pub project: String,
    pub labels: BTreeMap<String, String>,
    /// `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing`, `Unknown` (empty: not yet).
    pub health: String,
    pub health_message: Option<String>,
    /// `Synced`, `OutOfSync`, `Unknown`.
    pub sync: String,
    /// The revision the sync status compares against.
    pub revision: Option<String>,
    /// The last operation's phase (`Running`, `Succeeded`, `Failed`, `Error`, `Terminating`).
    pub operation_phase: Option<String>,
    pub operation_message: Option<String>,
    pub repo_url: Option<String>,
    pub path: Option<String>,
    pub target_revision: Option<String>,
    /// `server` or `name` of the destination cluster.
    pub destination: Option<String>,
    pub destination_namespace: Option<String>,
    pub auto_sync: bool,
    pub history: Vec<HistoryEntry>,
    /// `type: message` of each condition (errors and warnings ArgoCD reports).
    pub conditions: Vec<String>,
}

impl Application {
    pub fn from_json(v: &Value) -> Option<Application> {
        let name = opt(v, &["metadata", "name"])?;
        let labels = v
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        // Multi-source applications keep `sources`; the first one stands for them here.
        let source = v
            .pointer("/spec/source")
            .or_else(|| v.pointer("/spec/sources/0"))
            .cloned()
            .unwrap_or(Value::Null);
        let history = v
            .pointer("/status/history")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|h| HistoryEntry {
                        id: h.get("id").and_then(Value::as_i64).unwrap_or_default(),
                        revision: opt(h, &["revision"])
                            .or_else(|| {
                                h.pointer("/revisions/0")
                                    .and_then(Value::as_str)
                                    .map(str::to_string)
                            })
                            .unwrap_or_default(),
                        deployed_at: text(h, &["deployedAt"]),
                        deploy_started_at: opt(h, &["deployStartedAt"]),
                        initiated_by: if h
                            .pointer("/initiatedBy/automated")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                        {
                            Some("automated".into())
                        } else {
                            opt(h, &["initiatedBy", "username"])
                        },
                        repo_url: opt(h, &["source", "repoURL"])
                            .or_else(|| opt(h, &["sources", "0", "repoURL"])),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let conditions = v
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|c| format!("{}: {}", text(c, &["type"]), text(c, &["message"])))
                    .collect()
            })
            .unwrap_or_default();
        Some(Application {
            name,
            namespace: text(v, &["metadata", "namespace"]),
            project: text(v, &["spec", "project"]),
            labels,
            health: text(v, &["status", "health", "status"]),
            health_message: opt(v, &["status", "health", "message"]),
            sync: text(v, &["status", "sync", "status"]),
            revision: opt(v, &["status", "sync", "revision"]),
            operation_phase: opt(v, &["status", "operationState", "phase"]),
            operation_message: opt(v, &["status", "operationState", "message"]),
            repo_url: opt(&source, &["repoURL"]),
            path: opt(&source, &["path"]).or_else(|| opt(&source, &["chart"])),
            target_revision: opt(&source, &["targetRevision"]),
            destination: opt(v, &["spec", "destination", "name"])
                .or_else(|| opt(v, &["spec", "destination", "server"])),
            destination_namespace: opt(v, &["spec", "destination", "namespace"]),
            auto_sync: v
                .pointer("/spec/syncPolicy/automated")
                .is_some_and(|a| !a.is_null()),
            history,
            conditions,
        })
    }

    /// The value of `label` (the environment label), empty when unset.
    pub fn label(&self, label: &str) -> &str {
        self.labels
            .get(label)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// One node of the resource tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNode {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub health: Option<String>,
    pub health_message: Option<String>,
    /// `Kind/name` of the first parent (empty for top-level resources).
    pub parent: Option<String>,
    pub images: Vec<String>,
}

/// `nodes` of a resource tree (`orphanedNodes` are left out).
pub fn tree_nodes(v: &Value) -> Vec<ResourceNode> {
    v.get("nodes")
        .and_then(Value::as_array)
        .map(|nodes| {
            nodes
                .iter()
                .map(|n| ResourceNode {
                    group: text(n, &["group"]),
                    kind: text(n, &["kind"]),
                    namespace: text(n, &["namespace"]),
                    name: text(n, &["name"]),
                    health: opt(n, &["health", "status"]),
                    health_message: opt(n, &["health", "message"]),
                    parent: n
                        .pointer("/parentRefs/0")
                        .map(|p| format!("{}/{}", text(p, &["kind"]), text(p, &["name"]))),
                    images: n
                        .get("images")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One managed resource: its live and target state (`null` when absent on that side).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDiff {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// ArgoCD's normalized live state (the live state when there is none).
    pub live: Value,
    /// The predicted live state after a sync (the target state when there is none).
    pub target: Value,
    pub modified: bool,
    pub hook: bool,
}

/// `items` of a managed-resources answer; the states are JSON documents in strings.
pub fn managed_resources(v: &Value) -> Vec<ResourceDiff> {
    let state = |item: &Value, keys: &[&str]| -> Value {
        keys.iter()
            .filter_map(|k| item.get(*k).and_then(Value::as_str))
            .find(|s| !s.is_empty() && *s != "null")
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null)
    };
    v.get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|i| ResourceDiff {
                    group: text(i, &["group"]),
                    kind: text(i, &["kind"]),
                    namespace: text(i, &["namespace"]),
                    name: text(i, &["name"]),
                    live: state(i, &["normalizedLiveState", "liveState"]),
                    target: state(i, &["predictedLiveState", "targetState"]),
                    modified: i.get("modified").and_then(Value::as_bool).unwrap_or(false),
                    hook: i.get("hook").and_then(Value::as_bool).unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The phase and message of the operation in a sync or rollback answer: `status.operationState`,
/// or `Running` when ArgoCD only just recorded the `operation`.
pub fn operation_of(v: &Value) -> (Option<String>, Option<String>) {
    let phase = opt(v, &["status", "operationState", "phase"]).or_else(|| {
        v.get("operation")
            .filter(|o| !o.is_null())
            .map(|_| "Running".to_string())
    });
    (phase, opt(v, &["status", "operationState", "message"]))
}

/// What a sync changed or would change: `status.operationState.syncResult.resources`.
pub fn sync_results(v: &Value) -> Vec<String> {
    v.pointer("/status/operationState/syncResult/resources")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|r| {
                    let ns = text(r, &["namespace"]);
                    let place = if ns.is_empty() {
                        String::new()
                    } else {
                        format!("{ns}/")
                    };
                    format!(
                        "{} {place}{}: {} {}",
                        text(r, &["kind"]),
                        text(r, &["name"]),
                        text(r, &["status"]),
                        text(r, &["message"])
                    )
                    .trim_end()
                    .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_application_reads_its_state_source_and_history() {
        let app = Application::from_json(&json!({
            "metadata": {"name": "web", "namespace": "argocd", "labels": {"environment": "prod"}},
            "spec": {"project": "shop", "source": {"repoURL": "https://git/x", "path": "web", "targetRevision": "main"},
                     "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
                     "syncPolicy": {"automated": {"prune": true}}},
            "status": {"health": {"status": "Degraded", "message": "1 pod crashing"},
                       "sync": {"status": "OutOfSync", "revision": "abc"},
                       "operationState": {"phase": "Failed", "message": "one or more objects failed"},
                       "history": [{"id": 3, "revision": "abc", "deployedAt": "2026-12-01T10:00:00Z",
                                    "initiatedBy": {"automated": true}}]}
        }))
        .expect("app");
        assert_eq!(app.label("environment"), "prod");
        assert_eq!(app.health, "Degraded");
        assert_eq!(app.sync, "OutOfSync");
        assert!(app.auto_sync);
        assert_eq!(app.history[0].id, 3);
        assert_eq!(app.history[0].initiated_by.as_deref(), Some("automated"));
        assert_eq!(
            app.destination.as_deref(),
            Some("https://kubernetes.default.svc")
        );
        assert!(Application::from_json(&json!({"metadata": {}})).is_none());
    }

    #[test]
    fn managed_resources_parse_their_json_states() {
        let items = managed_resources(&json!({"items": [
            {"kind": "Deployment", "name": "web", "namespace": "shop",
             "normalizedLiveState": "{\"spec\":{\"replicas\":2}}", "targetState": "{\"spec\":{\"replicas\":3}}",
             "predictedLiveState": "", "modified": true},
            {"kind": "Service", "name": "web", "liveState": "null", "targetState": "{\"kind\":\"Service\"}"}
        ]}));
        assert_eq!(items[0].live, json!({"spec": {"replicas": 2}}));
        assert_eq!(items[0].target, json!({"spec": {"replicas": 3}}));
        assert!(items[1].live.is_null() && !items[1].modified);
    }
}
