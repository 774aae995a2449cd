//! The `kubernetes` config section: its raw (all-optional, `deny_unknown_fields`) block and
//! the validated settings this adapter is built from. `config.rs` embeds the block, merges
//! environment overrides and collects the problems; the checks live here, beside their user.

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::http::config::RawDuration;
use crate::adapters::http::{Credential, SecretRefSpec};
use crate::adapters::kube::watch::{WatchSettings, WatchedKind};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetes {
    /// Cluster used when a call names none. Default: the first configured cluster.
    pub default_cluster: Option<String>,
    /// Clusters toolgate may reach. Default: one cluster `default` from the kubeconfig's
    /// current context (KUBECONFIG, ~/.kube/config) or the in-cluster service account.
    pub clusters: Option<Vec<RawCluster>>,
    /// Default `tail_lines` of `k8s.get_logs`. Default 500.
    pub log_tail_lines: Option<i64>,
    /// Timeout of one API request (`20s`, or a number of seconds). Default 20s.
    pub request_timeout_seconds: Option<RawDuration>,
    /// Retries of reads (the upstream kit's `attempts`, `backoff`, `max_backoff`). Default 3 attempts.
    pub retry: Option<crate::adapters::http::config::RawRetry>,
    /// One circuit breaker per cluster (`failures`, `cooldown`). Default 5 faults, 30s.
    pub breaker: Option<crate::adapters::http::config::RawBreaker>,
    /// Larger API answers are refused. Default 64 MiB.
    pub max_response_bytes: Option<usize>,
    /// The watch + poll signal source: health changes and Warning events become intents.
    /// Off unless this block is given.
    pub watch: Option<RawWatch>,
}

/// `kubernetes.watch` (the seed's `kubernetes_integration.watch` and `.poll_interval` land here).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    /// `false` turns the watch off while keeping the block. Default true.
    pub enabled: Option<bool>,
    /// Namespaces to watch, as glob patterns (`ameide-*`, `argocd`). Default: all (`*`).
    pub namespaces: Option<Vec<String>>,
    /// `pods`, `deployments`, `services`, `events`. Default: pods, deployments, events.
    pub resource_types: Option<Vec<String>>,
    /// A full reconcile (list and compare) this often. Default 60s.
    pub poll_interval: Option<RawDuration>,
    /// Warning events with the same cluster, involved object and reason within this window
    /// become one alert. Default 10m.
    pub event_dedup_window: Option<RawDuration>,
    /// Server-side limit of one watch request (then resumed from the last resourceVersion).
    /// Default 290s.
    pub watch_timeout: Option<RawDuration>,
    /// Objects per page of a list. Default 500.
    pub page_size: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// Name callers use in the `cluster` argument.
    pub name: String,
    /// Kubeconfig context to use. Default: the current context.
    pub context: Option<String>,
    /// Kubeconfig file. Default: KUBECONFIG or ~/.kube/config.
    pub kubeconfig: Option<String>,
    /// The kubeconfig in OpenBao KV v2 (`platform/clusters/prod#kubeconfig`; needs the
    /// `openbao` section), read when the client is built and again every `openbao.refresh`.
    pub kubeconfig_secret_ref: Option<String>,
    /// Use the in-cluster service account instead of a kubeconfig.
    pub in_cluster: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    pub default_cluster: String,
    pub clusters: Vec<ClusterConfig>,
    pub log_tail_lines: i64,
    pub request_timeout: Duration,
    /// Each cluster's client settings in the upstream kit's terms (retry, breaker, byte cap).
    pub client: crate::adapters::http::Settings,
    /// The watch + poll signal source; `None`: off.
    pub watch: Option<WatchConfig>,
}

/// The validated `kubernetes.watch`.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Glob patterns as written (for messages and /readyz).
    pub namespaces: Vec<String>,
    pub matcher: globset::GlobSet,
    pub kinds: Vec<WatchedKind>,
    /// `services` was asked for: accepted, nothing to judge (no health rule for services).
    pub services: bool,
    pub poll_interval: Duration,
    pub event_window: Duration,
    pub settings: WatchSettings,
}

impl WatchConfig {
    /// Whether `namespace` matches one of the patterns.
    pub fn watches(&self, namespace: &str) -> bool {
        self.matcher.is_match(namespace)
    }

    /// The namespaces to open watches in when every pattern is a plain name (a watch per
    /// namespace needs no cluster-wide list right); `None`: watch all namespaces and filter.
    pub fn literal_namespaces(&self) -> Option<Vec<String>> {
        let plain = |p: &String| !p.contains(['*', '?', '[', '{']);
        self.namespaces
            .iter()
            .all(plain)
            .then(|| self.namespaces.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSource {
    /// A kubeconfig (file or the usual places) and optionally one of its contexts.
    Kubeconfig {
        path: Option<PathBuf>,
        context: Option<String>,
    },
    /// A kubeconfig held in OpenBao (a secret reference), and optionally one of its contexts.
    KubeconfigSecret {
        kubeconfig: Credential,
        context: Option<String>,
    },
    /// The pod's service account.
    InCluster,
    /// Whatever `kube::Config::infer` finds (kubeconfig, else in-cluster).
    Infer,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub name: String,
    pub source: ClusterSource,
}

/// Validate the `kubernetes` block; every problem names its key.
pub fn resolve(raw_k8s: RawKubernetes, problems: &mut Vec<String>) -> KubernetesConfig {
    let clusters: Vec<ClusterConfig> = match raw_k8s.clusters {
        None => vec![ClusterConfig {
            name: "default".into(),
            source: ClusterSource::Infer,
        }],
        Some(list) if list.is_empty() => {
            problems.push("kubernetes.clusters: the list is empty; omit it to use the current kubeconfig context".into());
            Vec::new()
        }
        Some(list) => {
            let mut out: Vec<ClusterConfig> = Vec::new();
            for c in list {
                if c.name.trim().is_empty() {
                    problems.push("kubernetes.clusters: a cluster has an empty name".into());
                    continue;
                }
                if out.iter().any(|o| o.name == c.name) {
                    problems.push(format!(
                        "kubernetes.clusters: the name `{}` appears twice",
                        c.name
                    ));
                }
                let in_cluster = c.in_cluster.unwrap_or(false);
                if in_cluster
                    && (c.context.is_some()
                        || c.kubeconfig.is_some()
                        || c.kubeconfig_secret_ref.is_some())
                {
                    problems.push(format!(
                        "kubernetes.clusters[{}]: in_cluster cannot be combined with context, kubeconfig or kubeconfig_secret_ref",
                        c.name
                    ));
                }
                if c.kubeconfig.is_some() && c.kubeconfig_secret_ref.is_some() {
                    problems.push(format!(
                        "kubernetes.clusters[{}]: give kubeconfig (a file) or kubeconfig_secret_ref (OpenBao), not both",
                        c.name
                    ));
                }
                if let Some(path) = &c.kubeconfig
                    && !Path::new(path).exists()
                {
                    problems.push(format!(
                        "kubernetes.clusters[{}].kubeconfig: file `{path}` does not exist",
                        c.name
                    ));
                }
                let secret = c.kubeconfig_secret_ref.as_deref().and_then(|text| {
                    let key = format!("kubernetes.clusters[{}].kubeconfig_secret_ref", c.name);
                    SecretRefSpec::parse(&key, text)
                        .map_err(|e| problems.push(format!("{key}: {e}")))
                        .ok()
                });
                let source = if in_cluster {
                    ClusterSource::InCluster
                } else if let Some(spec) = secret {
                    ClusterSource::KubeconfigSecret {
                        kubeconfig: Credential::secret_ref(spec),
                        context: c.context,
                    }
                } else {
                    ClusterSource::Kubeconfig {
                        path: c.kubeconfig.map(PathBuf::from),
                        context: c.context,
                    }
                };
                out.push(ClusterConfig {
                    name: c.name,
                    source,
                });
            }
            out
        }
    };
    let default_cluster = match raw_k8s.default_cluster {
        Some(name) => {
            if !clusters.iter().any(|c| c.name == name) {
                let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
                problems.push(format!(
                    "kubernetes.default_cluster: `{name}` is not a configured cluster; clusters: {}",
                    names.join(", ")
                ));
            }
            name
        }
        None => clusters
            .first()
            .map(|c| c.name.clone())
            .unwrap_or_else(|| "default".into()),
    };
    let log_tail_lines = raw_k8s.log_tail_lines.unwrap_or(500);
    if !(1..=100_000).contains(&log_tail_lines) {
        problems.push(format!(
            "kubernetes.log_tail_lines: {log_tail_lines} is out of range; expected 1..=100000"
        ));
    }
    let request_timeout = RawDuration::resolve_or(
        raw_k8s.request_timeout_seconds.as_ref(),
        "kubernetes.request_timeout_seconds",
        Duration::from_secs(20),
        (Duration::from_millis(100), Duration::from_secs(600)),
        problems,
    );
    let mut kube_client = crate::adapters::http::config::resolve_settings(
        "kubernetes",
        &crate::adapters::http::config::EndpointFields {
            timeout: None,
            timeout_seconds: None,
            connect_timeout: None,
            retry: raw_k8s.retry.as_ref(),
            breaker: raw_k8s.breaker.as_ref(),
            max_response_bytes: raw_k8s.max_response_bytes,
            auth: None,
            tls: None,
        },
        problems,
    );
    if raw_k8s.max_response_bytes.is_none() {
        kube_client.max_response_bytes = 64 << 20;
    }
    kube_client.timeout = request_timeout;
    kube_client.connect_timeout = kube_client.timeout.min(Duration::from_secs(10));
    let watch = raw_k8s
        .watch
        .as_ref()
        .filter(|w| w.enabled != Some(false))
        .map(|w| resolve_watch(w, problems));
    KubernetesConfig {
        default_cluster,
        clusters,
        log_tail_lines,
        request_timeout,
        client: kube_client,
        watch,
    }
}

fn resolve_watch(raw: &RawWatch, problems: &mut Vec<String>) -> WatchConfig {
    let namespaces = raw.namespaces.clone().unwrap_or_else(|| vec!["*".into()]);
    if namespaces.is_empty() {
        problems.push(
            "kubernetes.watch.namespaces: the list is empty; omit it to watch every namespace"
                .into(),
        );
    }
    let mut builder = globset::GlobSetBuilder::new();
    for pattern in &namespaces {
        match globset::Glob::new(pattern) {
            Ok(g) => {
                builder.add(g);
            }
            Err(e) => problems.push(format!(
                "kubernetes.watch.namespaces: `{pattern}` is not a glob pattern ({}); e.g. `ameide-*`",
                e.kind()
            )),
        }
    }
    let matcher = builder
        .build()
        .unwrap_or_else(|_| globset::GlobSet::empty());
    let types = raw
        .resource_types
        .clone()
        .unwrap_or_else(|| vec!["pods".into(), "deployments".into(), "events".into()]);
    let mut kinds = Vec::new();
    let mut services = false;
    for t in &types {
        match t.as_str() {
            "pods" => kinds.push(WatchedKind::Pods),
            "deployments" => kinds.push(WatchedKind::Deployments),
            "events" => kinds.push(WatchedKind::WarningEvents),
            "services" => services = true,
            other => problems.push(format!(
                "kubernetes.watch.resource_types: `{other}` is not watched; expected pods, deployments, services, events"
            )),
        }
    }
    kinds.sort();
    kinds.dedup();
    let poll_interval = RawDuration::resolve_or(
        raw.poll_interval.as_ref(),
        "kubernetes.watch.poll_interval",
        Duration::from_secs(60),
        (Duration::from_millis(200), Duration::from_secs(86_400)),
        problems,
    );
    let event_window = RawDuration::resolve_or(
        raw.event_dedup_window.as_ref(),
        "kubernetes.watch.event_dedup_window",
        Duration::from_secs(600),
        (Duration::from_secs(1), Duration::from_secs(7 * 86_400)),
        problems,
    );
    let timeout = RawDuration::resolve_or(
        raw.watch_timeout.as_ref(),
        "kubernetes.watch.watch_timeout",
        Duration::from_secs(290),
        (Duration::from_secs(1), Duration::from_secs(3600)),
        problems,
    );
    let page_size = raw.page_size.unwrap_or(500);
    if !(1..=10_000).contains(&page_size) {
        problems.push(format!(
            "kubernetes.watch.page_size: {page_size} is out of range; expected 1..=10000"
        ));
    }
    WatchConfig {
        namespaces,
        matcher,
        kinds,
        services,
        poll_interval,
        event_window,
        settings: WatchSettings { timeout, page_size },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(yaml: &str) -> (Option<WatchConfig>, Vec<String>) {
        let raw: RawKubernetes = serde_yaml::from_str(yaml).expect("yaml");
        let mut problems = Vec::new();
        let config = resolve(raw, &mut problems);
        (config.watch, problems)
    }

    #[test]
    fn the_watch_is_off_unless_asked_and_has_defaults() {
        assert!(watch("{}").0.is_none());
        assert!(watch("watch: {enabled: false}").0.is_none());
        let (w, problems) = watch("watch: {}");
        assert!(problems.is_empty(), "{problems:?}");
        let w = w.expect("on");
        assert_eq!(w.namespaces, ["*"]);
        assert!(w.watches("anything"));
        assert_eq!(
            w.kinds,
            [
                WatchedKind::Pods,
                WatchedKind::Deployments,
                WatchedKind::WarningEvents
            ]
        );
        assert_eq!(w.poll_interval, Duration::from_secs(60));
        assert_eq!(w.event_window, Duration::from_secs(600));
        assert_eq!(w.settings.page_size, 500);
        let (w, _) = watch("watch: {namespaces: [shop, argocd]}");
        assert_eq!(
            w.expect("on").literal_namespaces(),
            Some(vec!["shop".to_string(), "argocd".to_string()]),
            "plain names: one watch per namespace"
        );
    }

    #[test]
    fn every_bad_watch_key_is_named() {
        let (_, problems) = watch(
            "watch: {namespaces: ['ameide-[', ok], resource_types: [pods, ingresses], poll_interval: 0s, page_size: 0}",
        );
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems[0]
                .starts_with("kubernetes.watch.namespaces: `ameide-[` is not a glob pattern"),
            "{problems:#?}"
        );
        assert_eq!(
            problems[1],
            "kubernetes.watch.resource_types: `ingresses` is not watched; expected pods, deployments, services, events"
        );
        assert!(
            problems[2].starts_with("kubernetes.watch.poll_interval: 0s is out of range"),
            "{problems:#?}"
        );
        assert_eq!(
            problems[3],
            "kubernetes.watch.page_size: 0 is out of range; expected 1..=10000"
        );
        let (_, problems) = watch("watch: {namespaces: []}");
        assert_eq!(
            problems,
            ["kubernetes.watch.namespaces: the list is empty; omit it to watch every namespace"]
        );
    }
}
