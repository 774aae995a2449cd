//! The approval gate: requests that policy holds for humans, N-of-M decisions, exactly-once
//! execution of the stored call, expiry, recovery after a crash, and the audit trail of each.
//! Every state change is one conditional update in the store, so racing approvers or replicas
//! can never run a call twice.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::core::audit::{self, Record};
use crate::core::context::{ApprovalLookup, Page, ToolContext};
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::policy::{ApprovalRule, PolicyHandle};
use crate::core::principal::Principal;
use crate::core::registry::Entry;
use crate::core::tool::Target;
use crate::core::{budget, dispatch::Dispatcher};
use crate::store::{
    ApprovalRecord, ApprovalState, DecisionOutcome, DecisionRecord, NewApproval, Requester, Store,
    StoreError, now_ms,
};

/// Transport label of calls run by the approval engine itself.
pub const APPROVAL_TRANSPORT: &str = "approval";

/// Everything the gate needs besides the registry: policy, store, links, notifications.
pub struct Gate {
    pub(crate) policy: Arc<PolicyHandle>,
    pub(crate) store: Store,
    /// Base URL for `approve_url` links.
    pub public_url: String,
    pub webhook: Option<crate::core::notify::Webhook>,
    changes: broadcast::Sender<String>,
}

impl Gate {
    pub fn new(
        policy: Arc<PolicyHandle>,
        store: Store,
        public_url: String,
        webhook: Option<crate::core::notify::Webhook>,
    ) -> Self {
        let (changes, _) = broadcast::channel(256);
        Self {
            policy,
            store,
            public_url,
            webhook,
            changes,
        }
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

impl Dispatcher {
    fn view(&self, rec: ApprovalRecord) -> ApprovalView {
        let args = match self.registry().get(&rec.tool) {
            Ok(entry) => redact_args(entry, &rec.args),
            Err(_) => audit::hash_value(&rec.args).into(),
        };
        let approvals = rec
            .decisions
            .iter()
            .filter(|d| d.decision == "approve")
            .count() as u32;
        ApprovalView {
            approve_url: self.gate().approve_url(&rec.id),
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

    /// Append an audit record, synced to disk; a failure here fails the caller (fail closed).
    pub(crate) async fn audit(&self, record: Record<'_>) -> Result<(), ToolError> {
        self.audit_as(record, false).await
    }

    /// Append the record of a read that ran (it changed nothing): committed before the answer,
    /// synced to disk as `store.read_audit_durability` says (see `store::Durability`).
    pub(crate) async fn audit_read(&self, record: Record<'_>) -> Result<(), ToolError> {
        self.audit_as(record, true).await
    }

    async fn audit_as(&self, record: Record<'_>, read: bool) -> Result<(), ToolError> {
        let store = &self.gate().store;
        let entry = record.entry();
        let appended = if read {
            store.append_read_audit(&entry).await
        } else {
            store.append_audit(&entry).await
        };
        appended.map(|_| ()).map_err(|e| {
            tracing::error!(error = %e, "audit write failed; refusing the call");
            ToolError::internal(format!(
                "the audit log could not be written, so nothing was done: {e}"
            ))
        })
    }

    /// Policy said `require_approval`: preview, persist, audit, answer at once.
    pub(crate) async fn request_approval(
        &self,
        entry: &Entry,
        ctx: &ToolContext,
        args: Value,
        target: &Target,
        rule: &ApprovalRule,
        rule_name: &str,
    ) -> Result<Value, ToolError> {
        let spec = entry.spec();
        let preview = match tokio::time::timeout(
            self.settings().timeout,
            entry.tool.preview(ctx, &args),
        )
        .await
        {
            Ok(Ok(Some(p))) => serde_json::to_value(p).unwrap_or(Value::Null),
            Ok(Ok(None)) => {
                json!({"summary": format!("would run {} with the arguments shown", spec.name)})
            }
            Ok(Err(e)) => {
                self.audit(Record {
                    principal: &ctx.principal,
                    transport: ctx.transport,
                    tool: spec.name,
                    args: redact_args(entry, &args),
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
            args_sha256: audit::args_sha256(&args),
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
            args: redact_args(entry, &args),
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

    /// Record a request refused before it reached a tool (bad token, missing permission, identity
    /// provider down). Nothing of the token is kept. The request is refused whatever happens
    /// here, so a failed write is only logged.
    pub async fn audit_refusal(
        &self,
        transport: &str,
        who: Option<&Principal>,
        decision: &str,
        reason: &str,
    ) {
        let anonymous = Principal::new("anonymous", "anonymous", Vec::new());
        let principal = who.unwrap_or(&anonymous);
        let record = Record {
            principal,
            transport,
            tool: "-",
            args: Value::Null,
            decision,
            rule: None,
            approval_id: None,
            result_summary: Some(reason.to_string()),
            trace_id: None,
        };
        if let Err(e) = self.audit(record).await {
            tracing::error!(error = %e.message, "could not audit a refused request");
        }
    }

    pub async fn approval(&self, id: &str) -> Result<ApprovalView, ApprovalError> {
        let rec = self
            .gate()
            .store
            .get_approval(id)
            .await?
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        Ok(self.view(rec))
    }

    /// The audit records of one request, oldest first.
    pub async fn approval_audit(
        &self,
        id: &str,
    ) -> Result<Vec<crate::store::AuditRecord>, ApprovalError> {
        Ok(self.gate().store.audit_for_approval(id).await?)
    }

    pub async fn approvals(
        &self,
        state: Option<ApprovalState>,
        limit: i64,
    ) -> Result<Vec<ApprovalView>, ApprovalError> {
        let records = self.gate().store.list_approvals(state, limit).await?;
        Ok(records.into_iter().map(|r| self.view(r)).collect())
    }

    /// Approve as `approver`. When this completes the count, the stored call runs now, once.
    pub async fn approve(
        &self,
        approver: &Principal,
        id: &str,
        reason: Option<String>,
    ) -> Result<ApprovalView, ApprovalError> {
        self.decide(approver, id, reason, true).await
    }

    pub async fn deny(
        &self,
        approver: &Principal,
        id: &str,
        reason: Option<String>,
    ) -> Result<ApprovalView, ApprovalError> {
        self.decide(approver, id, reason, false).await
    }

    async fn decide(
        &self,
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
                self.audit_state(&rec, "expired", None).await.ok();
                self.gate().changed(id);
                return Err(ApprovalError::Expired);
            }
            DecisionOutcome::Recorded { state, .. } => state,
        };
        self.audit(Record {
            principal: approver,
            transport: APPROVAL_TRANSPORT,
            tool: &rec.tool,
            args: self.redacted(&rec),
            decision: if approve { "approved" } else { "denied" },
            rule: Some(rec.rule.clone()),
            approval_id: Some(id.to_string()),
            result_summary: reason.clone(),
            trace_id: None,
        })
        .await
        .map_err(|e| ApprovalError::Store(e.message))?;
        self.gate().changed(id);
        self.gate().notify(format!(
            "toolgate: {} {} `{}` ({id}){}",
            approver.name,
            if approve { "approved" } else { "denied" },
            rec.tool,
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        ));
        if state == ApprovalState::Approved {
            self.execute_approved(id).await?;
        }
        self.approval(id).await
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
        self.audit(Record {
            principal: requester,
            transport: APPROVAL_TRANSPORT,
            tool: &rec.tool,
            args: self.redacted(&rec),
            decision: "cancelled",
            rule: Some(rec.rule.clone()),
            approval_id: Some(id.to_string()),
            result_summary: None,
            trace_id: None,
        })
        .await
        .map_err(|e| ApprovalError::Store(e.message))?;
        self.gate().changed(id);
        self.approval(id).await
    }

    /// Run the stored call of an approved request, unless another approver or replica already
    /// does: only the caller that wins `approved → executing` runs it.
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
        let result = self.run_stored(&rec).await;
        let (to, reason, stored) = match &result {
            Ok(v) => (ApprovalState::Executed, None, Some(v.clone())),
            Err(e) => (
                ApprovalState::Failed,
                Some(e.message.clone()),
                Some(json!({"error": e})),
            ),
        };
        store
            .transition(
                id,
                ApprovalState::Executing,
                to,
                reason.as_deref(),
                stored.as_ref(),
                now_ms(),
            )
            .await?;
        let requester = Principal::new(
            rec.requester.sub.clone(),
            rec.requester.name.clone(),
            Vec::new(),
        );
        self.audit_state_with(
            &rec,
            &requester,
            if result.is_ok() { "executed" } else { "failed" },
            Some(audit::summarize(&result)),
        )
        .await
        .map_err(|e| ApprovalError::Store(e.message))?;
        self.gate().changed(id);
        self.gate().notify(format!(
            "toolgate: `{}` ({id}) {}",
            rec.tool,
            audit::summarize(&result)
        ));
        Ok(())
    }

    /// The exact stored call, on behalf of its requester, after re-checking the target.
    async fn run_stored(&self, rec: &ApprovalRecord) -> Result<Value, ToolError> {
        let entry = self
            .registry()
            .get(&rec.tool)
            .map_err(|e| ToolError::internal(e.to_string()))?;
        let ctx = ToolContext {
            principal: Principal::new(
                rec.requester.sub.clone(),
                rec.requester.name.clone(),
                Vec::new(),
            ),
            transport: APPROVAL_TRANSPORT,
            request_id: rec.id.clone(),
            page: Page::default(),
            adapters: self.adapters().clone(),
            approvals: None,
            progress: None,
        };
        let previewed = rec
            .preview
            .get("target_version")
            .and_then(Value::as_str)
            .map(str::to_string);
        if previewed.is_some() && !rec.allow_target_change {
            let now = tokio::time::timeout(
                self.settings().timeout,
                entry.tool.target_version(&ctx, &rec.args),
            )
            .await
            .map_err(|_| {
                ToolError::new(
                    ToolErrorKind::Timeout,
                    "re-reading the target timed out; not executed",
                )
            })??;
            if now != previewed {
                return Err(ToolError::new(
                    ToolErrorKind::Forbidden,
                    format!(
                        "target changed since approval (resourceVersion {} at preview, {} now); not executed — request it again",
                        previewed.unwrap_or_default(),
                        now.unwrap_or_else(|| "gone".into())
                    ),
                ));
            }
        }
        let output = tokio::time::timeout(
            self.settings().timeout,
            entry.tool.invoke(&ctx, rec.args.clone()),
        )
        .await
        .map_err(|_| {
            ToolError::new(
                ToolErrorKind::Timeout,
                format!("{} did not finish in time", rec.tool),
            )
        })??;
        match entry.spec().budget {
            Some(b) => budget::apply(
                output,
                b,
                &Page::default(),
                self.settings().max_bytes_limit,
                &rec.tool,
                "",
            ),
            None => Ok(output),
        }
    }

    fn redacted(&self, rec: &ApprovalRecord) -> Value {
        match self.registry().get(&rec.tool) {
            Ok(entry) => redact_args(entry, &rec.args),
            Err(_) => audit::hash_value(&rec.args).into(),
        }
    }

    async fn audit_state(
        &self,
        rec: &ApprovalRecord,
        decision: &str,
        summary: Option<String>,
    ) -> Result<(), ToolError> {
        let system = Principal::new("toolgate", "toolgate", Vec::new());
        self.audit_state_with(rec, &system, decision, summary).await
    }

    async fn audit_state_with(
        &self,
        rec: &ApprovalRecord,
        principal: &Principal,
        decision: &str,
        summary: Option<String>,
    ) -> Result<(), ToolError> {
        self.audit(Record {
            principal,
            transport: APPROVAL_TRANSPORT,
            tool: &rec.tool,
            args: self.redacted(rec),
            decision,
            rule: Some(rec.rule.clone()),
            approval_id: Some(rec.id.clone()),
            result_summary: summary,
            trace_id: None,
        })
        .await
    }

    /// Expire pending requests past their TTL; returns how many.
    pub async fn sweep_expired(&self) -> Result<usize, ApprovalError> {
        let ids = self.gate().store.expire_due(now_ms()).await?;
        for id in &ids {
            if let Some(rec) = self.gate().store.get_approval(id).await? {
                self.audit_state(&rec, "expired", Some("no decision before the TTL".into()))
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

    /// Calls found `executing` that no live server can still be running were cut off by a
    /// crash: they are marked `interrupted` and never re-run by themselves. With one server
    /// (SQLite) that is every such call at start-up; with replicas sharing PostgreSQL, only
    /// calls older than the longest a call may run, since another replica may be running it.
    pub async fn recover_interrupted(&self) -> Result<usize, ApprovalError> {
        let store = &self.gate().store;
        let cutoff = if store.backend_name() == "sqlite" {
            now_ms()
        } else {
            let longest = self.settings().timeout.as_millis() as i64 + 120_000;
            now_ms() - longest
        };
        let ids = store.mark_interrupted(cutoff).await?;
        for id in &ids {
            if let Some(rec) = self.gate().store.get_approval(id).await? {
                tracing::warn!(approval_id = %id, tool = %rec.tool, "call was executing when the server stopped; marked interrupted");
                self.audit_state(&rec, "interrupted", Some("the server stopped while the call ran; check the target before requesting it again".into()))
                    .await
                    .map_err(|e| ApprovalError::Store(e.message))?;
            }
        }
        Ok(ids.len())
    }
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

/// Arguments as they may be shown and audited.
pub fn redact_args(entry: &Entry, args: &Value) -> Value {
    entry
        .tool
        .redact_args(&audit::redact_by_schema(args, &entry.input_schema))
}

/// `approval.status` reads through this: the store plus the in-process change feed, polling
/// the store too so changes made by another replica are seen.
pub struct StoreLookup {
    pub dispatcher: std::sync::Weak<Dispatcher>,
}

impl ApprovalLookup for StoreLookup {
    fn status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let d = self
                .dispatcher
                .upgrade()
                .ok_or_else(|| ToolError::internal("server is shutting down"))?;
            let view = d.approval(id).await.map_err(to_tool_error)?;
            Ok(serde_json::to_value(view).unwrap_or(Value::Null))
        })
    }

    fn wait_change<'a>(
        &'a self,
        id: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let d = self
                .dispatcher
                .upgrade()
                .ok_or_else(|| ToolError::internal("server is shutting down"))?;
            let mut rx = d.gate().subscribe();
            let first = d.approval(id).await.map_err(to_tool_error)?;
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
                let now = d.approval(id).await.map_err(to_tool_error)?;
                if now.state != first.state || now.decisions.len() != first.decisions.len() {
                    return Ok(serde_json::to_value(now).unwrap_or(Value::Null));
                }
            }
            let now = d.approval(id).await.map_err(to_tool_error)?;
            Ok(serde_json::to_value(now).unwrap_or(Value::Null))
        })
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
