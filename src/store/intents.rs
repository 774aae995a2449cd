//! The intents outbox and the dedup records of inbound signals. Owns the `intent_outbox` and
//! `intent_dedup` rows only; envelopes are opaque JSON text here (the store does not know
//! intent types).
//!
//! An inbound batch is one transaction: dedup keys are upserted (a key counts as new when absent
//! or expired), and the intents of the new keys are appended to the outbox, so a crash can never
//! leave a key recorded without its intents or intents without their key. Outbox `seq` is
//! `MAX(seq) + 1` under the database write lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL an advisory
//! transaction lock), so seq order is commit order and the publisher can deliver in that order.

use std::collections::HashSet;

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Store, StoreError};

/// Advisory lock id serializing outbox appends across replicas (ASCII "tg-intnt").
const PG_OUTBOX_LOCK: i64 = 0x7467_2d69_6e74_6e74;
/// Rows per multi-row statement (parameters stay far below SQLite's and PostgreSQL's limits).
const CHUNK: usize = 100;

/// One intent to append; `envelope` is the serialized JSON envelope.
#[derive(Debug, Clone)]
pub struct NewIntent {
    pub id: String,
    pub idempotency_key: String,
    pub intent_type: String,
    pub correlation_id: String,
    pub envelope: String,
}

/// An inbound item: its dedup key (valid `window_ms` from now, recorded under `source`) and the
/// intents it causes when the key is new.
#[derive(Debug, Clone)]
pub struct DedupItem {
    pub dedup_key: String,
    pub source: String,
    pub window_ms: i64,
    pub intents: Vec<NewIntent>,
}

/// What [`Store::ingest_deduplicated`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestOutcome {
    /// Items whose key was new (or expired): their intents were written.
    pub new: usize,
    /// Items whose key was seen inside the window (or twice in this batch): dropped.
    pub duplicates: usize,
    /// Intents appended to the outbox.
    pub intents: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IntentRecord {
    pub seq: i64,
    pub id: String,
    pub idempotency_key: String,
    pub intent_type: String,
    pub correlation_id: String,
    pub envelope: Value,
    pub created_at_ms: i64,
    /// `pending` | `sent`
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The sink that took it (`nats`, `log`) once sent.
    pub sink: Option<String>,
    pub sent_at_ms: Option<i64>,
}

macro_rules! select_outbox {
    ($rest:literal) => {
        concat!(
            "SELECT seq, id, idempotency_key, intent_type, correlation_id, envelope, \
             created_at_ms, state, attempts, last_error, sink, sent_at_ms FROM intent_outbox ",
            $rest
        )
    };
}

impl Store {
    /// Records the dedup keys of `items` and appends the intents of every item whose key is new
    /// or expired, in one transaction. Returns, per item, whether it was new (a key repeated
    /// within `items` is new at its first occurrence only).
    pub async fn ingest_deduplicated(
        &self,
        items: &[DedupItem],
        now_ms: i64,
    ) -> Result<Vec<bool>, StoreError> {
        // A key twice in one batch is a duplicate (and PostgreSQL refuses to upsert a row twice
        // in one statement).
        let mut seen = HashSet::with_capacity(items.len());
        let first: Vec<bool> = items
            .iter()
            .map(|item| seen.insert(item.dedup_key.as_str()))
            .collect();
        let unique: Vec<&DedupItem> = items
            .iter()
            .zip(&first)
            .filter(|(_, first)| **first)
            .map(|(item, _)| item)
            .collect();
        if unique.is_empty() {
            return Ok(vec![false; items.len()]);
        }
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
                .bind(PG_OUTBOX_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let mut fresh: HashSet<String> = HashSet::with_capacity(unique.len());
        for chunk in unique.chunks(CHUNK) {
            let mut sql = String::from(
                "INSERT INTO intent_dedup (dedup_key, source, seen_at_ms, expires_at_ms) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                let b = i * 4;
                sql.push_str(&format!("(${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4));
            }
            sql.push_str(&format!(
                " ON CONFLICT (dedup_key) DO UPDATE SET source = excluded.source, \
                 seen_at_ms = excluded.seen_at_ms, expires_at_ms = excluded.expires_at_ms \
                 WHERE intent_dedup.expires_at_ms <= ${} RETURNING dedup_key",
                chunk.len() * 4 + 1
            ));
            // Only `$n` placeholders are generated; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for item in chunk {
                query = query
                    .bind(item.dedup_key.as_str())
                    .bind(item.source.as_str())
                    .bind(now_ms)
                    .bind(now_ms.saturating_add(item.window_ms));
            }
            query = query.bind(now_ms);
            for row in query.fetch_all(&mut *tx).await? {
                fresh.insert(row.try_get::<String, _>("dedup_key")?);
            }
        }
        let intents: Vec<&NewIntent> = unique
            .iter()
            .filter(|item| fresh.contains(&item.dedup_key))
            .flat_map(|item| item.intents.iter())
            .collect();
        if !intents.is_empty() {
            append(&mut tx, &intents, now_ms).await?;
        }
        tx.commit().await?;
        Ok(items
            .iter()
            .zip(first)
            .map(|(item, first)| first && fresh.contains(&item.dedup_key))
            .collect())
    }

    /// The oldest pending intents, in delivery order.
    pub async fn pending_intents(&self, limit: i64) -> Result<Vec<IntentRecord>, StoreError> {
        let rows = sqlx::query(select_outbox!(
            "WHERE state = 'pending' ORDER BY seq LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(intent_from_row).collect()
    }

    /// Intents for `toolgate intents list`: newest `limit`, printed oldest first.
    pub async fn list_intents(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<IntentRecord>, StoreError> {
        let rows = match state {
            Some(state) => {
                sqlx::query(select_outbox!(
                    "WHERE state = $1 ORDER BY seq DESC LIMIT $2"
                ))
                .bind(state)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(select_outbox!("ORDER BY seq DESC LIMIT $1"))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut out: Vec<IntentRecord> =
            rows.iter().map(intent_from_row).collect::<Result<_, _>>()?;
        out.reverse();
        Ok(out)
    }

    /// Counts by state: (pending, sent).
    pub async fn count_intents(&self) -> Result<(i64, i64), StoreError> {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM intent_outbox WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        let sent: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM intent_outbox WHERE state = 'sent'")
                .fetch_one(&self.pool)
                .await?;
        Ok((pending, sent))
    }

    /// Marks pending intents with `from_seq <= seq <= to_seq` as taken by `sink`.
    pub async fn mark_intents_sent(
        &self,
        from_seq: i64,
        to_seq: i64,
        sink: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE intent_outbox SET state = 'sent', sink = $1, sent_at_ms = $2, last_error = NULL \
             WHERE state = 'pending' AND seq >= $3 AND seq <= $4",
        )
        .bind(sink)
        .bind(now_ms)
        .bind(from_seq)
        .bind(to_seq)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Counts a failed delivery attempt of one intent and keeps the (already redacted) reason.
    pub async fn record_intent_failure(&self, seq: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE intent_outbox SET attempts = attempts + 1, last_error = $1 WHERE seq = $2",
        )
        .bind(error)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes `sent` outbox rows sent before `sent_before_ms`, at most `batch` per statement,
    /// until a statement deletes fewer; returns how many. Pending rows are never touched, and
    /// the newest row is always kept, so the next seq (`MAX(seq) + 1`) never goes back.
    pub async fn prune_sent_intents(
        &self,
        sent_before_ms: i64,
        batch: i64,
    ) -> Result<u64, StoreError> {
        super::retention::in_batches(batch, |limit| async move {
            let done = sqlx::query(
                "DELETE FROM intent_outbox WHERE seq IN (SELECT seq FROM intent_outbox \
                 WHERE state = 'sent' AND sent_at_ms < $1 \
                 AND seq < (SELECT MAX(seq) FROM intent_outbox) ORDER BY seq LIMIT $2)",
            )
            .bind(sent_before_ms)
            .bind(limit)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    /// Deletes dedup records that expired before `now_ms`.
    pub async fn prune_dedup(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM intent_dedup WHERE expires_at_ms < $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Appends intents after the current last seq (caller holds the write lock).
async fn append(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    intents: &[&NewIntent],
    now_ms: i64,
) -> Result<(), StoreError> {
    let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM intent_outbox")
        .fetch_one(&mut **tx)
        .await?;
    let mut next = last + 1;
    for chunk in intents.chunks(CHUNK) {
        let mut sql = String::from(
            "INSERT INTO intent_outbox (seq, id, idempotency_key, intent_type, correlation_id, \
             envelope, created_at_ms, state, attempts) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            let b = i * 7;
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, 'pending', 0)",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            ));
        }
        // Only `$n` placeholders are generated; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for intent in chunk {
            query = query
                .bind(next)
                .bind(intent.id.as_str())
                .bind(intent.idempotency_key.as_str())
                .bind(intent.intent_type.as_str())
                .bind(intent.correlation_id.as_str())
                .bind(intent.envelope.as_str())
                .bind(now_ms);
            next += 1;
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

fn intent_from_row(row: &AnyRow) -> Result<IntentRecord, StoreError> {
    let envelope: String = row.try_get("envelope")?;
    Ok(IntentRecord {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        idempotency_key: row.try_get("idempotency_key")?,
        intent_type: row.try_get("intent_type")?,
        correlation_id: row.try_get("correlation_id")?,
        envelope: serde_json::from_str(&envelope)
            .map_err(|e| StoreError::Corrupt(format!("intent envelope: {e}")))?,
        created_at_ms: row.try_get("created_at_ms")?,
        state: row.try_get("state")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        sink: row.try_get("sink")?,
        sent_at_ms: row.try_get("sent_at_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::sqlite;
    use super::*;

    fn item(key: &str, n: usize) -> DedupItem {
        DedupItem {
            dedup_key: key.to_string(),
            source: "am".to_string(),
            window_ms: 500,
            intents: (0..n)
                .map(|i| NewIntent {
                    id: format!("{key}-{i}"),
                    idempotency_key: format!("{key}/{i}"),
                    intent_type: "IngestAlertRequested".to_string(),
                    correlation_id: key.to_string(),
                    envelope: format!("{{\"n\":{i}}}"),
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn duplicates_inside_the_window_are_dropped_and_expired_keys_count_again() {
        let (store, _dir) = sqlite().await;
        let out = store
            .ingest_deduplicated(&[item("a", 2), item("b", 1), item("a", 2)], 1_000)
            .await
            .expect("ingest");
        assert_eq!(out, [true, true, false]);
        // Inside the window: nothing new.
        let out = store
            .ingest_deduplicated(&[item("a", 2), item("c", 1)], 1_400)
            .await
            .expect("ingest");
        assert_eq!(out, [false, true]);
        // After the window, `a` is new again.
        let out = store
            .ingest_deduplicated(&[item("a", 2)], 1_600)
            .await
            .expect("ingest");
        assert_eq!(out, [true]);
        let pending = store.pending_intents(100).await.expect("pending");
        let seqs: Vec<i64> = pending.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
        assert_eq!(pending[0].idempotency_key, "a/0");
        assert_eq!(pending[2].idempotency_key, "b/0");
        assert_eq!(pending[3].idempotency_key, "c/0");
        assert_eq!(pending[0].envelope["n"], 0);
    }

    #[tokio::test]
    async fn sent_marks_a_range_and_failures_are_counted() {
        let (store, _dir) = sqlite().await;
        let items: Vec<DedupItem> = (0..250).map(|i| item(&format!("k{i}"), 1)).collect();
        let out = store.ingest_deduplicated(&items, 1).await.expect("ingest");
        assert!(out.iter().all(|new| *new));
        store
            .record_intent_failure(1, "nats: connection refused")
            .await
            .expect("failure");
        assert_eq!(
            store
                .mark_intents_sent(1, 100, "nats", 5)
                .await
                .expect("mark"),
            100
        );
        assert_eq!(store.count_intents().await.expect("count"), (150, 100));
        let pending = store.pending_intents(1).await.expect("pending");
        assert_eq!(pending[0].seq, 101);
        let sent = store.list_intents(Some("sent"), 2).await.expect("list");
        assert_eq!(
            sent.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![99, 100]
        );
        let first = store.list_intents(Some("sent"), 100).await.expect("list");
        assert_eq!(first[0].attempts, 1);
        assert_eq!(first[0].last_error, None, "cleared once sent");
        assert_eq!(first[0].sink.as_deref(), Some("nats"));
        assert_eq!(store.prune_dedup(1_000).await.expect("prune"), 250);
    }
}
