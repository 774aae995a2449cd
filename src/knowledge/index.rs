//! The index database: SQLite of its own — a file or memory — so it works whichever backend
//! the store uses. `docs` holds the documents and their vectors (the one source of truth),
//! `links` who points at whom, `meta` the write generation. The full text is a projection of
//! `docs` in tantivy (`text.rs`), written after each sync's transaction and stamped with its
//! generation, rebuilt from `docs` when it is missing, of another version or behind. Only this
//! file writes SQL.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::KnowledgeError;
use super::document::{Document, Kind};
use super::text::{Op, Snippets, TextDoc, TextIndex, TextQuery};

/// `SELECT` of a document's columns (what [`document`] reads) from `docs`, then `$tail`.
macro_rules! select_docs {
    ($tail:literal) => {
        concat!(
            "SELECT id, kind, title, body, tags, source, status, links, created_ms, updated_ms FROM docs ",
            $tail
        )
    };
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS docs (
        rowid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        feed TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        tags TEXT NOT NULL,
        source TEXT NOT NULL,
        status TEXT,
        links TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        digest TEXT NOT NULL,
        vector BLOB
    )",
    "CREATE INDEX IF NOT EXISTS docs_feed ON docs(feed)",
    // The FTS5 table of earlier versions: the full text is in tantivy now.
    "DROP TABLE IF EXISTS docs_fts",
    "CREATE TABLE IF NOT EXISTS links (from_id TEXT NOT NULL, to_id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS links_to ON links(to_id)",
    "CREATE INDEX IF NOT EXISTS links_from ON links(from_id)",
    // `text_generation`: bumped by every sync that changes `docs`; the full-text projection's
    // commit names the generation it reflects.
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('text_generation', 0)",
];

/// Documents read per batch when the projection is rebuilt.
const REBUILD_BATCH: i64 = 5_000;

/// What a feed's sync changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    pub written: usize,
    pub removed: usize,
}

pub struct Index {
    pool: SqlitePool,
    text: Arc<TextIndex>,
    /// One sync at a time, so the projection's commits follow the generations in order.
    writing: tokio::sync::Mutex<()>,
}

impl Index {
    /// Opens (creating) the index at `path`, or in memory.
    pub async fn open(path: Option<&Path>) -> Result<Index, KnowledgeError> {
        let (options, connections) = match path {
            Some(p) => (
                SqliteConnectOptions::new()
                    .filename(p)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal),
                4,
            ),
            // One connection: each in-memory connection would be a database of its own.
            None => (
                SqliteConnectOptions::from_str("sqlite::memory:").map_err(db)?,
                1,
            ),
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .connect_with(options)
            .await
            .map_err(|e| {
                KnowledgeError::Db(match path {
                    Some(p) => format!("cannot open the index at {}: {e}", p.display()),
                    None => format!("cannot open the in-memory index: {e}"),
                })
            })?;
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&pool).await.map_err(db)?;
        }
        let dir = path.map(super::text::dir_beside);
        let text = blocking(move || TextIndex::open(dir.as_deref())).await?;
        let index = Index {
            pool,
            text: Arc::new(text),
            writing: tokio::sync::Mutex::new(()),
        };
        let generation = index.generation().await?;
        if index.text.generation() != Some(generation) {
            let _writing = index.writing.lock().await;
            index.rebuild_text(generation).await?;
        }
        Ok(index)
    }

    async fn generation(&self) -> Result<i64, KnowledgeError> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = 'text_generation'")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(row.get(0))
    }

    /// Makes the full-text projection again from `docs` (the caller holds `writing`).
    async fn rebuild_text(&self, generation: i64) -> Result<(), KnowledgeError> {
        let started = std::time::Instant::now();
        let text = self.text.clone();
        blocking(move || text.clear()).await?;
        let mut after = 0i64;
        let mut count = 0usize;
        loop {
            let rows = sqlx::query(
                "SELECT rowid, kind, title, body, tags FROM docs WHERE rowid > ?1
                 ORDER BY rowid LIMIT ?2",
            )
            .bind(after)
            .bind(REBUILD_BATCH)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            let Some(last) = rows.last() else { break };
            after = last.get(0);
            let docs = rows
                .iter()
                .map(|r| {
                    Ok(TextDoc {
                        rowid: r.get(0),
                        kind: kind(r.get(1))?,
                        title: r.get(2),
                        body: r.get(3),
                        tags: tags(r.get(4))?,
                    })
                })
                .collect::<Result<Vec<_>, KnowledgeError>>()?;
            count += docs.len();
            let text = self.text.clone();
            blocking(move || text.add(docs)).await?;
        }
        let text = self.text.clone();
        blocking(move || text.apply(Vec::new(), generation)).await?;
        tracing::info!(
            documents = count,
            took_ms = started.elapsed().as_millis() as u64,
            "knowledge: full-text index rebuilt from the documents"
        );
        Ok(())
    }

    /// Makes the documents of `feed` exactly `docs`: new and changed ones written (their
    /// vectors dropped), unchanged ones left alone, the others removed. `remove_missing: false`
    /// only adds and updates. Returns the rowids whose vectors were dropped or removed.
    pub async fn sync(
        &self,
        feed: &str,
        docs: &[Document],
        remove_missing: bool,
    ) -> Result<(Synced, Vec<i64>), KnowledgeError> {
        let _writing = self.writing.lock().await;
        let mut tx = self.pool.begin().await.map_err(db)?;
        let mut ops: Vec<Op> = Vec::new();
        let mut known: HashMap<String, (i64, String)> = HashMap::new();
        if remove_missing {
            for row in sqlx::query("SELECT rowid, id, digest FROM docs WHERE feed = ?1")
                .bind(feed)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?
            {
                known.insert(row.get(1), (row.get(0), row.get(2)));
            }
        } else {
            for doc in docs {
                if let Some(row) = sqlx::query("SELECT rowid, digest FROM docs WHERE id = ?1")
                    .bind(&doc.id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?
                {
                    known.insert(doc.id.clone(), (row.get(0), row.get(1)));
                }
            }
        }
        let mut synced = Synced::default();
        let mut dropped = Vec::new();
        // An id given twice (an alert firing then resolved in one batch, an item created then
        // updated): the last one is what the feed says now.
        let last: HashMap<&str, usize> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.as_str(), i))
            .collect();
        let mut seen = HashSet::new();
        for (i, doc) in docs.iter().enumerate() {
            if last.get(doc.id.as_str()) != Some(&i) {
                continue;
            }
            seen.insert(doc.id.as_str());
            let digest = doc.digest();
            let old = known.get(&doc.id);
            if old.is_some_and(|(_, d)| *d == digest) {
                continue;
            }
            if let Some((rowid, _)) = old {
                delete_row(&mut tx, *rowid, &doc.id).await?;
                ops.push(Op::Remove(*rowid));
                dropped.push(*rowid);
            } else if remove_missing
                && let Some(row) = sqlx::query("SELECT rowid FROM docs WHERE id = ?1")
                    .bind(&doc.id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?
            {
                // The same id from another feed: the newer write wins.
                let rowid: i64 = row.get(0);
                delete_row(&mut tx, rowid, &doc.id).await?;
                ops.push(Op::Remove(rowid));
                dropped.push(rowid);
            }
            let rowid = insert_row(&mut tx, feed, doc, &digest).await?;
            ops.push(Op::Add(TextDoc {
                rowid,
                kind: doc.kind,
                title: doc.title.clone(),
                body: doc.body.clone(),
                tags: doc.tags.clone(),
            }));
            synced.written += 1;
        }
        if remove_missing {
            for (id, (rowid, _)) in &known {
                if !seen.contains(id.as_str()) {
                    delete_row(&mut tx, *rowid, id).await?;
                    ops.push(Op::Remove(*rowid));
                    dropped.push(*rowid);
                    synced.removed += 1;
                }
            }
        }
        if ops.is_empty() {
            tx.commit().await.map_err(db)?;
            return Ok((synced, dropped));
        }
        let generation: i64 = sqlx::query(
            "UPDATE meta SET value = value + 1 WHERE key = 'text_generation' RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?
        .get(0);
        tx.commit().await.map_err(db)?;
        // The documents are written; the projection follows. Should it fail, it is rebuilt
        // from them (and, failing that too, at the next open: its generation is behind).
        let text = self.text.clone();
        if let Err(e) = blocking(move || text.apply(ops, generation)).await {
            tracing::warn!(error = %e, "knowledge: updating the full-text index failed; rebuilding it");
            self.rebuild_text(generation).await?;
        }
        Ok((synced, dropped))
    }

    /// Feeds whose name starts with `prefix` (the runbook files known to the index).
    pub async fn feeds(&self, prefix: &str) -> Result<Vec<String>, KnowledgeError> {
        let rows = sqlx::query("SELECT DISTINCT feed FROM docs WHERE substr(feed, 1, ?2) = ?1")
            .bind(prefix)
            .bind(prefix.chars().count() as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The `limit` best full-text matches, best first: (rowid, BM25 score; higher is better).
    pub fn text_search(
        &self,
        query: &TextQuery,
        limit: usize,
    ) -> Result<Vec<(i64, f64)>, KnowledgeError> {
        self.text.search(query, limit)
    }

    /// What makes the snippets of `query`'s matches.
    pub fn snippets(&self, query: &TextQuery) -> Result<Snippets, KnowledgeError> {
        self.text.snippets(query)
    }

    /// Documents by rowid, in the order given (those still there).
    pub async fn by_rowid(&self, rowids: &[i64]) -> Result<Vec<(i64, Document)>, KnowledgeError> {
        let mut out = Vec::with_capacity(rowids.len());
        for rowid in rowids {
            if let Some(r) = sqlx::query(select_docs!("WHERE rowid = ?1"))
                .bind(rowid)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?
            {
                out.push((*rowid, document(&r, 0)?));
            }
        }
        Ok(out)
    }

    /// The document `id`, if indexed.
    pub async fn get(&self, id: &str) -> Result<Option<Document>, KnowledgeError> {
        self.first(sqlx::query(select_docs!("WHERE id = ?1")).bind(id))
            .await
    }

    /// The most recently created document of `feed` (a health subject's last episode).
    pub async fn latest(&self, feed: &str) -> Result<Option<Document>, KnowledgeError> {
        self.first(
            sqlx::query(select_docs!(
                "WHERE feed = ?1 ORDER BY created_ms DESC, rowid DESC LIMIT 1"
            ))
            .bind(feed),
        )
        .await
    }

    async fn first(
        &self,
        query: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<Option<Document>, KnowledgeError> {
        query
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .map(|r| document(&r, 0))
            .transpose()
    }

    /// A topic's checkpoint: the last stream sequence whose message is indexed.
    pub async fn checkpoint(&self, key: &str) -> Result<Option<u64>, KnowledgeError> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = ?1")
            .bind(format!("checkpoint:{key}"))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(row.map(|r| u64::try_from(r.get::<i64, _>(0)).unwrap_or_default()))
    }

    pub async fn set_checkpoint(&self, key: &str, seq: u64) -> Result<(), KnowledgeError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(format!("checkpoint:{key}"))
        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Backlog items linked with `id`, either way.
    pub async fn backlog_links(&self, id: &str) -> Result<Vec<String>, KnowledgeError> {
        let rows = sqlx::query(
            "SELECT d.id FROM links l JOIN docs d ON d.id = l.from_id
               WHERE l.to_id = ?1 AND d.kind = 'backlog'
             UNION
             SELECT d.id FROM links l JOIN docs d ON d.id = l.to_id
               WHERE l.from_id = ?1 AND d.kind = 'backlog'
             ORDER BY 1",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Documents without a vector, oldest rows first.
    pub async fn without_vectors(
        &self,
        limit: usize,
    ) -> Result<Vec<(i64, Document)>, KnowledgeError> {
        let rows = sqlx::query(
            "SELECT rowid, id, kind, title, body, tags, source, status, links, created_ms, updated_ms
             FROM docs WHERE vector IS NULL ORDER BY rowid LIMIT ?1",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| Ok((r.get(0), document(r, 1)?)))
            .collect()
    }

    /// Stores the vector of a row (if the row still holds the document it was made of).
    pub async fn set_vector(
        &self,
        rowid: i64,
        digest: &str,
        vector: &[f32],
    ) -> Result<bool, KnowledgeError> {
        let blob: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        let done = sqlx::query("UPDATE docs SET vector = ?1 WHERE rowid = ?2 AND digest = ?3")
            .bind(blob)
            .bind(rowid)
            .bind(digest)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// Every stored vector with its row's kind and tags (loaded once at start).
    pub async fn vectors(&self) -> Result<Vec<(i64, Kind, Vec<String>, Vec<f32>)>, KnowledgeError> {
        let rows =
            sqlx::query("SELECT rowid, kind, tags, vector FROM docs WHERE vector IS NOT NULL")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        rows.iter()
            .map(|r| {
                let blob: Vec<u8> = r.get(3);
                let vector = blob
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Ok((r.get(0), kind(r.get(1))?, tags(r.get(2))?, vector))
            })
            .collect()
    }

    /// How many documents of each kind.
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, KnowledgeError> {
        let rows = sqlx::query("SELECT kind, count(*) FROM docs GROUP BY kind ORDER BY kind")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

async fn insert_row(
    tx: &mut sqlx::SqliteConnection,
    feed: &str,
    doc: &Document,
    digest: &str,
) -> Result<i64, KnowledgeError> {
    let tags_json =
        serde_json::to_string(&doc.tags).map_err(|e| KnowledgeError::Db(e.to_string()))?;
    let links_json =
        serde_json::to_string(&doc.links).map_err(|e| KnowledgeError::Db(e.to_string()))?;
    let rowid: i64 = sqlx::query(
        "INSERT INTO docs (id, kind, feed, title, body, tags, source, status, links, created_ms,
                           updated_ms, digest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING rowid",
    )
    .bind(&doc.id)
    .bind(doc.kind.as_str())
    .bind(feed)
    .bind(&doc.title)
    .bind(&doc.body)
    .bind(&tags_json)
    .bind(&doc.source)
    .bind(&doc.status)
    .bind(&links_json)
    .bind(doc.created_ms)
    .bind(doc.updated_ms)
    .bind(digest)
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?
    .get(0);
    for link in &doc.links {
        sqlx::query("INSERT INTO links (from_id, to_id) VALUES (?1, ?2)")
            .bind(&doc.id)
            .bind(link)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    Ok(rowid)
}

async fn delete_row(
    tx: &mut sqlx::SqliteConnection,
    rowid: i64,
    id: &str,
) -> Result<(), KnowledgeError> {
    sqlx::query("DELETE FROM docs WHERE rowid = ?1")
        .bind(rowid)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    sqlx::query("DELETE FROM links WHERE from_id = ?1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    Ok(())
}

/// A document from the columns `id, kind, title, body, tags, source, status, links,
/// created_ms, updated_ms` starting at `at`.
fn document(r: &sqlx::sqlite::SqliteRow, at: usize) -> Result<Document, KnowledgeError> {
    let links: String = r.get(at + 7);
    Ok(Document {
        id: r.get(at),
        kind: kind(r.get(at + 1))?,
        title: r.get(at + 2),
        body: r.get(at + 3),
        tags: tags(r.get(at + 4))?,
        source: r.get(at + 5),
        status: r.get(at + 6),
        links: serde_json::from_str(&links).map_err(|e| KnowledgeError::Db(e.to_string()))?,
        created_ms: r.get(at + 8),
        updated_ms: r.get(at + 9),
    })
}

fn kind(text: String) -> Result<Kind, KnowledgeError> {
    Kind::parse(&text)
        .ok_or_else(|| KnowledgeError::Db(format!("unknown kind `{text}` in the index")))
}

fn tags(json: String) -> Result<Vec<String>, KnowledgeError> {
    serde_json::from_str(&json).map_err(|e| KnowledgeError::Db(format!("tags: {e}")))
}

/// Runs blocking work of the full-text index off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, KnowledgeError> + Send + 'static,
) -> Result<T, KnowledgeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| KnowledgeError::Db(format!("full-text index task: {e}")))?
}

fn db(e: sqlx::Error) -> KnowledgeError {
    KnowledgeError::Db(e.to_string())
}
