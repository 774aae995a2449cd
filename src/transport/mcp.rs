//! MCP over stdio and streamable HTTP (rmcp): tools/list from the registry, tools/call through
//! the dispatch core. A tool that ran and failed is `isError: true` with a message the model can
//! act on; an unknown tool is a JSON-RPC error (invalid params) listing the closest names. A
//! call held for approval is a task for clients that declare the tasks extension
//! (`mcp_tasks.rs`), and the `approval_required` answer for every other client.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock,
    GetTaskParams, GetTaskResult, Implementation, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use super::answer_text;
use super::config::ToolNames;
use super::mcp_tasks;
use crate::auth::caller::Caller;
use crate::core::ApprovalState;
use crate::core::approval::{ApprovalError, held_approval_id};
use crate::core::context::ProgressSink;
use crate::core::dispatch::{CallRequest, Dispatcher};
use crate::core::principal::Principal;
use crate::core::registry::{self, Entry, Registry};

/// Transport labels used in metrics, logs and (later) audit.
pub const STDIO: &str = "mcp-stdio";
pub const HTTP: &str = "mcp-http";

/// Who calls, and how the answer may come back: what [`McpServer::call`] needs besides the
/// call itself.
pub(crate) struct ToolCall {
    pub principal: Principal,
    /// The client declared the tasks extension: a held write answers as a task.
    pub tasks: bool,
    pub request_id: String,
    pub progress: Option<ProgressSink>,
}

/// The MCP face of the server. Cheap to clone: one per MCP session. Every session shares the
/// one tool list built at start ([`mcp_tools`]): a session holds no copy of the schemas.
#[derive(Clone)]
pub struct McpServer {
    dispatcher: Arc<Dispatcher>,
    tools: Arc<Vec<rmcp::model::Tool>>,
    names: ToolNames,
    transport: &'static str,
    principal: Principal,
}

impl McpServer {
    pub fn new(
        dispatcher: Arc<Dispatcher>,
        tools: Arc<Vec<rmcp::model::Tool>>,
        names: ToolNames,
        transport: &'static str,
        principal: Principal,
    ) -> Self {
        Self {
            dispatcher,
            tools,
            names,
            transport,
            principal,
        }
    }

    /// A `tools/call`, run through the dispatch core: by rmcp's handler ([`ServerHandler::call_tool`])
    /// and by the direct path of plain calls in a session (`mcp_direct`).
    pub(crate) async fn call(
        &self,
        request: CallToolRequestParams,
        call: ToolCall,
    ) -> Result<CallToolResponse, ErrorData> {
        let ToolCall {
            principal,
            tasks,
            request_id,
            progress,
        } = call;
        let args = request.arguments.map(Value::Object).unwrap_or(Value::Null);
        let tool = request.name.to_string();
        let text_lines = self
            .dispatcher
            .registry()
            .get(&tool)
            .ok()
            .and_then(|e| e.spec().text_lines);
        let call = CallRequest {
            principal: principal.clone(),
            transport: self.transport,
            tool,
            args,
            request_id,
            progress,
        };
        match self.dispatcher.dispatch(call).await {
            // An unknown name is a protocol error (-32602), as the MCP spec asks; the names it
            // suggests are those this client sees listed.
            Err(mut unknown) => {
                for s in &mut unknown.suggestions {
                    *s = listed_name(s, self.names);
                }
                Err(ErrorData::invalid_params(
                    unknown.to_string(),
                    Some(json!({"tool": unknown.name, "suggestions": unknown.suggestions})),
                ))
            }
            Ok(Ok(output)) => {
                if tasks && let Some(id) = held_approval_id(&output) {
                    // Read back from the store: `tasks/get` on this id answers from now on.
                    match self.dispatcher.held_call(&principal, id).await {
                        Ok(view) => return Ok(mcp_tasks::created(&view).into()),
                        Err(e) => {
                            tracing::warn!(approval_id = id, error = %e,
                                "held call answered as approval_required: its task could not be read")
                        }
                    }
                }
                Ok(tool_answer(Ok(output), text_lines).into())
            }
            Ok(Err(err)) => Ok(tool_answer(Err(err.message), text_lines).into()),
        }
    }

    /// Who sent the request: over HTTP the auth middleware put the caller into it; stdio has
    /// one user.
    fn caller(&self, context: &RequestContext<RoleServer>) -> Principal {
        match context.extensions.get::<http::request::Parts>() {
            Some(parts) => http_caller(&parts.extensions),
            None => self.principal.clone(),
        }
    }
}

/// The caller the auth middleware put into an HTTP request's extensions; without one, a
/// principal with no roles, whom policy refuses everything.
pub(crate) fn http_caller(extensions: &http::Extensions) -> Principal {
    Caller::of(extensions)
        .map(|caller| caller.principal.clone())
        .unwrap_or_else(|| Principal::new("unauthenticated", "unauthenticated", Vec::new()))
}

/// The tools this server offers, as MCP tool definitions in the configured naming style.
pub fn mcp_tools(registry: &Registry, names: ToolNames) -> Vec<rmcp::model::Tool> {
    describe(registry.offered(), names)
}

/// A canonical (dotted) name as this transport lists it.
pub fn listed_name(dotted: &str, names: ToolNames) -> String {
    match names {
        ToolNames::Dotted => dotted.to_string(),
        ToolNames::Underscored => registry::underscored(dotted),
    }
}

/// MCP tool definitions of `entries`, in the configured naming style.
pub fn describe<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    names: ToolNames,
) -> Vec<rmcp::model::Tool> {
    entries
        .into_iter()
        .filter_map(|entry| {
            let spec = entry.spec();
            let mut value = json!({
                "name": listed_name(spec.name, names),
                "title": spec.title,
                "description": registry::listed_description(spec),
                "inputSchema": Value::Object((*entry.input_schema).clone()),
                "annotations": registry::annotations(spec),
            });
            if let Some(output) = &entry.output_schema {
                value["outputSchema"] = Value::Object((**output).clone());
            }
            match serde_json::from_value(value) {
                Ok(tool) => Some(tool),
                Err(e) => {
                    tracing::error!(tool = spec.name, error = %e, "cannot describe tool for MCP");
                    None
                }
            }
        })
        .collect()
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        // The tasks extension: held writes become tasks for clients that declare it.
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tasks()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("toolgate", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "toolgate gives SRE tools over Kubernetes and observability. Read tools run at once. \
                 Write tools need a human approval. Big answers are cut at `max_bytes`: continue with the `cursor` they return.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items((*self.tools).clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let principal = self.caller(&context);
        // Per request (2026-07-28 `_meta`) or, in a session, as declared at `initialize`.
        let tasks = context
            .client_capabilities()
            .is_some_and(|caps| caps.supports_tasks());
        let progress: Option<ProgressSink> = context.meta.get_progress_token().map(|token| {
            let peer = context.peer.clone();
            let sink: ProgressSink = Arc::new(move |progress, total, message| {
                let peer = peer.clone();
                let mut param =
                    ProgressNotificationParam::new(token.clone(), progress).with_message(message);
                if let Some(total) = total {
                    param = param.with_total(total);
                }
                tokio::spawn(async move {
                    let _ = peer.notify_progress(param).await;
                });
            });
            sink
        });
        let call = ToolCall {
            principal,
            tasks,
            request_id: request_id_text(&context.id),
            progress,
        };
        self.call(request, call).await
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let view =
            mcp_tasks::held(&self.dispatcher, &self.caller(&context), &request.task_id).await?;
        let text_lines = self
            .dispatcher
            .registry()
            .get(&view.tool)
            .ok()
            .and_then(|e| e.spec().text_lines);
        Ok(GetTaskResult::new(mcp_tasks::task(
            &view,
            jiff::Timestamp::now(),
            text_lines,
        )))
    }

    /// Withdraws the approval request while it is pending (audited as `cancelled`; approvers
    /// can no longer approve it). Once decided the call goes its way, as the spec allows:
    /// `tasks/get` tells how it ended.
    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let requester = self.caller(&context);
        let view = mcp_tasks::held(&self.dispatcher, &requester, &request.task_id).await?;
        if view.state != ApprovalState::Pending {
            return Ok(());
        }
        match self.dispatcher.cancel(&requester, &view.id).await {
            Ok(_) | Err(ApprovalError::NotPending(_)) => Ok(()),
            Err(e) => Err(ErrorData::internal_error(
                format!("task `{}` could not be cancelled: {e}", view.id),
                None,
            )),
        }
    }

    /// These tasks never ask the client for input, so there is nothing to answer: a known task
    /// is acknowledged (responses to keys never issued are ignored, as the spec says).
    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        mcp_tasks::held(&self.dispatcher, &self.caller(&context), &request.task_id).await?;
        Ok(())
    }
}

/// The `tools/call` result of a tool's answer: the structured output with its text rendering
/// ([`answer_text::render`]; `text_lines` names the field that is the text's body), or a tool
/// error (`isError`) the model can read.
pub fn tool_answer(answer: Result<Value, String>, text_lines: Option<&str>) -> CallToolResult {
    match answer {
        Ok(output) => {
            let answer = answer_text::render(output, text_lines);
            // Not `CallToolResult::structured`: it renders the structured JSON as text too,
            // which the rendered text replaces (a whole list serialized for nothing).
            let mut result = CallToolResult::success(vec![ContentBlock::text(answer.text)]);
            result.structured_content = Some(answer.structured);
            result
        }
        Err(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
    }
}

/// A JSON-RPC request id as audit and logs name it: a string as is, a number as its digits.
pub(crate) fn request_id_text(id: &rmcp::model::RequestId) -> String {
    match serde_json::to_value(id) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}
