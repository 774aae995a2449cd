//! A2A tasks over the dispatch core. A message names one tool call; the task runs it through
//! `Dispatcher::dispatch` (same policy, approvals and audit as every transport). A call held
//! for approval parks the task in AUTH_REQUIRED; from then on the task's state is derived from
//! its approval request: every read of the task ([`refresh`]) maps the approval's state onto it
//! and stores the change, so a task follows its approval across restarts and replicas.

use std::time::Duration;

use serde_json::{Value, json};

use crate::core::approval::{ApprovalError, held_approval_id};
use crate::core::dispatch::CallRequest;
use crate::core::principal::Principal;
use crate::core::{ApprovalState, StoreError, TaskRecord, now_ms};
use crate::transport::http::AppState;

use super::wire::{IncomingMessage, TaskState};

/// Transport label in metrics, logs and audit.
pub const TRANSPORT: &str = "a2a";

/// A task found WORKING without an approval this long after its last change was being run by a
/// process that stopped (no tool call runs this long).
const ORPHANED_AFTER: Duration = Duration::from_secs(15 * 60);

/// Why a task operation failed, before any A2A framing.
#[derive(Debug)]
pub enum TaskError {
    NotFound(String),
    NotCancelable(TaskState),
    Store(String),
}

impl From<StoreError> for TaskError {
    fn from(e: StoreError) -> Self {
        TaskError::Store(e.to_string())
    }
}

fn status(text: impl Into<String>, data: Option<Value>) -> Value {
    let mut s = json!({"text": text.into()});
    if let Some(d) = data {
        s["data"] = d;
    }
    s
}

/// When the task failed because a rate limit refused its call: the seconds to wait.
pub fn rate_limited(task: &TaskRecord) -> Option<u64> {
    let data = task.status.get("data")?;
    if data.get("kind")?.as_str()? != "rate_limited" {
        return None;
    }
    data.get("retry_after_seconds")?.as_u64()
}

/// Stores a new task for `msg`. A message that names no tool call is stored as a FAILED task
/// whose status says what was expected and which skills exist; the caller gets it as is.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    msg: &IncomingMessage,
    call: Result<(String, Value), String>,
) -> Result<(TaskRecord, Option<(String, Value)>), TaskError> {
    let now = now_ms();
    let mut task = TaskRecord {
        id: uuid::Uuid::new_v4().to_string(),
        context_id: msg
            .context_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        owner_sub: principal.sub.clone(),
        owner_name: principal.name.clone(),
        tool: String::new(),
        state: TaskState::Working.as_str().to_string(),
        approval_id: None,
        status: status("running", None),
        result: None,
        request: msg.stored(),
        created_at_ms: now,
        updated_at_ms: now,
    };
    let call = match call {
        Ok((tool, args)) => {
            task.tool = tool.clone();
            Some((tool, args))
        }
        Err(problem) => {
            task.state = TaskState::Failed.as_str().to_string();
            task.status = status(
                format!(
                    "{problem}. Send one data part {{\"tool\": \"<tool name>\", \"arguments\": {{…}}}} \
                     (a text part holding the same JSON works too); skills: {}",
                    skill_ids(state).join(", ")
                ),
                Some(json!({
                    "expected": {"tool": "k8s.list_resources", "arguments": {"kind": "pods", "namespace": "default"}},
                    "skills": skill_ids(state),
                })),
            );
            None
        }
    };
    state.dispatcher.insert_task(&task).await?;
    Ok((task, call))
}

fn skill_ids(state: &AppState) -> Vec<String> {
    let sets: std::collections::BTreeSet<&str> = state
        .dispatcher
        .registry()
        .offered()
        .map(|e| e.spec().toolset)
        .collect();
    sets.into_iter().map(str::to_string).collect()
}

/// Runs the task's tool call once and stores the outcome.
pub async fn run(
    state: &AppState,
    principal: &Principal,
    task: TaskRecord,
    tool: String,
    args: Value,
) -> Result<TaskRecord, TaskError> {
    let request = CallRequest {
        principal: principal.clone(),
        transport: TRANSPORT,
        tool,
        args,
        request_id: task.id.clone(),
        progress: None,
    };
    let mut next = task.clone();
    next.updated_at_ms = now_ms();
    match state.dispatcher.dispatch(request).await {
        Err(unknown) => {
            next.state = TaskState::Failed.as_str().to_string();
            next.status = status(
                format!("{unknown}; skills: {}", skill_ids(state).join(", ")),
                Some(json!({"tool": unknown.name, "suggestions": unknown.suggestions})),
            );
        }
        Ok(Ok(output)) if held_approval_id(&output).is_some() => {
            let id = held_approval_id(&output).unwrap_or_default().to_string();
            next.state = TaskState::AuthRequired.as_str().to_string();
            next.approval_id = Some(id.clone());
            next.status = status(
                format!(
                    "Human approval required: request {id} needs {} approval(s) by {} before {}. \
                     Approve at {}. This task continues by itself once it is decided.",
                    output
                        .get("required_approvals")
                        .cloned()
                        .unwrap_or(json!(1)),
                    output
                        .get("approver_roles")
                        .and_then(Value::as_array)
                        .map(|r| r
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" or "))
                        .unwrap_or_default(),
                    output
                        .get("expires_at")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    output
                        .get("approve_url")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                ),
                Some(output),
            );
        }
        Ok(Ok(output)) => {
            next.state = TaskState::Completed.as_str().to_string();
            next.status = status("done", None);
            next.result = Some(output);
        }
        Ok(Err(err)) => {
            let rejected = err.kind == crate::core::error::ToolErrorKind::Forbidden;
            next.state = if rejected {
                TaskState::Rejected
            } else {
                TaskState::Failed
            }
            .as_str()
            .to_string();
            let mut data = json!({"kind": err.kind, "message": err.message});
            if let Some(limited) = &err.rate_limit {
                data["limit"] = json!(limited.limit.key());
                data["retry_after_seconds"] = json!(limited.retry_after_seconds);
            }
            next.status = status(err.message.clone(), Some(data));
        }
    }
    save(state, &task, next).await
}

/// Stores `next` unless the task moved meanwhile; answers the task as stored.
async fn save(
    state: &AppState,
    prev: &TaskRecord,
    next: TaskRecord,
) -> Result<TaskRecord, TaskError> {
    let dispatcher = &state.dispatcher;
    if dispatcher.update_task(&prev.id, &prev.state, &next).await? {
        Ok(next)
    } else {
        dispatcher
            .task(&prev.id)
            .await?
            .ok_or_else(|| TaskError::NotFound(prev.id.clone()))
    }
}

/// The caller's task, brought up to date. Another principal's task is "not found" (its
/// existence is not disclosed).
pub async fn get(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<TaskRecord, TaskError> {
    let task = state
        .dispatcher
        .task(id)
        .await?
        .filter(|t| t.owner_sub == principal.sub)
        .ok_or_else(|| TaskError::NotFound(id.to_string()))?;
    refresh(state, task).await
}

/// Maps the task's approval (if any) onto the task and stores a change.
pub async fn refresh(state: &AppState, task: TaskRecord) -> Result<TaskRecord, TaskError> {
    let current = TaskState::parse_stored(&task.state);
    if current.is_terminal() {
        return Ok(task);
    }
    let Some(approval_id) = task.approval_id.clone() else {
        if current == TaskState::Working
            && now_ms() - task.updated_at_ms > ORPHANED_AFTER.as_millis() as i64
        {
            let mut next = task.clone();
            next.state = TaskState::Failed.as_str().to_string();
            next.status = status(
                "toolgate stopped while this call was running; its outcome is unknown",
                None,
            );
            next.updated_at_ms = now_ms();
            return save(state, &task, next).await;
        }
        return Ok(task);
    };
    let view = match state.dispatcher.approval(&approval_id).await {
        Ok(view) => view,
        Err(ApprovalError::NotFound(_)) => {
            let mut next = task.clone();
            next.state = TaskState::Failed.as_str().to_string();
            next.status = status(
                format!("approval request {approval_id} no longer exists"),
                None,
            );
            next.updated_at_ms = now_ms();
            return save(state, &task, next).await;
        }
        Err(e) => return Err(TaskError::Store(e.to_string())),
    };
    let reason = view.state_reason.clone().unwrap_or_default();
    let (to, text, result) = match view.state {
        ApprovalState::Pending => return Ok(task),
        ApprovalState::Approved | ApprovalState::Executing => (
            TaskState::Working,
            format!("approved; running {}", view.tool),
            None,
        ),
        ApprovalState::Executed => (
            TaskState::Completed,
            "approved and done".to_string(),
            view.result.clone(),
        ),
        ApprovalState::Denied => {
            let by: Vec<String> = view
                .decisions
                .iter()
                .filter(|d| d.decision == "deny")
                .map(|d| match &d.reason {
                    Some(r) if !r.is_empty() => format!("{} ({r})", d.approver_name),
                    _ => d.approver_name.clone(),
                })
                .collect();
            (
                TaskState::Rejected,
                format!("denied by {}", by.join(", ")),
                None,
            )
        }
        ApprovalState::Expired => (
            TaskState::Failed,
            format!(
                "the approval request expired at {} without enough approvals",
                view.expires_at
            ),
            None,
        ),
        ApprovalState::Failed => (
            TaskState::Failed,
            format!("approved, but the call failed: {reason}"),
            None,
        ),
        ApprovalState::Interrupted => (TaskState::Failed, reason, None),
        ApprovalState::Cancelled => (
            TaskState::Canceled,
            "cancelled; the call will not run".to_string(),
            None,
        ),
    };
    if to == current {
        return Ok(task);
    }
    let mut next = task.clone();
    next.state = to.as_str().to_string();
    next.status = status(
        text,
        view.result.clone().filter(|_| to == TaskState::Failed),
    );
    next.result = result;
    next.updated_at_ms = now_ms();
    save(state, &task, next).await
}

/// Cancels the caller's task: only a task waiting for approval can be cancelled (its approval
/// request is withdrawn, so the call never runs).
pub async fn cancel(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<TaskRecord, TaskError> {
    let task = get(state, principal, id).await?;
    let current = TaskState::parse_stored(&task.state);
    let Some(approval_id) = task
        .approval_id
        .clone()
        .filter(|_| current == TaskState::AuthRequired)
    else {
        return Err(TaskError::NotCancelable(current));
    };
    match state.dispatcher.cancel(principal, &approval_id).await {
        Ok(_) => {}
        // Decided meanwhile: the refreshed task says how.
        Err(ApprovalError::NotPending(_)) => {
            let task = refresh(state, task).await?;
            return Err(TaskError::NotCancelable(TaskState::parse_stored(
                &task.state,
            )));
        }
        Err(ApprovalError::NotFound(_)) => return Err(TaskError::NotFound(id.to_string())),
        Err(e) => return Err(TaskError::Store(e.to_string())),
    }
    refresh(state, task).await
}
