//! ArgoCD's REST API v1 on the upstream kit: applications (list with `projects` and `selector`,
//! get, resource tree, managed resources), sync (with `dryRun`) and rollback. Reads are
//! retried; sync and rollback go out once. The API token is the kit's bearer credential (it may
//! be a `secret_ref`); a `session` login (`POST /api/v1/session`) is done here, and again on a
//! 401. Also holds the poller's last outcome (`PollStatus`) for `/readyz` and metrics.
//!
//! Must not touch the core or the tools (the tools map [`ArgoCdError`] to their errors).

pub mod config;
pub mod error;
pub mod model;
pub mod poll_status;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub use config::ArgoCdConfig;
pub use error::{ArgoCdError, ErrorClass};
pub use model::{Application, HistoryEntry, ResourceDiff, ResourceNode};
pub use poll_status::{PollHealth, PollStatus};

use crate::adapters::http::{
    CallError, Credential, Health, Reply, Retry, Secret, Session, Upstream,
};

/// What `list` asks for.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// ArgoCD projects (empty: every project toolgate is configured for).
    pub projects: Vec<String>,
    /// A Kubernetes label selector (`environment=prod`).
    pub selector: Option<String>,
}

/// A sync request (`applicationApplicationSyncRequest`).
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub revision: Option<String>,
    pub prune: bool,
    pub dry_run: bool,
}

pub struct ArgoCd {
    upstream: Upstream,
    base: reqwest::Url,
    config: ArgoCdConfig,
    /// The session login's token (when `session` is configured).
    session: Session,
    poll: PollStatus,
}

impl ArgoCd {
    /// No I/O: the first request connects (and logs in).
    pub fn new(config: &ArgoCdConfig) -> Result<ArgoCd, String> {
        let upstream = Upstream::new(
            "argocd",
            "ArgoCD",
            &config.endpoint.settings,
            config.endpoint.auth.clone(),
        )
        .map_err(|e| format!("argocd: {e}"))?;
        let base = reqwest::Url::parse(&config.endpoint.url)
            .map_err(|e| format!("argocd.url: `{}` is not a URL ({e})", config.endpoint.url))?;
        Ok(ArgoCd {
            upstream,
            base,
            config: config.clone(),
            session: Session::new(),
            poll: PollStatus::default(),
        })
    }

    pub fn config(&self) -> &ArgoCdConfig {
        &self.config
    }

    /// The upstream's breaker and last results, for `/readyz`.
    pub fn health(&self) -> Health {
        self.upstream.guard().health()
    }

    /// The poller's record of its cycles.
    pub fn poll_status(&self) -> &PollStatus {
        &self.poll
    }

    pub fn breaker_open(&self) -> bool {
        self.upstream.breaker_open()
    }

    /// `/api/v1/` + `segments`, each percent-encoded, + `query`.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// `POST /api/v1/session` with the configured user: the session's token.
    async fn login(&self, username: &str, password: &Credential) -> Result<Secret, ArgoCdError> {
        let password = password
            .current()
            .await
            .map_err(|e| ArgoCdError::Unauthorized(format!("argocd.session.password: {e}")))?;
        let url = self.url(&["session"], &[]);
        let body = json!({"username": username, "password": password.expose()});
        let reply = self
            .upstream
            .send(Retry::Read, || {
                Ok(self.upstream.http().post(url.clone()).json(&body))
            })
            .await
            .map_err(down)?;
        if !reply.status.is_success() {
            return Err(ArgoCdError::Unauthorized(format!(
                "the session login as `{username}` was refused (HTTP {}): {}",
                reply.status.as_u16(),
                error::error_message(&reply.body)
            )));
        }
        serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("token").and_then(Value::as_str).map(Secret::new))
            .filter(|t| !t.expose().is_empty())
            .ok_or_else(|| ArgoCdError::BadAnswer("the session answer has no token".into()))
    }

    /// One request with the credentials: the kit's (API token) or, with a session, its token
    /// (a 401 logs in once more).
    async fn send(
        &self,
        retry: Retry,
        method: Method,
        url: &reqwest::Url,
        body: Option<&Value>,
    ) -> Result<Reply, ArgoCdError> {
        let build = |http: &reqwest::Client| {
            let request = http.request(method.clone(), url.clone());
            match body {
                Some(b) => request.json(b),
                None => request,
            }
        };
        match &self.config.session {
            Some((username, password)) => {
                self.session
                    .send(
                        &self.upstream,
                        retry,
                        || self.login(username, password),
                        build,
                        down,
                    )
                    .await
            }
            None => self
                .upstream
                .send(retry, || Ok(build(self.upstream.http())))
                .await
                .map_err(down),
        }
    }

    /// The JSON of a 2xx answer, or the error its status means.
    fn answer(reply: &Reply, action: &'static str, what: &str) -> Result<Value, ArgoCdError> {
        let s = reply.status;
        if s.is_success() {
            return serde_json::from_slice(&reply.body).map_err(|e| {
                ArgoCdError::BadAnswer(format!(
                    "HTTP {} to {action} {what} with a body that is not JSON ({e})",
                    s.as_u16()
                ))
            });
        }
        let message = error::error_message(&reply.body);
        Err(match s {
            StatusCode::NOT_FOUND => ArgoCdError::NotFound {
                what: what.to_string(),
            },
            StatusCode::FORBIDDEN => ArgoCdError::PermissionDenied {
                what: what.to_string(),
                message,
            },
            StatusCode::UNAUTHORIZED => ArgoCdError::Unauthorized(message),
            _ => ArgoCdError::Rejected {
                action,
                what: what.to_string(),
                status: s.as_u16(),
                message,
            },
        })
    }

    /// The `projects` to ask for: those asked, each within `argocd.projects` when that is set.
    fn projects_query(&self, asked: &[String]) -> Result<Vec<(&'static str, String)>, ArgoCdError> {
        let allowed = &self.config.projects;
        if let Some(outside) = asked
            .iter()
            .find(|p| !allowed.is_empty() && !allowed.contains(p))
        {
            return Err(self.outside("the asked project".into(), outside));
        }
        let projects = if asked.is_empty() { allowed } else { asked };
        Ok(projects.iter().map(|p| ("projects", p.clone())).collect())
    }

    fn outside(&self, what: String, project: &str) -> ArgoCdError {
        ArgoCdError::OutsideProjects {
            what,
            project: project.to_string(),
            allowed: self.config.projects.join(", "),
        }
    }

    /// Refuses an application outside `argocd.projects` (ArgoCD's single-application calls
    /// take no project filter).
    fn check_project(&self, name: &str, app: &Value) -> Result<(), ArgoCdError> {
        let project = app
            .pointer("/spec/project")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if self.config.projects.is_empty() || self.config.projects.iter().any(|p| p == project) {
            Ok(())
        } else {
            Err(self.outside(format!("application `{name}`"), project))
        }
    }

    /// When `argocd.projects` is set, reads the application first so one outside them is
    /// refused before anything else is asked of it.
    async fn within_projects(&self, name: &str) -> Result<(), ArgoCdError> {
        if self.config.projects.is_empty() {
            return Ok(());
        }
        self.get_json(name).await.map(|_| ())
    }

    /// `GET /api/v1/applications?projects=…&selector=…`.
    pub async fn list(&self, q: &ListQuery) -> Result<Vec<Application>, ArgoCdError> {
        let mut query = self.projects_query(&q.projects)?;
        if let Some(s) = &q.selector {
            query.push(("selector", s.clone()));
        }
        let url = self.url(&["applications"], &query);
        let reply = self.send(Retry::Read, Method::GET, &url, None).await?;
        let body = Self::answer(&reply, "list", "applications")?;
        // An empty list comes as `items: null` (Go's nil slice).
        let items = match body.get("items") {
            Some(Value::Array(items)) => items.as_slice(),
            Some(Value::Null) | None => &[],
            Some(_) => return Err(ArgoCdError::BadAnswer("`items` is not a list".into())),
        };
        Ok(items.iter().filter_map(Application::from_json).collect())
    }

    /// `GET /api/v1/applications/{name}` as JSON (the tools read more than [`Application`]).
    pub async fn get_json(&self, name: &str) -> Result<Value, ArgoCdError> {
        let url = self.url(&["applications", name], &[]);
        let reply = self.send(Retry::Read, Method::GET, &url, None).await?;
        let app = Self::answer(&reply, "read", &format!("application `{name}`"))?;
        self.check_project(name, &app)?;
        Ok(app)
    }

    pub async fn get(&self, name: &str) -> Result<Application, ArgoCdError> {
        let v = self.get_json(name).await?;
        Application::from_json(&v).ok_or_else(|| {
            ArgoCdError::BadAnswer(format!("application `{name}` has no metadata.name"))
        })
    }

    /// `GET /api/v1/applications/{name}/resource-tree`.
    pub async fn resource_tree(&self, name: &str) -> Result<Vec<ResourceNode>, ArgoCdError> {
        self.within_projects(name).await?;
        let url = self.url(&["applications", name, "resource-tree"], &[]);
        let reply = self.send(Retry::Read, Method::GET, &url, None).await?;
        let body = Self::answer(
            &reply,
            "read the resource tree of",
            &format!("application `{name}`"),
        )?;
        Ok(model::tree_nodes(&body))
    }

    /// `GET /api/v1/applications/{name}/managed-resources`: live vs target state.
    pub async fn managed_resources(&self, name: &str) -> Result<Vec<ResourceDiff>, ArgoCdError> {
        self.within_projects(name).await?;
        let url = self.url(&["applications", name, "managed-resources"], &[]);
        let reply = self.send(Retry::Read, Method::GET, &url, None).await?;
        let body = Self::answer(
            &reply,
            "read the managed resources of",
            &format!("application `{name}`"),
        )?;
        Ok(model::managed_resources(&body))
    }

    /// `POST /api/v1/applications/{name}/sync`; the application as ArgoCD answers it.
    pub async fn sync(&self, name: &str, r: &SyncRequest) -> Result<Value, ArgoCdError> {
        self.within_projects(name).await?;
        let url = self.url(&["applications", name, "sync"], &[]);
        let mut body = json!({"name": name, "prune": r.prune, "dryRun": r.dry_run});
        if let Some(rev) = &r.revision {
            body["revision"] = json!(rev);
        }
        let reply = self
            .send(Retry::Write, Method::POST, &url, Some(&body))
            .await?;
        Self::answer(&reply, "sync", &format!("application `{name}`"))
    }

    /// `POST /api/v1/applications/{name}/rollback {id}`: back to history entry `id`.
    pub async fn rollback(
        &self,
        name: &str,
        id: i64,
        prune: bool,
        dry_run: bool,
    ) -> Result<Value, ArgoCdError> {
        self.within_projects(name).await?;
        let url = self.url(&["applications", name, "rollback"], &[]);
        let body = json!({"name": name, "id": id, "prune": prune, "dryRun": dry_run});
        let reply = self
            .send(Retry::Write, Method::POST, &url, Some(&body))
            .await?;
        Self::answer(&reply, "roll back", &format!("application `{name}`"))
    }
}

fn down(e: CallError) -> ArgoCdError {
    match e {
        CallError::CircuitOpen(_) => ArgoCdError::Down(
            "circuit open after repeated failures; toolgate tries again after the breaker's cooldown"
                .into(),
        ),
        CallError::Failed(message) | CallError::RateLimited { message, .. } => {
            ArgoCdError::Down(message)
        }
    }
}
