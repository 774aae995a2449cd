//! The outbox publisher: delivers pending intents to the sink in seq order (so in order per
//! correlation id), marks them sent, and on failure stops at the failed intent and retries it
//! with exponential backoff. Nothing is marked sent before the sink acknowledged it, so a crash
//! or restart only causes redelivery, which JetStream drops by `Nats-Msg-Id`.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use super::Intents;
use super::config::{IntentSink, NatsConfig};
use crate::store::{IntentRecord, Store, now_ms};

/// Intents read per round.
const BATCH: i64 = 500;
/// Poll interval when idle (another replica, or a wake-up missed).
const IDLE_POLL: Duration = Duration::from_secs(1);
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often expired dedup records are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Where intents go.
pub trait Sink: Send + Sync {
    fn name(&self) -> &'static str;
    /// Delivers one intent; Ok only once the sink has it durably. The error must not hold
    /// secrets (it is stored and logged).
    fn publish<'a>(&'a self, intent: &'a IntentRecord) -> BoxFuture<'a, Result<(), String>>;
    /// The sink's breaker and last results, for `/readyz` (none for sinks with no upstream).
    fn health(&self) -> Option<crate::adapters::http::Health> {
        None
    }
}

/// The embedded default: intents stay in the outbox (marked sent by `log`) and are logged.
pub struct LogSink;

impl Sink for LogSink {
    fn name(&self) -> &'static str {
        "log"
    }

    fn publish<'a>(&'a self, intent: &'a IntentRecord) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            tracing::info!(
                intent_type = %intent.intent_type,
                idempotency_key = %intent.idempotency_key,
                correlation_id = %intent.correlation_id,
                seq = intent.seq,
                envelope = %intent.envelope,
                "intent"
            );
            Ok(())
        })
    }
}

/// NATS JetStream: one message per intent on the subject, `Nats-Msg-Id` = idempotency key, so
/// JetStream drops a redelivery inside the stream's duplicate window.
/// Publishes pass the upstream kit's guard (breaker, metrics, health) like HTTP requests do.
pub struct NatsSink {
    config: NatsConfig,
    state: Mutex<Option<NatsState>>,
    guard: crate::adapters::http::Guard,
}

struct NatsState {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    stream_ready: bool,
}

impl NatsSink {
    pub fn new(config: NatsConfig) -> NatsSink {
        NatsSink {
            guard: crate::adapters::http::Guard::new("nats", "NATS", config.breaker),
            config,
            state: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<NatsState, String> {
        let reconnect = self.config.reconnect;
        let (client, js) = crate::adapters::nats::connect(
            &crate::adapters::nats::Connect {
                name: "toolgate",
                url: &self.config.url,
                credentials_file: self.config.credentials_file.as_deref(),
                timeout: self.config.timeout,
            },
            // Reconnects in the background, a bounded number of times with the kit's backoff;
            // publishes fail (and are retried by the outbox) meanwhile, and a closed client is
            // replaced by a new connection on the next publish.
            |options| {
                options
                    .retry_on_initial_connect()
                    .max_reconnects(Some(reconnect.attempts as usize))
                    .reconnect_delay_callback(move |attempt| reconnect.backoff(attempt as u32))
            },
        )
        .await?;
        Ok(NatsState {
            client,
            js,
            stream_ready: false,
        })
    }

    async fn publish_guarded(&self, intent: &IntentRecord) -> Result<(), String> {
        let permit = self.guard.admit().map_err(|open| open.to_string())?;
        let result = self.publish_once(intent).await;
        let outcome = match &result {
            Ok(()) => crate::adapters::http::Outcome::Ok,
            Err(_) => crate::adapters::http::Outcome::Connect,
        };
        self.guard
            .finish(permit, outcome, result.as_ref().err().map(String::as_str));
        result
    }
}

impl Sink for NatsSink {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn publish<'a>(&'a self, intent: &'a IntentRecord) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.publish_guarded(intent))
    }

    fn health(&self) -> Option<crate::adapters::http::Health> {
        Some(self.guard.health())
    }
}

impl NatsSink {
    async fn publish_once(&self, intent: &IntentRecord) -> Result<(), String> {
        let mut guard = self.state.lock().await;
        if guard.is_none() {
            *guard = Some(self.connect().await?);
        }
        let Some(state) = guard.as_mut() else {
            return Err("nats: not connected".into());
        };
        let result = self.publish_on(state, intent).await;
        if result.is_err() {
            // Whichever step failed: the stream may be gone (server reset), so check it again
            // next time; a client that is not connected may have run out of reconnects, so the
            // next publish connects anew.
            state.stream_ready = false;
            if state.client.connection_state() != async_nats::connection::State::Connected {
                *guard = None;
            }
        }
        result
    }

    /// Make sure the stream exists, then publish and wait for JetStream's ack.
    async fn publish_on(&self, state: &mut NatsState, intent: &IntentRecord) -> Result<(), String> {
        if !state.stream_ready {
            let config = async_nats::jetstream::stream::Config {
                name: self.config.stream.clone(),
                subjects: vec![self.config.subject.clone()],
                ..Default::default()
            };
            state
                .js
                .get_or_create_stream(config)
                .await
                .map_err(|e| format!("nats: stream {}: {e}", self.config.stream))?;
            state.stream_ready = true;
        }
        let payload = serde_json::to_vec(&intent.envelope)
            .map_err(|e| format!("nats: encoding envelope: {e}"))?;
        let publish = async_nats::jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(&intent.idempotency_key);
        let ack = state
            .js
            .send_publish(self.config.subject.clone(), publish)
            .await
            .map_err(|e| format!("nats: publish: {e}"))?;
        ack.await.map_err(|e| format!("nats: no ack: {e}"))?;
        Ok(())
    }
}

/// The sink the config names.
pub fn sink_for(config: &IntentSink) -> Arc<dyn Sink> {
    match config {
        IntentSink::Log => Arc::new(LogSink),
        IntentSink::Nats(nats) => Arc::new(NatsSink::new(nats.clone())),
    }
}

/// Runs the publisher until `shutdown`.
pub fn spawn(intents: &Intents, sink: Arc<dyn Sink>, shutdown: CancellationToken) {
    let store = intents.store().clone();
    let wake = intents.wake_handle();
    tokio::spawn(async move { run(store, sink, wake, shutdown).await });
}

async fn run(store: Store, sink: Arc<dyn Sink>, wake: Arc<Notify>, shutdown: CancellationToken) {
    let mut backoff = BACKOFF_START;
    let mut last_prune = tokio::time::Instant::now();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = tokio::time::Instant::now();
            if let Err(e) = store.prune_dedup(now_ms()).await {
                tracing::warn!(error = %e, "pruning expired dedup records failed");
            }
        }
        let failed = match store.pending_intents(BATCH).await {
            Err(e) => {
                tracing::warn!(error = %e, "reading the intents outbox failed");
                true
            }
            Ok(batch) if batch.is_empty() => {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
                continue;
            }
            Ok(batch) => deliver(&store, sink.as_ref(), &batch, &shutdown).await,
        };
        if failed {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(jitter(backoff)) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        } else {
            backoff = BACKOFF_START;
        }
    }
}

/// Publishes `batch` in order, stopping at the first failure; marks the delivered prefix sent.
/// Returns whether a failure stopped it.
async fn deliver(
    store: &Store,
    sink: &dyn Sink,
    batch: &[IntentRecord],
    shutdown: &CancellationToken,
) -> bool {
    let mut delivered: Option<i64> = None;
    let mut failed = false;
    for intent in batch {
        if shutdown.is_cancelled() {
            break;
        }
        match sink.publish(intent).await {
            Ok(()) => delivered = Some(intent.seq),
            Err(e) => {
                tracing::warn!(
                    sink = sink.name(),
                    seq = intent.seq,
                    idempotency_key = %intent.idempotency_key,
                    attempts = intent.attempts + 1,
                    error = %e,
                    "delivering an intent failed; retrying with backoff"
                );
                if let Err(e) = store.record_intent_failure(intent.seq, &e).await {
                    tracing::warn!(error = %e, "recording the delivery failure failed");
                }
                failed = true;
                break;
            }
        }
    }
    if let (Some(first), Some(last)) = (batch.first(), delivered)
        && let Err(e) = store
            .mark_intents_sent(first.seq, last, sink.name(), now_ms())
            .await
    {
        // They will be delivered again; the sink dedupes by idempotency key.
        tracing::warn!(error = %e, "marking intents sent failed");
        return true;
    }
    failed
}

/// ±25 % so replicas retrying together spread out.
fn jitter(d: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    let factor = 0.75 + f64::from(byte[0]) / 255.0 * 0.5;
    d.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::intents::{Envelope, IntentType, Signal};

    /// Fails its first `fail` calls, then records what it got.
    struct Flaky {
        fail: AtomicUsize,
        got: std::sync::Mutex<Vec<String>>,
    }

    impl Sink for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn publish<'a>(&'a self, intent: &'a IntentRecord) -> BoxFuture<'a, Result<(), String>> {
            Box::pin(async move {
                if self
                    .fail
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return Err("sink down".into());
                }
                self.got
                    .lock()
                    .map_err(|_| "poisoned".to_string())?
                    .push(intent.idempotency_key.clone());
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn failures_are_retried_in_order_and_nothing_is_lost() {
        let (store, _dir) = crate::store::test_support::sqlite().await;
        let intents = Intents::new(store.clone());
        let signals: Vec<Signal> = (0..5)
            .map(|i| Signal {
                dedup_key: format!("k{i}"),
                intents: vec![Envelope::new(
                    IntentType::IngestAlertRequested,
                    format!("k{i}"),
                    "test",
                    "c".into(),
                    jiff::Timestamp::UNIX_EPOCH,
                    serde_json::json!({}),
                )],
            })
            .collect();
        intents.emit("test", &signals, 60_000).await.expect("emit");
        let sink = Arc::new(Flaky {
            fail: AtomicUsize::new(3),
            got: std::sync::Mutex::new(Vec::new()),
        });
        let shutdown = CancellationToken::new();
        spawn(&intents, sink.clone(), shutdown.clone());
        for _ in 0..200 {
            if store.count_intents().await.expect("count").0 == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shutdown.cancel();
        let got = sink.got.lock().expect("lock").clone();
        assert_eq!(got, ["k0", "k1", "k2", "k3", "k4"]);
        let sent = store.list_intents(Some("sent"), 10).await.expect("list");
        assert_eq!(sent.len(), 5);
        assert_eq!(sent[0].attempts, 3, "the head intent failed three times");
        assert_eq!(sent[0].sink.as_deref(), Some("flaky"));
    }
}
