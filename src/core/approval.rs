//! The approval gate: requests that policy holds for humans, N-of-M decisions, exactly-once
//! execution of the stored call, expiry, recovery after a crash. Every state change is one
//! conditional update in the store, so racing approvers or replicas can never run a call twice.
//!
//! It holds only the state machine: the approved call runs through `core::invoke` (the path a
//! direct call takes) and every audit record is written through `core::audit`. The run is a
//! task of its own, so an approver who disconnects cannot cut it off; before it runs, the
//! stored arguments are checked against their hash and the policy in force decides again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast;

pub use crate::core::audit::{APPROVAL_TRANSPORT, redact_args};

use crate::core::audit::{self, Record};
use crate::core::context::{ApprovalLookup, ToolContext};
use crate::core::dispatch::{Dispatcher, settle};
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::invoke::{self, BudgetRequest, Invocation, Invoked};
use crate::core::policy::{ApprovalRule, Effect, PolicyHandle, PolicyInput};
use crate::core::principal::Principal;
use crate::core::registry::{Entry, Registry};
use crate::core::tool::{PreparedCall, Target};
use crate::metrics;
use crate::store::{
    ApprovalRecord, ApprovalState, DecisionOutcome, DecisionRecord, NewApproval, Requester, Store,
    StoreError, Visibility, now_ms,
};

/// How many rows one recovery pass looks at per state (rows stuck there are few).
const RECOVERY_PAGE: i64 = 10_000;

/// Everything the gate needs besides the registry: policy, store, links, notifications.
pub struct Gate {
    pub(crate) policy: Arc<PolicyHandle>,
    pub(crate) store: Store,
    /// Base URL for `approve_url` links.
    pub public_url: String,
    pub webhook: Option<crate::core::notify::Webhook>,
    changes: broadcast::Sender<String>,
    /// Arguments larger than this (JSON bytes) are audited as a summary (`audit.max_args_bytes`).
    pub(crate) audit_max_args_bytes: usize,
}

impl Gate {
    pub fn new(
        policy: Arc<PolicyHandle>,
        store: Store,
        public_url: String,
        webhook: Option<crate::core::notify::Webhook>,
    ) -> Self {
        let (changes, _) = broadcast::channel(256);
        match store.redaction_key() {
            Ok(key) => crate::core::audit::install_redaction_key(key),
            Err(e) => tracing::warn!(error = %e, "redaction digests keyed by a process key"),
        }
        Self {
            policy,
            store,
            public_url,
            webhook,
            changes,
            audit_max_args_bytes: super::config::DEFAULT_AUDIT_MAX_ARGS_BYTES,
        }
    }

    /// Arguments larger than `bytes` are audited as a summary (see `audit::cap_args`).
    pub fn with_audit_max_args_bytes(mut self, bytes: usize) -> Self {
        self.audit_max_args_bytes = bytes;
        self
    }

    pub fn approve_url(&self, id: &str) -> String {
        format!("{}/approvals/{id}", self.public_url)
    }

    /// Tell waiters (approval.status, A2A streams) that a request changed.
    pub fn changed(&self, id: &str) {
        let _ = self.changes.send(id.to_string());
    }

    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    fn notify(&self, text: String) {
        if let Some(hook) = &self.webhook {
            hook.send(text);
        }
    }
}

/// Why an approval action was refused. Each maps to an HTTP status and a stable code.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("approval request `{0}` not found")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("you requested this call; another person must approve it (no self-approval)")]
    SelfApproval,
    #[error("you already decided on this request")]
    AlreadyDecided,
    #[error("the request is {0}, not pending; only pending requests can be decided or cancelled")]
    NotPending(ApprovalState),
    #[error("the request expired before this decision")]
    Expired,
    #[error("this request's policy asks for a reason: send a non-empty `reason`")]
    ReasonRequired,
    #[error("audit or store failure; nothing was changed: {0}")]
    Store(String),
}

impl ApprovalError {
    pub fn code(&self) -> &'static str {
        match self {
            ApprovalError::NotFound(_) => "not_found",
            ApprovalError::Forbidden(_) => "forbidden",
            ApprovalError::SelfApproval => "self_approval",
            ApprovalError::AlreadyDecided => "already_decided",
            ApprovalError::NotPending(_) => "not_pending",
            ApprovalError::Expired => "expired",
            ApprovalError::ReasonRequired => "reason_required",
            ApprovalError::Store(_) => "store_error",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            ApprovalError::NotFound(_) => 404,
            ApprovalError::Forbidden(_) | ApprovalError::SelfApproval => 403,
            ApprovalError::AlreadyDecided
            | ApprovalError::NotPending(_)
            | ApprovalError::Expired => 409,
            ApprovalError::ReasonRequired => 422,
            ApprovalError::Store(_) => 503,
        }
    }
}

impl From<StoreError> for ApprovalError {
    fn from(e: StoreError) -> Self {
        ApprovalError::Store(e.to_string())
    }
}

/// The permission that sees every approval request and its result (grant it with a policy
/// `permissions:` map, e.g. `security-team: [toolgate.auditor]`). Without it a person sees the
/// requests they asked for and those they may decide.
pub const AUDITOR_ROLE: &str = "toolgate.auditor";

/// An approval request as people and agents see it: arguments redacted, decisions, result.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalView {
    pub id: String,
    pub tool: String,
    pub state: ApprovalState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    pub risk: String,
    pub target: Value,
    pub args: Value,
    pub args_sha256: String,
    pub requester: Requester,
    pub created_at: String,
    pub expires_at: String,
    /// When the request last changed state (a decision, the run, its end).
    pub updated_at: String,
    pub required_approvals: u32,
    pub approvals: u32,
    pub approver_roles: Vec<String>,
    pub reason_required: bool,
    pub rule: String,
    pub preview: Value,
    pub decisions: Vec<DecisionRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    pub approve_url: String,
}

pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The approval id of a call the core held for approval (its `approval_required` answer);
/// `None` for any other answer.
pub fn held_approval_id(output: &Value) -> Option<&str> {
    if output.get("status").and_then(Value::as_str) != Some("approval_required") {
        return None;
    }
    output.get("approval_id").and_then(Value::as_str)
}

impl Dispatcher {
    /// Policy said `require_approval`: preview, persist, audit, answer at once.
    pub(crate) async fn request_approval(
        &self,
        entry: &Entry,
        ctx: &ToolContext,
        call: &dyn PreparedCall,
        held: HeldCall<'_>,
    ) -> Result<Value, ToolError> {
        let HeldCall {
            target,
            rule,
            rule_name,
            budget,
            requester_roles,
        } = held;
        let spec = entry.spec();
        let args = call.args();
        let preview = match tokio::time::timeout(self.settings().timeout, call.preview(ctx)).await {
            Ok(Ok(Some(p))) => serde_json::to_value(p).unwrap_or(Value::Null),
            Ok(Ok(None)) => {
                json!({"summary": format!("would run {} with the arguments shown", spec.name)})
            }
            Ok(Err(e)) => {
                self.audit(Record {
                    principal: &ctx.principal,
                    transport: ctx.transport,
                    tool: spec.name,
                    args: redact_args(entry, args),
                    decision: "preview_failed",
                    rule: Some(rule_name.to_string()),
                    approval_id: None,
                    result_summary: Some(audit::summarize(&Err(e.clone()))),
                    trace_id: Some(ctx.request_id.clone()),
                })
                .await?;
                return Err(ToolError::new(
                    e.kind,
                    format!(
                        "the dry run of this call failed, so no approval was requested and nothing was executed: {}",
                        e.message
                    ),
                ));
            }
            Err(_) => {
                return Err(ToolError::new(
                    ToolErrorKind::Timeout,
                    "the dry run for the approval preview timed out; nothing was queued",
                ));
            }
        };
        let now = now_ms();
        let ttl_ms = i64::try_from(rule.ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let id = uuid::Uuid::new_v4().to_string();
        let request = NewApproval {
            id: id.clone(),
            tool: spec.name.to_string(),
            args_sha256: audit::args_sha256(args),
            args: args.clone(),
            target: serde_json::to_value(target).unwrap_or(Value::Null),
            risk: spec.risk.as_str().to_string(),
            requester: Requester {
                sub: ctx.principal.sub.clone(),
                name: ctx.principal.name.clone(),
                transport: ctx.transport.to_string(),
            },
            created_at_ms: now,
            expires_at_ms: now.saturating_add(ttl_ms),
            required_approvals: rule.approvals,
            approver_roles: rule.approver_roles.clone(),
            reason_required: rule.reason_required,
            allow_target_change: rule.allow_target_change,
            rule: rule_name.to_string(),
            preview: preview.clone(),
            call_context: serde_json::to_value(StoredCall {
                budget,
                requester_roles,
            })
            .unwrap_or(Value::Null),
        };
        self.gate()
            .store
            .insert_approval(&request)
            .await
            .map_err(|e| {
                ToolError::internal(format!(
                    "the approval request could not be stored, nothing was queued: {e}"
                ))
            })?;
        self.audit(Record {
            principal: &ctx.principal,
            transport: ctx.transport,
            tool: spec.name,
            args: redact_args(entry, args),
            decision: "approval_requested",
            rule: Some(rule_name.to_string()),
            approval_id: Some(id.clone()),
            result_summary: preview
                .get("summary")
                .and_then(Value::as_str)
                .map(str::to_string),
            trace_id: Some(ctx.request_id.clone()),
        })
        .await?;
        let approve_url = self.gate().approve_url(&id);
        self.gate().notify(format!(
            "toolgate: {} asks to run `{}` on {} ({} approval(s) by {} needed): {} — {approve_url}",
            ctx.principal.name,
            spec.name,
            target_text(target),
            rule.approvals,
            rule.approver_roles.join(" or "),
            preview
                .get("summary")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        ));
        Ok(json!({
            "status": "approval_required",
            "approval_id": id,
            "expires_at": rfc3339(request.expires_at_ms),
            "required_approvals": rule.approvals,
            "approver_roles": rule.approver_roles,
            "approve_url": approve_url,
            "preview": preview.get("summary").cloned().unwrap_or(Value::Null),
            "next": "A human must approve this call. Poll with approval.status {approval_id, wait_seconds} to get the result once it ran.",
        }))
    }

    /// The request as `viewer` may see it (see [`StoreLookup::approval_for`]).
    pub async fn approval_for(
        &self,
        viewer: &Principal,
        id: &str,
    ) -> Result<ApprovalView, ApprovalError> {
        self.lookup().approval_for(viewer, id).await
    }

    /// The newest requests `viewer` may see (see [`StoreLookup::approval_for`]).
    pub async fn approvals_for(
        &self,
        viewer: &Principal,
        state: Option<ApprovalState>,
        limit: i64,
    ) -> Result<Vec<ApprovalView>, ApprovalError> {
        self.lookup().approvals_for(viewer, state, limit).await
    }

    /// The request as its requester follows their own call (see [`StoreLookup::held_call`]).
    pub async fn held_call(
        &self,
        requester: &Principal,
        id: &str,
    ) -> Result<ApprovalView, ApprovalError> {
        self.lookup().held_call(requester, id).await
    }

    /// Unfiltered: for the core itself and for surfaces that checked ownership already (an
    /// A2A task's owner reads its own request). Surfaces use [`Dispatcher::approval_for`].
    pub async fn approval(&self, id: &str) -> Result<ApprovalView, ApprovalError> {
        self.lookup().approval(id).await
    }

    /// The audit records of one request, oldest first.
    pub async fn approval_audit(
        &self,
        id: &str,
    ) -> Result<Vec<crate::store::AuditRecord>, ApprovalError> {
        Ok(self.gate().store.audit_for_approval(id).await?)
    }

    /// Approve as `approver`. When this completes the count, the stored call runs now, once.
    pub async fn approve(
        self: &Arc<Self>,
        approver: &Principal,
        id: &str,
        reason: Option<String>,
    ) -> Result<ApprovalView, ApprovalError> {
        self.decide(approver, id, reason, true).await
    }

    pub async fn deny(
        self: &Arc<Self>,
        approver: &Principal,
        id: &str,
        reason: Option<String>,
    ) -> Result<ApprovalView, ApprovalError> {
        self.decide(approver, id, reason, false).await
    }

    async fn decide(
        self: &Arc<Self>,
        approver: &Principal,
        id: &str,
        reason: Option<String>,
        approve: bool,
    ) -> Result<ApprovalView, ApprovalError> {
        let store = &self.gate().store;
        // Approver roles are permissions: roles plus what the policy's `permissions:` grants.
        let approver = &self.gate().policy.current().effective(approver);
        let rec = store
            .get_approval(id)
            .await?
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        let refused = if !rec
            .approver_roles
            .iter()
            .any(|r| approver.roles.contains(r))
        {
            Some(ApprovalError::Forbidden(format!(
                "deciding on this request needs one of the roles {}; you have {}",
                rec.approver_roles.join(", "),
                if approver.roles.is_empty() {
                    "none".to_string()
                } else {
                    approver.roles.join(", ")
                }
            )))
        } else if approver.sub == rec.requester.sub {
            Some(ApprovalError::SelfApproval)
        } else {
            None
        };
        if let Some(err) = refused {
            // A refused decision leaves its trace in the audit log, nothing else.
            self.audit(Record {
                principal: approver,
                transport: APPROVAL_TRANSPORT,
                tool: &rec.tool,
                args: self.redacted(&rec),
                decision: "decision_refused",
                rule: Some(rec.rule.clone()),
                approval_id: Some(id.to_string()),
                result_summary: Some(err.to_string()),
                trace_id: None,
            })
            .await
            .map_err(|e| ApprovalError::Store(e.message))?;
            return Err(err);
        }
        let reason = reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        if rec.reason_required && reason.is_none() {
            return Err(ApprovalError::ReasonRequired);
        }
        let decision = DecisionRecord {
            approver_sub: approver.sub.clone(),
            approver_name: approver.name.clone(),
            decision: if approve { "approve" } else { "deny" }.to_string(),
            reason: reason.clone(),
            at_ms: now_ms(),
        };
        let outcome = store.add_decision(id, &decision, decision.at_ms).await?;
        let state = match outcome {
            DecisionOutcome::NotFound => return Err(ApprovalError::NotFound(id.to_string())),
            DecisionOutcome::AlreadyDecided => return Err(ApprovalError::AlreadyDecided),
            DecisionOutcome::NotPending(state) => return Err(ApprovalError::NotPending(state)),
            DecisionOutcome::Expired => {
                self.audit_approval_by_system(&rec, "expired", None)
                    .await
                    .ok();
                self.gate().changed(id);
                return Err(ApprovalError::Expired);
            }
            DecisionOutcome::Recorded { state, .. } => state,
        };
        let audited = self
            .audit_approval(
                &rec,
                approver,
                if approve { "approved" } else { "denied" },
                reason.clone(),
            )
            .await;
        if let Err(e) = audited {
            if state == ApprovalState::Approved {
                self.fail_unrun(&rec, &e).await;
            }
            self.gate().changed(id);
            return Err(ApprovalError::Store(e.message));
        }
        self.gate().changed(id);
        self.gate().notify(format!(
            "toolgate: {} {} `{}` ({id}){}",
            approver.name,
            if approve { "approved" } else { "denied" },
            rec.tool,
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        ));
        if state == ApprovalState::Approved {
            self.run_approved(id).await?;
        }
        self.approval(id).await
    }

    /// An approval completed but its audit record could not be written: the call does not run
    /// (fail closed) and the request ends `failed` instead of waiting in `approved` for ever.
    async fn fail_unrun(&self, rec: &ApprovalRecord, cause: &ToolError) {
        let reason = format!(
            "not executed: the audit log could not be written when the approval completed ({}); request it again",
            cause.message
        );
        let moved = self
            .gate()
            .store
            .transition(
                &rec.id,
                ApprovalState::Approved,
                ApprovalState::Failed,
                Some(&reason),
                None,
                now_ms(),
            )
            .await;
        match moved {
            Ok(_) => {
                // Best effort: the audit log just failed, it may work again.
                self.audit_approval_by_system(rec, "failed", Some(reason))
                    .await
                    .ok();
            }
            Err(e) => tracing::error!(approval_id = %rec.id, error = %e,
                "could not mark an approved call as failed; start-up recovery will"),
        }
    }

    /// The requester withdraws a pending request.
    pub async fn cancel(
        &self,
        requester: &Principal,
        id: &str,
    ) -> Result<ApprovalView, ApprovalError> {
        let store = &self.gate().store;
        let rec = store
            .get_approval(id)
            .await?
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        if rec.requester.sub != requester.sub {
            return Err(ApprovalError::Forbidden(
                "only the requester can cancel a request".into(),
            ));
        }
        if !store
            .transition(
                id,
                ApprovalState::Pending,
                ApprovalState::Cancelled,
                Some("cancelled by the requester"),
                None,
                now_ms(),
            )
            .await?
        {
            let now = store
                .get_approval(id)
                .await?
                .map(|r| r.state)
                .unwrap_or(rec.state);
            return Err(ApprovalError::NotPending(now));
        }
        self.audit_approval(&rec, requester, "cancelled", None)
            .await
            .map_err(|e| ApprovalError::Store(e.message))?;
        self.gate().changed(id);
        self.approval(id).await
    }

    /// Run an approved request's call as a task the core owns: the approver's request awaits
    /// its outcome, but dropping that await (a client that disconnects) does not cancel it.
    async fn run_approved(self: &Arc<Self>, id: &str) -> Result<(), ApprovalError> {
        let me = self.clone();
        let owned = id.to_string();
        let task = tokio::spawn(async move { me.execute_approved(&owned).await });
        match task.await {
            Ok(outcome) => outcome,
            Err(e) => {
                // Only a panic ends the task early (nothing aborts it): what ran is unknown.
                tracing::error!(approval_id = %id, error = %e, "the execution task failed");
                let reason = format!(
                    "toolgate failed while running the call ({e}); outcome unknown — check the target before requesting it again"
                );
                if let Ok(true) = self
                    .gate()
                    .store
                    .transition(
                        id,
                        ApprovalState::Executing,
                        ApprovalState::Interrupted,
                        Some(&reason),
                        None,
                        now_ms(),
                    )
                    .await
                    && let Ok(Some(rec)) = self.gate().store.get_approval(id).await
                {
                    self.audit_approval_by_system(&rec, "interrupted", Some(reason.clone()))
                        .await
                        .ok();
                }
                self.gate().changed(id);
                Err(ApprovalError::Store(reason))
            }
        }
    }

    /// Run the stored call of an approved request, unless another approver or replica already
    /// does: only the caller that wins `approved → executing` runs it. The outcome (executed,
    /// failed, refused, timed out) always ends in the request and in the audit log.
    async fn execute_approved(&self, id: &str) -> Result<(), ApprovalError> {
        let store = &self.gate().store;
        if !store
            .transition(
                id,
                ApprovalState::Approved,
                ApprovalState::Executing,
                None,
                None,
                now_ms(),
            )
            .await?
        {
            return Ok(());
        }
        self.gate().changed(id);
        let rec = store
            .get_approval(id)
            .await?
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        let started = Instant::now();
        let (result, audited) = match self.run_stored(&rec).await {
            Run::Invoked(Invoked { result, audited }) => (result, audited),
            Run::Failed(e) => {
                let result = Err(e);
                let requester = Principal::new(
                    rec.requester.sub.clone(),
                    rec.requester.name.clone(),
                    Vec::new(),
                );
                let audited = self
                    .audit_approval(&rec, &requester, "failed", Some(audit::summarize(&result)))
                    .await;
                (result, audited)
            }
            Run::Refused(why) => {
                let message = why.to_string();
                tracing::warn!(approval_id = %id, tool = %rec.tool, reason = ?message, "approved call refused at execution");
                let audited = self
                    .audit_approval_by_system(&rec, "execution_refused", Some(message.clone()))
                    .await;
                (Err(ToolError::forbidden(message)), audited)
            }
        };
        let (to, mut reason, stored) = match &result {
            Ok(v) => (ApprovalState::Executed, None, v.clone()),
            Err(e) => (
                ApprovalState::Failed,
                Some(e.message.clone()),
                json!({"error": e}),
            ),
        };
        if let Err(e) = &audited {
            // The outcome is kept in the request even when the audit log cannot take it.
            let note = format!(
                "the audit record of this outcome could not be written: {}",
                e.message
            );
            reason = Some(match reason {
                Some(r) => format!("{r}; {note}"),
                None => note,
            });
        }
        store
            .transition(
                id,
                ApprovalState::Executing,
                to,
                reason.as_deref(),
                Some(&stored),
                now_ms(),
            )
            .await?;
        let outcome = match (&result, to) {
            (Ok(_), _) => "ok",
            (Err(e), _) if e.kind == ToolErrorKind::Timeout => "timeout",
            _ => "failed",
        };
        metrics::tool_call(&rec.tool, APPROVAL_TRANSPORT, outcome, started.elapsed());
        self.gate().changed(id);
        self.gate().notify(format!(
            "toolgate: `{}` ({id}) {}",
            rec.tool,
            audit::summarize(&result)
        ));
        audited.map_err(|e| ApprovalError::Store(e.message))
    }

    /// Everything that must hold before the stored call runs, then the run itself through
    /// the path a direct call takes.
    async fn run_stored(&self, rec: &ApprovalRecord) -> Run {
        let Ok(entry) = self.registry().get(&rec.tool) else {
            return Run::Refused(NotRun::Invalid(format!(
                "tool `{}` is no longer registered; not executed",
                rec.tool
            )));
        };
        // Read-only mode or toolsets changed since the request: the server no longer offers it.
        if let Err(e) = self.registry().check_offered(entry, &rec.tool) {
            return Run::Refused(NotRun::Invalid(e.error.message));
        }
        let spec = entry.spec();
        let now = audit::args_sha256(&rec.args);
        if now != rec.args_sha256 {
            return Run::Refused(NotRun::ArgsAltered {
                recorded: rec.args_sha256.clone(),
                now,
            });
        }
        let Ok(stored) = serde_json::from_value::<StoredCall>(rec.call_context.clone()) else {
            return Run::Refused(NotRun::NoContext);
        };
        let mut call = match entry.tool.clone().prepare(rec.args.clone()) {
            Ok(call) => call,
            Err(e) => return Run::Refused(NotRun::Invalid(format!("{}; not executed", e.message))),
        };
        let policy = self.gate().policy.current();
        let requester = policy.effective(&Principal::new(
            rec.requester.sub.clone(),
            rec.requester.name.clone(),
            stored.requester_roles,
        ));
        let mut ctx = ToolContext {
            principal: requester,
            transport: APPROVAL_TRANSPORT,
            request_id: rec.id.clone(),
            page: Default::default(),
            adapters: self.adapters().clone(),
            approvals: Some(self.approval_lookup()),
            progress: None,
            knowledge: self.knowledge(),
            review: self.review(),
        };
        // The stored arguments were settled at request time; settling them again must give the
        // target that was approved (a kind that discovery now maps elsewhere, a cluster whose
        // default namespace changed: the approvers did not approve that).
        let target = match settle(self.settings(), call.as_mut(), &ctx).await {
            Ok(target) => target,
            Err(e) => return Run::Failed(e),
        };
        let approved = serde_json::from_value::<Target>(rec.target.clone()).ok();
        if approved.as_ref() != Some(&target) {
            return Run::Refused(NotRun::Invalid(format!(
                "the call now resolves to {}, not to the approved {}; not executed — request it again",
                target.describe(),
                approved.map_or_else(|| "(unreadable target)".to_string(), |t| t.describe())
            )));
        }
        // The policy in force now decides again, on the target the call resolves to now.
        let decision = policy.decide(&PolicyInput {
            tool: spec.name,
            risk: spec.risk,
            args: call.args(),
            principal: &ctx.principal,
            target: &target,
        });
        let given = rec
            .decisions
            .iter()
            .filter(|d| d.decision == "approve")
            .count() as u32;
        match decision.effect {
            Effect::Deny { message } => {
                return Run::Refused(NotRun::Denied {
                    message,
                    rule: decision.rule,
                });
            }
            Effect::RequireApproval(rule) if rule.approvals > given => {
                return Run::Refused(NotRun::MoreApprovals {
                    rule: decision.rule,
                    needed: rule.approvals,
                    given,
                });
            }
            Effect::RequireApproval(_) | Effect::Allow => {}
        }
        let out_budget = match stored.budget.resolve(spec, self.settings(), call.args()) {
            Ok(b) => b,
            Err(e) => return Run::Refused(NotRun::Invalid(format!("{}; not executed", e.message))),
        };
        ctx.page = out_budget.page().clone();
        let previewed = rec
            .preview
            .get("target_version")
            .and_then(Value::as_str)
            .map(str::to_string);
        if previewed.is_some() && !rec.allow_target_change {
            let now = match tokio::time::timeout(self.settings().timeout, call.target_version(&ctx))
                .await
            {
                Ok(Ok(now)) => now,
                Ok(Err(e)) => return Run::Failed(e),
                Err(_) => {
                    return Run::Failed(ToolError::new(
                        ToolErrorKind::Timeout,
                        "re-reading the target timed out; not executed",
                    ));
                }
            };
            if now != previewed {
                return Run::Failed(ToolError::new(
                    ToolErrorKind::Forbidden,
                    format!(
                        "target changed since approval ({} at preview, {} now); not executed — request it again",
                        previewed.unwrap_or_default(),
                        now.unwrap_or_else(|| "gone".into())
                    ),
                ));
            }
        }
        Run::Invoked(
            self.invoke(Invocation {
                entry,
                call,
                ctx,
                budget: out_budget,
                rule: rec.rule.clone(),
                approval_id: Some(rec.id.clone()),
            })
            .await,
        )
    }

    /// Expire pending requests past their TTL; returns how many.
    pub async fn sweep_expired(&self) -> Result<usize, ApprovalError> {
        let ids = self.gate().store.expire_due(now_ms()).await?;
        for id in &ids {
            if let Some(rec) = self.gate().store.get_approval(id).await? {
                self.audit_approval_by_system(
                    &rec,
                    "expired",
                    Some("no decision before the TTL".into()),
                )
                .await
                .map_err(|e| ApprovalError::Store(e.message))?;
                self.gate().notify(format!(
                    "toolgate: `{}` ({id}) expired without a decision",
                    rec.tool
                ));
            }
            self.gate().changed(id);
        }
        Ok(ids.len())
    }

    /// Calls that no live server can still be running were cut off by a stop: `executing`
    /// ones are marked `interrupted` (outcome unknown) with the evidence — when the run began,
    /// which approver completed the approval, the arguments' hash — and are never re-run by
    /// themselves; `approved` ones that never started are marked `failed` (nothing ran). With
    /// one server (SQLite) that is every such call at start-up; with replicas sharing
    /// PostgreSQL, only calls older than the longest a call may run, since another replica may
    /// be running it.
    pub async fn recover_interrupted(&self) -> Result<usize, ApprovalError> {
        let store = &self.gate().store;
        let now = now_ms();
        let cutoff = if store.backend_name() == "sqlite" {
            now
        } else {
            let longest = self
                .registry()
                .entries()
                .iter()
                .map(|e| invoke::time_limit(e.spec(), self.settings()))
                .max()
                .unwrap_or(self.settings().timeout);
            now - (longest.as_millis() as i64 + 120_000)
        };
        let mut moved = 0;
        for rec in store
            .list_approvals(Some(ApprovalState::Executing), RECOVERY_PAGE)
            .await?
            .into_iter()
            .filter(|r| r.updated_at_ms <= cutoff)
        {
            let evidence = format!(
                "toolgate stopped while the call was executing; outcome unknown — check the target before requesting it again (execution began {}, {}, args sha256 {})",
                rfc3339(rec.updated_at_ms),
                completed_by(&rec),
                rec.args_sha256
            );
            if store
                .transition(
                    &rec.id,
                    ApprovalState::Executing,
                    ApprovalState::Interrupted,
                    Some(&evidence),
                    None,
                    now,
                )
                .await?
            {
                tracing::warn!(approval_id = %rec.id, tool = %rec.tool, "call was executing when the server stopped; marked interrupted");
                self.audit_approval_by_system(&rec, "interrupted", Some(evidence))
                    .await
                    .map_err(|e| ApprovalError::Store(e.message))?;
                self.gate().changed(&rec.id);
                moved += 1;
            }
        }
        for rec in store
            .list_approvals(Some(ApprovalState::Approved), RECOVERY_PAGE)
            .await?
            .into_iter()
            .filter(|r| r.updated_at_ms <= cutoff)
        {
            let reason = format!(
                "not executed: toolgate stopped after the approval completed ({}, {}) and before the call started; request it again",
                rfc3339(rec.updated_at_ms),
                completed_by(&rec)
            );
            if store
                .transition(
                    &rec.id,
                    ApprovalState::Approved,
                    ApprovalState::Failed,
                    Some(&reason),
                    None,
                    now,
                )
                .await?
            {
                tracing::warn!(approval_id = %rec.id, tool = %rec.tool, "approved call never started; marked failed");
                self.audit_approval_by_system(&rec, "failed", Some(reason))
                    .await
                    .map_err(|e| ApprovalError::Store(e.message))?;
                self.gate().changed(&rec.id);
                moved += 1;
            }
        }
        Ok(moved)
    }
}

/// "approval completed by NAME (sub)": the last approver, whose decision started the run.
fn completed_by(rec: &ApprovalRecord) -> String {
    match rec
        .decisions
        .iter()
        .filter(|d| d.decision == "approve")
        .max_by_key(|d| d.at_ms)
    {
        Some(d) => format!(
            "approval completed by {} ({}) at {}",
            d.approver_name,
            d.approver_sub,
            rfc3339(d.at_ms)
        ),
        None => "no approval recorded".to_string(),
    }
}

/// What the core keeps with a held call (`call_context`) to run it later exactly as asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredCall {
    budget: BudgetRequest,
    /// The requester's roles as their identity provider gave them; the policy in force at
    /// execution expands them again.
    requester_roles: Vec<String>,
}

/// A call policy holds for approval, as the dispatcher hands it over.
pub(crate) struct HeldCall<'a> {
    pub target: &'a Target,
    pub rule: &'a ApprovalRule,
    pub rule_name: &'a str,
    pub budget: BudgetRequest,
    pub requester_roles: Vec<String>,
}

/// How the stored call's turn went.
enum Run {
    /// It ran (or timed out) through the invoke path, which audited the outcome.
    Invoked(Invoked),
    /// It could not start (the target changed or could not be re-read).
    Failed(ToolError),
    /// A check refused it before anything ran.
    Refused(NotRun),
}

/// Why an approved call was refused when its turn came; nothing ran.
#[derive(Debug, thiserror::Error)]
enum NotRun {
    #[error(
        "the stored arguments do not match the hash recorded with the request (sha256 {recorded} recorded, {now} now): they were changed after the request was made; not executed — request it again"
    )]
    ArgsAltered { recorded: String, now: String },
    #[error("policy now denies this call: {message} (policy rule {rule}); not executed")]
    Denied { message: String, rule: String },
    #[error(
        "policy rule {rule} now needs {needed} approval(s) and this request has {given}; not executed — request it again to collect them"
    )]
    MoreApprovals {
        rule: String,
        needed: u32,
        given: u32,
    },
    #[error(
        "this request was stored by an older toolgate without its call context (output budget, requester roles), so the policy cannot decide again; not executed — request it again"
    )]
    NoContext,
    #[error("{0}")]
    Invalid(String),
}

fn target_text(t: &Target) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &t.cluster {
        parts.push(format!("cluster {c}"));
    }
    match (&t.kind, &t.namespace, &t.name) {
        (Some(k), Some(ns), Some(n)) => parts.push(format!("{k} {ns}/{n}")),
        (Some(k), None, Some(n)) => parts.push(format!("{k} {n}")),
        (_, Some(ns), None) => parts.push(format!("namespace {ns}")),
        _ => {}
    }
    if parts.is_empty() {
        "its target".into()
    } else {
        parts.join(", ")
    }
}

/// What reads approval requests: the gate (store, policy, links, change feed) and the registry
/// (arguments are shown redacted by their tool's schema). The dispatcher's approval queries and
/// `approval.status` (through [`ApprovalLookup`]) read through it; it holds no dispatcher.
pub struct StoreLookup {
    gate: Arc<Gate>,
    registry: Arc<Registry>,
    /// For [`Tool::requester_result`](crate::core::tool::Tool::requester_result).
    adapters: Arc<crate::adapters::Adapters>,
}

impl StoreLookup {
    pub(crate) fn new(
        gate: Arc<Gate>,
        registry: Arc<Registry>,
        adapters: Arc<crate::adapters::Adapters>,
    ) -> Self {
        Self {
            gate,
            registry,
            adapters,
        }
    }

    /// `view` as its requester gets it: an executed request of a tool that keeps part of its
    /// answer out of the store (a revealed secret) has that part read again by the tool, for
    /// the requester only; everyone else, and the store, see the stored answer.
    async fn for_requester(&self, viewer: &Principal, mut view: ApprovalView) -> ApprovalView {
        if view.state != ApprovalState::Executed || view.requester.sub != viewer.sub {
            return view;
        }
        let (Ok(entry), Some(stored)) = (self.registry.get(&view.tool), view.result.clone()) else {
            return view;
        };
        let Ok(Some(rec)) = self.gate.store.get_approval(&view.id).await else {
            return view;
        };
        let ctx = ToolContext {
            principal: viewer.clone(),
            transport: APPROVAL_TRANSPORT,
            request_id: view.id.clone(),
            page: Default::default(),
            adapters: self.adapters.clone(),
            approvals: None,
            progress: None,
            // A requester's result is re-read from its upstream (secret.read); no index needed.
            knowledge: None,
            review: None,
        };
        match entry.tool.requester_result(&ctx, &rec.args, &stored).await {
            Ok(Some(full)) => view.result = Some(full),
            Ok(None) => {}
            Err(e) => view.result = Some(json!({"error": e})),
        }
        view
    }

    fn view(&self, rec: ApprovalRecord) -> ApprovalView {
        let args = match self.registry.get(&rec.tool) {
            Ok(entry) => redact_args(entry, &rec.args),
            Err(_) => audit::hash_value(&rec.args).into(),
        };
        let approvals = rec
            .decisions
            .iter()
            .filter(|d| d.decision == "approve")
            .count() as u32;
        ApprovalView {
            approve_url: self.gate.approve_url(&rec.id),
            id: rec.id,
            tool: rec.tool,
            state: rec.state,
            state_reason: rec.state_reason,
            risk: rec.risk,
            target: rec.target,
            args,
            args_sha256: rec.args_sha256,
            requester: rec.requester,
            created_at: rfc3339(rec.created_at_ms),
            expires_at: rfc3339(rec.expires_at_ms),
            updated_at: rfc3339(rec.updated_at_ms),
            required_approvals: rec.required_approvals,
            approvals,
            approver_roles: rec.approver_roles,
            reason_required: rec.reason_required,
            rule: rec.rule,
            preview: rec.preview,
            decisions: rec.decisions,
            result: rec.result,
        }
    }

    /// The request as `viewer` may see it: its requester, the people who may decide it (a role
    /// in its `approver_roles`) and auditors ([`AUDITOR_ROLE`]) see it, with its result;
    /// anyone else gets NotFound, as for an id that does not exist.
    pub async fn approval_for(
        &self,
        viewer: &Principal,
        id: &str,
    ) -> Result<ApprovalView, ApprovalError> {
        self.one(id, |rec| self.may_see(viewer, rec)).await
    }

    /// Request `id` when `shown` lets it be seen; NotFound otherwise, as for an unknown id.
    async fn one(
        &self,
        id: &str,
        shown: impl FnOnce(&ApprovalRecord) -> bool,
    ) -> Result<ApprovalView, ApprovalError> {
        let rec = self
            .gate
            .store
            .get_approval(id)
            .await?
            .filter(shown)
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        Ok(self.view(rec))
    }

    /// The newest requests `viewer` may see (see [`StoreLookup::approval_for`]).
    pub async fn approvals_for(
        &self,
        viewer: &Principal,
        state: Option<ApprovalState>,
        limit: i64,
    ) -> Result<Vec<ApprovalView>, ApprovalError> {
        let viewer = self.gate.policy.current().effective(viewer);
        let visibility = if viewer.roles.iter().any(|r| r == AUDITOR_ROLE) {
            Visibility::All
        } else {
            Visibility::Of {
                sub: &viewer.sub,
                roles: &viewer.roles,
            }
        };
        let records = self
            .gate
            .store
            .list_approvals_visible(state, &visibility, limit)
            .await?;
        Ok(records.into_iter().map(|r| self.view(r)).collect())
    }

    /// The request only as the person who asked for it: anyone else, approvers and auditors
    /// included, gets NotFound, as for an id that does not exist (an MCP task is its
    /// requester's handle on the call; approvers have the approval API).
    pub async fn held_call(
        &self,
        requester: &Principal,
        id: &str,
    ) -> Result<ApprovalView, ApprovalError> {
        let view = self
            .one(id, |rec| rec.requester.sub == requester.sub)
            .await?;
        Ok(self.for_requester(requester, view).await)
    }

    fn may_see(&self, viewer: &Principal, rec: &ApprovalRecord) -> bool {
        let viewer = self.gate.policy.current().effective(viewer);
        rec.requester.sub == viewer.sub
            || viewer
                .roles
                .iter()
                .any(|r| r == AUDITOR_ROLE || rec.approver_roles.contains(r))
    }

    /// Unfiltered: for the core itself and for surfaces that checked ownership already (an
    /// A2A task's owner reads its own request). Surfaces use [`Dispatcher::approval_for`].
    pub async fn approval(&self, id: &str) -> Result<ApprovalView, ApprovalError> {
        self.one(id, |_| true).await
    }
}

/// `approval.status`: the store plus the in-process change feed, polling the store too so
/// changes made by another replica are seen.
impl ApprovalLookup for StoreLookup {
    fn status<'a>(
        &'a self,
        viewer: &'a Principal,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let view = self.approval_for(viewer, id).await.map_err(to_tool_error)?;
            let view = self.for_requester(viewer, view).await;
            Ok(serde_json::to_value(view).unwrap_or(Value::Null))
        })
    }

    fn wait_change<'a>(
        &'a self,
        viewer: &'a Principal,
        id: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let mut rx = self.gate.subscribe();
            // Checked once: who may see a request does not change while it waits.
            let first = self.approval_for(viewer, id).await.map_err(to_tool_error)?;
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let poll = tokio::time::sleep(Duration::from_secs(1));
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    msg = rx.recv() => {
                        if matches!(msg, Ok(ref changed) if changed != id) { continue; }
                    }
                    _ = poll => {}
                }
                let now = self.approval(id).await.map_err(to_tool_error)?;
                if now.state != first.state || now.decisions.len() != first.decisions.len() {
                    let now = self.for_requester(viewer, now).await;
                    return Ok(serde_json::to_value(now).unwrap_or(Value::Null));
                }
            }
            let now = self.approval(id).await.map_err(to_tool_error)?;
            let now = self.for_requester(viewer, now).await;
            Ok(serde_json::to_value(now).unwrap_or(Value::Null))
        })
    }
}

/// A request as surfaces show it, with every optional field set (for tests of those surfaces):
/// `k8s.rollout_restart` by Alice, created 13:05Z, expiring 14:05Z, approved 1 of 2 by Bob.
#[cfg(test)]
pub(crate) fn sample_view(state: ApprovalState) -> ApprovalView {
    ApprovalView {
        id: "ap-1".into(),
        tool: "k8s.rollout_restart".into(),
        state,
        state_reason: Some("why".into()),
        risk: "write".into(),
        target: json!({"namespace": "shop", "kind": "Deployment", "name": "web"}),
        args: json!({"name": "web"}),
        args_sha256: "00".into(),
        requester: Requester {
            sub: "alice".into(),
            name: "Alice".into(),
            transport: "mcp-http".into(),
        },
        created_at: "2026-11-23T13:05:00Z".into(),
        expires_at: "2026-11-23T14:05:00Z".into(),
        updated_at: "2026-11-23T13:10:00Z".into(),
        required_approvals: 2,
        approvals: 1,
        approver_roles: vec!["toolgate.approver".into()],
        reason_required: false,
        rule: "write-needs-approval".into(),
        preview: json!({"summary": "restart"}),
        decisions: vec![DecisionRecord {
            approver_sub: "bob".into(),
            approver_name: "Bob".into(),
            decision: "approve".into(),
            reason: Some("ok".into()),
            at_ms: 1,
        }],
        result: Some(json!({"ok": true})),
        approve_url: "http://x/approvals/ap-1".into(),
    }
}

fn to_tool_error(e: ApprovalError) -> ToolError {
    match e {
        ApprovalError::NotFound(id) => ToolError::not_found(format!(
            "approval request `{id}` not found; use the approval_id from the tool answer that asked for approval"
        )),
        other => ToolError::internal(other.to_string()),
    }
}
