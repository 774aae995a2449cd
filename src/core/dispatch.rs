//! The one entry every transport calls: look up, validate, parse once, decide by policy (allow,
//! hold for approval, deny), then run through `core::invoke` (the path approved calls take too),
//! record metrics and a span. Transports only translate to and from this.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use tracing::Instrument;

use super::config::{LimitsConfig, ToolsConfig};
use crate::adapters::Adapters;
use crate::core::approval::{Gate, HeldCall, StoreLookup, held_approval_id};
use crate::core::audit::{Record, redact_args};
use crate::core::context::{ProgressSink, ToolContext};
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::invoke::{BudgetRequest, Invocation};
use crate::core::policy::{Effect, PolicyInput};
use crate::core::principal::Principal;
use crate::core::rate_limit::RateLimits;
use crate::core::registry::{Entry, Registry, UnknownTool};
use crate::core::tool::Risk;
use crate::core::validate;
use crate::metrics;

/// One tool call as a transport hands it over.
#[derive(Clone)]
pub struct CallRequest {
    pub principal: Principal,
    /// `mcp-stdio`, `mcp-http`, `jsonrpc`, `a2a`…
    pub transport: &'static str,
    pub tool: String,
    /// The arguments object (`null` is read as `{}`).
    pub args: Value,
    pub request_id: String,
    /// Where progress reports go, when the caller asked for them.
    pub progress: Option<ProgressSink>,
}

/// The answer of a call that reached a tool (or was refused by the core): structured output,
/// or a tool error the model can act on.
pub type CallResult = Result<Value, ToolError>;

pub struct Dispatcher {
    registry: Arc<Registry>,
    adapters: Arc<Adapters>,
    settings: ToolsConfig,
    gate: Arc<Gate>,
    /// Approval reads (for the approval API and `approval.status`): the gate and the registry.
    lookup: Arc<StoreLookup>,
    limits: RateLimits,
    /// The embedded knowledge index (set once at start when configured).
    knowledge: std::sync::OnceLock<Arc<crate::knowledge::Knowledge>>,
    /// Pull request review (set once at start when configured).
    review: std::sync::OnceLock<Arc<crate::review::Review>>,
}

impl Dispatcher {
    pub fn new(
        registry: Arc<Registry>,
        adapters: Arc<Adapters>,
        settings: ToolsConfig,
        gate: Gate,
        limits: &LimitsConfig,
    ) -> Arc<Self> {
        let gate = Arc::new(gate);
        Arc::new(Self {
            lookup: Arc::new(StoreLookup::new(
                gate.clone(),
                registry.clone(),
                adapters.clone(),
            )),
            registry,
            adapters,
            settings,
            gate,
            limits: RateLimits::new(limits),
            knowledge: std::sync::OnceLock::new(),
            review: std::sync::OnceLock::new(),
        })
    }

    /// Gives the tools the knowledge index, and memory its fallback (the same index: it keeps
    /// what is added through `memory.*` and answers when Cognee cannot). Once; a second index
    /// is refused.
    pub fn set_knowledge(
        &self,
        knowledge: Arc<crate::knowledge::Knowledge>,
    ) -> Result<(), Arc<crate::knowledge::Knowledge>> {
        self.knowledge.set(knowledge.clone())?;
        self.adapters.memory.set_fallback(knowledge);
        Ok(())
    }

    pub fn knowledge(&self) -> Option<Arc<crate::knowledge::Knowledge>> {
        self.knowledge.get().cloned()
    }

    /// Gives the tools the review engine (once).
    pub fn set_review(&self, review: Arc<crate::review::Review>) {
        let _ = self.review.set(review);
    }

    pub fn review(&self) -> Option<Arc<crate::review::Review>> {
        self.review.get().cloned()
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn adapters(&self) -> &Arc<Adapters> {
        &self.adapters
    }

    pub fn settings(&self) -> &ToolsConfig {
        &self.settings
    }

    pub(crate) fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Dispatch one call. `Err(UnknownTool)` is a protocol-level error (the request names
    /// nothing we have); everything else is a `CallResult`.
    pub async fn dispatch(&self, req: CallRequest) -> Result<CallResult, UnknownTool> {
        let started = Instant::now();
        let entry = match self.registry.get(&req.tool) {
            Ok(entry) => entry,
            Err(unknown) => {
                metrics::tool_call("unknown", req.transport, "unknown_tool", started.elapsed());
                return Err(unknown);
            }
        };
        let spec = entry.spec();
        let span = tracing::info_span!(
            "tool_call",
            tool = spec.name,
            // Caller-chosen text is logged escaped (Debug): a newline in a JSON-RPC id or a
            // subject cannot start a forged log line.
            principal = ?req.principal.sub,
            request_id = ?req.request_id,
            transport = req.transport,
            risk = spec.risk.as_str(),
            decision = tracing::field::Empty,
            approval_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let transport = req.transport;
        // Every upstream request the call makes carries its request id (x-request-id, traceparent).
        let correlation = req.request_id.clone();
        let result = crate::adapters::http::correlation::scope(
            correlation,
            self.run(entry, req).instrument(span.clone()),
        )
        .await;
        let outcome = match &result {
            Ok(v) if held_approval_id(v).is_some() => "approval_required",
            Ok(_) => "ok",
            Err(e) => outcome_label(e.kind),
        };
        span.record("outcome", outcome);
        span.in_scope(|| match &result {
            Ok(_) => tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "tool call done"),
            Err(e) => tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, error = ?e.message, "tool call failed"),
        });
        metrics::tool_call(spec.name, transport, outcome, started.elapsed());
        Ok(result)
    }

    async fn run(&self, entry: &Entry, req: CallRequest) -> CallResult {
        let spec = entry.spec();
        // Counted before anything else is done for the call, whatever the transport.
        self.limits
            .tool_call(&req.principal.sub)
            .map_err(|limited| ToolError::rate_limited(&req.principal.sub, limited))?;
        // Measured before any validation or parse works through them (and before they reach
        // the approval queue or the audit log).
        let size = crate::core::budget::serialized_len(&req.args);
        if size > self.settings.max_argument_bytes {
            return Err(ToolError::invalid_arguments(format!(
                "{}: the arguments are {size} bytes of JSON; at most {} are accepted (tools.max_argument_bytes): send less, e.g. split a manifest into several calls",
                spec.name, self.settings.max_argument_bytes
            )));
        }
        // A tool this server does not offer (toolsets, read-only mode) is refused by name,
        // whatever the policy would say; the attempt is audited like a policy denial.
        if let Err(refused) = self.registry.check_offered(entry, &req.tool) {
            self.audit(Record {
                principal: &req.principal,
                transport: req.transport,
                tool: spec.name,
                args: redact_args(entry, &req.args),
                decision: "denied",
                rule: Some(refused.rule.to_string()),
                approval_id: None,
                result_summary: Some(refused.error.message.clone()),
                trace_id: Some(req.request_id.clone()),
            })
            .await?;
            return Err(refused.error);
        }
        let mut map = checked_args(entry, req.args)?;
        // The core's own budget arguments never reach the tool, the policy or the queue.
        let asked = BudgetRequest::take(spec, &self.settings, &mut map)?;
        let args = Value::Object(map);
        // The one parse of the arguments into the tool's typed input.
        let mut call = entry.tool.clone().prepare(args)?;
        let policy = self.gate.policy.current();
        // Rules and approvals see permissions: roles plus what the policy's `permissions:` grants.
        let principal = policy.effective(&req.principal);
        let mut ctx = ToolContext {
            principal,
            transport: req.transport,
            request_id: req.request_id,
            page: Default::default(),
            adapters: self.adapters.clone(),
            approvals: Some(self.lookup.clone()),
            progress: req.progress,
            knowledge: self.knowledge(),
            review: self.review(),
        };
        // Policy judges what will run: the arguments settled (namespace default, kind through
        // discovery, names checked) and the target built from them. A call that cannot be
        // settled is refused, never judged on what was typed.
        let target = settle(&self.settings, call.as_mut(), &ctx).await?;
        // Cursors bind to the settled arguments, as the approved run sees them.
        let out_budget = asked.resolve(spec, &self.settings, call.args())?;
        ctx.page = out_budget.page().clone();
        let decision = policy.decide(&PolicyInput {
            tool: spec.name,
            risk: spec.risk,
            args: call.args(),
            principal: &ctx.principal,
            target: &target,
        });
        let span = tracing::Span::current();
        match decision.effect {
            Effect::Deny { message } => {
                span.record("decision", "deny");
                self.audit(Record {
                    principal: &ctx.principal,
                    transport: ctx.transport,
                    tool: spec.name,
                    args: redact_args(entry, call.args()),
                    decision: "denied",
                    rule: Some(decision.rule.clone()),
                    approval_id: None,
                    result_summary: Some(message.clone()),
                    trace_id: Some(ctx.request_id.clone()),
                })
                .await?;
                return Err(ToolError::forbidden(format!(
                    "{message} (policy rule {}). Nothing was executed.",
                    decision.rule
                )));
            }
            Effect::RequireApproval(rule) => {
                span.record("decision", "require_approval");
                // Held calls have their own, smaller budget: each one asks people for time.
                self.limits
                    .approval_request(&req.principal.sub)
                    .map_err(|limited| ToolError::rate_limited(&req.principal.sub, limited))?;
                let answer = self
                    .request_approval(
                        entry,
                        &ctx,
                        call.as_ref(),
                        HeldCall {
                            target: &target,
                            rule: &rule,
                            rule_name: &decision.rule,
                            budget: asked,
                            requester_roles: req.principal.roles.clone(),
                        },
                    )
                    .await?;
                if let Some(id) = answer.get("approval_id").and_then(Value::as_str) {
                    span.record("approval_id", id);
                }
                return Ok(answer);
            }
            Effect::Allow => span.record("decision", "allow"),
        };
        // A call that can change something is recorded before it runs, so an audit log that
        // cannot be written stops it (fail closed); reads are recorded once, with their result.
        if spec.risk != Risk::Read {
            self.audit(Record {
                principal: &ctx.principal,
                transport: ctx.transport,
                tool: spec.name,
                args: redact_args(entry, call.args()),
                decision: "allowed",
                rule: Some(decision.rule.clone()),
                approval_id: None,
                result_summary: None,
                trace_id: Some(ctx.request_id.clone()),
            })
            .await?;
        }
        let invoked = self
            .invoke(Invocation {
                entry,
                call,
                ctx,
                budget: out_budget,
                rule: decision.rule,
                approval_id: None,
            })
            .await;
        // Fail closed: an answer whose audit record cannot be written is not given out.
        invoked.audited?;
        invoked.result
    }

    /// What tools read approvals through (`approval.status`).
    pub(crate) fn approval_lookup(&self) -> Arc<dyn crate::core::context::ApprovalLookup> {
        self.lookup.clone()
    }

    /// Approval reads, as the approval API and `approval.status` see them.
    pub(crate) fn lookup(&self) -> &StoreLookup {
        &self.lookup
    }
}

/// The arguments object checked against the tool's input schema (`null` is read as `{}`, and
/// an optional argument sent as `null` as left out).
fn checked_args(entry: &Entry, args: Value) -> Result<Map<String, Value>, ToolError> {
    let mut args = match args {
        Value::Null => Value::Object(Map::new()),
        other => other,
    };
    validate::normalize_numbers(&mut args);
    validate::drop_null_optionals(&mut args, &entry.input_schema);
    let validator = entry
        .validator()
        .map_err(|e| ToolError::internal(e.to_string()))?;
    validate::check(validator, &entry.input_schema, &args)
        .map_err(|msg| ToolError::invalid_arguments(format!("{}: {msg}", entry.spec().name)))?;
    match args {
        Value::Object(map) => Ok(map),
        _ => Err(ToolError::invalid_arguments(
            "arguments must be a JSON object",
        )),
    }
}

/// What policy would judge for a call of `entry` with `args`: the arguments settled and the
/// target built from them, exactly as a real call is settled before policy; nothing runs and
/// nothing is stored. For `policy explain`.
pub async fn settle_for_policy(
    entry: &Entry,
    adapters: Arc<Adapters>,
    settings: &ToolsConfig,
    principal: Principal,
    args: Value,
) -> Result<(Value, crate::core::tool::Target), ToolError> {
    let mut map = checked_args(entry, args)?;
    BudgetRequest::take(entry.spec(), settings, &mut map)?;
    let mut call = entry.tool.clone().prepare(Value::Object(map))?;
    let ctx = ToolContext {
        principal,
        transport: "policy-explain",
        request_id: "policy-explain".into(),
        page: Default::default(),
        adapters,
        approvals: None,
        progress: None,
        knowledge: None,
        review: None,
    };
    let target = settle(settings, call.as_mut(), &ctx).await?;
    Ok((call.args().clone(), target))
}

/// Settle a prepared call within the call's time limit (see [`PreparedCall::resolve`]).
pub(crate) async fn settle(
    settings: &ToolsConfig,
    call: &mut dyn crate::core::tool::PreparedCall,
    ctx: &ToolContext,
) -> Result<crate::core::tool::Target, ToolError> {
    match tokio::time::timeout(settings.timeout, call.resolve(ctx)).await {
        Ok(result) => result,
        Err(_) => Err(ToolError::new(
            ToolErrorKind::Timeout,
            format!(
                "resolving what the call acts on (cluster, namespace, kind) took longer than {}s; nothing was executed",
                settings.timeout.as_secs()
            ),
        )),
    }
}

fn outcome_label(kind: ToolErrorKind) -> &'static str {
    match kind {
        ToolErrorKind::InvalidArguments => "invalid_arguments",
        ToolErrorKind::NotFound => "not_found",
        ToolErrorKind::ApprovalRequired => "approval_required",
        ToolErrorKind::Forbidden => "forbidden",
        ToolErrorKind::Upstream => "upstream_error",
        ToolErrorKind::Timeout => "timeout",
        ToolErrorKind::OutputTooLarge => "output_too_large",
        ToolErrorKind::Internal => "internal_error",
        ToolErrorKind::RateLimited => "rate_limited",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::kube::KubeAdapter;
    use crate::config::Config;
    use crate::core::budget;
    use crate::core::context::ToolContext;
    use crate::core::tool::{TypedTool, typed};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use serde_json::json;
    use std::time::Duration;

    #[derive(Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct CountParams {
        /// How many rows.
        n: u32,
        /// Sleep this long first (ms).
        #[serde(default)]
        sleep_ms: u64,
    }

    #[derive(Serialize, JsonSchema)]
    struct CountOutput {
        rows: Vec<u32>,
        page_start: Option<String>,
    }

    struct Count;
    impl TypedTool for Count {
        type Params = CountParams;
        type Output = CountOutput;
        const NAME: &'static str = "test.count";
        const TOOLSET: &'static str = "test";
        const TITLE: &'static str = "Count";
        const DESCRIPTION: &'static str = "Counts.";
        const RISK: Risk = Risk::Read;
        const BUDGET_FIELD: Option<&'static str> = Some("rows");
        async fn call(&self, ctx: &ToolContext, p: CountParams) -> Result<CountOutput, ToolError> {
            tokio::time::sleep(Duration::from_millis(p.sleep_ms)).await;
            Ok(CountOutput {
                rows: (0..p.n).collect(),
                page_start: ctx.page.upstream.clone(),
            })
        }
    }

    #[derive(Deserialize, Serialize, JsonSchema)]
    struct Nothing {}

    struct Wipe(Arc<std::sync::atomic::AtomicUsize>);
    impl TypedTool for Wipe {
        type Params = Nothing;
        type Output = serde_json::Value;
        const NAME: &'static str = "test.wipe";
        const TOOLSET: &'static str = "test";
        const TITLE: &'static str = "Wipe";
        const DESCRIPTION: &'static str = "Wipes.";
        const RISK: Risk = Risk::Critical;
        async fn call(&self, _: &ToolContext, _: Nothing) -> Result<serde_json::Value, ToolError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(json!({}))
        }
    }

    const TEST_POLICY: &str = r#"
rules:
  - name: callers-read
    risk: [read]
    roles: [toolgate.caller]
    effect: allow
  - name: wipe-needs-two
    tools: ["test.*"]
    risk: [critical]
    roles: [toolgate.caller]
    effect:
      require_approval: {approvals: 2, approver_roles: [toolgate.approver], ttl: 1h, reason_required: true}
"#;

    /// A dispatcher with the test tools, a test policy and a SQLite store in a temp dir.
    async fn dispatcher(
        runs: Arc<std::sync::atomic::AtomicUsize>,
    ) -> (Arc<Dispatcher>, tempfile::TempDir) {
        dispatcher_with(runs, TEST_POLICY).await
    }

    async fn dispatcher_with(
        runs: Arc<std::sync::atomic::AtomicUsize>,
        policy_text: &str,
    ) -> (Arc<Dispatcher>, tempfile::TempDir) {
        let config = Config::default();
        let registry = Registry::new(vec![typed(Count), typed(Wipe(runs))]).expect("registry");
        let adapters = Adapters::new(Arc::new(KubeAdapter::new(&config.kubernetes)));
        let mut settings = config.tools.clone();
        settings.timeout = Duration::from_millis(200);
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::connect(&format!(
            "sqlite://{}",
            dir.path().join("t.db").display()
        ))
        .await
        .expect("store");
        let policy = crate::core::policy::PolicySet::from_sources(&[("test.yaml", policy_text)])
            .expect("policy");
        let gate = Gate::new(
            Arc::new(crate::core::policy::PolicyHandle::new(policy, None)),
            store,
            "http://toolgate.test".into(),
            None,
        );
        (
            Dispatcher::new(
                Arc::new(registry),
                Arc::new(adapters),
                settings,
                gate,
                &config.limits,
            ),
            dir,
        )
    }

    fn req(tool: &str, args: Value) -> CallRequest {
        CallRequest {
            principal: Principal::local("tester"),
            transport: "test",
            tool: tool.into(),
            args,
            request_id: "1".into(),
            progress: None,
        }
    }

    #[tokio::test]
    async fn unknown_tools_name_the_closest() {
        let (d, _dir) = dispatcher(Default::default()).await;
        let err = d
            .dispatch(req("test.cont", json!({})))
            .await
            .expect_err("unknown");
        assert_eq!(
            err.suggestions.first().map(String::as_str),
            Some("test.count")
        );
        assert!(err.to_string().contains("did you mean: test.count"));
    }

    #[tokio::test]
    async fn invalid_arguments_never_reach_the_tool() {
        let (d, _dir) = dispatcher(Default::default()).await;
        let err = d
            .dispatch(req("test.count", json!({"n": "three"})))
            .await
            .expect("known")
            .expect_err("invalid");
        assert_eq!(err.kind, ToolErrorKind::InvalidArguments);
        assert!(err.message.contains("`n`"), "{}", err.message);
        // Whole-number floats (A2A/protobuf) are accepted as integers.
        let ok = d
            .dispatch(req("test.count", json!({"n": 3.0})))
            .await
            .expect("known")
            .expect("valid");
        assert_eq!(ok["rows"], json!([0, 1, 2]));
    }

    #[tokio::test]
    async fn policy_holds_critical_calls_until_two_other_people_approve() {
        let runs: Arc<std::sync::atomic::AtomicUsize> = Default::default();
        let (d, _dir) = dispatcher(runs.clone()).await;
        let held = d
            .dispatch(req("test.wipe", json!({})))
            .await
            .expect("known")
            .expect("held");
        assert_eq!(held["status"], "approval_required");
        assert_eq!(held["required_approvals"], 2);
        let id = held["approval_id"].as_str().expect("id").to_string();
        assert_eq!(
            runs.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "held calls do not run"
        );

        let bob = Principal::new("bob", "Bob", vec!["toolgate.approver".into()]);
        let carol = Principal::new("carol", "Carol", vec!["toolgate.approver".into()]);
        let tester_as_approver =
            Principal::new("tester", "Tester", vec!["toolgate.approver".into()]);
        let caller = Principal::new("dave", "Dave", vec!["toolgate.caller".into()]);
        use crate::core::approval::ApprovalError;
        assert!(matches!(
            d.approve(&tester_as_approver, &id, Some("mine".into()))
                .await,
            Err(ApprovalError::SelfApproval)
        ));
        assert!(matches!(
            d.approve(&caller, &id, Some("x".into())).await,
            Err(ApprovalError::Forbidden(_))
        ));
        assert!(matches!(
            d.approve(&bob, &id, None).await,
            Err(ApprovalError::ReasonRequired)
        ));
        let one = d
            .approve(&bob, &id, Some("looks right".into()))
            .await
            .expect("first approval");
        assert_eq!(one.state, crate::store::ApprovalState::Pending);
        assert!(matches!(
            d.approve(&bob, &id, Some("again".into())).await,
            Err(ApprovalError::AlreadyDecided)
        ));
        assert_eq!(
            runs.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "1 of 2 approvals does not run it"
        );
        let two = d
            .approve(&carol, &id, Some("agreed".into()))
            .await
            .expect("second approval");
        assert_eq!(two.state, crate::store::ApprovalState::Executed);
        assert_eq!(
            runs.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "ran exactly once"
        );
        assert!(matches!(
            d.approve(&carol, &id, Some("x".into())).await,
            Err(ApprovalError::AlreadyDecided) | Err(ApprovalError::NotPending(_))
        ));
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);

        let report = d.gate().store.audit_verify().await.expect("verify");
        assert!(report.first_broken.is_none());
        let trail: Vec<String> = d
            .approval_audit(&id)
            .await
            .expect("trail")
            .into_iter()
            .map(|r| r.entry.decision)
            .collect();
        assert_eq!(
            trail,
            // The self-approval and the missing role were refused, and recorded.
            vec![
                "approval_requested",
                "decision_refused",
                "decision_refused",
                "approved",
                "approved",
                "executed"
            ]
        );
    }

    #[tokio::test]
    async fn a_write_that_policy_allows_is_audited_before_and_after_it_runs() {
        let runs: Arc<std::sync::atomic::AtomicUsize> = Default::default();
        let allow_all = "rules:\n  - name: all\n    roles: [toolgate.caller]\n    effect: allow\n";
        let (d, _dir) = dispatcher_with(runs.clone(), allow_all).await;
        d.dispatch(req("test.wipe", json!({})))
            .await
            .expect("known")
            .expect("ran");
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        let trail: Vec<String> = d
            .gate()
            .store
            .audit_tail(2)
            .await
            .expect("tail")
            .into_iter()
            .map(|r| r.entry.decision)
            .collect();
        assert_eq!(trail, vec!["allowed", "executed"]);
    }

    #[tokio::test]
    async fn principals_without_a_role_are_denied_and_audited() {
        let (d, _dir) = dispatcher(Default::default()).await;
        let mut r = req("test.count", json!({"n": 1}));
        r.principal = Principal::new("nobody", "Nobody", Vec::new());
        let err = d.dispatch(r).await.expect("known").expect_err("denied");
        assert_eq!(err.kind, ToolErrorKind::Forbidden);
        assert!(
            err.message.contains("Nothing was executed"),
            "{}",
            err.message
        );
        let tail = d.gate().store.audit_tail(1).await.expect("tail");
        assert_eq!(tail[0].entry.decision, "denied");
        assert_eq!(tail[0].entry.principal_sub, "nobody");
    }

    #[tokio::test]
    async fn denied_and_cancelled_requests_never_run() {
        let runs: Arc<std::sync::atomic::AtomicUsize> = Default::default();
        let (d, _dir) = dispatcher(runs.clone()).await;
        let bob = Principal::new("bob", "Bob", vec!["toolgate.approver".into()]);
        let first = d
            .dispatch(req("test.wipe", json!({})))
            .await
            .expect("known")
            .expect("held");
        let id = first["approval_id"].as_str().expect("id").to_string();
        let denied = d
            .deny(&bob, &id, Some("not now".into()))
            .await
            .expect("deny");
        assert_eq!(denied.state, crate::store::ApprovalState::Denied);
        let second = d
            .dispatch(req("test.wipe", json!({})))
            .await
            .expect("known")
            .expect("held");
        let id2 = second["approval_id"].as_str().expect("id").to_string();
        assert!(
            d.cancel(&bob, &id2).await.is_err(),
            "only the requester cancels"
        );
        let requester = Principal::local("tester");
        let cancelled = d.cancel(&requester, &id2).await.expect("cancel");
        assert_eq!(cancelled.state, crate::store::ApprovalState::Cancelled);
        assert!(d.approve(&bob, &id2, Some("late".into())).await.is_err());
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn slow_tools_time_out() {
        let (d, _dir) = dispatcher(Default::default()).await;
        let err = d
            .dispatch(req("test.count", json!({"n": 1, "sleep_ms": 2000})))
            .await
            .expect("known")
            .expect_err("timeout");
        assert_eq!(err.kind, ToolErrorKind::Timeout);
    }

    #[tokio::test]
    async fn budget_cuts_and_cursor_continues_through_dispatch() {
        let (d, _dir) = dispatcher(Default::default()).await;
        let mut seen = Vec::new();
        let mut args = json!({"n": 3000, "max_bytes": 1024});
        loop {
            let out = d
                .dispatch(req("test.count", args.clone()))
                .await
                .expect("known")
                .expect("ok");
            assert!(budget::serialized_len(&out) <= 1024);
            seen.extend(
                out["rows"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|v| v.as_u64()),
            );
            match out.get("cursor").and_then(Value::as_str) {
                Some(c) => args = json!({"n": 3000, "max_bytes": 1024, "cursor": c}),
                None => break,
            }
        }
        assert_eq!(seen, (0..3000).collect::<Vec<u64>>());
        // A cursor replayed with other arguments is refused.
        let first = d
            .dispatch(req("test.count", json!({"n": 3000, "max_bytes": 1024})))
            .await
            .expect("known")
            .expect("ok");
        let cursor = first["cursor"].as_str().expect("cursor").to_string();
        let err = d
            .dispatch(req("test.count", json!({"n": 10, "cursor": cursor})))
            .await
            .expect("known")
            .expect_err("other query");
        assert!(err.message.contains("different arguments"));
        let err = d
            .dispatch(req("test.count", json!({"n": 10, "max_bytes": 10_000_000})))
            .await
            .expect("known")
            .expect_err("over limit");
        assert!(err.message.contains("max_bytes"));
    }
}
