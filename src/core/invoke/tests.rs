//! The invoke path against a real dispatcher (SQLite store in a temp dir): a call approved later
//! is run exactly like the same call run directly, and the approved run survives the approver,
//! refuses altered arguments and a policy that changed, and never stays `approved`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use crate::adapters::Adapters;
use crate::adapters::kube::KubeAdapter;
use crate::config::Config;
use crate::core::approval::{ApprovalError, Gate};
use crate::core::context::ToolContext;
use crate::core::dispatch::{CallRequest, Dispatcher};
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::exposure::Exposure;
use crate::core::policy::{PolicyHandle, PolicySet};
use crate::core::principal::Principal;
use crate::core::registry::Registry;
use crate::core::tool::{Preview, Risk, TypedTool, typed};
use crate::store::{ApprovalState, DecisionRecord, now_ms};

const SECRET: &str = "hunter2-very-secret";

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RowsParams {
    /// How many rows.
    n: u32,
    /// Goes into every row (a tool that echoes what it was given).
    #[schemars(extend("x-secret" = true))]
    password: String,
    /// Sleep this long first (ms).
    #[serde(default)]
    sleep_ms: u64,
}

#[derive(Serialize, JsonSchema)]
struct RowsOutput {
    rows: Vec<String>,
}

/// A budgeted tool that echoes a secret argument into its rows.
struct Rows;
impl TypedTool for Rows {
    type Params = RowsParams;
    type Output = RowsOutput;
    const NAME: &'static str = "test.rows";
    const TOOLSET: &'static str = "test";
    const TITLE: &'static str = "Rows";
    const DESCRIPTION: &'static str = "Rows.";
    const RISK: Risk = Risk::Read;
    const BUDGET_FIELD: Option<&'static str> = Some("rows");
    async fn call(&self, _: &ToolContext, p: RowsParams) -> Result<RowsOutput, ToolError> {
        tokio::time::sleep(Duration::from_millis(p.sleep_ms)).await;
        Ok(RowsOutput {
            rows: (0..p.n).map(|i| format!("{}-{i:05}", p.password)).collect(),
        })
    }
}

/// Counts typed parses of its arguments.
static PARSES: AtomicUsize = AtomicUsize::new(0);

/// Only names of the counting test count, so tests running in parallel threads do not mix in.
fn counted<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    if name.starts_with("count-me") {
        PARSES.fetch_add(1, Ordering::SeqCst);
    }
    Ok(name)
}

#[derive(Deserialize, Serialize, JsonSchema)]
struct ChangeParams {
    #[serde(deserialize_with = "counted")]
    name: String,
    /// Run this long (ms).
    #[serde(default)]
    sleep_ms: u64,
}

/// A write with a preview and a version check, slower than the configured timeout allows
/// but within its own limit; counts its runs.
struct Change(Arc<AtomicUsize>);
impl TypedTool for Change {
    type Params = ChangeParams;
    type Output = Value;
    const NAME: &'static str = "test.change";
    const TOOLSET: &'static str = "test";
    const TITLE: &'static str = "Change";
    const DESCRIPTION: &'static str = "Changes.";
    const RISK: Risk = Risk::Write;
    const MAX_SECONDS: Option<u64> = Some(10);
    async fn call(&self, _: &ToolContext, p: ChangeParams) -> Result<Value, ToolError> {
        tokio::time::sleep(Duration::from_millis(p.sleep_ms)).await;
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(json!({"name": p.name, "status": "changed"}))
    }
    async fn preview(
        &self,
        _: &ToolContext,
        p: &ChangeParams,
    ) -> Result<Option<Preview>, ToolError> {
        Ok(Some(Preview {
            summary: format!("would change {}", p.name),
            target_version: Some("1".into()),
            ..Preview::default()
        }))
    }
    async fn target_version(
        &self,
        _: &ToolContext,
        _: &ChangeParams,
    ) -> Result<Option<String>, ToolError> {
        Ok(Some("1".into()))
    }
}

/// `direct` callers run tools at once, `held` callers need one approver, for the same call.
const POLICY: &str = r#"
rules:
  - name: direct
    tools: ["test.*"]
    roles: [direct]
    effect: allow
  - name: held
    tools: ["test.*"]
    roles: [held]
    effect:
      require_approval: {approvals: 1, approver_roles: [toolgate.approver], ttl: 1h}
"#;

struct Fixture {
    d: Arc<Dispatcher>,
    runs: Arc<AtomicUsize>,
    dir: tempfile::TempDir,
    policy: PolicyHandle,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).expect("policy dir");
        std::fs::write(policies.join("test.yaml"), POLICY).expect("policy");
        let policy = PolicyHandle::new(
            PolicySet::load_dir(&policies).expect("policy"),
            Some(policies),
        );
        Self::on(dir, policy, Default::default(), Exposure::everything()).await
    }

    /// The same store, policy and tools, served with `exposure` (a restart with other
    /// switches).
    async fn restarted_with(self, exposure: Exposure) -> Fixture {
        Self::on(self.dir, self.policy, self.runs, exposure).await
    }

    async fn on(
        dir: tempfile::TempDir,
        policy: PolicyHandle,
        runs: Arc<AtomicUsize>,
        exposure: Exposure,
    ) -> Fixture {
        let config = Config::default();
        let registry = Registry::new(vec![typed(Rows), typed(Change(runs.clone()))])
            .expect("registry")
            .with_exposure(exposure);
        let adapters = Adapters::new(Arc::new(KubeAdapter::new(&config.kubernetes)));
        let mut settings = config.tools.clone();
        settings.timeout = Duration::from_millis(300);
        let store = crate::store::Store::connect(&format!(
            "sqlite://{}",
            dir.path().join("t.db").display()
        ))
        .await
        .expect("store");
        let gate = Gate::new(
            Arc::new(policy.clone()),
            store,
            "http://toolgate.test".into(),
            None,
        );
        let d = Dispatcher::new(
            Arc::new(registry),
            Arc::new(adapters),
            settings,
            gate,
            &crate::config::LimitsConfig::OFF,
        );
        Fixture {
            d,
            runs,
            dir,
            policy,
        }
    }

    /// Replace the policy file and reload it, as SIGHUP does.
    fn set_policy(&self, text: &str) {
        std::fs::write(self.dir.path().join("policies/test.yaml"), text).expect("policy");
        self.policy.reload().expect("reload");
    }

    /// Run raw SQL on the store's file, as someone with database access would.
    async fn sql(&self, statement: &str) {
        use sqlx::Connection;
        let url = format!("sqlite://{}", self.dir.path().join("t.db").display());
        let mut conn = sqlx::sqlite::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(&mut conn)
            .await
            .expect("sql");
    }

    async fn call(&self, role: &str, tool: &str, args: Value) -> Result<Value, ToolError> {
        self.d
            .dispatch(CallRequest {
                principal: Principal::new(role, role, vec![role.to_string()]),
                transport: "test",
                tool: tool.into(),
                args,
                request_id: "r1".into(),
                progress: None,
            })
            .await
            .expect("known tool")
    }

    async fn hold(&self, tool: &str, args: Value) -> String {
        let held = self.call("held", tool, args).await.expect("held");
        assert_eq!(held["status"], "approval_required", "{held}");
        held["approval_id"].as_str().expect("id").to_string()
    }

    async fn approve(
        &self,
        id: &str,
    ) -> Result<crate::core::approval::ApprovalView, ApprovalError> {
        self.d.approve(&approver(), id, None).await
    }

    async fn trail(&self, id: &str) -> Vec<crate::store::AuditRecord> {
        self.d.approval_audit(id).await.expect("trail")
    }
}

fn approver() -> Principal {
    Principal::new("bob", "Bob", vec!["toolgate.approver".into()])
}

fn assert_no_secret(what: &str, value: &impl Serialize) {
    let text = serde_json::to_string(value).unwrap_or_default();
    assert!(!text.contains(SECRET), "{what} holds the secret: {text}");
}

#[tokio::test]
async fn a_call_approved_later_is_cut_and_redacted_exactly_like_the_same_call_run_directly() {
    let f = Fixture::new().await;
    let args = json!({"n": 400, "password": SECRET, "max_bytes": 2048});
    let direct = f
        .call("direct", "test.rows", args.clone())
        .await
        .expect("ran");
    assert_eq!(direct["truncated"], true, "the budget cut it: {direct}");
    let cursor = direct["cursor"].as_str().expect("cursor").to_string();
    assert!(crate::core::budget::serialized_len(&direct) <= 2048);
    assert_no_secret("the direct answer", &direct);

    let id = f.hold("test.rows", args.clone()).await;
    let view = f.approve(&id).await.expect("approved");
    assert_eq!(view.state, ApprovalState::Executed, "{view:?}");
    assert_eq!(
        view.result.as_ref(),
        Some(&direct),
        "same max_bytes, same cut, same cursor, same redaction"
    );
    assert_no_secret("the approval view", &view);
    assert_eq!(view.args["password"], direct_args_password(&f).await);

    // The cursor of the direct answer, asked for through an approval, continues the same way.
    let next_args = json!({"n": 400, "password": SECRET, "max_bytes": 2048, "cursor": cursor});
    let next_direct = f
        .call("direct", "test.rows", next_args.clone())
        .await
        .expect("page 2");
    let id2 = f.hold("test.rows", next_args).await;
    let view2 = f.approve(&id2).await.expect("approved");
    assert_eq!(view2.result.as_ref(), Some(&next_direct));
    assert_ne!(next_direct, direct, "it is the next page");

    // The audit records of both runs carry the same redacted arguments.
    let executed = f
        .trail(&id)
        .await
        .into_iter()
        .find(|r| r.entry.decision == "executed")
        .expect("executed record");
    assert_eq!(executed.entry.args["password"], view.args["password"]);
    let all = f.d.gate().store.audit_tail(100).await.expect("tail");
    assert_no_secret("the audit log", &all);
}

/// The password as the direct call's audit record shows it.
async fn direct_args_password(f: &Fixture) -> Value {
    let tail = f.d.gate().store.audit_tail(100).await.expect("tail");
    let rec = tail
        .iter()
        .find(|r| r.entry.principal_sub == "direct")
        .expect("direct record");
    let shown = rec.entry.args["password"].clone();
    assert!(
        shown
            .as_str()
            .unwrap_or_default()
            .starts_with("hmac-sha256:"),
        "{shown}"
    );
    shown
}

#[tokio::test]
async fn a_call_approved_later_times_out_like_the_same_call_run_directly() {
    let f = Fixture::new().await;
    let args = json!({"n": 1, "password": SECRET, "sleep_ms": 1500});
    let direct = f
        .call("direct", "test.rows", args.clone())
        .await
        .expect_err("timeout");
    assert_eq!(direct.kind, ToolErrorKind::Timeout);
    let id = f.hold("test.rows", args).await;
    let view = f.approve(&id).await.expect("decided");
    assert_eq!(view.state, ApprovalState::Failed);
    assert_eq!(view.state_reason.as_deref(), Some(direct.message.as_str()));
    assert_eq!(
        view.result.as_ref().map(|r| &r["error"]["kind"]),
        Some(&json!("timeout"))
    );
}

#[tokio::test]
async fn a_tools_own_time_limit_holds_for_the_approved_run_too() {
    // 600 ms is over the configured 300 ms but within the tool's own 10 s.
    let f = Fixture::new().await;
    let args = json!({"name": "web", "sleep_ms": 600});
    let direct = f.call("direct", "test.change", args.clone()).await;
    assert!(direct.is_ok(), "{direct:?}");
    let id = f.hold("test.change", args).await;
    let view = f.approve(&id).await.expect("approved");
    assert_eq!(view.state, ApprovalState::Executed, "{view:?}");
    assert_eq!(f.runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn arguments_are_parsed_once_per_run() {
    let f = Fixture::new().await;
    let before = PARSES.load(Ordering::SeqCst);
    f.call("direct", "test.change", json!({"name": "count-me-a"}))
        .await
        .expect("ran");
    assert_eq!(
        PARSES.load(Ordering::SeqCst) - before,
        1,
        "target and run share one parse"
    );
    let before = PARSES.load(Ordering::SeqCst);
    let id = f.hold("test.change", json!({"name": "count-me-b"})).await;
    assert_eq!(
        PARSES.load(Ordering::SeqCst) - before,
        1,
        "target and preview share one parse"
    );
    f.approve(&id).await.expect("approved");
    assert_eq!(
        PARSES.load(Ordering::SeqCst) - before,
        2,
        "the stored call is parsed once more: policy, version check and run share it"
    );
}

#[tokio::test]
async fn an_approver_who_goes_away_does_not_cut_the_run_short() {
    let f = Fixture::new().await;
    let id = f
        .hold("test.change", json!({"name": "web", "sleep_ms": 500}))
        .await;
    let (d, approval) = (f.d.clone(), id.clone());
    let request = tokio::spawn(async move { d.approve(&approver(), &approval, None).await });
    // The approver's request is dropped while the call runs.
    let mut state = ApprovalState::Approved;
    for _ in 0..100 {
        state = f.d.approval(&id).await.expect("view").state;
        if state == ApprovalState::Executing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(state, ApprovalState::Executing);
    request.abort();
    let _ = request.await;
    for _ in 0..200 {
        state = f.d.approval(&id).await.expect("view").state;
        if state.is_terminal() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, ApprovalState::Executed);
    assert_eq!(f.runs.load(Ordering::SeqCst), 1);
    let trail: Vec<String> = f
        .trail(&id)
        .await
        .into_iter()
        .map(|r| r.entry.decision)
        .collect();
    assert_eq!(trail, ["approval_requested", "approved", "executed"]);
}

#[tokio::test]
async fn stored_arguments_edited_in_the_database_are_refused_and_audited() {
    let f = Fixture::new().await;
    let id = f.hold("test.change", json!({"name": "web"})).await;
    f.sql(&format!(
        "UPDATE approvals SET args = '{{\"name\":\"db\"}}' WHERE id = '{id}'"
    ))
    .await;
    let view = f.approve(&id).await.expect("decided");
    assert_eq!(view.state, ApprovalState::Failed);
    let reason = view.state_reason.unwrap_or_default();
    assert!(reason.contains("do not match the hash"), "{reason}");
    assert_eq!(f.runs.load(Ordering::SeqCst), 0, "nothing ran");
    let last = f.trail(&id).await.pop().expect("record");
    assert_eq!(last.entry.decision, "execution_refused");
    assert_eq!(last.entry.result_summary.as_deref(), Some(reason.as_str()));
}

#[tokio::test]
async fn a_policy_changed_to_deny_before_the_approval_is_applied_when_the_call_runs() {
    let f = Fixture::new().await;
    let id = f.hold("test.change", json!({"name": "web"})).await;
    f.set_policy(&format!(
        "{POLICY}  - name: freeze\n    tools: [test.change]\n    effect: {{deny: {{message: change freeze}}}}\n"
    ));
    let view = f.approve(&id).await.expect("decided");
    assert_eq!(view.state, ApprovalState::Failed);
    let reason = view.state_reason.unwrap_or_default();
    assert!(
        reason.contains("policy now denies") && reason.contains("test.yaml#freeze"),
        "{reason}"
    );
    assert_eq!(f.runs.load(Ordering::SeqCst), 0, "nothing ran");
    let last = f.trail(&id).await.pop().expect("record");
    assert_eq!(last.entry.decision, "execution_refused");
}

#[tokio::test]
async fn an_approved_call_the_server_no_longer_offers_is_not_run() {
    let f = Fixture::new().await;
    let id = f.hold("test.change", json!({"name": "web"})).await;
    let read_only = Exposure::resolve(None, true, &["test"].into_iter().collect(), &["test"])
        .expect("exposure");
    let f = f.restarted_with(read_only).await;
    let view = f.approve(&id).await.expect("decided");
    assert_eq!(view.state, ApprovalState::Failed);
    let reason = view.state_reason.unwrap_or_default();
    assert!(
        reason.contains("`test.change` is not available: read-only mode is on"),
        "{reason}"
    );
    assert_eq!(f.runs.load(Ordering::SeqCst), 0, "nothing ran");
    let last = f.trail(&id).await.pop().expect("record");
    assert_eq!(last.entry.decision, "execution_refused");
}

#[tokio::test]
async fn a_policy_that_now_needs_more_approvals_refuses_the_run() {
    let f = Fixture::new().await;
    let id = f.hold("test.change", json!({"name": "web"})).await;
    f.set_policy(&POLICY.replace("approvals: 1", "approvals: 2"));
    let view = f.approve(&id).await.expect("decided");
    assert_eq!(view.state, ApprovalState::Failed);
    let reason = view.state_reason.unwrap_or_default();
    assert!(
        reason.contains("test.yaml#held now needs 2 approval(s) and this request has 1"),
        "{reason}"
    );
    assert_eq!(f.runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_audit_failure_when_the_approval_completes_fails_the_request_instead_of_leaving_it_approved()
 {
    let f = Fixture::new().await;
    let id = f.hold("test.change", json!({"name": "web"})).await;
    f.sql("CREATE TRIGGER no_approved BEFORE INSERT ON audit WHEN NEW.decision = 'approved' BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        .await;
    let err = f.approve(&id).await.expect_err("audit failed");
    assert!(matches!(err, ApprovalError::Store(_)), "{err}");
    let view = f.d.approval(&id).await.expect("view");
    assert_eq!(view.state, ApprovalState::Failed, "{view:?}");
    assert!(
        view.state_reason
            .unwrap_or_default()
            .contains("audit log could not be written")
    );
    assert_eq!(f.runs.load(Ordering::SeqCst), 0, "fail closed: nothing ran");
}

#[tokio::test]
async fn an_audit_failure_after_the_run_still_records_the_outcome_in_the_request() {
    let f = Fixture::new().await;
    let id = f.hold("test.change", json!({"name": "web"})).await;
    f.sql("CREATE TRIGGER no_executed BEFORE INSERT ON audit WHEN NEW.decision = 'executed' BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        .await;
    let err = f.approve(&id).await.expect_err("audit failed");
    assert!(matches!(err, ApprovalError::Store(_)), "{err}");
    let view = f.d.approval(&id).await.expect("view");
    assert_eq!(view.state, ApprovalState::Executed, "{view:?}");
    assert!(view.result.is_some());
    assert!(
        view.state_reason
            .unwrap_or_default()
            .contains("audit record of this outcome could not be written")
    );
    assert_eq!(f.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn recovery_records_the_evidence_of_a_cut_off_run_and_fails_approved_calls_that_never_started()
 {
    let f = Fixture::new().await;
    let store = &f.d.gate().store;
    let running = f.hold("test.change", json!({"name": "web"})).await;
    let waiting = f.hold("test.change", json!({"name": "db"})).await;
    for id in [&running, &waiting] {
        let decision = DecisionRecord {
            approver_sub: "carol".into(),
            approver_name: "Carol".into(),
            decision: "approve".into(),
            reason: None,
            at_ms: now_ms(),
        };
        store
            .add_decision(id, &decision, now_ms())
            .await
            .expect("decision");
    }
    // As if toolgate stopped: one run had begun, the other never started.
    assert!(
        store
            .transition(
                &running,
                ApprovalState::Approved,
                ApprovalState::Executing,
                None,
                None,
                now_ms()
            )
            .await
            .expect("executing")
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(f.d.recover_interrupted().await.expect("recover"), 2);

    let cut = f.d.approval(&running).await.expect("view");
    assert_eq!(cut.state, ApprovalState::Interrupted);
    let reason = cut.state_reason.clone().unwrap_or_default();
    assert!(reason.contains("outcome unknown"), "{reason}");
    assert!(reason.contains("execution began 20"), "{reason}");
    assert!(
        reason.contains("approval completed by Carol (carol)"),
        "{reason}"
    );
    assert!(reason.contains(&cut.args_sha256), "{reason}");
    let last = f.trail(&running).await.pop().expect("record");
    assert_eq!(last.entry.decision, "interrupted");
    assert_eq!(last.entry.result_summary.as_deref(), Some(reason.as_str()));

    let never = f.d.approval(&waiting).await.expect("view");
    assert_eq!(never.state, ApprovalState::Failed);
    assert!(
        never
            .state_reason
            .unwrap_or_default()
            .contains("before the call started")
    );
    assert_eq!(f.runs.load(Ordering::SeqCst), 0, "nothing is re-run");
}

/// A caller-chosen request id or subject holding a newline cannot forge a log line: logged
/// values are escaped.
#[tokio::test]
async fn caller_chosen_text_cannot_forge_log_lines() {
    let buffer = crate::telemetry::LogCapture::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let f = Fixture::new().await;
    let forged = "FORGED tool call done outcome=ok";
    let result =
        f.d.dispatch(CallRequest {
            principal: Principal::new(format!("direct\n{forged}"), "x", vec!["direct".into()]),
            transport: "test",
            tool: "test.rows".into(),
            args: json!({"n": 1, "password": "p"}),
            request_id: format!("r1\n{forged}\r\n{forged}"),
            progress: None,
        })
        .await
        .expect("known tool");
    assert!(result.is_ok(), "{result:?}");
    let text = buffer.text();
    assert!(text.contains("tool call done"), "{text}");
    assert!(text.contains("FORGED"), "the values are logged: {text}");
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with("FORGED"),
            "forged line: {text}"
        );
    }
}
