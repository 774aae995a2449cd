//! Memory: the Cognee adapter (`client`), DataPoints and their documents (`datapoint`), the
//! durable queue of adds made while Cognee is down (`queue`, kept by the store) and the seam of
//! the embedded fallback index (`fallback`). [`Memory`] is what the `memory.*` tools use: it adds
//! or queues, keeps adds in order (while anything is queued, new adds queue behind it), replays
//! the queue when Cognee answers again, gives every add to the fallback index too (so what was
//! added is found while Cognee is down), and turns searches to the fallback when Cognee cannot
//! answer. Imports only the upstream kit.

pub mod client;
pub mod config;
pub mod datapoint;
pub mod fallback;
pub mod queue;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use self::client::{Cognee, Hit, MemoryError, RunInfo, SEARCH_TYPES};
use self::config::MemoryConfig;
use self::datapoint::{DataPoint, Document, Recalled, parse_documents};
pub use self::fallback::{MemoryFallback, ScoredDocument};
pub use self::queue::{AddQueue, QueueCounts, QueuedAdd};
use crate::adapters::http::Health;

/// What happened to one `add`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOutcome {
    /// Cognee accepted the documents.
    Added(RunInfo),
    /// Kept in the store; replayed when Cognee answers. `reason` says why it was not sent.
    Queued { seq: i64, reason: String },
    /// Cognee is not configured: kept in the embedded index only.
    Indexed,
}

/// Where a search answer came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchAnswer {
    /// `cognee` or `embedded`.
    pub source: &'static str,
    /// Why Cognee did not answer (set with `source: embedded`).
    pub degraded: Option<String>,
    pub hits: Vec<SourcedHit>,
}

/// A search result with what it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcedHit {
    pub text: String,
    /// Dataset name (Cognee) or the index's document id (embedded).
    pub source: String,
    /// The DataPoints the text holds (parsed back from their documents).
    pub datapoints: Vec<Recalled>,
    /// The embedded index's score; Cognee gives none.
    pub score: Option<f64>,
}

/// A cognify run and where it ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    pub run: RunInfo,
    /// Cognee's dataset status (`DATASET_PROCESSING_COMPLETED`, …), when polled.
    pub status: Option<String>,
    /// Polling stopped at the deadline before the run finished.
    pub timed_out: bool,
    pub waited: Duration,
}

/// The memory tools' upstream: Cognee (when configured), the queue, the fallback.
#[derive(Default)]
pub struct Memory {
    cognee: Option<Cognee>,
    dataset: String,
    cognify_deadline: Duration,
    poll_interval: Duration,
    replay_interval: Duration,
    queue: OnceLock<Arc<dyn AddQueue>>,
    fallback: OnceLock<Arc<dyn MemoryFallback>>,
    /// One replay at a time in this process.
    replaying: tokio::sync::Mutex<()>,
    /// Poked when an add was queued, so the replayer looks soon.
    wake: tokio::sync::Notify,
}

impl Memory {
    /// The client for the configured Cognee (no I/O), or an unconfigured memory.
    pub fn new(config: &MemoryConfig) -> Result<Self, String> {
        let Some(c) = &config.cognee else {
            return Ok(Self::default());
        };
        Ok(Self {
            cognee: Some(Cognee::new(c)?),
            dataset: c.dataset.clone(),
            cognify_deadline: c.cognify_deadline,
            poll_interval: c.poll_interval,
            replay_interval: c.replay_interval,
            ..Self::default()
        })
    }

    pub fn configured(&self) -> bool {
        self.cognee.is_some()
    }

    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    pub fn cognify_deadline(&self) -> Duration {
        self.cognify_deadline
    }

    /// The store's queue (set once, at start).
    pub fn set_queue(&self, queue: Arc<dyn AddQueue>) {
        let _ = self.queue.set(queue);
    }

    /// The embedded index that answers when Cognee cannot (set once, at start).
    pub fn set_fallback(&self, fallback: Arc<dyn MemoryFallback>) {
        let _ = self.fallback.set(fallback);
    }

    pub fn health(&self) -> Option<Health> {
        self.cognee.as_ref().map(Cognee::health)
    }

    fn cognee(&self) -> Result<&Cognee, MemoryError> {
        self.cognee.as_ref().ok_or(MemoryError::NotConfigured)
    }

    /// Add validated DataPoints: sent at once, or queued when Cognee is down or earlier adds
    /// still wait (so adds reach Cognee in the order they were made).
    /// Whatever happened, the fallback index (when set) keeps them.
    pub async fn add(&self, points: &[DataPoint]) -> Result<AddOutcome, MemoryError> {
        let outcome = match &self.cognee {
            Some(cognee) => self.send_or_queue(cognee, points).await?,
            None if self.fallback.get().is_some() => AddOutcome::Indexed,
            None => return Err(MemoryError::NotConfigured),
        };
        if let Some(fallback) = self.fallback.get()
            && let Err(e) = fallback.remember(points).await
        {
            if outcome == AddOutcome::Indexed {
                return Err(MemoryError::Unavailable(format!(
                    "Cognee is not configured and the embedded index failed: {e}"
                )));
            }
            tracing::warn!(error = %e, "memory: the embedded index did not keep an add");
        }
        Ok(outcome)
    }

    async fn send_or_queue(
        &self,
        cognee: &Cognee,
        points: &[DataPoint],
    ) -> Result<AddOutcome, MemoryError> {
        let documents: Vec<Document> = points.iter().map(DataPoint::document).collect();
        if let Some(queue) = self.queue.get() {
            let waiting = queue.counts().await.map_err(MemoryError::Queue)?.pending;
            if waiting > 0 {
                let seq = self.enqueue(queue, &documents).await?;
                return Ok(AddOutcome::Queued {
                    seq,
                    reason: format!(
                        "{waiting} earlier add(s) still wait for Cognee; this one goes after them"
                    ),
                });
            }
        }
        match cognee.add(&self.dataset, &documents).await {
            Ok(run) => Ok(AddOutcome::Added(run)),
            Err(e) if e.is_unavailable() => match self.queue.get() {
                Some(queue) => {
                    let seq = self.enqueue(queue, &documents).await?;
                    Ok(AddOutcome::Queued {
                        seq,
                        reason: e.to_string(),
                    })
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn enqueue(
        &self,
        queue: &Arc<dyn AddQueue>,
        documents: &[Document],
    ) -> Result<i64, MemoryError> {
        let seq = queue
            .enqueue(&self.dataset, documents)
            .await
            .map_err(MemoryError::Queue)?;
        self.wake.notify_one();
        Ok(seq)
    }

    /// Send queued adds to Cognee, oldest first, each marked done once Cognee accepted it; stops
    /// at the first failure (the rest wait, in order). Returns how many were sent.
    pub async fn replay(&self) -> Result<usize, MemoryError> {
        let (Some(cognee), Some(queue)) = (self.cognee.as_ref(), self.queue.get()) else {
            return Ok(0);
        };
        let _one = self.replaying.lock().await;
        let mut sent = 0;
        loop {
            let batch = queue.pending(20).await.map_err(MemoryError::Queue)?;
            if batch.is_empty() {
                return Ok(sent);
            }
            for add in batch {
                match cognee.add(&add.dataset, &add.documents).await {
                    Ok(_) => {
                        queue.mark_done(add.seq).await.map_err(MemoryError::Queue)?;
                        sent += 1;
                    }
                    Err(e) => {
                        let message = e.to_string();
                        queue
                            .record_failure(add.seq, &message)
                            .await
                            .map_err(MemoryError::Queue)?;
                        if sent > 0 {
                            tracing::info!(sent, "memory: replayed queued adds to Cognee");
                        }
                        return Err(e);
                    }
                }
            }
        }
    }

    /// The replayer: every `replay_interval` (or soon after an add was queued) sends what waits,
    /// until `shutdown`.
    pub async fn run_replayer(self: Arc<Self>, shutdown: CancellationToken) {
        if self.cognee.is_none() || self.queue.get().is_none() {
            return;
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.replay_interval) => {}
                _ = self.wake.notified() => {
                    // Give Cognee the interval before trying again after a failure.
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(self.replay_interval) => {}
                    }
                }
            }
            match self.replay().await {
                Ok(0) => {}
                Ok(sent) => tracing::info!(sent, "memory: replayed queued adds to Cognee"),
                Err(e) => tracing::debug!(error = %e, "memory: queued adds still wait"),
            }
        }
    }

    pub async fn queue_counts(&self) -> Result<Option<QueueCounts>, MemoryError> {
        match self.queue.get() {
            Some(q) => Ok(Some(q.counts().await.map_err(MemoryError::Queue)?)),
            None => Ok(None),
        }
    }

    /// Start cognifying the dataset in the background; with `wait`, poll its status until it
    /// finishes or the deadline (`memory.cognee.cognify_deadline`, or `deadline`) passes.
    pub async fn cognify(
        &self,
        wait: bool,
        deadline: Option<Duration>,
    ) -> Result<RunState, MemoryError> {
        let cognee = self.cognee()?;
        let run = cognee.cognify(&self.dataset, true).await?;
        if run.status == "PipelineRunErrored" {
            return Err(MemoryError::Rejected {
                status: 200,
                message: format!("cognify run {} errored", run.pipeline_run_id),
            });
        }
        if !wait {
            return Ok(RunState {
                run,
                status: None,
                timed_out: false,
                waited: Duration::ZERO,
            });
        }
        let deadline = deadline.unwrap_or(self.cognify_deadline);
        let started = tokio::time::Instant::now();
        loop {
            let statuses = cognee.status(std::slice::from_ref(&run.dataset_id)).await?;
            let status = statuses.get(&run.dataset_id).cloned();
            let finished = matches!(
                status.as_deref(),
                Some("DATASET_PROCESSING_COMPLETED" | "DATASET_PROCESSING_ERRORED")
            );
            let waited = started.elapsed();
            if finished || waited >= deadline {
                return Ok(RunState {
                    run,
                    status,
                    timed_out: !finished,
                    waited,
                });
            }
            let left = deadline.saturating_sub(waited);
            tokio::time::sleep(self.poll_interval.min(left)).await;
        }
    }

    /// The dataset's id and its cognify status (`None` when Cognee has no such dataset yet).
    pub async fn status(&self) -> Result<Option<(String, Option<String>)>, MemoryError> {
        let cognee = self.cognee()?;
        let Some(dataset) = cognee
            .datasets()
            .await?
            .into_iter()
            .find(|d| d.name == self.dataset)
        else {
            return Ok(None);
        };
        let statuses = cognee.status(std::slice::from_ref(&dataset.id)).await?;
        let status = statuses.get(&dataset.id).cloned();
        Ok(Some((dataset.id, status)))
    }

    /// Search Cognee; when it is unconfigured or down, the embedded index (if one is set).
    /// `kinds` keeps only results holding DataPoints of those kinds.
    pub async fn search(
        &self,
        search_type: &str,
        query: &str,
        kinds: &[String],
        top_k: usize,
    ) -> Result<SearchAnswer, MemoryError> {
        let why = match self.cognee() {
            Ok(cognee) => {
                match cognee
                    .search(
                        search_type,
                        query,
                        std::slice::from_ref(&self.dataset),
                        top_k,
                    )
                    .await
                {
                    Ok(hits) => {
                        let hits = hits
                            .into_iter()
                            .map(|h| SourcedHit {
                                datapoints: parse_documents(&h.text),
                                source: h
                                    .dataset_name
                                    .or(h.dataset_id)
                                    .unwrap_or_else(|| self.dataset.clone()),
                                text: h.text,
                                score: None,
                            })
                            .filter(|h| {
                                kinds.is_empty()
                                    || h.datapoints.iter().any(|d| kinds.contains(&d.kind))
                            })
                            .take(top_k)
                            .collect();
                        return Ok(SearchAnswer {
                            source: "cognee",
                            degraded: None,
                            hits,
                        });
                    }
                    Err(e) if e.is_unavailable() => e,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => e,
        };
        let Some(fallback) = self.fallback.get() else {
            return Err(MemoryError::Unavailable(match why {
                MemoryError::NotConfigured => "it is not configured (set memory.cognee.url or TOOLGATE_MEMORY_COGNEE_URL) and no embedded knowledge index is configured (a `knowledge:` section) to answer instead".to_string(),
                why => format!(
                    "{}; no embedded knowledge index is configured to answer instead",
                    why.to_string().trim_start_matches("Cognee is unavailable: ")
                ),
            }));
        };
        let docs = fallback.search(query, kinds, top_k).await.map_err(|e| {
            MemoryError::Unavailable(format!("{why}; the embedded index failed too: {e}"))
        })?;
        Ok(SearchAnswer {
            source: "embedded",
            degraded: Some(why.to_string()),
            hits: docs
                .into_iter()
                .map(|d| SourcedHit {
                    datapoints: parse_documents(&d.text),
                    source: d.id,
                    text: d.text,
                    score: Some(d.score),
                })
                .collect(),
        })
    }
}
