//! The one path that runs a call once policy lets it run — at once (`dispatch`) or after the
//! approvals it needed (`approval`): the same time limit, the same output budget and size
//! check, the same cutting-out of secret argument values, and the same outcome audit record.
//! It owns no approval state (that is `core::approval`) and appends audit records only through
//! `core::audit`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::ToolsConfig;
use crate::core::audit::{self, Record};
use crate::core::budget;
use crate::core::context::{Page, ToolContext};
use crate::core::dispatch::{CallResult, Dispatcher};
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::registry::Entry;
use crate::core::tool::{PreparedCall, Risk, ToolSpec};

/// The output budget a caller asked for (`max_bytes`, `cursor`), with the default filled in.
/// It is stored with an approval request, so the approved run is cut exactly like the same
/// call run directly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetRequest {
    pub max_bytes: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A budget request checked against the tool and its query.
#[derive(Debug, Clone)]
pub(crate) struct OutputBudget {
    max_bytes: usize,
    page: Page,
    /// Hash of the query arguments, binding cursors to them.
    hash: String,
}

impl OutputBudget {
    /// Where the tool continues from (decoded cursor).
    pub(crate) fn page(&self) -> &Page {
        &self.page
    }
}

impl BudgetRequest {
    /// Take the core's own arguments out of `args`: they never reach the tool, the policy or
    /// the approval queue. Tools without a budget get the hard limit (and have no such
    /// arguments in their schema).
    pub(crate) fn take(
        spec: &ToolSpec,
        settings: &ToolsConfig,
        args: &mut Map<String, Value>,
    ) -> Result<Self, ToolError> {
        if spec.budget.is_none() {
            return Ok(Self {
                max_bytes: settings.max_bytes_limit,
                cursor: None,
            });
        }
        let max_bytes = match args.remove(budget::MAX_BYTES_ARG) {
            None => settings.default_max_bytes,
            Some(v) => match v.as_u64() {
                Some(n) if (n as usize) <= settings.max_bytes_limit => n as usize,
                _ => {
                    return Err(ToolError::invalid_arguments(format!(
                        "argument `max_bytes`: {v} is out of range; expected 1024..={}",
                        settings.max_bytes_limit
                    )));
                }
            },
        };
        let cursor = args
            .remove(budget::CURSOR_ARG)
            .map(|c| c.as_str().unwrap_or_default().to_string());
        Ok(Self { max_bytes, cursor })
    }

    /// Decode the cursor for this tool and these (budget-free) arguments. A limit lowered since
    /// the request was stored caps it.
    pub(crate) fn resolve(
        &self,
        spec: &ToolSpec,
        settings: &ToolsConfig,
        args: &Value,
    ) -> Result<OutputBudget, ToolError> {
        let max_bytes = self.max_bytes.min(settings.max_bytes_limit);
        if spec.budget.is_none() {
            return Ok(OutputBudget {
                max_bytes,
                page: Page::default(),
                hash: String::new(),
            });
        }
        let hash = match args {
            Value::Object(map) => budget::query_hash(map),
            _ => budget::query_hash(&Map::new()),
        };
        let mut page = match &self.cursor {
            Some(cursor) => budget::decode_cursor(cursor, spec.name, &hash)?,
            None => Page::default(),
        };
        page.max_bytes = Some(max_bytes);
        Ok(OutputBudget {
            max_bytes,
            page,
            hash,
        })
    }
}

/// How long one call of `spec` may run: its own limit, else the configured one.
pub(crate) fn time_limit(spec: &ToolSpec, settings: &ToolsConfig) -> Duration {
    spec.max_seconds
        .map(Duration::from_secs)
        .unwrap_or(settings.timeout)
}

/// One call that policy (and, when it asked, enough approvers) let run.
pub(crate) struct Invocation<'a> {
    pub entry: &'a Entry,
    pub call: Box<dyn PreparedCall>,
    pub ctx: ToolContext,
    pub budget: OutputBudget,
    /// The policy rule that let it run.
    pub rule: String,
    /// Set when the call runs after approval.
    pub approval_id: Option<String>,
}

/// What a run produced: the answer, and whether its audit record was written (a direct call
/// gives no answer without one; an approved call still records its outcome in the request).
pub(crate) struct Invoked {
    pub result: CallResult,
    pub audited: Result<(), ToolError>,
}

impl Dispatcher {
    /// Run the call: time limit, tool, secret values cut out, output budget, outcome audit.
    pub(crate) async fn invoke(&self, inv: Invocation<'_>) -> Invoked {
        let Invocation {
            entry,
            call,
            ctx,
            budget: out_budget,
            rule,
            approval_id,
        } = inv;
        let spec = entry.spec();
        let redacted = audit::redact_args(entry, call.args());
        let secrets = audit::secret_values(call.args(), &entry.input_schema);
        let limit = time_limit(spec, self.settings());
        // Upstream requests carry the call's id (an approved run: its approval's), in
        // x-request-id and traceparent.
        let correlated =
            crate::adapters::http::correlation::scope(ctx.request_id.clone(), call.invoke(&ctx));
        let invoked = match tokio::time::timeout(limit, correlated).await {
            Ok(result) => result,
            Err(_) => Err(ToolError::new(
                ToolErrorKind::Timeout,
                format!(
                    "{} did not finish within {} s; narrow the query (namespace, selectors, fewer lines) and try again",
                    spec.name,
                    limit.as_secs()
                ),
            )),
        };
        // Secrets are cut out before the budget measures, so the answer still fits.
        let result = match invoked {
            Ok(output) => {
                let output = audit::redact_secret_values(output, &secrets);
                match spec.budget {
                    Some(b) => budget::apply(
                        output,
                        b,
                        &out_budget.page,
                        out_budget.max_bytes,
                        spec.name,
                        &out_budget.hash,
                    ),
                    None => budget::check_whole(&output, out_budget.max_bytes, spec.name)
                        .map(|()| output),
                }
            }
            Err(e) => Err(ToolError::new(
                e.kind,
                audit::redact_text(&e.message, &secrets),
            )),
        };
        // Reads are recorded once, with their result; anything that can change something (and
        // any approved call) is recorded as executed or failed, synced.
        let acts = spec.risk != Risk::Read || approval_id.is_some();
        let decision = match (acts, result.is_ok()) {
            (false, _) => "allowed",
            (true, true) => "executed",
            (true, false) => "failed",
        };
        let record = Record {
            principal: &ctx.principal,
            transport: ctx.transport,
            tool: spec.name,
            args: redacted,
            decision,
            rule: Some(rule),
            approval_id,
            result_summary: Some(audit::summarize(&result)),
            trace_id: Some(ctx.request_id.clone()),
        };
        let audited = if acts {
            self.audit(record).await
        } else {
            self.audit_read(record).await
        };
        Invoked { result, audited }
    }
}

#[cfg(test)]
mod tests;
