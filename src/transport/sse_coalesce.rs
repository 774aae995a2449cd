//! One write for a quick MCP answer stream.
//!
//! In a session rmcp answers a POST with an SSE stream that opens with a priming event (an
//! event id and a `retry` hint, so a lost connection can resume) and then carries the answer.
//! The priming event is ready at once, the answer a moment later, so the response used to go
//! out in two writes: the headers and the priming event, then the answer — two wake-ups of the
//! client for one answer. [`coalesced`] holds the response until its stream ends or
//! [`COALESCE_FOR`] has passed, then hands on everything it holds, which the HTTP server
//! writes in one go. A call that runs longer (an approval wait, a slow upstream) still gets
//! its headers, priming event and any progress notification within [`COALESCE_FOR`].

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Response, header};
use bytes::Bytes;
use futures::StreamExt;
use http_body::Frame;
use http_body_util::{BodyExt, BodyStream, StreamBody};

/// The longest an answer stream's first events wait for the rest of the stream.
pub const COALESCE_FOR: Duration = Duration::from_millis(20);

/// At most this many frames are held (a stream of many quick notifications is not buffered).
const MAX_HELD: usize = 16;

/// `response` to the `method` request, its SSE stream held as the module says (POST only: a
/// GET stream is the standalone one, or a replay, and is handed on at once).
pub async fn coalesced<B>(method: &Method, response: Response<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<axum::BoxError>,
{
    let sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if method != Method::POST || !sse {
        return response.map(Body::new);
    }
    let (parts, mut body) = response.into_parts();
    let mut held: Vec<Result<Frame<Bytes>, axum::BoxError>> = Vec::new();
    let mut ended = body.is_end_stream();
    let wait = tokio::time::sleep(COALESCE_FOR);
    tokio::pin!(wait);
    while !ended && held.len() < MAX_HELD {
        tokio::select! {
            biased;
            frame = body.frame() => match frame {
                Some(frame) => {
                    let failed = frame.is_err();
                    held.push(frame.map_err(Into::into));
                    ended = failed;
                }
                None => ended = true,
            },
            _ = &mut wait => break,
        }
    }
    let head = futures::stream::iter(held);
    let body = if ended {
        Body::new(StreamBody::new(head))
    } else {
        let rest = BodyStream::new(body).map(|frame| frame.map_err(Into::into));
        Body::new(StreamBody::new(head.chain(rest)))
    };
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use std::convert::Infallible;
    use std::time::Instant;

    fn sse(
        body: impl http_body::Body<Data = Bytes, Error = Infallible> + Send + Unpin + 'static,
    ) -> Response<http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>> {
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(body.boxed_unsync())
            .expect("a response")
    }

    /// A body of `events`, each after its delay.
    fn events(
        events: Vec<(Duration, &'static str)>,
    ) -> StreamBody<futures::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>> {
        StreamBody::new(
            futures::stream::iter(events)
                .then(|(after, text)| async move {
                    tokio::time::sleep(after).await;
                    Ok(Frame::data(Bytes::from_static(text.as_bytes())))
                })
                .boxed(),
        )
    }

    /// The frames the wrapped body yields at once, without waiting, and whether it then ended.
    fn ready_now(body: &mut Body) -> (Vec<Bytes>, bool) {
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut out = Vec::new();
        loop {
            match std::pin::Pin::new(&mut *body).poll_frame(&mut cx) {
                std::task::Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        out.push(data);
                    }
                }
                std::task::Poll::Ready(None) => return (out, true),
                _ => return (out, false),
            }
        }
    }

    #[tokio::test]
    async fn a_quick_answer_is_handed_on_whole_with_its_priming_event() {
        let body = events(vec![
            (Duration::ZERO, "id: 0/1\nretry: 3000\ndata: \n\n"),
            (
                Duration::from_millis(2),
                "id: 1/1\ndata: {\"result\":{}}\n\n",
            ),
        ]);
        let response = coalesced(&Method::POST, sse(body)).await;
        let mut body = response.into_body();
        assert_eq!(
            ready_now(&mut body),
            (
                vec![
                    Bytes::from_static(b"id: 0/1\nretry: 3000\ndata: \n\n"),
                    Bytes::from_static(b"id: 1/1\ndata: {\"result\":{}}\n\n"),
                ],
                true
            ),
            "both events and the end, with nothing to wait for"
        );
    }

    #[tokio::test]
    async fn a_slow_answer_gets_its_priming_event_within_the_wait_and_the_rest_later() {
        let body = events(vec![
            (Duration::ZERO, "id: 0/1\nretry: 3000\ndata: \n\n"),
            (
                Duration::from_millis(300),
                "id: 1/1\ndata: {\"result\":{}}\n\n",
            ),
        ]);
        let started = Instant::now();
        let response = coalesced(&Method::POST, sse(body)).await;
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "the headers waited for the answer: {:?}",
            started.elapsed()
        );
        let mut body = response.into_body();
        assert_eq!(
            ready_now(&mut body),
            (
                vec![Bytes::from_static(b"id: 0/1\nretry: 3000\ndata: \n\n")],
                false
            )
        );
        let rest = body.collect().await.expect("the rest").to_bytes();
        assert_eq!(
            rest,
            Bytes::from_static(b"id: 1/1\ndata: {\"result\":{}}\n\n")
        );
    }

    #[tokio::test]
    async fn get_streams_and_json_answers_are_handed_on_at_once() {
        // A GET stream that never ends (the standalone stream) is not held.
        let never = StreamBody::new(futures::stream::pending::<Result<Frame<Bytes>, Infallible>>());
        let started = Instant::now();
        let response = coalesced(&Method::GET, sse(never)).await;
        assert!(started.elapsed() < COALESCE_FOR);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        let json = Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(Bytes::from_static(b"{}")))
            .expect("a response");
        let body = coalesced(&Method::POST, json).await.into_body();
        assert_eq!(
            body.collect().await.expect("body").to_bytes(),
            Bytes::from_static(b"{}")
        );
    }
}
