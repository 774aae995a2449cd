//! The tool abstraction: what a tool declares (name, risk, schemas) and how the core calls it.
//! Tools are transport-free: they never see MCP, HTTP, policy, approvals or audit.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
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
    pub title: &'static str,
    pub description: &'static str,
    pub risk: Risk,
    /// Present when the output can be large: the core adds `max_bytes` and `cursor`
    /// arguments and cuts `items_field` to fit.
    pub budget: Option<Budget>,
    /// Whether repeating the call with the same arguments has no further effect.
    pub idempotent: bool,
    /// Whether the tool reaches systems outside toolgate (MCP `openWorldHint`).
    pub open_world: bool,
    /// JSON Schema of the arguments (object). Generated from the params type.
    pub input_schema: Arc<Map<String, Value>>,
    /// JSON Schema of the structured output (object). Generated from the output type.
    pub output_schema: Arc<Map<String, Value>>,
}

/// A tool as the core sees it.
pub trait Tool: Send + Sync + 'static {
    fn spec(&self) -> &ToolSpec;
    /// Run the tool with arguments already validated against `spec().input_schema`
    /// (with the core's own `max_bytes`/`cursor` removed).
    fn invoke<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, ToolError>>;
}

/// The typed way to write a tool: params and output are Rust types, schemas come from schemars,
/// doc comments become descriptions. `#[serde(deny_unknown_fields)]` on params makes unknown
/// arguments an error.
pub trait TypedTool: Send + Sync + 'static {
    type Params: DeserializeOwned + JsonSchema + Send;
    type Output: Serialize + JsonSchema;
    const NAME: &'static str;
    const TITLE: &'static str;
    const DESCRIPTION: &'static str;
    const RISK: Risk;
    const IDEMPOTENT: bool = false;
    /// Whether the tool reaches systems outside toolgate (clusters, metrics backends...).
    const OPEN_WORLD: bool = true;
    /// `Some(field)` when the output has a large top-level array that the core may cut.
    const BUDGET_FIELD: Option<&'static str> = None;
    /// Cut from the front instead of the back (see [`Budget::keep_last`]).
    const BUDGET_KEEP_LAST: bool = false;

    fn call(
        &self,
        ctx: &ToolContext,
        params: Self::Params,
    ) -> impl Future<Output = Result<Self::Output, ToolError>> + Send;
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
            title: T::TITLE,
            description: T::DESCRIPTION,
            risk: T::RISK,
            budget: T::BUDGET_FIELD.map(|items_field| Budget {
                items_field,
                keep_last: T::BUDGET_KEEP_LAST,
            }),
            idempotent: T::IDEMPOTENT,
            open_world: T::OPEN_WORLD,
            input_schema: Arc::new(schema_object::<T::Params>(Contract::Deserialize)),
            output_schema: Arc::new(schema_object::<T::Output>(Contract::Serialize)),
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

    fn invoke<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let params: T::Params = serde_json::from_value(args).map_err(|e| {
                ToolError::invalid_arguments(format!("arguments do not match the schema: {e}"))
            })?;
            let out = self.inner.call(ctx, params).await?;
            serde_json::to_value(out)
                .map_err(|e| ToolError::internal(format!("cannot serialize output: {e}")))
        })
    }
}

/// Which side of serde a schema describes: what a type accepts (params) or what it emits
/// (outputs: fields skipped when empty are then not `required`).
#[derive(Debug, Clone, Copy)]
pub enum Contract {
    Deserialize,
    Serialize,
}

/// JSON Schema (draft 2020-12) of a type, as a JSON object.
pub fn schema_object<S: JsonSchema>(contract: Contract) -> Map<String, Value> {
    let settings = schemars::generate::SchemaSettings::draft2020_12();
    let settings = match contract {
        Contract::Deserialize => settings.for_deserialize(),
        Contract::Serialize => settings.for_serialize(),
    };
    let schema = settings.into_generator().into_root_schema_for::<S>();
    match schema.to_value() {
        Value::Object(map) => map,
        // A schema of `true`/`false` only comes from unit-like types; tools take objects.
        other => {
            let mut map = Map::new();
            map.insert("type".into(), Value::String("object".into()));
            map.insert("x-original".into(), other);
            map
        }
    }
}
