//! The in-memory object store: objects keyed by type and `namespace/name`, the global
//! resourceVersion counter, watch fan-out, pod logs and the request journal.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::OnceLock;

use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::registry::{self, ResourceType};

/// One HTTP request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw (still percent-encoded) query string, `""` when absent.
    pub query: String,
    pub accept: Option<String>,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    /// The request body (lossy UTF-8), `""` when empty.
    pub body: String,
}

/// One exec session, recorded when it ends.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub command: Vec<String>,
    pub stdin: Vec<u8>,
    pub exit_code: i32,
    /// The negotiated WebSocket subprotocol, e.g. `v5.channel.k8s.io`.
    pub protocol: String,
}

/// A change to an object, fanned out to watchers.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub group: &'static str,
    pub plural: &'static str,
    pub namespace: String,
    pub event_type: &'static str,
    pub object: Value,
    pub rv: u64,
}

pub type LogKey = (String, String, String, bool);
type TypeKey = (&'static str, &'static str);
pub type ObjKey = (String, String);

const HISTORY: usize = 10_000;

/// A stored object and, once a full list has served it, its encoding as served. The API
/// server's watch cache keeps each object's serialization the same way (`cachingObject`), so a
/// list of unchanged objects does not encode them again; a change stores a new `Stored`.
pub struct Stored {
    pub obj: Value,
    served: OnceLock<Box<str>>,
}

impl Stored {
    fn new(obj: Value) -> Self {
        Self {
            obj,
            served: OnceLock::new(),
        }
    }

    /// The object as a full list's item serves it: a built-in kind's item carries no
    /// `apiVersion`/`kind`, a custom resource's does.
    pub fn served(&self, rt: &ResourceType) -> &str {
        self.served.get_or_init(|| {
            let mut obj = self.obj.clone();
            if let Some(m) = obj.as_object_mut() {
                if rt.is_builtin() {
                    m.remove("apiVersion");
                    m.remove("kind");
                } else {
                    m.insert("apiVersion".into(), json!(rt.api_version()));
                    m.insert("kind".into(), json!(rt.kind));
                }
            }
            serde_json::to_string(&obj)
                .unwrap_or_default()
                .into_boxed_str()
        })
    }
}

pub struct Inner {
    rv: u64,
    /// Revisions below this are compacted away (etcd): continue tokens issued at them expire.
    compacted: u64,
    objects: BTreeMap<TypeKey, BTreeMap<ObjKey, Stored>>,
    pub history: VecDeque<WatchEvent>,
    pub watch_tx: broadcast::Sender<WatchEvent>,
    /// Shared, so a read takes the lines without copying them under the lock.
    pub logs: HashMap<LogKey, std::sync::Arc<[(Timestamp, String)]>>,
    pub requests: Vec<RecordedRequest>,
    pub execs: Vec<ExecRecord>,
    /// Counter for generated names and seeded objects.
    pub seq: u64,
}

pub fn now_rfc3339() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn tkey(rt: &ResourceType) -> TypeKey {
    (rt.group, rt.plural)
}

impl Inner {
    pub fn new() -> Self {
        let (watch_tx, _) = broadcast::channel(4096);
        Self {
            rv: 1000,
            compacted: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            watch_tx,
            logs: HashMap::new(),
            requests: Vec::new(),
            execs: Vec::new(),
            seq: 0,
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&tkey(rt))?
            .get(&(ns.to_string(), name.to_string()))
            .map(|s| &s.obj)
    }

    /// Objects of a type in `namespace/name` order, optionally within one namespace.
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<&Value> {
        let Some(m) = self.objects.get(&tkey(rt)) else {
            return Vec::new();
        };
        match ns {
            Some(ns) => m
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| &v.obj)
                .collect(),
            None => m.values().map(|v| &v.obj).collect(),
        }
    }

    /// Objects of a type in `namespace/name` order after the key `after` (exclusive),
    /// optionally within one namespace. Lazy: a page of a list costs its size, as a range read
    /// with a limit costs in etcd, not the size of the collection.
    pub fn range<'a>(
        &'a self,
        rt: &ResourceType,
        ns: Option<&'a str>,
        after: Option<ObjKey>,
    ) -> impl Iterator<Item = &'a Stored> + 'a {
        let from = match (ns, after) {
            // A key before the namespace starts at the namespace (a token of another query).
            (Some(ns), Some(k)) if k.0.as_str() >= ns => Bound::Excluded(k),
            (Some(ns), _) => Bound::Included((ns.to_string(), String::new())),
            (None, Some(k)) => Bound::Excluded(k),
            (None, None) => Bound::Unbounded,
        };
        self.objects
            .get(&tkey(rt))
            .into_iter()
            .flat_map(move |m| m.range((from.clone(), Bound::Unbounded)))
            .take_while(move |((n, _), _)| ns.is_none_or(|ns| n == ns))
            .map(|(_, v)| v)
    }

    /// Compacts the history up to now, as etcd's periodic compaction does (every 5 minutes by
    /// default): continue tokens issued before this call expire (410 Expired).
    pub fn compact(&mut self) {
        self.compacted = self.next_rv();
    }

    /// The resourceVersion of the last compaction (0: never).
    pub fn compacted_at(&self) -> u64 {
        self.compacted
    }

    /// Stores `obj` with a fresh resourceVersion without telling watchers: a change a watch
    /// missed (only a list shows it).
    pub fn put_unwatched(&mut self, rt: &'static ResourceType, mut obj: Value) -> Value {
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = (
            meta_str(&obj, "namespace").to_string(),
            meta_str(&obj, "name").to_string(),
        );
        self.objects
            .entry(tkey(rt))
            .or_default()
            .insert(key, Stored::new(obj.clone()));
        obj
    }

    /// Whether a list snapshot at `rv` can no longer be read.
    pub fn is_compacted(&self, rv: u64) -> bool {
        rv < self.compacted
    }

    /// `(type, namespace, name)` of every stored object matching `pred` (for garbage collection
    /// and namespace cleanup).
    pub fn keys_where(
        &self,
        pred: impl Fn(&ResourceType, &Value) -> bool,
    ) -> Vec<(&'static ResourceType, String, String)> {
        let mut out = Vec::new();
        for ((group, plural), m) in &self.objects {
            if let Some(rt) = registry::by_plural(group, "v1", plural) {
                out.extend(
                    m.iter()
                        .filter(|(_, v)| pred(rt, &v.obj))
                        .map(|((ns, name), _)| (rt, ns.clone(), name.clone())),
                );
            }
        }
        out
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        registry::by_plural("", "v1", "namespaces").is_some_and(|rt| self.get(rt, "", ns).is_some())
    }

    fn emit(
        &mut self,
        rt: &'static ResourceType,
        event_type: &'static str,
        object: Value,
        rv: u64,
    ) {
        let ev = WatchEvent {
            group: rt.group,
            plural: rt.plural,
            namespace: meta_str(&object, "namespace").to_string(),
            event_type,
            object,
            rv,
        };
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(ev.clone());
        let _ = self.watch_tx.send(ev);
    }

    /// Stores `obj` with a fresh resourceVersion and notifies watchers; returns the stored object.
    pub fn put(&mut self, rt: &'static ResourceType, mut obj: Value) -> Value {
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = (
            meta_str(&obj, "namespace").to_string(),
            meta_str(&obj, "name").to_string(),
        );
        let existed = self
            .objects
            .entry(tkey(rt))
            .or_default()
            .insert(key, Stored::new(obj.clone()))
            .is_some();
        self.emit(
            rt,
            if existed { "MODIFIED" } else { "ADDED" },
            obj.clone(),
            rv,
        );
        obj
    }

    /// Removes an object and notifies watchers; returns it as it was last stored.
    pub fn remove(&mut self, rt: &'static ResourceType, ns: &str, name: &str) -> Option<Value> {
        let obj = self
            .objects
            .get_mut(&tkey(rt))?
            .remove(&(ns.to_string(), name.to_string()))?
            .obj;
        let rv = self.next_rv();
        let mut gone = obj.clone();
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.emit(rt, "DELETED", gone, rv);
        Some(obj)
    }
}
