//! A2A (agent-to-agent protocol) over JSON-RPC at `/a2a`, a thin adapter over the dispatch core.
//!
//! Version 1.0 (header `A2A-Version: 1.0`): `SendMessage`, `SendStreamingMessage` (SSE),
//! `GetTask`, `ListTasks`, `CancelTask`, `SubscribeToTask` (SSE). Version 0.3 (no header, or
//! `0.3`): `message/send`, `message/stream`, `tasks/get`, `tasks/cancel`, `tasks/resubscribe`.
//! Another version → -32009. Errors travel as JSON-RPC errors with HTTP 200 (clients read the
//! body only on 2xx), except those of the shared auth layer (401/403/503) and an over-size body.
//!
//! The agent card is served at `/.well-known/agent-card.json` without authentication.

mod card;
mod tasks;
mod wire;

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::auth::caller::Caller;
use crate::auth::layer::AuthLayer;
use crate::core::principal::Principal;
use crate::core::{TaskQuery, TaskRecord};
use crate::transport::http::AppState;
use crate::transport::jsonrpc::{
    INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, RATE_LIMITED, RpcError,
    error_response, json_response, read_json,
};

pub use tasks::TRANSPORT;
use tasks::TaskError;
use wire::{Render, TaskState, Version};

pub const TASK_NOT_FOUND: i64 = -32001;
pub const TASK_NOT_CANCELABLE: i64 = -32002;
pub const PUSH_NOT_SUPPORTED: i64 = -32003;
pub const UNSUPPORTED_OPERATION: i64 = -32004;
pub const VERSION_NOT_SUPPORTED: i64 = -32009;

/// Default and largest page of ListTasks.
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 100;
/// How often an open stream re-reads its task when no change was announced in this process
/// (changes made by another replica, or by the expiry sweeper of another process).
const POLL: Duration = Duration::from_secs(2);

const V1_METHODS: [&str; 6] = [
    "SendMessage",
    "SendStreamingMessage",
    "GetTask",
    "ListTasks",
    "CancelTask",
    "SubscribeToTask",
];
const V03_METHODS: [&str; 5] = [
    "message/send",
    "message/stream",
    "tasks/get",
    "tasks/cancel",
    "tasks/resubscribe",
];

/// `/a2a` behind the shared authentication layer, and the public agent card.
pub fn routes(auth: AuthLayer, shutdown: CancellationToken) -> Router<AppState> {
    let a2a = Router::new()
        .route(
            "/a2a",
            post(move |s: State<AppState>, caller: Caller, req: Request| {
                handle(s, caller, req, shutdown.clone())
            }),
        )
        .route_layer(auth);
    Router::new()
        .route("/.well-known/agent-card.json", get(agent_card))
        .merge(a2a)
}

async fn agent_card(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (body, etag) = card::card(&state.config, state.dispatcher.registry());
    let cache = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, "public, max-age=300".to_string()),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(header::CONTENT_TYPE, "application/json".to_string())],
        body,
    )
        .into_response()
}

/// An A2A error: the code, a message naming the problem, and data (google.rpc.ErrorInfo in
/// 1.0, a plain object in 0.3).
fn a2a_error(version: Version, code: i64, reason: &str, message: String, meta: Value) -> RpcError {
    let data = match version {
        Version::V1 => {
            let metadata: Map<String, Value> = meta
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                            (k.clone(), Value::String(s))
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "a2a-protocol.org",
                "metadata": metadata,
            }])
        }
        Version::V03 => meta,
    };
    RpcError::new(code, message).with_data(data)
}

fn task_error(version: Version, err: TaskError) -> RpcError {
    match err {
        TaskError::NotFound(id) => a2a_error(
            version,
            TASK_NOT_FOUND,
            "TASK_NOT_FOUND",
            format!("Task not found: no task `{id}` of yours"),
            json!({"taskId": id}),
        ),
        TaskError::NotCancelable(state) => a2a_error(
            version,
            TASK_NOT_CANCELABLE,
            "TASK_NOT_CANCELABLE",
            format!(
                "Task cannot be canceled: it is {}; only a task waiting for approval \
                 (AUTH_REQUIRED) can be",
                state.v03_name()
            ),
            json!({"state": match version { Version::V1 => state.v1_name(), Version::V03 => state.v03_name() }}),
        ),
        TaskError::Store(detail) => {
            RpcError::new(INTERNAL_ERROR, "Internal error: the task store failed")
                .with_data(json!({"detail": detail}))
        }
    }
}

fn invalid_params(message: String, expected: Value) -> RpcError {
    RpcError::new(INVALID_PARAMS, format!("Invalid params: {message}"))
        .with_data(json!({"expected": expected}))
}

fn rpc_ok(id: &Value, result: Value) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
    )
}

/// A task whose call a rate limit refused: 429 with `Retry-After`, and a JSON-RPC error naming
/// the limit, the wait and the (failed) task.
fn rate_limited(version: Version, id: &Value, task: &TaskRecord, seconds: u64) -> Response {
    let data = task.status.get("data").cloned().unwrap_or(Value::Null);
    let text = task
        .status
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or("rate limit passed; retry later")
        .to_string();
    let err = a2a_error(
        version,
        RATE_LIMITED,
        "RATE_LIMITED",
        text,
        json!({
            "taskId": task.id,
            "limit": data.get("limit").cloned().unwrap_or(Value::Null),
            "retry_after_seconds": seconds,
        }),
    );
    let mut res = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &error_response(id.clone(), &err),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    res
}

fn rpc_err(id: &Value, err: &RpcError) -> Response {
    json_response(StatusCode::OK, &error_response(id.clone(), err))
}

async fn handle(
    State(state): State<AppState>,
    Caller { principal, .. }: Caller,
    req: Request,
    shutdown: CancellationToken,
) -> Response {
    let header = req
        .headers()
        .get("a2a-version")
        .map(|v| v.to_str().unwrap_or("<not text>").to_string());
    let body = match read_json(req.into_body()).await {
        Ok(v) => v,
        Err((status, err)) => return json_response(status, &error_response(Value::Null, &err)),
    };
    // The envelope: one request object (A2A defines no batches).
    let Value::Object(mut obj) = body else {
        let err = RpcError::new(
            INVALID_REQUEST,
            "Invalid Request: the body must be one JSON-RPC 2.0 request object (A2A has no batches)",
        );
        return rpc_err(&Value::Null, &err);
    };
    let id = match obj.remove("id") {
        Some(v @ (Value::String(_) | Value::Number(_))) => v,
        Some(Value::Null) | None => {
            let err = RpcError::new(
                INVALID_REQUEST,
                "Invalid Request: `id` (a string or number) is missing; A2A requests are not notifications",
            );
            return rpc_err(&Value::Null, &err);
        }
        Some(other) => {
            let err = RpcError::new(
                INVALID_REQUEST,
                format!("Invalid Request: `id` must be a string or a number, not {other}"),
            );
            return rpc_err(&Value::Null, &err);
        }
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        let err = RpcError::new(
            INVALID_REQUEST,
            "Invalid Request: `jsonrpc` must be \"2.0\"",
        );
        return rpc_err(&id, &err);
    }
    let Some(Value::String(method)) = obj.remove("method") else {
        let err = RpcError::new(
            INVALID_REQUEST,
            "Invalid Request: `method` (a string) is missing",
        );
        return rpc_err(&id, &err);
    };
    let version = match Version::from_header(header.as_deref()) {
        Ok(v) => v,
        Err(asked) => {
            let err = RpcError::new(
                VERSION_NOT_SUPPORTED,
                format!(
                    "Version not supported: A2A-Version `{asked}`; toolgate speaks 1.0 and 0.3"
                ),
            )
            .with_data(json!({"requested": asked, "supported": ["1.0", "0.3"]}));
            return rpc_err(&id, &err);
        }
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            let err = RpcError::new(
                INVALID_PARAMS,
                format!("Invalid params: `params` must be an object, not {other}"),
            );
            return rpc_err(&id, &err);
        }
    };
    let ctx = Ctx {
        state,
        principal,
        version,
        shutdown,
    };
    match (version, method.as_str()) {
        (Version::V1, "SendMessage") | (Version::V03, "message/send") => {
            send(&ctx, &id, params).await
        }
        (Version::V1, "SendStreamingMessage") | (Version::V03, "message/stream") => {
            send_streaming(ctx, id, params).await
        }
        (Version::V1, "GetTask") | (Version::V03, "tasks/get") => get_task(&ctx, &id, params).await,
        (Version::V1, "ListTasks") => list_tasks(&ctx, &id, params).await,
        (Version::V1, "CancelTask") | (Version::V03, "tasks/cancel") => {
            cancel_task(&ctx, &id, params).await
        }
        (Version::V1, "SubscribeToTask") | (Version::V03, "tasks/resubscribe") => {
            subscribe(ctx, id, params).await
        }
        (
            _,
            "CreateTaskPushNotificationConfig"
            | "GetTaskPushNotificationConfig"
            | "ListTaskPushNotificationConfigs"
            | "DeleteTaskPushNotificationConfig",
        )
        | (_, "tasks/pushNotificationConfig/set")
        | (_, "tasks/pushNotificationConfig/get")
        | (_, "tasks/pushNotificationConfig/list")
        | (_, "tasks/pushNotificationConfig/delete") => {
            let err = a2a_error(
                version,
                PUSH_NOT_SUPPORTED,
                "PUSH_NOTIFICATION_NOT_SUPPORTED",
                "Push notifications are not supported: stream the task (SubscribeToTask) or poll GetTask".into(),
                json!({"method": method}),
            );
            rpc_err(&id, &err)
        }
        (_, "GetExtendedAgentCard" | "agent/getAuthenticatedExtendedCard") => {
            let err = a2a_error(
                version,
                UNSUPPORTED_OPERATION,
                "UNSUPPORTED_OPERATION",
                "Unsupported operation: there is no extended agent card; the public card at \
                 /.well-known/agent-card.json is complete"
                    .into(),
                json!({"method": method}),
            );
            rpc_err(&id, &err)
        }
        (version, other) => {
            let (methods, other_version) = match version {
                Version::V1 => (V1_METHODS.to_vec(), V03_METHODS.contains(&other)),
                Version::V03 => (V03_METHODS.to_vec(), V1_METHODS.contains(&other)),
            };
            let hint = if other_version {
                match version {
                    Version::V1 => " (an A2A 0.3 method: send it without the A2A-Version header)",
                    Version::V03 => " (an A2A 1.0 method: send the header `A2A-Version: 1.0`)",
                }
            } else {
                ""
            };
            let err = RpcError::new(
                METHOD_NOT_FOUND,
                format!("Method not found: `{other}`{hint}"),
            )
            .with_data(json!({"method": other, "methods": methods}));
            rpc_err(&id, &err)
        }
    }
}

/// What every method needs.
struct Ctx {
    state: AppState,
    principal: Principal,
    version: Version,
    shutdown: CancellationToken,
}

fn send_expected(version: Version) -> Value {
    let call = json!({"tool": "k8s.list_resources", "arguments": {"kind": "pods", "namespace": "default"}});
    match version {
        Version::V1 => {
            json!({"message": {"messageId": "<unique id>", "role": "ROLE_USER", "parts": [{"data": call}]}})
        }
        Version::V03 => {
            json!({"message": {"kind": "message", "messageId": "<unique id>", "role": "user", "parts": [{"kind": "data", "data": call}]}})
        }
    }
}

/// Reads a message and stores its task. `Err` is a protocol error (the request is malformed);
/// a well-formed message that names no tool call becomes a FAILED task instead.
async fn start(ctx: &Ctx, params: &Map<String, Value>) -> Result<(Started, bool), RpcError> {
    let msg = wire::parse_message(params, ctx.version)
        .map_err(|e| invalid_params(e, send_expected(ctx.version)))?;
    if let Some(task_id) = &msg.task_id {
        // Each message is one tool call; a message cannot continue a task.
        let known = tasks::get(&ctx.state, &ctx.principal, task_id).await;
        return Err(match known {
            Err(e) => task_error(ctx.version, e),
            Ok(task) => a2a_error(
                ctx.version,
                UNSUPPORTED_OPERATION,
                "UNSUPPORTED_OPERATION",
                format!(
                    "Unsupported operation: task `{}` is {}; every message starts a new task \
                     (send it without taskId)",
                    task.id,
                    TaskState::parse_stored(&task.state).v03_name()
                ),
                json!({"taskId": task.id}),
            ),
        });
    }
    let return_immediately = params
        .get("configuration")
        .and_then(|c| c.get("returnImmediately"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
        && ctx.version == Version::V1;
    let call = wire::tool_call(&msg);
    let (task, call) = tasks::create(&ctx.state, &ctx.principal, &msg, call)
        .await
        .map_err(|e| task_error(ctx.version, e))?;
    Ok(((task, call), return_immediately))
}

/// A stored task and the tool call it is to run (none when the message named no call).
type Started = (TaskRecord, Option<(String, Value)>);

async fn send(ctx: &Ctx, id: &Value, params: Map<String, Value>) -> Response {
    let ((task, call), return_immediately) = match start(ctx, &params).await {
        Ok(s) => s,
        Err(e) => return rpc_err(id, &e),
    };
    let task = match call {
        None => task,
        Some((tool, args)) if return_immediately => {
            let (state, principal, started) =
                (ctx.state.clone(), ctx.principal.clone(), task.clone());
            tokio::spawn(async move {
                if let Err(e) = tasks::run(&state, &principal, started, tool, args).await {
                    tracing::warn!(error = ?e, "a2a: storing a task's outcome failed");
                }
            });
            task
        }
        Some((tool, args)) => {
            match tasks::run(&ctx.state, &ctx.principal, task, tool, args).await {
                Ok(t) => t,
                Err(e) => return rpc_err(id, &task_error(ctx.version, e)),
            }
        }
    };
    if let Some(seconds) = tasks::rate_limited(&task) {
        return rate_limited(ctx.version, id, &task, seconds);
    }
    let rendered = wire::task(&task, ctx.version, history(&params));
    rpc_ok(
        id,
        match ctx.version {
            Version::V1 => json!({"task": rendered}),
            Version::V03 => rendered,
        },
    )
}

/// `configuration.historyLength` / `historyLength` of a request.
fn history(params: &Map<String, Value>) -> Render {
    let n = params
        .get("historyLength")
        .or_else(|| {
            params
                .get("configuration")
                .and_then(|c| c.get("historyLength"))
        })
        .and_then(Value::as_f64)
        .filter(|n| *n >= 0.0)
        .map(|n| n as usize);
    Render {
        history: n,
        artifacts: true,
    }
}

fn task_id_param(params: &Map<String, Value>) -> Result<String, RpcError> {
    match params.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(invalid_params(
            "`id` (the task id, a string) is missing".into(),
            json!({"id": "<task id>"}),
        )),
    }
}

async fn get_task(ctx: &Ctx, id: &Value, params: Map<String, Value>) -> Response {
    let task_id = match task_id_param(&params) {
        Ok(t) => t,
        Err(e) => return rpc_err(id, &e),
    };
    match tasks::get(&ctx.state, &ctx.principal, &task_id).await {
        Ok(task) => rpc_ok(id, wire::task(&task, ctx.version, history(&params))),
        Err(e) => rpc_err(id, &task_error(ctx.version, e)),
    }
}

async fn cancel_task(ctx: &Ctx, id: &Value, params: Map<String, Value>) -> Response {
    let task_id = match task_id_param(&params) {
        Ok(t) => t,
        Err(e) => return rpc_err(id, &e),
    };
    match tasks::cancel(&ctx.state, &ctx.principal, &task_id).await {
        Ok(task) => rpc_ok(id, wire::task(&task, ctx.version, Render::default())),
        Err(e) => rpc_err(id, &task_error(ctx.version, e)),
    }
}

async fn list_tasks(ctx: &Ctx, id: &Value, params: Map<String, Value>) -> Response {
    let expected = json!({"contextId": "<optional>", "status": "TASK_STATE_COMPLETED", "pageSize": 50, "pageToken": "<from nextPageToken>"});
    let page_size = match params.get("pageSize") {
        None | Some(Value::Null) => DEFAULT_PAGE,
        Some(v) => match v.as_f64() {
            Some(n) if n.fract() == 0.0 && (1.0..=MAX_PAGE as f64).contains(&n) => n as i64,
            _ => {
                return rpc_err(
                    id,
                    &invalid_params(
                        format!("`pageSize` must be a whole number from 1 to {MAX_PAGE}, not {v}"),
                        expected,
                    ),
                );
            }
        },
    };
    let state_filter = match params.get("status").and_then(Value::as_str) {
        None | Some("" | "TASK_STATE_UNSPECIFIED") => String::new(),
        Some(s) => match TaskState::parse_wire(s) {
            Some(t) => t.as_str().to_string(),
            None => {
                return rpc_err(
                    id,
                    &invalid_params(
                        format!(
                            "`status` `{s}` is not a task state (TASK_STATE_WORKING, TASK_STATE_COMPLETED, …)"
                        ),
                        expected,
                    ),
                );
            }
        },
    };
    let after = match params.get("pageToken").and_then(Value::as_str) {
        None | Some("") => None,
        Some(token) => match token
            .split_once(':')
            .and_then(|(ms, tid)| Some((ms.parse::<i64>().ok()?, tid.to_string())))
        {
            Some(a) => Some(a),
            None => {
                return rpc_err(
                    id,
                    &invalid_params(
                        format!(
                            "`pageToken` `{token}` is not one toolgate issued; pass nextPageToken unchanged"
                        ),
                        expected,
                    ),
                );
            }
        },
    };
    let query = TaskQuery {
        owner_sub: ctx.principal.sub.clone(),
        context_id: params
            .get("contextId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        state: state_filter,
        limit: page_size,
        after,
    };
    let (found, total) = match ctx.state.dispatcher.list_tasks(&query).await {
        Ok(r) => r,
        Err(e) => {
            return rpc_err(
                id,
                &task_error(ctx.version, TaskError::Store(e.to_string())),
            );
        }
    };
    let next_token = if found.len() as i64 == page_size {
        found
            .last()
            .map(|t| format!("{}:{}", t.created_at_ms, t.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let render = Render {
        history: history(&params).history,
        artifacts: params
            .get("includeArtifacts")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    let mut out = Vec::with_capacity(found.len());
    for task in found {
        let task = match tasks::refresh(&ctx.state, task).await {
            Ok(t) => t,
            Err(e) => return rpc_err(id, &task_error(ctx.version, e)),
        };
        out.push(wire::task(&task, ctx.version, render));
    }
    rpc_ok(
        id,
        json!({"tasks": out, "nextPageToken": next_token, "pageSize": page_size, "totalSize": total}),
    )
}

type EventStream = std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>;

fn sse(events: EventStream) -> Response {
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn event(id: &Value, result: Value) -> Result<Event, Infallible> {
    Ok(Event::default().data(json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()))
}

fn error_event(id: &Value, err: &RpcError) -> Result<Event, Infallible> {
    Ok(Event::default().data(error_response(id.clone(), err).to_string()))
}

async fn send_streaming(ctx: Ctx, id: Value, params: Map<String, Value>) -> Response {
    let ((task, call), _) = match start(&ctx, &params).await {
        Ok(s) => s,
        Err(e) => return rpc_err(&id, &e),
    };
    let stream = async_stream(move |tx| async move {
        let version = ctx.version;
        if tx
            .send(event(&id, wire::task_event(&task, version)))
            .await
            .is_err()
        {
            return;
        }
        let Some((tool, args)) = call else {
            return;
        };
        let done = match tasks::run(&ctx.state, &ctx.principal, task.clone(), tool, args).await {
            Ok(t) => t,
            Err(e) => {
                let _ = tx.send(error_event(&id, &task_error(version, e))).await;
                return;
            }
        };
        follow(&ctx, &id, task, done, &tx).await;
    });
    sse(stream)
}

async fn subscribe(ctx: Ctx, id: Value, params: Map<String, Value>) -> Response {
    let task_id = match task_id_param(&params) {
        Ok(t) => t,
        Err(e) => return rpc_err(&id, &e),
    };
    let task = match tasks::get(&ctx.state, &ctx.principal, &task_id).await {
        Ok(t) => t,
        Err(e) => return rpc_err(&id, &task_error(ctx.version, e)),
    };
    let stream = async_stream(move |tx| async move {
        if tx
            .send(event(&id, wire::task_event(&task, ctx.version)))
            .await
            .is_err()
        {
            return;
        }
        follow(&ctx, &id, task.clone(), task, &tx).await;
    });
    sse(stream)
}

type Tx = tokio::sync::mpsc::Sender<Result<Event, Infallible>>;

/// Sends the change from `last` to `now`, then follows the task until it is terminal, the
/// client goes away, or the server shuts down.
async fn follow(ctx: &Ctx, id: &Value, mut last: TaskRecord, now: TaskRecord, tx: &Tx) {
    let mut changes = ctx.state.dispatcher.approval_changes();
    let mut current = now;
    loop {
        if current.state != last.state {
            if current.result.is_some()
                && last.result.is_none()
                && let Some(update) = wire::artifact_update(&current, ctx.version)
                && tx.send(event(id, update)).await.is_err()
            {
                return;
            }
            if tx
                .send(event(id, wire::status_update(&current, ctx.version)))
                .await
                .is_err()
            {
                return;
            }
        }
        if TaskState::parse_stored(&current.state).is_terminal() {
            return;
        }
        last = current.clone();
        let approval = current.approval_id.clone();
        tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            () = tx.closed() => return,
            () = tokio::time::sleep(POLL) => {}
            changed = changes.recv() => match changed {
                Ok(changed_id) if Some(&changed_id) != approval.as_ref() => continue,
                _ => {}
            },
        }
        current = match tasks::refresh(&ctx.state, current).await {
            Ok(t) => t,
            Err(e) => {
                let _ = tx.send(error_event(id, &task_error(ctx.version, e))).await;
                return;
            }
        };
    }
}

/// A stream fed by a task that writes into a channel; the task ends when the client leaves.
fn async_stream<F, Fut>(body: F) -> EventStream
where
    F: FnOnce(Tx) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(body(tx));
    Box::pin(tokio_stream_from(rx))
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Event, Infallible>>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
