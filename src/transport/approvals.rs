//! The approval REST API under `/api/v1/approvals…` and its OpenAPI document. It translates
//! HTTP to the dispatcher's approval methods and back; it must not decide anything itself (who
//! may approve, N-of-M, expiry all live in `core::approval`).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use crate::auth::caller::Caller;
use crate::auth::layer::AuthLayer;
use crate::core::approval::{ApprovalError, ApprovalView};
use crate::core::{ApprovalState, AuditRecord};
use crate::transport::http::AppState;

/// Default and largest page of `GET /api/v1/approvals`.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

/// The REST routes (absolute paths) behind `auth`; the OpenAPI document is public. The API
/// always needs a bearer token (`api_auth` admits no anonymous loopback callers: the queue
/// shows every held call).
pub fn routes(auth: AuthLayer) -> Router<AppState> {
    Router::new()
        .route("/api/v1/approvals", get(list))
        .route("/api/v1/approvals/{id}", get(show))
        .route("/api/v1/approvals/{id}/approve", post(approve))
        .route("/api/v1/approvals/{id}/deny", post(deny))
        .route("/api/v1/approvals/{id}/cancel", post(cancel))
        .route_layer(auth)
        .route("/api/v1/openapi.json", get(openapi_json))
}

/// Every error of this API: `{"error": {"code", "message"}}` with a matching status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }
}

impl From<ApprovalError> for ApiError {
    fn from(e: ApprovalError) -> Self {
        Self {
            status: StatusCode::from_u16(e.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

// ---- DTOs: the wire shapes, with their OpenAPI schemas ----

/// An error answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code: unauthenticated, bad_request, not_found, forbidden, self_approval,
    /// already_decided, not_pending, expired, reason_required, store_error.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

/// Body of approve and deny; it may be omitted when no reason is given.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Why; required when the request's policy says `reason_required`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Who asked for the call.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequesterDto {
    pub sub: String,
    pub name: String,
    /// Transport the request came in over (mcp-http, mcp-stdio, …).
    pub transport: String,
}

/// One approver's decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionDto {
    pub approver_sub: String,
    pub approver_name: String,
    /// `approve` or `deny`.
    pub decision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix time in milliseconds.
    pub at_ms: i64,
}

/// Where an approval request is in its life.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateDto {
    Pending,
    Approved,
    Executing,
    Executed,
    Failed,
    Denied,
    Expired,
    Cancelled,
    Interrupted,
}

impl From<ApprovalState> for StateDto {
    fn from(s: ApprovalState) -> Self {
        match s {
            ApprovalState::Pending => StateDto::Pending,
            ApprovalState::Approved => StateDto::Approved,
            ApprovalState::Executing => StateDto::Executing,
            ApprovalState::Executed => StateDto::Executed,
            ApprovalState::Failed => StateDto::Failed,
            ApprovalState::Denied => StateDto::Denied,
            ApprovalState::Expired => StateDto::Expired,
            ApprovalState::Cancelled => StateDto::Cancelled,
            ApprovalState::Interrupted => StateDto::Interrupted,
        }
    }
}

/// An approval request: the held call (arguments redacted), its preview, decisions and result.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalDto {
    pub id: String,
    /// Tool name, e.g. `k8s.rollout_restart`.
    pub tool: String,
    pub state: StateDto,
    /// Why it is in this state (failure message, cancellation, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    /// Risk of the tool: write, sensitive, critical.
    pub risk: String,
    /// `{cluster?, namespace?, kind?, name?}`
    #[schema(value_type = Object)]
    pub target: Value,
    /// The call's arguments with secrets redacted.
    #[schema(value_type = Object)]
    pub args: Value,
    /// SHA-256 of the exact stored arguments; what runs is bound to this.
    pub args_sha256: String,
    pub requester: RequesterDto,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; a pending request expires then.
    pub expires_at: String,
    /// RFC 3339; when the request last changed state.
    pub updated_at: String,
    pub required_approvals: u32,
    pub approvals: u32,
    /// One of these roles is needed to decide.
    pub approver_roles: Vec<String>,
    pub reason_required: bool,
    /// Policy rule that asked for approval.
    pub rule: String,
    /// Dry-run preview: `{summary, diff?, target_version?, detail?}`; `diff` is a unified diff.
    #[schema(value_type = Object)]
    pub preview: Value,
    /// Oldest first.
    pub decisions: Vec<DecisionDto>,
    /// The tool's output (executed) or error (failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// The web page of this request.
    pub approve_url: String,
}

impl From<ApprovalView> for ApprovalDto {
    fn from(v: ApprovalView) -> Self {
        ApprovalDto {
            id: v.id,
            tool: v.tool,
            state: v.state.into(),
            state_reason: v.state_reason,
            risk: v.risk,
            target: v.target,
            args: v.args,
            args_sha256: v.args_sha256,
            requester: RequesterDto {
                sub: v.requester.sub,
                name: v.requester.name,
                transport: v.requester.transport,
            },
            created_at: v.created_at,
            expires_at: v.expires_at,
            updated_at: v.updated_at,
            required_approvals: v.required_approvals,
            approvals: v.approvals,
            approver_roles: v.approver_roles,
            reason_required: v.reason_required,
            rule: v.rule,
            preview: v.preview,
            decisions: v
                .decisions
                .into_iter()
                .map(|d| DecisionDto {
                    approver_sub: d.approver_sub,
                    approver_name: d.approver_name,
                    decision: d.decision,
                    reason: d.reason,
                    at_ms: d.at_ms,
                })
                .collect(),
            result: v.result,
            approve_url: v.approve_url,
        }
    }
}

/// One audit record about a request (hash-chained log).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditDto {
    pub seq: i64,
    /// Unix time in milliseconds.
    pub at_ms: i64,
    pub principal_sub: String,
    pub principal_name: String,
    pub transport: String,
    pub tool: String,
    /// What happened: approval_requested, approved, denied, executed, failed, cancelled, expired, …
    pub decision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_summary: Option<String>,
    pub hash: String,
}

impl From<AuditRecord> for AuditDto {
    fn from(r: AuditRecord) -> Self {
        AuditDto {
            seq: r.seq,
            at_ms: r.entry.at_ms,
            principal_sub: r.entry.principal_sub,
            principal_name: r.entry.principal_name,
            transport: r.entry.transport,
            tool: r.entry.tool,
            decision: r.entry.decision,
            rule: r.entry.rule,
            result_summary: r.entry.result_summary,
            hash: r.hash,
        }
    }
}

/// A request with its audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalDetail {
    #[serde(flatten)]
    pub approval: ApprovalDto,
    /// Oldest first.
    pub audit: Vec<AuditDto>,
}

/// A page of requests, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalList {
    pub approvals: Vec<ApprovalDto>,
}

/// Query of the list endpoint; strings so that bad values get this API's JSON errors.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only requests in this state (pending, approved, executing, executed, failed, denied,
    /// expired, cancelled, interrupted).
    pub state: Option<String>,
    /// At most this many (1–500, default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

/// Parse a `state` filter; the error names the valid states.
pub fn parse_state(s: &str) -> Result<ApprovalState, String> {
    s.parse::<ApprovalState>().map_err(|_| {
        let valid: Vec<&str> = ApprovalState::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state `{s}`; expected one of {}", valid.join(", "))
    })
}

// ---- handlers ----

/// List approval requests, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/approvals",
    tag = "approvals",
    params(ListQuery),
    responses(
        (status = 200, description = "Requests, newest first", body = ApprovalList),
        (status = 400, description = "Bad `state` or `limit`", body = ErrorBody),
        (status = 401, description = "No or invalid bearer token", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn list(
    State(state): State<AppState>,
    Caller { principal, .. }: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ApprovalList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = match query
        .state
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(s) => Some(parse_state(s).map_err(ApiError::bad_request)?),
        None => None,
    };
    let limit = match query.limit.as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit `{raw}` must be a whole number from 1 to {MAX_LIMIT}"
                )));
            }
        },
    };
    let views = state
        .dispatcher
        .approvals_for(&principal, filter, limit)
        .await?;
    Ok(Json(ApprovalList {
        approvals: views.into_iter().map(ApprovalDto::from).collect(),
    }))
}

/// One request with its audit trail.
#[utoipa::path(
    get,
    path = "/api/v1/approvals/{id}",
    tag = "approvals",
    params(("id" = String, Path, description = "Approval request id")),
    responses(
        (status = 200, description = "The request and its audit trail", body = ApprovalDetail),
        (status = 401, description = "No or invalid bearer token", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn show(
    State(state): State<AppState>,
    Caller { principal, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Json<ApprovalDetail>, ApiError> {
    let view = state.dispatcher.approval_for(&principal, &id).await?;
    let audit = state.dispatcher.approval_audit(&id).await?;
    Ok(Json(ApprovalDetail {
        approval: view.into(),
        audit: audit.into_iter().map(AuditDto::from).collect(),
    }))
}

/// Read an optional JSON decision body: empty means no reason.
fn decision_body(bytes: &Bytes) -> Result<DecisionBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionBody::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!("body must be JSON like {{\"reason\": \"…\"}}: {e}"))
    })
}

/// Approve. When this is the last approval needed, the stored call runs before the answer,
/// which then has state `executed` or `failed` and the `result`.
#[utoipa::path(
    post,
    path = "/api/v1/approvals/{id}/approve",
    tag = "approvals",
    params(("id" = String, Path, description = "Approval request id")),
    request_body(content = DecisionBody, description = "Optional reason", content_type = "application/json"),
    responses(
        (status = 200, description = "The request after the decision", body = ApprovalDto),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "No or invalid bearer token", body = ErrorBody),
        (status = 403, description = "Missing approver role, or self-approval", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 409, description = "Already decided, not pending, or expired", body = ErrorBody),
        (status = 422, description = "The policy requires a reason", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn approve(
    State(state): State<AppState>,
    Caller { principal, .. }: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ApprovalDto>, ApiError> {
    let body = decision_body(&body)?;
    let view = state
        .dispatcher
        .approve(&principal, &id, body.reason)
        .await?;
    Ok(Json(view.into()))
}

/// Deny. A denied request never runs.
#[utoipa::path(
    post,
    path = "/api/v1/approvals/{id}/deny",
    tag = "approvals",
    params(("id" = String, Path, description = "Approval request id")),
    request_body(content = DecisionBody, description = "Optional reason", content_type = "application/json"),
    responses(
        (status = 200, description = "The request after the decision", body = ApprovalDto),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "No or invalid bearer token", body = ErrorBody),
        (status = 403, description = "Missing approver role, or self-approval", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 409, description = "Already decided, not pending, or expired", body = ErrorBody),
        (status = 422, description = "The policy requires a reason", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn deny(
    State(state): State<AppState>,
    Caller { principal, .. }: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ApprovalDto>, ApiError> {
    let body = decision_body(&body)?;
    let view = state.dispatcher.deny(&principal, &id, body.reason).await?;
    Ok(Json(view.into()))
}

/// Withdraw a pending request; only its requester may.
#[utoipa::path(
    post,
    path = "/api/v1/approvals/{id}/cancel",
    tag = "approvals",
    params(("id" = String, Path, description = "Approval request id")),
    responses(
        (status = 200, description = "The cancelled request", body = ApprovalDto),
        (status = 401, description = "No or invalid bearer token", body = ErrorBody),
        (status = 403, description = "Not the requester", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 409, description = "Not pending", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn cancel(
    State(state): State<AppState>,
    Caller { principal, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Json<ApprovalDto>, ApiError> {
    let view = state.dispatcher.cancel(&principal, &id).await?;
    Ok(Json(view.into()))
}

/// Adds the bearer security scheme the operations refer to.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "toolgate approvals API",
        description = "Held write-tool calls and the human decisions on them. Authenticate with `Authorization: Bearer <token>`."
    ),
    paths(list, show, approve, deny, cancel),
    components(schemas(ApprovalList, ApprovalDetail, ApprovalDto, AuditDto, DecisionDto, RequesterDto, StateDto, DecisionBody, ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    tags((name = "approvals", description = "The approval queue"))
)]
pub struct ApiDoc;

/// The OpenAPI 3.1 document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

async fn openapi_json() -> Response {
    match serde_json::to_value(openapi()) {
        Ok(doc) => Json(doc).into_response(),
        Err(e) => ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: e.to_string(),
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Field names of a JSON object.
    fn keys(v: &Value) -> Vec<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn the_dto_carries_every_field_of_the_core_view() {
        let v = crate::core::approval::sample_view(ApprovalState::Executed);
        let core = serde_json::to_value(&v).expect("view serializes");
        let dto = serde_json::to_value(ApprovalDto::from(v)).expect("dto serializes");
        assert_eq!(
            keys(&core),
            keys(&dto),
            "ApprovalDto drifted from ApprovalView"
        );
        assert_eq!(core, dto, "same JSON on the wire");
    }

    #[test]
    fn bad_state_names_the_valid_states() {
        let e = parse_state("pendin").expect_err("unknown");
        assert!(e.contains("pending, approved, executing"), "{e}");
        assert_eq!(parse_state("denied"), Ok(ApprovalState::Denied));
    }

    #[test]
    fn openapi_document_is_3_1_and_lists_every_path() {
        let doc = serde_json::to_value(openapi()).expect("serializes");
        assert_eq!(doc["openapi"], "3.1.0");
        for path in [
            "/api/v1/approvals",
            "/api/v1/approvals/{id}",
            "/api/v1/approvals/{id}/approve",
            "/api/v1/approvals/{id}/deny",
            "/api/v1/approvals/{id}/cancel",
        ] {
            assert!(doc["paths"].get(path).is_some(), "missing {path}");
        }
        assert!(
            doc.pointer("/components/schemas/ApprovalDto/properties/preview")
                .is_some()
        );
        assert!(doc.pointer("/components/securitySchemes/bearer").is_some());
    }

    #[test]
    fn empty_decision_body_means_no_reason_and_junk_is_a_400() {
        assert!(
            decision_body(&Bytes::new())
                .expect("empty ok")
                .reason
                .is_none()
        );
        let b = decision_body(&Bytes::from_static(br#"{"reason":"fine"}"#)).expect("json");
        assert_eq!(b.reason.as_deref(), Some("fine"));
        let e = decision_body(&Bytes::from_static(b"reason=x")).expect_err("not json");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
