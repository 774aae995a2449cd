//! What compact rows read of an object, typed, and borrowed from the text the API server sent.
//!
//! A list answered as rows reads a few fields of each object: parsing a page of 200 pods into
//! `Value`s (a map per object, a `String` per key and value, all dropped again) was most of the
//! CPU of a list call. Here a page is parsed straight into [`Item`]s: the fields rows read are
//! kept (strings borrowed from the text when they hold no escapes), everything else is skipped
//! while parsing and never allocated. The same types read a whole object already parsed
//! ([`Item::of`]), so there is one copy of the row logic ([`super::rows`]).
//!
//! Kept per item: `metadata.{name, namespace, creationTimestamp, deletionTimestamp}`,
//! `spec.{nodeName, replicas, unschedulable}`, the number of `spec.containers[]` /
//! `spec.initContainers[]`, `status.{phase, reason, readyReplicas, updatedReplicas,
//! availableReplicas}`, `status.conditions[].{type, status, reason}`,
//! `status.containerStatuses[]` / `initContainerStatuses[]` `.{ready, restartCount,
//! state.{waiting.reason, terminated.{exitCode, signal, reason}, running},
//! lastState.terminated.finishedAt}`, a Secret's `type` and the number of keys of its `data`,
//! `stringData` (a redacted Secret's `data_keys`); values of secrets are never read.
//!
//! Every field is lenient: a value of another type than rows expect (custom resources put
//! anything in `spec` and `status`) reads as absent, as `Value::as_str` and friends would, and
//! never fails the list. Only text that is not JSON does.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Skips the rest of a map or sequence a visitor did not want; the number of entries.
fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<usize, A::Error> {
    let mut n = 0;
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
        n += 1;
    }
    Ok(n)
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<usize, A::Error> {
    let mut n = 0;
    while seq.next_element::<IgnoredAny>()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// Visitor methods that read a value of a type the visitor does not want as `$none`.
macro_rules! none_for {
    ($none:expr; $($m:ident)*) => { $( none_for!(@$m $none); )* };
    (@bool $n:expr) => { fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> { Ok($n) } };
    (@i64 $n:expr) => { fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> { Ok($n) } };
    (@u64 $n:expr) => { fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> { Ok($n) } };
    (@f64 $n:expr) => { fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> { Ok($n) } };
    (@str $n:expr) => { fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> { Ok($n) } };
    (@unit $n:expr) => {
        fn visit_unit<E>(self) -> Result<Self::Value, E> { Ok($n) }
        fn visit_none<E>(self) -> Result<Self::Value, E> { Ok($n) }
    };
    (@map $n:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            drain_map(map)?;
            Ok($n)
        }
    };
    (@seq $n:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            drain_seq(seq)?;
            Ok($n)
        }
    };
}

/// Any JSON value, read for what the lenient fields below need of it: a string (borrowed when
/// it can be), a number, a boolean, or how many entries an object or array has (their content
/// skipped).
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(Option<i64>),
    Float,
    Bool(bool),
    Null,
    Keys(usize),
    Len(usize),
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_string<E>(self, v: String) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Int(Some(v)))
            }
            // As `Value::as_i64` reads it: a `u64` above `i64::MAX` is no `i64`.
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Int(i64::try_from(v).ok()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Float)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_unit<E>(self) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Null)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar<'a>, A::Error> {
                drain_map(map).map(Scalar::Keys)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar<'a>, A::Error> {
                drain_seq(seq).map(Scalar::Len)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A lenient field: what it takes of a [`Scalar`], absent for any other type.
macro_rules! lenient {
    ($(#[$doc:meta])* $name:ident$(<$a:lifetime>)?($t:ty), $s:lifetime, |$v:ident| $take:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name$(<$a>)?(pub $t);

        impl<'de: $s, $s> Deserialize<'de> for $name$(<$a>)? {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let $v = Scalar::deserialize(d)?;
                Ok($name($take))
            }
        }
    };
}

lenient!(
    /// A string; absent when missing or of another type.
    Text<'a>(Option<Cow<'a, str>>), 'a, |v| match v { Scalar::Str(s) => Some(s), _ => None }
);
lenient!(
    /// An integer that fits `i64`; absent otherwise.
    Int(Option<i64>), 'a, |v| match v { Scalar::Int(i) => i, _ => None }
);
lenient!(
    /// A boolean; absent otherwise.
    Flag(Option<bool>), 'a, |v| match v { Scalar::Bool(b) => Some(b), _ => None }
);
lenient!(
    /// Whether a field holds anything but `null` (its content is not read).
    Present(bool), 'a, |v| !matches!(v, Scalar::Null)
);
lenient!(
    /// The number of keys of an object (its values skipped); absent otherwise.
    Keys(Option<usize>), 'a, |v| match v { Scalar::Keys(n) => Some(n), _ => None }
);
lenient!(
    /// The number of elements of an array (skipped); absent otherwise.
    Len(Option<usize>), 'a, |v| match v { Scalar::Len(n) => Some(n), _ => None }
);

impl Text<'_> {
    /// The string, `""` when absent.
    pub fn str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// The string when present and not empty.
    pub fn non_empty(&self) -> Option<&str> {
        self.0.as_deref().filter(|s| !s.is_empty())
    }
}

/// An object read as `T`; `None` when missing or not an object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Obj<T>(pub Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(|t| Obj(Some(t)))
            }
            none_for!(Obj(None); bool i64 u64 f64 str unit seq);
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// An array's elements read as `T`; `None` when missing or not an array.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(pub Option<Vec<T>>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(None)
    }
}

impl<T> List<T> {
    /// The elements, none when absent.
    pub fn items(&self) -> &[T] {
        self.0.as_deref().unwrap_or(&[])
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(t) = seq.next_element()? {
                    out.push(t);
                }
                Ok(List(Some(out)))
            }
            none_for!(List(None); bool i64 u64 f64 str unit map);
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// What rows read of one object (see the module docs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Item<'a> {
    #[serde(borrow)]
    pub metadata: Obj<Meta<'a>>,
    #[serde(borrow)]
    pub spec: Obj<Spec<'a>>,
    #[serde(borrow)]
    pub status: Obj<Status<'a>>,
    /// A Secret's type.
    #[serde(rename = "type", borrow)]
    pub type_: Text<'a>,
    pub data: Keys,
    #[serde(rename = "stringData")]
    pub string_data: Keys,
    /// A redacted Secret's key names (see `redact`).
    pub data_keys: Len,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Meta<'a> {
    #[serde(borrow)]
    pub name: Text<'a>,
    #[serde(borrow)]
    pub namespace: Text<'a>,
    #[serde(borrow)]
    pub creation_timestamp: Text<'a>,
    pub deletion_timestamp: Present,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Spec<'a> {
    #[serde(borrow)]
    pub node_name: Text<'a>,
    pub replicas: Int,
    pub unschedulable: Flag,
    pub containers: Len,
    pub init_containers: Len,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Status<'a> {
    #[serde(borrow)]
    pub phase: Text<'a>,
    #[serde(borrow)]
    pub reason: Text<'a>,
    pub ready_replicas: Int,
    pub updated_replicas: Int,
    pub available_replicas: Int,
    #[serde(borrow)]
    pub conditions: List<Obj<Condition<'a>>>,
    #[serde(borrow)]
    pub container_statuses: List<Obj<ContainerStatus<'a>>>,
    #[serde(borrow)]
    pub init_container_statuses: List<Obj<ContainerStatus<'a>>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Condition<'a> {
    #[serde(rename = "type", borrow)]
    pub type_: Text<'a>,
    #[serde(borrow)]
    pub status: Text<'a>,
    #[serde(borrow)]
    pub reason: Text<'a>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerStatus<'a> {
    pub ready: Flag,
    pub restart_count: Int,
    #[serde(borrow)]
    pub state: Obj<State<'a>>,
    #[serde(borrow)]
    pub last_state: Obj<LastState<'a>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct State<'a> {
    #[serde(borrow)]
    pub waiting: Obj<Waiting<'a>>,
    #[serde(borrow)]
    pub terminated: Obj<Terminated<'a>>,
    pub running: Present,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Waiting<'a> {
    #[serde(borrow)]
    pub reason: Text<'a>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Terminated<'a> {
    pub exit_code: Int,
    pub signal: Int,
    #[serde(borrow)]
    pub reason: Text<'a>,
    #[serde(borrow)]
    pub finished_at: Text<'a>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LastState<'a> {
    #[serde(borrow)]
    pub terminated: Obj<Terminated<'a>>,
}

impl<'a> Item<'a> {
    /// The view of an object already parsed (strings borrowed from it).
    pub fn of(obj: &'a Value) -> Item<'a> {
        Item::deserialize(obj).unwrap_or_default()
    }

    pub fn meta(&self) -> Option<&Meta<'a>> {
        self.metadata.0.as_ref()
    }

    /// `status.conditions[]` that are objects.
    pub fn conditions(&self) -> impl Iterator<Item = &Condition<'a>> {
        self.status
            .0
            .iter()
            .flat_map(|s| s.conditions.items())
            .filter_map(|c| c.0.as_ref())
    }
}

impl<'a> ContainerStatus<'a> {
    /// `state.terminated`, when the container ended.
    pub fn terminated(&self) -> Option<&Terminated<'a>> {
        self.state.0.as_ref()?.terminated.0.as_ref()
    }

    /// `state.waiting.reason`, when not empty.
    pub fn waiting_reason(&self) -> Option<&str> {
        self.state
            .0
            .as_ref()?
            .waiting
            .0
            .as_ref()?
            .reason
            .non_empty()
    }
}

/// A list page as rows read it: its items and where the next page starts.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Page<'a> {
    #[serde(borrow)]
    pub metadata: Obj<ListMeta<'a>>,
    #[serde(borrow)]
    pub items: List<Item<'a>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListMeta<'a> {
    #[serde(rename = "continue", borrow)]
    pub continue_token: Text<'a>,
    pub remaining_item_count: Int,
}

/// Parses a list document (`{"kind": "…List", "items": […]}`) for rows.
pub fn parse_page(text: &str) -> Result<Page<'_>, serde_json::Error> {
    let page: Obj<Page<'_>> = serde_json::from_str(text)?;
    page.0
        .ok_or_else(|| serde::de::Error::custom("a list is a JSON object"))
}

#[cfg(test)]
mod tests {
    use super::super::redact::sanitize;
    use super::super::rows::table;
    use super::super::rows::{pod_ready, pod_restarts, pod_status, status_summary};
    use super::super::target::items;
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

    /// What `kubectl get` shows for each of [`objects`]: status (or the kind's first
    /// columns) and, for pods, ready and restarts; at 02:00, two hours after creation.
    fn expected(name: &str) -> Vec<Value> {
        match name {
            "ok" => vec![json!("Running"), json!("1/1"), json!(0)],
            "crashloop" => vec![
                json!("CrashLoopBackOff"),
                json!("0/1"),
                json!("7 (117m ago)"),
            ],
            "restarted" => vec![json!("Running"), json!("1/1"), json!("2 (117m ago)")],
            "oom" => vec![json!("OOMKilled"), json!("0/1"), json!(1)],
            "signal" => vec![json!("Signal:9"), json!("0/1"), json!(0)],
            "completed-running" => vec![json!("Running"), json!("1/1"), json!(0)],
            "init" => vec![
                json!("Init:CrashLoopBackOff"),
                json!("0/2"),
                json!("3 (117m ago)"),
            ],
            "evicted" => vec![json!("Evicted"), json!("0/1"), json!(0)],
            "terminating" => vec![json!("Terminating"), json!("1/1"), json!(0)],
            "web" => vec![json!("2/3"), json!(3), json!(2)],
            "db" => vec![json!("Opaque"), json!(2), json!("120m")],
            "node-1" => vec![
                json!("120m"),
                json!("NotReady: KubeletNotReady,SchedulingDisabled"),
            ],
            "w" => vec![json!("120m"), json!("Synced,Healthy")],
            other => panic!("no expectation for {other}"),
        }
    }

    #[test]
    fn rows_read_from_the_list_text_show_what_kubectl_shows_and_equal_rows_of_whole_objects() {
        let now: jiff::Timestamp = "2026-01-01T02:00:00Z".parse().expect("ts");
        for (group, kind, obj) in objects() {
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut whole = json!({"kind": format!("{kind}List"), "metadata": {"resourceVersion": "7"}, "items": [obj]});
            let text = whole.to_string();
            let page = parse_page(&text).expect("parses");
            // Whole objects as other tools see them: sanitized (a Secret's values redacted).
            sanitize(&mut whole);
            let views: Vec<Item<'_>> = items(&whole).iter().map(Item::of).collect();
            for with_namespace in [false, true] {
                let expected_rows = table(group, kind, &views, with_namespace, now);
                let got = table(group, kind, page.items.items(), with_namespace, now);
                assert_eq!(got, expected_rows, "{kind} {name}");
            }
            let row = table(group, kind, page.items.items(), false, now).rows[0].clone();
            let want = expected(&name);
            assert_eq!(row[0], json!(name));
            assert_eq!(
                &row.as_array().expect("row")[1..=want.len()],
                want.as_slice(),
                "{kind} {name}"
            );
        }
    }

    #[test]
    fn a_page_keeps_where_the_next_starts_and_rejects_text_that_is_not_json() {
        let (_, _, obj) = objects().swap_remove(1);
        let doc = json!({"kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "7", "continue": "x", "remainingItemCount": 3},
            "items": [obj]});
        let text = doc.to_string();
        let page = parse_page(&text).expect("parses");
        let meta = page.metadata.0.as_ref().expect("metadata");
        assert_eq!(meta.continue_token.str(), "x");
        assert_eq!(meta.remaining_item_count.0, Some(3));
        let item = &page.items.items()[0];
        let m = item.meta().expect("metadata");
        assert_eq!(m.name.str(), "crashloop");
        assert!(
            matches!(m.name.0, Some(std::borrow::Cow::Borrowed(_))),
            "strings without escapes are borrowed from the text"
        );
        assert_eq!(item.spec.0.as_ref().and_then(|s| s.containers.0), Some(1));
        assert!(parse_page("{\"items\": [}").is_err());
        assert!(parse_page("{\"items\": []} x").is_err(), "trailing text");
        assert!(parse_page("[1, 2]").is_err(), "not a list document");
    }

    #[test]
    fn escaped_keys_and_values_are_read_like_plain_ones() {
        let text = r#"{"items": [{"metadata": {"na\u006de": "a\"b", "l\u0061bels": {"x": "y"}}}]}"#;
        let page = parse_page(text).expect("parses");
        assert_eq!(
            page.items.items()[0].meta().expect("metadata").name.str(),
            "a\"b"
        );
    }

    #[test]
    fn fields_of_another_type_read_as_absent_and_do_not_fail_the_list() {
        let now: jiff::Timestamp = "2026-01-01T02:00:00Z".parse().expect("ts");
        // Custom resources put anything in `spec` and `status`.
        let text = json!({"items": [
            {"metadata": {"name": "odd", "creationTimestamp": 5, "deletionTimestamp": null},
             "spec": {"replicas": "3", "containers": "app", "unschedulable": "yes"},
             "status": {"phase": {"value": "Ready"}, "conditions": {"Ready": "True"},
                "readyReplicas": 2.5, "containerStatuses": [7, {"ready": "true", "restartCount": 1e3}]}},
            {"metadata": {"name": "huge"}, "status": {"readyReplicas": 18446744073709551615u64}}
        ]})
        .to_string();
        let page = parse_page(&text).expect("an odd object does not fail the list");
        let odd = &page.items.items()[0];
        assert_eq!(status_summary(odd), "");
        assert_eq!(pod_status(odd), "");
        assert_eq!(pod_ready(odd), "0/0");
        assert_eq!(pod_restarts(odd, now), json!(0));
        let rows = table("apps", "Deployment", page.items.items(), false, now).rows;
        assert_eq!(rows[0], json!(["odd", "0/1", 0, 0, ""]));
        assert_eq!(
            rows[1],
            json!(["huge", "0/1", 0, 0, ""]),
            "a u64 past i64 is no i64"
        );
    }
}
