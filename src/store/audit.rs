//! The audit log: append-only records, each holding the SHA-256 of the previous one (a hash
//! chain), so an edited or deleted record is found by `audit_verify`. Owns the `audit` rows only.
//!
//! hash = sha256(prev_hash_hex || canonical JSON of {seq, entry fields}). Canonical JSON here is
//! compact with object keys sorted at every depth, written by `canonical_json` rather than relying
//! on serde_json's `Map` order, which turns into insertion order if any crate in the build enables
//! serde_json's `preserve_order` feature. `args` is stored as its canonical text and hashed from
//! that text, so verification never depends on re-parsing numbers.
//!
//! Appends are serialized so that seq and prev_hash are read and written atomically: on
//! PostgreSQL by `pg_advisory_xact_lock` inside the transaction (replicas share the chain), on
//! SQLite by `BEGIN IMMEDIATE` (the database write lock). The seq primary key is the backstop.

use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{AuditEntry, AuditRecord, Backend, BrokenLink, Store, StoreError, VerifyReport};

/// prev_hash of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Advisory lock id serializing audit appends across replicas (ASCII "tg-audit").
const PG_AUDIT_LOCK: i64 = 0x7467_2d61_7564_6974;
/// Rows read per round trip by `audit_verify`, so a long log is never held in memory at once.
const VERIFY_BATCH: i64 = 1_000;

const SELECT_TAIL: &str = "SELECT seq, at_ms, principal_sub, principal_name, transport, tool, \
     args, decision, rule, approval_id, result_summary, trace_id, prev_hash, hash FROM audit \
     ORDER BY seq DESC LIMIT $1";
const SELECT_FOR_APPROVAL: &str = "SELECT seq, at_ms, principal_sub, principal_name, transport, \
     tool, args, decision, rule, approval_id, result_summary, trace_id, prev_hash, hash FROM audit \
     WHERE approval_id = $1 ORDER BY seq";
const SELECT_AFTER: &str = "SELECT seq, at_ms, principal_sub, principal_name, transport, tool, \
     args, decision, rule, approval_id, result_summary, trace_id, prev_hash, hash FROM audit \
     WHERE seq > $1 ORDER BY seq LIMIT $2";

/// When a committed audit record must be on disk.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Synced to disk before the append returns (one fsync per commit, shared by a batch).
    #[default]
    Synced,
    /// Committed before the append returns, so it survives a crash of toolgate, and in the
    /// chain; synced to disk by the next synced commit or within [`DEFERRED_SYNC_WITHIN`]. A
    /// power loss or kernel crash can lose that last second of records (never a record in the
    /// middle of the chain: the loss is always a suffix). SQLite: the commit runs with
    /// `synchronous=NORMAL` (WAL); PostgreSQL: `synchronous_commit = off`.
    Deferred,
}

/// A deferred record is on disk this long after its commit at the latest (SQLite; PostgreSQL's
/// WAL writer flushes within three `wal_writer_delay`s, 600 ms by default).
pub const DEFERRED_SYNC_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// The end of the chain: seq and hash of the newest record.
pub(crate) type Tail = (i64, String);

const COLUMNS: &str = "seq, at_ms, principal_sub, principal_name, transport, tool, args, \
     decision, rule, approval_id, result_summary, trace_id, prev_hash, hash";
const COLUMN_COUNT: usize = 14;

/// `INSERT INTO audit (…) VALUES ($1, …, $14), ($15, …)` for `rows` records: one statement, so
/// the batch is one round trip and, on SQLite, atomic without an explicit transaction.
fn insert_sql(rows: usize) -> String {
    let mut sql = format!("INSERT INTO audit ({COLUMNS}) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..COLUMN_COUNT {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * COLUMN_COUNT + c + 1));
        }
        sql.push(')');
    }
    sql
}

/// Records for `entries` following `tail`, with their canonical args texts.
fn chain(
    entries: &[AuditEntry],
    tail: &Tail,
) -> Result<(Vec<AuditRecord>, Vec<String>), StoreError> {
    let (mut seq, mut prev_hash) = tail.clone();
    let mut records = Vec::with_capacity(entries.len());
    let mut texts = Vec::with_capacity(entries.len());
    for e in entries {
        let args = canonical_json(&e.args)?;
        seq += 1;
        let hash = chain_hash(&prev_hash, seq, &Fields::of(e, &args))?;
        records.push(AuditRecord {
            seq,
            entry: e.clone(),
            prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
            hash,
        });
        texts.push(args);
    }
    Ok((records, texts))
}

/// The INSERT of `records`, bound; `sql` is [`insert_sql`] (or statements around it), built
/// from constant text and placeholder numbers only, never from values.
fn bind_insert<'q>(
    sql: String,
    records: &'q [AuditRecord],
    texts: &'q [String],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (r, args) in records.iter().zip(texts) {
        let e = &r.entry;
        q = q
            .bind(r.seq)
            .bind(e.at_ms)
            .bind(e.principal_sub.as_str())
            .bind(e.principal_name.as_str())
            .bind(e.transport.as_str())
            .bind(e.tool.as_str())
            .bind(args.as_str())
            .bind(e.decision.as_str())
            .bind(e.rule.as_deref())
            .bind(e.approval_id.as_deref())
            .bind(e.result_summary.as_deref())
            .bind(e.trace_id.as_deref())
            .bind(r.prev_hash.as_str())
            .bind(r.hash.as_str());
    }
    q
}

async fn read_tail<'e, E>(executor: E) -> Result<Tail, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let last = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        .fetch_optional(executor)
        .await?;
    Ok(match last {
        Some(row) => (
            row.try_get::<i64, _>("seq")?,
            row.try_get::<String, _>("hash")?,
        ),
        None => (0, GENESIS.to_string()),
    })
}

impl Store {
    /// Appends one record at the end of the chain and returns once it is committed and synced
    /// to disk. Appends of concurrent callers are written together (group commit, see
    /// [`super::audit_writer`]): one statement and one sync for many records. Any failure is an
    /// error: the caller fails closed rather than act without an audit record.
    pub async fn append_audit(&self, e: &AuditEntry) -> Result<AuditRecord, StoreError> {
        self.append_audit_as(e, Durability::Synced).await
    }

    /// Appends the record of a read (a call that changed nothing) with the durability
    /// `store.read_audit_durability` names (deferred unless configured otherwise): committed,
    /// in the chain and safe from a crash of toolgate before the answer, on disk within a
    /// second. Every other record is synced before anything acts on it.
    pub async fn append_read_audit(&self, e: &AuditEntry) -> Result<AuditRecord, StoreError> {
        self.append_audit_as(e, self.read_audit).await
    }

    async fn append_audit_as(
        &self,
        e: &AuditEntry,
        durability: Durability,
    ) -> Result<AuditRecord, StoreError> {
        match &self.audit_writer {
            Some(writer) => writer.append(e.clone(), durability).await,
            None => {
                let mut records = self
                    .append_audit_batch(std::slice::from_ref(e), durability, &mut None)
                    .await?;
                records
                    .pop()
                    .ok_or_else(|| StoreError::Db("audit append wrote no record".into()))
            }
        }
    }

    /// Appends records in order at the end of the chain in one statement: all or none.
    ///
    /// PostgreSQL: in a transaction under the advisory lock, reading the tail there (replicas
    /// share the chain). SQLite: `tail` is where this process's last append ended (`None`: read
    /// it); the store's one connection serializes appends inside the process, and a record
    /// appended by another process on the same file shows as a seq conflict, after which the
    /// tail is read again and the batch retried once. `tail` is left at the new end on success
    /// and cleared on failure.
    pub(crate) async fn append_audit_batch(
        &self,
        entries: &[AuditEntry],
        durability: Durability,
        tail: &mut Option<Tail>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let insert = insert_sql(entries.len());
        match self.backend {
            Backend::Postgres => {
                *tail = None;
                let mut tx = self.begin_write().await?;
                if durability == Durability::Deferred {
                    sqlx::query("SET LOCAL synchronous_commit = off")
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
                    .bind(PG_AUDIT_LOCK)
                    .execute(&mut *tx)
                    .await?;
                let start = read_tail(&mut *tx).await?;
                let (records, texts) = chain(entries, &start)?;
                bind_insert(insert, &records, &texts)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(records)
            }
            Backend::Sqlite => {
                // synchronous=NORMAL for this statement only; the connection is back at FULL
                // before anything else can use it.
                let sql = match durability {
                    Durability::Synced => insert,
                    Durability::Deferred => {
                        format!("PRAGMA synchronous = NORMAL; {insert}; PRAGMA synchronous = FULL")
                    }
                };
                let mut conn = self.pool.acquire().await?;
                let mut retried = false;
                loop {
                    let start = match tail.take() {
                        Some(t) => t,
                        None => read_tail(&mut *conn).await?,
                    };
                    let (records, texts) = chain(entries, &start)?;
                    match bind_insert(sql.clone(), &records, &texts)
                        .execute(&mut *conn)
                        .await
                    {
                        Ok(_) => {
                            if let Some(last) = records.last() {
                                *tail = Some((last.seq, last.hash.clone()));
                            }
                            return Ok(records);
                        }
                        Err(e) => {
                            if durability == Durability::Deferred
                                && sqlx::query("PRAGMA synchronous = FULL")
                                    .execute(&mut *conn)
                                    .await
                                    .is_err()
                            {
                                // Never leave a connection that skips syncs in the pool.
                                conn.close_on_drop();
                            }
                            let conflict =
                                matches!(&e, sqlx::Error::Database(d) if d.is_unique_violation());
                            if conflict && !retried {
                                retried = true;
                                continue;
                            }
                            return Err(e.into());
                        }
                    }
                }
            }
        }
    }

    /// Syncs what deferred appends committed (SQLite: a passive WAL checkpoint, which syncs the
    /// WAL first). PostgreSQL flushes on its own.
    pub(crate) async fn sync_deferred_audit(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// The last `n` records, oldest → newest.
    pub async fn audit_tail(&self, n: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(SELECT_TAIL)
            .bind(n.max(0))
            .fetch_all(&self.pool)
            .await?;
        let mut records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        records.reverse();
        Ok(records)
    }

    /// Every record naming this approval, in chain order.
    pub async fn audit_for_approval(
        &self,
        approval_id: &str,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(SELECT_FOR_APPROVAL)
            .bind(approval_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Recomputes every hash in seq order and reports the first broken link: an edited record
    /// (hash mismatch), a deleted one (gap in seq), or a spliced one (prev_hash mismatch).
    /// Deleting the newest records leaves a valid shorter chain; compare `records` with what an
    /// external copy of the tail says to catch that.
    pub async fn audit_verify(&self) -> Result<VerifyReport, StoreError> {
        let mut records = 0_i64;
        let mut first_broken = None;
        let mut last_seq = 0_i64;
        let mut last_hash = GENESIS.to_string();
        loop {
            let rows = sqlx::query(SELECT_AFTER)
                .bind(last_seq)
                .bind(VERIFY_BATCH)
                .fetch_all(&self.pool)
                .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let stored = StoredRow::of(row)?;
                records += 1;
                if first_broken.is_none() {
                    first_broken = check_link(&stored, last_seq, &last_hash)?;
                }
                last_seq = stored.seq;
                last_hash = stored.hash;
            }
        }
        Ok(VerifyReport {
            records,
            first_broken,
        })
    }
}

/// Whether `row` follows the record (`prev_seq`, `prev_hash`) and its own hash is intact.
fn check_link(
    row: &StoredRow,
    prev_seq: i64,
    prev_hash: &str,
) -> Result<Option<BrokenLink>, StoreError> {
    let broken = |reason: String| {
        Ok(Some(BrokenLink {
            seq: row.seq,
            reason,
        }))
    };
    if row.seq != prev_seq + 1 {
        return broken(format!(
            "expected seq {} after {prev_seq}, found {}: record(s) deleted",
            prev_seq + 1,
            row.seq
        ));
    }
    if row.prev_hash != prev_hash {
        return broken(format!(
            "prev_hash does not match the hash of seq {prev_seq}: record replaced or reordered"
        ));
    }
    let fields = Fields {
        at_ms: row.at_ms,
        principal_sub: &row.principal_sub,
        principal_name: &row.principal_name,
        transport: &row.transport,
        tool: &row.tool,
        args: &row.args,
        decision: &row.decision,
        rule: row.rule.as_deref(),
        approval_id: row.approval_id.as_deref(),
        result_summary: row.result_summary.as_deref(),
        trace_id: row.trace_id.as_deref(),
    };
    if chain_hash(&row.prev_hash, row.seq, &fields)? != row.hash {
        return broken("hash mismatch: record altered after it was written".to_string());
    }
    Ok(None)
}

/// The hashed fields of a record; `args` is already canonical JSON text.
struct Fields<'a> {
    at_ms: i64,
    principal_sub: &'a str,
    principal_name: &'a str,
    transport: &'a str,
    tool: &'a str,
    args: &'a str,
    decision: &'a str,
    rule: Option<&'a str>,
    approval_id: Option<&'a str>,
    result_summary: Option<&'a str>,
    trace_id: Option<&'a str>,
}

impl<'a> Fields<'a> {
    fn of(e: &'a AuditEntry, args: &'a str) -> Self {
        Fields {
            at_ms: e.at_ms,
            principal_sub: &e.principal_sub,
            principal_name: &e.principal_name,
            transport: &e.transport,
            tool: &e.tool,
            args,
            decision: &e.decision,
            rule: e.rule.as_deref(),
            approval_id: e.approval_id.as_deref(),
            result_summary: e.result_summary.as_deref(),
            trace_id: e.trace_id.as_deref(),
        }
    }
}

/// sha256(prev_hash || canonical JSON of {seq, entry fields}), lower-case hex.
fn chain_hash(prev_hash: &str, seq: i64, f: &Fields<'_>) -> Result<String, StoreError> {
    let text = |s: &str| json_string(s);
    let opt = |s: Option<&str>| s.map_or(Ok("null".to_string()), json_string);
    let mut members = vec![
        ("approval_id", opt(f.approval_id)?),
        ("args", f.args.to_string()),
        ("at_ms", f.at_ms.to_string()),
        ("decision", text(f.decision)?),
        ("principal_name", text(f.principal_name)?),
        ("principal_sub", text(f.principal_sub)?),
        ("result_summary", opt(f.result_summary)?),
        ("rule", opt(f.rule)?),
        ("seq", seq.to_string()),
        ("tool", text(f.tool)?),
        ("trace_id", opt(f.trace_id)?),
        ("transport", text(f.transport)?),
    ];
    members.sort_by(|a, b| a.0.cmp(b.0));
    let body = members
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"{");
    hasher.update(body.as_bytes());
    hasher.update(b"}");
    Ok(hex(&hasher.finalize()))
}

fn json_string(s: &str) -> Result<String, StoreError> {
    serde_json::to_string(s).map_err(|e| StoreError::Db(format!("encoding JSON: {e}")))
}

/// Compact JSON with object keys sorted at every depth.
fn canonical_json(value: &serde_json::Value) -> Result<String, StoreError> {
    use serde_json::Value;
    Ok(match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::String(s) => json_string(s)?,
        Value::Array(items) => {
            let items = items
                .iter()
                .map(canonical_json)
                .collect::<Result<Vec<_>, _>>()?;
            format!("[{}]", items.join(","))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut members = Vec::with_capacity(keys.len());
            for key in keys {
                let v = map
                    .get(key)
                    .map_or(Ok("null".to_string()), canonical_json)?;
                members.push(format!("{}:{v}", json_string(key)?));
            }
            format!("{{{}}}", members.join(","))
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A row as stored (args as text), for verification.
struct StoredRow {
    seq: i64,
    at_ms: i64,
    principal_sub: String,
    principal_name: String,
    transport: String,
    tool: String,
    args: String,
    decision: String,
    rule: Option<String>,
    approval_id: Option<String>,
    result_summary: Option<String>,
    trace_id: Option<String>,
    prev_hash: String,
    hash: String,
}

impl StoredRow {
    fn of(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(StoredRow {
            seq: row.try_get("seq")?,
            at_ms: row.try_get("at_ms")?,
            principal_sub: row.try_get("principal_sub")?,
            principal_name: row.try_get("principal_name")?,
            transport: row.try_get("transport")?,
            tool: row.try_get("tool")?,
            args: row.try_get("args")?,
            decision: row.try_get("decision")?,
            rule: row.try_get("rule")?,
            approval_id: row.try_get("approval_id")?,
            result_summary: row.try_get("result_summary")?,
            trace_id: row.try_get("trace_id")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        })
    }
}

fn record_from_row(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    let r = StoredRow::of(row)?;
    let args = serde_json::from_str(&r.args)
        .map_err(|e| StoreError::Corrupt(format!("audit seq {} args: {e}", r.seq)))?;
    Ok(AuditRecord {
        seq: r.seq,
        entry: AuditEntry {
            at_ms: r.at_ms,
            principal_sub: r.principal_sub,
            principal_name: r.principal_name,
            transport: r.transport,
            tool: r.tool,
            args,
            decision: r.decision,
            rule: r.rule,
            approval_id: r.approval_id,
            result_summary: r.result_summary,
            trace_id: r.trace_id,
        },
        prev_hash: r.prev_hash,
        hash: r.hash,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::test_support::sqlite;
    use super::*;
    use serde_json::json;

    pub fn entry(i: i64) -> AuditEntry {
        AuditEntry {
            at_ms: 1_000 + i,
            principal_sub: "agent-1".to_string(),
            principal_name: "SRECoder".to_string(),
            transport: "mcp_stdio".to_string(),
            tool: "k8s.restart".to_string(),
            args: json!({"namespace": "prod", "name": format!("api-{i}"), "replicas": 1.5e300}),
            decision: if i % 2 == 0 {
                "allow"
            } else {
                "require_approval"
            }
            .to_string(),
            rule: Some("writes-need-approval".to_string()),
            approval_id: (i % 2 == 1).then(|| format!("ap-{i}")),
            result_summary: None,
            trace_id: Some(format!("trace-{i}")),
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v = json!({"b": 1, "a": {"z": [true, null, {"y": "é\"", "x": 2}], "c": -0.5}});
        assert_eq!(
            canonical_json(&v).expect("canonical"),
            r#"{"a":{"c":-0.5,"z":[true,null,{"x":2,"y":"é\""}]},"b":1}"#
        );
    }

    #[tokio::test]
    async fn chain_appends_links_and_verifies() {
        let (store, _dir) = sqlite().await;
        let empty = store.audit_verify().await.expect("verify");
        assert_eq!(empty.records, 0);
        assert!(empty.first_broken.is_none());
        let mut prev = GENESIS.to_string();
        for i in 1..=5 {
            let rec = store.append_audit(&entry(i)).await.expect("append");
            assert_eq!(rec.seq, i);
            assert_eq!(rec.prev_hash, prev);
            assert_eq!(rec.hash.len(), 64);
            prev = rec.hash;
        }
        let report = store.audit_verify().await.expect("verify");
        assert_eq!(report.records, 5);
        assert!(report.first_broken.is_none(), "{report:?}");

        let tail = store.audit_tail(2).await.expect("tail");
        assert_eq!(tail.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(tail[1].entry.args["name"], "api-5");
        assert_eq!(tail[1].entry.trace_id.as_deref(), Some("trace-5"));
        assert_eq!(tail[1].hash, prev);
        assert_eq!(store.audit_tail(100).await.expect("tail").len(), 5);
        let for_3 = store.audit_for_approval("ap-3").await.expect("for");
        assert_eq!(for_3.len(), 1);
        assert_eq!(for_3[0].seq, 3);
        assert!(
            store
                .audit_for_approval("ap-2")
                .await
                .expect("for")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn verify_names_an_edited_record() {
        let (store, _dir) = sqlite().await;
        for i in 1..=4 {
            store.append_audit(&entry(i)).await.expect("append");
        }
        sqlx::query("UPDATE audit SET decision = 'allowed' WHERE seq = 2")
            .execute(&store.pool)
            .await
            .expect("tamper");
        let report = store.audit_verify().await.expect("verify");
        assert_eq!(report.records, 4);
        let broken = report.first_broken.expect("broken");
        assert_eq!(broken.seq, 2);
        assert!(broken.reason.contains("altered"), "{}", broken.reason);

        // Re-hashing the edited row to hide the edit breaks the next record's link instead.
        let first = store.audit_tail(4).await.expect("tail").remove(0);
        let mut edited = entry(2);
        edited.decision = "allowed".to_string();
        let args = canonical_json(&edited.args).expect("canonical");
        let rehashed = chain_hash(&first.hash, 2, &Fields::of(&edited, &args)).expect("hash");
        sqlx::query("UPDATE audit SET hash = $1 WHERE seq = 2")
            .bind(rehashed)
            .execute(&store.pool)
            .await
            .expect("tamper");
        let broken = store
            .audit_verify()
            .await
            .expect("verify")
            .first_broken
            .expect("broken");
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("prev_hash"), "{}", broken.reason);
    }

    #[tokio::test]
    async fn verify_reports_a_deleted_record() {
        let (store, _dir) = sqlite().await;
        for i in 1..=4 {
            store.append_audit(&entry(i)).await.expect("append");
        }
        sqlx::query("DELETE FROM audit WHERE seq = 3")
            .execute(&store.pool)
            .await
            .expect("delete");
        let report = store.audit_verify().await.expect("verify");
        assert_eq!(report.records, 3);
        let broken = report.first_broken.expect("broken");
        assert_eq!(broken.seq, 4);
        assert!(
            broken.reason.contains("expected seq 3"),
            "{}",
            broken.reason
        );

        // Renumbering to close the gap still breaks the prev_hash link.
        sqlx::query("UPDATE audit SET seq = 3 WHERE seq = 4")
            .execute(&store.pool)
            .await
            .expect("renumber");
        let broken = store
            .audit_verify()
            .await
            .expect("verify")
            .first_broken
            .expect("broken");
        assert_eq!(broken.seq, 3);
    }

    #[tokio::test]
    async fn verify_walks_more_than_one_batch() {
        let (store, _dir) = sqlite().await;
        let n = VERIFY_BATCH + 5;
        for i in 1..=n {
            store.append_audit(&entry(i)).await.expect("append");
        }
        sqlx::query("UPDATE audit SET tool = 'k8s.delete' WHERE seq = $1")
            .bind(VERIFY_BATCH + 2)
            .execute(&store.pool)
            .await
            .expect("tamper");
        let report = store.audit_verify().await.expect("verify");
        assert_eq!(report.records, n);
        assert_eq!(report.first_broken.expect("broken").seq, VERIFY_BATCH + 2);
    }
}
