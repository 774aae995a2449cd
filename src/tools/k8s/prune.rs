//! Reading a list only for compact rows: the JSON is parsed straight into a `Value` holding
//! just the fields [`super::rows`] reads; everything else is skipped while parsing, never
//! allocated. Parsing whole pods into `Value`s was most of the CPU of a list call (each object
//! a map, each key and string its own allocation), so this keeps a list of what is read rather
//! than of what is left out. The list's own fields (`kind`, `metadata.continue`, …) are kept.
//! Kept per item: `metadata.{name, namespace, creationTimestamp, deletionTimestamp}`,
//! `spec.{nodeName, replicas, unschedulable}`, the `name` of each `spec.containers[]` /
//! `spec.initContainers[]` (rows count containers), `status.{phase, reason, readyReplicas,
//! updatedReplicas, availableReplicas}`, `status.conditions[].{type, status, reason}`,
//! `status.containerStatuses[]` / `initContainerStatuses[]` `.{ready, restartCount, state,
//! lastState.terminated.finishedAt}`, and a Secret's `type`, `data`, `stringData` (keys are
//! counted; values are redacted afterwards as for any list). A field a row function starts to
//! read must be added here; the tests compare rows of pruned and whole objects.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Where in the list document a value sits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    List,
    Items,
    Item,
    Metadata,
    Spec,
    Containers,
    Container,
    Status,
    Conditions,
    Condition,
    ContainerStatuses,
    ContainerStatus,
    LastState,
    Terminated,
}

impl At {
    /// The place of a key's value inside an object at `self`; `None` = leave the value out.
    /// `Some(None)` = keep the value whole.
    fn child(self, key: &str) -> Option<Option<At>> {
        const WHOLE: Option<Option<At>> = Some(None);
        match (self, key) {
            (At::List, "items") => Some(Some(At::Items)),
            (At::List, _) => WHOLE,
            (At::Item, "metadata") => Some(Some(At::Metadata)),
            (At::Item, "spec") => Some(Some(At::Spec)),
            (At::Item, "status") => Some(Some(At::Status)),
            (At::Item, "kind" | "apiVersion" | "type" | "data" | "stringData") => WHOLE,
            (At::Metadata, "name" | "namespace" | "creationTimestamp" | "deletionTimestamp") => {
                WHOLE
            }
            (At::Spec, "nodeName" | "replicas" | "unschedulable") => WHOLE,
            (At::Spec, "containers" | "initContainers") => Some(Some(At::Containers)),
            (At::Container, "name") => WHOLE,
            (
                At::Status,
                "phase" | "reason" | "readyReplicas" | "updatedReplicas" | "availableReplicas",
            ) => WHOLE,
            (At::Status, "conditions") => Some(Some(At::Conditions)),
            (At::Status, "containerStatuses" | "initContainerStatuses") => {
                Some(Some(At::ContainerStatuses))
            }
            (At::Condition, "type" | "status" | "reason") => WHOLE,
            (At::ContainerStatus, "ready" | "restartCount" | "state") => WHOLE,
            (At::ContainerStatus, "lastState") => Some(Some(At::LastState)),
            (At::LastState, "terminated") => Some(Some(At::Terminated)),
            (At::Terminated, "finishedAt") => WHOLE,
            _ => None,
        }
    }

    /// The place of each element of an array at `self`; `None` = keep elements whole.
    fn element(self) -> Option<At> {
        match self {
            At::Items => Some(At::Item),
            At::Containers => Some(At::Container),
            At::Conditions => Some(At::Condition),
            At::ContainerStatuses => Some(At::ContainerStatus),
            _ => None,
        }
    }
}

struct Pruned(At);

impl<'de> DeserializeSeed<'de> for Pruned {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// A value kept whole or pruned further.
struct Child(Option<At>);

impl<'de> DeserializeSeed<'de> for Child {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            Some(at) => Pruned(at).deserialize(d),
            None => serde::Deserialize::deserialize(d),
        }
    }
}

impl<'de> Visitor<'de> for Pruned {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let element = self.0.element();
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Child(element))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        // Keys are borrowed from the text when they hold no escapes: a skipped field
        // allocates nothing.
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match self.0.child(key.as_str()) {
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(child) => {
                    let v = map.next_value_seed(Child(child))?;
                    out.insert(key.into_string(), v);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// An object key, borrowed from the input when it can be.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }

    fn into_string(self) -> String {
        match self {
            Key::Borrowed(s) => s.to_string(),
            Key::Owned(s) => s,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Parses a list document (`{"kind": "…List", "items": […]}`) keeping only what rows read.
pub fn parse_list_for_rows(text: &str) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let v = Pruned(At::List).deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::super::redact::sanitize;
    use super::super::rows::table;
    use super::*;
    use serde_json::json;

    fn pod(name: &str, spec: Value, status: Value, meta: Value) -> Value {
        let mut m = json!({
            "name": name, "namespace": "prod", "uid": "u-1", "resourceVersion": "9",
            "labels": {"app": "web"}, "annotations": {"big": "x".repeat(100)},
            "managedFields": [{"manager": "kubectl"}],
            "creationTimestamp": "2026-01-01T00:00:00Z"
        });
        if let (Some(m), Value::Object(extra)) = (m.as_object_mut(), meta) {
            m.extend(extra);
        }
        json!({"metadata": m, "spec": spec, "status": status})
    }

    fn container(name: &str) -> Value {
        json!({"name": name, "image": "nginx:1.27", "env": [{"name": "A", "value": "b"}],
               "resources": {"limits": {"cpu": "1"}}, "ports": [{"containerPort": 80}]})
    }

    fn status(ready: bool, restarts: i64, state: Value, last: Value) -> Value {
        json!({"name": "app", "ready": ready, "restartCount": restarts, "state": state,
               "lastState": last, "image": "nginx:1.27", "imageID": "sha256:abc",
               "containerID": "containerd://x", "started": ready})
    }

    /// Pods in the states `kubectl get pods` tells apart, and other kinds' row inputs.
    fn objects() -> Vec<(&'static str, &'static str, Value)> {
        let running = json!({"running": {"startedAt": "2026-01-01T00:01:00Z"}});
        let crashed = json!({"terminated": {"exitCode": 1, "reason": "Error",
            "startedAt": "2026-01-01T00:02:00Z", "finishedAt": "2026-01-01T00:03:00Z"}});
        let conditions = json!([
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "PodScheduled", "status": "True", "message": "m"}]);
        let spec = json!({"nodeName": "node-1", "containers": [container("app")],
            "volumes": [{"name": "v"}], "serviceAccountName": "default"});
        vec![
            (
                "",
                "Pod",
                pod(
                    "ok",
                    spec.clone(),
                    json!({"phase": "Running", "podIP": "10.0.0.1",
                "conditions": conditions, "containerStatuses": [status(true, 0, running.clone(), json!({}))]}),
                    json!({}),
                ),
            ),
            (
                "",
                "Pod",
                pod(
                    "crashloop",
                    spec.clone(),
                    json!({"phase": "Running",
                "containerStatuses": [status(false, 7, json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}), crashed.clone())]}),
                    json!({}),
                ),
            ),
            (
                "",
                "Pod",
                pod(
                    "restarted",
                    spec.clone(),
                    json!({"phase": "Running",
                "containerStatuses": [status(true, 2, running.clone(), crashed.clone())]}),
                    json!({}),
                ),
            ),
            (
                "",
                "Pod",
                pod(
                    "oom",
                    spec.clone(),
                    json!({"phase": "Running",
                "containerStatuses": [status(false, 1, json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-01-01T00:05:00Z"}}), json!({}))]}),
                    json!({}),
                ),
            ),
            (
                "",
                "Pod",
                pod(
                    "signal",
                    spec.clone(),
                    json!({"phase": "Running",
                "containerStatuses": [status(false, 0, json!({"terminated": {"exitCode": 0, "signal": 9}}), json!({}))]}),
                    json!({}),
                ),
            ),
            (
                "",
                "Pod",
                pod(
                    "completed-running",
                    spec.clone(),
                    json!({"phase": "Running", "conditions": conditions,
                "containerStatuses": [status(true, 0, running.clone(), json!({})),
                    status(false, 0, json!({"terminated": {"exitCode": 0, "reason": "Completed"}}), json!({}))]}),
                    json!({}),
                ),
            ),
            (
                "",
                "Pod",
                pod(
                    "init",
                    json!({"nodeName": "node-2", "containers": [container("app"), container("side")],
                "initContainers": [container("init-a"), container("init-b")]}),
                    json!({"phase": "Pending",
                "initContainerStatuses": [status(false, 0, json!({"terminated": {"exitCode": 0}}), json!({})),
                    status(false, 3, json!({"waiting": {"reason": "CrashLoopBackOff"}}), crashed.clone())]}),
                    json!({}),
                ),
            ),
            (
                "",
                "Pod",
                pod(
                    "evicted",
                    spec.clone(),
                    json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}),
                    json!({}),
                ),
            ),
            (
                "",
                "Pod",
                pod(
                    "terminating",
                    spec.clone(),
                    json!({"phase": "Running",
                "containerStatuses": [status(true, 0, running, json!({}))]}),
                    json!({"deletionTimestamp": "2026-01-01T01:00:00Z", "finalizers": ["x"]}),
                ),
            ),
            (
                "apps",
                "Deployment",
                json!({"metadata": {"name": "web", "namespace": "prod", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"a": "b"}},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": [container("app")]}}},
                "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2, "observedGeneration": 4,
                    "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}}),
            ),
            (
                "",
                "Secret",
                json!({"metadata": {"name": "db", "namespace": "prod", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "kind": "Secret", "type": "Opaque", "data": {"user": "YQ==", "password": "Yg=="}}),
            ),
            (
                "",
                "Node",
                json!({"metadata": {"name": "node-1", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"unschedulable": true, "podCIDR": "10.0.0.0/24", "taints": [{"key": "k"}]},
                "status": {"capacity": {"cpu": "4"}, "images": [{"names": ["x"]}],
                    "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]}}),
            ),
            (
                "example.com",
                "Widget",
                json!({"metadata": {"name": "w", "namespace": "prod", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"size": 3},
                "status": {"conditions": [{"type": "Synced", "status": "True"}, {"type": "Healthy", "status": "True"}, {"type": "Degraded", "status": "False"}]}}),
            ),
        ]
    }

    #[test]
    fn rows_from_pruned_objects_equal_rows_from_whole_objects() {
        let now: jiff::Timestamp = "2026-01-01T02:00:00Z".parse().expect("ts");
        for (group, kind, obj) in objects() {
            let mut whole = json!({"kind": format!("{kind}List"), "metadata": {"resourceVersion": "7"}, "items": [obj]});
            let mut pruned = parse_list_for_rows(&whole.to_string()).expect("parses");
            sanitize(&mut whole);
            sanitize(&mut pruned);
            for with_namespace in [false, true] {
                let items = |v: &Value| v["items"].as_array().cloned().unwrap_or_default();
                let expected = table(group, kind, &items(&whole), with_namespace, now);
                let got = table(group, kind, &items(&pruned), with_namespace, now);
                assert_eq!(
                    got, expected,
                    "{kind} {}",
                    whole["items"][0]["metadata"]["name"]
                );
            }
        }
    }

    #[test]
    fn only_what_rows_read_is_kept() {
        let (_, _, obj) = objects().swap_remove(1);
        let doc = json!({"kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "7", "continue": "x", "remainingItemCount": 3},
            "items": [obj]});
        let v = parse_list_for_rows(&doc.to_string()).expect("parses");
        assert_eq!(
            v["metadata"], doc["metadata"],
            "the list's own metadata is kept whole"
        );
        assert_eq!(v["kind"], "PodList");
        let item = &v["items"][0];
        assert_eq!(
            item["metadata"],
            json!({"name": "crashloop", "namespace": "prod", "creationTimestamp": "2026-01-01T00:00:00Z"})
        );
        assert_eq!(
            item["spec"],
            json!({"nodeName": "node-1", "containers": [{"name": "app"}]})
        );
        assert_eq!(
            item["status"],
            json!({"phase": "Running", "containerStatuses": [{"ready": false, "restartCount": 7,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                "lastState": {"terminated": {"finishedAt": "2026-01-01T00:03:00Z"}}}]})
        );
        assert!(parse_list_for_rows("{\"items\": [}").is_err());
        assert!(
            parse_list_for_rows("{\"items\": []} x").is_err(),
            "trailing text"
        );
    }

    #[test]
    fn escaped_keys_are_read_like_plain_ones() {
        let text = r#"{"items": [{"metadata": {"na\u006de": "a", "l\u0061bels": {"x": "y"}}}]}"#;
        let v = parse_list_for_rows(text).expect("parses");
        assert_eq!(v["items"][0]["metadata"], json!({"name": "a"}));
    }
}
