//! The index database: SQLite with FTS5 (the bundled SQLite of sqlx is built with it), of its
//! own — a file or memory — so it works whichever backend the store uses. `docs` holds the
//! documents and their vectors, `docs_fts` their text (title, body, tags, kind) for BM25,
//! `links` who points at whom. Only this file writes SQL.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::KnowledgeError;
use super::document::{Document, Kind};

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
    // Porter stemming: `restarting`, `restarts` and `restart` meet.
    "CREATE VIRTUAL TABLE IF NOT EXISTS docs_fts USING fts5(
        title, body, tags, kind, tokenize = 'porter unicode61')",
    "CREATE TABLE IF NOT EXISTS links (from_id TEXT NOT NULL, to_id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS links_to ON links(to_id)",
    "CREATE INDEX IF NOT EXISTS links_from ON links(from_id)",
];

/// Full-text matches, best first: rowid and BM25 only, so SQLite scores every match but reads no
/// document and makes no snippet for the ones that do not make the cut. Column weights: title
/// 4, body 1, tags 2, kind 0 (the kind column only filters).
const TEXT_SEARCH: &str = "SELECT rowid, -bm25(docs_fts, 4.0, 1.0, 2.0, 0.0)
    FROM docs_fts WHERE docs_fts MATCH ?1 ORDER BY bm25(docs_fts, 4.0, 1.0, 2.0, 0.0) LIMIT ?2";

/// The matched region of one row's body (FTS5 finds the row by rowid, not by scanning).
const SNIPPET: &str = "SELECT snippet(docs_fts, 1, '', '', '…', 24) FROM docs_fts
    WHERE docs_fts MATCH ?1 AND rowid = ?2";

/// What a feed's sync changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    pub written: usize,
    pub removed: usize,
}

pub struct Index {
    pool: SqlitePool,
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
        Ok(Index { pool })
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
        let mut tx = self.pool.begin().await.map_err(db)?;
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
        let mut seen = HashSet::new();
        for doc in docs {
            if !seen.insert(doc.id.as_str()) {
                continue;
            }
            let digest = doc.digest();
            let old = known.get(&doc.id);
            if old.is_some_and(|(_, d)| *d == digest) {
                continue;
            }
            if let Some((rowid, _)) = old {
                delete_row(&mut tx, *rowid, &doc.id).await?;
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
                dropped.push(rowid);
            }
            insert_row(&mut tx, feed, doc, &digest).await?;
            synced.written += 1;
        }
        if remove_missing {
            for (id, (rowid, _)) in &known {
                if !seen.contains(id.as_str()) {
                    delete_row(&mut tx, *rowid, id).await?;
                    dropped.push(*rowid);
                    synced.removed += 1;
                }
            }
        }
        tx.commit().await.map_err(db)?;
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

    /// BM25 matches of an FTS5 expression, best first: (rowid, score; higher is better).
    pub async fn text_search(
        &self,
        expression: &str,
        limit: usize,
    ) -> Result<Vec<(i64, f64)>, KnowledgeError> {
        let rows = sqlx::query(TEXT_SEARCH)
            .bind(expression)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The part of row `rowid`'s body that matches `expression` (`None` when it does not).
    pub async fn snippet(
        &self,
        expression: &str,
        rowid: i64,
    ) -> Result<Option<String>, KnowledgeError> {
        let row = sqlx::query(SNIPPET)
            .bind(expression)
            .bind(rowid)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Documents by rowid, in the order given (those still there).
    pub async fn by_rowid(&self, rowids: &[i64]) -> Result<Vec<(i64, Document)>, KnowledgeError> {
        let mut out = Vec::with_capacity(rowids.len());
        for rowid in rowids {
            if let Some(r) = sqlx::query(
                "SELECT id, kind, title, body, tags, source, status, links, created_ms, updated_ms
                 FROM docs WHERE rowid = ?1",
            )
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
) -> Result<(), KnowledgeError> {
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
    sqlx::query(
        "INSERT INTO docs_fts (rowid, title, body, tags, kind) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(rowid)
    .bind(&doc.title)
    .bind(&doc.body)
    .bind(doc.tags.join(" "))
    .bind(doc.kind.as_str())
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    for link in &doc.links {
        sqlx::query("INSERT INTO links (from_id, to_id) VALUES (?1, ?2)")
            .bind(&doc.id)
            .bind(link)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    Ok(())
}

async fn delete_row(
    tx: &mut sqlx::SqliteConnection,
    rowid: i64,
    id: &str,
) -> Result<(), KnowledgeError> {
    for sql in [
        "DELETE FROM docs_fts WHERE rowid = ?1",
        "DELETE FROM docs WHERE rowid = ?1",
    ] {
        sqlx::query(sql)
            .bind(rowid)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
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

fn db(e: sqlx::Error) -> KnowledgeError {
    KnowledgeError::Db(e.to_string())
}
