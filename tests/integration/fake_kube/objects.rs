//! Builders for realistic objects to seed the fake with. Each sets a fresh `metadata.uid` and a
//! creation time an hour ago, so owner references can be wired before inserting.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::lifecycle::{running_pod_status, workload_status};

/// An RFC 3339 timestamp `secs` seconds ago.
pub fn ago(secs: i64) -> String {
    Timestamp::now()
        .checked_sub(SignedDuration::from_secs(secs))
        .unwrap_or_else(|_| Timestamp::now())
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meta(ns: Option<&str>, name: &str, labels: Value) -> Value {
    let mut m = json!({
        "name": name,
        "uid": uuid::Uuid::new_v4().to_string(),
        "creationTimestamp": ago(3600),
    });
    if let Some(ns) = ns {
        m["namespace"] = json!(ns);
    }
    if labels.as_object().is_some_and(|l| !l.is_empty()) {
        m["labels"] = labels;
    }
    m
}

fn small_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A deterministic pod IP for a name.
pub fn ip_for(name: &str) -> String {
    let h = small_hash(name);
    format!("10.244.{}.{}", (h >> 8) % 250, 2 + h % 250)
}

/// A `kubernetes.io` style random-looking suffix derived from `seed`.
pub fn suffix(seed: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = small_hash(seed);
    (0..len)
        .map(|_| {
            let c = ALPHABET[usize::try_from(h % 27).unwrap_or(0)] as char;
            h = (h / 27) ^ small_hash(&format!("{seed}{h}"));
            c
        })
        .collect()
}

pub fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": meta(None, name, json!({"kubernetes.io/metadata.name": name})),
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

fn container(name: &str, image: &str) -> Value {
    json!({
        "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
    })
}

fn pod_template(app: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [container("app", "nginx:1.27")], "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"},
    })
}

/// A Running, Ready pod with one container `app` (nginx:1.27) on `node-1`, labelled `app=<name>`.
pub fn pod(ns: &str, name: &str) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": meta(Some(ns), name, json!({"app": name})),
        "spec": {
            "containers": [container("app", "nginx:1.27")],
            "nodeName": "node-1", "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler", "serviceAccountName": "default", "terminationGracePeriodSeconds": 30,
        },
    });
    p["status"] = running_pod_status(&p, &ip_for(name));
    p["status"]["startTime"] = p["metadata"]["creationTimestamp"].clone();
    p
}

/// Makes a pod crash-loop: not ready, waiting in CrashLoopBackOff after `restarts` restarts,
/// last terminated with `Error` (exit code 1) five minutes ago.
pub fn crash_looping(mut pod: Value, restarts: i64) -> Value {
    if let Some(statuses) = pod
        .pointer_mut("/status/containerStatuses")
        .and_then(Value::as_array_mut)
    {
        for c in statuses {
            c["ready"] = json!(false);
            c["started"] = json!(false);
            c["restartCount"] = json!(restarts);
            c["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}});
            c["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": ago(330), "finishedAt": ago(300)}});
        }
    }
    if let Some(conds) = pod
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for c in conds
            .iter_mut()
            .filter(|c| matches!(c["type"].as_str(), Some("Ready" | "ContainersReady")))
        {
            c["status"] = json!("False");
            c["reason"] = json!("ContainersNotReady");
        }
    }
    pod
}

pub fn deployment(ns: &str, name: &str, replicas: i64) -> Value {
    let mut m = meta(Some(ns), name, json!({"app": name}));
    m["generation"] = json!(1);
    m["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": m,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
        },
        "status": workload_status("Deployment", replicas, 1),
    })
}

/// A ReplicaSet for app `app` (labels `app`, `pod-template-hash`).
pub fn replicaset(ns: &str, name: &str, app: &str, hash: &str, replicas: i64) -> Value {
    let labels = json!({"app": app, "pod-template-hash": hash});
    let mut m = meta(Some(ns), name, labels.clone());
    m["generation"] = json!(1);
    let mut template = pod_template(app);
    template["metadata"]["labels"] = labels.clone();
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": m,
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template},
        "status": workload_status("ReplicaSet", replicas, 1),
    })
}

pub fn statefulset(ns: &str, name: &str, replicas: i64) -> Value {
    let mut m = meta(Some(ns), name, json!({"app": name}));
    m["generation"] = json!(1);
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": m,
        "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}}, "template": pod_template(name)},
        "status": workload_status("StatefulSet", replicas, 1),
    })
}

pub fn daemonset(ns: &str, name: &str, nodes: i64) -> Value {
    let mut m = meta(Some(ns), name, json!({"app": name}));
    m["generation"] = json!(1);
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": m,
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": pod_template(name)},
        "status": workload_status("DaemonSet", nodes, 1),
    })
}

/// A ClusterIP service selecting `app=<name>` on `port` → 8080.
pub fn service(ns: &str, name: &str, port: i64) -> Value {
    let h = small_hash(name);
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": meta(Some(ns), name, json!({"app": name})),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": format!("10.96.{}.{}", (h >> 8) % 250, 1 + h % 250),
            "selector": {"app": name},
            "ports": [{"name": "http", "port": port, "targetPort": 8080, "protocol": "TCP"}],
        },
        "status": {"loadBalancer": {}},
    })
}

pub fn configmap(ns: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_string(), json!(v)))
        .collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(Some(ns), name, json!({})), "data": data})
}

/// An Opaque secret; values are base64-encoded here.
pub fn secret(ns: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_string(), json!(STANDARD.encode(v))))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta(Some(ns), name, json!({})), "type": "Opaque", "data": data})
}

pub fn serviceaccount(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(Some(ns), name, json!({}))})
}

/// A core/v1 event about `involved` (which must carry kind, metadata.name/namespace/uid).
pub fn event(involved: &Value, event_type: &str, reason: &str, message: &str) -> Value {
    let name = involved
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ns = involved
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let ev_name = format!(
        "{name}.{:016x}",
        small_hash(&format!("{name}{reason}{message}"))
    );
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": meta(Some(ns), &ev_name, json!({})),
        "involvedObject": {
            "apiVersion": involved.get("apiVersion").cloned().unwrap_or(json!("v1")),
            "kind": involved.get("kind").cloned().unwrap_or(json!("Pod")),
            "name": name,
            "namespace": ns,
            "uid": involved.pointer("/metadata/uid").cloned().unwrap_or(json!("")),
            "resourceVersion": involved.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!("")),
        },
        "reason": reason,
        "message": message,
        "type": event_type,
        "source": {"component": "kubelet", "host": "node-1"},
        "count": 1,
        "firstTimestamp": ago(600),
        "lastTimestamp": ago(60),
        "reportingComponent": "kubelet",
        "reportingInstance": "node-1",
    })
}

pub fn node(name: &str) -> Value {
    let now = ago(30);
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": meta(None, name, json!({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"})),
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": now, "lastTransitionTime": now},
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "lastHeartbeatTime": now, "lastTransitionTime": now},
                {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "lastHeartbeatTime": now, "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now},
            ],
            "addresses": [{"type": "InternalIP", "address": ip_for(name).replace("10.244.", "10.0.")}, {"type": "Hostname", "address": name}],
            "capacity": {"cpu": "4", "memory": "16374584Ki", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "16272184Ki", "pods": "110"},
            "nodeInfo": {
                "kubeletVersion": "v1.32.4", "kubeProxyVersion": "v1.32.4", "osImage": "Debian GNU/Linux 12 (bookworm)",
                "kernelVersion": "6.1.0-28-amd64", "containerRuntimeVersion": "containerd://1.7.24",
                "operatingSystem": "linux", "architecture": "amd64",
            },
        },
    })
}

/// A custom resource of the fake's CRD (`example.com/v1` Widget, short name `wd`).
pub fn widget(ns: &str, name: &str) -> Value {
    let mut m = meta(Some(ns), name, json!({}));
    m["generation"] = json!(1);
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": m, "spec": {"size": 3, "color": "blue"}, "status": {"ready": true}})
}

/// An owner reference (controller) to `owner`.
pub fn owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner.get("apiVersion").cloned().unwrap_or(json!("v1")),
        "kind": owner.get("kind").cloned().unwrap_or(json!("")),
        "name": owner.pointer("/metadata/name").cloned().unwrap_or(json!("")),
        "uid": owner.pointer("/metadata/uid").cloned().unwrap_or(json!("")),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// `obj` owned (as controller) by `owner`.
pub fn owned_by(mut obj: Value, owner: &Value) -> Value {
    obj["metadata"]["ownerReferences"] = json!([owner_ref(owner)]);
    obj
}

/// `obj` with extra labels.
pub fn with_labels(mut obj: Value, labels: &[(&str, &str)]) -> Value {
    for (k, v) in labels {
        obj["metadata"]["labels"][*k] = json!(v);
    }
    obj
}
