//! The embedded knowledge index behind the `knowledge.*` tools (and the fallback of
//! `memory.search`): runbook sections, incidents (past ones, the domain's incident facts, the
//! alerts toolgate receives, health episodes) and backlog items in SQLite, their full text in
//! a tantivy projection ranked by BM25, and — when an embeddings endpoint is configured — a
//! hybrid of BM25 and cosine similarity.
//!
//! Owns its own database (`index.rs`, with the full-text projection `text.rs`) and feeds: files
//! (`files.rs`, `runbooks.rs`), the intents toolgate emits and the JetStream topics it reads
//! (`events.rs` turns a message into changes, `topics.rs` reads the subjects, `alerts.rs`).
//! Must not touch the store, the core, tools or transports; it reaches the embeddings endpoint
//! and NATS only through their adapters (`adapters::embeddings`, `adapters::nats`).
//!
//! The public API: [`Knowledge::open`], [`Knowledge::index`] (documents of a named feed),
//! [`Knowledge::search`] (text, kinds, tags, limit), [`Knowledge::refresh`] (re-read the
//! files), [`Knowledge::apply`] (the events of a message), [`Knowledge::intent_tap`] (emitted
//! intents in), [`Knowledge::spawn`] (the event, topic and poll loops).

pub mod alerts;
pub mod config;
pub mod document;
pub mod events;
pub mod files;
pub mod index;
pub mod memory;
pub mod relevance;
pub mod runbooks;
pub mod search;
pub mod text;
pub mod topics;
pub mod vectors;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use serde_json::Value;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use crate::adapters::embeddings::Embed;
pub use config::KnowledgeConfig;
pub use document::{Document, Kind};
pub use events::Event;
use index::{Index, Synced};
pub use search::{Hit, Mode, SearchAnswer, SearchRequest};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KnowledgeError {
    /// The index database failed.
    #[error("knowledge index: {0}")]
    Db(String),
    /// A feed file could not be read or parsed (names the file, line and field).
    #[error("{0}")]
    Feed(String),
    /// The search request is unusable (names the argument and what would do).
    #[error("{0}")]
    Query(String),
}

/// What one pass over the files changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refreshed {
    pub written: usize,
    pub removed: usize,
    /// Files that could not be read or parsed (they keep what was indexed before).
    pub problems: Vec<String>,
}

pub struct Knowledge {
    index: Index,
    config: KnowledgeConfig,
    embedder: Option<Arc<dyn Embed>>,
    vectors: RwLock<vectors::Vectors>,
    seen: Mutex<files::Seen>,
    first_pass: std::sync::atomic::AtomicBool,
    events_tx: mpsc::Sender<Event>,
    events_rx: std::sync::Mutex<Option<mpsc::Receiver<Event>>>,
    /// The topics' connection health (breaker, last error), when topics are configured.
    topics: Option<Arc<crate::adapters::http::Guard>>,
}

/// A reader of emitted intents (type, payload); the same shape as `intents::Tap`, which this
/// layer does not import.
pub type IntentTap = Arc<dyn Fn(&str, &Value) + Send + Sync>;

/// Feed of alerts from the intents stream.
pub const ALERTS_FEED: &str = "alerts";
/// Feed of documents given through [`Knowledge::index`] without a name of their own.
pub const API_FEED: &str = "api";

impl Knowledge {
    /// Opens the index, loads its vectors and reads the configured files once.
    pub async fn open(
        config: KnowledgeConfig,
        embedder: Option<Arc<dyn Embed>>,
    ) -> Result<Arc<Knowledge>, KnowledgeError> {
        let index = Index::open(config.path.as_deref()).await?;
        let mut vectors = vectors::Vectors::new();
        let mut other_length = 0usize;
        for (rowid, kind, tags, values) in index.vectors().await? {
            if !vectors.insert(rowid, kind, tags, &values) {
                other_length += 1;
            }
        }
        if other_length > 0 {
            tracing::warn!(
                vectors = other_length,
                "knowledge: stored vectors of another length than the others (another embedding model?) are not used"
            );
        }
        let (events_tx, events_rx) = mpsc::channel(10_000);
        let topics = config.topics.as_ref().map(|_| {
            Arc::new(crate::adapters::http::Guard::new(
                "knowledge_topics",
                "the knowledge topics",
                crate::adapters::http::BreakerConfig::default(),
            ))
        });
        let knowledge = Arc::new(Knowledge {
            index,
            config,
            embedder,
            vectors: RwLock::new(vectors),
            seen: Mutex::new(files::Seen::new()),
            first_pass: std::sync::atomic::AtomicBool::new(true),
            events_tx,
            events_rx: std::sync::Mutex::new(Some(events_rx)),
            topics,
        });
        let first = knowledge.refresh().await?;
        for problem in &first.problems {
            tracing::warn!(problem = %problem, "knowledge: a feed file was not indexed");
        }
        Ok(knowledge)
    }

    pub fn config(&self) -> &KnowledgeConfig {
        &self.config
    }

    /// The embeddings endpoint's breaker and last results, for `/readyz`.
    pub fn embeddings_health(&self) -> Option<crate::adapters::http::Health> {
        self.embedder.as_ref().and_then(|e| e.health())
    }

    /// The topics' NATS connection, for `/readyz`.
    pub fn topics_health(&self) -> Option<crate::adapters::http::Health> {
        self.topics.as_ref().map(|g| g.health())
    }

    /// Whether vectors are configured.
    pub fn hybrid(&self) -> bool {
        self.embedder.is_some()
    }

    /// Adds or updates documents under `feed` (others of the feed stay). Vectors follow in the
    /// background (or at the next [`Knowledge::embed_missing`]).
    pub async fn index(&self, feed: &str, docs: &[Document]) -> Result<Synced, KnowledgeError> {
        let (synced, dropped) = self.index.sync(feed, docs, false).await?;
        self.forget_vectors(&dropped);
        Ok(synced)
    }

    /// Makes `feed` hold exactly `docs` (the others of the feed leave).
    pub async fn replace(&self, feed: &str, docs: &[Document]) -> Result<Synced, KnowledgeError> {
        let (synced, dropped) = self.index.sync(feed, docs, true).await?;
        self.forget_vectors(&dropped);
        Ok(synced)
    }

    fn forget_vectors(&self, rowids: &[i64]) {
        if rowids.is_empty() {
            return;
        }
        if let Ok(mut v) = self.vectors.write() {
            for r in rowids {
                v.remove(*r);
            }
        }
    }

    /// Documents of each kind, for logs and the bench.
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, KnowledgeError> {
        self.index.counts().await
    }

    /// Re-reads what changed in the runbooks directory and the JSON Lines files.
    pub async fn refresh(&self) -> Result<Refreshed, KnowledgeError> {
        let mut seen = self.seen.lock().await;
        let first = self
            .first_pass
            .swap(false, std::sync::atomic::Ordering::SeqCst);
        let mut out = Refreshed::default();
        let add = |s: Synced, out: &mut Refreshed| {
            out.written += s.written;
            out.removed += s.removed;
        };
        if let Some(dir) = &self.config.runbooks_dir {
            match files::markdown_files(dir) {
                Err(e) => out.problems.push(e.to_string()),
                Ok(list) => {
                    let mut current = HashSet::new();
                    for (path, rel) in &list {
                        let feed = format!("{}{rel}", files::RUNBOOK_FEED);
                        current.insert(feed.clone());
                        let Some(stamp) = files::stamp(path) else {
                            continue;
                        };
                        if seen.get(path) == Some(&stamp) {
                            continue;
                        }
                        match std::fs::read_to_string(path) {
                            Ok(text) => {
                                let docs = runbooks::sections(rel, &text, files::millis(stamp.0));
                                add(self.replace(&feed, &docs).await?, &mut out);
                                seen.insert(path.clone(), stamp);
                            }
                            Err(e) => out
                                .problems
                                .push(format!("cannot read runbook {}: {e}", path.display())),
                        }
                    }
                    // Deleted files leave the index (also those deleted while toolgate was down).
                    for feed in self.index.feeds(files::RUNBOOK_FEED).await? {
                        if !current.contains(&feed) {
                            add(self.replace(&feed, &[]).await?, &mut out);
                        }
                    }
                    let paths: HashSet<&std::path::PathBuf> = list.iter().map(|(p, _)| p).collect();
                    seen.retain(|p, _| !p.starts_with(dir) || paths.contains(p));
                }
            }
        }
        for (file, kind, feed) in [
            (&self.config.backlog_file, Kind::Backlog, "backlog"),
            (&self.config.incidents_file, Kind::Incident, "incidents"),
        ] {
            let Some(path) = file else { continue };
            match files::stamp(path) {
                None => {
                    if seen.remove(path).is_some() || first {
                        add(self.replace(feed, &[]).await?, &mut out);
                    }
                }
                Some(stamp) if seen.get(path) == Some(&stamp) => {}
                Some(stamp) => {
                    let parsed = std::fs::read_to_string(path)
                        .map_err(|e| {
                            KnowledgeError::Feed(format!("cannot read {}: {e}", path.display()))
                        })
                        .and_then(|text| files::jsonl(path, &text, kind, files::millis(stamp.0)));
                    match parsed {
                        Ok(docs) => {
                            add(self.replace(feed, &docs).await?, &mut out);
                            seen.insert(path.clone(), stamp);
                        }
                        Err(e) => {
                            // Not remembered: the next poll tries again.
                            out.problems.push(e.to_string());
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Embeds documents that have no vector yet, in batches; stops at the first failure
    /// (the next poll tries again). Returns how many were embedded.
    pub async fn embed_missing(&self) -> Result<usize, KnowledgeError> {
        let Some(embedder) = &self.embedder else {
            return Ok(0);
        };
        let mut done = 0;
        let mut failed: HashSet<i64> = HashSet::new();
        loop {
            let batch: Vec<(i64, Document)> = self
                .index
                .without_vectors(64 + failed.len())
                .await?
                .into_iter()
                .filter(|(r, _)| !failed.contains(r))
                .take(64)
                .collect();
            if batch.is_empty() {
                return Ok(done);
            }
            let texts: Vec<String> = batch.iter().map(|(_, d)| d.embedding_text()).collect();
            let vectors = match embedder.embed(&texts).await {
                Ok(v) => v,
                Err(e) => return Err(KnowledgeError::Feed(e.to_string())),
            };
            for ((rowid, doc), values) in batch.into_iter().zip(vectors) {
                let Some(values) = search::unit(values) else {
                    failed.insert(rowid);
                    continue;
                };
                if self.index.set_vector(rowid, &doc.digest(), &values).await? {
                    if let Ok(mut v) = self.vectors.write()
                        && !v.insert(rowid, doc.kind, doc.tags, &values)
                    {
                        tracing::warn!(
                            rowid,
                            "knowledge: a vector of another length than the stored ones is not used"
                        );
                    }
                    done += 1;
                } else {
                    failed.insert(rowid);
                }
            }
        }
    }

    /// Applies the events of one message in order: documents put under their feed (runs of
    /// puts to one feed in one write), feeds dropped, incident facts merged into the
    /// incident's document, health changes into the subject's episode.
    pub async fn apply(&self, events: Vec<Event>) -> Result<(), KnowledgeError> {
        let mut run: Option<(String, Vec<Document>)> = None;
        for event in events {
            if let Event::Put { feed, doc } = event {
                match &mut run {
                    Some((f, docs)) if *f == feed => docs.push(doc),
                    _ => {
                        if let Some((f, docs)) = run.replace((feed, vec![doc])) {
                            self.index(&f, &docs).await?;
                        }
                    }
                }
                continue;
            }
            if let Some((f, docs)) = run.take() {
                self.index(&f, &docs).await?;
            }
            match event {
                Event::Put { .. } => {}
                Event::Drop { feed } => {
                    self.replace(&feed, &[]).await?;
                }
                Event::Incident(fact) => {
                    let doc = fact.document(self.index.get(&fact.id).await?);
                    self.index(&fact.feed(), &[doc]).await?;
                }
                Event::Health(change) => {
                    let feed = change.feed();
                    if let Some(doc) = change.episode(self.index.latest(&feed).await?) {
                        self.index(&feed, &[doc]).await?;
                    }
                }
            }
        }
        if let Some((f, docs)) = run {
            self.index(&f, &docs).await?;
        }
        Ok(())
    }

    /// Where the intents toolgate emits go in (alerts of the Alertmanager webhook and the
    /// Kubernetes watch, health changes of the watch and the ArgoCD poller): indexed by the
    /// task [`Knowledge::spawn`] starts. Never blocks the emitter: when 10,000 events wait,
    /// more are dropped (logged).
    pub fn intent_tap(&self) -> IntentTap {
        let tx = self.events_tx.clone();
        Arc::new(move |intent_type: &str, payload: &Value| {
            let now = jiff::Timestamp::now().as_millisecond();
            for event in events::from_envelope(intent_type, payload, now).unwrap_or_default() {
                if tx.try_send(event).is_err() {
                    tracing::warn!("knowledge: event queue full; an intent was not indexed");
                }
            }
        })
    }

    /// Background work until `shutdown`: index emitted intents as they come, read the topics,
    /// poll the files every `poll_interval`, embed what has no vector yet.
    pub fn spawn(self: &Arc<Self>, shutdown: CancellationToken) {
        let rx = self.events_rx.lock().ok().and_then(|mut r| r.take());
        if let Some(mut rx) = rx {
            let this = self.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    let first = tokio::select! {
                        _ = stop.cancelled() => break,
                        event = rx.recv() => match event { Some(e) => e, None => break },
                    };
                    let mut batch = vec![first];
                    while batch.len() < 500 {
                        match rx.try_recv() {
                            Ok(e) => batch.push(e),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = this.apply(batch).await {
                        tracing::warn!(error = %e, "knowledge: indexing emitted intents failed");
                    }
                    if let Err(e) = this.embed_missing().await {
                        tracing::debug!(error = %e, "knowledge: vectors wait for the embeddings endpoint");
                    }
                }
            });
        }
        if let (Some(config), Some(guard)) = (&self.config.topics, &self.topics) {
            topics::spawn(
                self.clone(),
                config.clone(),
                guard.clone(),
                shutdown.clone(),
            );
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.config.poll_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                match this.refresh().await {
                    Ok(r) => {
                        if r.written + r.removed > 0 {
                            tracing::info!(
                                written = r.written,
                                removed = r.removed,
                                "knowledge: files re-indexed"
                            );
                        }
                        for problem in r.problems {
                            tracing::warn!(problem = %problem, "knowledge: a feed file was not indexed");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "knowledge: refresh failed"),
                }
                if let Err(e) = this.embed_missing().await {
                    tracing::debug!(error = %e, "knowledge: vectors wait for the embeddings endpoint");
                }
            }
        });
    }
}
