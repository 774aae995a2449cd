//! Kubernetes adapter: owns one lazily built `kube::Client` per configured cluster, each
//! cluster's discovery cache and kind resolution, and the request policy (per-request timeout,
//! retries of reads). Every request passes the upstream kit's `GuardLayer` on kube's tower
//! stack: a breaker per cluster, metrics, correlation id, byte cap. Shaping answers for a model
//! is the tools' job. A cluster whose kubeconfig is a secret reference (OpenBao) gets a new
//! client when the value read changes.

pub mod config;
pub mod discovery;
pub mod ops;
pub mod paths;
#[cfg(test)]
pub(crate) mod verifier;
pub mod watch;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::kube::Client;
use ::kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use futures::future::BoxFuture;
use tokio::sync::Mutex;

use self::config::{ClusterConfig, ClusterSource, KubernetesConfig};
use crate::adapters::http::{
    CircuitOpen, Guard, GuardLayer, Health, Retry, RetryPolicy, Secret, Settings, TimedOut,
};
pub use discovery::{KindInfo, Resolution};
pub use ops::{
    DeleteOptions, EventFilter, ExecOutcome, ExecRequest, KubeOps, ListQuery, LogQuery,
    Propagation, ServerVersion,
};
pub use paths::Resource;

/// How often a discovery miss may trigger a refetch (a new CRD shows up within this delay).
const DISCOVERY_REFRESH_MIN: Duration = Duration::from_secs(30);
/// How long one cluster's readiness probe may take (below `/readyz`'s overall 5 s).
const PROBE_LIMIT: Duration = Duration::from_secs(4);

/// Errors of the Kubernetes adapter, worded for the model that will read them.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KubeError {
    #[error("cluster `{name}` is not configured; clusters: {}", .known.join(", "))]
    UnknownCluster { name: String, known: Vec<String> },
    /// No usable client configuration (missing kubeconfig, unknown context...).
    #[error("cluster `{cluster}`: {message}")]
    Config { cluster: String, message: String },
    /// The API server answered with an error status.
    #[error("{message}")]
    Api {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("cluster `{cluster}`: the API server is unreachable: {message}")]
    Unreachable { cluster: String, message: String },
    #[error("cluster `{cluster}`: the API server did not answer within {}", human_duration(*.after))]
    Timeout { cluster: String, after: Duration },
    #[error("kind '{query}' not found{}", did_you_mean(.suggestions))]
    KindNotFound {
        query: String,
        suggestions: Vec<String>,
    },
    #[error("kind '{query}' is ambiguous: {}; pass one of these names as `kind` or set `api_version`", .candidates.join(", "))]
    AmbiguousKind {
        query: String,
        candidates: Vec<String>,
    },
    #[error("cluster `{cluster}`: {message}")]
    Other { cluster: String, message: String },
    /// A name that cannot be a path segment; nothing was sent.
    #[error("{what} '{value}' cannot be used: Kubernetes names are never empty, '.' or '..'")]
    InvalidSegment { what: String, value: String },
}

fn human_duration(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        "; use kubectl names such as pod, deployment, service, or kind.group for custom resources"
            .to_string()
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}

impl KubeError {
    /// HTTP status of an API error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            KubeError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// 410 Gone: the snapshot a continue token reads from was compacted away (reason
    /// `Expired`, after about five minutes), or a watch's resourceVersion is too old.
    pub fn is_expired(&self) -> bool {
        self.status() == Some(410)
    }
}

/// What the k8s tools may ask of Kubernetes.
pub trait Kube: Send + Sync {
    /// Configured cluster names, default first.
    fn cluster_names(&self) -> Vec<String>;
    /// The cluster used when a call names none.
    fn default_cluster(&self) -> String;
    /// Default `tail_lines` of log reads (config `kubernetes.log_tail_lines`).
    fn log_tail_lines(&self) -> i64;
    /// Whether every configured cluster answers; the error names the ones that do not.
    fn check_ready(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let problems: Vec<String> = self
                .readiness()
                .await
                .into_iter()
                .filter_map(|c| c.error)
                .collect();
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            }
        })
    }
    /// Each cluster probed once (its version endpoint), with its breaker and last results.
    fn readiness(&self) -> BoxFuture<'_, Vec<ClusterReadiness>>;
    /// A connected handle for `name` (or the default cluster): client, discovery, request policy.
    /// Clients are built on first use and cached.
    fn cluster<'a>(&'a self, name: Option<&'a str>) -> BoxFuture<'a, Result<Cluster, KubeError>>;
}

/// One cluster as `/readyz` shows it.
#[derive(Debug, Clone)]
pub struct ClusterReadiness {
    pub name: String,
    /// Why the probe failed (names the cluster); `None`: it answered.
    pub error: Option<String>,
    pub health: Option<Health>,
    /// The API server's `gitVersion` (`v1.32.1`) when it answered.
    pub version: Option<String>,
}

/// A resolved kind: what the API calls it and how to reach it.
#[derive(Debug, Clone)]
pub struct ResolvedKind {
    pub info: KindInfo,
    pub resource: ::kube::core::ApiResource,
}

impl ResolvedKind {
    pub fn namespaced(&self) -> bool {
        self.info.namespaced
    }
}

struct DiscoveryCache {
    kinds: Arc<Vec<KindInfo>>,
    fetched_at: Instant,
}

struct ClusterState {
    name: String,
    client: Client,
    timeout: Duration,
    retry: RetryPolicy,
    /// The kit's guard on this cluster's client (none for clients built elsewhere, e.g. mocks).
    guard: Option<Arc<Guard>>,
    discovery: Mutex<Option<DiscoveryCache>>,
}

/// One cluster as the tools use it. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    state: Arc<ClusterState>,
}

impl Cluster {
    /// A handle around an existing client (tests with a mocked API server use this).
    pub fn from_client(name: impl Into<String>, client: Client, timeout: Duration) -> Self {
        Self::guarded(name, client, timeout, RetryPolicy::default(), None)
    }

    fn guarded(
        name: impl Into<String>,
        client: Client,
        timeout: Duration,
        retry: RetryPolicy,
        guard: Option<Arc<Guard>>,
    ) -> Self {
        Self {
            state: Arc::new(ClusterState {
                name: name.into(),
                client,
                timeout,
                retry,
                guard,
                discovery: Mutex::new(None),
            }),
        }
    }

    /// The cluster's breaker state and last results, when its client has the kit's guard.
    pub fn health(&self) -> Option<Health> {
        self.state.guard.as_ref().map(|g| g.health())
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Whether both handles share one client (a kubeconfig that changed in OpenBao gets a new one).
    pub fn same_client(&self, other: &Cluster) -> bool {
        Arc::ptr_eq(&self.state, &other.state)
    }

    pub fn client(&self) -> Client {
        self.state.client.clone()
    }

    /// Namespace of the kubeconfig context (or the service account's); `default` otherwise.
    pub fn default_namespace(&self) -> &str {
        self.state.client.default_namespace()
    }

    pub fn timeout(&self) -> Duration {
        self.state.timeout
    }

    /// Resolve a kind as kubectl does (short names, plural, singular, Kind, `kind.group`), with
    /// an optional `api_version` to pin group/version. A miss refetches discovery at most every 30 s.
    pub async fn resolve(
        &self,
        kind: &str,
        api_version: Option<&str>,
    ) -> Result<ResolvedKind, KubeError> {
        let mut cache = self.state.discovery.lock().await;
        let mut fresh = false;
        if cache.is_none() {
            *cache = Some(self.fetch_discovery().await?);
            fresh = true;
        }
        loop {
            let kinds = match cache.as_ref() {
                Some(c) => c.kinds.clone(),
                None => return Err(self.other("discovery cache is empty")),
            };
            match discovery::resolve(&kinds, kind, api_version) {
                Resolution::Found(info) => {
                    let resource = info.api_resource();
                    return Ok(ResolvedKind { info, resource });
                }
                Resolution::Ambiguous(candidates) => {
                    return Err(KubeError::AmbiguousKind {
                        query: kind.to_string(),
                        candidates,
                    });
                }
                Resolution::NotFound(suggestions) => {
                    let stale = cache
                        .as_ref()
                        .is_some_and(|c| c.fetched_at.elapsed() >= DISCOVERY_REFRESH_MIN);
                    if fresh || !stale {
                        let query = match api_version {
                            Some(av) if !av.trim().is_empty() => format!("{kind}' in '{av}"),
                            _ => kind.to_string(),
                        };
                        return Err(KubeError::KindNotFound { query, suggestions });
                    }
                    *cache = Some(self.fetch_discovery().await?);
                    fresh = true;
                }
            }
        }
    }

    async fn fetch_discovery(&self) -> Result<DiscoveryCache, KubeError> {
        let client = self.client();
        let kinds = self.read(|| discovery::discover(&client)).await?;
        Ok(DiscoveryCache {
            kinds: Arc::new(kinds),
            fetched_at: Instant::now(),
        })
    }

    /// Run an idempotent read with the request timeout, retrying connection errors and 5xx
    /// with the kit's backoff (full jitter), as many attempts as `kubernetes.retry` says.
    pub async fn read<T, F, Fut>(&self, op: F) -> Result<T, KubeError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ::kube::Error>>,
    {
        let attempts = self.state.retry.attempts_for(Retry::Read);
        let mut attempt = 1;
        loop {
            match self.attempt(op()).await {
                Ok(v) => return Ok(v),
                Err((err, retryable)) => {
                    if !retryable || attempt >= attempts {
                        return Err(err);
                    }
                    tokio::time::sleep(self.state.retry.backoff(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Run a state-changing request with the request timeout, never retried.
    pub async fn write<T, Fut>(&self, fut: Fut) -> Result<T, KubeError>
    where
        Fut: Future<Output = Result<T, ::kube::Error>>,
    {
        self.attempt(fut).await.map_err(|(e, _)| e)
    }

    /// Like [`Cluster::write`] with a caller-chosen time limit (exec runs longer than a request).
    pub async fn run_for<T, Fut>(&self, limit: Duration, fut: Fut) -> Result<T, KubeError>
    where
        Fut: Future<Output = Result<T, ::kube::Error>>,
    {
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.classify(e).0),
            Err(_) => Err(KubeError::Timeout {
                cluster: self.name().to_string(),
                after: limit,
            }),
        }
    }

    /// One attempt: the error, and whether retrying a read could help.
    async fn attempt<T, Fut>(&self, fut: Fut) -> Result<T, (KubeError, bool)>
    where
        Fut: Future<Output = Result<T, ::kube::Error>>,
    {
        // The kit's layer limits each request to the same time and records it; this bound
        // also covers reading the answer's body.
        match tokio::time::timeout(self.state.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.classify(e)),
            Err(_) => {
                // A read that timed out is not retried: three timeouts would outlast the tool's limit.
                Err((
                    KubeError::Timeout {
                        cluster: self.name().to_string(),
                        after: self.state.timeout,
                    },
                    false,
                ))
            }
        }
    }

    fn classify(&self, e: ::kube::Error) -> (KubeError, bool) {
        let cluster = self.name().to_string();
        match e {
            ::kube::Error::Api(status) => {
                let code = status.code;
                let retryable = code >= 500 || code == 429;
                let message = if status.message.is_empty() {
                    format!(
                        "cluster `{cluster}`: the API server answered {code} {}",
                        status.reason
                    )
                } else {
                    status.message.clone()
                };
                (
                    KubeError::Api {
                        code,
                        reason: status.reason.clone(),
                        message,
                    },
                    retryable,
                )
            }
            ::kube::Error::HyperError(e) => (
                KubeError::Unreachable {
                    cluster,
                    message: e.to_string(),
                },
                true,
            ),
            ::kube::Error::Service(e) => {
                // The kit's own refusals: an open breaker is not retried (that is its point),
                // nor a request that used up its time.
                if let Some(open) = find_cause::<CircuitOpen>(e.as_ref()) {
                    return (
                        KubeError::Unreachable {
                            cluster,
                            message: open.to_string(),
                        },
                        false,
                    );
                }
                if find_cause::<TimedOut>(e.as_ref()).is_some() {
                    return (
                        KubeError::Timeout {
                            cluster,
                            after: self.state.timeout,
                        },
                        false,
                    );
                }
                (
                    KubeError::Unreachable {
                        cluster,
                        message: error_chain(e.as_ref()),
                    },
                    true,
                )
            }
            ::kube::Error::Auth(e) => (
                KubeError::Config {
                    cluster,
                    message: format!("authentication failed: {e}"),
                },
                false,
            ),
            other => (
                KubeError::Other {
                    cluster,
                    message: other.to_string(),
                },
                false,
            ),
        }
    }

    fn other(&self, message: &str) -> KubeError {
        KubeError::Other {
            cluster: self.name().to_string(),
            message: message.to_string(),
        }
    }
}

/// The first error of type `E` in a chain of sources.
fn find_cause<'a, E: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The real adapter: clients from kubeconfig / in-cluster config, built lazily.
pub struct KubeAdapter {
    config: KubernetesConfig,
    clusters: Mutex<HashMap<String, Built>>,
}

/// A cluster's client and, for a kubeconfig read from a secret reference, the digest of the
/// kubeconfig it was built from (a different value read later builds a new client).
struct Built {
    cluster: Cluster,
    kubeconfig: Option<[u8; 32]>,
}

impl KubeAdapter {
    /// No I/O here: the server must start on a machine without any kubeconfig.
    pub fn new(config: &KubernetesConfig) -> Self {
        for c in &config.clusters {
            if let ClusterSource::KubeconfigSecret { kubeconfig, .. } = &c.source {
                kubeconfig.bind();
            }
        }
        Self {
            config: config.clone(),
            clusters: Mutex::new(HashMap::new()),
        }
    }

    async fn get_or_build(&self, name: Option<&str>) -> Result<Cluster, KubeError> {
        let name = name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(&self.config.default_cluster);
        let Some(cfg) = self.config.clusters.iter().find(|c| c.name == name) else {
            return Err(KubeError::UnknownCluster {
                name: name.to_string(),
                known: self.cluster_names(),
            });
        };
        // The secret reference's cached value (read again every `openbao.refresh`).
        let secret = match &cfg.source {
            ClusterSource::KubeconfigSecret { kubeconfig, .. } => {
                Some(kubeconfig.current().await.map_err(|e| KubeError::Config {
                    cluster: name.to_string(),
                    message: e.to_string(),
                })?)
            }
            _ => None,
        };
        let digest = secret.as_ref().map(|s| {
            use sha2::Digest;
            <[u8; 32]>::from(sha2::Sha256::digest(s.expose().as_bytes()))
        });
        let mut clusters = self.clusters.lock().await;
        if let Some(built) = clusters.get(name) {
            if built.kubeconfig == digest {
                return Ok(built.cluster.clone());
            }
            tracing::info!(cluster = %name, "the cluster's kubeconfig changed in OpenBao; building a new client");
        }
        // Failures are not cached: a kubeconfig written later is picked up on the next call.
        let guard = Arc::new(Guard::new(
            format!("kubernetes/{name}"),
            format!("cluster {name}"),
            self.config.client.breaker,
        ));
        let client = build_client(cfg, secret.as_ref(), &self.config.client, guard.clone()).await?;
        let cluster = Cluster::guarded(
            name,
            client,
            self.config.request_timeout,
            self.config.client.retry,
            Some(guard),
        );
        clusters.insert(
            name.to_string(),
            Built {
                cluster: cluster.clone(),
                kubeconfig: digest,
            },
        );
        Ok(cluster)
    }
}

impl KubeAdapter {
    /// One cluster's readiness: its version endpoint within [`PROBE_LIMIT`].
    async fn probe(&self, name: String) -> ClusterReadiness {
        let probe = async {
            match self.get_or_build(Some(&name)).await {
                Ok(cluster) => {
                    let outcome = KubeOps::version(&cluster).await.map(|v| v.git_version);
                    (outcome, cluster.health())
                }
                Err(e) => (Err(e), None),
            }
        };
        let (outcome, health) = match tokio::time::timeout(PROBE_LIMIT, probe).await {
            Ok(done) => done,
            Err(_) => (
                Err(KubeError::Timeout {
                    cluster: name.clone(),
                    after: PROBE_LIMIT,
                }),
                None,
            ),
        };
        let version = outcome.as_ref().ok().cloned();
        let error = outcome.err().map(|e| {
            let text = e.to_string();
            if text.contains(&format!("`{name}`")) {
                text
            } else {
                format!("cluster `{name}`: {text}")
            }
        });
        ClusterReadiness {
            name,
            error,
            health,
            version,
        }
    }
}

impl Kube for KubeAdapter {
    fn cluster_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .config
            .clusters
            .iter()
            .map(|c| c.name.clone())
            .collect();
        if let Some(i) = names.iter().position(|n| n == &self.config.default_cluster) {
            let default = names.remove(i);
            names.insert(0, default);
        }
        names
    }

    fn default_cluster(&self) -> String {
        self.config.default_cluster.clone()
    }

    fn log_tail_lines(&self) -> i64 {
        self.config.log_tail_lines
    }

    fn readiness(&self) -> BoxFuture<'_, Vec<ClusterReadiness>> {
        // Every cluster at once, each within its own limit: one cluster that does not answer
        // must not hide the others.
        Box::pin(futures::future::join_all(
            self.cluster_names()
                .into_iter()
                .map(|name| self.probe(name)),
        ))
    }

    fn cluster<'a>(&'a self, name: Option<&'a str>) -> BoxFuture<'a, Result<Cluster, KubeError>> {
        Box::pin(self.get_or_build(name))
    }
}

/// Build a client for one configured cluster (`secret`: the kubeconfig read from its secret
/// reference), with the kit's guard as the outermost layer. Connection-level retries of kube
/// are off: the adapter retries reads itself, and never retries writes.
async fn build_client(
    cfg: &ClusterConfig,
    secret: Option<&Secret>,
    settings: &Settings,
    guard: Arc<Guard>,
) -> Result<Client, KubeError> {
    let timeout = settings.timeout;
    let cluster = cfg.name.clone();
    let config_error = |message: String| KubeError::Config {
        cluster: cluster.clone(),
        message,
    };
    let mut config = match &cfg.source {
        ClusterSource::InCluster => ::kube::Config::incluster()
            .map_err(|e| config_error(format!("in-cluster configuration is not available: {e}")))?,
        ClusterSource::Kubeconfig { path, context } => {
            let kubeconfig = read_kubeconfig(path.as_deref())
                .map_err(|e| config_error(kubeconfig_problem(path.as_deref(), &e)))?;
            from_kubeconfig(kubeconfig, context.as_deref())
                .await
                .map_err(config_error)?
        }
        ClusterSource::KubeconfigSecret {
            kubeconfig: reference,
            context,
        } => {
            // serde's message may quote the text: say only where it came from.
            let kubeconfig = secret
                .and_then(|s| Kubeconfig::from_yaml(s.expose()).ok())
                .ok_or_else(|| {
                    config_error(format!(
                        "the value of {} is not a kubeconfig (YAML with clusters, contexts and users)",
                        reference.describe()
                    ))
                })?;
            from_kubeconfig(kubeconfig, context.as_deref())
                .await
                .map_err(config_error)?
        }
        ClusterSource::Infer => match read_kubeconfig(None) {
            Ok(kubeconfig) => from_kubeconfig(kubeconfig, None)
                .await
                .map_err(config_error)?,
            Err(e) if kubeconfig_missing(&e) => ::kube::Config::incluster().map_err(|_| {
                config_error(
                    "no kubeconfig found (KUBECONFIG, ~/.kube/config) and not running in a cluster"
                        .to_string(),
                )
            })?,
            Err(e) => return Err(config_error(kubeconfig_problem(None, &e))),
        },
    };
    config.default_retry = false;
    config.connect_timeout = Some(settings.connect_timeout.min(timeout));
    let builder = ::kube::client::ClientBuilder::try_from(config)
        .map_err(|e| config_error(format!("cannot build a client: {e}")))?;
    let layer = GuardLayer::new(guard, timeout, settings.max_response_bytes);
    Ok(builder.with_layer(&layer).build())
}

fn read_kubeconfig(path: Option<&std::path::Path>) -> Result<Kubeconfig, KubeconfigError> {
    match path {
        Some(p) => Kubeconfig::read_from(p),
        None => Kubeconfig::read(),
    }
}

fn kubeconfig_missing(e: &KubeconfigError) -> bool {
    match e {
        KubeconfigError::FindPath => true,
        KubeconfigError::ReadConfig(io, _) => io.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

fn kubeconfig_problem(path: Option<&std::path::Path>, e: &KubeconfigError) -> String {
    if kubeconfig_missing(e) {
        match path {
            Some(p) => format!("kubeconfig {} not found", p.display()),
            None => "no kubeconfig found (KUBECONFIG, ~/.kube/config)".to_string(),
        }
    } else {
        format!("cannot load the kubeconfig: {e}")
    }
}

async fn from_kubeconfig(
    kubeconfig: Kubeconfig,
    context: Option<&str>,
) -> Result<::kube::Config, String> {
    if let Some(ctx) = context
        && !kubeconfig.contexts.iter().any(|c| c.name == ctx)
    {
        let names: Vec<&str> = kubeconfig
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        return Err(format!(
            "the kubeconfig has no context `{ctx}`; contexts: {}",
            names.join(", ")
        ));
    }
    let options = KubeConfigOptions {
        context: context.map(String::from),
        cluster: None,
        user: None,
    };
    ::kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| format!("cannot use the kubeconfig: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(clusters: Vec<ClusterConfig>, default: &str) -> KubernetesConfig {
        KubernetesConfig {
            default_cluster: default.into(),
            clusters,
            log_tail_lines: 500,
            request_timeout: Duration::from_secs(5),
            client: Settings::with_timeout(Duration::from_secs(5)),
            watch: None,
        }
    }

    #[tokio::test]
    async fn construction_does_no_io_and_missing_kubeconfig_is_explained() {
        let dir =
            std::env::temp_dir().join(format!("toolgate-no-kubeconfig-{}", std::process::id()));
        let adapter = KubeAdapter::new(&config(
            vec![
                ClusterConfig {
                    name: "a".into(),
                    source: ClusterSource::Kubeconfig {
                        path: Some(dir.join("nope")),
                        context: None,
                    },
                },
                ClusterConfig {
                    name: "b".into(),
                    source: ClusterSource::InCluster,
                },
            ],
            "b",
        ));
        assert_eq!(adapter.cluster_names(), vec!["b", "a"]);
        let err = adapter
            .cluster(Some("a"))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("cluster `a`") && err.contains("not found"),
            "{err}"
        );
        let err = adapter
            .cluster(Some("zzz"))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(err, "cluster `zzz` is not configured; clusters: b, a");
    }

    #[tokio::test]
    async fn unknown_context_lists_the_contexts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: one\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\ncontexts:\n- name: one\n  context: {cluster: c, user: u}\n- name: two\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {}\n",
        )
        .expect("write");
        let adapter = KubeAdapter::new(&config(
            vec![ClusterConfig {
                name: "x".into(),
                source: ClusterSource::Kubeconfig {
                    path: Some(path.clone()),
                    context: Some("three".into()),
                },
            }],
            "x",
        ));
        let err = adapter
            .cluster(None)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "cluster `x`: the kubeconfig has no context `three`; contexts: one, two"
        );

        // A good context builds without touching the network; the first request reports the failure.
        let adapter = KubeAdapter::new(&config(
            vec![ClusterConfig {
                name: "x".into(),
                source: ClusterSource::Kubeconfig {
                    path: Some(path),
                    context: Some("two".into()),
                },
            }],
            "x",
        ));
        let cluster = adapter.cluster(None).await.expect("client builds lazily");
        let err = adapter
            .check_ready()
            .await
            .expect_err("nothing listens on port 1");
        assert!(err.starts_with("cluster `x`"), "{err}");
        assert_eq!(cluster.default_namespace(), "default");
    }

    /// An API server that answers `status` to the first `failures` requests, then 200, and
    /// sleeps `delay` before every answer. Returns its URL and a request counter.
    async fn flaky_server(
        failures: usize,
        status: u16,
        delay: Duration,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                if n < failures {
                    let body = format!(r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","message":"boom {n}","reason":"x","code":{status}}}"#);
                    (http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR), body)
                } else {
                    (http::StatusCode::OK, "{}".to_string())
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (url, hits)
    }

    fn cluster_at(url: &str, timeout: Duration) -> Cluster {
        let mut config = ::kube::Config::new(url.parse().expect("url"));
        config.default_retry = false;
        Cluster::from_client("t", Client::try_from(config).expect("client"), timeout)
    }

    async fn get_text(c: &Cluster) -> Result<String, ::kube::Error> {
        c.client()
            .request_text(
                http::Request::get("/api/v1/x")
                    .body(Vec::new())
                    .expect("request"),
            )
            .await
    }

    #[tokio::test]
    async fn reads_retry_5xx_twice_writes_never() {
        use std::sync::atomic::Ordering;
        let (url, hits) = flaky_server(2, 503, Duration::ZERO).await;
        let c = cluster_at(&url, Duration::from_secs(5));
        assert_eq!(
            c.read(|| get_text(&c))
                .await
                .expect("third attempt succeeds"),
            "{}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 3);

        let (url, hits) = flaky_server(10, 500, Duration::ZERO).await;
        let c = cluster_at(&url, Duration::from_secs(5));
        let err = c.read(|| get_text(&c)).await.expect_err("always 500");
        assert_eq!(err.status(), Some(500));
        assert_eq!(err.to_string(), "boom 2");
        assert_eq!(hits.load(Ordering::SeqCst), 3);

        let (url, hits) = flaky_server(10, 503, Duration::ZERO).await;
        let c = cluster_at(&url, Duration::from_secs(5));
        assert!(c.write(get_text(&c)).await.is_err());
        assert_eq!(hits.load(Ordering::SeqCst), 1, "writes are not retried");

        let (url, hits) = flaky_server(10, 404, Duration::ZERO).await;
        let c = cluster_at(&url, Duration::from_secs(5));
        assert!(
            c.read(|| get_text(&c))
                .await
                .expect_err("404")
                .is_not_found()
        );
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "client errors are not retried"
        );
    }

    #[tokio::test]
    async fn slow_answers_time_out_without_retry() {
        use std::sync::atomic::Ordering;
        let (url, hits) = flaky_server(0, 200, Duration::from_secs(3)).await;
        let c = cluster_at(&url, Duration::from_millis(200));
        let err = c.read(|| get_text(&c)).await.expect_err("too slow");
        assert!(matches!(err, KubeError::Timeout { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "cluster `t`: the API server did not answer within 200 ms"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn unreachable_servers_are_named() {
        let c = cluster_at("http://127.0.0.1:1", Duration::from_secs(5));
        let err = c.read(|| get_text(&c)).await.expect_err("nothing listens");
        assert!(
            err.to_string()
                .starts_with("cluster `t`: the API server is unreachable: "),
            "{err}"
        );
    }
}
