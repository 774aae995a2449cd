//! Group commit for the audit log. Every allowed read appends one audit record, and each commit
//! of the store syncs to disk; committing one record per call serializes all calls behind one
//! sync each. Instead, appends go to one writer task that takes every record waiting at that
//! moment (up to [`MAX_BATCH`]) and commits them in one transaction with one sync.
//!
//! A deferred append (a read's, on a SQLite file: a commit without a sync, tens of
//! microseconds) that finds the writer's connection free commits right in the caller's task
//! instead, saving the two task wake-ups of handing it to the writer task and back. While the
//! connection is busy, appends queue for the writer as before, which commits them together.
//!
//! Still fail closed: [`AuditWriter::append`] returns only after the transaction holding its
//! record has committed, so a call's result is never given out before its audit record is
//! durable; if that transaction fails, every caller in the batch gets the error (and refuses
//! its call), and if the writer task is gone, appends fail.

use std::sync::Arc;

use tokio::sync::{Mutex, Notify, mpsc, oneshot};

use super::audit::{DEFERRED_SYNC_WITHIN, Durability, Tail};
use super::audit_file::AuditFile;
use super::{AuditEntry, AuditRecord, Store, StoreError};

/// Records committed together at most.
pub(crate) const MAX_BATCH: usize = 256;
/// Appends waiting for the writer at most; further callers wait for room (back-pressure).
const QUEUE: usize = 4096;

struct Job {
    entry: AuditEntry,
    durability: Durability,
    done: oneshot::Sender<Result<AuditRecord, String>>,
}

/// What appending needs, used by one appender at a time: the writer task, or a caller that
/// found it free.
struct Appender {
    file: Option<AuditFile>,
    /// Where the last append ended (`None`: read it from the database).
    tail: Option<Tail>,
    /// When the oldest record not yet synced was committed.
    unsynced_since: Option<tokio::time::Instant>,
}

impl Appender {
    /// Whether a sync is due now: enough records since the last checkpoint, or a deferred
    /// record older than [`DEFERRED_SYNC_WITHIN`].
    fn sync_due(&self) -> bool {
        self.file.as_ref().is_some_and(AuditFile::checkpoint_due)
            || self
                .unsynced_since
                .is_some_and(|since| since.elapsed() >= DEFERRED_SYNC_WITHIN)
    }

    /// Appends a batch and notes what it leaves unsynced.
    async fn append(
        &mut self,
        store: &Store,
        entries: &[AuditEntry],
        durability: Durability,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let records = append(store, &mut self.file, entries, durability, &mut self.tail).await?;
        self.unsynced_since = match durability {
            Durability::Synced => None,
            Durability::Deferred => self
                .unsynced_since
                .or_else(|| Some(tokio::time::Instant::now())),
        };
        Ok(records)
    }
}

/// State shared by the writer task and the senders.
struct Shared {
    appender: Mutex<Appender>,
    /// Wakes the writer when a caller's own append made a sync due or started the clock of
    /// one (a writer waiting for jobs would not see it otherwise).
    nudge: Notify,
}

/// The sending side, held by every clone of the [`Store`] that spawned it.
#[derive(Clone)]
pub(crate) struct AuditWriter {
    queue: mpsc::Sender<Job>,
    shared: Arc<Shared>,
    /// Whether a caller may commit a deferred append itself: only on a SQLite file's own
    /// connection, where such a commit runs in place (elsewhere it is a round trip that the
    /// writer's batching serves better).
    inline: bool,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditWriter")
    }
}

impl AuditWriter {
    /// Starts the writer task on the current runtime. `store` must not itself hold a writer;
    /// the task ends when the last `AuditWriter` clone is dropped. With `file` (a SQLite
    /// file's store), appends run on that connection of the writer's own; else on the pool.
    pub(crate) fn spawn(store: Store, file: Option<AuditFile>) -> AuditWriter {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let inline = file.is_some();
        let shared = Arc::new(Shared {
            appender: Mutex::new(Appender {
                file,
                tail: None,
                unsynced_since: None,
            }),
            nudge: Notify::new(),
        });
        tokio::spawn(run(store.clone(), shared.clone(), jobs));
        AuditWriter {
            queue,
            shared,
            inline,
        }
    }

    /// Appends `entry`; returns once it is committed (and synced, unless deferred).
    pub(crate) async fn append(
        &self,
        store: &Store,
        entry: AuditEntry,
        durability: Durability,
    ) -> Result<AuditRecord, StoreError> {
        if self.inline
            && durability == Durability::Deferred
            && !self.queue.is_closed()
            && let Ok(mut appender) = self.shared.appender.try_lock()
        {
            let was_unsynced = appender.unsynced_since.is_some();
            let mut records = appender
                .append(store, std::slice::from_ref(&entry), durability)
                .await?;
            if !was_unsynced || appender.sync_due() {
                self.shared.nudge.notify_one();
            }
            return records
                .pop()
                .ok_or_else(|| StoreError::Db("audit append wrote no record".into()));
        }
        let (done, result) = oneshot::channel();
        self.queue
            .send(Job {
                entry,
                durability,
                done,
            })
            .await
            .map_err(|_| StoreError::Db("the audit writer has stopped".into()))?;
        match result.await {
            Ok(Ok(record)) => Ok(record),
            Ok(Err(message)) => Err(StoreError::Db(message)),
            Err(_) => Err(StoreError::Db(
                "the audit writer stopped before committing the record".into(),
            )),
        }
    }
}

/// Syncs what deferred appends committed: a checkpoint on the writer's own connection, else
/// the store's.
async fn sync(store: &Store, file: &mut Option<AuditFile>) -> Result<(), StoreError> {
    match file {
        Some(file) => file.checkpoint().await,
        None => store.sync_deferred_audit().await,
    }
}

/// Appends a batch on the writer's own connection, else through the store's pool.
async fn append(
    store: &Store,
    file: &mut Option<AuditFile>,
    entries: &[AuditEntry],
    durability: Durability,
    tail: &mut Option<Tail>,
) -> Result<Vec<AuditRecord>, StoreError> {
    match file {
        // Closing the store ends appends too (readiness tests use it as an outage).
        Some(_) if store.pool.is_closed() => Err(StoreError::Db("the store is closed".into())),
        Some(file) => {
            file.append(&store.audit_key, entries, durability, tail)
                .await
        }
        None => store.append_audit_batch(entries, durability, tail).await,
    }
}

/// Syncs if a sync is due; a failed sync is retried a bound later.
async fn sync_if_due(store: &Store, appender: &mut Appender) {
    if !appender.sync_due() {
        return;
    }
    match sync(store, &mut appender.file).await {
        Ok(()) => appender.unsynced_since = None,
        Err(e) => {
            tracing::warn!(error = %e, "syncing deferred audit records failed; retrying");
            if appender.unsynced_since.is_some() {
                appender.unsynced_since = Some(tokio::time::Instant::now());
            }
        }
    }
}

/// Takes every waiting append (up to [`MAX_BATCH`]) and writes them in one statement. A batch
/// is deferred only if all of its records are; after a deferred batch (the writer's or a
/// caller's own), a sync follows within [`DEFERRED_SYNC_WITHIN`] unless a synced commit (which
/// syncs all before it) comes first.
async fn run(store: Store, shared: Arc<Shared>, mut jobs: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        // Due even when appends never pause (a busy writer never times out below). The
        // writer's own connection also checkpoints after enough records.
        let deadline = {
            let mut appender = shared.appender.lock().await;
            sync_if_due(&store, &mut appender).await;
            appender
                .unsynced_since
                .map(|since| since + DEFERRED_SYNC_WITHIN)
        };
        let received = tokio::select! {
            n = jobs.recv_many(&mut batch, MAX_BATCH) => n,
            () = shared.nudge.notified() => continue,
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => continue,
        };
        if received == 0 {
            break;
        }
        let durability = if batch.iter().all(|j| j.durability == Durability::Deferred) {
            Durability::Deferred
        } else {
            Durability::Synced
        };
        let (entries, waiters): (Vec<AuditEntry>, Vec<_>) =
            batch.drain(..).map(|j| (j.entry, j.done)).unzip();
        let appended = shared
            .appender
            .lock()
            .await
            .append(&store, &entries, durability)
            .await;
        match appended {
            Ok(records) => {
                for (done, record) in waiters.into_iter().zip(records) {
                    let _ = done.send(Ok(record));
                }
            }
            Err(e) => {
                // StoreError's Display starts with "store: "; keep the cause only.
                let message = match e {
                    StoreError::Db(m)
                    | StoreError::Corrupt(m)
                    | StoreError::Url(m)
                    | StoreError::AuditKey(m) => m,
                };
                for done in waiters {
                    let _ = done.send(Err(message.clone()));
                }
            }
        }
    }
    let mut appender = shared.appender.lock().await;
    if appender.unsynced_since.is_some() {
        let _ = sync(&store, &mut appender.file).await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::audit::tests::entry;
    use super::super::test_support::sqlite;
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_each_get_their_own_record_in_one_valid_chain() {
        let (store, _dir) = sqlite().await;
        let mut tasks = Vec::new();
        for i in 0..64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                (i, store.append_audit(&entry(i)).await)
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            let (i, record) = t.await.expect("task");
            let record = record.expect("append");
            assert_eq!(
                record.entry.at_ms,
                entry(i).at_ms,
                "the caller's own record"
            );
            seqs.push(record.seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=64).collect::<Vec<i64>>());
        let report = store.audit_verify().await.expect("verify");
        assert_eq!(report.records, 64);
        assert!(report.first_broken.is_none(), "{:?}", report.first_broken);
    }

    async fn synchronous(store: &Store) -> i64 {
        let row = sqlx::query("PRAGMA synchronous")
            .fetch_one(&store.pool)
            .await
            .expect("pragma");
        sqlx::Row::try_get::<i64, _>(&row, 0).expect("level")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deferred_and_synced_appends_share_one_chain_and_leave_the_connection_syncing() {
        let (store, _dir) = sqlite().await;
        assert_eq!(synchronous(&store).await, 2, "FULL to begin with");
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                if i % 3 == 0 {
                    store.append_audit(&entry(i)).await
                } else {
                    store.append_read_audit(&entry(i)).await
                }
            }));
        }
        for t in tasks {
            t.await.expect("task").expect("append");
        }
        // FULL again after the deferred statements, so approvals and decisions sync.
        assert_eq!(synchronous(&store).await, 2);
        let report = store.audit_verify().await.expect("verify");
        assert_eq!(report.records, 40);
        assert!(report.first_broken.is_none(), "{:?}", report.first_broken);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_appended_by_another_process_is_followed_not_overwritten() {
        let (store, dir) = sqlite().await;
        store.append_read_audit(&entry(0)).await.expect("first");
        // Another process on the same file (the writer's remembered tail is now stale).
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let other = Store::connect(&url).await.expect("second store");
        let theirs = other.append_audit(&entry(1)).await.expect("theirs");
        assert_eq!(theirs.seq, 2);
        let ours = store.append_read_audit(&entry(2)).await.expect("ours");
        assert_eq!(
            ours.seq, 3,
            "the conflict made the writer read the tail again"
        );
        assert_eq!(ours.prev_hash, theirs.hash);
        let report = store.audit_verify().await.expect("verify");
        assert_eq!(report.records, 3);
        assert!(report.first_broken.is_none(), "{:?}", report.first_broken);
    }

    // One runtime thread, so the writer task cannot run while the append is polled.
    #[tokio::test]
    async fn a_read_on_an_idle_writer_commits_in_its_callers_first_poll() {
        use futures::FutureExt;
        let (store, _dir) = sqlite().await;
        let first = store
            .append_read_audit(&entry(0))
            .now_or_never()
            .expect("committed without waiting for the writer task")
            .expect("append");
        assert_eq!(first.seq, 1);
        // A synced record still goes through the writer (its sync runs off the runtime).
        let second = entry(1);
        let synced = store.append_audit(&second);
        tokio::pin!(synced);
        assert!(
            (&mut synced).now_or_never().is_none(),
            "queued for the writer"
        );
        let synced = synced.await.expect("append");
        assert_eq!(synced.seq, 2);
        assert_eq!(synced.prev_hash, first.hash);
        let report = store.audit_verify().await.expect("verify");
        assert_eq!(report.records, 2);
        assert!(report.first_broken.is_none(), "{:?}", report.first_broken);
    }

    // The append commits in its caller (the writer is idle), so only the caller's nudge can
    // start the writer's clock for the sync.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deferred_records_are_synced_within_the_bound() {
        let (store, dir) = sqlite().await;
        let db = dir.path().join("store.db");
        let marker = "deferred-marker-5f1e";
        let mut e = entry(0);
        e.trace_id = Some(marker.into());
        store.append_read_audit(&e).await.expect("append");
        // Committed into the WAL; the database file gets it at the checkpoint, which syncs the
        // WAL first.
        assert!(
            holds(&dir.path().join("store.db-wal"), marker),
            "committed to the WAL"
        );
        assert!(!holds(&db, marker), "not yet checkpointed");
        // Due after DEFERRED_SYNC_WITHIN; polled with slack for a loaded machine. Nothing else
        // checkpoints this WAL (far below SQLite's 1000-page automatic checkpoint).
        let deadline = std::time::Instant::now() + DEFERRED_SYNC_WITHIN * 4;
        while !holds(&db, marker) && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(
            holds(&db, marker),
            "checkpointed (and so synced) after the bound"
        );
    }

    /// Whether the file at `path` holds `marker`.
    fn holds(path: &std::path::Path, marker: &str) -> bool {
        std::fs::read(path)
            .map(|b| b.windows(marker.len()).any(|w| w == marker.as_bytes()))
            .unwrap_or(false)
    }

    // One runtime thread: had the writer waited for the lock in place, nothing else would run.
    #[tokio::test]
    async fn an_append_waits_for_another_writers_lock_off_the_runtime_then_commits() {
        let (store, dir) = sqlite().await;
        store.append_read_audit(&entry(0)).await.expect("first");
        let holder = rusqlite::Connection::open(dir.path().join("store.db")).expect("open");
        holder.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let pending = tokio::spawn({
            let store = store.clone();
            async move { store.append_read_audit(&entry(1)).await }
        });
        let started = std::time::Instant::now();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "the runtime kept running while the append waited: {:?}",
            started.elapsed()
        );
        assert!(!pending.is_finished(), "the append waits for the lock");
        holder.execute_batch("COMMIT").expect("unlock");
        let record = pending.await.expect("task").expect("append");
        assert_eq!(record.seq, 2);
        let report = store.audit_verify().await.expect("verify");
        assert_eq!(report.records, 2);
        assert!(report.first_broken.is_none(), "{:?}", report.first_broken);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writers_connection_checkpoints_after_enough_records() {
        let (store, dir) = sqlite().await;
        let db = dir.path().join("store.db");
        let marker = "first-record-marker-8c2d";
        let mut first = entry(0);
        first.trace_id = Some(marker.into());
        // Synced appends start no timed sync, so only the count of records can checkpoint.
        store.append_audit(&first).await.expect("first");
        assert!(
            holds(&dir.path().join("store.db-wal"), marker),
            "in the WAL"
        );
        assert!(!holds(&db, marker), "not yet checkpointed");
        let tasks: Vec<_> = (1..=super::super::audit_file::CHECKPOINT_EVERY as i64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.append_audit(&entry(i)).await })
            })
            .collect();
        for t in tasks {
            t.await.expect("task").expect("append");
        }
        // The checkpoint runs after the batch that reached the count; polled with slack.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !holds(&db, marker) && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(holds(&db, marker), "checkpointed into the database file");
    }

    #[tokio::test]
    async fn appends_fail_when_the_commit_fails() {
        let (store, _dir) = sqlite().await;
        store.append_audit(&entry(0)).await.expect("first append");
        store.pool.close().await;
        let waiting: Vec<_> = (1..4)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.append_audit(&entry(i)).await })
            })
            .collect();
        for w in waiting {
            let err = w.await.expect("task").expect_err("nothing is committed");
            assert!(err.to_string().starts_with("store: "), "{err}");
        }
    }
}
