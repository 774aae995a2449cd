//! What controllers and admission would do, collapsed to "instantly": defaults and a settled
//! status for objects created through the API, status following `spec.replicas`, and
//! `observedGeneration` following `generation`.

use serde_json::{Value, json};

use super::registry::ResourceType;
use super::store::{Inner, now_rfc3339};

fn replicas(o: &Value) -> i64 {
    o.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn has_status(o: &Value) -> bool {
    o.get("status")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
}

/// A Ready pod status for `pod` (phase Running, every container ready and running).
pub fn running_pod_status(pod: &Value, ip: &str) -> Value {
    let now = now_rfc3339();
    let statuses: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("busybox");
            json!({
                "name": c.get("name").cloned().unwrap_or(json!("app")),
                "image": image,
                "imageID": format!("docker.io/library/{image}@sha256:{:064x}", i + 1),
                "containerID": format!("containerd://{:064x}", i + 0xabc),
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            })
        })
        .collect();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    json!({
        "phase": "Running",
        "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
        "hostIP": "10.0.0.11",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": now,
        "containerStatuses": statuses,
        "qosClass": "BestEffort",
    })
}

/// A settled status for a workload with `n` desired replicas, all ready.
pub fn workload_status(kind: &str, n: i64, generation: i64) -> Value {
    let now = now_rfc3339();
    match kind {
        "Deployment" => json!({
            "observedGeneration": generation,
            "replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": "ReplicaSet has successfully progressed.", "lastUpdateTime": now, "lastTransitionTime": now},
            ],
        }),
        "StatefulSet" => json!({
            "observedGeneration": generation, "replicas": n, "readyReplicas": n, "currentReplicas": n,
            "updatedReplicas": n, "availableReplicas": n, "currentRevision": "rev-1", "updateRevision": "rev-1",
        }),
        "ReplicaSet" => json!({
            "observedGeneration": generation, "replicas": n, "fullyLabeledReplicas": n, "readyReplicas": n, "availableReplicas": n,
        }),
        "DaemonSet" => json!({
            "observedGeneration": generation, "desiredNumberScheduled": n, "currentNumberScheduled": n, "numberReady": n,
            "updatedNumberScheduled": n, "numberAvailable": n, "numberMisscheduled": 0,
        }),
        _ => json!({}),
    }
}

/// Defaults applied when an object is created through the API (not by `FakeKube::insert`).
pub fn on_create(inner: &mut Inner, rt: &ResourceType, o: &mut Value) {
    let generation = o
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    match rt.kind {
        "Namespace" => {
            let name = o.pointer("/metadata/name").cloned().unwrap_or(json!(""));
            o["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            o["spec"]["finalizers"] = json!(["kubernetes"]);
            o["status"] = json!({"phase": "Active"});
        }
        "Pod" => {
            if o.pointer("/spec/nodeName").is_none() {
                o["spec"]["nodeName"] = json!("node-1");
            }
            for (k, v) in [
                ("restartPolicy", json!("Always")),
                ("dnsPolicy", json!("ClusterFirst")),
                ("schedulerName", json!("default-scheduler")),
                ("serviceAccountName", json!("default")),
                ("terminationGracePeriodSeconds", json!(30)),
            ] {
                if o["spec"].get(k).is_none() {
                    o["spec"][k] = v;
                }
            }
            if !has_status(o) {
                inner.seq += 1;
                let ip = format!("10.244.{}.{}", 1 + inner.seq / 250, 2 + inner.seq % 250);
                o["status"] = running_pod_status(o, &ip);
            }
        }
        "Deployment" | "StatefulSet" | "ReplicaSet" => {
            if o.pointer("/spec/replicas").is_none() {
                o["spec"]["replicas"] = json!(1);
            }
            if rt.kind == "Deployment" && o.pointer("/spec/strategy").is_none() {
                o["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}});
            }
            let n = replicas(o);
            o["status"] = workload_status(rt.kind, n, generation);
        }
        "DaemonSet" => {
            let nodes = super::registry::by_plural("", "v1", "nodes")
                .map_or(0, |n| inner.list(n, None).len())
                .max(1);
            o["status"] = workload_status(rt.kind, i64::try_from(nodes).unwrap_or(1), generation);
        }
        "Service" => {
            if o.pointer("/spec/type").is_none() {
                o["spec"]["type"] = json!("ClusterIP");
            }
            if o.pointer("/spec/clusterIP").is_none()
                && o.pointer("/spec/type") != Some(&json!("ExternalName"))
            {
                inner.seq += 1;
                let ip = format!("10.96.{}.{}", inner.seq / 250, 1 + inner.seq % 250);
                o["spec"]["clusterIP"] = json!(ip);
                o["spec"]["clusterIPs"] = json!([ip]);
            }
            if let Some(ports) = o.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter(|p| p.is_object()) {
                    if p.get("protocol").is_none() {
                        p["protocol"] = json!("TCP");
                    }
                    if p.get("targetPort").is_none() {
                        p["targetPort"] = p.get("port").cloned().unwrap_or(json!(80));
                    }
                }
            }
        }
        "Secret" if o.get("type").is_none() => o["type"] = json!("Opaque"),
        "Event" => {
            let now = now_rfc3339();
            for k in ["firstTimestamp", "lastTimestamp"] {
                if o.get(k).is_none_or(Value::is_null) {
                    o[k] = json!(now);
                }
            }
            if o.get("count").is_none() {
                o["count"] = json!(1);
            }
        }
        _ => {}
    }
}

/// After a spec write: `observedGeneration` catches up and replica counts follow `spec.replicas`
/// (a healthy workload stays fully ready; a degraded one keeps at most its ready count).
pub fn on_update(rt: &ResourceType, old: &Value, new: &mut Value) {
    if !matches!(
        rt.kind,
        "Deployment" | "StatefulSet" | "ReplicaSet" | "DaemonSet"
    ) {
        return;
    }
    if let Some(g) = new.pointer("/metadata/generation").cloned()
        && new.get("status").is_some_and(Value::is_object)
    {
        new["status"]["observedGeneration"] = g;
    }
    if rt.kind == "DaemonSet" || replicas(old) == replicas(new) {
        return;
    }
    let want = replicas(new);
    let ready = new
        .pointer("/status/readyReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let ready = if ready >= replicas(old) {
        want
    } else {
        ready.min(want)
    };
    let status = &mut new["status"];
    status["replicas"] = json!(want);
    for k in ["updatedReplicas", "currentReplicas", "fullyLabeledReplicas"] {
        if status.get(k).is_some() {
            status[k] = json!(want);
        }
    }
    status["readyReplicas"] = json!(ready);
    status["availableReplicas"] = json!(ready);
}
