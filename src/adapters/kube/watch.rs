//! Watching and listing pods, deployments and Warning events of one cluster, reduced to the few
//! fields the health rules read (a projection): kube-rs' watcher lists, then watches from the
//! list's resourceVersion with bookmarks, resumes from the last one after a dropped connection,
//! and lists again after 410 Gone. Full objects live only while one is decoded. Judging health
//! is the signal source's job (src/integrations/kubernetes), not this module's.

use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::api::{Api, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event as WatcherEvent};

use super::{Cluster, KubeError};

/// A kind the signal source watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchedKind {
    Pods,
    Deployments,
    /// Events of type Warning only (field selector `type=Warning`).
    WarningEvents,
}

impl WatchedKind {
    /// The resource name as in config (`pods`, `deployments`, `events`).
    pub fn as_str(self) -> &'static str {
        match self {
            WatchedKind::Pods => "pods",
            WatchedKind::Deployments => "deployments",
            WatchedKind::WarningEvents => "events",
        }
    }
}

/// What the health rules need of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodFacts {
    pub namespace: String,
    pub name: String,
    pub resource_version: String,
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`.
    pub phase: String,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// The first container (init containers first) waiting with a reason other than
    /// `ContainerCreating`/`PodInitializing`: `CrashLoopBackOff`, `ImagePullBackOff`…
    pub waiting: Option<String>,
    /// The first container whose current or last termination reason is `OOMKilled`/`Error`…
    /// (`OOMKilled` preferred).
    pub terminated: Option<String>,
    /// The container that `waiting` or `terminated` is about.
    pub container: Option<String>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

/// What the health rules need of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeploymentFacts {
    pub namespace: String,
    pub name: String,
    pub resource_version: String,
    pub generation: i64,
    pub observed_generation: i64,
    /// `spec.replicas` (default 1).
    pub replicas: i32,
    pub updated: i32,
    pub available: i32,
    pub unavailable: i32,
    /// The `Progressing` condition's reason when its status is `False`
    /// (`ProgressDeadlineExceeded`: the rollout is stuck).
    pub progress_failure: Option<String>,
}

/// A Warning event, as the alert rules need it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WarningEvent {
    pub namespace: String,
    pub name: String,
    pub resource_version: String,
    pub involved_kind: String,
    pub involved_namespace: String,
    pub involved_name: String,
    pub reason: String,
    pub message: String,
    /// How often it happened (`count`, or `series.count`; at least 1).
    pub count: i64,
    /// When it was last seen (`series.lastObservedTime`, `lastTimestamp`, `eventTime`, creation).
    pub last_seen: Option<jiff::Timestamp>,
    /// The reporting component (`kubelet`).
    pub source: String,
}

/// One projected object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projected {
    Pod(PodFacts),
    Deployment(DeploymentFacts),
    Event(WarningEvent),
}

impl Projected {
    pub fn namespace(&self) -> &str {
        match self {
            Projected::Pod(p) => &p.namespace,
            Projected::Deployment(d) => &d.namespace,
            Projected::Event(e) => &e.namespace,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Projected::Pod(p) => &p.name,
            Projected::Deployment(d) => &d.name,
            Projected::Event(e) => &e.name,
        }
    }
}

/// What a watch stream yields.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// A (re-)list begins: objects follow as `Listed`, then `ListDone`.
    Relisting,
    /// An object of the (re-)list.
    Listed(Projected),
    /// The (re-)list is complete; objects not listed since `Relisting` are gone.
    ListDone,
    /// An object was added or changed.
    Applied(Projected),
    /// An object was deleted.
    Deleted(Projected),
    /// The watch failed; the stream goes on after a backoff (`gone`: 410, a re-list follows).
    Failed { message: String, gone: bool },
}

/// Watcher settings.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// Server-side timeout of one watch request (the watch is then resumed).
    pub timeout: Duration,
    /// Objects per page of a (re-)list.
    pub page_size: u32,
}

impl Cluster {
    /// Watch `kind` in `namespace` (all namespaces: `None`) as projected items. Errors are
    /// items (`Failed`); the stream itself never ends and backs off exponentially (800 ms up
    /// to 30 s, with jitter) while the cluster fails.
    pub fn watch_projected(
        &self,
        kind: WatchedKind,
        namespace: Option<&str>,
        settings: WatchSettings,
    ) -> BoxStream<'static, WatchItem> {
        let client = self.client();
        let timeout = u32::try_from(settings.timeout.as_secs().max(1)).unwrap_or(290);
        let config = watcher::Config::default()
            .timeout(timeout)
            .page_size(settings.page_size);
        match kind {
            WatchedKind::Pods => projected(api::<Pod>(client, namespace), config, project_pod),
            WatchedKind::Deployments => projected(
                api::<Deployment>(client, namespace),
                config,
                project_deployment,
            ),
            WatchedKind::WarningEvents => projected(
                api::<Event>(client, namespace),
                config.fields("type=Warning"),
                project_event,
            ),
        }
    }

    /// List `kind` in `namespace` (all: `None`) page by page, projected (the reconcile's read).
    pub async fn list_projected(
        &self,
        kind: WatchedKind,
        namespace: Option<&str>,
        page_size: u32,
    ) -> Result<Vec<Projected>, KubeError> {
        match kind {
            WatchedKind::Pods => {
                self.list_pages::<Pod>(namespace, None, page_size, project_pod)
                    .await
            }
            WatchedKind::Deployments => {
                self.list_pages::<Deployment>(namespace, None, page_size, project_deployment)
                    .await
            }
            WatchedKind::WarningEvents => {
                self.list_pages::<Event>(namespace, Some("type=Warning"), page_size, project_event)
                    .await
            }
        }
    }

    async fn list_pages<K>(
        &self,
        namespace: Option<&str>,
        fields: Option<&str>,
        page_size: u32,
        project: fn(K) -> Projected,
    ) -> Result<Vec<Projected>, KubeError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api = api::<K>(self.client(), namespace);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = ListParams::default().limit(page_size);
            if let Some(f) = fields {
                params = params.fields(f);
            }
            if let Some(t) = &token {
                params = params.continue_token(t);
            }
            let page = self.read(|| api.list(&params)).await?;
            out.extend(page.items.into_iter().map(project));
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(out);
            }
        }
    }
}

fn api<K>(client: kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

fn projected<K>(
    api: Api<K>,
    config: watcher::Config,
    project: fn(K) -> Projected,
) -> BoxStream<'static, WatchItem>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, config)
        .default_backoff()
        .map_ok(move |event| match event {
            WatcherEvent::Init => WatchItem::Relisting,
            WatcherEvent::InitApply(o) => WatchItem::Listed(project(o)),
            WatcherEvent::InitDone => WatchItem::ListDone,
            WatcherEvent::Apply(o) => WatchItem::Applied(project(o)),
            WatcherEvent::Delete(o) => WatchItem::Deleted(project(o)),
        })
        .map(|item| item.unwrap_or_else(failed))
        .boxed()
}

fn failed(e: watcher::Error) -> WatchItem {
    let gone = match &e {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    };
    WatchItem::Failed {
        message: e.to_string(),
        gone,
    }
}

/// Container reasons that are states of a normal start, not trouble.
const STARTING: &[&str] = &["ContainerCreating", "PodInitializing"];

fn project_pod(pod: Pod) -> Projected {
    let meta = pod.metadata;
    let status = pod.status.unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let containers: Vec<ContainerStatus> = status
        .init_container_statuses
        .into_iter()
        .flatten()
        .chain(status.container_statuses.into_iter().flatten())
        .collect();
    // (reason, container) of the first waiting container in trouble, and of the termination
    // to report (OOMKilled over any other reason).
    let mut waiting: Option<(String, String)> = None;
    let mut terminated: Option<(String, String)> = None;
    for c in &containers {
        let state = c.state.as_ref();
        if waiting.is_none()
            && let Some(reason) = state
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.clone())
                .filter(|r| !STARTING.contains(&r.as_str()))
        {
            waiting = Some((reason, c.name.clone()));
        }
        let ended = state
            .and_then(|s| s.terminated.as_ref())
            .or_else(|| c.last_state.as_ref().and_then(|s| s.terminated.as_ref()))
            .and_then(|t| t.reason.clone())
            .filter(|r| r != "Completed");
        if let Some(reason) = ended
            && terminated
                .as_ref()
                .is_none_or(|(r, _)| r != "OOMKilled" && reason == "OOMKilled")
        {
            terminated = Some((reason, c.name.clone()));
        }
    }
    let container = waiting
        .as_ref()
        .or(terminated.as_ref())
        .map(|(_, c)| c.clone());
    Projected::Pod(PodFacts {
        namespace: meta.namespace.unwrap_or_default(),
        name: meta.name.unwrap_or_default(),
        resource_version: meta.resource_version.unwrap_or_default(),
        phase: status.phase.unwrap_or_default(),
        ready,
        waiting: waiting.map(|(r, _)| r),
        terminated: terminated.map(|(r, _)| r),
        container,
        deleting: meta.deletion_timestamp.is_some(),
    })
}

fn project_deployment(d: Deployment) -> Projected {
    let meta = d.metadata;
    let replicas = d.spec.replicas.unwrap_or(1);
    let status = d.status.unwrap_or_default();
    let progress_failure = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some("Progressing") && c.status.as_deref() == Some("False"))
        .map(|c| {
            c.reason
                .clone()
                .unwrap_or_else(|| "Progressing=False".into())
        });
    Projected::Deployment(DeploymentFacts {
        namespace: meta.namespace.unwrap_or_default(),
        name: meta.name.unwrap_or_default(),
        resource_version: meta.resource_version.unwrap_or_default(),
        generation: meta.generation.unwrap_or(0),
        observed_generation: status.observed_generation.unwrap_or(0),
        replicas,
        updated: status.updated_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
        unavailable: status.unavailable_replicas.unwrap_or(0),
        progress_failure,
    })
}

fn project_event(e: Event) -> Projected {
    let meta = e.metadata;
    let series = e.series.as_ref();
    let count = series
        .and_then(|s| s.count)
        .or(e.count)
        .map(i64::from)
        .unwrap_or(1)
        .max(1);
    let last_seen = series
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| t.0)
        .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| meta.creation_timestamp.as_ref().map(|t| t.0));
    let involved = e.involved_object;
    Projected::Event(WarningEvent {
        namespace: meta.namespace.unwrap_or_default(),
        name: meta.name.unwrap_or_default(),
        resource_version: meta.resource_version.unwrap_or_default(),
        involved_kind: involved.kind.unwrap_or_default(),
        involved_namespace: involved.namespace.unwrap_or_default(),
        involved_name: involved.name.unwrap_or_default(),
        reason: e.reason.unwrap_or_default(),
        message: e.message.unwrap_or_default(),
        count,
        last_seen,
        source: e
            .source
            .and_then(|s| s.component)
            .or(e.reporting_component)
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> PodFacts {
        match project_pod(serde_json::from_value(json).expect("pod")) {
            Projected::Pod(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pods_keep_only_what_the_rules_read() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "a", "namespace": "n", "resourceVersion": "7"},
            "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {"name": "ok", "ready": true, "restartCount": 0, "image": "i", "imageID": "", "state": {"running": {}}},
                    {"name": "app", "ready": false, "restartCount": 3, "image": "i", "imageID": "",
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                     "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
                ]}
        }));
        assert_eq!(p.waiting.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(p.terminated.as_deref(), Some("OOMKilled"));
        assert_eq!(p.container.as_deref(), Some("app"));
        assert!(!p.ready);
        assert_eq!(p.resource_version, "7");

        let p = pod(serde_json::json!({
            "metadata": {"name": "b", "namespace": "n"},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        }));
        assert_eq!(p.waiting, None, "a starting container is not trouble");
    }

    #[test]
    fn events_take_the_series_count_and_time() {
        let e: Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "e", "namespace": "n"},
            "involvedObject": {"kind": "Pod", "name": "a", "namespace": "n"},
            "reason": "BackOff", "type": "Warning", "count": 2,
            "lastTimestamp": "2026-12-01T10:00:00Z",
            "series": {"count": 9, "lastObservedTime": "2026-12-01T10:05:00.000000Z"}
        }))
        .expect("event");
        let Projected::Event(e) = project_event(e) else {
            panic!("not an event")
        };
        assert_eq!(e.count, 9);
        assert_eq!(
            e.last_seen.map(|t| t.to_string()).as_deref(),
            Some("2026-12-01T10:05:00Z")
        );
        assert_eq!(
            (e.involved_kind.as_str(), e.involved_name.as_str()),
            ("Pod", "a")
        );
    }
}
