//! The one entry every transport calls: look up, validate, gate, invoke with a timeout, apply
//! the output budget, record metrics and a span. Transports only translate to and from this.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use tracing::Instrument;

use crate::adapters::Adapters;
use crate::config::ToolsConfig;
use crate::core::budget;
use crate::core::context::{Page, ToolContext};
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::principal::Principal;
use crate::core::registry::{Registry, UnknownTool};
use crate::core::validate;
use crate::metrics;

/// One tool call as a transport hands it over.
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub principal: Principal,
    /// `mcp-stdio`, `mcp-http`, `jsonrpc`, `a2a`…
    pub transport: &'static str,
    pub tool: String,
    /// The arguments object (`null` is read as `{}`).
    pub args: Value,
    pub request_id: String,
}

/// The answer of a call that reached a tool (or was refused by the core): structured output,
/// or a tool error the model can act on.
pub type CallResult = Result<Value, ToolError>;

pub struct Dispatcher {
    registry: Arc<Registry>,
    adapters: Arc<Adapters>,
    settings: ToolsConfig,
}

impl Dispatcher {
    pub fn new(registry: Arc<Registry>, adapters: Arc<Adapters>, settings: ToolsConfig) -> Self {
        Self {
            registry,
            adapters,
            settings,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn adapters(&self) -> &Arc<Adapters> {
        &self.adapters
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
            principal = %req.principal.sub,
            request_id = %req.request_id,
            transport = req.transport,
            risk = spec.risk.as_str(),
            decision = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let result = self.run(entry, req.clone()).instrument(span.clone()).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => outcome_label(e.kind),
        };
        span.record("outcome", outcome);
        span.in_scope(|| match &result {
            Ok(_) => tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "tool call done"),
            Err(e) => tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, error = %e.message, "tool call failed"),
        });
        metrics::tool_call(spec.name, req.transport, outcome, started.elapsed());
        Ok(result)
    }

    async fn run(&self, entry: &crate::core::registry::Entry, req: CallRequest) -> CallResult {
        let spec = entry.spec();
        let mut args = match req.args {
            Value::Null => Value::Object(Map::new()),
            other => other,
        };
        validate::normalize_numbers(&mut args);
        validate::check(&entry.validator, &entry.input_schema, &args)
            .map_err(|msg| ToolError::invalid_arguments(format!("{}: {msg}", spec.name)))?;

        // Until the approval gate exists, nothing but read tools may run.
        if spec.risk.needs_approval() {
            tracing::Span::current().record("decision", "approval_required");
            return Err(ToolError::new(
                ToolErrorKind::ApprovalRequired,
                format!(
                    "{} is a {} tool: it needs a human approval before it runs, and no approval queue is configured on this server. Nothing was executed. Ask an operator to run it, or use a read tool to inspect the state instead.",
                    spec.name,
                    spec.risk.as_str()
                ),
            ));
        }
        tracing::Span::current().record("decision", "allow");

        let Value::Object(mut map) = args else {
            return Err(ToolError::invalid_arguments(
                "arguments must be a JSON object",
            ));
        };
        let mut page = Page::default();
        let mut max_bytes = self.settings.max_bytes_limit;
        let mut hash = String::new();
        if spec.budget.is_some() {
            hash = budget::query_hash(&map);
            max_bytes = match map.remove(budget::MAX_BYTES_ARG) {
                None => self.settings.default_max_bytes,
                Some(v) => match v.as_u64() {
                    Some(n) if (n as usize) <= self.settings.max_bytes_limit => n as usize,
                    _ => {
                        return Err(ToolError::invalid_arguments(format!(
                            "argument `max_bytes`: {v} is out of range; expected 1024..={}",
                            self.settings.max_bytes_limit
                        )));
                    }
                },
            };
            if let Some(cursor) = map.remove(budget::CURSOR_ARG) {
                let cursor = cursor.as_str().unwrap_or_default().to_string();
                page = budget::decode_cursor(&cursor, spec.name, &hash)?;
            }
        }

        let ctx = ToolContext {
            principal: req.principal,
            transport: req.transport,
            request_id: req.request_id,
            page: page.clone(),
            adapters: self.adapters.clone(),
        };
        let output = match tokio::time::timeout(
            self.settings.timeout,
            entry.tool.invoke(&ctx, Value::Object(map)),
        )
        .await
        {
            Ok(result) => result?,
            Err(_) => {
                return Err(ToolError::new(
                    ToolErrorKind::Timeout,
                    format!(
                        "{} did not finish within {} s; narrow the query (namespace, selectors, fewer lines) and try again",
                        spec.name,
                        self.settings.timeout.as_secs()
                    ),
                ));
            }
        };
        match spec.budget {
            Some(b) => budget::apply(output, b, &page, max_bytes, spec.name, &hash),
            None => {
                budget::check_whole(&output, max_bytes, spec.name)?;
                Ok(output)
            }
        }
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::kube::KubeAdapter;
    use crate::config::Config;
    use crate::core::tool::{Risk, TypedTool, typed};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use serde_json::json;
    use std::time::Duration;

    #[derive(Deserialize, JsonSchema)]
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

    #[derive(Deserialize, JsonSchema)]
    struct Nothing {}

    struct Wipe(Arc<std::sync::atomic::AtomicUsize>);
    impl TypedTool for Wipe {
        type Params = Nothing;
        type Output = serde_json::Value;
        const NAME: &'static str = "test.wipe";
        const TITLE: &'static str = "Wipe";
        const DESCRIPTION: &'static str = "Wipes.";
        const RISK: Risk = Risk::Critical;
        async fn call(&self, _: &ToolContext, _: Nothing) -> Result<serde_json::Value, ToolError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(json!({}))
        }
    }

    fn dispatcher(runs: Arc<std::sync::atomic::AtomicUsize>) -> Dispatcher {
        let config = Config::default();
        let registry = Registry::new(vec![typed(Count), typed(Wipe(runs))]).expect("registry");
        let adapters = Adapters {
            kube: Arc::new(KubeAdapter::new(&config.kubernetes)),
        };
        let mut settings = config.tools.clone();
        settings.timeout = Duration::from_millis(200);
        Dispatcher::new(Arc::new(registry), Arc::new(adapters), settings)
    }

    fn req(tool: &str, args: Value) -> CallRequest {
        CallRequest {
            principal: Principal::local("tester"),
            transport: "test",
            tool: tool.into(),
            args,
            request_id: "1".into(),
        }
    }

    #[tokio::test]
    async fn unknown_tools_name_the_closest() {
        let d = dispatcher(Default::default());
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
        let d = dispatcher(Default::default());
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
    async fn non_read_tools_are_refused_and_not_run() {
        let runs: Arc<std::sync::atomic::AtomicUsize> = Default::default();
        let d = dispatcher(runs.clone());
        let err = d
            .dispatch(req("test.wipe", json!({})))
            .await
            .expect("known")
            .expect_err("refused");
        assert_eq!(err.kind, ToolErrorKind::ApprovalRequired);
        assert!(err.message.contains("no approval queue is configured"));
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn slow_tools_time_out() {
        let d = dispatcher(Default::default());
        let err = d
            .dispatch(req("test.count", json!({"n": 1, "sleep_ms": 2000})))
            .await
            .expect("known")
            .expect_err("timeout");
        assert_eq!(err.kind, ToolErrorKind::Timeout);
    }

    #[tokio::test]
    async fn budget_cuts_and_cursor_continues_through_dispatch() {
        let d = dispatcher(Default::default());
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
