//! What the k8s tools may do on one cluster: the [`KubeOps`] trait, its request and answer
//! types, and its implementation on [`Cluster`]. Every kube-rs call the tools need lives here;
//! every path is built by [`super::paths`] (percent-encoded segments), queries by kube-core's
//! parameter builders. Requests go through the cluster's request policy (`read`, `write`,
//! `run_for` in `mod.rs`), which this module must not reimplement. Shaping answers for a model
//! is the tools' job.

use std::time::Duration;

use ::kube::api::{
    Api, AttachParams, DeleteParams, GetParams, ListParams, LogParams, Patch, PatchParams,
    PropagationPolicy,
};
use ::kube::core::Request;
use ::kube::core::request::Error as RequestError;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::paths::{self, EVENTS, PODS, Resource, segment};
use super::{Cluster, KubeError, ResolvedKind};

/// Field manager of every write toolgate makes (server-side apply, restart patches).
pub const FIELD_MANAGER: &str = "toolgate";
/// The pod template annotation `kubectl rollout restart` sets (kube's `restart()` uses another).
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// Bytes kept of each of an exec's stdout and stderr; the rest is read and dropped.
pub const EXEC_OUTPUT_CAP: usize = 64 * 1024;

/// One page of a list: selectors, page size, continue token, and whether only metadata is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<u32>,
    pub continue_token: Option<String>,
    /// Ask for `PartialObjectMetadataList` (counting Secrets must not fetch their values).
    pub metadata_only: bool,
}

impl ListQuery {
    pub fn labels(mut self, selector: &str) -> Self {
        self.label_selector = Some(selector.to_string());
        self
    }

    pub fn fields(mut self, selector: &str) -> Self {
        self.field_selector = Some(selector.to_string());
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn continue_token(mut self, token: &str) -> Self {
        self.continue_token = Some(token.to_string());
        self
    }

    pub fn metadata_only(mut self) -> Self {
        self.metadata_only = true;
        self
    }

    fn params(&self) -> ListParams {
        let mut lp = ListParams::default();
        if let Some(l) = &self.label_selector {
            lp = lp.labels(l);
        }
        if let Some(f) = &self.field_selector {
            lp = lp.fields(f);
        }
        if let Some(n) = self.limit {
            lp = lp.limit(n);
        }
        if let Some(c) = &self.continue_token {
            lp = lp.continue_token(c);
        }
        lp
    }
}

/// Which part of one container's log to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub container: Option<String>,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    /// The previous (crashed) instance of the container.
    pub previous: bool,
    /// Upper bound of bytes the API server sends.
    pub limit_bytes: Option<i64>,
}

/// Which events to read: those of one involved object (any of its fields), and of one type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Kind of the involved object (`Pod`), as the API names it.
    pub kind: Option<String>,
    pub name: Option<String>,
    /// Namespace of the involved object.
    pub namespace: Option<String>,
    /// `Normal` or `Warning`.
    pub event_type: Option<String>,
}

impl EventFilter {
    /// The field selector, values escaped as the API expects (`\,` `\=` `\\`): a name cannot
    /// add a term.
    pub fn field_selector(&self) -> String {
        let terms = [
            ("involvedObject.kind", &self.kind),
            ("involvedObject.name", &self.name),
            ("involvedObject.namespace", &self.namespace),
            ("type", &self.event_type),
        ];
        terms
            .iter()
            .filter_map(|(field, v)| {
                v.as_deref()
                    .filter(|v| !v.is_empty())
                    .map(|v| format!("{field}={}", escape_selector_value(v)))
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn escape_selector_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What happens to dependents of a deleted object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Foreground,
    Background,
    Orphan,
}

/// Options of a delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// `None`: the kind's API default.
    pub propagation: Option<Propagation>,
    pub grace_period_seconds: Option<u32>,
    /// dryRun=All: checked on the server, nothing deleted.
    pub dry_run: bool,
}

/// One command to run in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub container: String,
    pub command: Vec<String>,
    /// How long the command may run, connecting included.
    pub limit: Duration,
}

/// What an exec produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutcome {
    /// The first [`EXEC_OUTPUT_CAP`] bytes of stdout.
    pub stdout: String,
    pub stderr: String,
    /// Whether stdout or stderr was cut.
    pub truncated: bool,
    /// Absent when the command could not start (then `error` says why).
    pub exit_code: Option<i32>,
    pub error: Option<String>,
}

/// The API server's `/version`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerVersion {
    pub major: String,
    pub minor: String,
    pub git_version: String,
    pub platform: String,
}

/// The operations the k8s tools need on one cluster. Tools hold `Arc<dyn KubeOps>` and never
/// see kube-rs. Objects are raw JSON as the API server sent them (Secrets included: redacting
/// is the tools' job).
pub trait KubeOps: Send + Sync {
    /// The configured cluster name.
    fn name(&self) -> &str;
    /// Namespace of the kubeconfig context (or the service account's); `default` otherwise.
    fn default_namespace(&self) -> &str;
    /// Resolve a kind as kubectl does (short names, plural, singular, Kind, `kind.group`).
    fn resolve<'a>(
        &'a self,
        kind: &'a str,
        api_version: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ResolvedKind, KubeError>>;
    /// One object.
    fn get<'a>(
        &'a self,
        resource: Resource<'a>,
        namespace: Option<&'a str>,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Value, KubeError>>;
    /// One page of a collection (`namespace` `None`: cluster-scoped, or all namespaces).
    fn list<'a>(
        &'a self,
        resource: Resource<'a>,
        namespace: Option<&'a str>,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Value, KubeError>>;
    /// One page of a collection as the text the API server sent, for callers that parse only
    /// part of it (compact rows).
    fn list_text<'a>(
        &'a self,
        resource: Resource<'a>,
        namespace: Option<&'a str>,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<String, KubeError>>;
    /// A container's log.
    fn logs<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        query: &'a LogQuery,
    ) -> BoxFuture<'a, Result<String, KubeError>>;
    /// One page of core events in `namespace` (all when `None`) matching `filter`.
    fn events<'a>(
        &'a self,
        namespace: Option<&'a str>,
        filter: &'a EventFilter,
        limit: u32,
        continue_token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Value, KubeError>>;
    /// Server-side apply of `doc` (field manager [`FIELD_MANAGER`], conflicts forced); the
    /// object as the API server returned it. Never retried.
    fn apply<'a>(
        &'a self,
        resource: Resource<'a>,
        namespace: Option<&'a str>,
        name: &'a str,
        doc: &'a Value,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Value, KubeError>>;
    /// Delete one object; the API's answer (the object while finalizers run, or a Status).
    fn delete<'a>(
        &'a self,
        resource: Resource<'a>,
        namespace: Option<&'a str>,
        name: &'a str,
        options: &'a DeleteOptions,
    ) -> BoxFuture<'a, Result<Value, KubeError>>;
    /// Run a command in a container over the exec websocket, within `request.limit`.
    fn exec<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        request: &'a ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutcome, KubeError>>;
    /// What `kubectl rollout restart` does: a merge patch stamping the pod template with
    /// [`RESTARTED_AT`] = `restarted_at`; the workload as the API server returned it.
    fn restart<'a>(
        &'a self,
        resource: Resource<'a>,
        namespace: &'a str,
        name: &'a str,
        restarted_at: &'a str,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Value, KubeError>>;
    /// The API server's version (readiness).
    fn version(&self) -> BoxFuture<'_, Result<ServerVersion, KubeError>>;
}

type Built = Result<http::Request<Vec<u8>>, RequestError>;

impl Cluster {
    /// An idempotent JSON read; `build` runs once per attempt (a request is not reusable).
    async fn read_json<T, B>(&self, build: B) -> Result<T, KubeError>
    where
        T: serde::de::DeserializeOwned,
        B: Fn() -> Built,
    {
        let client = self.client();
        self.read(|| {
            let client = client.clone();
            let req = build();
            async move {
                client
                    .request::<T>(req.map_err(::kube::Error::BuildRequest)?)
                    .await
            }
        })
        .await
    }

    async fn read_text<B>(&self, build: B) -> Result<String, KubeError>
    where
        B: Fn() -> Built,
    {
        let client = self.client();
        self.read(|| {
            let client = client.clone();
            let req = build();
            async move {
                client
                    .request_text(req.map_err(::kube::Error::BuildRequest)?)
                    .await
            }
        })
        .await
    }

    async fn write_json(&self, req: Built) -> Result<Value, KubeError> {
        let client = self.client();
        self.write(async move {
            client
                .request::<Value>(req.map_err(::kube::Error::BuildRequest)?)
                .await
        })
        .await
    }

    fn list_request(&self, path: &str, query: &ListQuery) -> Built {
        let request = Request::new(path);
        let lp = query.params();
        if query.metadata_only {
            request.list_metadata(&lp)
        } else {
            request.list(&lp)
        }
    }

    /// The command's output and exit status, within `request.limit`.
    async fn run_exec(
        &self,
        namespace: &str,
        pod: &str,
        request: &ExecRequest,
    ) -> Result<ExecOutcome, KubeError> {
        let namespace = segment("namespace", namespace)?;
        let pod = segment("pod", pod)?;
        // kube's `Api` joins the segments it is given as they are: they are encoded above.
        let api: Api<Pod> = Api::namespaced(self.client(), &namespace);
        let ap = AttachParams::default()
            .container(request.container.clone())
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let run = async {
            let mut process = api.exec(&pod, request.command.clone(), &ap).await?;
            let status = process.take_status();
            let (stdout, stderr) =
                tokio::join!(read_capped(process.stdout()), read_capped(process.stderr()));
            let status = match status {
                Some(s) => s.await,
                None => None,
            };
            let _ = process.join().await;
            Ok::<_, ::kube::Error>((
                stdout.map_err(::kube::Error::ReadEvents)?,
                stderr.map_err(::kube::Error::ReadEvents)?,
                status,
            ))
        };
        let ((stdout, cut_out), (stderr, cut_err), status) =
            self.run_for(request.limit, run).await?;
        let (exit_code, error) = exit_code(status.as_ref());
        Ok(ExecOutcome {
            stdout,
            stderr,
            truncated: cut_out || cut_err,
            exit_code,
            error,
        })
    }
}

impl KubeOps for Cluster {
    fn name(&self) -> &str {
        Cluster::name(self)
    }

    fn default_namespace(&self) -> &str {
        Cluster::default_namespace(self)
    }

    fn resolve<'a>(
        &'a self,
        kind: &'a str,
        api_version: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ResolvedKind, KubeError>> {
        Box::pin(Cluster::resolve(self, kind, api_version))
    }

    fn get<'a>(
        &'a self,
        resource: Resource<'a>,
        namespace: Option<&'a str>,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Value, KubeError>> {
        Box::pin(async move {
            let path = paths::collection(resource, namespace)?;
            let name = segment("name", name)?;
            self.read_json(|| Request::new(path.as_str()).get(&name, &GetParams::default()))
                .await
        })
    }

    fn list<'a>(
        &'a self,
        resource: Resource<'a>,
        namespace: Option<&'a str>,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Value, KubeError>> {
        Box::pin(async move {
            let path = paths::collection(resource, namespace)?;
            self.read_json(|| self.list_request(&path, query)).await
        })
    }

    fn list_text<'a>(
        &'a self,
        resource: Resource<'a>,
        namespace: Option<&'a str>,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<String, KubeError>> {
        Box::pin(async move {
            let path = paths::collection(resource, namespace)?;
            self.read_text(|| self.list_request(&path, query)).await
        })
    }

    fn logs<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        query: &'a LogQuery,
    ) -> BoxFuture<'a, Result<String, KubeError>> {
        Box::pin(async move {
            let path = paths::collection(PODS, Some(namespace))?;
            let pod = segment("pod", pod)?;
            let lp = LogParams {
                container: query.container.clone(),
                tail_lines: query.tail_lines,
                since_seconds: query.since_seconds,
                previous: query.previous,
                limit_bytes: query.limit_bytes,
                ..LogParams::default()
            };
            self.read_text(|| Request::new(path.as_str()).logs(&pod, &lp))
                .await
        })
    }

    fn events<'a>(
        &'a self,
        namespace: Option<&'a str>,
        filter: &'a EventFilter,
        limit: u32,
        continue_token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Value, KubeError>> {
        Box::pin(async move {
            let mut query = ListQuery::default().limit(limit);
            let selector = filter.field_selector();
            if !selector.is_empty() {
                query = query.fields(&selector);
            }
            if let Some(t) = continue_token.filter(|t| !t.is_empty()) {
                query = query.continue_token(t);
            }
            KubeOps::list(self, EVENTS, namespace, &query).await
        })
    }

    fn apply<'a>(
        &'a self,
        resource: Resource<'a>,
        namespace: Option<&'a str>,
        name: &'a str,
        doc: &'a Value,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Value, KubeError>> {
        Box::pin(async move {
            let path = paths::collection(resource, namespace)?;
            let name = segment("name", name)?;
            let mut pp = PatchParams::apply(FIELD_MANAGER).force();
            if dry_run {
                pp = pp.dry_run();
            }
            self.write_json(Request::new(path).patch(&name, &pp, &Patch::Apply(doc)))
                .await
        })
    }

    fn delete<'a>(
        &'a self,
        resource: Resource<'a>,
        namespace: Option<&'a str>,
        name: &'a str,
        options: &'a DeleteOptions,
    ) -> BoxFuture<'a, Result<Value, KubeError>> {
        Box::pin(async move {
            let path = paths::collection(resource, namespace)?;
            let name = segment("name", name)?;
            let dp = DeleteParams {
                dry_run: options.dry_run,
                grace_period_seconds: options.grace_period_seconds,
                propagation_policy: options.propagation.map(|p| match p {
                    Propagation::Foreground => PropagationPolicy::Foreground,
                    Propagation::Background => PropagationPolicy::Background,
                    Propagation::Orphan => PropagationPolicy::Orphan,
                }),
                preconditions: None,
            };
            self.write_json(Request::new(path).delete(&name, &dp)).await
        })
    }

    fn exec<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        request: &'a ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutcome, KubeError>> {
        Box::pin(self.run_exec(namespace, pod, request))
    }

    fn restart<'a>(
        &'a self,
        resource: Resource<'a>,
        namespace: &'a str,
        name: &'a str,
        restarted_at: &'a str,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Value, KubeError>> {
        Box::pin(async move {
            let path = paths::collection(resource, Some(namespace))?;
            let name = segment("name", name)?;
            let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: restarted_at}}}}});
            let mut pp = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            };
            if dry_run {
                pp = pp.dry_run();
            }
            self.write_json(Request::new(path).patch(&name, &pp, &Patch::Merge(&patch)))
                .await
        })
    }

    fn version(&self) -> BoxFuture<'_, Result<ServerVersion, KubeError>> {
        Box::pin(self.read_json(|| {
            http::Request::get("/version")
                .body(Vec::new())
                .map_err(RequestError::BuildRequest)
        }))
    }
}

/// Read a stream to its end, keeping the first [`EXEC_OUTPUT_CAP`] bytes.
async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>) -> std::io::Result<(String, bool)> {
    let Some(mut reader) = reader else {
        return Ok((String::new(), false));
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut truncated = false;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let room = EXEC_OUTPUT_CAP.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        truncated |= n > room;
    }
    Ok((String::from_utf8_lossy(&kept).into_owned(), truncated))
}

/// Exit code from the exec status channel: Success → 0, NonZeroExitCode → its cause; a failure
/// without an exit code (command not found…) → its message.
fn exit_code(status: Option<&Status>) -> (Option<i32>, Option<String>) {
    let Some(s) = status else {
        return (None, Some("the API server sent no exit status".into()));
    };
    if s.status.as_deref() == Some("Success") {
        return (Some(0), None);
    }
    let code = s
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.trim().parse::<i32>().ok());
    match code {
        Some(c) => (Some(c), None),
        None => (
            None,
            Some(
                s.message
                    .clone()
                    .unwrap_or_else(|| "the command failed to run".into()),
            ),
        ),
    }
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
