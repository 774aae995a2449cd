//! Intents: what inbound integrations (the Alertmanager webhook, the SLI schedule, the ArgoCD
//! poller) ask the SRE domain to do. Integrations emit intents only, never facts. Intents are written to the
//! store's outbox in the same transaction as the dedup record of the signal that caused them;
//! the publisher ([`publisher`]) delivers them in order to the configured sink.
//!
//! Must not touch the dispatch core or tools: this module only writes the outbox and reads it.

pub mod alertmanager;
pub mod argocd;
pub mod config;
pub mod publisher;
pub mod sli;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

use crate::store::{DedupItem, IngestOutcome, NewIntent, Store, StoreError};

/// Version of the envelope layout (bumped on a breaking change of the envelope or a payload).
pub const ENVELOPE_VERSION: u32 = 1;

/// The intent types toolgate emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentType {
    IngestAlertRequested,
    CreateIncidentRequested,
    RecordSliWindowRequested,
    /// A pod's, deployment's or ArgoCD application's health or sync state changed (issue 19).
    RecordHealthCheckRequested,
    /// The aggregate state of the fleet, every ArgoCD poll cycle (issue 19).
    RecordFleetStateRequested,
}

impl IntentType {
    pub fn as_str(self) -> &'static str {
        match self {
            IntentType::IngestAlertRequested => "IngestAlertRequested",
            IntentType::CreateIncidentRequested => "CreateIncidentRequested",
            IntentType::RecordSliWindowRequested => "RecordSLIWindowRequested",
            IntentType::RecordHealthCheckRequested => "RecordHealthCheckRequested",
            IntentType::RecordFleetStateRequested => "RecordFleetStateRequested",
        }
    }
}

/// The versioned JSON envelope every intent travels in (see README, "Intents").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    /// Unique per emitted intent (UUID v4).
    pub id: String,
    /// Same for every delivery of the same signal; consumers and JetStream dedupe on it.
    pub idempotency_key: String,
    /// RFC 3339, when toolgate emitted it.
    pub occurred_at: String,
    /// Which integration emitted it, e.g. `toolgate/alertmanager`.
    pub source: String,
    /// Ties intents about the same thing together (e.g. `alert:<fingerprint>`).
    pub correlation_id: String,
    pub payload: Value,
}

impl Envelope {
    pub fn new(
        kind: IntentType,
        idempotency_key: String,
        source: &str,
        correlation_id: String,
        occurred_at: jiff::Timestamp,
        payload: Value,
    ) -> Envelope {
        Envelope {
            kind: kind.as_str().to_string(),
            version: ENVELOPE_VERSION,
            id: uuid::Uuid::new_v4().to_string(),
            idempotency_key,
            occurred_at: occurred_at.to_string(),
            source: source.to_string(),
            correlation_id,
            payload,
        }
    }

    fn to_new_intent(&self) -> Result<NewIntent, StoreError> {
        Ok(NewIntent {
            id: self.id.clone(),
            idempotency_key: self.idempotency_key.clone(),
            intent_type: self.kind.clone(),
            correlation_id: self.correlation_id.clone(),
            envelope: serde_json::to_string(self)
                .map_err(|e| StoreError::Corrupt(format!("envelope: {e}")))?,
        })
    }
}

/// A signal with its dedup key and the intents it causes when new.
#[derive(Debug, Clone)]
pub struct Signal {
    pub dedup_key: String,
    pub intents: Vec<Envelope>,
}

/// A reader of emitted intents: (intent type, payload). Must not block.
pub type Tap = Arc<dyn Fn(&str, &Value) + Send + Sync>;

/// One caller's items waiting for a group commit.
struct Pending {
    items: Vec<DedupItem>,
    reply: oneshot::Sender<Result<Vec<bool>, String>>,
}

/// Handle to the outbox: writes intents and wakes the publisher. Cheap to clone.
///
/// Writes are group-committed: callers queue their items; whoever holds the commit lock writes
/// everything queued in one transaction and answers each caller. With SQLite's one writer and a
/// sync per commit, this is what lets concurrent webhook deliveries through at thousands of
/// alerts per second.
#[derive(Clone)]
pub struct Intents {
    store: Store,
    /// Sees every newly emitted intent (type, payload) after its commit: the knowledge index
    /// reads alerts from here.
    tap: Option<Tap>,
    wake: Arc<Notify>,
    queue: Arc<std::sync::Mutex<Vec<Pending>>>,
    commit: Arc<tokio::sync::Mutex<()>>,
}

impl Intents {
    pub fn new(store: Store) -> Intents {
        Intents {
            store,
            tap: None,
            wake: Arc::new(Notify::new()),
            queue: Arc::new(std::sync::Mutex::new(Vec::new())),
            commit: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Also hands each newly emitted intent to `tap`.
    pub fn with_tap(mut self, tap: Tap) -> Intents {
        self.tap = Some(tap);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Records the signals' dedup keys (valid for `window_ms`) and the intents of the new ones
    /// in one transaction, then wakes the publisher.
    pub async fn emit(
        &self,
        source: &str,
        signals: &[Signal],
        window_ms: i64,
    ) -> Result<IngestOutcome, StoreError> {
        let items = signals
            .iter()
            .map(|s| {
                Ok(DedupItem {
                    dedup_key: s.dedup_key.clone(),
                    source: source.to_string(),
                    window_ms,
                    intents: s
                        .intents
                        .iter()
                        .map(Envelope::to_new_intent)
                        .collect::<Result<_, StoreError>>()?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let (reply, mut answer) = oneshot::channel();
        self.queue
            .lock()
            .map_err(|_| StoreError::Db("intents queue poisoned".into()))?
            .push(Pending { items, reply });
        let fresh = loop {
            let turn = self.commit.clone().lock_owned().await;
            // The previous holder may have committed ours already.
            match answer.try_recv() {
                Ok(result) => break result,
                Err(oneshot::error::TryRecvError::Closed) => {
                    break Err("the group commit was interrupted".to_string());
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            // In a task of its own, so a caller that goes away cannot cut a commit in half.
            let this = self.clone();
            let _ = tokio::spawn(async move {
                let _turn = turn;
                this.commit_queued().await;
            })
            .await;
        };
        let fresh = fresh.map_err(StoreError::Db)?;
        let mut outcome = IngestOutcome::default();
        for (signal, new) in signals.iter().zip(&fresh) {
            if *new {
                outcome.new += 1;
                outcome.intents += signal.intents.len();
                if let Some(tap) = &self.tap {
                    for envelope in &signal.intents {
                        tap(&envelope.kind, &envelope.payload);
                    }
                }
            } else {
                outcome.duplicates += 1;
            }
        }
        if outcome.intents > 0 {
            self.wake.notify_one();
        }
        Ok(outcome)
    }

    /// Writes everything queued in one transaction and answers each caller (commit lock held).
    async fn commit_queued(&self) {
        let batch: Vec<Pending> = match self.queue.lock() {
            Ok(mut queue) => std::mem::take(&mut *queue),
            Err(_) => return,
        };
        let mut items = Vec::new();
        let mut lengths = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for pending in batch {
            lengths.push(pending.items.len());
            items.extend(pending.items);
            replies.push(pending.reply);
        }
        let result = self
            .store
            .ingest_deduplicated(&items, crate::store::now_ms())
            .await;
        let mut offset = 0;
        for (reply, len) in replies.into_iter().zip(lengths) {
            let answer = match &result {
                Ok(fresh) => Ok(fresh[offset..offset + len].to_vec()),
                Err(e) => Err(e.to_string()),
            };
            offset += len;
            // A caller that gave up (request cancelled) no longer listens; its items are written.
            let _ = reply.send(answer);
        }
    }

    pub(crate) fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}
