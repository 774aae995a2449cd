//! The audit log: append-only records, each holding the MAC of the previous one (a keyed
//! chain), so an edited or deleted record is found by `audit_verify`, and one rewritten by
//! someone without the key cannot be made to pass again. Owns the `audit` rows only.
//!
//! hash = "hmac-sha256:" + HMAC-SHA256(key, prev_hash || canonical JSON of {seq, entry fields}).
//! Records written before the chain was keyed hold plain sha256(prev_hash || same JSON), as 64
//! hex digits without a prefix; they verify as they are, and only before the first keyed record:
//! an unkeyed record after a keyed one is a rewrite. The prefix is inside the next record's MAC
//! input, so a keyed record cannot be passed off as unkeyed without breaking the link after it.
//! Cutting records off the end leaves a valid shorter chain: [`AuditHead`], kept elsewhere by
//! the operator, is what catches that. Canonical JSON here is
//! compact with object keys sorted at every depth, written by `canonical_json` rather than relying
//! on serde_json's `Map` order, which turns into insertion order if any crate in the build enables
//! serde_json's `preserve_order` feature. `args` is stored as its canonical text and hashed from
//! that text, so verification never depends on re-parsing numbers.
//!
//! Appends are serialized so that seq and prev_hash are read and written atomically: on
//! PostgreSQL by `pg_advisory_xact_lock` inside the transaction (replicas share the chain), on
//! SQLite by `BEGIN IMMEDIATE` (the database write lock). The seq primary key is the backstop.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit_key::{self, AuditKey};
use super::{AuditEntry, AuditRecord, Backend, BrokenLink, Store, StoreError, VerifyReport};

/// Marks a keyed link; unkeyed (older) links are bare hex.
const KEYED_PREFIX: &str = "hmac-sha256:";

/// prev_hash of the first record.
pub(super) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Advisory lock id serializing audit appends across replicas (ASCII "tg-audit").
const PG_AUDIT_LOCK: i64 = 0x7467_2d61_7564_6974;
/// Rows read per round trip by `audit_verify`, so a long log is never held in memory at once.
const VERIFY_BATCH: i64 = 1_000;

const SELECT_TAIL: &str = "SELECT seq, at_ms, principal_sub, principal_name, transport, tool, \
     args, decision, rule, approval_id, result_summary, trace_id, prev_hash, hash FROM audit \
     ORDER BY seq DESC LIMIT $1";
pub(super) const SELECT_FOR_APPROVAL: &str = "SELECT seq, at_ms, principal_sub, principal_name, transport, \
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

/// A record's position and MAC, as `SEQ:HASH` (`42:hmac-sha256:9f…`): what `toolgate audit
/// head` prints for the operator to keep outside the database, and what `audit verify --head`
/// checks the chain still holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: String,
}

impl AuditHead {
    /// The head of the empty chain.
    pub fn empty() -> AuditHead {
        AuditHead {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }

    /// Whether the hash is a MAC (a head of records written before the key is only a hash:
    /// anyone can recompute it).
    pub fn is_keyed(&self) -> bool {
        self.hash.starts_with(KEYED_PREFIX)
    }
}

impl std::fmt::Display for AuditHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl std::str::FromStr for AuditHead {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected =
            "expected SEQ:HASH as `toolgate audit head` prints it, e.g. 42:hmac-sha256:9f86d0…";
        let (seq, hash) = s
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("no `:` in the head; {expected}"))?;
        let seq = seq
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("`{seq}` is not a record number; {expected}"))?;
        let digits = hash.strip_prefix(KEYED_PREFIX).unwrap_or(hash);
        if digits.len() != 64
            || !digits
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(format!(
                "the hash is not 64 lower-case hex digits (optionally after `{KEYED_PREFIX}`); {expected}"
            ));
        }
        Ok(AuditHead {
            seq,
            hash: hash.to_string(),
        })
    }
}

pub(super) const COLUMNS: &str = "seq, at_ms, principal_sub, principal_name, transport, tool, args, \
     decision, rule, approval_id, result_summary, trace_id, prev_hash, hash";
const COLUMN_COUNT: usize = 14;

/// `INSERT INTO audit (…) VALUES ($1, …, $14), ($15, …)` for `rows` records: one statement, so
/// the batch is one round trip and, on SQLite, atomic without an explicit transaction.
pub(super) fn insert_sql(rows: usize) -> String {
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
pub(super) fn chain(
    key: &AuditKey,
    entries: &[AuditEntry],
    tail: &Tail,
) -> Result<(Vec<AuditRecord>, Vec<String>), StoreError> {
    let (mut seq, mut prev_hash) = tail.clone();
    let mut records = Vec::with_capacity(entries.len());
    let mut texts = Vec::with_capacity(entries.len());
    for e in entries {
        let args = canonical_json(&e.args)?;
        seq += 1;
        let hash = chain_mac(key, &prev_hash, seq, &Fields::of(e, &args))?;
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

/// The newest record's seq and hash.
pub(super) const TAIL_SQL: &str = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";

async fn read_tail<'e, E>(executor: E) -> Result<Tail, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let last = sqlx::query(TAIL_SQL).fetch_optional(executor).await?;
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
            Some(writer) => writer.append(self, e.clone(), durability).await,
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
    /// it); the store's one connection serializes appends inside the process (this path is
    /// `sqlite::memory:`'s: a file's writer appends on a connection of its own, see
    /// `audit_file`, with the same chain rules), and a record
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
                let (records, texts) = chain(&self.audit_key, entries, &start)?;
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
                    let (records, texts) = chain(&self.audit_key, entries, &start)?;
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

    /// The key of the embedded default for the SQLite file `db`: read from the file beside
    /// it, or created there when there is none yet. Refused when the file is missing but the
    /// chain already holds keyed records: a new key would make every one of them fail.
    pub(crate) async fn default_audit_key(
        &self,
        db: &std::path::Path,
    ) -> Result<AuditKey, StoreError> {
        let path = audit_key::key_file_of(db);
        if let Some(key) = audit_key::read_key_file(&path)? {
            return Ok(key);
        }
        let (seq, hash) = read_tail(&self.pool).await?;
        if hash.starts_with(KEYED_PREFIX) {
            return Err(StoreError::AuditKey(format!(
                "the audit key file {} is missing but the audit log holds keyed records (up to seq {seq}): restore the file, or set audit.hmac_key to the key they were written with",
                path.display()
            )));
        }
        match audit_key::create_key_file(&path) {
            Ok(key) => Ok(key),
            // Another process on the same file made it first: use theirs.
            Err(made) => audit_key::read_key_file(&path)?.ok_or(made),
        }
    }

    /// The newest record's position and MAC (`None`: the log is empty).
    pub async fn audit_head(&self) -> Result<Option<AuditHead>, StoreError> {
        let (seq, hash) = read_tail(&self.pool).await?;
        Ok((seq > 0).then_some(AuditHead { seq, hash }))
    }

    /// [`Store::audit_verify_against`] without a head to check.
    pub async fn audit_verify(&self) -> Result<VerifyReport, StoreError> {
        self.audit_verify_against(None).await
    }

    /// Recomputes every link in seq order and reports the first broken one: an edited record
    /// (MAC mismatch), a deleted one (gap in seq), a spliced one (prev_hash mismatch), or an
    /// unkeyed record after keyed ones (rewritten without the key). Deleting the newest records
    /// leaves a valid shorter chain: given `head` (an earlier `audit_head`), the report also says
    /// whether the chain still holds that record with that MAC.
    pub async fn audit_verify_against(
        &self,
        head: Option<&AuditHead>,
    ) -> Result<VerifyReport, StoreError> {
        let mut records = 0_i64;
        let mut unkeyed = 0_i64;
        let mut keyed_seen = false;
        let mut first_broken = None;
        let mut at_head = None;
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
                let keyed = stored.hash.starts_with(KEYED_PREFIX);
                if !keyed {
                    unkeyed += 1;
                }
                if first_broken.is_none() {
                    first_broken = if keyed_seen && !keyed {
                        Some(BrokenLink {
                            seq: stored.seq,
                            reason: "an unkeyed record after keyed ones: the chain was rewritten by someone without the audit key".into(),
                        })
                    } else {
                        check_link(&self.audit_key, &stored, last_seq, &last_hash)?
                    };
                }
                keyed_seen |= keyed;
                if head.is_some_and(|h| h.seq == stored.seq) {
                    at_head = Some(stored.hash.clone());
                }
                last_seq = stored.seq;
                last_hash = stored.hash;
            }
        }
        let head_mismatch = head.and_then(|h| head_mismatch(h, at_head.as_deref(), last_seq));
        Ok(VerifyReport {
            records,
            unkeyed,
            head: (last_seq > 0).then_some(AuditHead {
                seq: last_seq,
                hash: last_hash,
            }),
            first_broken,
            head_mismatch,
        })
    }
}

/// Why the chain does not hold `head`, given the hash found at its seq and the last seq.
fn head_mismatch(head: &AuditHead, found: Option<&str>, last_seq: i64) -> Option<String> {
    if head.seq == 0 {
        // The empty chain's head: every chain starts there.
        return (head.hash != GENESIS)
            .then(|| format!("the given head {head} is not the empty chain's (0:{GENESIS})"));
    }
    match found {
        Some(hash) if hash == head.hash => None,
        Some(hash) => Some(format!(
            "record {} has {hash}, not the given head's {}: the chain was rewritten (or the head belongs to another database)",
            head.seq, head.hash
        )),
        None if last_seq < head.seq => Some(format!(
            "the chain ends at seq {last_seq}, before the given head {}: records were cut from the end (or the head belongs to another database)",
            head.seq
        )),
        None => Some(format!(
            "the chain has no record {}: records were deleted",
            head.seq
        )),
    }
}

/// Whether `row` follows the record (`prev_seq`, `prev_hash`) and its own MAC (or, written
/// before the key, its hash) is intact.
fn check_link(
    key: &AuditKey,
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
    if row.hash.starts_with(KEYED_PREFIX) {
        if !mac_matches(key, &row.prev_hash, row.seq, &fields, &row.hash)? {
            return broken(
                "MAC mismatch: record altered after it was written (or the audit key is not the one it was written with)"
                    .to_string(),
            );
        }
    } else if chain_hash(&row.prev_hash, row.seq, &fields)? != row.hash {
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

/// The link of a keyed record: `hmac-sha256:` + HMAC-SHA256(key, prev_hash || canonical JSON).
fn chain_mac(
    key: &AuditKey,
    prev_hash: &str,
    seq: i64,
    f: &Fields<'_>,
) -> Result<String, StoreError> {
    let mut mac = new_mac(key)?;
    mac.update(prev_hash.as_bytes());
    mac.update(&canonical_record(seq, f)?);
    Ok(format!(
        "{KEYED_PREFIX}{}",
        hex(&mac.finalize().into_bytes())
    ))
}

/// Compares in constant time (the MAC check must not leak how much of a forgery matched).
fn mac_matches(
    key: &AuditKey,
    prev_hash: &str,
    seq: i64,
    f: &Fields<'_>,
    stored: &str,
) -> Result<bool, StoreError> {
    let Some(digits) = stored.strip_prefix(KEYED_PREFIX) else {
        return Ok(false);
    };
    let Some(tag) = unhex(digits) else {
        return Ok(false);
    };
    let mut mac = new_mac(key)?;
    mac.update(prev_hash.as_bytes());
    mac.update(&canonical_record(seq, f)?);
    Ok(mac.verify_slice(&tag).is_ok())
}

impl super::Store {
    /// A key for the digests that stand in for secret values in audit records and results:
    /// HMAC-SHA256 of a fixed label under the audit key, so the same value gives the same digest
    /// in every replica and across restarts, while a guessed value cannot be checked against a
    /// digest without the key (a plain SHA-256 of a short password can be).
    pub fn redaction_key(&self) -> Result<[u8; 32], StoreError> {
        let mut mac = new_mac(&self.audit_key)?;
        mac.update(b"toolgate/redaction-digest/v1");
        Ok(mac.finalize().into_bytes().into())
    }
}

fn new_mac(key: &AuditKey) -> Result<Hmac<Sha256>, StoreError> {
    // HMAC takes keys of any length; the error is unreachable but never a panic.
    Hmac::<Sha256>::new_from_slice(key.bytes())
        .map_err(|_| StoreError::AuditKey("the audit key cannot key HMAC-SHA256".into()))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// sha256(prev_hash || canonical JSON of {seq, entry fields}), lower-case hex: the link of
/// records written before the chain was keyed.
fn chain_hash(prev_hash: &str, seq: i64, f: &Fields<'_>) -> Result<String, StoreError> {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(&canonical_record(seq, f)?);
    Ok(hex(&hasher.finalize()))
}

/// `{…}`: the record's fields and seq as canonical JSON (keys sorted).
fn canonical_record(seq: i64, f: &Fields<'_>) -> Result<Vec<u8>, StoreError> {
    use std::io::Write;
    // Every record is written on the hot path of every call: one buffer, no string a member.
    // The members go in the order of their keys, sorted (the golden test pins the bytes).
    let mut out = Vec::with_capacity(256 + f.args.len());
    let text = |out: &mut Vec<u8>, s: Option<&str>| -> Result<(), StoreError> {
        match s {
            Some(s) => serde_json::to_writer(out, s)
                .map_err(|e| StoreError::Db(format!("encoding JSON: {e}"))),
            None => {
                out.extend_from_slice(b"null");
                Ok(())
            }
        }
    };
    out.extend_from_slice(b"{\"approval_id\":");
    text(&mut out, f.approval_id)?;
    out.extend_from_slice(b",\"args\":");
    out.extend_from_slice(f.args.as_bytes());
    // Writing to a Vec cannot fail.
    let _ = write!(out, ",\"at_ms\":{}", f.at_ms);
    out.extend_from_slice(b",\"decision\":");
    text(&mut out, Some(f.decision))?;
    out.extend_from_slice(b",\"principal_name\":");
    text(&mut out, Some(f.principal_name))?;
    out.extend_from_slice(b",\"principal_sub\":");
    text(&mut out, Some(f.principal_sub))?;
    out.extend_from_slice(b",\"result_summary\":");
    text(&mut out, f.result_summary)?;
    out.extend_from_slice(b",\"rule\":");
    text(&mut out, f.rule)?;
    let _ = write!(out, ",\"seq\":{seq}");
    out.extend_from_slice(b",\"tool\":");
    text(&mut out, Some(f.tool))?;
    out.extend_from_slice(b",\"trace_id\":");
    text(&mut out, f.trace_id)?;
    out.extend_from_slice(b",\"transport\":");
    text(&mut out, Some(f.transport))?;
    out.push(b'}');
    Ok(out)
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

    /// The bytes every stored chain was linked over: a change here breaks the verification of
    /// every existing audit log. The record is written out by hand (keys sorted, compact JSON,
    /// serde_json's escapes and numbers: `1.5e+300`), and both links were computed apart from
    /// this code (Python's `hashlib.sha256` and `hmac` over GENESIS followed by that text).
    #[test]
    fn a_records_canonical_text_and_links_are_the_ones_stored_chains_were_written_with() {
        let mut e = entry(3);
        e.principal_name = "Zoë \"ops\"".to_string();
        let args = canonical_json(&e.args).expect("canonical");
        let fields = Fields::of(&e, &args);
        assert_eq!(
            String::from_utf8(canonical_record(42, &fields).expect("canonical")).expect("UTF-8"),
            r#"{"approval_id":"ap-3","args":{"name":"api-3","namespace":"prod","replicas":1.5e+300},"at_ms":1003,"decision":"require_approval","principal_name":"Zoë \"ops\"","principal_sub":"agent-1","result_summary":null,"rule":"writes-need-approval","seq":42,"tool":"k8s.restart","trace_id":"trace-3","transport":"mcp_stdio"}"#
        );
        assert_eq!(
            chain_hash(GENESIS, 42, &fields).expect("hash"),
            "42488807e9f2eb121a8df2fc8d8d0c81ed8472db673f8d23771a4c7dbb3f434a"
        );
        let key = AuditKey::new(b"toolgate-audit-golden-test-key-32".to_vec()).expect("key");
        let mac = chain_mac(&key, GENESIS, 42, &fields).expect("mac");
        assert_eq!(
            mac,
            "hmac-sha256:9897a9efcae35325a2bf92c6dbab17f767f496989b6959b4a982fe19d5eb73a8"
        );
        assert!(mac_matches(&key, GENESIS, 42, &fields, &mac).expect("check"));
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
            assert!(rec.hash.starts_with(KEYED_PREFIX), "{}", rec.hash);
            assert_eq!(rec.hash.len(), KEYED_PREFIX.len() + 64);
            prev = rec.hash;
        }
        let report = store.audit_verify().await.expect("verify");
        assert_eq!(report.records, 5);
        assert_eq!(report.unkeyed, 0);
        assert!(report.first_broken.is_none(), "{report:?}");
        let head = store.audit_head().await.expect("head").expect("not empty");
        assert_eq!((head.seq, head.hash.as_str()), (5, prev.as_str()));
        assert_eq!(report.head.as_ref(), Some(&head));

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

        // Re-computing the edited row's MAC under another key (the attacker's guess) is found.
        let first = store.audit_tail(4).await.expect("tail").remove(0);
        let mut edited = entry(2);
        edited.decision = "allowed".to_string();
        let args = canonical_json(&edited.args).expect("canonical");
        let guess = AuditKey::new(vec![b'g'; 32]).expect("key");
        let forged = chain_mac(&guess, &first.hash, 2, &Fields::of(&edited, &args)).expect("mac");
        sqlx::query("UPDATE audit SET hash = $1 WHERE seq = 2")
            .bind(&forged)
            .execute(&store.pool)
            .await
            .expect("tamper");
        let broken = store
            .audit_verify()
            .await
            .expect("verify")
            .first_broken
            .expect("broken");
        assert_eq!(broken.seq, 2);
        assert!(broken.reason.contains("MAC mismatch"), "{}", broken.reason);
    }

    /// Recomputes the links of records `from..=to` as unkeyed SHA-256, as someone with write
    /// access to the database but without the key can.
    async fn rehash_unkeyed(store: &Store, from: i64, to: i64) {
        let rows = sqlx::query(SELECT_AFTER)
            .bind(0_i64)
            .bind(i64::MAX)
            .fetch_all(&store.pool)
            .await
            .expect("rows");
        let mut prev = GENESIS.to_string();
        for row in &rows {
            let r = StoredRow::of(row).expect("row");
            if (from..=to).contains(&r.seq) {
                let fields = Fields {
                    at_ms: r.at_ms,
                    principal_sub: &r.principal_sub,
                    principal_name: &r.principal_name,
                    transport: &r.transport,
                    tool: &r.tool,
                    args: &r.args,
                    decision: &r.decision,
                    rule: r.rule.as_deref(),
                    approval_id: r.approval_id.as_deref(),
                    result_summary: r.result_summary.as_deref(),
                    trace_id: r.trace_id.as_deref(),
                };
                let hash = chain_hash(&prev, r.seq, &fields).expect("hash");
                sqlx::query("UPDATE audit SET prev_hash = $1, hash = $2 WHERE seq = $3")
                    .bind(&prev)
                    .bind(&hash)
                    .bind(r.seq)
                    .execute(&store.pool)
                    .await
                    .expect("rewrite");
                prev = hash;
            } else {
                prev = r.hash;
            }
        }
    }

    #[tokio::test]
    async fn a_record_rewritten_with_a_recomputed_unkeyed_chain_is_found() {
        let (store, _dir) = sqlite().await;
        for i in 1..=4 {
            store.append_audit(&entry(i)).await.expect("append");
        }
        let head = store.audit_head().await.expect("head").expect("head");
        // Edit record 2 and recompute plain SHA-256 links from there on, as the chain was
        // before it was keyed.
        sqlx::query("UPDATE audit SET decision = 'denied' WHERE seq = 2")
            .execute(&store.pool)
            .await
            .expect("tamper");
        rehash_unkeyed(&store, 2, i64::MAX).await;
        let report = store.audit_verify().await.expect("verify");
        let broken = report
            .first_broken
            .expect("an unkeyed record after a keyed one");
        assert_eq!(broken.seq, 2);
        assert!(
            broken.reason.contains("without the audit key"),
            "{}",
            broken.reason
        );

        // Rewriting every record as unkeyed leaves a chain that looks older than the key; the
        // head kept outside the database is what tells it apart.
        rehash_unkeyed(&store, 1, i64::MAX).await;
        let report = store
            .audit_verify_against(Some(&head))
            .await
            .expect("verify");
        assert_eq!(report.unkeyed, 4, "reported, so an operator sees it");
        let why = report.head_mismatch.expect("the kept head is gone");
        assert!(why.contains("rewritten"), "{why}");
    }

    #[tokio::test]
    async fn records_written_before_the_key_still_verify_and_precede_keyed_ones() {
        let (store, dir) = sqlite().await;
        for i in 1..=3 {
            store.append_audit(&entry(i)).await.expect("append");
        }
        // As an older toolgate wrote them: plain SHA-256 links; then this toolgate starts.
        rehash_unkeyed(&store, 1, i64::MAX).await;
        store.close().await;
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = Store::connect(&url).await.expect("reopen");
        let old = store.audit_verify().await.expect("verify");
        assert!(old.first_broken.is_none(), "{old:?}");
        assert_eq!((old.records, old.unkeyed), (3, 3));
        // The next records are keyed and link to the unkeyed tail.
        let next = store.append_audit(&entry(4)).await.expect("append");
        assert!(next.hash.starts_with(KEYED_PREFIX));
        assert!(!next.prev_hash.starts_with(KEYED_PREFIX));
        store.append_audit(&entry(5)).await.expect("append");
        let report = store.audit_verify().await.expect("verify");
        assert!(report.first_broken.is_none(), "{report:?}");
        assert_eq!((report.records, report.unkeyed), (5, 3));
        // An unkeyed record cannot be edited and re-hashed either: the keyed one after it
        // holds its hash in its MAC.
        sqlx::query("UPDATE audit SET tool = 'k8s.delete' WHERE seq = 3")
            .execute(&store.pool)
            .await
            .expect("tamper");
        rehash_unkeyed(&store, 3, 3).await;
        let broken = store.audit_verify().await.expect("verify").first_broken;
        assert_eq!(broken.expect("broken").seq, 4);
    }

    #[tokio::test]
    async fn a_cut_tail_fails_against_the_kept_head() {
        let (store, _dir) = sqlite().await;
        for i in 1..=5 {
            store.append_audit(&entry(i)).await.expect("append");
        }
        let head = store.audit_head().await.expect("head").expect("head");
        let parsed: AuditHead = head.to_string().parse().expect("round trip");
        assert_eq!(parsed, head);
        let ok = store
            .audit_verify_against(Some(&head))
            .await
            .expect("verify");
        assert!(
            ok.head_mismatch.is_none() && ok.first_broken.is_none(),
            "{ok:?}"
        );
        // An older head is still in the chain.
        let older = store.audit_tail(3).await.expect("tail").remove(0);
        let older = AuditHead {
            seq: older.seq,
            hash: older.hash,
        };
        let ok = store
            .audit_verify_against(Some(&older))
            .await
            .expect("verify");
        assert!(ok.head_mismatch.is_none(), "{ok:?}");

        sqlx::query("DELETE FROM audit WHERE seq >= 4")
            .execute(&store.pool)
            .await
            .expect("cut");
        let report = store
            .audit_verify_against(Some(&head))
            .await
            .expect("verify");
        assert!(
            report.first_broken.is_none(),
            "a shorter chain is still whole"
        );
        let why = report.head_mismatch.expect("the head is gone");
        assert!(
            why.contains("ends at seq 3") && why.contains("cut"),
            "{why}"
        );
    }

    #[test]
    fn heads_parse_only_in_the_printed_form() {
        let mac = format!("{KEYED_PREFIX}{}", "ab".repeat(32));
        let head: AuditHead = format!("12:{mac}").parse().expect("keyed");
        assert!(head.is_keyed());
        let plain: AuditHead = format!("3:{}", "0f".repeat(32)).parse().expect("unkeyed");
        assert!(!plain.is_keyed());
        for bad in ["", "12", "x:ab", "-1:ab", "12:hmac-sha256:zz", "12:ABCD"] {
            let err = bad.parse::<AuditHead>().expect_err(bad);
            assert!(err.contains("SEQ:HASH"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn the_redaction_key_follows_the_audit_key_and_is_not_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let key = |b: u8| AuditKey::new(vec![b; 32]).expect("key");
        let a = Store::connect_with(&url, Some(key(b'a'))).await.expect("a");
        let first = a.redaction_key().expect("redaction key");
        a.close().await;
        let again = Store::connect_with(&url, Some(key(b'a')))
            .await
            .expect("a again");
        assert_eq!(again.redaction_key().expect("key"), first, "stable per key");
        again.close().await;
        let other = Store::connect_with(&url, Some(key(b'b'))).await.expect("b");
        assert_ne!(other.redaction_key().expect("key"), first);
        other.close().await;
        assert_ne!(
            first.as_slice(),
            [b'a'; 32].as_slice(),
            "derived, not the audit key"
        );
    }

    #[tokio::test]
    async fn the_default_key_is_kept_beside_the_file_and_never_silently_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("store.db");
        let url = format!("sqlite://{}", db.display());
        {
            let store = Store::connect(&url).await.expect("connect");
            store.append_audit(&entry(1)).await.expect("append");
            store.close().await;
        }
        let key_file = audit_key::key_file_of(&db);
        assert!(key_file.is_file());
        // Reopened: the same key, so the chain verifies.
        {
            let store = Store::connect(&url).await.expect("reopen");
            let report = store.audit_verify().await.expect("verify");
            assert!(report.first_broken.is_none(), "{report:?}");
            store.close().await;
        }
        // A configured key that is not the one the records were written with: verify says so.
        {
            let other = AuditKey::new(vec![b'o'; 32]).expect("key");
            let store = Store::connect_with(&url, Some(other)).await.expect("open");
            let broken = store.audit_verify().await.expect("verify").first_broken;
            let reason = broken.expect("wrong key").reason;
            assert!(reason.contains("audit key"), "{reason}");
            store.close().await;
        }
        // The key file lost: refuse rather than start a new key.
        std::fs::remove_file(&key_file).expect("rm");
        let err = Store::connect(&url).await.expect_err("key file missing");
        let text = err.to_string();
        assert!(
            text.contains("missing") && text.contains("audit.hmac_key"),
            "{text}"
        );
        assert!(!key_file.exists(), "no new key was made");
    }

    #[tokio::test]
    async fn postgres_urls_need_a_configured_key() {
        let err = Store::connect("postgres://toolgate:pw@127.0.0.1:1/none")
            .await
            .expect_err("no key");
        let text = err.to_string();
        assert!(text.contains("audit.hmac_key"), "{text}");
        assert!(!text.contains("pw@"), "{text}");
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
