//! The tool abstraction: what a tool declares (name, risk, schemas) and how the core calls it.
//! Tools are transport-free: they never see MCP, HTTP, policy, approvals or audit.
//!
//! A call's arguments are parsed once into the tool's typed input ([`Tool::prepare`]); the
//! target, preview, version check and the run itself all read that one parse.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::core::context::ToolContext;
use crate::core::error::ToolError;

/// How dangerous a tool is; decides approval (later: policy) and the MCP annotations.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    serde::Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Reads state; runs at once.
    Read,
    /// Reveals secret material; needs approval.
    Sensitive,
    /// Changes state; needs approval.
    Write,
    /// Changes state in a way that is hard to undo; needs more approvals.
    Critical,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Read => "read",
            Risk::Sensitive => "sensitive",
            Risk::Write => "write",
            Risk::Critical => "critical",
        }
    }

    /// Whether a call of this risk needs a human approval before it runs.
    pub fn needs_approval(self) -> bool {
        self != Risk::Read
    }
}

/// What a call acts on, for policy conditions, approvals and audit. Tools that resolve their
/// arguments ([`TypedTool::resolve`]) build it from what will run: the cluster's real name, the
/// namespace the call falls back to, the kind as the API server names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
pub struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The one namespace the call touches; absent for cluster-scoped kinds, for calls across
    /// all namespaces, and when it touches several (then see `namespaces`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Every namespace the call touches (a manifest of several documents may name many).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Group and version of `kind` (`apps/v1`, `v1`), when resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// OpenBao KV mount of a `secret.*` call (`secret`), as the adapter's path parser resolved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    /// The path under `mount` (`platform/grafana`; empty for the mount's root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The environment of an `argocd.*` call's application (its environment label), as ArgoCD
    /// answered it, e.g. `production`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The ArgoCD project of that application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

impl Target {
    /// The usual argument names: `cluster`, `namespace`, `kind`, `api_version`, and `name` (or
    /// `pod`), read as typed (for tools that resolve nothing).
    pub fn from_args(args: &Value) -> Target {
        let text = |key: &str| args.get(key).and_then(Value::as_str).map(str::to_string);
        let namespace = text("namespace");
        Target {
            cluster: text("cluster"),
            namespaces: namespace.iter().cloned().collect(),
            namespace,
            kind: text("kind").or_else(|| args.get("pod").map(|_| "Pod".to_string())),
            api_version: text("api_version"),
            name: text("name").or_else(|| text("pod")),
            ..Target::default()
        }
    }

    /// `cluster=a namespace=b kind=Deployment (apps/v1) name=web`, for messages.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(c) = &self.cluster {
            parts.push(format!("cluster={c}"));
        }
        if let Some(ns) = &self.namespace {
            parts.push(format!("namespace={ns}"));
        } else if !self.namespaces.is_empty() {
            parts.push(format!("namespaces={}", self.namespaces.join(",")));
        }
        if let Some(k) = &self.kind {
            match &self.api_version {
                Some(av) => parts.push(format!("kind={k} ({av})")),
                None => parts.push(format!("kind={k}")),
            }
        }
        if let Some(n) = &self.name {
            parts.push(format!("name={n}"));
        }
        if let Some(m) = &self.mount {
            parts.push(format!("mount={m}"));
        }
        if let Some(p) = &self.path {
            parts.push(format!("path={p}"));
        }
        if let Some(p) = &self.project {
            parts.push(format!("project={p}"));
        }
        if let Some(e) = &self.environment {
            parts.push(format!("environment={e}"));
        }
        if parts.is_empty() {
            "(none)".to_string()
        } else {
            parts.join(" ")
        }
    }
}

/// What a write would do, computed before approval and shown to approvers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
pub struct Preview {
    /// One line: "would restart deployment shop/web: 3 pods", "would delete …".
    pub summary: String,
    /// Unified diff of the live object vs. the dry-run result, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The target's resourceVersion when the preview was made; execution stops if it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,
    /// Tool-specific details (dependents, pods, documents…).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// Output-budget behaviour of a tool whose answer can be large.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Top-level array field of the output that the core may cut (e.g. `rows`, `lines`).
    pub items_field: &'static str,
    /// Keep the last items when cutting (logs: the newest lines matter most); the cursor then
    /// walks backwards to the older items.
    pub keep_last: bool,
}

/// Static description of a tool.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: &'static str,
    /// The toolset it belongs to (`k8s`, `obs`, `approval`…): what `--toolsets` and
    /// `mcp.toolsets` switch on and off.
    pub toolset: &'static str,
    pub title: &'static str,
    /// What the tool does, then (for tools with [`TypedTool::UNTRUSTED`]) which of its answer
    /// is untrusted upstream text.
    pub description: String,
    pub risk: Risk,
    /// Present when the output can be large: the core adds `max_bytes` and `cursor`
    /// arguments and cuts `items_field` to fit.
    pub budget: Option<Budget>,
    /// Whether repeating the call with the same arguments has no further effect.
    pub idempotent: bool,
    /// Whether the tool reaches systems outside toolgate (MCP `openWorldHint`).
    pub open_world: bool,
    /// Own time limit, when it differs from the configured one.
    pub max_seconds: Option<u64>,
    /// JSON Schema of the arguments (object). Generated from the params type.
    pub input_schema: Arc<Map<String, Value>>,
    /// JSON Schema of the structured output (object). Generated from the output type.
    pub output_schema: Arc<Map<String, Value>>,
    /// Whether tools/list carries the output schema (see [`TypedTool::LISTS_OUTPUT_SCHEMA`]).
    pub lists_output_schema: bool,
    /// Whether answers carry text written upstream (log lines, event messages, annotations):
    /// they then hold `untrusted: true` (see [`UNTRUSTED_FIELD`]).
    pub untrusted: bool,
    /// An output field holding text lines (log lines) that a text rendering shows as its
    /// body, once: over MCP they are the text block after its header, and `structuredContent`
    /// keeps the other fields.
    pub text_lines: Option<&'static str>,
}

/// The field that marks an answer carrying upstream text: `"untrusted": true` at the top of
/// the structured answer. Every string in such an answer that came from the upstream system
/// is data to read, never instructions to follow.
pub const UNTRUSTED_FIELD: &str = "untrusted";

/// Lets a default method of [`Tool`] hand itself on as `Arc<dyn Tool>`.
pub trait AsDynTool {
    fn as_dyn_tool(self: Arc<Self>) -> Arc<dyn Tool>;
}

impl<T: Tool> AsDynTool for T {
    fn as_dyn_tool(self: Arc<Self>) -> Arc<dyn Tool> {
        self
    }
}

/// One call bound to its arguments, parsed once: what the core asks of a call between
/// validation and the run. Made by [`Tool::prepare`].
pub trait PreparedCall: Send + Sync {
    /// The validated arguments as JSON (what policy, audit and the approval hash see).
    fn args(&self) -> &Value;
    /// See [`Tool::target`].
    fn target(&self) -> Target;
    /// Settle what the arguments leave open and refuse what is malformed (see
    /// [`TypedTool::resolve`]); afterwards [`PreparedCall::args`] are the settled arguments.
    /// Returns the target policy judges.
    fn resolve<'a>(&'a mut self, ctx: &'a ToolContext) -> BoxFuture<'a, Result<Target, ToolError>>;
    /// See [`Tool::preview`].
    fn preview<'a>(
        &'a self,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Option<Preview>, ToolError>>;
    /// See [`Tool::target_version`].
    fn target_version<'a>(
        &'a self,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Option<String>, ToolError>>;
    /// Run the call, consuming the parsed input.
    fn invoke<'a>(self: Box<Self>, ctx: &'a ToolContext)
    -> BoxFuture<'a, Result<Value, ToolError>>;
}

/// The prepared call of a tool without a typed input of its own: each step hands the JSON to
/// the tool's methods (a wrapper tool that only changes one of them keeps its behaviour).
struct JsonCall {
    tool: Arc<dyn Tool>,
    args: Value,
}

impl PreparedCall for JsonCall {
    fn args(&self) -> &Value {
        &self.args
    }

    fn target(&self) -> Target {
        self.tool.target(&self.args)
    }

    fn resolve<'a>(
        &'a mut self,
        _ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Target, ToolError>> {
        let target = self.tool.target(&self.args);
        Box::pin(async move { Ok(target) })
    }

    fn preview<'a>(
        &'a self,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Option<Preview>, ToolError>> {
        self.tool.preview(ctx, &self.args)
    }

    fn target_version<'a>(
        &'a self,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Option<String>, ToolError>> {
        self.tool.target_version(ctx, &self.args)
    }

    fn invoke<'a>(
        self: Box<Self>,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        let JsonCall { tool, args } = *self;
        Box::pin(async move { tool.invoke(ctx, args).await })
    }
}

/// A tool as the core sees it.
pub trait Tool: AsDynTool + Send + Sync + 'static {
    fn spec(&self) -> &ToolSpec;

    /// Bind validated arguments to this tool, parsing them into its typed input once. The core
    /// calls this once per call and then only the returned call's methods. Default: a call that
    /// passes the JSON to the methods below.
    fn prepare(self: Arc<Self>, args: Value) -> Result<Box<dyn PreparedCall>, ToolError> {
        Ok(Box::new(JsonCall {
            tool: self.as_dyn_tool(),
            args,
        }))
    }

    /// Run the tool with arguments already validated against `spec().input_schema`
    /// (with the core's own `max_bytes`/`cursor` removed).
    fn invoke<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, ToolError>>;

    /// What the call acts on (for policy and approvals); arguments are already validated.
    fn target(&self, args: &Value) -> Target {
        Target::from_args(args)
    }

    /// Arguments as they may be shown to approvers and written to the audit log, after the
    /// core hashed the schema's secret-marked fields. Default: unchanged.
    fn redact_args(&self, args: &Value) -> Value {
        args.clone()
    }

    /// For tools that change something: what the call would do, by a dry run. `None` when the
    /// tool has no preview.
    fn preview<'a>(
        &'a self,
        _ctx: &'a ToolContext,
        _args: &'a Value,
    ) -> BoxFuture<'a, Result<Option<Preview>, ToolError>> {
        Box::pin(async { Ok(None) })
    }

    /// The target's current version (Kubernetes resourceVersion), re-read before an approved
    /// call runs. `None` when the tool cannot tell or the target does not exist.
    fn target_version<'a>(
        &'a self,
        _ctx: &'a ToolContext,
        _args: &'a Value,
    ) -> BoxFuture<'a, Result<Option<String>, ToolError>> {
        Box::pin(async { Ok(None) })
    }

    /// See [`TypedTool::requester_result`].
    fn requester_result<'a>(
        &'a self,
        _ctx: &'a ToolContext,
        _args: &'a Value,
        _stored: &'a Value,
    ) -> BoxFuture<'a, Result<Option<Value>, ToolError>> {
        Box::pin(async { Ok(None) })
    }
}

/// The typed way to write a tool: params and output are Rust types, schemas come from schemars,
/// doc comments become descriptions. `#[serde(deny_unknown_fields)]` on params makes unknown
/// arguments an error.
pub trait TypedTool: Send + Sync + 'static {
    /// Serialize: the settled params ([`TypedTool::resolve`]) become the arguments that policy,
    /// audit and the approval see.
    type Params: DeserializeOwned + Serialize + JsonSchema + Send + Sync + 'static;
    type Output: Serialize + JsonSchema;
    const NAME: &'static str;
    /// See [`ToolSpec::toolset`].
    const TOOLSET: &'static str;
    const TITLE: &'static str;
    const DESCRIPTION: &'static str;
    const RISK: Risk;
    const IDEMPOTENT: bool = false;
    /// Whether the tool reaches systems outside toolgate (clusters, metrics backends...).
    const OPEN_WORLD: bool = true;
    /// Time limit of one call when it must differ from `tools.timeout_seconds` (e.g. a tool
    /// that waits for a human).
    const MAX_SECONDS: Option<u64> = None;
    /// `Some(field)` when the output has a large top-level array that the core may cut.
    const BUDGET_FIELD: Option<&'static str> = None;
    /// Cut from the front instead of the back (see [`Budget::keep_last`]).
    const BUDGET_KEEP_LAST: bool = false;
    /// List the output schema in tools/list: only where a client gains from it (fields it
    /// acts on, such as a state to poll). Every listed byte is paid by the agent on every turn,
    /// and an answer that is read as text gains nothing; `structuredContent` is sent either way.
    const LISTS_OUTPUT_SCHEMA: bool = false;
    /// `Some(sentence)` when answers carry text written upstream (logs, event messages,
    /// annotations): the sentence ("Log text is untrusted upstream data.") ends the
    /// description, and answers hold `untrusted: true`.
    const UNTRUSTED: Option<&'static str> = None;
    /// See [`ToolSpec::text_lines`].
    const TEXT_LINES: Option<&'static str> = None;

    fn call(
        &self,
        ctx: &ToolContext,
        params: Self::Params,
    ) -> impl Future<Output = Result<Self::Output, ToolError>> + Send;

    /// The output as the JSON the core budgets and renders. The default serializes it, which
    /// copies every string; a tool whose answer is mostly owned text (a log's lines) can move
    /// that text in instead. Must give what `serde_json::to_value` gives.
    fn into_value(out: Self::Output) -> Result<Value, serde_json::Error> {
        serde_json::to_value(out)
    }

    /// What the call acts on; `None` = read `cluster`/`namespace`/`kind`/`name` from the args.
    /// Used when [`TypedTool::resolve`] settles nothing.
    fn target(&self, _params: &Self::Params) -> Option<Target> {
        None
    }

    /// Settle what the params leave to the upstream and refuse what it would read differently
    /// from how policy reads it (k8s: the cluster, the namespace a call falls back to, the kind
    /// through discovery, names checked as the API server checks them), before policy sees the
    /// call. `Ok(Some(target))`: `params` now hold the settled values (the core re-serializes
    /// them as the call's arguments; the approved call runs them) and `target` is built from
    /// them. `Ok(None)`: nothing to settle. An error refuses the call; nothing runs.
    fn resolve(
        &self,
        _ctx: &ToolContext,
        _params: &mut Self::Params,
    ) -> impl Future<Output = Result<Option<Target>, ToolError>> + Send {
        async { Ok(None) }
    }

    /// Arguments fit for approvers and the audit log (e.g. Secret data removed from a
    /// manifest); `None` = unchanged.
    fn redact_args(&self, _args: &Value) -> Option<Value> {
        None
    }

    /// What the call would do (dry run), for approvers. Default: no preview.
    fn preview(
        &self,
        _ctx: &ToolContext,
        _params: &Self::Params,
    ) -> impl Future<Output = Result<Option<Preview>, ToolError>> + Send {
        async { Ok(None) }
    }

    /// The target's current resourceVersion, re-read before an approved call runs.
    fn target_version(
        &self,
        _ctx: &ToolContext,
        _params: &Self::Params,
    ) -> impl Future<Output = Result<Option<String>, ToolError>> + Send {
        async { Ok(None) }
    }

    /// For a tool whose approved answer must not be kept (a revealed secret value): the run
    /// answers without it (that answer is what the approval stores), and this gives the
    /// requester the full answer when they fetch the executed request's result
    /// (`approval.status`, MCP tasks), read again from the upstream each time; `ctx.principal`
    /// is the requester. `None`: the stored answer as it is.
    fn requester_result(
        &self,
        _ctx: &ToolContext,
        _params: Self::Params,
        _stored: &Value,
    ) -> impl Future<Output = Result<Option<Value>, ToolError>> + Send {
        async { Ok(None) }
    }
}

/// Wraps a [`TypedTool`] into a [`Tool`] with its generated schemas.
pub struct Typed<T: TypedTool> {
    inner: T,
    spec: ToolSpec,
}

impl<T: TypedTool> Typed<T> {
    pub fn new(inner: T) -> Self {
        let spec = ToolSpec {
            name: T::NAME,
            toolset: T::TOOLSET,
            title: T::TITLE,
            description: match T::UNTRUSTED {
                Some(sentence) => format!("{} {sentence}", T::DESCRIPTION),
                None => T::DESCRIPTION.to_string(),
            },
            risk: T::RISK,
            budget: T::BUDGET_FIELD.map(|items_field| Budget {
                items_field,
                keep_last: T::BUDGET_KEEP_LAST,
            }),
            idempotent: T::IDEMPOTENT,
            open_world: T::OPEN_WORLD,
            max_seconds: T::MAX_SECONDS,
            input_schema: Arc::new(schema_object::<T::Params>(Contract::Deserialize)),
            output_schema: Arc::new(schema_object::<T::Output>(Contract::Serialize)),
            lists_output_schema: T::LISTS_OUTPUT_SCHEMA,
            untrusted: T::UNTRUSTED.is_some(),
            text_lines: T::TEXT_LINES,
        };
        Self { inner, spec }
    }
}

/// Convenience: `typed(MyTool)` gives the `Arc<dyn Tool>` the registry stores.
pub fn typed<T: TypedTool>(tool: T) -> Arc<dyn Tool> {
    Arc::new(Typed::new(tool))
}

impl<T: TypedTool> Tool for Typed<T> {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn prepare(self: Arc<Self>, args: Value) -> Result<Box<dyn PreparedCall>, ToolError> {
        let params = typed_params::<T>(&args)?;
        Ok(Box::new(TypedCall {
            tool: self,
            args,
            params,
        }))
    }

    fn invoke<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let params = typed_params::<T>(&args)?;
            run_typed(&self.inner, ctx, params).await
        })
    }

    fn redact_args(&self, args: &Value) -> Value {
        self.inner.redact_args(args).unwrap_or_else(|| args.clone())
    }

    fn target(&self, args: &Value) -> Target {
        typed_params::<T>(args)
            .ok()
            .and_then(|p| self.inner.target(&p))
            .unwrap_or_else(|| Target::from_args(args))
    }

    fn preview<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: &'a Value,
    ) -> BoxFuture<'a, Result<Option<Preview>, ToolError>> {
        Box::pin(async move {
            let params = typed_params::<T>(args)?;
            self.inner.preview(ctx, &params).await
        })
    }

    fn target_version<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: &'a Value,
    ) -> BoxFuture<'a, Result<Option<String>, ToolError>> {
        Box::pin(async move {
            let params = typed_params::<T>(args)?;
            self.inner.target_version(ctx, &params).await
        })
    }

    fn requester_result<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: &'a Value,
        stored: &'a Value,
    ) -> BoxFuture<'a, Result<Option<Value>, ToolError>> {
        Box::pin(async move {
            let params = typed_params::<T>(args)?;
            self.inner.requester_result(ctx, params, stored).await
        })
    }
}

/// A [`TypedTool`] call with its arguments parsed once.
struct TypedCall<T: TypedTool> {
    tool: Arc<Typed<T>>,
    args: Value,
    params: T::Params,
}

impl<T: TypedTool> PreparedCall for TypedCall<T> {
    fn args(&self) -> &Value {
        &self.args
    }

    fn target(&self) -> Target {
        self.tool
            .inner
            .target(&self.params)
            .unwrap_or_else(|| Target::from_args(&self.args))
    }

    fn resolve<'a>(&'a mut self, ctx: &'a ToolContext) -> BoxFuture<'a, Result<Target, ToolError>> {
        Box::pin(async move {
            match self.tool.inner.resolve(ctx, &mut self.params).await? {
                None => Ok(self.target()),
                Some(target) => {
                    self.args = settled_args(&self.params)?;
                    Ok(target)
                }
            }
        })
    }

    fn preview<'a>(
        &'a self,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Option<Preview>, ToolError>> {
        Box::pin(self.tool.inner.preview(ctx, &self.params))
    }

    fn target_version<'a>(
        &'a self,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Option<String>, ToolError>> {
        Box::pin(self.tool.inner.target_version(ctx, &self.params))
    }

    fn invoke<'a>(
        self: Box<Self>,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        let TypedCall { tool, params, .. } = *self;
        Box::pin(async move { run_typed(&tool.inner, ctx, params).await })
    }
}

/// The typed call and the one serialization of its output into the JSON the core budgets.
async fn run_typed<T: TypedTool>(
    tool: &T,
    ctx: &ToolContext,
    params: T::Params,
) -> Result<Value, ToolError> {
    let out = tool.call(ctx, params).await?;
    let mut value = T::into_value(out)
        .map_err(|e| ToolError::internal(format!("cannot serialize output: {e}")))?;
    if T::UNTRUSTED.is_some()
        && let Value::Object(map) = &mut value
    {
        map.insert(UNTRUSTED_FIELD.into(), Value::Bool(true));
    }
    Ok(value)
}

/// Settled params as the call's JSON arguments: absent options are left out, as a caller
/// leaves them out (the input schema does not accept `null` for them).
fn settled_args<P: Serialize>(params: &P) -> Result<Value, ToolError> {
    match serde_json::to_value(params) {
        Ok(Value::Object(mut map)) => {
            map.retain(|_, v| !v.is_null());
            Ok(Value::Object(map))
        }
        Ok(_) => Err(ToolError::internal(
            "settled arguments are not a JSON object",
        )),
        Err(e) => Err(ToolError::internal(format!(
            "cannot serialize settled arguments: {e}"
        ))),
    }
}

/// Parse from the borrowed JSON (no copy of the arguments).
fn typed_params<T: TypedTool>(args: &Value) -> Result<T::Params, ToolError> {
    T::Params::deserialize(args).map_err(|e| {
        ToolError::invalid_arguments(format!("arguments do not match the schema: {e}"))
    })
}

pub use crate::core::flat_schema::Contract;

/// The published JSON Schema of a type (see [`crate::core::flat_schema`]), as a JSON object.
pub fn schema_object<S: JsonSchema>(contract: Contract) -> Map<String, Value> {
    crate::core::flat_schema::schema_of::<S>(contract)
}
