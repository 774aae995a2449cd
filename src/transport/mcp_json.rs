//! Quick MCP answers as one JSON object.
//!
//! In a session, rmcp answers every POSTed request with an SSE stream: a priming event (an id
//! to resume from), then the answer, then the end of the stream, each written as it comes.
//! The streamable HTTP transport lets a server answer a request with either that stream or
//! one `application/json` object, and every client must accept both.
//!
//! This layer waits up to [`QUICK`] for such a stream to end. When it ended holding exactly one
//! message, the client gets that message as `application/json`: one write, no SSE framing,
//! nothing for the client to parse but the message. A stream that is still open after
//! [`QUICK`] (a long wait, a call that reports progress) goes on as the SSE stream it is, with
//! what was held sent first; so does one that ended holding several messages (notifications
//! before the answer) or anything this layer does not read as plain SSE. Nothing is lost
//! either way: the events are the stream's own, in order.
//!
//! What a JSON answer gives up is resuming: a client whose connection drops before the
//! answer arrives has no event id to resume from (a call that long is answered as a stream,
//! so this concerns the first [`QUICK`] only).

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

/// How long an answer may take and still go out as one JSON object.
pub const QUICK: Duration = Duration::from_millis(100);
/// A stream holding more than this is sent as a stream (a budget keeps answers far below).
const MAX_HELD: usize = 8 * 1024 * 1024;

/// The axum middleware (see the module docs). Only POSTs in a session are read: `initialize`
/// opens one and is answered as rmcp answers it.
pub async fn quick_json(request: Request, next: Next) -> Response {
    let in_session =
        request.method() == Method::POST && request.headers().contains_key("mcp-session-id");
    let response = next.run(request).await;
    if !in_session || !is_event_stream(&response) {
        return response;
    }
    let (mut parts, mut body) = response.into_parts();
    let deadline = tokio::time::Instant::now() + QUICK;
    let mut held: Vec<Bytes> = Vec::new();
    let mut size = 0;
    let ended = loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(None) => break true,
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    size += data.len();
                    held.push(data);
                }
                if size > MAX_HELD {
                    break false;
                }
            }
            // A body error or the deadline: what is held goes first, then the rest as it comes.
            Ok(Some(Err(_))) | Err(_) => break false,
        }
    };
    if ended && let Some(message) = only_message(&held) {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from(message));
    }
    let held = futures::stream::iter(held.into_iter().map(Ok::<_, axum::Error>));
    let rest = body.into_data_stream();
    if ended {
        Response::from_parts(parts, Body::from_stream(held))
    } else {
        Response::from_parts(
            parts,
            Body::from_stream(futures::StreamExt::chain(held, rest)),
        )
    }
}

fn is_event_stream(response: &Response) -> bool {
    response.status().is_success()
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"))
}

/// The data of the one event in `frames` that carries data, when there is exactly one and
/// every event is a plain `message` (fields `data`, `id`, `retry`, comments); else `None`.
fn only_message(frames: &[Bytes]) -> Option<Bytes> {
    let text: Bytes = match frames {
        [one] => one.clone(),
        _ => {
            let mut all = BytesMut::new();
            for f in frames {
                all.extend_from_slice(f);
            }
            all.freeze()
        }
    };
    let mut message: Option<Bytes> = None;
    let mut data: Option<Vec<Bytes>> = None;
    let mut at = 0;
    while at < text.len() {
        let end = text[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |i| at + i);
        let line = text.slice(at..end);
        at = end + 1;
        let line = match line.strip_suffix(b"\r") {
            Some(l) => text.slice_ref(l),
            None => line,
        };
        if line.is_empty() {
            // The end of an event: it is the message if it carried data.
            if let Some(lines) = data.take()
                && lines.iter().any(|l| !l.is_empty())
            {
                if message.is_some() {
                    return None;
                }
                message = Some(join(lines));
            }
            continue;
        }
        if line.starts_with(b":") {
            continue;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = line.slice(i + 1..);
                let value = if value.starts_with(b" ") {
                    value.slice(1..)
                } else {
                    value
                };
                (line.slice(..i), value)
            }
            None => (line.clone(), Bytes::new()),
        };
        match &field[..] {
            b"data" => data.get_or_insert_with(Vec::new).push(value),
            b"id" | b"retry" => {}
            b"event" if &value[..] == b"message" => {}
            _ => return None,
        }
    }
    // An event not closed by a blank line is not dispatched (the SSE rules); rmcp closes each.
    if data.is_some_and(|lines| lines.iter().any(|l| !l.is_empty())) {
        return None;
    }
    message
}

fn join(mut lines: Vec<Bytes>) -> Bytes {
    if lines.len() == 1 {
        return lines.pop().unwrap_or_default();
    }
    let mut out = BytesMut::new();
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\n");
        }
        out.extend_from_slice(l);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::post;
    use futures::StreamExt;
    use tower::ServiceExt;

    /// A POST in a session to a route answering with `events` as an SSE stream, `gap` apart.
    async fn through_layer(events: &'static [&'static str], gap: Duration) -> (String, String) {
        let app = Router::new()
            .route(
                "/mcp",
                post(move || async move {
                    let stream = futures::stream::iter(events.iter().enumerate()).then(
                        move |(i, e)| async move {
                            if i > 0 {
                                tokio::time::sleep(gap).await;
                            }
                            Ok::<_, std::convert::Infallible>(Bytes::from_static(e.as_bytes()))
                        },
                    );
                    Response::builder()
                        .header(header::CONTENT_TYPE, "text/event-stream")
                        .body(Body::from_stream(stream))
                        .expect("response")
                }),
            )
            .layer(axum::middleware::from_fn(quick_json));
        let request = Request::builder()
            .method(Method::POST)
            .uri("/mcp")
            .header("mcp-session-id", "s1")
            .body(Body::empty())
            .expect("request");
        let response = app.oneshot(request).await.expect("answer");
        let kind = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("text")
            .to_string();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (kind, String::from_utf8(body.to_vec()).expect("utf-8"))
    }

    const PRIMING: &str = "data: \nid: 0/3\nretry: 3000\n\n";
    const PROGRESS: &str =
        "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\nid: 1/3\n\n";
    const ANSWER: &str = "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\nid: 2/3\n\n";

    #[tokio::test]
    async fn a_stream_that_ends_quickly_with_one_message_becomes_that_json() {
        let (kind, body) = through_layer(&[PRIMING, ANSWER], Duration::from_millis(1)).await;
        assert_eq!(kind, "application/json");
        assert_eq!(body, r#"{"jsonrpc":"2.0","id":3,"result":{}}"#);
    }

    #[tokio::test]
    async fn notifications_or_a_slow_answer_keep_the_stream_whole_and_in_order() {
        let (kind, body) =
            through_layer(&[PRIMING, PROGRESS, ANSWER], Duration::from_millis(1)).await;
        assert_eq!(kind, "text/event-stream");
        assert_eq!(body, [PRIMING, PROGRESS, ANSWER].concat());

        let slow = QUICK + Duration::from_millis(50);
        let (kind, body) = through_layer(&[PRIMING, ANSWER], slow).await;
        assert_eq!(kind, "text/event-stream", "past QUICK the stream goes on");
        assert_eq!(body, [PRIMING, ANSWER].concat());
    }

    fn frames(parts: &[&str]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::from(p.to_string())).collect()
    }

    #[test]
    fn a_primed_stream_with_one_answer_is_that_answer() {
        let answer = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#;
        let held = frames(&[
            "data: \nid: 0/3\nretry: 3000\n\n",
            &format!("data: {answer}\nid: 1/3\n\n"),
        ]);
        assert_eq!(only_message(&held).as_deref(), Some(answer.as_bytes()));
        // Split anywhere, with CRLF, comments and `event: message`: the same message.
        let whole = format!(": ping\r\n\r\nevent: message\r\ndata:{answer}\r\nid: 1/3\r\n\r\n");
        let (a, b) = whole.split_at(20);
        assert_eq!(
            only_message(&frames(&[a, b])).as_deref(),
            Some(answer.as_bytes())
        );
    }

    #[test]
    fn several_messages_other_events_or_an_unclosed_event_stay_a_stream() {
        let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#;
        let answer = r#"{"jsonrpc":"2.0","id":3,"result":{}}"#;
        let two = format!("data: {progress}\nid: 1/3\n\ndata: {answer}\nid: 2/3\n\n");
        assert_eq!(only_message(&frames(&[&two])), None, "two messages");
        let other = format!("event: endpoint\ndata: {answer}\n\n");
        assert_eq!(only_message(&frames(&[&other])), None, "another event type");
        let unknown = format!("data: {answer}\nfoo: bar\n\n");
        assert_eq!(only_message(&frames(&[&unknown])), None, "an unknown field");
        let open = format!("data: {answer}\n");
        assert_eq!(only_message(&frames(&[&open])), None, "not closed");
        assert_eq!(
            only_message(&frames(&["data: \nid: 0/3\n\n"])),
            None,
            "only priming"
        );
        let lines = "data: {\"a\":\ndata: 1}\n\n";
        assert_eq!(
            only_message(&frames(&[lines])).as_deref(),
            Some(&b"{\"a\":\n1}"[..]),
            "data lines are joined with newlines"
        );
    }
}
