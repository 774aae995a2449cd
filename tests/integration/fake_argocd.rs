//! A fake ArgoCD API server (in-process axum on 127.0.0.1:0) built from ArgoCD's swagger
//! (`assets/swagger.json`): `GET /api/v1/applications?projects=&selector=` → `{metadata, items}`
//! (`items: null` when empty, as Go's nil slice marshals), `GET …/{name}`, `…/resource-tree`
//! (`{nodes}`), `…/managed-resources` (`{items}` with live and target states as JSON strings),
//! `POST …/sync {name, revision, prune, dryRun}`, `POST …/rollback {name, id, prune, dryRun}`
//! (refused while automated sync is on, as ArgoCD does), `POST /api/v1/session`; errors as
//! grpc-gateway's `runtimeError` `{error, code, message}`. Bearer tokens are checked. Tests
//! move applications between health and sync states, and switch the server down (503).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const TOKEN: &str = "argocd-test-token";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    apps: BTreeMap<String, Value>,
    trees: BTreeMap<String, Value>,
    managed: BTreeMap<String, Value>,
    requests: Vec<Seen>,
    down: bool,
    /// Answer dry-run syncs with 501 (a server that does not run them).
    no_dry_run: bool,
}

#[derive(Clone)]
pub struct FakeArgo {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

/// An Application as ArgoCD answers it.
pub fn app(name: &str, env: &str, project: &str, health: &str, sync: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "argocd", "labels": {"environment": env},
                     "resourceVersion": "100"},
        "spec": {"project": project,
                 "source": {"repoURL": "https://git.example/deploy.git", "path": name, "targetRevision": "main"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": name}},
        "status": {"health": {"status": health}, "sync": {"status": sync, "revision": "1111111111111111111111111111111111111111"},
                   "history": [
                       {"id": 1, "revision": "0000000000000000000000000000000000000000", "deployedAt": "2026-12-01T10:00:00Z",
                        "deployStartedAt": "2026-12-01T09:59:50Z", "initiatedBy": {"username": "admin"}},
                       {"id": 2, "revision": "1111111111111111111111111111111111111111", "deployedAt": "2026-12-02T10:00:00Z",
                        "initiatedBy": {"automated": true}}
                   ]}
    })
}

fn error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": message, "code": code, "message": message})),
    )
        .into_response()
}

impl FakeArgo {
    pub async fn start(apps: Vec<Value>) -> FakeArgo {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let fake = FakeArgo {
            url: String::new(),
            inner: inner.clone(),
        };
        for a in apps {
            fake.put(a);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = Router::new().fallback(handle).with_state(inner);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeArgo {
            url: format!("http://{addr}"),
            ..fake
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Add or replace an application (its managed resources: a Deployment whose replicas
    /// differ when it is OutOfSync).
    pub fn put(&self, app: Value) {
        let name = app["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let out_of_sync = app["status"]["sync"]["status"] == "OutOfSync";
        let live = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": name}, "spec": {"replicas": 2}});
        let target = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": name}, "spec": {"replicas": if out_of_sync { 3 } else { 2 }}});
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": name}, "data": {"password": "c2VjcmV0LXZhbHVl"}});
        let secret_new = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": name}, "data": {"password": "bmV3LXNlY3JldA=="}});
        self.with(|i| {
            i.managed.insert(name.clone(), json!({"items": [
                {"group": "apps", "kind": "Deployment", "namespace": name, "name": name,
                 "liveState": live.to_string(), "normalizedLiveState": live.to_string(),
                 "targetState": target.to_string(), "predictedLiveState": target.to_string(),
                 "modified": out_of_sync},
                {"kind": "Secret", "namespace": name, "name": "db",
                 "liveState": secret.to_string(), "targetState": if out_of_sync { secret_new.to_string() } else { secret.to_string() },
                 "modified": out_of_sync}
            ]}));
            i.trees.insert(name.clone(), json!({"nodes": [
                {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": name, "name": name,
                 "health": {"status": app["status"]["health"]["status"]}},
                {"group": "apps", "version": "v1", "kind": "ReplicaSet", "namespace": name, "name": format!("{name}-7d4b9"),
                 "parentRefs": [{"group": "apps", "kind": "Deployment", "namespace": name, "name": name}],
                 "health": {"status": "Healthy"}},
                {"version": "v1", "kind": "Pod", "namespace": name, "name": format!("{name}-7d4b9-x1"),
                 "parentRefs": [{"group": "apps", "kind": "ReplicaSet", "namespace": name, "name": format!("{name}-7d4b9")}],
                 "health": {"status": app["status"]["health"]["status"], "message": "back-off restarting failed container"},
                 "images": ["registry.example/web:1.2"]}
            ]}));
            i.apps.insert(name, app);
        });
    }

    /// Move an application to `health` and `sync`.
    pub fn set_state(&self, name: &str, health: &str, sync: &str) {
        let app = self.with(|i| i.apps.get(name).cloned());
        if let Some(mut app) = app {
            app["status"]["health"]["status"] = json!(health);
            app["status"]["sync"]["status"] = json!(sync);
            self.put(app);
        }
    }

    pub fn set_auto_sync(&self, name: &str) {
        self.with(|i| {
            if let Some(a) = i.apps.get_mut(name) {
                a["spec"]["syncPolicy"] = json!({"automated": {"prune": true, "selfHeal": true}});
            }
        })
    }

    pub fn set_down(&self, down: bool) {
        self.with(|i| i.down = down)
    }

    pub fn refuse_dry_runs(&self) {
        self.with(|i| i.no_dry_run = true)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.with(|i| i.requests.clone())
    }

    /// Requests whose path ends with `suffix` and whose body has `dryRun` = `dry_run`.
    pub fn posts(&self, suffix: &str, dry_run: bool) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with(suffix))
            .filter(|r| r.body["dryRun"].as_bool().unwrap_or(false) == dry_run)
            .collect()
    }
}

fn selector_matches(app: &Value, selector: &str) -> bool {
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|term| match term.split_once('=') {
            Some((k, v)) => {
                app["metadata"]["labels"][k.trim_end_matches('=')].as_str()
                    == Some(v.trim_start_matches('='))
            }
            None => false,
        })
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let mut i = inner.lock().unwrap_or_else(|e| e.into_inner());
    i.requests.push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: body_json.clone(),
    });
    if i.down {
        return (StatusCode::SERVICE_UNAVAILABLE, "upstream connect error").into_response();
    }
    if parts.method == Method::POST && path == "/api/v1/session" {
        return if body_json["username"] == "admin" && body_json["password"] == "s3cret" {
            axum::Json(json!({"token": TOKEN})).into_response()
        } else {
            error(StatusCode::UNAUTHORIZED, 16, "Invalid username or password")
        };
    }
    let authorized = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    if !authorized {
        return error(StatusCode::UNAUTHORIZED, 16, "no session information");
    }
    let pairs: Vec<(String, String)> = url_pairs(&query);
    let segments: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
    match (parts.method.clone(), segments.as_slice()) {
        (Method::GET, ["applications"]) => {
            let projects: Vec<&str> = pairs
                .iter()
                .filter(|(k, _)| k == "projects")
                .map(|(_, v)| v.as_str())
                .collect();
            let selector = pairs
                .iter()
                .find(|(k, _)| k == "selector")
                .map(|(_, v)| v.clone());
            let items: Vec<Value> = i
                .apps
                .values()
                .filter(|a| {
                    projects.is_empty()
                        || projects.contains(&a["spec"]["project"].as_str().unwrap_or_default())
                })
                .filter(|a| selector.as_deref().is_none_or(|s| selector_matches(a, s)))
                .cloned()
                .collect();
            let items = if items.is_empty() {
                Value::Null
            } else {
                json!(items)
            };
            axum::Json(json!({"metadata": {"resourceVersion": "100"}, "items": items}))
                .into_response()
        }
        (method, ["applications", name, rest @ ..]) => {
            let name = name.to_string();
            let Some(app) = i.apps.get(&name).cloned() else {
                return error(
                    StatusCode::NOT_FOUND,
                    5,
                    &format!("applications.argoproj.io \"{name}\" not found"),
                );
            };
            match (method, rest) {
                (Method::GET, []) => axum::Json(app).into_response(),
                (Method::GET, ["resource-tree"]) => {
                    axum::Json(i.trees[&name].clone()).into_response()
                }
                (Method::GET, ["managed-resources"]) => {
                    axum::Json(i.managed[&name].clone()).into_response()
                }
                (Method::POST, ["sync"]) => {
                    if body_json["dryRun"] == true {
                        if i.no_dry_run {
                            return error(
                                StatusCode::NOT_IMPLEMENTED,
                                12,
                                "dry run is not supported",
                            );
                        }
                        let mut answer = app.clone();
                        answer["status"]["operationState"] = json!({"phase": "Succeeded", "message": "successfully synced (dry run)",
                            "syncResult": {"resources": [{"kind": "Deployment", "namespace": name, "name": name, "status": "Synced", "message": "deployment.apps/web configured (dry run)"}]}});
                        return axum::Json(answer).into_response();
                    }
                    if app["status"]["operationState"]["phase"] == "Running" {
                        return error(
                            StatusCode::CONFLICT,
                            9,
                            "another operation is already in progress",
                        );
                    }
                    let mut app = app;
                    app["operation"] = json!({"sync": {"revision": body_json["revision"], "prune": body_json["prune"]}});
                    app["status"]["operationState"] =
                        json!({"phase": "Running", "message": "one or more tasks are running"});
                    i.apps.insert(name, app.clone());
                    axum::Json(app).into_response()
                }
                (Method::POST, ["rollback"]) => {
                    if !app["spec"]["syncPolicy"]["automated"].is_null() {
                        return error(
                            StatusCode::BAD_REQUEST,
                            9,
                            "rollback cannot be initiated when auto-sync is enabled",
                        );
                    }
                    let id = body_json["id"].as_i64().unwrap_or_default();
                    let Some(entry) = app["status"]["history"]
                        .as_array()
                        .and_then(|h| h.iter().find(|e| e["id"] == id))
                        .cloned()
                    else {
                        return error(
                            StatusCode::BAD_REQUEST,
                            3,
                            &format!("application {name} does not have deployment with id {id}"),
                        );
                    };
                    let mut app = app;
                    if body_json["dryRun"] != true {
                        app["status"]["sync"]["revision"] = entry["revision"].clone();
                        app["status"]["operationState"] = json!({"phase": "Running"});
                        i.apps.insert(name, app.clone());
                    }
                    axum::Json(app).into_response()
                }
                _ => error(StatusCode::NOT_FOUND, 5, "Not Found"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, 5, "Not Found"),
    }
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}
