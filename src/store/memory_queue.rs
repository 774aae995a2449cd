//! The memory queue: adds made while Cognee was down, kept until Cognee accepted them. Owns the
//! `memory_queue` rows only; documents are opaque JSON text here. `seq` is `MAX(seq) + 1` under
//! the write lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL an advisory transaction lock), so seq
//! order is the order the adds were made and replay keeps it.

use sqlx::Row;

use super::{Backend, Store, StoreError, now_ms};

/// Advisory lock id serializing queue appends across replicas (ASCII "tg-memqu").
const PG_QUEUE_LOCK: i64 = 0x7467_2d6d_656d_7175;

/// One queued add as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryQueueRow {
    pub seq: i64,
    pub dataset: String,
    /// JSON text, as the adapter wrote it.
    pub documents: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

impl Store {
    /// Append an add; returns its seq.
    pub async fn enqueue_memory_add(
        &self,
        dataset: &str,
        documents: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
                .bind(PG_QUEUE_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM memory_queue")
            .fetch_one(&mut *tx)
            .await?;
        let seq = last + 1;
        sqlx::query(
            "INSERT INTO memory_queue (seq, dataset, documents, created_at_ms, state, attempts) \
             VALUES ($1, $2, $3, $4, 'pending', 0)",
        )
        .bind(seq)
        .bind(dataset)
        .bind(documents)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// The oldest pending adds, in order.
    pub async fn pending_memory_adds(&self, limit: i64) -> Result<Vec<MemoryQueueRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, dataset, documents, attempts, last_error FROM memory_queue \
             WHERE state = 'pending' ORDER BY seq LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MemoryQueueRow {
                    seq: r.try_get("seq")?,
                    dataset: r.try_get("dataset")?,
                    documents: r.try_get("documents")?,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Cognee accepted this add. A row already done stays as it is.
    pub async fn mark_memory_add_done(&self, seq: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE memory_queue SET state = 'done', done_at_ms = $1, last_error = NULL \
             WHERE seq = $2 AND state = 'pending'",
        )
        .bind(now_ms())
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Counts a failed replay of one add and keeps the reason.
    pub async fn record_memory_add_failure(&self, seq: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE memory_queue SET attempts = attempts + 1, last_error = $1 WHERE seq = $2",
        )
        .bind(error)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes replayed rows done before `done_before_ms`, at most `batch` per statement, until a
    /// statement deletes fewer; returns how many. Pending rows are never touched, and the newest
    /// row is always kept, so the next seq (`MAX(seq) + 1`) never goes back.
    pub async fn prune_done_memory_adds(
        &self,
        done_before_ms: i64,
        batch: i64,
    ) -> Result<u64, StoreError> {
        super::retention::in_batches(batch, |limit| async move {
            let done = sqlx::query(
                "DELETE FROM memory_queue WHERE seq IN (SELECT seq FROM memory_queue \
                 WHERE state = 'done' AND done_at_ms < $1 \
                 AND seq < (SELECT MAX(seq) FROM memory_queue) ORDER BY seq LIMIT $2)",
            )
            .bind(done_before_ms)
            .bind(limit)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    /// (pending, done, the last error of the oldest pending add).
    pub async fn count_memory_adds(&self) -> Result<(i64, i64, Option<String>), StoreError> {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM memory_queue WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        let done: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM memory_queue WHERE state = 'done'")
                .fetch_one(&self.pool)
                .await?;
        let last_error: Option<String> = sqlx::query_scalar(
            "SELECT last_error FROM memory_queue WHERE state = 'pending' ORDER BY seq LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        Ok((pending, done, last_error))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;

    #[tokio::test]
    async fn adds_come_back_in_order_and_once() {
        let store = Store::connect("sqlite::memory:").await.expect("store");
        let a = store.enqueue_memory_add("d", "[1]").await.expect("a");
        let b = store.enqueue_memory_add("d", "[2]").await.expect("b");
        assert!(b > a);
        let pending = store.pending_memory_adds(10).await.expect("pending");
        assert_eq!(
            pending
                .iter()
                .map(|r| r.documents.as_str())
                .collect::<Vec<_>>(),
            vec!["[1]", "[2]"]
        );
        store
            .record_memory_add_failure(a, "Cognee is unavailable: cannot connect")
            .await
            .expect("failure");
        assert_eq!(
            store.count_memory_adds().await.expect("counts"),
            (2, 0, Some("Cognee is unavailable: cannot connect".into()))
        );
        store.mark_memory_add_done(a).await.expect("done");
        store
            .mark_memory_add_done(a)
            .await
            .expect("done twice is harmless");
        let pending = store.pending_memory_adds(10).await.expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].seq, b);
        assert_eq!(
            store.count_memory_adds().await.expect("counts"),
            (1, 1, None)
        );
    }
}
