//! The audit writer's own connection to a SQLite file.
//!
//! Every allowed read appends an audit record before its answer goes out. Through sqlx, an
//! append is a round trip to the connection's worker thread and back (and another for the pool's
//! liveness ping on release): at one caller, those thread wake-ups were the largest single cost
//! of a read call. So for a SQLite file the writer task keeps a connection of its own and runs a
//! deferred batch (a `synchronous=NORMAL` commit: pages written to the WAL, no sync) right where
//! it is, which takes tens of microseconds. Anything that may wait runs on a blocking thread
//! instead: a synced batch (its fsync), a checkpoint, and a batch that found another
//! connection holding the write lock (the store's pool inside a write transaction, or another
//! process on the same file), which then waits for it up to [`BUSY_WAIT`].
//!
//! The connection does not checkpoint on its own (a checkpoint inside an inline commit would
//! hold the runtime's thread for milliseconds): the writer checkpoints on a blocking thread
//! after [`CHECKPOINT_EVERY`] records, and within a second of a deferred commit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, ToSql};

use super::audit::{Durability, GENESIS, TAIL_SQL, Tail, chain, insert_sql};
use super::audit_key::AuditKey;
use super::{AuditEntry, AuditRecord, StoreError};

/// How long a batch waits for another connection's write lock (on a blocking thread).
const BUSY_WAIT: Duration = Duration::from_secs(5);
/// Records appended between two checkpoints at most. A record writes three pages to the WAL
/// (the row, its key, the approval index), so this keeps the WAL near SQLite's own automatic
/// checkpoint size (1,000 pages).
pub(crate) const CHECKPOINT_EVERY: usize = 300;

/// A batch that did not commit.
enum Failed {
    /// Another connection holds the write lock; nothing was written.
    Busy,
    Other(String),
}

impl From<rusqlite::Error> for Failed {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Failed::Busy,
            _ => Failed::Other(e.to_string()),
        }
    }
}

impl From<Failed> for StoreError {
    fn from(f: Failed) -> Self {
        match f {
            Failed::Busy => StoreError::Db(format!(
                "the database stayed locked by another writer for {} s",
                BUSY_WAIT.as_secs()
            )),
            Failed::Other(m) => StoreError::Db(m),
        }
    }
}

/// The writer's connection, with what the writer knows of it.
pub(crate) struct AuditFile {
    path: PathBuf,
    /// `None` after the connection was lost on a blocking thread: opened again when needed.
    conn: Option<Connection>,
    /// The connection's `synchronous` level (`None`: not known).
    level: Option<Durability>,
    since_checkpoint: usize,
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let db = |e: rusqlite::Error| StoreError::Db(format!("opening the audit connection: {e}"));
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db)?;
    // Never wait for a lock on the runtime's thread; a busy batch moves to a blocking one.
    conn.busy_timeout(Duration::ZERO).map_err(db)?;
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0")
        .map_err(db)?;
    Ok(conn)
}

fn read_tail(conn: &Connection) -> Result<Tail, Failed> {
    let last = conn
        .query_row(TAIL_SQL, [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })
        .optional()?;
    Ok(last.unwrap_or_else(|| (0, GENESIS.to_string())))
}

/// The statement that gives the connection `durability`.
fn synchronous(durability: Durability) -> &'static str {
    match durability {
        Durability::Synced => "PRAGMA synchronous = FULL",
        Durability::Deferred => "PRAGMA synchronous = NORMAL",
    }
}

/// Appends `entries` after `tail` (`None`: read it) in one statement. A seq conflict (another
/// process appended since) reads the tail again and retries once. `tail` is left at the new
/// end on success and cleared on failure.
fn write(
    conn: &Connection,
    key: &AuditKey,
    entries: &[AuditEntry],
    durability: Durability,
    level: &mut Option<Durability>,
    tail: &mut Option<Tail>,
) -> Result<Vec<AuditRecord>, Failed> {
    if *level != Some(durability) {
        *level = None;
        conn.execute_batch(synchronous(durability))?;
        *level = Some(durability);
    }
    let sql = insert_sql(entries.len());
    let mut retried = false;
    loop {
        let start = match tail.take() {
            Some(t) => t,
            None => read_tail(conn)?,
        };
        let (records, texts) =
            chain(key, entries, &start).map_err(|e| Failed::Other(e.to_string()))?;
        // In the order of `insert_sql`'s columns, as `bind_insert` binds them for sqlx.
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(records.len() * 14);
        for (r, args) in records.iter().zip(&texts) {
            let e = &r.entry;
            params.extend([
                &r.seq as &dyn ToSql,
                &e.at_ms,
                &e.principal_sub,
                &e.principal_name,
                &e.transport,
                &e.tool,
                args,
                &e.decision,
                &e.rule,
                &e.approval_id,
                &e.result_summary,
                &e.trace_id,
                &r.prev_hash,
                &r.hash,
            ]);
        }
        let inserted = conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.execute(params.as_slice()));
        match inserted {
            Ok(_) => {
                if let Some(last) = records.last() {
                    *tail = Some((last.seq, last.hash.clone()));
                }
                return Ok(records);
            }
            Err(e) => {
                let conflict = e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation);
                if conflict && !retried {
                    retried = true;
                    continue;
                }
                return Err(e.into());
            }
        }
    }
}

impl AuditFile {
    /// Opens the file (which must exist, with the store's tables).
    pub(crate) fn open(path: &Path) -> Result<AuditFile, StoreError> {
        Ok(AuditFile {
            path: path.to_path_buf(),
            conn: Some(open(path)?),
            level: None,
            since_checkpoint: 0,
        })
    }

    fn take(&mut self) -> Result<Connection, StoreError> {
        match self.conn.take() {
            Some(conn) => Ok(conn),
            None => {
                self.level = None;
                open(&self.path)
            }
        }
    }

    /// Appends `entries` in order at the end of the chain, all or none (see [`write`]).
    pub(crate) async fn append(
        &mut self,
        key: &Arc<AuditKey>,
        entries: &[AuditEntry],
        durability: Durability,
        tail: &mut Option<Tail>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.take()?;
        if durability == Durability::Deferred {
            let written = write(&conn, key, entries, durability, &mut self.level, tail);
            match written {
                Ok(records) => {
                    self.conn = Some(conn);
                    self.since_checkpoint += records.len();
                    return Ok(records);
                }
                Err(Failed::Busy) => {}
                Err(other) => {
                    self.conn = Some(conn);
                    return Err(other.into());
                }
            }
        }
        let key = Arc::clone(key);
        let entries = entries.to_vec();
        let mut level = self.level;
        let mut end = tail.take();
        let joined = tokio::task::spawn_blocking(move || {
            let written = conn
                .busy_timeout(BUSY_WAIT)
                .map_err(Failed::from)
                .and_then(|()| write(&conn, &key, &entries, durability, &mut level, &mut end));
            // A connection that could wait on the runtime's thread is not kept.
            let conn = conn.busy_timeout(Duration::ZERO).ok().map(|()| conn);
            (conn, level, end, written)
        })
        .await;
        match joined {
            Ok((conn, level, end, written)) => {
                self.conn = conn;
                self.level = level;
                *tail = end;
                let records = written?;
                self.since_checkpoint += records.len();
                Ok(records)
            }
            Err(e) => Err(StoreError::Db(format!("the audit append was lost: {e}"))),
        }
    }

    /// Whether enough records were appended since the last checkpoint to run one.
    pub(crate) fn checkpoint_due(&self) -> bool {
        self.since_checkpoint >= CHECKPOINT_EVERY
    }

    /// A passive checkpoint (which syncs the WAL first), on a blocking thread.
    pub(crate) async fn checkpoint(&mut self) -> Result<(), StoreError> {
        let conn = self.take()?;
        let joined = tokio::task::spawn_blocking(move || {
            let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            (conn, done)
        })
        .await;
        match joined {
            Ok((conn, done)) => {
                self.conn = Some(conn);
                done.map_err(|e| StoreError::Db(format!("checkpoint: {e}")))?;
                self.since_checkpoint = 0;
                Ok(())
            }
            Err(e) => Err(StoreError::Db(format!("the checkpoint was lost: {e}"))),
        }
    }
}
