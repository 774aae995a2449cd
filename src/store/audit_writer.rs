//! Group commit for the audit log. Every allowed read appends one audit record, and each commit
//! of the store syncs to disk; committing one record per call serializes all calls behind one
//! sync each. Instead, appends go to one writer task that takes every record waiting at that
//! moment (up to [`MAX_BATCH`]) and commits them in one transaction with one sync.
//!
//! Still fail closed: [`AuditWriter::append`] returns only after the transaction holding its
//! record has committed, so a call's result is never given out before its audit record is
//! durable; if that transaction fails, every caller in the batch gets the error (and refuses
//! its call), and if the writer task is gone, appends fail.

use tokio::sync::{mpsc, oneshot};

use super::{AuditEntry, AuditRecord, Store, StoreError};

/// Records committed together at most.
pub(crate) const MAX_BATCH: usize = 256;
/// Appends waiting for the writer at most; further callers wait for room (back-pressure).
const QUEUE: usize = 4096;

struct Job {
    entry: AuditEntry,
    done: oneshot::Sender<Result<AuditRecord, String>>,
}

/// The sending side, held by every clone of the [`Store`] that spawned it.
#[derive(Clone)]
pub(crate) struct AuditWriter {
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditWriter")
    }
}

impl AuditWriter {
    /// Starts the writer task on the current runtime. `store` must not itself hold a writer;
    /// the task ends when the last `AuditWriter` clone is dropped.
    pub(crate) fn spawn(store: Store) -> AuditWriter {
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, jobs));
        AuditWriter { queue }
    }

    /// Appends `entry`; returns once it is committed.
    pub(crate) async fn append(&self, entry: AuditEntry) -> Result<AuditRecord, StoreError> {
        let (done, result) = oneshot::channel();
        self.queue
            .send(Job { entry, done })
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

async fn run(store: Store, mut jobs: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (entries, waiters): (Vec<AuditEntry>, Vec<_>) =
            batch.drain(..).map(|j| (j.entry, j.done)).unzip();
        match store.append_audit_batch(&entries).await {
            Ok(records) => {
                for (done, record) in waiters.into_iter().zip(records) {
                    let _ = done.send(Ok(record));
                }
            }
            Err(e) => {
                // StoreError's Display starts with "store: "; keep the cause only.
                let message = match e {
                    StoreError::Db(m) | StoreError::Corrupt(m) | StoreError::Url(m) => m,
                };
                for done in waiters {
                    let _ = done.send(Err(message.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::audit::tests::entry;
    use super::super::test_support::sqlite;

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
