//! `approval.status`: what became of a call that waits for approval — state, decisions, and
//! the execution result once it ran. Can wait for a change (≤ 60 s) and reports progress.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, TypedTool};

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusParams {
    /// From the approval_required answer.
    pub approval_id: String,
    /// Wait up to this many seconds for a change.
    #[serde(default)]
    #[schemars(range(max = 60))]
    pub wait_seconds: u32,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusOutput {
    pub approval_id: String,
    pub tool: String,
    /// pending, approved, executing, executed, failed, denied, expired, cancelled, interrupted.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    pub required_approvals: u64,
    pub approvals: u64,
    /// Each approver's decision and reason.
    pub decisions: Vec<Value>,
    pub expires_at: String,
    pub approve_url: String,
    /// The tool's answer once executed (or its error once failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

pub struct ApprovalStatus;

const TERMINAL: [&str; 6] = [
    "executed",
    "failed",
    "denied",
    "expired",
    "cancelled",
    "interrupted",
];

impl TypedTool for ApprovalStatus {
    type Params = StatusParams;
    type Output = StatusOutput;
    const NAME: &'static str = "approval.status";
    const TOOLSET: &'static str = "approval";
    const LISTS_OUTPUT_SCHEMA: bool = true;
    const TITLE: &'static str = "Approval status";
    const DESCRIPTION: &'static str = "State of a call held for human approval (pending, executed, denied, expired…), the decisions, and its result once it ran.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const OPEN_WORLD: bool = false;
    const MAX_SECONDS: Option<u64> = Some(65);

    async fn call(&self, ctx: &ToolContext, p: StatusParams) -> Result<StatusOutput, ToolError> {
        let approvals = ctx
            .approvals
            .as_ref()
            .ok_or_else(|| ToolError::internal("this server has no approval queue"))?;
        if p.wait_seconds > 60 {
            return Err(ToolError::invalid_arguments(
                "argument `wait_seconds`: at most 60",
            ));
        }
        let mut view = approvals.status(&ctx.principal, &p.approval_id).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(p.wait_seconds));
        let started_state = text(&view, "state");
        let mut step = 0.0;
        while !TERMINAL.contains(&started_state.as_str()) && tokio::time::Instant::now() < deadline
        {
            if let Some(progress) = &ctx.progress {
                step += 1.0;
                progress(
                    step,
                    None,
                    format!(
                        "waiting for approval: {} ({}/{} approvals)",
                        text(&view, "state"),
                        view.get("approvals").and_then(Value::as_u64).unwrap_or(0),
                        view.get("required_approvals")
                            .and_then(Value::as_u64)
                            .unwrap_or(0)
                    ),
                );
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            view = approvals
                .wait_change(
                    &ctx.principal,
                    &p.approval_id,
                    left.min(Duration::from_secs(5)),
                )
                .await?;
            if text(&view, "state") != started_state {
                break;
            }
        }
        Ok(StatusOutput {
            approval_id: text(&view, "id"),
            tool: text(&view, "tool"),
            state: text(&view, "state"),
            state_reason: view
                .get("state_reason")
                .and_then(Value::as_str)
                .map(str::to_string),
            required_approvals: view
                .get("required_approvals")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            approvals: view.get("approvals").and_then(Value::as_u64).unwrap_or(0),
            decisions: view
                .get("decisions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            expires_at: text(&view, "expires_at"),
            approve_url: text(&view, "approve_url"),
            result: view.get("result").cloned().filter(|v| !v.is_null()),
        })
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}
