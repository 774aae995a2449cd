//! Plain JSON-RPC 2.0 over HTTP at `/rpc`: a thin adapter over the dispatch core (same policy,
//! approvals and audit as MCP). Methods: `tools.list`, `tools.call {name, arguments}`,
//! `approvals.get {id}`, `approvals.list {state, limit}`. Batches and notifications per the
//! spec. Every answer is HTTP 200 with a JSON-RPC body, except an over-size body (413 with a
//! -32600 error) and a request or batch of notifications only (204, no body).
//!
//! Limits, checked before serde_json sees the body: at most [`MAX_BODY`] bytes, JSON nested at
//! most [`MAX_DEPTH`] levels, at most [`MAX_BATCH`] requests per batch.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

use super::config::ToolNames;
use crate::auth::caller::Caller;
use crate::auth::layer::AuthLayer;
use crate::core::approval::ApprovalError;
use crate::core::dispatch::CallRequest;
use crate::core::principal::Principal;
use crate::transport::http::AppState;

/// Transport label in metrics, logs and audit.
pub const TRANSPORT: &str = "jsonrpc";
/// Largest request body accepted (bytes).
pub const MAX_BODY: usize = 1024 * 1024;
/// Deepest JSON nesting accepted (arrays and objects).
pub const MAX_DEPTH: usize = 64;
/// Most requests in one batch.
pub const MAX_BATCH: usize = 100;

/// Default and largest page of `approvals.list`.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// Server error (implementation-defined range): the method needs a bearer token.
pub const UNAUTHENTICATED: i64 = -32001;
/// A rate limit refused the call (HTTP 429 when every call of the body was refused so).
pub const RATE_LIMITED: i64 = -32029;

const METHODS: [&str; 4] = [
    "tools.list",
    "tools.call",
    "approvals.get",
    "approvals.list",
];

/// `POST /rpc`, behind the same authentication as `/mcp` (401/403/503 before any JSON-RPC).
pub fn routes(auth: AuthLayer) -> Router<AppState> {
    Router::new().route("/rpc", post(handle)).route_layer(auth)
}

/// A JSON-RPC error object, with optional `data`.
pub(crate) struct RpcError {
    pub(crate) code: i64,
    pub(crate) message: String,
    pub(crate) data: Option<Value>,
}

impl RpcError {
    pub(crate) fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub(crate) fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub(crate) fn to_value(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        error
    }
}

pub(crate) fn error_response(id: Value, err: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": err.to_value()})
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn expected_shape() -> Value {
    json!({"jsonrpc": "2.0", "id": "1", "method": "tools.call", "params": {"name": "k8s.get_logs", "arguments": {}}})
}

/// One HTTP body: a request or a batch, every request of it made by `caller`.
async fn handle(State(state): State<AppState>, caller: Caller, req: Request) -> Response {
    let value = match read_json(req.into_body()).await {
        Ok(value) => value,
        Err((status, err)) => return json_response(status, &error_response(Value::Null, &err)),
    };
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                let err = RpcError::new(INVALID_REQUEST, "Invalid Request: empty batch")
                    .with_data(json!({"expected": [expected_shape()]}));
                return json_response(StatusCode::OK, &error_response(Value::Null, &err));
            }
            if items.len() > MAX_BATCH {
                let err = RpcError::new(
                    INVALID_REQUEST,
                    format!(
                        "Invalid Request: batch of {} requests; at most {MAX_BATCH} are accepted",
                        items.len()
                    ),
                )
                .with_data(json!({"max_batch": MAX_BATCH, "got": items.len()}));
                return json_response(StatusCode::OK, &error_response(Value::Null, &err));
            }
            let answers =
                futures::future::join_all(items.into_iter().map(|item| one(&state, &caller, item)))
                    .await;
            let answers: Vec<Value> = answers.into_iter().flatten().collect();
            if answers.is_empty() {
                StatusCode::NO_CONTENT.into_response()
            } else {
                rate_limited_or_ok(&answers, &Value::Array(answers.clone()))
            }
        }
        other => match one(&state, &caller, other).await {
            Some(answer) => rate_limited_or_ok(std::slice::from_ref(&answer), &answer),
            None => StatusCode::NO_CONTENT.into_response(),
        },
    }
}

/// The answer to a body: 429 with `Retry-After` when a rate limit refused every call in it,
/// else 200 (with `Retry-After` still, when some were refused so).
fn rate_limited_or_ok(answers: &[Value], body: &Value) -> Response {
    let waits: Vec<Option<u64>> = answers.iter().map(retry_after_of).collect();
    let longest = waits.iter().flatten().max().copied();
    let status = if waits.iter().all(Option::is_some) {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::OK
    };
    let mut res = json_response(status, body);
    if let Some(seconds) = longest {
        res.headers_mut()
            .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
    }
    res
}

/// The wait a rate-limit error answer names.
fn retry_after_of(answer: &Value) -> Option<u64> {
    let error = answer.get("error")?;
    if error.get("code")?.as_i64()? != RATE_LIMITED {
        return None;
    }
    error.get("data")?.get("retry_after_seconds")?.as_u64()
}

/// A rate limit's refusal as a JSON-RPC error naming the limit and when to retry.
pub(crate) fn rate_limited(err: &crate::core::error::ToolError) -> Option<RpcError> {
    let limited = err.rate_limit.as_ref()?;
    Some(
        RpcError::new(RATE_LIMITED, err.message.clone()).with_data(json!({
            "code": "rate_limited",
            "limit": limited.limit.key(),
            "rate": limited.rate,
            "retry_after_seconds": limited.retry_after_seconds,
        })),
    )
}

/// Reads a JSON-RPC body within the limits: over [`MAX_BODY`] bytes → 413 with -32600; nested
/// deeper than [`MAX_DEPTH`] → -32600; not JSON → -32700 with line and column. Errors carry the
/// HTTP status to answer with.
pub(crate) async fn read_json(body: axum::body::Body) -> Result<Value, (StatusCode, RpcError)> {
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        if crate::transport::inbound::is_body_timeout(&e) {
            return (
                StatusCode::REQUEST_TIMEOUT,
                RpcError::new(
                    INVALID_REQUEST,
                    format!(
                        "Invalid Request: the body was not sent within {} s",
                        crate::transport::inbound::BODY_READ_TIMEOUT.as_secs()
                    ),
                ),
            );
        }
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            RpcError::new(
                INVALID_REQUEST,
                format!("Invalid Request: body over {MAX_BODY} bytes"),
            )
            .with_data(json!({"limit_bytes": MAX_BODY})),
        )
    })?;
    if let Err(depth_at) = check_depth(&bytes, MAX_DEPTH) {
        return Err((
            StatusCode::OK,
            RpcError::new(
                INVALID_REQUEST,
                format!("Invalid Request: JSON nested deeper than {MAX_DEPTH} levels"),
            )
            .with_data(json!({"max_depth": MAX_DEPTH, "offset": depth_at})),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        (
            StatusCode::OK,
            RpcError::new(PARSE_ERROR, format!("Parse error: {e}")).with_data(json!({
                "line": e.line(),
                "column": e.column(),
                "hint": "the body must be one JSON-RPC 2.0 request object or an array of them",
            })),
        )
    })
}

/// Scan raw bytes for array/object nesting deeper than `max` (strings skipped). Returns the
/// byte offset where the limit was passed. Anything that is not JSON is left to the parser.
fn check_depth(bytes: &[u8], max: usize) -> Result<(), usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// One request of a body. `None` for a notification (no `id`): it runs, and is not answered.
async fn one(state: &AppState, caller: &Caller, item: Value) -> Option<Value> {
    let Value::Object(mut obj) = item else {
        let err = RpcError::new(
            INVALID_REQUEST,
            "Invalid Request: each request must be a JSON object",
        )
        .with_data(json!({"expected": expected_shape()}));
        return Some(error_response(Value::Null, &err));
    };
    // The id, when it has a valid type, is echoed even in an Invalid Request answer.
    let id = obj.remove("id");
    let id_ok = matches!(
        id,
        None | Some(Value::String(_) | Value::Number(_) | Value::Null)
    );
    let answer_id = if id_ok {
        id.clone().unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let invalid = |message: String| {
        let err = RpcError::new(INVALID_REQUEST, format!("Invalid Request: {message}"))
            .with_data(json!({"expected": expected_shape()}));
        Some(error_response(answer_id.clone(), &err))
    };
    if !id_ok {
        return invalid("`id` must be a string, a number or null".to_string());
    }
    match obj.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        Some(other) => return invalid(format!("`jsonrpc` must be \"2.0\", not {other}")),
        None => return invalid("`jsonrpc` is missing; it must be \"2.0\"".to_string()),
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        Some(other) => return invalid(format!("`method` must be a string, not {other}")),
        None => return invalid("`method` is missing".to_string()),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => None,
        Some(p @ (Value::Object(_) | Value::Array(_))) => Some(p),
        Some(other) => {
            return invalid(format!(
                "`params` must be an object or an array, not {other}"
            ));
        }
    };
    let request_id = match &id {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => format!("notification-{}", uuid::Uuid::new_v4()),
    };
    let outcome = call(state, caller, &method, params, request_id).await;
    // A notification is never answered, whatever happened.
    let id = id?;
    Some(match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(err) => error_response(id, &err),
    })
}

/// The named-params object of a method, or -32602 saying what is expected.
fn object_params(
    method: &str,
    params: Option<Value>,
    expected: Value,
) -> Result<Map<String, Value>, RpcError> {
    match params {
        None => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(RpcError::new(
            INVALID_PARAMS,
            format!("Invalid params: `{method}` takes named params (an object)"),
        )
        .with_data(json!({"expected": expected}))),
    }
}

async fn call(
    state: &AppState,
    caller: &Caller,
    method: &str,
    params: Option<Value>,
    request_id: String,
) -> Result<Value, RpcError> {
    match method {
        "tools.list" => tools_list(state, caller),
        "tools.call" => tools_call(state, caller, params, request_id).await,
        "approvals.get" | "approvals.list" => {
            // As on the REST API: the queue shows every held call, so no anonymous readers.
            if !caller.has_token {
                return Err(RpcError::new(
                    UNAUTHENTICATED,
                    format!("`{method}` needs a bearer token"),
                )
                .with_data(json!({"code": "unauthenticated"})));
            }
            if method == "approvals.get" {
                approvals_get(state, &caller.principal, params).await
            } else {
                approvals_list(state, &caller.principal, params).await
            }
        }
        other => Err(
            RpcError::new(METHOD_NOT_FOUND, format!("Method not found: `{other}`"))
                .with_data(json!({"method": other, "methods": METHODS})),
        ),
    }
}

fn tools_list(state: &AppState, caller: &Caller) -> Result<Value, RpcError> {
    let visible = state.dispatcher.visible_tools(&caller.principal);
    let tools = crate::transport::mcp::describe(visible, ToolNames::Dotted);
    let tools = serde_json::to_value(tools).map_err(|e| {
        RpcError::new(INTERNAL_ERROR, "Internal error: cannot describe the tools")
            .with_data(json!({"detail": e.to_string()}))
    })?;
    Ok(json!({"tools": tools}))
}

async fn tools_call(
    state: &AppState,
    caller: &Caller,
    params: Option<Value>,
    request_id: String,
) -> Result<Value, RpcError> {
    let expected = json!({"name": "k8s.get_logs", "arguments": {"namespace": "…", "pod": "…"}});
    let mut map = object_params("tools.call", params, expected.clone())?;
    let name = match map.remove("name") {
        Some(Value::String(name)) => name,
        Some(other) => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                format!("Invalid params: `name` must be a tool name (string), not {other}"),
            )
            .with_data(json!({"expected": expected})));
        }
        None => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                "Invalid params: `name` (the tool to call) is missing",
            )
            .with_data(json!({"expected": expected})));
        }
    };
    let args = match map.remove("arguments") {
        None | Some(Value::Null) => Value::Null,
        Some(args @ Value::Object(_)) => args,
        Some(other) => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                format!("Invalid params: `arguments` must be an object, not {other}"),
            )
            .with_data(json!({"expected": expected})));
        }
    };
    let request = CallRequest {
        principal: caller.principal.clone(),
        transport: TRANSPORT,
        tool: name,
        args,
        request_id,
        progress: None,
    };
    match state.dispatcher.dispatch(request).await {
        Err(unknown) => Err(
            RpcError::new(INVALID_PARAMS, format!("Invalid params: {unknown}"))
                .with_data(json!({"tool": unknown.name, "suggestions": unknown.suggestions})),
        ),
        Ok(Ok(output)) => Ok(json!({"structuredContent": output, "isError": false})),
        // A rate limit is the request's refusal, not the tool's answer: a JSON-RPC error.
        Ok(Err(err)) => match rate_limited(&err) {
            Some(limited) => Err(limited),
            None => Ok(json!({
                "isError": true,
                "error": {"kind": err.kind, "message": err.message},
            })),
        },
    }
}

/// Approval errors: a read can only fail for an unknown id (invalid params) or the store.
fn approval_error(err: ApprovalError) -> RpcError {
    let code = match err {
        ApprovalError::Store(_) => INTERNAL_ERROR,
        _ => INVALID_PARAMS,
    };
    RpcError::new(code, err.to_string()).with_data(json!({"code": err.code()}))
}

async fn approvals_get(
    state: &AppState,
    viewer: &Principal,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let expected = json!({"id": "<approval id>"});
    let map = object_params("approvals.get", params, expected.clone())?;
    let Some(Value::String(id)) = map.get("id") else {
        return Err(RpcError::new(
            INVALID_PARAMS,
            "Invalid params: `id` (the approval id, a string) is missing",
        )
        .with_data(json!({"expected": expected})));
    };
    let view = state
        .dispatcher
        .approval_for(viewer, id)
        .await
        .map_err(approval_error)?;
    serde_json::to_value(view).map_err(|e| {
        RpcError::new(INTERNAL_ERROR, "Internal error: cannot encode the approval")
            .with_data(json!({"detail": e.to_string()}))
    })
}

async fn approvals_list(
    state: &AppState,
    viewer: &Principal,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let valid: Vec<&str> = crate::core::ApprovalState::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    let expected =
        json!({"state": valid, "limit": format!("1..={MAX_LIMIT}, default {DEFAULT_LIMIT}")});
    let map = object_params("approvals.list", params, expected.clone())?;
    let invalid = |message: String| {
        RpcError::new(INVALID_PARAMS, format!("Invalid params: {message}"))
            .with_data(json!({"expected": expected}))
    };
    let filter = match map.get("state") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            Some(crate::transport::approvals::parse_state(s.trim()).map_err(invalid)?)
        }
        Some(other) => return Err(invalid(format!("`state` must be a string, not {other}"))),
    };
    let limit = match map.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(v) => match v.as_i64() {
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(invalid(format!(
                    "`limit` {v} must be a whole number from 1 to {MAX_LIMIT}"
                )));
            }
        },
    };
    let views = state
        .dispatcher
        .approvals_for(viewer, filter, limit)
        .await
        .map_err(approval_error)?;
    let views = serde_json::to_value(views).map_err(|e| {
        RpcError::new(
            INTERNAL_ERROR,
            "Internal error: cannot encode the approvals",
        )
        .with_data(json!({"detail": e.to_string()}))
    })?;
    Ok(json!({"approvals": views}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_scan_counts_nesting_and_skips_strings() {
        assert!(check_depth(b"[[[]]]", 3).is_ok());
        assert_eq!(check_depth(b"[[[[]]]]", 3), Err(3));
        assert!(check_depth(br#"{"a":"[[[[[[\"[[[["}"#, 1).is_ok());
        assert!(check_depth(br#"{"a":{"b":{}}}"#, 3).is_ok());
        assert!(check_depth(br#"{"a":{"b":{"c":{}}}}"#, 3).is_err());
        let deep = "[".repeat(10_000);
        assert!(check_depth(deep.as_bytes(), MAX_DEPTH).is_err());
    }
}
