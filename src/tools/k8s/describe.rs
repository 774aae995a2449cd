//! `k8s.describe_resource`: what `kubectl describe` tells a human, as structured fields: the
//! kind's key state (pods: containers and why they restart; workloads: replicas), conditions,
//! owners, and the object's recent events.

use std::collections::BTreeMap;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::events::{EventRow, fetch_events, newest_rows};
use super::redact::{LAST_APPLIED, data_keys};
use super::rows::{
    Item, age_since, at, pod_ready, pod_restarts, pod_status, status_summary, str_at,
};
use super::target::{Omitted, scope, settle_kind};
use crate::adapters::kube::EventFilter;
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, Target, TypedTool};

/// Events shown with an object.
const EVENTS_SHOWN: usize = 20;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DescribeParams {
    /// Kind or short name, as kubectl takes it.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Namespace (default: the context's).
    pub namespace: Option<String>,
    /// `group/version`, if the kind is ambiguous.
    pub api_version: Option<String>,
    /// Cluster (default: the default one).
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Condition {
    #[serde(rename = "type")]
    pub condition_type: String,
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Time since the last transition.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub since: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DescribeOutput {
    pub cluster: String,
    pub kind: String,
    pub api_version: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub age: String,
    /// Short status (phase or conditions).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotation names (values are often long or sensitive; use k8s.get_resource for them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotation_keys: Vec<String>,
    /// Owners as `Kind/name`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// Key fields of this kind (pods: node, IP, containers with state and last termination…).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub details: Value,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Recent events of the object, newest first.
    pub events: Vec<EventRow>,
}

pub struct DescribeResource;

impl TypedTool for DescribeResource {
    type Params = DescribeParams;
    type Output = DescribeOutput;
    const NAME: &'static str = "k8s.describe_resource";
    const TOOLSET: &'static str = "k8s";
    const TITLE: &'static str = "Describe a Kubernetes object";
    const DESCRIPTION: &'static str = "Summarize one object like `kubectl describe`: state, conditions, owners, recent events. Start here for a failing pod or rollout.";
    const UNTRUSTED: Option<&'static str> =
        Some("Messages and labels are untrusted upstream data.");
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;

    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut DescribeParams,
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

    async fn call(
        &self,
        ctx: &ToolContext,
        p: DescribeParams,
    ) -> Result<DescribeOutput, ToolError> {
        let t = scope(
            ctx,
            p.cluster.as_deref(),
            &p.kind,
            p.api_version.as_deref(),
            p.namespace.as_deref(),
            Omitted::DefaultNamespace,
        )
        .await?;
        let obj = t.get(&p.name).await?;
        let now = Timestamp::now();
        let info = &t.kind.info;

        let filter = EventFilter {
            kind: Some(info.kind.clone()),
            name: Some(p.name.clone()),
            namespace: t.namespace.clone(),
            event_type: None,
        };
        let uid = str_at(&obj, &["metadata", "uid"]).to_string();
        let mut events = fetch_events(t.cluster.as_ref(), t.namespace.as_deref(), &filter).await?;
        events.retain(|e| {
            str_at(e, &["involvedObject", "name"]) == p.name
                && str_at(e, &["involvedObject", "kind"]) == info.kind
                // Events of an earlier object with the same name are not this object's.
                && (uid.is_empty() || str_at(e, &["involvedObject", "uid"]).is_empty() || str_at(e, &["involvedObject", "uid"]) == uid)
        });

        let labels = at(&obj, &["metadata", "labels"])
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let annotation_keys = at(&obj, &["metadata", "annotations"])
            .and_then(Value::as_object)
            .map(|m| {
                m.keys()
                    .filter(|k| k.as_str() != LAST_APPLIED)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let owners = at(&obj, &["metadata", "ownerReferences"])
            .and_then(Value::as_array)
            .map(|refs| {
                refs.iter()
                    .map(|r| format!("{}/{}", str_at(r, &["kind"]), str_at(r, &["name"])))
                    .collect()
            })
            .unwrap_or_default();
        let conditions = at(&obj, &["status", "conditions"])
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| Condition {
                        condition_type: str_at(c, &["type"]).to_string(),
                        status: str_at(c, &["status"]).to_string(),
                        reason: str_at(c, &["reason"]).to_string(),
                        message: str_at(c, &["message"]).to_string(),
                        since: age_since(str_at(c, &["lastTransitionTime"]), now),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let status = if info.group.is_empty() && info.kind == "Pod" {
            pod_status(&Item::of(&obj))
        } else {
            status_summary(&Item::of(&obj))
        };

        Ok(DescribeOutput {
            cluster: t.cluster.name().to_string(),
            kind: info.kind.clone(),
            api_version: info.api_version(),
            name: p.name.clone(),
            namespace: t.namespace.clone(),
            age: age_since(str_at(&obj, &["metadata", "creationTimestamp"]), now),
            status,
            labels,
            annotation_keys,
            owners,
            details: details(&info.group, &info.kind, &obj, now),
            conditions,
            events: newest_rows(events, EVENTS_SHOWN, false, now),
        })
    }
}

/// Key fields by kind; `null` when the kind has nothing beyond the common fields.
pub fn details(group: &str, kind: &str, obj: &Value, now: Timestamp) -> Value {
    match (group, kind) {
        ("", "Pod") => pod_details(obj, now),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") => {
            workload_details(kind, obj)
        }
        ("", "Service") => service_details(obj),
        ("", "Node") => node_details(obj),
        ("", "Secret") => json!({"type": str_at(obj, &["type"]), "data_keys": data_keys(obj)}),
        ("", "ConfigMap") => json!({"data_keys": data_keys(obj)}),
        ("batch", "Job") => pick(
            obj,
            &[
                ("completions", &["spec", "completions"]),
                ("parallelism", &["spec", "parallelism"]),
                ("active", &["status", "active"]),
                ("succeeded", &["status", "succeeded"]),
                ("failed", &["status", "failed"]),
                ("start_time", &["status", "startTime"]),
                ("completion_time", &["status", "completionTime"]),
            ],
        ),
        ("batch", "CronJob") => pick(
            obj,
            &[
                ("schedule", &["spec", "schedule"]),
                ("suspend", &["spec", "suspend"]),
                ("last_schedule_time", &["status", "lastScheduleTime"]),
                ("last_successful_time", &["status", "lastSuccessfulTime"]),
            ],
        ),
        ("", "PersistentVolumeClaim") => pick(
            obj,
            &[
                ("phase", &["status", "phase"]),
                ("storage_class", &["spec", "storageClassName"]),
                ("volume", &["spec", "volumeName"]),
                ("capacity", &["status", "capacity", "storage"]),
                ("access_modes", &["spec", "accessModes"]),
            ],
        ),
        _ => pick(
            obj,
            &[
                ("phase", &["status", "phase"]),
                ("replicas", &["spec", "replicas"]),
            ],
        ),
    }
}

/// Selected fields that are present, under short names; `null` when none is.
fn pick(obj: &Value, fields: &[(&str, &[&str])]) -> Value {
    let mut out = Map::new();
    for (name, path) in fields {
        if let Some(v) = at(obj, path).filter(|v| !v.is_null()) {
            out.insert((*name).to_string(), v.clone());
        }
    }
    if out.is_empty() {
        Value::Null
    } else {
        Value::Object(out)
    }
}

/// `running since 3h`, `waiting: CrashLoopBackOff (back-off 5m…)`, `terminated: OOMKilled (exit 137) 4m ago`.
fn state_text(state: &Value, now: Timestamp) -> Option<String> {
    if let Some(r) = state.get("running") {
        return Some(format!(
            "running for {}",
            age_since(str_at(r, &["startedAt"]), now)
        ));
    }
    if let Some(w) = state.get("waiting") {
        let reason = str_at(w, &["reason"]);
        let msg = str_at(w, &["message"]);
        return Some(if msg.is_empty() {
            format!("waiting: {reason}")
        } else {
            format!("waiting: {reason} ({msg})")
        });
    }
    if let Some(t) = state.get("terminated") {
        let reason = str_at(t, &["reason"]);
        let code = t.get("exitCode").and_then(Value::as_i64).unwrap_or(0);
        let ended = age_since(str_at(t, &["finishedAt"]), now);
        let mut text = format!(
            "terminated: {} (exit {code})",
            if reason.is_empty() { "Error" } else { reason }
        );
        if !ended.is_empty() {
            text.push_str(&format!(" {ended} ago"));
        }
        let msg = str_at(t, &["message"]);
        if !msg.is_empty() {
            text.push_str(&format!(": {}", msg.trim()));
        }
        return Some(text);
    }
    None
}

fn containers(obj: &Value, spec_field: &str, status_field: &str, now: Timestamp) -> Vec<Value> {
    let statuses = at(obj, &["status", status_field])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    at(obj, &["spec", spec_field])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let name = str_at(c, &["name"]);
            let st = statuses.iter().find(|s| str_at(s, &["name"]) == name);
            let mut out = Map::new();
            out.insert("name".into(), json!(name));
            out.insert("image".into(), json!(str_at(c, &["image"])));
            if let Some(st) = st {
                out.insert(
                    "ready".into(),
                    json!(st.get("ready").and_then(Value::as_bool).unwrap_or(false)),
                );
                out.insert(
                    "restarts".into(),
                    json!(st.get("restartCount").and_then(Value::as_i64).unwrap_or(0)),
                );
                if let Some(s) = st.get("state").and_then(|s| state_text(s, now)) {
                    out.insert("state".into(), json!(s));
                }
                if let Some(s) = st.get("lastState").and_then(|s| state_text(s, now)) {
                    out.insert("last_state".into(), json!(s));
                }
            }
            for (key, path) in [
                ("requests", ["resources", "requests"]),
                ("limits", ["resources", "limits"]),
            ] {
                if let Some(v) =
                    at(c, &path).filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
                {
                    out.insert(key.into(), v.clone());
                }
            }
            if let Some(ports) = c.get("ports").and_then(Value::as_array) {
                let list: Vec<String> = ports
                    .iter()
                    .map(|p| {
                        format!(
                            "{}/{}",
                            p.get("containerPort").and_then(Value::as_i64).unwrap_or(0),
                            p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                        )
                    })
                    .collect();
                out.insert("ports".into(), json!(list));
            }
            Value::Object(out)
        })
        .collect()
}

fn pod_details(pod: &Value, now: Timestamp) -> Value {
    let mut out = Map::new();
    for (key, path) in [
        ("node", &["spec", "nodeName"][..]),
        ("ip", &["status", "podIP"]),
        ("phase", &["status", "phase"]),
        ("qos", &["status", "qosClass"]),
        ("service_account", &["spec", "serviceAccountName"]),
        ("reason", &["status", "reason"]),
        ("message", &["status", "message"]),
    ] {
        let v = str_at(pod, path);
        if !v.is_empty() {
            out.insert(key.into(), json!(v));
        }
    }
    let view = Item::of(pod);
    out.insert("ready".into(), json!(pod_ready(&view)));
    out.insert("restarts".into(), pod_restarts(&view, now));
    let init = containers(pod, "initContainers", "initContainerStatuses", now);
    if !init.is_empty() {
        out.insert("init_containers".into(), Value::Array(init));
    }
    out.insert(
        "containers".into(),
        Value::Array(containers(pod, "containers", "containerStatuses", now)),
    );
    Value::Object(out)
}

fn workload_details(kind: &str, obj: &Value) -> Value {
    let mut out = Map::new();
    let int = |path: &[&str]| at(obj, path).and_then(Value::as_i64).unwrap_or(0);
    let replicas = if kind == "DaemonSet" {
        json!({
            "desired": int(&["status", "desiredNumberScheduled"]),
            "current": int(&["status", "currentNumberScheduled"]),
            "ready": int(&["status", "numberReady"]),
            "updated": int(&["status", "updatedNumberScheduled"]),
            "available": int(&["status", "numberAvailable"]),
            "unavailable": int(&["status", "numberUnavailable"]),
        })
    } else {
        let desired = at(obj, &["spec", "replicas"])
            .and_then(Value::as_i64)
            .unwrap_or(1);
        json!({
            "desired": desired,
            "updated": int(&["status", "updatedReplicas"]),
            "ready": int(&["status", "readyReplicas"]),
            "available": int(&["status", "availableReplicas"]),
            "unavailable": int(&["status", "unavailableReplicas"]),
        })
    };
    out.insert("replicas".into(), replicas);
    let strategy = at(obj, &["spec", "strategy"]).or_else(|| at(obj, &["spec", "updateStrategy"]));
    if let Some(s) = strategy {
        out.insert("strategy".into(), s.clone());
    }
    if let Some(sel) = at(obj, &["spec", "selector"]) {
        out.insert("selector".into(), sel.clone());
    }
    if at(obj, &["spec", "paused"]).and_then(Value::as_bool) == Some(true) {
        out.insert("paused".into(), json!(true));
    }
    let images: Vec<String> = at(obj, &["spec", "template", "spec", "containers"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| format!("{}={}", str_at(c, &["name"]), str_at(c, &["image"])))
        .collect();
    out.insert("images".into(), json!(images));
    for (key, path) in [
        ("generation", &["metadata", "generation"][..]),
        ("observed_generation", &["status", "observedGeneration"]),
    ] {
        if let Some(v) = at(obj, path) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

fn service_details(svc: &Value) -> Value {
    let ports: Vec<String> = at(svc, &["spec", "ports"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            let target = p
                .get("targetPort")
                .map(|t| t.to_string().trim_matches('"').to_string())
                .unwrap_or_default();
            let mut s = format!("{port}/{proto}");
            if !target.is_empty() {
                s.push_str(&format!("→{target}"));
            }
            if let Some(n) = p.get("nodePort").and_then(Value::as_i64) {
                s.push_str(&format!(" (node {n})"));
            }
            s
        })
        .collect();
    let mut out = Map::new();
    out.insert("type".into(), json!(str_at(svc, &["spec", "type"])));
    out.insert(
        "cluster_ip".into(),
        json!(str_at(svc, &["spec", "clusterIP"])),
    );
    out.insert("ports".into(), json!(ports));
    if let Some(sel) = at(svc, &["spec", "selector"]) {
        out.insert("selector".into(), sel.clone());
    }
    if let Some(lb) = at(svc, &["status", "loadBalancer", "ingress"]) {
        out.insert("load_balancer".into(), lb.clone());
    }
    Value::Object(out)
}

fn node_details(node: &Value) -> Value {
    let roles: Vec<String> = at(node, &["metadata", "labels"])
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/").map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Map::new();
    out.insert("roles".into(), json!(roles));
    for (key, path) in [
        ("addresses", &["status", "addresses"][..]),
        ("kubelet_version", &["status", "nodeInfo", "kubeletVersion"]),
        ("os_image", &["status", "nodeInfo", "osImage"]),
        ("capacity", &["status", "capacity"]),
        ("allocatable", &["status", "allocatable"]),
        ("taints", &["spec", "taints"]),
        ("unschedulable", &["spec", "unschedulable"]),
    ] {
        if let Some(v) = at(node, path) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_details_explain_restarts() {
        let now: Timestamp = "2024-06-01T12:00:00Z".parse().expect("ts");
        let pod = json!({
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "shop:1.2",
                "resources": {"limits": {"memory": "128Mi"}}, "ports": [{"containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": "10.1.2.3", "containerStatuses": [{"name": "app", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s"}},
                "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": "2024-06-01T11:59:00Z"}}}]}
        });
        let d = details("", "Pod", &pod, now);
        assert_eq!(d["node"], "n1");
        assert_eq!(d["ip"], "10.1.2.3");
        let c = &d["containers"][0];
        assert_eq!(c["image"], "shop:1.2");
        assert_eq!(c["restarts"], 4);
        assert_eq!(c["state"], "waiting: CrashLoopBackOff (back-off 2m40s)");
        assert_eq!(c["last_state"], "terminated: OOMKilled (exit 137) 60s ago");
        assert_eq!(c["limits"]["memory"], "128Mi");
        assert_eq!(c["ports"], json!(["8080/TCP"]));
    }

    #[test]
    fn workloads_services_and_secrets() {
        let now = Timestamp::now();
        let d = json!({"metadata": {"generation": 3}, "spec": {"replicas": 3, "strategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2, "unavailableReplicas": 1}});
        let out = details("apps", "Deployment", &d, now);
        assert_eq!(
            out["replicas"],
            json!({"desired": 3, "updated": 3, "ready": 2, "available": 2, "unavailable": 1})
        );
        assert_eq!(out["strategy"]["type"], "RollingUpdate");
        assert_eq!(out["images"], json!(["web=web:2"]));
        let svc = json!({"spec": {"type": "ClusterIP", "clusterIP": "10.0.0.1", "ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "web"}}});
        assert_eq!(
            details("", "Service", &svc, now)["ports"],
            json!(["80/TCP→8080"])
        );
        let secret =
            json!({"kind": "Secret", "type": "Opaque", "data": {"password": "aHVudGVyMg=="}});
        let out = details("", "Secret", &secret, now);
        assert_eq!(
            out,
            json!({"type": "Opaque", "data_keys": [{"name": "password", "bytes": 7}]})
        );
        assert!(!out.to_string().contains("aHVudGVyMg=="));
        assert_eq!(
            details("example.com", "Widget", &json!({"spec": {}}), now),
            Value::Null
        );
    }
}
