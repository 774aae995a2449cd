//! A plain `tools/call` in an MCP session, answered on the connection that sent it.
//!
//! rmcp serves a session's request through two tasks of the session (its worker and its
//! service loop) and one task per request, with a channel between each: a call crosses three
//! task hand-offs on its way to the handler and three on the way back. A plain tool call needs
//! none of what they are there for (a server request to the client, progress on the call's
//! stream), so [`DirectCalls`] takes it off rmcp's path: the call runs through the same
//! `McpServer::call` in the connection's own task, and its stream is the one rmcp would
//! send — a priming event, then the answer, numbered `0/N` and `1/N` as rmcp numbers them,
//! kept and resumable by `Last-Event-ID` (`mcp_resume`) — unless the answer is ready within
//! `mcp.json_answer_within`: then it is one `application/json` body (which the streamable HTTP
//! transport allows for any request), with nothing to frame, keep or resume.
//!
//! Taken off rmcp's path only when every check rmcp would make is already known to pass:
//! a POST accepting JSON and SSE, a JSON body of known length within rmcp's limit, an open
//! session whose negotiated protocol version the request names (a version before the
//! standard request headers, none of which it sends), and a `tools/call` request without
//! `_meta` (no progress token) or input responses. Anything else goes to rmcp unchanged.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rmcp::ErrorData;
use rmcp::model::{
    CallToolRequestParams, ClientJsonRpcMessage, ClientRequest, ContentBlock, GetMeta, JsonObject,
    JsonRpcRequest, JsonRpcResponse, JsonRpcVersion2_0, ProtocolVersion, RequestId,
    ServerJsonRpcMessage, ServerResult,
};
use rmcp::transport::streamable_http_server::session::SessionId;
use tokio_util::sync::CancellationToken;

use super::mcp::{McpServer, ToolCall, http_caller, request_id_text};
use super::mcp_resume::ResumableSessions;

/// Answers plain tool calls of open sessions (see the module docs).
pub struct DirectCalls {
    pub sessions: Arc<ResumableSessions>,
    pub server: McpServer,
    /// rmcp's limit on a request body.
    pub max_body: usize,
    /// rmcp's interval of SSE keep-alive comments on a stream that waits.
    pub keep_alive: Option<Duration>,
    /// Ends open streams on shutdown, as rmcp's do.
    pub shutdown: CancellationToken,
    /// How long a call may run and still be answered with one `application/json` body
    /// (`mcp.json_answer_within`); one that runs longer gets the resumable stream. A connection
    /// lost within this time loses the JSON answer (the client sees its request fail and may
    /// send it again): the price of an answer with no stream to frame and keep.
    pub json_within: Duration,
}

/// A call that runs to its end even if its client goes away while it waits for a JSON answer
/// (the HTTP server then drops the handler): dropped unfinished, it is spawned to finish on
/// its own, its answer discarded, as rmcp's task per request would. So a write, an approval
/// request and their audit records are never cut off halfway.
struct RunToEnd<F: Future + Send + 'static> {
    call: Option<std::pin::Pin<Box<F>>>,
}

impl<F: Future + Send + 'static> RunToEnd<F> {
    fn new(call: F) -> Self {
        RunToEnd {
            call: Some(Box::pin(call)),
        }
    }
}

impl<F: Future + Send + 'static> Future for RunToEnd<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let Some(call) = self.call.as_mut() else {
            // Polled again after it answered: it has nothing more to give.
            return std::task::Poll::Pending;
        };
        let answer = std::task::ready!(call.as_mut().poll(cx));
        self.call = None;
        std::task::Poll::Ready(answer)
    }
}

impl<F: Future + Send + 'static> Drop for RunToEnd<F> {
    fn drop(&mut self) {
        if let Some(call) = self.call.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                call.await;
            });
        }
    }
}

/// The exact shape of a plain call, and nothing else: `deny_unknown_fields` sends any other
/// member (`_meta`, `inputResponses`, `requestState`, a task, a response's fields) to rmcp's
/// parse. Each part is read by rmcp's own type where it has one (the version, the id).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainCall {
    #[expect(dead_code, reason = "read only to check that it is \"2.0\"")]
    jsonrpc: JsonRpcVersion2_0,
    id: RequestId,
    method: PlainMethod,
    params: PlainParams,
}

#[derive(serde::Deserialize)]
enum PlainMethod {
    #[serde(rename = "tools/call")]
    ToolsCall,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainParams {
    name: String,
    #[serde(default)]
    arguments: Option<JsonObject>,
}

/// The id and params of `body` if it is a plain `tools/call` request (no `_meta`, so no
/// progress token; no input responses or request state), as rmcp would read them.
///
/// Most calls are the plain shape and are read by [`PlainCall`] directly. rmcp's own message
/// type reads the body through serde's buffered untagged and flattened enums, which costs
/// several times more: it is the fallback for every other body, so that what is taken off
/// rmcp's path never depends on this shape's reading alone.
fn plain_call(body: &[u8]) -> Option<(RequestId, CallToolRequestParams)> {
    fast_plain_call(body).or_else(|| rmcp_plain_call(body))
}

/// [`plain_call`] by the plain shape alone: `None` for any other body, plain or not.
fn fast_plain_call(body: &[u8]) -> Option<(RequestId, CallToolRequestParams)> {
    let call = serde_json::from_slice::<PlainCall>(body).ok()?;
    let PlainMethod::ToolsCall = call.method;
    let mut params = CallToolRequestParams::new(call.params.name);
    if let Some(arguments) = call.params.arguments {
        params = params.with_arguments(arguments);
    }
    Some((call.id, params))
}

/// [`plain_call`] by rmcp's own reading of the message.
fn rmcp_plain_call(body: &[u8]) -> Option<(RequestId, CallToolRequestParams)> {
    match serde_json::from_slice::<ClientJsonRpcMessage>(body) {
        // rmcp moves `_meta` into the request's extensions as it reads the body.
        Ok(ClientJsonRpcMessage::Request(JsonRpcRequest { id, request, .. }))
            if request.get_meta().is_empty() =>
        {
            match request {
                ClientRequest::CallToolRequest(call)
                    if call.params.meta.as_ref().is_none_or(|m| m.is_empty())
                        && call.params.input_responses.is_none()
                        && call.params.request_state.is_none() =>
                {
                    Some((id, call.params))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// `message` as one `application/json` body, written into a buffer sized for it up front
/// ([`size_hint`]). `axum::Json` starts at 128 bytes and grows the buffer eight times, each a
/// copy of all written so far, to hold a 17 KB log answer.
fn json_body(message: &ServerJsonRpcMessage) -> Response {
    let mut body = Vec::with_capacity(size_hint(message));
    match serde_json::to_writer(&mut body, message) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        // As `axum::Json` answers a value it cannot serialize.
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// About the JSON size of `message`: a tool result's text blocks, a quarter again for their
/// escapes, and 1 KB for the rest (a structured part larger than that grows the buffer).
fn size_hint(message: &ServerJsonRpcMessage) -> usize {
    const REST: usize = 1024;
    match message {
        ServerJsonRpcMessage::Response(JsonRpcResponse {
            result: ServerResult::CallToolResult(result),
            ..
        }) => {
            let text: usize = result
                .content
                .iter()
                .filter_map(ContentBlock::as_text)
                .map(|t| t.text.len())
                .sum();
            text + text / 4 + REST
        }
        _ => REST,
    }
}

/// A header's value as text, if it is present once and is text.
fn one<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?.to_str().ok()?;
    values.next().is_none().then_some(value)
}

/// The media types of the `Accept` header, without parameters.
fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(media))
        })
}

impl DirectCalls {
    /// The answer to `request` if it is a plain call of an open session; otherwise the request
    /// itself, unchanged, for rmcp.
    pub async fn answer(&self, request: Request) -> Result<Response, Request> {
        let Some((session, length)) = self.eligible(&request) else {
            return Err(request);
        };
        let Some(facts) = self.sessions.facts(&session).await else {
            return Err(request);
        };
        let version = one(request.headers(), "mcp-protocol-version");
        if version != Some(facts.protocol.as_str()) {
            return Err(request);
        }
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, length).await {
            Ok(bytes) => bytes,
            // The client did not send the body it announced: it cannot read an answer either.
            Err(_) => return Ok(StatusCode::BAD_REQUEST.into_response()),
        };
        let Some((id, params)) = plain_call(&bytes) else {
            return Err(Request::from_parts(parts, Body::from(bytes)));
        };
        self.sessions.touch(&session).await;
        let tool_call = ToolCall {
            principal: http_caller(&parts.extensions),
            tasks: facts.tasks,
            request_id: request_id_text(&id),
            progress: None,
        };
        let server = self.server.clone();
        let answer_id = id.clone();
        let call = async move {
            match server.call(params, tool_call).await.map(ServerResult::from) {
                Ok(ServerResult::InputRequiredResult(_)) => ServerJsonRpcMessage::error(
                    ErrorData::invalid_request(
                        "InputRequiredResult requires negotiated protocol version 2026-07-28 or newer",
                        None,
                    ),
                    Some(answer_id),
                ),
                Ok(mut result) => {
                    // What rmcp's handler does to a result for a peer before 2026-07-28.
                    result.strip_result_type_for_legacy_peer();
                    result.strip_non_object_output_for_legacy_peer();
                    ServerJsonRpcMessage::response(result, answer_id)
                }
                Err(error) => ServerJsonRpcMessage::error(error, Some(answer_id)),
            }
        };
        // An answer ready at once goes out as one JSON body: nothing to resume, and no stream
        // to frame or keep. A call still running then gets the resumable stream.
        let mut call = RunToEnd::new(call);
        if !self.json_within.is_zero()
            && let Ok(message) = tokio::time::timeout(self.json_within, &mut call).await
        {
            return Ok(json_body(&message));
        }
        let stream = self
            .sessions
            .direct_stream(session, id, call)
            .map(|message| {
                let mut event = Event::default();
                if let Some(id) = message.event_id {
                    event = event.id(id);
                }
                if let Some(retry) = message.retry {
                    event = event.retry(retry);
                }
                match message.message {
                    Some(message) => event.json_data(&*message),
                    // A priming event: an id to resume from and no message.
                    None => Ok(event.data("")),
                }
            })
            .take_until(self.shutdown.clone().cancelled_owned());
        let sse = Sse::new(stream);
        let mut response = match self.keep_alive {
            Some(interval) => sse
                .keep_alive(KeepAlive::new().interval(interval))
                .into_response(),
            None => sse.into_response(),
        };
        response.headers_mut().insert(
            "x-accel-buffering",
            axum::http::HeaderValue::from_static("no"),
        );
        Ok(response)
    }

    /// The session and body length of a request that may be a plain call, judged by its
    /// method and headers alone.
    fn eligible(&self, request: &Request) -> Option<(SessionId, usize)> {
        if request.method() != Method::POST {
            return None;
        }
        let headers = request.headers();
        let json = one(headers, header::CONTENT_TYPE.as_str())?
            .split(';')
            .next()?
            .trim()
            .eq_ignore_ascii_case("application/json");
        if !json || !accepts(headers, "application/json") || !accepts(headers, "text/event-stream")
        {
            return None;
        }
        // From this version on, requests carry standard headers rmcp checks against the body.
        let version = one(headers, "mcp-protocol-version")?;
        if version >= ProtocolVersion::STANDARD_HEADERS.as_str()
            || headers.contains_key("mcp-method")
            || headers.contains_key("mcp-name")
        {
            return None;
        }
        let length: usize = one(headers, header::CONTENT_LENGTH.as_str())?
            .parse()
            .ok()?;
        if length > self.max_body {
            return None;
        }
        let session = one(headers, "mcp-session-id")?;
        Some((SessionId::from(session), length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_json_answer_is_the_message_as_serde_json_writes_it_in_a_buffer_that_fits() {
        let line = r#"ts=2026-12-06T10:00:00.000Z level=info msg="request handled" status=200"#;
        let text = vec![line; 100].join("\n");
        let mut result = rmcp::model::CallToolResult::success(vec![ContentBlock::text(text)]);
        result.structured_content = Some(serde_json::json!({"pod": "web-0", "count": 100}));
        let message = ServerJsonRpcMessage::response(
            ServerResult::CallToolResult(result),
            RequestId::Number(7),
        );
        let expected = serde_json::to_vec(&message).expect("serializes");
        assert!(size_hint(&message) >= expected.len(), "{}", expected.len());

        let response = json_body(&message);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        assert_eq!(body.as_ref(), expected.as_slice());
    }

    /// Every body the plain shape reads is read by rmcp the same way; the rest is left to rmcp.
    #[test]
    fn the_plain_shape_reads_only_what_rmcp_reads_the_same() {
        let plain = [
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"k8s_get_logs","arguments":{"pod":"web-0","tail_lines":100}}}"#,
            r#"{"method":"tools/call","params":{"arguments":{"a":[1,{"b":null}]},"name":"x"},"id":"req-1","jsonrpc":"2.0"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"k8s.list_resources"}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":null}}"#,
            r#"{"jsonrpc":"2.0","id":1e2,"method":"tools/call","params":{"name":"x","arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","id":9223372036854775807,"method":"tools/call","params":{"name":"\u0078","arguments":{"k":"\"v\""}}}"#,
        ];
        for body in plain {
            let fast = fast_plain_call(body.as_bytes()).unwrap_or_else(|| panic!("plain: {body}"));
            let rmcp = rmcp_plain_call(body.as_bytes()).unwrap_or_else(|| panic!("rmcp: {body}"));
            assert_eq!(fast, rmcp, "{body}");
        }

        // Not the plain shape: rmcp decides, whether it is a plain call (`Some`) or not.
        let others: [(&str, bool); 13] = [
            // A progress token or other `_meta`: the call goes through rmcp.
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":"p"}}}"#,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{}}}"#,
                true,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","requestState":"s"}}"#,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","task":{"ttl":1000}}}"#,
                true,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"},"extra":1}"#,
                true,
            ),
            (
                r#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"x"}}"#,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"x"}}"#,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"x"}}"#,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/call","params":{"name":"x"}}"#,
                false,
            ),
            (
                r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}]"#,
                false,
            ),
        ];
        for (body, rmcp_reads_a_plain_call) in others {
            assert!(
                fast_plain_call(body.as_bytes()).is_none(),
                "read as plain: {body}"
            );
            assert_eq!(
                plain_call(body.as_bytes()).is_some(),
                rmcp_reads_a_plain_call,
                "{body}"
            );
            assert_eq!(
                plain_call(body.as_bytes()),
                rmcp_plain_call(body.as_bytes()),
                "{body}"
            );
        }
    }
}
