//! Compact columnar rows for lists, as `kubectl get` prints them: pods (status, ready,
//! restarts), deployments (ready, up-to-date, available), secrets (type, key count) and a
//! generic form (age, status from phase/conditions). Pure functions over API JSON.

use jiff::Timestamp;
use serde_json::{Value, json};

pub use super::view::Item;
use super::view::{ContainerStatus, Terminated};

/// Column names and one row per object.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Value>,
}

/// Cells of one row after the name (and namespace).
type RowFn = fn(&Item<'_>, Timestamp) -> Vec<Value>;

/// Rows for `items` of `kind` (in group `group`). `with_namespace` adds the namespace column
/// (a list across namespaces).
pub fn table(
    group: &str,
    kind: &str,
    items: &[Item<'_>],
    with_namespace: bool,
    now: Timestamp,
) -> Table {
    let (cols, row): (&[&str], RowFn) = match (group, kind) {
        ("", "Pod") => (&["status", "ready", "restarts", "age", "node"], pod_row),
        ("apps", "Deployment") => (&["ready", "up_to_date", "available", "age"], deployment_row),
        ("", "Secret") => (&["type", "keys", "age"], secret_row),
        _ => (&["age", "status"], generic_row),
    };
    let mut columns = vec!["name".to_string()];
    if with_namespace {
        columns.push("namespace".into());
    }
    columns.extend(cols.iter().map(|c| c.to_string()));
    let rows = items
        .iter()
        .map(|item| {
            let meta = item.meta();
            let mut cells = vec![json!(meta.map_or("", |m| m.name.str()))];
            if with_namespace {
                cells.push(json!(meta.map_or("", |m| m.namespace.str())));
            }
            cells.extend(row(item, now));
            Value::Array(cells)
        })
        .collect();
    Table { columns, rows }
}

pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(key))
}

/// kubectl's age format: `45s`, `5m30s`, `12m`, `3h5m`, `20h`, `3d4h`, `45d`, `2y30d`.
pub fn human_age(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let minutes = s / 60;
    if minutes < 10 {
        return if s % 60 == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{}s", s % 60)
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = s / 3600;
    if hours < 8 {
        return if minutes % 60 == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{}m", minutes % 60)
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return if hours % 24 == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{}h", hours / 24, hours % 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Age of an RFC 3339 timestamp, `""` when absent or unparsable.
pub fn age_since(ts: &str, now: Timestamp) -> String {
    match ts.parse::<Timestamp>() {
        Ok(t) => human_age(now.as_second() - t.as_second()),
        Err(_) => String::new(),
    }
}

fn age(item: &Item<'_>, now: Timestamp) -> Value {
    json!(age_since(
        item.meta().map_or("", |m| m.creation_timestamp.str()),
        now
    ))
}

/// Why a container ended, as kubectl words it: the reason, else `Signal:N`, else `ExitCode:N`.
fn ended(t: &Terminated<'_>) -> String {
    match t.reason.non_empty() {
        Some(r) => r.to_string(),
        None => match t.signal.0.filter(|s| *s != 0) {
            Some(sig) => format!("Signal:{sig}"),
            None => format!("ExitCode:{}", t.exit_code.0.unwrap_or(0)),
        },
    }
}

/// The STATUS column of `kubectl get pods`: the phase, or why a container waits or ended
/// (`CrashLoopBackOff`, `Init:0/1`, `OOMKilled`, `Terminating`).
pub fn pod_status(pod: &Item<'_>) -> String {
    let status = pod.status.0.as_ref();
    let mut reason = status.map_or("", |s| s.phase.str()).to_string();
    if let Some(r) = status.and_then(|s| s.reason.non_empty()) {
        reason = r.to_string();
    }
    let init_count = pod
        .spec
        .0
        .as_ref()
        .and_then(|s| s.init_containers.0)
        .unwrap_or(0);
    let mut initializing = false;
    let init_statuses = status.map_or(&[][..], |s| s.init_container_statuses.items());
    for (i, c) in init_statuses.iter().enumerate() {
        let c = c.0.as_ref();
        if let Some(t) = c.and_then(ContainerStatus::terminated) {
            if t.exit_code.0 == Some(0) {
                continue;
            }
            reason = format!("Init:{}", ended(t));
        } else if let Some(r) = c
            .and_then(ContainerStatus::waiting_reason)
            .filter(|r| *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{i}/{init_count}");
        }
        initializing = true;
        break;
    }
    if !initializing {
        let statuses = status.map_or(&[][..], |s| s.container_statuses.items());
        let mut has_running = false;
        for c in statuses.iter().rev().filter_map(|c| c.0.as_ref()) {
            if let Some(r) = c.waiting_reason() {
                reason = r.to_string();
            } else if let Some(t) = c.terminated() {
                reason = ended(t);
            } else if c.ready.0 == Some(true) && c.state.0.as_ref().is_some_and(|s| s.running.0) {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_status(pod, "Ready") == Some("True") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if pod.meta().is_some_and(|m| m.deletion_timestamp.0) {
        reason = if status.is_some_and(|s| s.reason.str() == "NodeLost") {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    reason
}

/// `ready/total` containers of a pod.
pub fn pod_ready(pod: &Item<'_>) -> String {
    let total = pod
        .spec
        .0
        .as_ref()
        .and_then(|s| s.containers.0)
        .unwrap_or(0);
    let ready = pod.status.0.as_ref().map_or(0, |s| {
        s.container_statuses
            .items()
            .iter()
            .filter(|c| c.0.as_ref().is_some_and(|c| c.ready.0 == Some(true)))
            .count()
    });
    format!("{ready}/{total}")
}

/// Restart count as kubectl shows it: `0`, or `3 (5m ago)` with the last restart's age.
pub fn pod_restarts(pod: &Item<'_>, now: Timestamp) -> Value {
    let mut restarts = 0;
    let mut last: Option<Timestamp> = None;
    let status = pod.status.0.as_ref();
    let all = status.into_iter().flat_map(|s| {
        s.init_container_statuses
            .items()
            .iter()
            .chain(s.container_statuses.items())
    });
    for c in all.filter_map(|c| c.0.as_ref()) {
        restarts += c.restart_count.0.unwrap_or(0);
        if let Some(t) = c
            .last_state
            .0
            .as_ref()
            .and_then(|l| l.terminated.0.as_ref())
            .and_then(|t| t.finished_at.0.as_deref())
            .and_then(|s| s.parse().ok())
        {
            last = Some(last.map_or(t, |l: Timestamp| l.max(t)));
        }
    }
    match last {
        Some(t) if restarts > 0 => json!(format!(
            "{restarts} ({} ago)",
            human_age(now.as_second() - t.as_second())
        )),
        _ => json!(restarts),
    }
}

fn pod_row(pod: &Item<'_>, now: Timestamp) -> Vec<Value> {
    vec![
        json!(pod_status(pod)),
        json!(pod_ready(pod)),
        pod_restarts(pod, now),
        age(pod, now),
        json!(pod.spec.0.as_ref().map_or("", |s| s.node_name.str())),
    ]
}

fn deployment_row(d: &Item<'_>, now: Timestamp) -> Vec<Value> {
    let desired = d.spec.0.as_ref().and_then(|s| s.replicas.0).unwrap_or(1);
    let status = d.status.0.as_ref();
    let count = |f: fn(&super::view::Status<'_>) -> Option<i64>| status.and_then(f).unwrap_or(0);
    vec![
        json!(format!("{}/{desired}", count(|s| s.ready_replicas.0))),
        json!(count(|s| s.updated_replicas.0)),
        json!(count(|s| s.available_replicas.0)),
        age(d, now),
    ]
}

fn secret_row(s: &Item<'_>, now: Timestamp) -> Vec<Value> {
    let keys = s.data.0.unwrap_or(0) + s.string_data.0.unwrap_or(0);
    // Redacted secrets carry `data_keys` instead of `data`.
    let keys = if keys == 0 {
        s.data_keys.0.unwrap_or(0)
    } else {
        keys
    };
    vec![json!(s.type_.str()), json!(keys), age(s, now)]
}

fn generic_row(item: &Item<'_>, now: Timestamp) -> Vec<Value> {
    vec![age(item, now), json!(status_summary(item))]
}

fn condition_status<'a>(obj: &'a Item<'_>, kind: &str) -> Option<&'a str> {
    obj.conditions()
        .find(|c| c.type_.0.as_deref() == Some(kind))
        .and_then(|c| c.status.0.as_deref())
}

/// A short status from what most kinds carry: `status.phase`, else the conditions
/// (`Ready`, `NotReady: reason`, or the true ones joined: `Available,Progressing`).
pub fn status_summary(obj: &Item<'_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let status = obj.status.0.as_ref();
    if let Some(phase) = status.and_then(|s| s.phase.non_empty()) {
        parts.push(phase.to_string());
    } else if status.is_some_and(|s| s.conditions.0.is_some()) {
        let ready = obj
            .conditions()
            .find(|c| c.type_.0.as_deref() == Some("Ready"));
        match ready {
            Some(c) if c.status.0.as_deref() == Some("True") => parts.push("Ready".into()),
            Some(c) => {
                let reason = c.reason.str();
                parts.push(if reason.is_empty() {
                    "NotReady".into()
                } else {
                    format!("NotReady: {reason}")
                });
            }
            None => {
                let trues: Vec<&str> = obj
                    .conditions()
                    .filter(|c| c.status.0.as_deref() == Some("True"))
                    .filter_map(|c| c.type_.0.as_deref())
                    .collect();
                if !trues.is_empty() {
                    parts.push(trues.join(","));
                }
            }
        }
    }
    if obj
        .spec
        .0
        .as_ref()
        .is_some_and(|s| s.unschedulable.0 == Some(true))
    {
        parts.push("SchedulingDisabled".into());
    }
    if obj.meta().is_some_and(|m| m.deletion_timestamp.0) {
        parts.push("Terminating".into());
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2024-06-01T12:00:00Z".parse().expect("ts")
    }

    #[test]
    fn ages_match_kubectl() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (330, "5m30s"),
            (720, "12m"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (45 * 86400, "45d"),
            (2 * 365 * 86400 + 30 * 86400, "2y30d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_age(secs), want, "{secs}");
        }
        assert_eq!(age_since("2024-06-01T11:55:00Z", now()), "5m");
        assert_eq!(age_since("garbage", now()), "");
    }

    fn pod(status: Value) -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "shop", "creationTimestamp": "2024-05-27T12:00:00Z"},
               "spec": {"nodeName": "node-a", "containers": [{"name": "app"}, {"name": "sidecar"}]},
               "status": status})
    }

    #[test]
    fn pod_rows_show_what_kubectl_shows() {
        let p = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 7, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"reason": "OOMKilled", "finishedAt": "2024-06-01T11:57:00Z"}}},
            {"name": "sidecar", "ready": true, "restartCount": 0, "state": {"running": {}}}]}));
        let t = table("", "Pod", &[Item::of(&p)], true, now());
        assert_eq!(
            t.columns,
            vec![
                "name",
                "namespace",
                "status",
                "ready",
                "restarts",
                "age",
                "node"
            ]
        );
        assert_eq!(
            t.rows[0],
            json!([
                "web-1",
                "shop",
                "CrashLoopBackOff",
                "1/2",
                "7 (3m ago)",
                "5d",
                "node-a"
            ])
        );

        let p = pod(json!({"phase": "Running"}));
        let t = table("", "Pod", &[Item::of(&p)], false, now());
        assert_eq!(
            t.columns,
            vec!["name", "status", "ready", "restarts", "age", "node"]
        );
        assert_eq!(
            t.rows[0],
            json!(["web-1", "Running", "0/2", 0, "5d", "node-a"])
        );
    }

    #[test]
    fn pod_status_covers_init_and_termination() {
        let mut p = pod(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "init", "state": {"waiting": {"reason": "PodInitializing"}}}]}));
        p["spec"]["initContainers"] = json!([{"name": "init"}]);
        assert_eq!(pod_status(&Item::of(&p)), "Init:0/1");
        p["status"]["initContainerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        assert_eq!(pod_status(&Item::of(&p)), "Init:Error");
        let mut p = pod(json!({"phase": "Running"}));
        p["metadata"]["deletionTimestamp"] = json!("2024-06-01T11:00:00Z");
        assert_eq!(pod_status(&Item::of(&p)), "Terminating");
        let p = pod(json!({"phase": "Failed", "reason": "Evicted"}));
        assert_eq!(pod_status(&Item::of(&p)), "Evicted");
    }

    #[test]
    fn deployment_secret_and_generic_rows() {
        let d = json!({"metadata": {"name": "api", "creationTimestamp": "2024-06-01T09:00:00Z"},
            "spec": {"replicas": 3}, "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            table("apps", "Deployment", &[Item::of(&d)], false, now()).rows[0],
            json!(["api", "2/3", 3, 2, "3h"])
        );

        let s = json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data_keys": [{"name": "a"}, {"name": "b"}]});
        assert_eq!(
            table("", "Secret", &[Item::of(&s)], false, now()).rows[0],
            json!(["tls", "kubernetes.io/tls", 2, ""])
        );

        let node = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(status_summary(&Item::of(&node)), "Ready,SchedulingDisabled");
        let cert = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Pending"}]}});
        assert_eq!(status_summary(&Item::of(&cert)), "NotReady: Pending");
        let hpa = json!({"status": {"conditions": [{"type": "AbleToScale", "status": "True"}, {"type": "ScalingActive", "status": "True"}]}});
        assert_eq!(status_summary(&Item::of(&hpa)), "AbleToScale,ScalingActive");
        assert_eq!(
            status_summary(&Item::of(&json!({"status": {"phase": "Bound"}}))),
            "Bound"
        );
        assert_eq!(status_summary(&Item::of(&json!({"data": {}}))), "");
        let t = table(
            "",
            "ConfigMap",
            &[Item::of(
                &json!({"metadata": {"name": "c", "namespace": "x"}}),
            )],
            true,
            now(),
        );
        assert_eq!(t.columns, vec!["name", "namespace", "age", "status"]);
    }
}
