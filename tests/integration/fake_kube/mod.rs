//! A protocol-faithful fake Kubernetes API server (in-process axum on 127.0.0.1:0) that the real
//! `kubectl` and kube-rs clients work against. See `objects` for seed builders.
#![allow(dead_code)]

mod access_review;
mod apply;
#[cfg(test)]
mod client_tests;
mod delete;
mod discovery;
mod exec;
mod handlers;
mod lifecycle;
mod logs;
pub mod objects;
mod patch;
mod registry;
mod selectors;
mod status;
mod store;
mod table;
mod token_review;
mod watch;
#[cfg(test)]
mod wire_tests;
mod write;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Value, json};
use tempfile::TempDir;

use handlers::Target;
use status::{ApiError, ApiResult};
pub use store::{ExecRecord, RecordedRequest};
use store::{Inner, meta_str};

/// Shared server state.
pub struct Shared {
    inner: Mutex<Inner>,
    /// Set: every request is recorded and answered with this status (a `Status` object).
    failing: Mutex<Option<u16>>,
    /// Bumped to end every open watch stream.
    watch_cut: tokio::sync::watch::Sender<u64>,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    bookmark_every: Mutex<std::time::Duration>,
}

impl Shared {
    fn bookmark_interval(&self) -> std::time::Duration {
        *self
            .bookmark_every
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Decoded query parameters (repeated keys kept in order).
pub struct Params(Vec<(String, String)>);

impl Params {
    fn parse(uri: &axum::http::Uri) -> Result<Self, ApiError> {
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|q| Self(q.0))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }

    /// `dryRun=All`
    pub fn dry_run(&self) -> bool {
        self.all("dryRun").contains(&"All")
    }
}

/// A request as the handlers see it.
pub struct Req {
    pub method: Method,
    pub params: Params,
    pub accept: String,
    pub content_type: String,
    pub user_agent: String,
    pub body: Bytes,
}

/// The fake API server. Dropping it stops the server and removes the kubeconfig.
pub struct FakeKube {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// A kubeconfig with context `fake` (cluster server = `url`, namespace `default`).
    pub kubeconfig: PathBuf,
    shared: Arc<Shared>,
    dir: TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.server.abort();
    }
}

const SEED_APPS: &[&str] = &["web", "api", "worker", "cache"];

impl FakeKube {
    /// Starts an empty cluster with namespaces `default`, `kube-system` and `kube-public`.
    pub async fn start() -> FakeKube {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::new()),
            failing: Mutex::new(None),
            watch_cut: tokio::sync::watch::channel(0).0,
            bookmark_every: Mutex::new(std::time::Duration::from_secs(1)),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let app = Router::new().fallback(handle).with_state(shared.clone());
        // Like a real API server (Go's net/http): no Nagle delay on answers.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let url = format!("http://{addr}");
        let dir = tempfile::tempdir().expect("tempdir for kubeconfig");
        let kubeconfig = dir.path().join("kubeconfig");
        let cfg = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\n"
        );
        std::fs::write(&kubeconfig, cfg).expect("write kubeconfig");
        let fake = FakeKube {
            addr,
            url,
            kubeconfig,
            shared,
            dir,
            server,
        };
        for ns in ["default", "kube-system", "kube-public"] {
            fake.insert(objects::namespace(ns));
            fake.insert(objects::serviceaccount(ns, "default"));
        }
        fake
    }

    /// A kube-rs client for the fake (via the generated kubeconfig).
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .expect("kube config from kubeconfig");
        kube::Client::try_from(cfg).expect("kube client")
    }

    /// A directory owned by the fake, for tests to put files (kubectl cache, manifests) in.
    pub fn temp_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stores any object with apiVersion/kind/metadata as-is (no defaulting or status
    /// simulation), filling uid, creationTimestamp, generation and a fresh resourceVersion, and
    /// creating its namespace if missing. Panics on a type the fake does not serve.
    pub fn insert(&self, mut obj: Value) {
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let rt = registry::by_kind(api_version, kind).unwrap_or_else(|| {
            panic!("FakeKube::insert: the fake does not serve {api_version} {kind}")
        });
        assert!(
            !meta_str(&obj, "name").is_empty(),
            "FakeKube::insert: metadata.name is required"
        );
        write::stamp_new(rt, &mut obj);
        let mut inner = self.shared.lock();
        if rt.namespaced {
            if meta_str(&obj, "namespace").is_empty() {
                obj["metadata"]["namespace"] = json!("default");
            }
            let ns = meta_str(&obj, "namespace").to_string();
            if !inner.namespace_exists(&ns)
                && let Some(ns_rt) = registry::by_kind("v1", "Namespace")
            {
                let mut nso = objects::namespace(&ns);
                write::stamp_new(ns_rt, &mut nso);
                inner.put(ns_rt, nso);
            }
        }
        inner.put(rt, obj);
    }

    /// An object as stored (with apiVersion/kind), if present.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let rt = registry::by_kind(api_version, kind)?;
        self.shared
            .lock()
            .get(rt, namespace.unwrap_or(""), name)
            .map(|o| handlers::typed(rt, o))
    }

    /// Objects of a kind (all namespaces when `namespace` is `None`), in namespace/name order.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(rt) = registry::by_kind(api_version, kind) else {
            return Vec::new();
        };
        self.shared
            .lock()
            .list(rt, namespace)
            .into_iter()
            .map(|o| handlers::typed(rt, o))
            .collect()
    }

    /// Seeds `n` running pods spread round-robin over `namespaces`, each owned by a ReplicaSet
    /// owned by a Deployment (one per namespace and app: web, api, worker, cache), plus nodes
    /// `node-1..3`. Every 7th pod has 2 restarts. Names are unique across calls.
    pub fn seed_pods(&self, n: usize, namespaces: &[&str]) {
        assert!(
            !namespaces.is_empty(),
            "seed_pods needs at least one namespace"
        );
        for i in 1..=3 {
            let name = format!("node-{i}");
            if self.get("v1", "Node", None, &name).is_none() {
                self.insert(objects::node(&name));
            }
        }
        let mut groups: Vec<((String, &str), usize)> = Vec::new();
        for i in 0..n {
            let key = (
                namespaces[i % namespaces.len()].to_string(),
                SEED_APPS[(i / namespaces.len()) % SEED_APPS.len()],
            );
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, c)) => *c += 1,
                None => groups.push((key, 1)),
            }
        }
        let mut index = 0usize;
        for ((ns, app), count) in groups {
            let (_, rs) = self.ensure_workload(&ns, app, i64::try_from(count).unwrap_or(0));
            let hash = rs
                .pointer("/metadata/labels/pod-template-hash")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            for _ in 0..count {
                let seq = {
                    let mut inner = self.shared.lock();
                    inner.seq += 1;
                    inner.seq
                };
                let name = format!(
                    "{app}-{hash}-{}",
                    objects::suffix(&format!("{ns}/{app}/{seq}"), 5)
                );
                let mut pod =
                    objects::with_labels(objects::pod(&ns, &name), &[("pod-template-hash", &hash)]);
                pod["metadata"]["labels"]["app"] = json!(app);
                pod["metadata"]["generateName"] = json!(format!("{app}-{hash}-"));
                pod["spec"]["nodeName"] = json!(format!("node-{}", 1 + index % 3));
                pod["status"]["hostIP"] = json!(format!("10.0.0.{}", 11 + index % 3));
                if index % 7 == 6 {
                    let c = &mut pod["status"]["containerStatuses"][0];
                    c["restartCount"] = json!(2);
                    c["lastState"] = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": objects::ago(1500), "finishedAt": objects::ago(1200)}});
                }
                self.insert(objects::owned_by(pod, &rs));
                index += 1;
            }
        }
    }

    /// Finds or creates Deployment `app` and its ReplicaSet in `ns`, adding `extra` replicas.
    fn ensure_workload(&self, ns: &str, app: &str, extra: i64) -> (Value, Value) {
        let existing = self.get("apps/v1", "Deployment", Some(ns), app);
        let rs_existing = self
            .list("apps/v1", "ReplicaSet", Some(ns))
            .into_iter()
            .find(|r| r.pointer("/metadata/labels/app").and_then(Value::as_str) == Some(app));
        match (existing, rs_existing) {
            (Some(mut d), Some(mut rs)) => {
                for o in [&mut d, &mut rs] {
                    let n = o
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                        + extra;
                    o["spec"]["replicas"] = json!(n);
                    let kind = o["kind"].as_str().unwrap_or("").to_string();
                    o["status"] = lifecycle::workload_status(&kind, n, 1);
                }
                self.insert(d.clone());
                self.insert(rs.clone());
                (d, rs)
            }
            _ => {
                let d = objects::deployment(ns, app, extra);
                let hash = objects::suffix(&format!("{ns}/{app}"), 10);
                let rs = objects::owned_by(
                    objects::replicaset(ns, &format!("{app}-{hash}"), app, &hash, extra),
                    &d,
                );
                self.insert(d.clone());
                self.insert(rs.clone());
                (d, rs)
            }
        }
    }

    /// Seeds Deployment `name` with a ReplicaSet and `replicas` running pods (owner chain wired);
    /// returns the deployment.
    pub fn seed_deployment(&self, ns: &str, name: &str, replicas: usize) -> Value {
        let d = objects::deployment(ns, name, i64::try_from(replicas).unwrap_or(0));
        let hash = objects::suffix(&format!("{ns}/{name}"), 10);
        let rs = objects::owned_by(
            objects::replicaset(
                ns,
                &format!("{name}-{hash}"),
                name,
                &hash,
                i64::try_from(replicas).unwrap_or(0),
            ),
            &d,
        );
        self.insert(d.clone());
        self.insert(rs.clone());
        for i in 0..replicas {
            let pod_name = format!(
                "{name}-{hash}-{}",
                objects::suffix(&format!("{ns}/{name}/{i}"), 5)
            );
            let mut pod =
                objects::with_labels(objects::pod(ns, &pod_name), &[("pod-template-hash", &hash)]);
            pod["metadata"]["labels"]["app"] = json!(name);
            self.insert(objects::owned_by(pod, &rs));
        }
        d
    }

    /// Sets the log lines of a container (`previous` = the last terminated instance).
    pub fn set_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        lines: Vec<(Timestamp, String)>,
        previous: bool,
    ) {
        let key = (
            namespace.to_string(),
            pod.to_string(),
            container.to_string(),
            previous,
        );
        self.shared.lock().logs.insert(key, lines.into());
    }

    /// Sets log lines timestamped one second apart, the last one now.
    pub fn set_log_lines(&self, namespace: &str, pod: &str, container: &str, lines: &[&str]) {
        let now = Timestamp::now();
        let count = i64::try_from(lines.len()).unwrap_or(0);
        let stamped = lines
            .iter()
            .zip(0i64..)
            .map(|(l, i)| {
                let ts = now
                    .checked_sub(jiff::SignedDuration::from_secs(count - 1 - i))
                    .unwrap_or(now);
                (ts, (*l).to_string())
            })
            .collect();
        self.set_logs(namespace, pod, container, stamped, false);
    }

    /// Compacts the store's history as etcd does every few minutes: continue tokens of lists
    /// begun before this call are answered 410 Expired.
    pub fn compact(&self) {
        self.shared.lock().compact();
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Requests with this method whose path contains `path_contains`.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.method == method && r.path.contains(path_contains))
            .count()
    }

    /// Finished exec sessions, in order.
    pub fn execs(&self) -> Vec<ExecRecord> {
        self.shared.lock().execs.clone()
    }

    /// From now on answer every request with `status` as an API server that is failing or
    /// overloaded does (a `Status` object: 503 ServiceUnavailable, 500 InternalError, 429
    /// TooManyRequests); `None` ends it.
    pub fn fail_every_request_with(&self, status: Option<u16>) {
        *self
            .shared
            .failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = status;
    }

    /// Changes a stored object with `change` and stores it with a fresh resourceVersion;
    /// watchers see MODIFIED. Panics when the object does not exist.
    pub fn modify(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Value {
        self.change(api_version, kind, namespace, name, change, true)
    }

    /// Same, but no watcher hears of it (a watch event lost on the way): only a list shows it.
    pub fn modify_unwatched(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Value {
        self.change(api_version, kind, namespace, name, change, false)
    }

    fn change(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        change: impl FnOnce(&mut Value),
        watched: bool,
    ) -> Value {
        let rt = registry::by_kind(api_version, kind).unwrap_or_else(|| {
            panic!("FakeKube::modify: the fake does not serve {api_version} {kind}")
        });
        let mut inner = self.shared.lock();
        let mut obj = inner
            .get(rt, namespace.unwrap_or(""), name)
            .cloned()
            .unwrap_or_else(|| panic!("FakeKube::modify: no {kind} {name}"));
        change(&mut obj);
        if watched {
            inner.put(rt, obj)
        } else {
            inner.put_unwatched(rt, obj)
        }
    }

    /// Ends every open watch stream (the client must watch again from its last resourceVersion).
    pub fn drop_watches(&self) {
        self.shared.watch_cut.send_modify(|n| *n += 1);
    }

    /// How often watches that allow bookmarks get one (default 1 s).
    pub fn set_bookmark_interval(&self, every: std::time::Duration) {
        *self
            .shared
            .bookmark_every
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = every;
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().current_rv()
    }
}

fn header_str(parts: &axum::http::request::Parts, name: header::HeaderName) -> String {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => return ApiError::bad_request(format!("reading body: {e}")).into_response(),
    };
    let opt = |s: String| if s.is_empty() { None } else { Some(s) };
    shared.lock().requests.push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        accept: opt(header_str(&parts, header::ACCEPT)),
        content_type: opt(header_str(&parts, header::CONTENT_TYPE)),
        user_agent: opt(header_str(&parts, header::USER_AGENT)),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let failing = *shared
        .failing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(code) = failing {
        let reason = match code {
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        return ApiError::new(
            code,
            reason,
            format!("the server is currently unable to handle the request ({reason})"),
        )
        .into_response();
    }
    let params = match Params::parse(&parts.uri) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let req = Req {
        method: parts.method.clone(),
        params,
        accept: header_str(&parts, header::ACCEPT),
        content_type: header_str(&parts, header::CONTENT_TYPE),
        user_agent: header_str(&parts, header::USER_AGENT),
        body,
    };
    let path = parts.uri.path().to_string();
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let is_exec = segs.last() == Some(&"exec");
    let ws = if is_exec {
        WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .ok()
    } else {
        None
    };
    // A bug in the fake must surface as a 500 Status, not as a dropped connection.
    let routed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        route(shared, &segs, req, ws)
    }));
    match routed {
        Ok(result) => result.unwrap_or_else(IntoResponse::into_response),
        Err(_) => ApiError::new(
            500,
            "InternalError",
            "Internal error occurred: the fake API server panicked (see test output)",
        )
        .into_response(),
    }
}

fn route(shared: Arc<Shared>, segs: &[&str], req: Req, ws: Option<WebSocketUpgrade>) -> ApiResult {
    let get = req.method == Method::GET;
    match segs {
        ["version"] if get => Ok(discovery::version()),
        ["healthz" | "livez" | "readyz"] if get => {
            Ok(([(header::CONTENT_TYPE, "text/plain")], "ok").into_response())
        }
        ["api"] if get => Ok(discovery::core_versions(&req.accept)),
        ["apis"] if get => Ok(discovery::groups(&req.accept)),
        ["apis", group] if get => discovery::group(group),
        ["api", version] if get => discovery::resource_list("", version),
        ["apis", group, version] if get => discovery::resource_list(group, version),
        ["openapi", "v3"] if get => Ok(discovery::openapi_v3_index()),
        ["openapi", "v3", rest @ ..] if get => discovery::openapi_v3_doc(&rest.join("/")),
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
        ] => {
            if req.method == Method::POST {
                access_review::create(&req)
            } else {
                Err(ApiError::method_not_allowed())
            }
        }
        ["apis", "authentication.k8s.io", "v1", "tokenreviews"] => {
            if req.method == Method::POST {
                token_review::create(&shared, &req)
            } else {
                Err(ApiError::method_not_allowed())
            }
        }
        ["api", version, rest @ ..] => resource(shared, "", version, rest, req, ws),
        ["apis", group, version, rest @ ..] => resource(shared, group, version, rest, req, ws),
        _ => Err(ApiError::no_route()),
    }
}

fn resource(
    shared: Arc<Shared>,
    group: &str,
    version: &str,
    rest: &[&str],
    req: Req,
    ws: Option<WebSocketUpgrade>,
) -> ApiResult {
    let namespaced_path = rest.len() >= 3
        && rest[0] == "namespaces"
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    let (ns, rest) = if namespaced_path {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_string()), None),
        [plural, name, sub] => (*plural, Some((*name).to_string()), Some((*sub).to_string())),
        _ => return Err(ApiError::no_route()),
    };
    let rt = handlers::resolve(group, version, plural)?;
    if (ns.is_some() && !rt.namespaced) || (rt.namespaced && ns.is_none() && name.is_some()) {
        return Err(ApiError::no_route());
    }
    if let Some(s) = &sub
        && !rt.has_subresource(s)
    {
        return Err(ApiError::no_route());
    }
    let t = Target { rt, ns, name, sub };
    let m = &req.method;
    match (t.name.as_deref(), t.sub.as_deref()) {
        (None, _) if *m == Method::GET && req.params.flag("watch") => {
            watch::watch(shared, &t, &req)
        }
        (None, _) if *m == Method::GET => handlers::list(&shared, &t, &req),
        (None, _) if *m == Method::POST => write::create(&shared, &t, &req),
        (None, _) if *m == Method::DELETE => delete::delete_collection(&shared, &t, &req),
        (Some(name), Some("log")) if *m == Method::GET => {
            logs::logs(&shared, t.ns.as_deref().unwrap_or(""), name, &req.params)
        }
        (Some(name), Some("exec")) if *m == Method::GET || *m == Method::POST => exec::exec(
            shared.clone(),
            t.ns.as_deref().unwrap_or(""),
            name,
            &req.params,
            ws,
        ),
        (Some(_), Some("log" | "exec")) => Err(ApiError::method_not_allowed()),
        (Some(_), _) if *m == Method::GET => handlers::get(&shared, &t, &req),
        (Some(_), _) if *m == Method::PUT => write::update(&shared, &t, &req),
        (Some(_), _) if *m == Method::PATCH => write::patch(&shared, &t, &req),
        (Some(_), None) if *m == Method::DELETE => delete::delete(&shared, &t, &req),
        _ => Err(ApiError::method_not_allowed()),
    }
}
