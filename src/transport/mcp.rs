//! MCP over stdio and streamable HTTP (rmcp): tools/list from the registry, tools/call through
//! the dispatch core. A tool that ran and failed is `isError: true` with a message the model can
//! act on; an unknown tool is a JSON-RPC error (invalid params) listing the closest names.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use super::answer_text;
use super::config::ToolNames;
use crate::auth::caller::Caller;
use crate::core::context::ProgressSink;
use crate::core::dispatch::{CallRequest, Dispatcher};
use crate::core::principal::Principal;
use crate::core::registry::{self, Entry, Registry};

/// Transport labels used in metrics, logs and (later) audit.
pub const STDIO: &str = "mcp-stdio";
pub const HTTP: &str = "mcp-http";

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
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
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
        let args = request.arguments.map(Value::Object).unwrap_or(Value::Null);
        // Over HTTP the auth middleware put the caller into the request; stdio has one user.
        let principal = match context.extensions.get::<http::request::Parts>() {
            Some(parts) => Caller::of(&parts.extensions)
                .map(|caller| caller.principal.clone())
                .unwrap_or_else(|| {
                    Principal::new("unauthenticated", "unauthenticated", Vec::new())
                }),
            None => self.principal.clone(),
        };
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
        let tool = request.name.to_string();
        let text_lines = self
            .dispatcher
            .registry()
            .get(&tool)
            .ok()
            .and_then(|e| e.spec().text_lines);
        let call = CallRequest {
            principal,
            transport: self.transport,
            tool,
            args,
            request_id: request_id_text(&context),
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
                let answer = answer_text::render(output, text_lines);
                let mut result = CallToolResult::structured(answer.structured);
                result.content = vec![ContentBlock::text(answer.text)];
                Ok(result.into())
            }
            Ok(Err(err)) => Ok(CallToolResult::error(vec![ContentBlock::text(err.message)]).into()),
        }
    }
}

fn request_id_text(context: &RequestContext<RoleServer>) -> String {
    match serde_json::to_value(&context.id) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}
