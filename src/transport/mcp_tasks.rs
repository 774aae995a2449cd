//! MCP Tasks (`io.modelcontextprotocol/tasks`, SEP-2663) for calls held for approval. A client
//! that declares the extension gets a task instead of the `approval_required` answer; the task
//! id is the approval id and the task is read from the approval request each time (`tasks/get`),
//! so it lives in the store: it survives restarts and every replica answers the same. This file
//! only translates an approval (as `Dispatcher::held_call` gives it to its requester) into the
//! task's wire shape; the state machine, withdrawal and audit stay in `core::approval`.

use rmcp::ErrorData;
use rmcp::model::{CreateTaskResult, DetailedTask, JsonObject, Task, TaskPayload, TaskStatus};
use serde_json::{Value, json};

use crate::core::ApprovalState;
use crate::core::approval::{ApprovalError, ApprovalView};
use crate::core::dispatch::Dispatcher;
use crate::core::principal::Principal;

/// How often a client should poll `tasks/get`: approvals take human time.
pub const POLL_INTERVAL_MS: u64 = 5_000;

/// JSON-RPC error code of a task whose held call never ran (denied, expired, or stopped before
/// it started); `data.state` says which. A call that may have run in part (`interrupted`) is an
/// internal error (-32603) instead.
pub const HELD_CALL_NOT_RUN: i32 = -32000;

/// The request behind task `id`, for its requester only: anyone else (or an unknown id) gets
/// the spec's "task not found" (-32602), so the existence of other people's tasks never shows.
pub async fn held(
    dispatcher: &Dispatcher,
    requester: &Principal,
    id: &str,
) -> Result<ApprovalView, ErrorData> {
    dispatcher
        .held_call(requester, id)
        .await
        .map_err(|e| match e {
            ApprovalError::NotFound(_) => ErrorData::invalid_params(
                format!(
                    "task `{id}` not found: use the taskId of a tools/call you made that is held for approval"
                ),
                None,
            ),
            other => ErrorData::internal_error(
                format!("task `{id}` could not be read: {other}"),
                None,
            ),
        })
}

/// The answer to a `tools/call` held for approval: the task in its first state.
pub fn created(view: &ApprovalView) -> CreateTaskResult {
    CreateTaskResult::new(task(view, jiff::Timestamp::now(), None).task)
}

/// The task as `tasks/get` shows it at `now`: working while pending, approved or running;
/// completed with the tool's answer (its error too, as `isError`) once the call ran; failed when
/// it was denied, expired or stopped; cancelled when its requester withdrew it. `text_lines`:
/// the tool's field rendered as the text block's body (see `ToolSpec::text_lines`).
pub fn task(view: &ApprovalView, now: jiff::Timestamp, text_lines: Option<&str>) -> DetailedTask {
    let created = parse(&view.created_at);
    let expires = parse(&view.expires_at);
    let ttl_ms = match (created, expires) {
        (Some(c), Some(e)) => u64::try_from(e.as_millisecond() - c.as_millisecond()).ok(),
        _ => None,
    };
    let reason = view.state_reason.clone().unwrap_or_default();
    let (payload, message) = match view.state {
        ApprovalState::Pending => (
            TaskPayload::Working,
            format!(
                "awaiting approval {}/{}, expires {}",
                view.approvals,
                view.required_approvals,
                expires.map_or_else(|| view.expires_at.clone(), |e| clock(e, now))
            ),
        ),
        ApprovalState::Approved | ApprovalState::Executing => (
            TaskPayload::Working,
            format!(
                "approved by {}; running {}",
                deciders(view, "approve"),
                view.tool
            ),
        ),
        ApprovalState::Executed => (
            completed(Ok(view.result.clone().unwrap_or(Value::Null)), text_lines),
            format!("approved by {}; done", deciders(view, "approve")),
        ),
        // The tool ran, or was refused when its turn came, and answered with an error: that is
        // the tool's answer (the spec keeps `failed` for protocol errors).
        ApprovalState::Failed if stored_error(view).is_some() => (
            completed(Err(stored_error(view).unwrap_or_default()), text_lines),
            format!("approved, but the call failed: {reason}"),
        ),
        ApprovalState::Failed => not_run(view, HELD_CALL_NOT_RUN, reason),
        ApprovalState::Interrupted => not_run(view, -32603, reason),
        ApprovalState::Denied => not_run(
            view,
            HELD_CALL_NOT_RUN,
            format!("denied by {}; the call did not run", deciders(view, "deny")),
        ),
        ApprovalState::Expired => not_run(
            view,
            HELD_CALL_NOT_RUN,
            format!(
                "the approval request expired at {} with {}/{} approvals; the call did not run",
                view.expires_at, view.approvals, view.required_approvals
            ),
        ),
        ApprovalState::Cancelled => (
            TaskPayload::Cancelled,
            "withdrawn by the requester; the call did not run".to_string(),
        ),
    };
    let mut task = Task::new(
        view.id.clone(),
        TaskStatus::Working,
        view.created_at.clone(),
        view.updated_at.clone(),
    )
    .with_status_message(message)
    .with_poll_interval_ms(POLL_INTERVAL_MS);
    task.ttl_ms = ttl_ms;
    DetailedTask::new(task, payload)
}

fn completed(answer: Result<Value, String>, text_lines: Option<&str>) -> TaskPayload {
    let result = super::mcp::tool_answer(answer, text_lines);
    match serde_json::to_value(result) {
        Ok(Value::Object(result)) => TaskPayload::Completed { result },
        _ => TaskPayload::Failed {
            error: error_object(
                -32603,
                "the tool's answer could not be encoded",
                Value::Null,
            ),
        },
    }
}

/// `failed`, with the JSON-RPC error saying why the held call did not (or may not) run.
fn not_run(view: &ApprovalView, code: i32, message: String) -> (TaskPayload, String) {
    let data = json!({"approval_id": view.id, "state": view.state});
    (
        TaskPayload::Failed {
            error: error_object(code, &message, data),
        },
        message,
    )
}

fn error_object(code: i32, message: &str, data: Value) -> JsonObject {
    let mut error = JsonObject::new();
    error.insert("code".into(), json!(code));
    error.insert("message".into(), json!(message));
    if !data.is_null() {
        error.insert("data".into(), data);
    }
    error
}

/// The message of the error a failed run stored (`{"error": {kind, message}}`).
fn stored_error(view: &ApprovalView) -> Option<String> {
    view.result
        .as_ref()?
        .pointer("/error/message")?
        .as_str()
        .map(str::to_string)
}

/// Names of those who decided `decision` ("Bob, Carol"), with their reasons for a denial.
fn deciders(view: &ApprovalView, decision: &str) -> String {
    let names: Vec<String> = view
        .decisions
        .iter()
        .filter(|d| d.decision == decision)
        .map(|d| match &d.reason {
            Some(r) if decision == "deny" && !r.is_empty() => format!("{} ({r})", d.approver_name),
            _ => d.approver_name.clone(),
        })
        .collect();
    if names.is_empty() {
        "policy".to_string()
    } else {
        names.join(", ")
    }
}

fn parse(rfc3339: &str) -> Option<jiff::Timestamp> {
    rfc3339.parse().ok()
}

/// `14:05Z` when `at` is on today's UTC date, else `2026-11-24 14:05Z`.
fn clock(at: jiff::Timestamp, now: jiff::Timestamp) -> String {
    if at.strftime("%F").to_string() == now.strftime("%F").to_string() {
        at.strftime("%H:%MZ").to_string()
    } else {
        at.strftime("%F %H:%MZ").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::DecisionRecord;
    use crate::core::approval::sample_view;

    fn view(state: ApprovalState) -> ApprovalView {
        let mut view = sample_view(state);
        view.state_reason = None;
        view.result = None;
        view
    }

    fn now() -> jiff::Timestamp {
        "2026-11-23T13:30:00Z".parse().expect("timestamp")
    }

    #[test]
    fn a_pending_request_is_working_with_its_count_expiry_and_ttl() {
        let t = task(&view(ApprovalState::Pending), now(), None);
        assert_eq!(t.status(), TaskStatus::Working);
        assert_eq!(t.task.task_id, "ap-1");
        assert_eq!(
            t.task.status_message.as_deref(),
            Some("awaiting approval 1/2, expires 14:05Z")
        );
        assert_eq!(t.task.ttl_ms, Some(3_600_000));
        assert_eq!(t.task.last_updated_at, "2026-11-23T13:10:00Z");
        let tomorrow = task(
            &view(ApprovalState::Pending),
            "2026-11-22T23:00:00Z".parse().expect("timestamp"),
            None,
        );
        assert!(
            tomorrow
                .task
                .status_message
                .as_deref()
                .is_some_and(|m| m.ends_with("expires 2026-11-23 14:05Z")),
            "{:?}",
            tomorrow.task.status_message
        );
    }

    #[test]
    fn an_executed_call_completes_with_the_tool_answer_and_a_failed_run_with_is_error() {
        let mut done = view(ApprovalState::Executed);
        done.result = Some(json!({"restarted": "web"}));
        let wire = serde_json::to_value(task(&done, now(), None)).expect("serializes");
        assert_eq!(wire["status"], "completed");
        assert_eq!(
            wire["result"]["structuredContent"],
            json!({"restarted": "web"})
        );
        assert_ne!(wire["result"]["isError"], json!(true));

        let mut failed = view(ApprovalState::Failed);
        failed.state_reason = Some("target changed".into());
        failed.result = Some(json!({"error": {"kind": "forbidden", "message": "target changed"}}));
        let wire = serde_json::to_value(task(&failed, now(), None)).expect("serializes");
        assert_eq!(wire["status"], "completed", "{wire}");
        assert_eq!(wire["result"]["isError"], json!(true));
        assert_eq!(wire["result"]["content"][0]["text"], "target changed");
    }

    #[test]
    fn denied_expired_and_unrun_requests_fail_and_withdrawn_ones_are_cancelled() {
        let mut denied = view(ApprovalState::Denied);
        denied.decisions.push(DecisionRecord {
            approver_sub: "carol".into(),
            approver_name: "Carol".into(),
            decision: "deny".into(),
            reason: Some("not during the sale".into()),
            at_ms: 2,
        });
        let wire = serde_json::to_value(task(&denied, now(), None)).expect("serializes");
        assert_eq!(wire["status"], "failed");
        assert_eq!(wire["error"]["code"], json!(HELD_CALL_NOT_RUN));
        assert_eq!(wire["error"]["data"]["state"], "denied");
        assert!(
            wire["statusMessage"]
                .as_str()
                .is_some_and(|m| m.contains("Carol (not during the sale)")),
            "{wire}"
        );

        let wire = serde_json::to_value(task(&view(ApprovalState::Expired), now(), None))
            .expect("serializes");
        assert_eq!(wire["status"], "failed");
        assert_eq!(wire["error"]["data"]["state"], "expired");

        let mut cut = view(ApprovalState::Interrupted);
        cut.state_reason = Some("outcome unknown".into());
        let wire = serde_json::to_value(task(&cut, now(), None)).expect("serializes");
        assert_eq!(wire["error"]["code"], json!(-32603));
        assert_eq!(wire["error"]["message"], "outcome unknown");

        let t = task(&view(ApprovalState::Cancelled), now(), None);
        assert_eq!(t.status(), TaskStatus::Cancelled);
    }
}
