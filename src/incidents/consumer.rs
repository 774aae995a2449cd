//! Feeds facts to [`FollowThrough`]: a JetStream durable pull consumer shared by every replica
//! (JetStream hands each fact to one of them; explicit acks, sent only after `apply` recorded
//! the side effects; failures are nak'd with the configured backoff as delay, at most
//! `max_deliver` deliveries; poison facts and facts given up go to the dead-letter subject
//! with the reason, then are acked), or a JSON Lines file for development (read from the
//! start, followed as it grows; poison lines go to `<file>.dead`). Also runs the deferred-page
//! check.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::config::{DeliverPolicy, FactSource, FactsNats};
use super::{Failure, FollowThrough, Parsed, metrics, parse};
use crate::adapters::http::{BreakerConfig, Guard, Health};

/// Where facts come from, as running.
pub struct Consumer {
    follow: Arc<FollowThrough>,
    source: FactSource,
    /// The NATS connection's health (breaker, last error), for `/readyz`.
    guard: Guard,
}

/// Where a fact goes when it is not applied: its reason.
struct DeadLetter<'a> {
    payload: &'a [u8],
    reason: String,
    seq: u64,
    fact_type: String,
}

impl Consumer {
    pub fn new(follow: Arc<FollowThrough>, source: FactSource) -> Arc<Self> {
        Arc::new(Self {
            follow,
            source,
            guard: Guard::new("facts", "the facts stream", BreakerConfig::default()),
        })
    }

    pub fn health(&self) -> Option<Health> {
        match self.source {
            FactSource::Nats(_) => Some(self.guard.health()),
            _ => None,
        }
    }

    /// Runs the source and the deferred-page check until `shutdown`.
    pub fn spawn(self: &Arc<Self>, deferred_every: Duration, shutdown: CancellationToken) {
        let this = self.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(deferred_every);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = this.follow.send_due_pages().await {
                            tracing::warn!(reason = %e.reason, "sending deferred pages failed; retrying at the next check");
                        }
                    }
                }
            }
        });
        let this = self.clone();
        match &self.source {
            FactSource::None => {}
            FactSource::File(path) => {
                let path = path.clone();
                tokio::spawn(async move { this.run_file(path, shutdown).await });
            }
            FactSource::Nats(nats) => {
                let nats = nats.clone();
                tokio::spawn(async move { this.run_nats(nats, shutdown).await });
            }
        }
    }

    /// Applies one envelope; `Ok(outcome)` when it may be acked, `Err` when it should be
    /// delivered again.
    async fn handle(&self, payload: &[u8], seq: u64) -> Result<&'static str, (String, Failure)> {
        match parse(payload, seq) {
            Parsed::Other(kind) => {
                metrics::handled(&kind, "ignored");
                Ok("ignored")
            }
            Parsed::Poison(reason) => Err((
                "unknown".into(),
                Failure::permanent(format!("poison: {reason}")),
            )),
            Parsed::Fact(fact) => match self.follow.apply(&fact).await {
                Ok(applied) => {
                    metrics::handled(fact.kind.as_str(), applied.as_str());
                    Ok(applied.as_str())
                }
                Err(failure) => Err((fact.kind.as_str().to_string(), failure)),
            },
        }
    }

    async fn run_nats(self: Arc<Self>, config: FactsNats, shutdown: CancellationToken) {
        crate::adapters::nats::supervise(&self.guard, "the facts consumer", &shutdown, || {
            self.consume(&config, &shutdown)
        })
        .await;
    }

    /// One connection's life: set up the streams and the durable consumer, then handle
    /// messages until the connection fails or `shutdown`.
    async fn consume(&self, c: &FactsNats, shutdown: &CancellationToken) -> Result<(), String> {
        let (client, js) = crate::adapters::nats::connect(
            &crate::adapters::nats::Connect {
                name: "toolgate-facts",
                url: &c.url,
                credentials_file: c.credentials_file.as_deref(),
                timeout: c.timeout,
            },
            |options| options,
        )
        .await?;
        let facts = js
            .get_or_create_stream(stream::Config {
                name: c.stream.clone(),
                subjects: vec![c.subject.clone()],
                ..Default::default()
            })
            .await
            .map_err(|e| format!("nats: stream {}: {e}", c.stream))?;
        js.get_or_create_stream(stream::Config {
            name: c.dead_letter_stream.clone(),
            subjects: vec![c.dead_letter_subject.clone()],
            ..Default::default()
        })
        .await
        .map_err(|e| format!("nats: dead-letter stream {}: {e}", c.dead_letter_stream))?;
        let consumer: consumer::PullConsumer = facts
            .get_or_create_consumer(
                &c.consumer,
                consumer::pull::Config {
                    durable_name: Some(c.consumer.clone()),
                    deliver_policy: match c.deliver_policy {
                        DeliverPolicy::All => consumer::DeliverPolicy::All,
                        DeliverPolicy::New => consumer::DeliverPolicy::New,
                        DeliverPolicy::Last => consumer::DeliverPolicy::Last,
                    },
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_deliver: c.max_deliver,
                    filter_subject: c.subject.clone(),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("nats: consumer {}: {e}", c.consumer))?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(10)
            .messages()
            .await
            .map_err(|e| format!("nats: pulling: {e}"))?;
        tracing::info!(consumer = %c.consumer, subject = %c.subject, "facts consumer running");
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = messages.next() => next,
                // A server gone for longer than the timeout: reported, then connected anew.
                reason = crate::adapters::nats::lost(&client, c.timeout) => return Err(reason),
            };
            let message = match next {
                None => return Err("nats: the message stream ended".into()),
                Some(Err(e)) => return Err(format!("nats: {e}")),
                Some(Ok(m)) => m,
            };
            let (seq, delivered, pending) = match message.info() {
                Ok(i) => (i.stream_sequence, i.delivered, i.pending),
                Err(e) => {
                    tracing::warn!(error = %e, "a fact without JetStream metadata; skipped");
                    continue;
                }
            };
            metrics::set_lag(pending);
            match self.handle(&message.payload, seq).await {
                Ok(_) => message.ack().await.map_err(|e| format!("nats: ack: {e}"))?,
                Err((kind, failure)) if failure.transient && delivered < c.max_deliver => {
                    metrics::handled(&kind, "retried");
                    let delay = nak_delay(&c.backoff, delivered, failure.retry_after);
                    tracing::warn!(seq, delivered, reason = %failure.reason, ?delay, "a fact failed; redelivering later");
                    message
                        .ack_with(AckKind::Nak(Some(delay)))
                        .await
                        .map_err(|e| format!("nats: nak: {e}"))?;
                }
                Err((kind, failure)) => {
                    let reason = if failure.transient {
                        format!("gave up after {delivered} deliveries: {}", failure.reason)
                    } else {
                        failure.reason
                    };
                    let letter = DeadLetter {
                        payload: &message.payload,
                        reason,
                        seq,
                        fact_type: kind,
                    };
                    publish_dead(&js, c, &letter).await?;
                    message.ack().await.map_err(|e| format!("nats: ack: {e}"))?;
                }
            }
        }
    }

    async fn run_file(self: Arc<Self>, path: std::path::PathBuf, shutdown: CancellationToken) {
        let mut done_lines: u64 = 0;
        let dead_path = {
            let mut p = path.clone().into_os_string();
            p.push(".dead");
            std::path::PathBuf::from(p)
        };
        while !shutdown.is_cancelled() {
            let text = tokio::fs::read_to_string(&path).await.unwrap_or_default();
            // Only whole lines: a line still being written waits for its newline.
            let complete = text.rfind('\n').map_or("", |end| &text[..end]);
            for (index, line) in complete.lines().enumerate().skip(done_lines as usize) {
                let seq = index as u64 + 1;
                if line.trim().is_empty() {
                    done_lines = seq;
                    continue;
                }
                let mut delay = Duration::from_millis(500);
                loop {
                    match self.handle(line.as_bytes(), seq).await {
                        Ok(_) => break,
                        Err((kind, failure)) if failure.transient => {
                            metrics::handled(&kind, "retried");
                            tracing::warn!(line = seq, reason = %failure.reason, "a fact failed; retrying");
                            let wait = delay.max(failure.retry_after.unwrap_or_default());
                            tokio::select! {
                                _ = shutdown.cancelled() => return,
                                _ = tokio::time::sleep(wait) => {}
                            }
                            delay = (delay * 2).min(Duration::from_secs(30));
                        }
                        Err((kind, failure)) => {
                            metrics::handled(&kind, "dead_lettered");
                            metrics::dead_lettered();
                            let record = serde_json::json!({
                                "line": seq, "reason": failure.reason, "fact": line,
                            });
                            tracing::warn!(line = seq, reason = %failure.reason, "a fact was dead-lettered");
                            append_line(&dead_path, &record.to_string()).await;
                            break;
                        }
                    }
                }
                done_lines = seq;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

/// The wait before a failed fact is delivered again: the backoff step of this delivery (the
/// last step repeats), or the provider's own `Retry-After` / reset when that is longer.
pub fn nak_delay(backoff: &[Duration], delivered: i64, retry_after: Option<Duration>) -> Duration {
    let step = usize::try_from(delivered.max(1) - 1).unwrap_or(usize::MAX);
    let ours = backoff
        .get(step)
        .or(backoff.last())
        .copied()
        .unwrap_or(Duration::from_secs(1));
    ours.max(retry_after.unwrap_or_default())
}

async fn append_line(path: &std::path::Path, line: &str) {
    use tokio::io::AsyncWriteExt;
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await;
    match file {
        Ok(mut f) => {
            let _ = f.write_all(format!("{line}\n").as_bytes()).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot write the dead-letter file")
        }
    }
}

/// Publishes the fact as it came to the dead-letter subject with headers naming the reason,
/// and waits for JetStream to store it.
async fn publish_dead(
    js: &jetstream::Context,
    c: &FactsNats,
    letter: &DeadLetter<'_>,
) -> Result<(), String> {
    let mut headers = async_nats::HeaderMap::new();
    let reason: String = letter
        .reason
        .chars()
        .filter(|ch| !ch.is_control())
        .take(500)
        .collect();
    headers.insert("Toolgate-Dead-Reason", reason.as_str());
    headers.insert("Toolgate-Fact-Seq", letter.seq.to_string().as_str());
    headers.insert("Toolgate-Fact-Type", letter.fact_type.as_str());
    let ack = js
        .publish_with_headers(
            c.dead_letter_subject.clone(),
            headers,
            letter.payload.to_vec().into(),
        )
        .await
        .map_err(|e| format!("nats: dead-letter publish: {e}"))?;
    ack.await
        .map_err(|e| format!("nats: dead-letter not stored: {e}"))?;
    metrics::handled(&letter.fact_type, "dead_lettered");
    metrics::dead_lettered();
    tracing::warn!(seq = letter.seq, reason = %letter.reason, subject = %c.dead_letter_subject, "a fact was dead-lettered");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nak_delay_is_the_backoff_step_or_a_longer_retry_after() {
        let steps = [Duration::from_millis(200), Duration::from_secs(2)];
        assert_eq!(nak_delay(&steps, 1, None), Duration::from_millis(200));
        assert_eq!(nak_delay(&steps, 2, None), Duration::from_secs(2));
        assert_eq!(
            nak_delay(&steps, 9, None),
            Duration::from_secs(2),
            "the last repeats"
        );
        let told = Some(Duration::from_secs(30));
        assert_eq!(nak_delay(&steps, 1, told), Duration::from_secs(30));
        let shorter = Some(Duration::from_millis(50));
        assert_eq!(nak_delay(&steps, 2, shorter), Duration::from_secs(2));
        assert_eq!(nak_delay(&[], 1, None), Duration::from_secs(1));
    }
}
