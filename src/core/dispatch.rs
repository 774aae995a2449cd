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
            Some(b) => budget::apply(output, b.items_field, &page, max_bytes, spec.name, &hash),
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
