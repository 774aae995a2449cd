//! MCP sessions whose call streams survive a lost connection (streamable HTTP "Resumability and
//! Redelivery", SEP-1699).
//!
//! rmcp's `LocalSessionManager` gives every SSE event an id and sends a priming event with a
//! `retry` hint, which tells clients they may reconnect with `Last-Event-ID`. It can resume a
//! call's stream only while the call runs, though: once the answer has been sent — also into a
//! connection the client had already lost — the stream is forgotten and the reconnecting client
//! gets an empty stream, so the answer is lost. A long `approval.status` wait is exactly such a
//! call.
//!
//! `ResumableSessions` wraps it. Each call's stream is kept as it passes to the client (and
//! drained by a task if the client goes away first); a stream that ended with the answer stays
//! replayable for `KEEP_FOR`, within `MAX_KEPT_STREAMS` streams and `MAX_KEPT_BYTES` of answers
//! (oldest dropped first). Whether the client read the answer cannot be known here (a lost
//! connection shows only when a later write fails), so every answered stream is kept.
//! A `Last-Event-ID` of a kept stream replays what followed that event; any other goes to rmcp
//! (a call still running, the standalone GET stream).
//!
//! Calls answered off rmcp's path (`mcp_direct`) get their streams here too
//! ([`ResumableSessions::direct_stream`]), numbered from [`DIRECT_IDS_FROM`]: they are kept the
//! same way, and resuming one that still runs waits for its answer on the new stream.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ClientRequest, RequestId, ServerJsonRpcMessage,
    ServerResult,
};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker, SessionConfig,
};
use rmcp::transport::streamable_http_server::session::{
    EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};
use tokio_util::sync::CancellationToken;

/// How long an ended call stream can still be replayed.
pub const KEEP_FOR: Duration = Duration::from_secs(60);
/// At most this many ended streams are kept…
pub const MAX_KEPT_STREAMS: usize = 256;
/// …holding at most this many bytes of messages (about their size in memory, see
/// [`KeptMessage`]).
pub const MAX_KEPT_BYTES: usize = 8 * 1024 * 1024;

type SseStream = Pin<Box<dyn Stream<Item = ServerSseMessage> + Send + Sync + 'static>>;

/// A session manager that keeps ended call streams replayable (see the module docs).
#[derive(Default)]
pub struct ResumableSessions {
    inner: LocalSessionManager,
    kept: Arc<Mutex<Kept>>,
    /// What `initialize` settled for each open session (see [`SessionFacts`]).
    facts: Mutex<HashMap<SessionId, SessionFacts>>,
    /// Request ids of the next direct call's stream (see [`DIRECT_IDS_FROM`]).
    next_direct: AtomicU64,
    /// Direct calls running now, by session and JSON-RPC id, with their stream number: a
    /// `notifications/cancelled` drops their answer.
    direct_calls: Arc<Mutex<DirectCalls>>,
}

/// Running direct calls: (session, JSON-RPC id) → (stream number, cancellation).
type DirectCalls = HashMap<(SessionId, RequestId), (u64, CancellationToken)>;

/// Stream ids of calls answered by the direct path (`mcp_direct`) count from here, far above
/// rmcp's per-session count (from 0), so a `Last-Event-ID` names one call or the other.
pub const DIRECT_IDS_FROM: u64 = 1 << 48;

/// What a session's `initialize` settled, which a direct call needs.
#[derive(Clone)]
pub struct SessionFacts {
    /// The negotiated protocol version.
    pub protocol: String,
    /// The client declared the tasks extension.
    pub tasks: bool,
    /// When rmcp's session worker last heard of the session (see `ResumableSessions::touch`).
    touched: Instant,
}

#[derive(Default)]
struct Kept {
    /// Call streams being drained now, and how to hear that one ended.
    running: HashMap<(SessionId, u64), Arc<tokio::sync::Notify>>,
    streams: HashMap<(SessionId, u64), Ended>,
    /// Keys in the order their streams ended (oldest first).
    order: VecDeque<(SessionId, u64)>,
    bytes: usize,
}

struct Ended {
    events: Vec<KeptEvent>,
    at: Instant,
    bytes: usize,
}

/// rmcp's event ids: `INDEX/HTTP_REQUEST_ID` on a call's stream, `INDEX` on the standalone one.
fn parse_event_id(id: &str) -> Option<(usize, u64)> {
    let (index, request) = id.split_once('/')?;
    Some((index.parse().ok()?, request.parse().ok()?))
}

/// An event of an ended stream as kept (see [`KeptMessage`]). Parsed back, if kept as text,
/// only when a client resumes.
struct KeptEvent {
    event_id: Option<String>,
    message: Option<KeptMessage>,
    retry: Option<Duration>,
}

/// A kept message, in the form that costs least to keep, counted at about what it holds in
/// memory, which is what `MAX_KEPT_BYTES` bounds:
/// - a tool answer is held as sent, shared with the answer already written: nothing is copied
///   or serialized again; a list's rows as parsed values take more than their JSON, and the
///   count says so;
/// - anything else (errors, other results; short and rare) as its JSON text.
enum KeptMessage {
    Shared(Arc<ServerJsonRpcMessage>, usize),
    Text(String),
}

impl KeptMessage {
    fn of(message: &Arc<ServerJsonRpcMessage>) -> Option<KeptMessage> {
        if let Some(bytes) = answer_bytes(message) {
            return Some(KeptMessage::Shared(message.clone(), bytes));
        }
        Some(KeptMessage::Text(serde_json::to_string(&**message).ok()?))
    }

    fn bytes(&self) -> usize {
        match self {
            KeptMessage::Shared(_, bytes) => *bytes,
            KeptMessage::Text(text) => text.len(),
        }
    }

    fn message(&self) -> Option<Arc<ServerJsonRpcMessage>> {
        match self {
            KeptMessage::Shared(message, _) => Some(message.clone()),
            KeptMessage::Text(text) => serde_json::from_str(text).ok().map(Arc::new),
        }
    }
}

/// The memory a tool answer holds, about: its text blocks, and for its structured content a
/// `Value` per value plus the strings and keys (with a map entry's overhead per key); `None`
/// for any other message.
fn answer_bytes(message: &ServerJsonRpcMessage) -> Option<usize> {
    let ServerJsonRpcMessage::Response(response) = message else {
        return None;
    };
    let ServerResult::CallToolResult(result) = &response.result else {
        return None;
    };
    const ENTRY: usize = std::mem::size_of::<String>() + 16;
    let mut bytes = 0;
    let mut todo: Vec<&serde_json::Value> = result.structured_content.iter().collect();
    while let Some(v) = todo.pop() {
        bytes += std::mem::size_of::<serde_json::Value>();
        match v {
            serde_json::Value::String(s) => bytes += s.len(),
            serde_json::Value::Array(items) => todo.extend(items),
            serde_json::Value::Object(map) => {
                bytes += map.keys().map(|k| ENTRY + k.len()).sum::<usize>();
                todo.extend(map.values());
            }
            _ => {}
        }
    }
    let text: usize = result
        .content
        .iter()
        .map(|c| c.as_text().map_or(64, |t| t.text.len()))
        .sum();
    Some(bytes + text)
}

impl KeptEvent {
    fn of(event: &ServerSseMessage) -> Option<KeptEvent> {
        let message = match &event.message {
            Some(m) => Some(KeptMessage::of(m)?),
            None => None,
        };
        Some(KeptEvent {
            event_id: event.event_id.clone(),
            message,
            retry: event.retry,
        })
    }

    fn bytes(&self) -> usize {
        self.message.as_ref().map_or(0, KeptMessage::bytes)
    }

    fn index(&self) -> Option<usize> {
        self.event_id
            .as_deref()
            .and_then(parse_event_id)
            .map(|(i, _)| i)
    }

    fn event(&self) -> Option<ServerSseMessage> {
        // The struct is non-exhaustive: start from a constructor, then set every field.
        let mut event = ServerSseMessage::retry(Duration::ZERO);
        event.message = match &self.message {
            Some(kept) => Some(kept.message()?),
            None => None,
        };
        event.event_id = self.event_id.clone();
        event.retry = self.retry;
        Some(event)
    }
}

fn is_answer(event: &ServerSseMessage) -> bool {
    matches!(
        event.message.as_deref(),
        Some(ServerJsonRpcMessage::Response(_) | ServerJsonRpcMessage::Error(_))
    )
}

impl Ended {
    /// A call stream's events as kept: `None` unless the stream ended with its answer (it was
    /// cut off when rmcp moved the call to a resumed stream, or the session closed) and fits.
    /// Called before taking the lock: keeping serializes the messages.
    fn of(events: Vec<ServerSseMessage>) -> Option<(u64, Ended)> {
        let (_, request) = events
            .iter()
            .find_map(|e| e.event_id.as_deref().and_then(parse_event_id))?;
        if !events.last().is_some_and(is_answer) {
            return None;
        }
        let events = events
            .iter()
            .map(KeptEvent::of)
            .collect::<Option<Vec<_>>>()?;
        let bytes: usize = events.iter().map(KeptEvent::bytes).sum();
        (bytes <= MAX_KEPT_BYTES).then(|| {
            (
                request,
                Ended {
                    events,
                    at: Instant::now(),
                    bytes,
                },
            )
        })
    }
}

impl Kept {
    fn remove(&mut self, key: &(SessionId, u64)) {
        if let Some(ended) = self.streams.remove(key) {
            self.bytes -= ended.bytes;
        }
    }

    /// Keep a call stream that ended (see `Ended::of`), dropping expired and, past the limits,
    /// the oldest streams.
    fn insert(&mut self, session: SessionId, request: u64, ended: Ended) {
        let bytes = ended.bytes;
        let now = Instant::now();
        while let Some(oldest) = self.order.front().cloned() {
            let expired = self
                .streams
                .get(&oldest)
                .is_none_or(|e| now.duration_since(e.at) >= KEEP_FOR);
            let full =
                self.streams.len() >= MAX_KEPT_STREAMS || self.bytes + bytes > MAX_KEPT_BYTES;
            if !(expired || full) {
                break;
            }
            self.order.pop_front();
            self.remove(&oldest);
        }
        let key = (session, request);
        if self.streams.contains_key(&key) {
            self.remove(&key);
            self.order.retain(|k| k != &key);
        }
        self.order.push_back(key.clone());
        self.bytes += bytes;
        self.streams.insert(key, Ended { at: now, ..ended });
    }

    #[cfg(test)]
    fn keep(&mut self, session: SessionId, events: Vec<ServerSseMessage>) {
        if let Some((request, ended)) = Ended::of(events) {
            self.insert(session, request, ended);
        }
    }

    /// The events after `index` of a kept stream, if it is kept and not expired.
    fn replay(
        &self,
        session: &SessionId,
        request: u64,
        index: usize,
    ) -> Option<Vec<ServerSseMessage>> {
        let ended = self.streams.get(&(session.clone(), request))?;
        if ended.at.elapsed() >= KEEP_FOR {
            return None;
        }
        ended
            .events
            .iter()
            .filter(|e| e.index().is_some_and(|i| i > index))
            .map(KeptEvent::event)
            .collect()
    }
}

impl ResumableSessions {
    /// Sessions with no request for `idle` are closed (rmcp's keep-alive), freeing their memory.
    pub fn new(idle: Duration) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(idle);
        Self {
            inner,
            next_direct: AtomicU64::new(DIRECT_IDS_FROM),
            ..Default::default()
        }
    }

    /// What `initialize` settled for session `id`, while rmcp still has it open.
    pub async fn facts(&self, id: &SessionId) -> Option<SessionFacts> {
        let facts = self.facts.lock().ok()?.get(id).cloned()?;
        self.inner
            .has_session(id)
            .await
            .unwrap_or(false)
            .then_some(facts)
    }

    /// A direct call in session `id` is activity rmcp's session worker does not see, so its
    /// idle timer would close a session in use. At most four times per idle period, tell the
    /// worker of it: an event (closing a call stream that does not exist) that resets the timer
    /// and changes nothing else.
    pub async fn touch(&self, id: &SessionId) {
        let Some(idle) = self.inner.session_config.keep_alive else {
            return;
        };
        let now = Instant::now();
        {
            let Ok(mut facts) = self.facts.lock() else {
                return;
            };
            let Some(facts) = facts.get_mut(id) else {
                return;
            };
            if now.duration_since(facts.touched) < idle / 4 {
                return;
            }
            facts.touched = now;
        }
        let handle = self.inner.sessions.read().await.get(id).cloned();
        if let Some(handle) = handle {
            tokio::spawn(async move {
                let _ = handle.close_request_wise_channel(u64::MAX).await;
            });
        }
    }

    /// The answer stream of a direct call: a priming event (an id to resume from, rmcp's retry
    /// hint), then the answer `call` gives, as rmcp numbers them (`0/N`, `1/N`), kept and
    /// drained like rmcp's streams. `None` from `call` (cancelled) ends the stream with no
    /// answer. A `notifications/cancelled` for `request` in `session` resolves to `None` at
    /// once; the call itself still runs to its end, as in rmcp.
    pub fn direct_stream(
        &self,
        session: SessionId,
        request: RequestId,
        call: impl Future<Output = ServerJsonRpcMessage> + Send + 'static,
    ) -> SseStream {
        let n = self.next_direct.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        let key = (session.clone(), request);
        if let Ok(mut calls) = self.direct_calls.lock() {
            calls.insert(key.clone(), (n, cancel.clone()));
        }
        let calls = self.direct_calls.clone();
        let answer = async move {
            let call = Box::pin(call);
            let cancelled = Box::pin(cancel.cancelled_owned());
            let answer = match futures::future::select(call, cancelled).await {
                futures::future::Either::Left((answer, _)) => Some(answer),
                futures::future::Either::Right(((), call)) => {
                    tokio::spawn(call);
                    None
                }
            };
            // Unless a later call of the session reused the JSON-RPC id (then it is that one's).
            if let Ok(mut calls) = calls.lock()
                && calls.get(&key).is_some_and(|(m, _)| *m == n)
            {
                calls.remove(&key);
            }
            answer.map(|message| ServerSseMessage::new(format!("1/{n}"), message))
        };
        let mut priming = ServerSseMessage::retry(
            self.inner
                .session_config
                .sse_retry
                .unwrap_or(SessionConfig::DEFAULT_SSE_RETRY),
        );
        priming.event_id = Some(format!("0/{n}"));
        let stream = futures::stream::once(futures::future::ready(Some(priming)))
            // rmcp's streams are `Sync`; the call is polled only through `&mut`, by one owner.
            .chain(futures::stream::once(sync_wrapper::SyncFuture::new(answer)))
            .filter_map(futures::future::ready);
        self.drain(session, stream)
    }

    /// Sessions open now.
    pub async fn open_sessions(&self) -> usize {
        self.inner.sessions.read().await.len()
    }
}

impl ResumableSessions {
    fn replay(
        &self,
        session: &SessionId,
        request: u64,
        index: usize,
    ) -> Option<Vec<ServerSseMessage>> {
        self.kept.lock().ok()?.replay(session, request, index)
    }

    /// A future that resolves when the running call `request` of session `id` ends (its stream
    /// is then kept, if it ended with its answer); `None` if it is not running.
    fn ended(
        &self,
        id: &SessionId,
        request: u64,
    ) -> Option<impl Future<Output = ()> + Send + Sync + 'static> {
        let kept = self.kept.lock().ok()?;
        let notify = kept.running.get(&(id.clone(), request)).cloned()?;
        // Registered before the lock is let go: the call ends under the lock, so its end
        // cannot fall between the look-up and the registration.
        let mut ended = Box::pin(notify.notified_owned());
        ended.as_mut().enable();
        drop(kept);
        Some(ended)
    }

    /// `stream` as the client reads it, each event kept as it passes; when the client goes away
    /// before the end, a task drains the rest, so an answer is kept whether or not the client
    /// was still there to read it.
    fn drain(
        &self,
        session: SessionId,
        stream: impl Stream<Item = ServerSseMessage> + Send + Sync + 'static,
    ) -> SseStream {
        Box::pin(Drain {
            stream: Some(Box::pin(stream)),
            seen: Some(Seen {
                session,
                kept: self.kept.clone(),
                events: Vec::new(),
                running: None,
            }),
        })
    }
}

/// A call stream on its way to the client (see [`ResumableSessions::drain`]). It is polled by
/// the connection that writes the answer: no task or channel between rmcp and the client.
struct Drain {
    stream: Option<SseStream>,
    seen: Option<Seen>,
}

/// What a call stream has sent so far.
struct Seen {
    session: SessionId,
    kept: Arc<Mutex<Kept>>,
    events: Vec<ServerSseMessage>,
    /// The call as running (see `Kept::running`), once an event named it.
    running: Option<((SessionId, u64), Arc<tokio::sync::Notify>)>,
}

impl Seen {
    fn saw(&mut self, event: &ServerSseMessage) {
        // Known as running before the client can see an id to resume from.
        if self.running.is_none()
            && let Some((_, request)) = event.event_id.as_deref().and_then(parse_event_id)
            && let Ok(mut kept) = self.kept.lock()
        {
            let key = (self.session.clone(), request);
            let notify = Arc::new(tokio::sync::Notify::new());
            kept.running.insert(key.clone(), notify.clone());
            self.running = Some((key, notify));
        }
        self.events.push(event.clone());
    }

    /// The stream ended: keep it if it ended with its answer, and tell a waiting resume.
    fn ended(self) {
        let ended = Ended::of(self.events);
        if let Ok(mut kept) = self.kept.lock() {
            if let Some((request, ended)) = ended {
                kept.insert(self.session, request, ended);
            }
            if let Some((key, notify)) = self.running {
                // A resumed stream of the same call may have registered since.
                if kept
                    .running
                    .get(&key)
                    .is_some_and(|n| Arc::ptr_eq(n, &notify))
                {
                    kept.running.remove(&key);
                }
                notify.notify_waiters();
            }
        }
    }
}

impl Stream for Drain {
    type Item = ServerSseMessage;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ServerSseMessage>> {
        use std::task::Poll;
        let this = self.get_mut();
        let Some(stream) = this.stream.as_mut() else {
            return Poll::Ready(None);
        };
        match stream.as_mut().poll_next(cx) {
            Poll::Ready(Some(event)) => {
                if let Some(seen) = this.seen.as_mut() {
                    seen.saw(&event);
                }
                Poll::Ready(Some(event))
            }
            Poll::Ready(None) => {
                this.stream = None;
                if let Some(seen) = this.seen.take() {
                    seen.ended();
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Drain {
    /// The client went away before the end (or its connection was dropped): drain the rest.
    fn drop(&mut self) {
        let (Some(mut stream), Some(mut seen)) = (self.stream.take(), self.seen.take()) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    while let Some(event) = stream.next().await {
                        seen.saw(&event);
                    }
                    seen.ended();
                });
            }
            // No runtime left (the process is ending): keep what was seen.
            Err(_) => seen.ended(),
        }
    }
}

impl SessionManager for ResumableSessions {
    type Error = LocalSessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.inner.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        let tasks = match &message {
            ClientJsonRpcMessage::Request(request) => match &request.request {
                ClientRequest::InitializeRequest(init) => init.params.capabilities.supports_tasks(),
                _ => false,
            },
            _ => false,
        };
        let answer = self.inner.initialize_session(id, message).await?;
        if let ServerJsonRpcMessage::Response(response) = &answer
            && let ServerResult::InitializeResult(result) = &response.result
            && let Ok(mut facts) = self.facts.lock()
        {
            facts.insert(
                id.clone(),
                SessionFacts {
                    protocol: result.protocol_version.to_string(),
                    tasks,
                    touched: Instant::now(),
                },
            );
        }
        Ok(answer)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        if let Ok(mut kept) = self.kept.lock() {
            let gone: Vec<_> = kept
                .streams
                .keys()
                .filter(|(s, _)| s == id)
                .cloned()
                .collect();
            for key in gone {
                kept.remove(&key);
            }
            kept.order.retain(|(s, _)| s != id);
            kept.running.retain(|(s, _), _| s != id);
        }
        if let Ok(mut facts) = self.facts.lock() {
            facts.remove(id);
        }
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = self.inner.create_stream(id, message).await?;
        Ok(self.drain(id.clone(), stream))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        // A cancelled direct call: its answer is dropped (rmcp cancels its own calls).
        if let ClientJsonRpcMessage::Notification(notification) = &message
            && let ClientNotification::CancelledNotification(cancelled) = &notification.notification
            && let Some(request) = &cancelled.params.request_id
            && let Ok(calls) = self.direct_calls.lock()
            && let Some((_, cancel)) = calls.get(&(id.clone(), request.clone()))
        {
            cancel.cancel();
        }
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let Some((index, request)) = parse_event_id(&last_event_id) else {
            // The standalone stream: rmcp replays its cache.
            let stream: SseStream = Box::pin(self.inner.resume(id, last_event_id).await?);
            return Ok(stream);
        };
        let replay = |events: Vec<ServerSseMessage>| -> SseStream {
            Box::pin(futures::stream::iter(events))
        };
        if let Some(events) = self.replay(id, request, index) {
            return Ok(replay(events));
        }
        // A direct call still running: this stream carries its answer once it has one.
        if request >= DIRECT_IDS_FROM
            && let Some(ended) = self.ended(id, request)
        {
            let kept = self.kept.clone();
            let session = id.clone();
            let stream = futures::stream::once(ended).flat_map(move |()| {
                let events = kept
                    .lock()
                    .ok()
                    .and_then(|kept| kept.replay(&session, request, index))
                    .unwrap_or_default();
                futures::stream::iter(events)
            });
            return Ok(Box::pin(stream) as SseStream);
        }
        // …or it ended since the first look.
        if let Some(events) = self.replay(id, request, index) {
            return Ok(replay(events));
        }
        // The call is still running: rmcp moves it to this stream; keep draining it.
        let error = match self.inner.resume(id, last_event_id).await {
            Ok(stream) => return Ok(self.drain(id.clone(), stream)),
            Err(error) => error,
        };
        // rmcp has just let go of a call that answered; its drain is about to keep it.
        let running = self
            .kept
            .lock()
            .ok()
            .and_then(|kept| kept.running.get(&(id.clone(), request)).cloned());
        if let Some(notify) = running {
            let ended = notify.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if let Some(events) = self.replay(id, request, index) {
                return Ok(replay(events));
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), ended).await;
            if let Some(events) = self.replay(id, request, index) {
                return Ok(replay(events));
            }
        }
        Err(error)
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        self.inner.restore_session(id).await
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::ErrorData;
    use rmcp::model::{JsonRpcError, NumberOrString};

    fn event(id: &str, answer: bool) -> ServerSseMessage {
        if answer {
            let message = ServerJsonRpcMessage::Error(JsonRpcError::new(
                Some(NumberOrString::Number(1)),
                ErrorData::internal_error("the answer", None),
            ));
            ServerSseMessage::new(id, message)
        } else {
            ServerSseMessage::priming(id, Duration::from_secs(3))
        }
    }

    #[test]
    fn only_streams_that_ended_with_their_answer_are_kept_and_replayed_after_the_id() {
        let mut kept = Kept::default();
        let session: SessionId = Arc::from("s1");
        kept.keep(session.clone(), vec![event("0/7", false)]);
        assert!(
            kept.replay(&session, 7, 0).is_none(),
            "no answer, nothing kept"
        );
        kept.keep(
            session.clone(),
            vec![event("0/7", false), event("1/7", true)],
        );
        let after_priming = kept.replay(&session, 7, 0).expect("kept");
        assert_eq!(after_priming.len(), 1);
        assert_eq!(after_priming[0].event_id.as_deref(), Some("1/7"));
        let replayed = after_priming[0].message.as_deref().expect("the answer");
        let original = event("1/7", true).message.expect("message");
        assert_eq!(
            serde_json::to_value(replayed).expect("json"),
            serde_json::to_value(&*original).expect("json"),
            "the replayed answer is the one sent"
        );
        let priming = kept.replay(&session, 7, usize::MAX).map(|v| v.len());
        assert_eq!(priming, Some(0));
        assert!(kept.replay(&session, 7, 1).expect("kept").is_empty());
        assert!(kept.replay(&Arc::from("other"), 7, 0).is_none());
        assert!(kept.replay(&session, 8, 0).is_none());
        let answer = event("1/7", true).message.expect("message");
        let text = serde_json::to_vec(&*answer).expect("json");
        assert_eq!(kept.bytes, text.len(), "kept bytes are the answer's JSON");
    }

    #[test]
    fn the_oldest_streams_go_first_when_the_limit_is_reached() {
        let mut kept = Kept::default();
        let session: SessionId = Arc::from("s1");
        for request in 0..(MAX_KEPT_STREAMS as u64 + 5) {
            kept.keep(
                session.clone(),
                vec![
                    event(&format!("0/{request}"), false),
                    event(&format!("1/{request}"), true),
                ],
            );
        }
        assert_eq!(kept.streams.len(), MAX_KEPT_STREAMS);
        assert_eq!(kept.order.len(), MAX_KEPT_STREAMS);
        assert!(kept.replay(&session, 0, 0).is_none(), "oldest dropped");
        assert!(
            kept.replay(&session, MAX_KEPT_STREAMS as u64 + 4, 0)
                .is_some()
        );
        let bytes: usize = kept.streams.values().map(|e| e.bytes).sum();
        assert_eq!(kept.bytes, bytes);
    }

    fn tool_answer(id: &str, text: &str, structured: serde_json::Value) -> ServerSseMessage {
        let mut result = rmcp::model::CallToolResult::structured(structured);
        result.content = vec![rmcp::model::ContentBlock::text(text)];
        let message = ServerJsonRpcMessage::response(
            ServerResult::CallToolResult(result),
            NumberOrString::Number(1),
        );
        ServerSseMessage::new(id, message)
    }

    #[test]
    fn tool_answers_are_kept_as_sent_and_counted_at_no_less_than_their_json() {
        let mut kept = Kept::default();
        let session: SessionId = Arc::from("s1");
        let log = "ts=1 level=info msg=\"ok\"\n".repeat(500);
        let answer = tool_answer(
            "1/3",
            &log,
            serde_json::json!({"pod": "web-0", "count": 500}),
        );
        let sent = answer.message.clone().expect("message");
        kept.keep(session.clone(), vec![event("0/3", false), answer]);
        let replayed = kept.replay(&session, 3, 0).expect("kept");
        let message = replayed[0].message.clone().expect("the answer");
        assert!(
            Arc::ptr_eq(&message, &sent),
            "the log answer is shared, not copied"
        );
        let json = serde_json::to_vec(&*sent).expect("json").len();
        assert!(
            kept.bytes >= log.len() && kept.bytes < json + 512,
            "counted at about its size: {} of {json}",
            kept.bytes
        );

        let rows: Vec<serde_json::Value> = (0..100)
            .map(|i| serde_json::json!([format!("web-{i}"), "Running"]))
            .collect();
        let list = tool_answer(
            "1/4",
            "name\tstatus",
            serde_json::json!({"columns": ["name", "status"], "rows": rows}),
        );
        let sent = list.message.clone().expect("message");
        let before = kept.bytes;
        kept.keep(session.clone(), vec![event("0/4", false), list]);
        let replayed = kept.replay(&session, 4, 0).expect("kept");
        let message = replayed[0].message.clone().expect("the answer");
        assert!(Arc::ptr_eq(&message, &sent), "a list is shared too");
        let structured = serde_json::to_vec(&sent).expect("json").len();
        assert!(
            kept.bytes - before > structured,
            "a list's parsed rows count for more than its JSON: {} of {structured}",
            kept.bytes - before
        );

        let error = event("1/5", true);
        let sent = error.message.clone().expect("message");
        kept.keep(session.clone(), vec![event("0/5", false), error]);
        let replayed = kept.replay(&session, 5, 0).expect("kept");
        let message = replayed[0].message.clone().expect("the error");
        assert!(
            !Arc::ptr_eq(&message, &sent),
            "an error is kept as JSON text"
        );
        assert_eq!(
            serde_json::to_value(&*message).expect("json"),
            serde_json::to_value(&*sent).expect("json"),
            "and replayed as sent"
        );
    }

    #[test]
    fn event_ids_are_read_as_rmcp_writes_them() {
        assert_eq!(parse_event_id("3/12"), Some((3, 12)));
        assert_eq!(parse_event_id("3"), None);
        assert_eq!(parse_event_id("x/1"), None);
    }

    /// Two running calls of one session with one JSON-RPC id: the first one ending must not
    /// take the later one's cancellation with it.
    #[tokio::test]
    async fn a_reused_request_id_leaves_the_later_call_cancellable() {
        let sessions = ResumableSessions::new(Duration::from_secs(60));
        let session: SessionId = Arc::from("s1");
        let id = NumberOrString::Number(7);
        let answer =
            || ServerJsonRpcMessage::response(ServerResult::empty(()), NumberOrString::Number(7));
        let first = sessions.direct_stream(session.clone(), id.clone(), async move { answer() });
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let later = sessions.direct_stream(session.clone(), id, async move {
            let _ = released.await;
            answer()
        });
        let first: Vec<_> = first.collect().await;
        assert_eq!(first.len(), 2, "priming event and answer");
        let mut later = later;
        let priming = later.next().await.expect("priming event");
        assert!(priming.message.is_none());

        let cancelled: ClientJsonRpcMessage = serde_json::from_value(serde_json::json!({
            "jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}
        }))
        .expect("a cancellation");
        // rmcp has no such session; the cancellation is seen before it is asked.
        let _ = sessions.accept_message(&session, cancelled).await;
        let rest = tokio::time::timeout(Duration::from_secs(5), later.collect::<Vec<_>>())
            .await
            .expect("the cancelled stream ends without waiting for its call");
        assert!(
            rest.is_empty(),
            "no answer after the cancellation: {rest:?}"
        );
        drop(release);
    }
}
