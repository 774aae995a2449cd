//! The topics the index reads (`knowledge.topics`): JetStream subjects of other domains and of
//! toolgate's own intents — backlog item changes of the Transformation domain, the SRE
//! domain's facts (incidents, health checks, alerts), `sre.domain.intents.v1` (what every
//! replica emitted). Each replica's index is its own projection, so each replica reads every
//! message: an ordered consumer per subject (no acks, no durable state on the server) that
//! starts after the sequence last indexed, kept in the index's own database. A message is
//! indexed, then its sequence stored; a crash in between indexes it again, which changes
//! nothing (writes are by id and digest). An unusable message is logged and passed over.
//! The streams belong to their domains: they are found by subject, never created.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Knowledge;
use super::config::TopicsConfig;
use crate::adapters::http::Guard;

/// Messages indexed in one write at most (then their checkpoint is stored).
const BATCH: usize = 200;

/// Reads every subject until `shutdown`, reconnecting with backoff ([`crate::adapters::nats::supervise`]).
pub fn spawn(
    knowledge: Arc<Knowledge>,
    config: TopicsConfig,
    guard: Arc<Guard>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        crate::adapters::nats::supervise(&guard, "the knowledge topics", &shutdown, || {
            run(&knowledge, &config, &shutdown)
        })
        .await;
    });
}

/// One connection: every subject read side by side until one fails or `shutdown`.
async fn run(
    knowledge: &Arc<Knowledge>,
    config: &TopicsConfig,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let (client, js) = crate::adapters::nats::connect(
        &crate::adapters::nats::Connect {
            name: "toolgate-knowledge",
            url: &config.url,
            credentials_file: config.credentials_file.as_deref(),
            timeout: config.timeout,
        },
        |options| options,
    )
    .await?;
    let readers = config
        .subjects
        .iter()
        .map(|subject| read(knowledge, &js, subject, shutdown));
    // The first subject to fail ends the connection's life (the others stop with it), and so
    // does a server gone for longer than the timeout.
    tokio::select! {
        read = futures::future::try_join_all(readers) => read.map(|_| ()),
        reason = crate::adapters::nats::lost(&client, config.timeout) => Err(reason),
    }
}

/// Reads one subject from its checkpoint on.
async fn read(
    knowledge: &Arc<Knowledge>,
    js: &jetstream::Context,
    subject: &str,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let name = js
        .stream_by_subject(subject)
        .await
        .map_err(|e| format!("nats: no stream holds {subject}: {e}"))?;
    let mut stream = js
        .get_stream(&name)
        .await
        .map_err(|e| format!("nats: stream {name}: {e}"))?;
    let last = stream
        .info()
        .await
        .map_err(|e| format!("nats: stream {name}: {e}"))?
        .state
        .last_sequence;
    let key = format!("{name}/{subject}");
    let mut done = knowledge
        .index
        .checkpoint(&key)
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    if done > last {
        tracing::warn!(stream = %name, checkpoint = done, last, "knowledge: the stream is behind the checkpoint (recreated?); reading it from the start");
        done = 0;
    }
    let ordered = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subject.to_string(),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: done + 1,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| format!("nats: reading {subject}: {e}"))?;
    let mut messages = ordered
        .messages()
        .await
        .map_err(|e| format!("nats: reading {subject}: {e}"))?;
    tracing::info!(stream = %name, subject, from = done + 1, "knowledge: reading a topic");
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            next = messages.next() => next,
        };
        let mut batch = vec![next];
        // What else has arrived joins this write.
        while batch.len() < BATCH {
            match tokio::time::timeout(Duration::from_millis(20), messages.next()).await {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut events = Vec::new();
        let mut seq = done;
        for next in batch {
            let message = match next {
                None => return Err(format!("nats: {subject}: the message stream ended")),
                Some(Err(e)) => return Err(format!("nats: {subject}: {e}")),
                Some(Ok(m)) => m,
            };
            let at = message.info().map(|i| i.stream_sequence).unwrap_or(seq + 1);
            match super::events::from_message(&message.payload) {
                Ok(more) => events.extend(more),
                Err(reason) => tracing::warn!(
                    stream = %name,
                    seq = at,
                    reason = %reason,
                    "knowledge: a message of a topic is not indexed"
                ),
            }
            seq = seq.max(at);
        }
        // Not stored when indexing fails: the reconnect reads these messages again.
        knowledge.apply(events).await.map_err(|e| e.to_string())?;
        knowledge
            .index
            .set_checkpoint(&key, seq)
            .await
            .map_err(|e| e.to_string())?;
        done = seq;
    }
}
