//! The Kubernetes watch + poll signal source: per configured cluster, watches of pods,
//! deployments and Warning events in the configured namespaces (through the kube adapter), and
//! a full reconcile every `poll_interval` that catches what a missed watch event would lose.
//! Health changes become `RecordHealthCheckRequested`, Warning events `IngestAlertRequested`,
//! written to the intents outbox. The last reported health of each object is kept in memory
//! (a few short strings per object) and in the store, so a restart reports only what changed.
//!
//! One task per cluster handles every item of that cluster in order, so intents about one
//! object leave in the order the API server changed it. A cluster that is down only delays its
//! own task.

pub mod rules;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use serde_json::{Map, json};
use tokio_util::sync::CancellationToken;

use crate::adapters::kube::config::WatchConfig;
use crate::adapters::kube::watch::{Projected, WatchItem, WatchedKind};
use crate::adapters::kube::{Cluster, Kube};
use crate::core::readiness::Integration;
use crate::intents::{Intents, Signal};
use rules::{HealthState, Subject};

/// How long to wait before asking again for a cluster whose client cannot be built.
const CLIENT_RETRY: Duration = Duration::from_secs(5);

/// What `/readyz` and the metrics show of one cluster's watch.
#[derive(Debug, Clone, Default)]
struct ClusterBoard {
    /// Per watch stream (`pods`, `deployments@ns`…): listed and open.
    streams: BTreeMap<String, bool>,
    last_event_ms: Option<i64>,
    last_reconcile_ms: Option<i64>,
    last_reconcile_error: Option<String>,
    last_error: Option<String>,
    objects: usize,
    intents: u64,
}

/// Health of the signal source, per cluster. Cheap to share.
#[derive(Default)]
pub struct WatchHealth {
    namespaces: Vec<String>,
    clusters: Mutex<BTreeMap<String, ClusterBoard>>,
}

impl WatchHealth {
    fn update(&self, cluster: &str, f: impl FnOnce(&mut ClusterBoard)) {
        if let Ok(mut map) = self.clusters.lock() {
            f(map.entry(cluster.to_string()).or_default());
        }
    }

    /// One `/readyz` entry per cluster, named `kubernetes_watch/<cluster>`: `ok` when every
    /// stream is open and the last reconcile worked, `degraded` otherwise (never failing: a
    /// cluster that is down is that cluster's problem only).
    pub fn entries(&self) -> Vec<(String, Integration)> {
        let Ok(map) = self.clusters.lock() else {
            return Vec::new();
        };
        map.iter()
            .map(|(name, b)| {
                let connected = !b.streams.is_empty() && b.streams.values().all(|c| *c);
                let ok = connected && b.last_reconcile_error.is_none();
                let mut detail = Map::new();
                detail.insert("watch_connected".into(), json!(connected));
                detail.insert("streams".into(), json!(b.streams));
                detail.insert("namespaces".into(), json!(self.namespaces));
                detail.insert("last_event_at".into(), json!(b.last_event_ms.map(rfc3339)));
                detail.insert(
                    "last_reconcile_at".into(),
                    json!(b.last_reconcile_ms.map(rfc3339)),
                );
                detail.insert("last_reconcile_error".into(), json!(b.last_reconcile_error));
                detail.insert("objects".into(), json!(b.objects));
                detail.insert("intents".into(), json!(b.intents));
                let error = b
                    .last_reconcile_error
                    .clone()
                    .or_else(|| (!connected).then(|| b.last_error.clone()).flatten());
                (
                    format!("kubernetes_watch/{name}"),
                    Integration::signal(if ok { "ok" } else { "degraded" }, error, detail),
                )
            })
            .collect()
    }
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Start one task per configured cluster (nothing when the watch is off). Returns the health
/// board the tasks fill.
pub fn spawn(
    kube: Arc<dyn Kube>,
    config: Option<&WatchConfig>,
    intents: &Intents,
    shutdown: CancellationToken,
) -> Option<Arc<WatchHealth>> {
    let config = config?.clone();
    let health = Arc::new(WatchHealth {
        namespaces: config.namespaces.clone(),
        ..WatchHealth::default()
    });
    for name in kube.cluster_names() {
        health.update(&name, |_| {});
        let runner = Runner {
            cluster_name: name,
            kube: kube.clone(),
            config: config.clone(),
            intents: intents.clone(),
            health: health.clone(),
            states: HashMap::new(),
            relisted: HashMap::new(),
            unsaved: Vec::new(),
        };
        tokio::spawn(runner.run(shutdown.clone()));
    }
    Some(health)
}

/// A watch stream's identity: the kind and the namespace it covers (`None`: all).
type StreamId = (WatchedKind, Option<String>);

struct Runner {
    cluster_name: String,
    kube: Arc<dyn Kube>,
    config: WatchConfig,
    intents: Intents,
    health: Arc<WatchHealth>,
    /// Object key (`kind/namespace/name`) → last reported health.
    states: HashMap<String, HealthState>,
    /// Keys seen since each stream's last `Relisting`.
    relisted: HashMap<StreamId, HashSet<String>>,
    /// States judged but not yet stored: written together after a list, a reconcile or an item.
    unsaved: Vec<(String, String)>,
}

fn kind_name(kind: WatchedKind) -> &'static str {
    match kind {
        WatchedKind::Pods => "Pod",
        WatchedKind::Deployments => "Deployment",
        WatchedKind::WarningEvents => "Event",
    }
}

fn object_key(kind: WatchedKind, namespace: &str, name: &str) -> String {
    format!("{}/{namespace}/{name}", kind_name(kind))
}

fn stream_label(id: &StreamId) -> String {
    match &id.1 {
        Some(ns) => format!("{}@{ns}", id.0.as_str()),
        None => id.0.as_str().to_string(),
    }
}

impl Runner {
    async fn run(mut self, shutdown: CancellationToken) {
        let Some(mut cluster) = self.connect(&shutdown).await else {
            return;
        };
        self.load_states().await;
        let namespaces: Vec<Option<String>> = match self.config.literal_namespaces() {
            Some(list) => list.into_iter().map(Some).collect(),
            None => vec![None],
        };
        let mut streams = self.open_streams(&cluster, &namespaces);
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The watches' own lists cover the start; the first reconcile comes one interval later.
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                item = streams.next() => match item {
                    Some((id, item)) => self.on_item(&id, item).await,
                    None => return,
                },
                _ = tick.tick() => {
                    // A kubeconfig read from OpenBao may have changed: the adapter then holds
                    // a new client, and the watches move to it.
                    if let Ok(current) = self.kube.cluster(Some(&self.cluster_name)).await
                        && !current.same_client(&cluster)
                    {
                        tracing::info!(cluster = %self.cluster_name, "kubernetes watch: the cluster has a new client; watching again");
                        cluster = current;
                        self.relisted.clear();
                        streams = self.open_streams(&cluster, &namespaces);
                    }
                    self.reconcile(&cluster, &namespaces).await
                }
            }
        }
    }

    /// One watch stream per watched kind and namespace (all namespaces: one per kind).
    fn open_streams(
        &self,
        cluster: &Cluster,
        namespaces: &[Option<String>],
    ) -> SelectAll<BoxStream<'static, (StreamId, WatchItem)>> {
        let mut streams = SelectAll::new();
        for kind in &self.config.kinds {
            for ns in namespaces {
                let id: StreamId = (*kind, ns.clone());
                let label = stream_label(&id);
                self.health.update(&self.cluster_name, |b| {
                    b.streams.insert(label.clone(), false);
                });
                crate::metrics::k8s_watch_connected(&self.cluster_name, &label, false);
                let stream = cluster
                    .watch_projected(*kind, ns.as_deref(), self.config.settings)
                    .map(move |item| (id.clone(), item))
                    .boxed();
                streams.push(stream);
            }
        }
        streams
    }

    /// The cluster's client, retried until it can be built (a kubeconfig written later, an
    /// OpenBao that answers later). `None`: shut down meanwhile.
    async fn connect(&self, shutdown: &CancellationToken) -> Option<Cluster> {
        loop {
            match self.kube.cluster(Some(&self.cluster_name)).await {
                Ok(c) => return Some(c),
                Err(e) => {
                    let text = e.to_string();
                    tracing::warn!(cluster = %self.cluster_name, error = %text, "kubernetes watch: no client yet");
                    self.health
                        .update(&self.cluster_name, |b| b.last_error = Some(text));
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(CLIENT_RETRY) => {}
            }
        }
    }

    async fn load_states(&mut self) {
        match self.intents.store().watch_states(&self.cluster_name).await {
            Ok(rows) => {
                for (key, text) in rows {
                    if let Ok(state) = serde_json::from_str::<HealthState>(&text) {
                        self.states.insert(key, state);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(cluster = %self.cluster_name, error = %e, "kubernetes watch: last-known states not read; every unhealthy object will be reported once")
            }
        }
        let n = self.states.len();
        self.health.update(&self.cluster_name, |b| b.objects = n);
    }

    async fn on_item(&mut self, id: &StreamId, item: WatchItem) {
        let label = stream_label(id);
        let now = jiff::Timestamp::now();
        // Objects of a (re-)list are stored together when it ends.
        let listing = matches!(item, WatchItem::Listed(_));
        match item {
            WatchItem::Relisting => {
                self.relisted.insert(id.clone(), HashSet::new());
            }
            WatchItem::Listed(p) => {
                let key = object_key(id.0, p.namespace(), p.name());
                if let Some(seen) = self.relisted.get_mut(id) {
                    seen.insert(key);
                }
                self.observe(id.0, &p, now).await;
            }
            WatchItem::ListDone => {
                let seen = self.relisted.remove(id).unwrap_or_default();
                let prefix = format!("{}/", kind_name(id.0));
                let gone: Vec<String> = self
                    .states
                    .keys()
                    .filter(|k| k.starts_with(&prefix) && !seen.contains(*k))
                    .filter(|k| {
                        id.1.as_deref()
                            .is_none_or(|ns| k[prefix.len()..].starts_with(&format!("{ns}/")))
                    })
                    .cloned()
                    .collect();
                self.forget(gone).await;
                self.set_connected(&label, true, None);
            }
            WatchItem::Applied(p) => {
                self.set_connected(&label, true, None);
                self.observe(id.0, &p, now).await;
            }
            WatchItem::Deleted(p) => {
                let key = object_key(id.0, p.namespace(), p.name());
                self.forget(vec![key]).await;
            }
            WatchItem::Failed { message, gone } => {
                tracing::warn!(cluster = %self.cluster_name, stream = %label, gone, error = %message, "kubernetes watch failed; resuming after a backoff");
                crate::metrics::k8s_watch_error(&self.cluster_name, &label);
                self.set_connected(&label, false, Some(message));
                return;
            }
        }
        if !listing {
            self.save().await;
        }
        let ms = now.as_millisecond();
        self.health
            .update(&self.cluster_name, |b| b.last_event_ms = Some(ms));
        crate::metrics::k8s_watch_event(&self.cluster_name, now.as_second());
    }

    /// Store the states judged since the last save, in one transaction.
    async fn save(&mut self) {
        let rows = std::mem::take(&mut self.unsaved);
        if let Err(e) = self
            .intents
            .store()
            .put_watch_states(&self.cluster_name, &rows)
            .await
        {
            tracing::warn!(cluster = %self.cluster_name, error = %e, rows = rows.len(), "kubernetes watch: states not stored; a restart may judge these objects again");
        }
    }

    fn set_connected(&self, label: &str, connected: bool, error: Option<String>) {
        crate::metrics::k8s_watch_connected(&self.cluster_name, label, connected);
        self.health.update(&self.cluster_name, |b| {
            b.streams.insert(label.to_string(), connected);
            if error.is_some() {
                b.last_error = error;
            }
        });
    }

    /// Judge one object; write an intent when its health changed, then remember the new state.
    async fn observe(&mut self, kind: WatchedKind, p: &Projected, now: jiff::Timestamp) {
        if !self.config.watches(p.namespace()) {
            return;
        }
        match p {
            Projected::Event(e) => {
                // A re-list brings back old events: only those of the current window count.
                let window_ms =
                    i64::try_from(self.config.event_window.as_millis()).unwrap_or(i64::MAX);
                let fresh = e.last_seen.is_none_or(|t| {
                    now.as_millisecond().saturating_sub(t.as_millisecond()) <= window_ms
                });
                if fresh {
                    let signal = rules::warning_signal(&self.cluster_name, e, now);
                    self.emit(signal, window_ms).await;
                }
            }
            Projected::Pod(_) | Projected::Deployment(_) => {
                let (after, rv) = match p {
                    Projected::Pod(pod) => match rules::pod_health(pod) {
                        Some(h) => (h, pod.resource_version.as_str()),
                        None => return,
                    },
                    Projected::Deployment(d) => {
                        (rules::deployment_health(d), d.resource_version.as_str())
                    }
                    Projected::Event(_) => return,
                };
                let key = object_key(kind, p.namespace(), p.name());
                let before = self.states.get(&key);
                if before == Some(&after) {
                    return;
                }
                if rules::worth_reporting(before, &after) {
                    let subject = Subject {
                        cluster: &self.cluster_name,
                        kind: kind_name(kind),
                        namespace: p.namespace(),
                        name: p.name(),
                        resource_version: rv,
                    };
                    let signal = rules::health_signal(&subject, before, &after, now);
                    if !self.emit(signal, rules::HEALTH_DEDUP_MS).await {
                        // Not written: keep the old state so the next sight tries again.
                        return;
                    }
                }
                // Stored after the intent: a crash in between re-emits, and the key drops it.
                let text = serde_json::to_string(&after).unwrap_or_default();
                self.unsaved.push((key.clone(), text));
                self.states.insert(key, after);
                let n = self.states.len();
                self.health.update(&self.cluster_name, |b| b.objects = n);
            }
        }
    }

    /// Write one signal; `false` when the outbox refused it.
    async fn emit(&mut self, signal: Signal, window_ms: i64) -> bool {
        match self
            .intents
            .emit(rules::SOURCE, std::slice::from_ref(&signal), window_ms)
            .await
        {
            Ok(outcome) => {
                let n = outcome.intents as u64;
                if n > 0 {
                    crate::metrics::k8s_signal_intents(&self.cluster_name, n);
                    self.health.update(&self.cluster_name, |b| b.intents += n);
                }
                true
            }
            Err(e) => {
                tracing::warn!(cluster = %self.cluster_name, error = %e, "kubernetes watch: intent not written");
                false
            }
        }
    }

    async fn forget(&mut self, keys: Vec<String>) {
        let keys: Vec<String> = keys
            .into_iter()
            .filter(|k| self.states.remove(k).is_some())
            .collect();
        if keys.is_empty() {
            return;
        }
        if let Err(e) = self
            .intents
            .store()
            .delete_watch_states(&self.cluster_name, &keys)
            .await
        {
            tracing::warn!(cluster = %self.cluster_name, error = %e, "kubernetes watch: stale states not removed");
        }
        let n = self.states.len();
        self.health.update(&self.cluster_name, |b| b.objects = n);
    }

    /// List everything watched and judge it as if the watch had delivered it; objects no longer
    /// listed are forgotten.
    async fn reconcile(&mut self, cluster: &Cluster, namespaces: &[Option<String>]) {
        let now = jiff::Timestamp::now();
        let mut error = None;
        for kind in self.config.kinds.clone() {
            let mut listed = Vec::new();
            let mut complete = true;
            for ns in namespaces {
                match cluster
                    .list_projected(kind, ns.as_deref(), self.config.settings.page_size)
                    .await
                {
                    Ok(items) => listed.extend(items),
                    Err(e) => {
                        complete = false;
                        error = Some(format!("listing {}: {e}", kind.as_str()));
                    }
                }
            }
            let mut seen = HashSet::new();
            for p in &listed {
                seen.insert(object_key(kind, p.namespace(), p.name()));
                self.observe(kind, p, now).await;
            }
            if complete && kind != WatchedKind::WarningEvents {
                let prefix = format!("{}/", kind_name(kind));
                let gone: Vec<String> = self
                    .states
                    .keys()
                    .filter(|k| k.starts_with(&prefix) && !seen.contains(*k))
                    .cloned()
                    .collect();
                self.forget(gone).await;
            }
        }
        self.save().await;
        let ok = error.is_none();
        if let Some(e) = &error {
            tracing::warn!(cluster = %self.cluster_name, error = %e, "kubernetes reconcile incomplete");
        }
        crate::metrics::k8s_reconcile(&self.cluster_name, ok, now.as_second());
        self.health.update(&self.cluster_name, |b| {
            if ok {
                b.last_reconcile_ms = Some(now.as_millisecond());
            }
            b.last_reconcile_error = error;
        });
    }
}
