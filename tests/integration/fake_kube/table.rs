//! Server-side printing: `meta.k8s.io` Tables with the columns kubectl shows, and
//! `PartialObjectMetadata(List)` conversions.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::registry::ResourceType;

/// `duration.HumanDuration` from apimachinery.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The age of an RFC 3339 timestamp, as kubectl prints it (`<unknown>` when absent).
pub fn age(ts: Option<&str>) -> String {
    match ts.and_then(|t| t.parse::<Timestamp>().ok()) {
        Some(t) => human_duration(Timestamp::now().as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn n(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(x: &str) -> String {
    if x.is_empty() {
        "<none>".into()
    } else {
        x.to_string()
    }
}

fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn join_field(items: &[Value], field: &str) -> String {
    or_none(
        &items
            .iter()
            .filter_map(|c| c.get(field).and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn format_labels(m: Option<&Value>) -> String {
    let parts: Vec<String> = m
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    or_none(&parts.join(","))
}

type Col = (&'static str, &'static str, i32);

fn columns(kind: &str) -> Vec<Col> {
    match kind {
        "Pod" => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        "Deployment" => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "ReplicaSet" => vec![
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "StatefulSet" => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        "DaemonSet" => vec![
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "Service" => vec![
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
            ("Selector", "string", 1),
        ],
        "ConfigMap" => vec![
            ("Name", "string", 0),
            ("Data", "string", 0),
            ("Age", "string", 0),
        ],
        "Secret" => vec![
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Data", "string", 0),
            ("Age", "string", 0),
        ],
        "Namespace" => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Age", "string", 0),
        ],
        "ServiceAccount" => vec![
            ("Name", "string", 0),
            ("Secrets", "string", 0),
            ("Age", "string", 0),
        ],
        "Node" => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        "Event" => vec![
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Subobject", "string", 1),
            ("Source", "string", 1),
            ("Message", "string", 0),
            ("First Seen", "string", 1),
            ("Count", "string", 1),
            ("Name", "string", 1),
        ],
        _ => vec![("Name", "string", 0), ("Age", "string", 0)],
    }
}

fn pod_status(p: &Value) -> String {
    if !s(p, "/metadata/deletionTimestamp").is_empty() {
        return if s(p, "/status/reason") == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let mut reason = s(p, "/status/reason").to_string();
    if reason.is_empty() {
        reason = s(p, "/status/phase").to_string();
    }
    let init = arr(p, "/status/initContainerStatuses");
    for (i, c) in init.iter().enumerate() {
        if n(c, "/state/terminated/exitCode") == 0 && c.pointer("/state/terminated").is_some() {
            continue;
        }
        let total = arr(p, "/spec/initContainers").len();
        return if let Some(r) = c
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str)
        {
            format!("Init:{r}")
        } else if let Some(r) = c
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| *r != "PodInitializing")
        {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{total}")
        };
    }
    let mut has_running = false;
    for c in arr(p, "/status/containerStatuses").iter().rev() {
        if let Some(r) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
            reason = r.to_string();
        } else if let Some(t) = c.pointer("/state/terminated") {
            reason = match t.get("reason").and_then(Value::as_str) {
                Some(r) => r.to_string(),
                None if n(t, "/signal") != 0 => format!("Signal:{}", n(t, "/signal")),
                None => format!("ExitCode:{}", n(t, "/exitCode")),
            };
        } else if c.get("ready").and_then(Value::as_bool) == Some(true)
            && c.pointer("/state/running").is_some()
        {
            has_running = true;
        }
    }
    if reason == "Completed" && has_running {
        reason = "Running".into();
    }
    reason
}

fn pod_restarts(p: &Value) -> String {
    let statuses = arr(p, "/status/containerStatuses");
    let restarts: i64 = statuses.iter().map(|c| n(c, "/restartCount")).sum();
    let last = statuses
        .iter()
        .filter_map(|c| {
            c.pointer("/lastState/terminated/finishedAt")
                .and_then(Value::as_str)
        })
        .filter_map(|t| t.parse::<Timestamp>().ok())
        .max();
    match last {
        Some(t) if restarts > 0 => format!("{restarts} ({} ago)", age(Some(&t.to_string()))),
        _ => restarts.to_string(),
    }
}

fn service_ports(svc: &Value) -> String {
    let parts: Vec<String> = arr(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) => format!("{}:{np}/{proto}", n(p, "/port")),
                None => format!("{}/{proto}", n(p, "/port")),
            }
        })
        .collect();
    or_none(&parts.join(","))
}

fn external_ip(svc: &Value) -> String {
    let ips: Vec<&str> = arr(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let lb: Vec<&str> = arr(svc, "/status/loadBalancer/ingress")
        .iter()
        .filter_map(|i| {
            i.get("ip")
                .or_else(|| i.get("hostname"))
                .and_then(Value::as_str)
        })
        .collect();
    match s(svc, "/spec/type") {
        "LoadBalancer" if !lb.is_empty() => lb.join(","),
        "LoadBalancer" => "<pending>".into(),
        "ExternalName" => s(svc, "/spec/externalName").into(),
        _ => or_none(&ips.join(",")),
    }
}

fn node_status(node: &Value) -> String {
    let ready = arr(node, "/status/conditions")
        .iter()
        .find(|c| s(c, "/type") == "Ready")
        .map(|c| s(c, "/status"));
    let mut st = match ready {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        st.push_str(",SchedulingDisabled");
    }
    st
}

fn node_address(node: &Value, kind: &str) -> String {
    or_none(
        arr(node, "/status/addresses")
            .iter()
            .find(|a| s(a, "/type") == kind)
            .map(|a| s(a, "/address"))
            .unwrap_or(""),
    )
}

fn cells(kind: &str, o: &Value) -> Vec<Value> {
    let name = s(o, "/metadata/name");
    let created = age(o
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str));
    let tmpl = arr(o, "/spec/template/spec/containers");
    match kind {
        "Pod" => {
            let total = arr(o, "/spec/containers").len();
            let ready = arr(o, "/status/containerStatuses")
                .iter()
                .filter(|c| c.get("ready") == Some(&json!(true)))
                .count();
            vec![
                json!(name),
                json!(format!("{ready}/{total}")),
                json!(pod_status(o)),
                json!(pod_restarts(o)),
                json!(created),
                json!(or_none(s(o, "/status/podIP"))),
                json!(or_none(s(o, "/spec/nodeName"))),
                json!(or_none(s(o, "/status/nominatedNodeName"))),
                json!("<none>"),
            ]
        }
        "Deployment" => vec![
            json!(name),
            json!(format!(
                "{}/{}",
                n(o, "/status/readyReplicas"),
                o.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
            )),
            json!(n(o, "/status/updatedReplicas")),
            json!(n(o, "/status/availableReplicas")),
            json!(created),
            json!(join_field(tmpl, "name")),
            json!(join_field(tmpl, "image")),
            json!(format_labels(o.pointer("/spec/selector/matchLabels"))),
        ],
        "ReplicaSet" => vec![
            json!(name),
            json!(n(o, "/spec/replicas")),
            json!(n(o, "/status/replicas")),
            json!(n(o, "/status/readyReplicas")),
            json!(created),
            json!(join_field(tmpl, "name")),
            json!(join_field(tmpl, "image")),
            json!(format_labels(o.pointer("/spec/selector/matchLabels"))),
        ],
        "StatefulSet" => vec![
            json!(name),
            json!(format!(
                "{}/{}",
                n(o, "/status/readyReplicas"),
                o.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
            )),
            json!(created),
            json!(join_field(tmpl, "name")),
            json!(join_field(tmpl, "image")),
        ],
        "DaemonSet" => vec![
            json!(name),
            json!(n(o, "/status/desiredNumberScheduled")),
            json!(n(o, "/status/currentNumberScheduled")),
            json!(n(o, "/status/numberReady")),
            json!(n(o, "/status/updatedNumberScheduled")),
            json!(n(o, "/status/numberAvailable")),
            json!(format_labels(o.pointer("/spec/template/spec/nodeSelector"))),
            json!(created),
            json!(join_field(tmpl, "name")),
            json!(join_field(tmpl, "image")),
            json!(format_labels(o.pointer("/spec/selector/matchLabels"))),
        ],
        "Service" => vec![
            json!(name),
            json!(if s(o, "/spec/type").is_empty() {
                "ClusterIP"
            } else {
                s(o, "/spec/type")
            }),
            json!(or_none(s(o, "/spec/clusterIP"))),
            json!(external_ip(o)),
            json!(service_ports(o)),
            json!(created),
            json!(format_labels(o.pointer("/spec/selector"))),
        ],
        "ConfigMap" => {
            let count = |k: &str| {
                o.get(k)
                    .and_then(Value::as_object)
                    .map_or(0, serde_json::Map::len)
            };
            vec![
                json!(name),
                json!(count("data") + count("binaryData")),
                json!(created),
            ]
        }
        "Secret" => {
            let data = o
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, serde_json::Map::len);
            vec![
                json!(name),
                json!(s(o, "/type")),
                json!(data),
                json!(created),
            ]
        }
        "Namespace" => vec![json!(name), json!(s(o, "/status/phase")), json!(created)],
        "ServiceAccount" => vec![json!(name), json!(arr(o, "/secrets").len()), json!(created)],
        "Node" => {
            let roles: Vec<&str> = o
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
                .collect();
            vec![
                json!(name),
                json!(node_status(o)),
                json!(or_none(&roles.join(","))),
                json!(created),
                json!(s(o, "/status/nodeInfo/kubeletVersion")),
                json!(node_address(o, "InternalIP")),
                json!(node_address(o, "ExternalIP")),
                json!(or_none(s(o, "/status/nodeInfo/osImage"))),
                json!(or_none(s(o, "/status/nodeInfo/kernelVersion"))),
                json!(or_none(s(o, "/status/nodeInfo/containerRuntimeVersion"))),
            ]
        }
        "Event" => {
            let last = [
                s(o, "/lastTimestamp"),
                s(o, "/eventTime"),
                s(o, "/metadata/creationTimestamp"),
            ]
            .into_iter()
            .find(|t| !t.is_empty())
            .map(|t| age(Some(t)))
            .unwrap_or_else(|| "<unknown>".into());
            let first = [
                s(o, "/firstTimestamp"),
                s(o, "/eventTime"),
                s(o, "/metadata/creationTimestamp"),
            ]
            .into_iter()
            .find(|t| !t.is_empty())
            .map(|t| age(Some(t)))
            .unwrap_or_else(|| "<unknown>".into());
            let object = format!(
                "{}/{}",
                s(o, "/involvedObject/kind").to_lowercase(),
                s(o, "/involvedObject/name")
            );
            let source = [s(o, "/source/component"), s(o, "/source/host")]
                .into_iter()
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                json!(last),
                json!(s(o, "/type")),
                json!(s(o, "/reason")),
                json!(object),
                json!(s(o, "/involvedObject/fieldPath")),
                json!(source),
                json!(s(o, "/message").trim()),
                json!(first),
                json!(
                    o.get("count")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                        .to_string()
                ),
                json!(name),
            ]
        }
        _ => vec![json!(name), json!(created)],
    }
}

/// `PartialObjectMetadata` for an object.
pub fn partial(o: &Value, meta_version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{meta_version}"),
        "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A Table for `objects`; `include_object` is `None`, `Metadata` (default) or `Object`.
pub fn table(
    rt: &ResourceType,
    objects: &[&Value],
    list_meta: Value,
    include_object: &str,
    meta_version: &str,
) -> Value {
    let column_definitions: Vec<Value> = columns(rt.kind)
        .into_iter()
        .map(|(name, ty, priority)| {
            let format = if name == "Name" { "name" } else { "" };
            json!({"name": name, "type": ty, "format": format, "description": name, "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(rt.kind, o)});
            match include_object {
                "None" => {}
                "Object" => {
                    let mut full = (*o).clone();
                    full["apiVersion"] = json!(rt.api_version());
                    full["kind"] = json!(rt.kind);
                    row["object"] = full;
                }
                _ => row["object"] = partial(o, meta_version),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{meta_version}"),
        "metadata": list_meta,
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 5 * 60), "3h5m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(40 * 86400), "40d");
    }

    #[test]
    fn pod_status_reasons() {
        let crash = json!({"status": {"phase": "Running", "containerStatuses": [
            {"ready": false, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
        ]}});
        assert_eq!(pod_status(&crash), "CrashLoopBackOff");
        let ok = json!({"status": {"phase": "Running", "containerStatuses": [
            {"ready": true, "state": {"running": {}}}
        ]}});
        assert_eq!(pod_status(&ok), "Running");
    }
}
