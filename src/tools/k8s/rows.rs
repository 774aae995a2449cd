//! Compact columnar rows for lists, as `kubectl get` prints them: pods (status, ready,
//! restarts), deployments (ready, up-to-date, available), secrets (type, key count) and a
//! generic form (age, status from phase/conditions). Pure functions over API JSON.

use jiff::Timestamp;
use serde_json::{Value, json};

/// Column names and one row per object.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Value>,
}

/// Cells of one row after the name (and namespace).
type RowFn = fn(&Value, Timestamp) -> Vec<Value>;

/// Rows for `items` of `kind` (in group `group`). `with_namespace` adds the namespace column
/// (a list across namespaces).
pub fn table(
    group: &str,
    kind: &str,
    items: &[Value],
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
            let mut cells = vec![json!(str_at(item, &["metadata", "name"]))];
            if with_namespace {
                cells.push(json!(str_at(item, &["metadata", "namespace"])));
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

fn int_at(v: &Value, path: &[&str]) -> i64 {
    at(v, path).and_then(Value::as_i64).unwrap_or(0)
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

fn age(item: &Value, now: Timestamp) -> Value {
    json!(age_since(
        str_at(item, &["metadata", "creationTimestamp"]),
        now
    ))
}

/// The STATUS column of `kubectl get pods`: the phase, or why a container waits or ended
/// (`CrashLoopBackOff`, `Init:0/1`, `OOMKilled`, `Terminating`).
pub fn pod_status(pod: &Value) -> String {
    let mut reason = str_at(pod, &["status", "phase"]).to_string();
    if let Some(r) = at(pod, &["status", "reason"])
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        reason = r.to_string();
    }
    let empty = Vec::new();
    let init_statuses = at(pod, &["status", "initContainerStatuses"])
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let init_count = at(pod, &["spec", "initContainers"])
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut initializing = false;
    for (i, c) in init_statuses.iter().enumerate() {
        if let Some(t) = at(c, &["state", "terminated"]) {
            if t.get("exitCode").and_then(Value::as_i64) == Some(0) {
                continue;
            }
            reason = match t
                .get("reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
            {
                Some(r) => format!("Init:{r}"),
                None => match t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                    Some(sig) => format!("Init:Signal:{sig}"),
                    None => format!("Init:ExitCode:{}", int_at(t, &["exitCode"])),
                },
            };
        } else if let Some(r) = at(c, &["state", "waiting", "reason"])
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{i}/{init_count}");
        }
        initializing = true;
        break;
    }
    if !initializing {
        let statuses = at(pod, &["status", "containerStatuses"])
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        let mut has_running = false;
        for c in statuses.iter().rev() {
            if let Some(r) = at(c, &["state", "waiting", "reason"])
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
            {
                reason = r.to_string();
            } else if let Some(t) = at(c, &["state", "terminated"]) {
                reason = match t
                    .get("reason")
                    .and_then(Value::as_str)
                    .filter(|r| !r.is_empty())
                {
                    Some(r) => r.to_string(),
                    None => match t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                        Some(sig) => format!("Signal:{sig}"),
                        None => format!("ExitCode:{}", int_at(t, &["exitCode"])),
                    },
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && at(c, &["state", "running"]).is_some()
            {
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
    if at(pod, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null()) {
        reason = if str_at(pod, &["status", "reason"]) == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    reason
}

/// `ready/total` containers of a pod.
pub fn pod_ready(pod: &Value) -> String {
    let total = at(pod, &["spec", "containers"])
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = at(pod, &["status", "containerStatuses"])
        .and_then(Value::as_array)
        .map_or(0, |s| {
            s.iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count()
        });
    format!("{ready}/{total}")
}

/// Restart count as kubectl shows it: `0`, or `3 (5m ago)` with the last restart's age.
pub fn pod_restarts(pod: &Value, now: Timestamp) -> Value {
    let mut restarts = 0;
    let mut last: Option<Timestamp> = None;
    for field in ["initContainerStatuses", "containerStatuses"] {
        for c in at(pod, &["status", field])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            restarts += int_at(c, &["restartCount"]);
            if let Some(t) = at(c, &["lastState", "terminated", "finishedAt"])
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
            {
                last = Some(last.map_or(t, |l: Timestamp| l.max(t)));
            }
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

fn pod_row(pod: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(pod_status(pod)),
        json!(pod_ready(pod)),
        pod_restarts(pod, now),
        age(pod, now),
        json!(str_at(pod, &["spec", "nodeName"])),
    ]
}

fn deployment_row(d: &Value, now: Timestamp) -> Vec<Value> {
    let desired = at(d, &["spec", "replicas"])
        .and_then(Value::as_i64)
        .unwrap_or(1);
    vec![
        json!(format!(
            "{}/{desired}",
            int_at(d, &["status", "readyReplicas"])
        )),
        json!(int_at(d, &["status", "updatedReplicas"])),
        json!(int_at(d, &["status", "availableReplicas"])),
        age(d, now),
    ]
}

fn secret_row(s: &Value, now: Timestamp) -> Vec<Value> {
    let keys = ["data", "stringData"]
        .iter()
        .filter_map(|f| s.get(f).and_then(Value::as_object))
        .map(|m| m.len())
        .sum::<usize>();
    // Redacted secrets carry `data_keys` instead of `data`.
    let keys = if keys == 0 {
        s.get("data_keys")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    } else {
        keys
    };
    vec![json!(str_at(s, &["type"])), json!(keys), age(s, now)]
}

fn generic_row(item: &Value, now: Timestamp) -> Vec<Value> {
    vec![age(item, now), json!(status_summary(item))]
}

fn condition_status<'a>(obj: &'a Value, kind: &str) -> Option<&'a str> {
    at(obj, &["status", "conditions"])?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        .and_then(|c| c.get("status").and_then(Value::as_str))
}

/// A short status from what most kinds carry: `status.phase`, else the conditions
/// (`Ready`, `NotReady: reason`, or the true ones joined: `Available,Progressing`).
pub fn status_summary(obj: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(phase) = at(obj, &["status", "phase"])
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    {
        parts.push(phase.to_string());
    } else if let Some(conditions) = at(obj, &["status", "conditions"]).and_then(Value::as_array) {
        let ready = conditions
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"));
        match ready {
            Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => {
                parts.push("Ready".into())
            }
            Some(c) => {
                let reason = c.get("reason").and_then(Value::as_str).unwrap_or_default();
                parts.push(if reason.is_empty() {
                    "NotReady".into()
                } else {
                    format!("NotReady: {reason}")
                });
            }
            None => {
                let trues: Vec<&str> = conditions
                    .iter()
                    .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
                    .filter_map(|c| c.get("type").and_then(Value::as_str))
                    .collect();
                if !trues.is_empty() {
                    parts.push(trues.join(","));
                }
            }
        }
    }
    if at(obj, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        parts.push("SchedulingDisabled".into());
    }
    if at(obj, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null()) {
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
        let t = table("", "Pod", &[p], true, now());
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

        let t = table("", "Pod", &[pod(json!({"phase": "Running"}))], false, now());
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
        assert_eq!(pod_status(&p), "Init:0/1");
        p["status"]["initContainerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        assert_eq!(pod_status(&p), "Init:Error");
        let mut p = pod(json!({"phase": "Running"}));
        p["metadata"]["deletionTimestamp"] = json!("2024-06-01T11:00:00Z");
        assert_eq!(pod_status(&p), "Terminating");
        let p = pod(json!({"phase": "Failed", "reason": "Evicted"}));
        assert_eq!(pod_status(&p), "Evicted");
    }

    #[test]
    fn deployment_secret_and_generic_rows() {
        let d = json!({"metadata": {"name": "api", "creationTimestamp": "2024-06-01T09:00:00Z"},
            "spec": {"replicas": 3}, "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            table("apps", "Deployment", &[d], false, now()).rows[0],
            json!(["api", "2/3", 3, 2, "3h"])
        );

        let s = json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data_keys": [{"name": "a"}, {"name": "b"}]});
        assert_eq!(
            table("", "Secret", &[s], false, now()).rows[0],
            json!(["tls", "kubernetes.io/tls", 2, ""])
        );

        let node = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(status_summary(&node), "Ready,SchedulingDisabled");
        let cert = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Pending"}]}});
        assert_eq!(status_summary(&cert), "NotReady: Pending");
        let hpa = json!({"status": {"conditions": [{"type": "AbleToScale", "status": "True"}, {"type": "ScalingActive", "status": "True"}]}});
        assert_eq!(status_summary(&hpa), "AbleToScale,ScalingActive");
        assert_eq!(
            status_summary(&json!({"status": {"phase": "Bound"}})),
            "Bound"
        );
        assert_eq!(status_summary(&json!({"data": {}})), "");
        let t = table(
            "",
            "ConfigMap",
            &[json!({"metadata": {"name": "c", "namespace": "x"}})],
            true,
            now(),
        );
        assert_eq!(t.columns, vec!["name", "namespace", "age", "status"]);
    }
}
