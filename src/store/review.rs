//! Review analyses and what reviewers did with them (`src/review/` owns the meaning; here are
//! rows of plain strings and JSON text). Two guarantees live in SQL: an analysis is run by one
//! worker at a time (a claim with a lease, taken by one conditional UPDATE), and one head SHA is
//! analysed once (`review_cache` has the cache key as primary key: the first analysis to insert
//! it owns it, every other one links to it). XP is awarded once per reviewer and analysis, and
//! an achievement once per reviewer.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, now_ms};

/// One analysis as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewAnalysisRow {
    pub id: String,
    /// `owner/repo#n`
    pub pr_key: String,
    pub pr_url: String,
    pub options: String,
    pub requested_by: String,
    /// queued | running | complete | failed | linked
    pub state: String,
    pub stage: String,
    pub progress: i64,
    pub head_sha: Option<String>,
    pub cache_key: Option<String>,
    /// The analysis this one links to (same head SHA, analysed once).
    pub source_id: Option<String>,
    pub degraded: bool,
    /// waiting (PR-QUEST to be asked again) | done
    pub retry_state: Option<String>,
    pub retry_attempts: i64,
    pub next_retry_at_ms: Option<i64>,
    pub last_error: Option<String>,
    pub result: Option<String>,
    pub diff: Option<String>,
    pub group_request: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub completed_at_ms: Option<i64>,
}

/// The columns `analysis` reads (a macro: sqlx takes only static SQL, built with `concat!`).
macro_rules! columns {
    () => {
        "id, pr_key, pr_url, options, requested_by, state, stage, progress, head_sha, \
         cache_key, source_id, degraded, retry_state, retry_attempts, next_retry_at_ms, \
         last_error, result, diff, group_request, created_at_ms, updated_at_ms, completed_at_ms"
    };
}

fn analysis(r: &AnyRow) -> Result<ReviewAnalysisRow, sqlx::Error> {
    Ok(ReviewAnalysisRow {
        id: r.try_get("id")?,
        pr_key: r.try_get("pr_key")?,
        pr_url: r.try_get("pr_url")?,
        options: r.try_get("options")?,
        requested_by: r.try_get("requested_by")?,
        state: r.try_get("state")?,
        stage: r.try_get("stage")?,
        progress: r.try_get("progress")?,
        head_sha: r.try_get("head_sha")?,
        cache_key: r.try_get("cache_key")?,
        source_id: r.try_get("source_id")?,
        degraded: r.try_get::<i64, _>("degraded")? != 0,
        retry_state: r.try_get("retry_state")?,
        retry_attempts: r.try_get("retry_attempts")?,
        next_retry_at_ms: r.try_get("next_retry_at_ms")?,
        last_error: r.try_get("last_error")?,
        result: r.try_get("result")?,
        diff: r.try_get("diff")?,
        group_request: r.try_get("group_request")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        completed_at_ms: r.try_get("completed_at_ms")?,
    })
}

/// A reviewer note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewNoteRow {
    pub reviewer_sub: String,
    pub reviewer_name: String,
    pub step_id: String,
    pub text: String,
    pub at_ms: i64,
}

/// One reviewer of one analysis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewerRow {
    pub reviewer_sub: String,
    pub reviewer_name: String,
    pub started_at_ms: i64,
    pub completed_at_ms: Option<i64>,
    pub xp: i64,
    /// Step ids completed.
    pub steps: Vec<String>,
}

/// A leaderboard line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderRow {
    pub reviewer_sub: String,
    pub reviewer_name: String,
    pub xp: i64,
    pub reviews: i64,
    pub achievements: Vec<String>,
}

/// Whether a degraded analysis is told to administrators (`Store::review_outage_notice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageNotice {
    /// Send it: the first of an outage, or the interval since the last one passed.
    /// `suppressed` notices were held back since the last one sent; the outage began at
    /// `since_ms`.
    Send { suppressed: i64, since_ms: i64 },
    /// Within the interval of this outage's last notice: counted, not sent.
    Suppressed,
}

impl Store {
    /// One fallback notice per outage of `upstream`, or again once `interval_ms` passed since
    /// the last; every other call is counted for the next notice. Atomic across replicas: the
    /// UPDATE that sends also takes the count held back (SET reads the row as it was).
    pub async fn review_outage_notice(
        &self,
        upstream: &str,
        now_ms: i64,
        interval_ms: i64,
    ) -> Result<OutageNotice, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO review_notices (upstream, outage_since_ms, last_notice_at_ms, suppressed, \
             carried) VALUES ($1, NULL, 0, 0, 0) ON CONFLICT (upstream) DO NOTHING",
        )
        .bind(upstream)
        .execute(&mut *tx)
        .await?;
        let sent = sqlx::query(
            "UPDATE review_notices SET carried = suppressed, suppressed = 0, \
             last_notice_at_ms = $1, outage_since_ms = COALESCE(outage_since_ms, $1) \
             WHERE upstream = $2 AND (outage_since_ms IS NULL OR last_notice_at_ms <= $3) \
             RETURNING carried, outage_since_ms",
        )
        .bind(now_ms)
        .bind(upstream)
        .bind(now_ms.saturating_sub(interval_ms))
        .fetch_optional(&mut *tx)
        .await?;
        let decision = match sent {
            Some(row) => OutageNotice::Send {
                suppressed: row.try_get("carried")?,
                since_ms: row.try_get("outage_since_ms")?,
            },
            None => {
                sqlx::query(
                    "UPDATE review_notices SET suppressed = suppressed + 1 WHERE upstream = $1",
                )
                .bind(upstream)
                .execute(&mut *tx)
                .await?;
                OutageNotice::Suppressed
            }
        };
        tx.commit().await?;
        Ok(decision)
    }

    /// `upstream` answered: its outage (if one was under way) is over, so the next failure
    /// is told at once. True when an outage ended now.
    pub async fn review_upstream_recovered(&self, upstream: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE review_notices SET outage_since_ms = NULL WHERE upstream = $1 AND \
             outage_since_ms IS NOT NULL",
        )
        .bind(upstream)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_review_analysis(
        &self,
        id: &str,
        pr_key: &str,
        pr_url: &str,
        options: &str,
        requested_by: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO review_analyses (id, pr_key, pr_url, options, requested_by, state, stage, \
             progress, degraded, retry_attempts, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, 'queued', 'queued', 0, 0, 0, $6, $6)",
        )
        .bind(id)
        .bind(pr_key)
        .bind(pr_url)
        .bind(options)
        .bind(requested_by)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_review_analysis(
        &self,
        id: &str,
    ) -> Result<Option<ReviewAnalysisRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM review_analyses WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(analysis).transpose()?)
    }

    /// Take analysis `id` for `worker` for `lease_ms`: queued, or running under an expired lease
    /// (its worker died). True when this worker has it now.
    pub async fn claim_review_analysis(
        &self,
        id: &str,
        worker: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE review_analyses SET state = 'running', claimed_by = $1, claimed_until_ms = $2, \
             updated_at_ms = $3 WHERE id = $4 AND (state = 'queued' OR (state = 'running' AND \
             claimed_until_ms < $3))",
        )
        .bind(worker)
        .bind(now + lease_ms)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Analyses waiting for a worker (queued, or running under an expired lease), oldest first.
    pub async fn due_review_analyses(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        let ids = sqlx::query_scalar(
            "SELECT id FROM review_analyses WHERE state = 'queued' OR (state = 'running' AND \
             claimed_until_ms < $1) ORDER BY created_at_ms LIMIT $2",
        )
        .bind(now_ms())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    /// A single process starting (SQLite) owns every analysis: those left running by its last
    /// run are queued again. Returns how many.
    pub async fn requeue_running_reviews(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE review_analyses SET state = 'queued', claimed_by = NULL, claimed_until_ms = NULL \
             WHERE state = 'running'",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Stage and progress of a running analysis; extends the worker's lease. False when the
    /// worker lost it.
    pub async fn review_progress(
        &self,
        id: &str,
        worker: &str,
        stage: &str,
        progress: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE review_analyses SET stage = $1, progress = $2, claimed_until_ms = $3, \
             updated_at_ms = $4 WHERE id = $5 AND state = 'running' AND claimed_by = $6",
        )
        .bind(stage)
        .bind(progress)
        .bind(now + lease_ms)
        .bind(now)
        .bind(id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the head SHA and claims its cache key. Returns the analysis that owns the key:
    /// `id` itself when it was first, another one otherwise.
    pub async fn claim_review_head(
        &self,
        id: &str,
        head_sha: &str,
        cache_key: &str,
    ) -> Result<String, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO review_cache (cache_key, analysis_id, created_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (cache_key) DO NOTHING",
        )
        .bind(cache_key)
        .bind(id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let owner: String =
            sqlx::query_scalar("SELECT analysis_id FROM review_cache WHERE cache_key = $1")
                .bind(cache_key)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query("UPDATE review_analyses SET head_sha = $1, cache_key = $2 WHERE id = $3")
            .bind(head_sha)
            .bind(cache_key)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(owner)
    }

    /// This analysis answers from `source_id` (same head SHA).
    pub async fn link_review_analysis(&self, id: &str, source_id: &str) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE review_analyses SET state = 'linked', source_id = $1, stage = 'cached', \
             progress = 100, completed_at_ms = $2, updated_at_ms = $2, claimed_by = NULL WHERE id = $3",
        )
        .bind(source_id)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The analysis finished (`degraded`: without PR-QUEST; `retry_at_ms`: ask PR-QUEST again then).
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_review_analysis(
        &self,
        id: &str,
        worker: &str,
        result: &str,
        diff: &str,
        group_request: &str,
        degraded: bool,
        retry_at_ms: Option<i64>,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE review_analyses SET state = 'complete', stage = 'complete', progress = 100, \
             result = $1, diff = $2, group_request = $3, degraded = $4, retry_state = $5, \
             next_retry_at_ms = $6, last_error = $7, completed_at_ms = $8, updated_at_ms = $8, \
             claimed_by = NULL WHERE id = $9 AND state = 'running' AND claimed_by = $10",
        )
        .bind(result)
        .bind(diff)
        .bind(group_request)
        .bind(i64::from(degraded))
        .bind(retry_at_ms.map(|_| "waiting"))
        .bind(retry_at_ms)
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The analysis failed; its cache key (if it owned one) is released for a later attempt.
    pub async fn fail_review_analysis(&self, id: &str, error: &str) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM review_cache WHERE analysis_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE review_analyses SET state = 'failed', stage = 'failed', last_error = $1, \
             completed_at_ms = $2, updated_at_ms = $2, claimed_by = NULL WHERE id = $3",
        )
        .bind(error)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Degraded analyses whose retry is due, oldest first.
    pub async fn due_review_retries(
        &self,
        limit: i64,
    ) -> Result<Vec<ReviewAnalysisRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM review_analyses WHERE retry_state = 'waiting' AND \
             next_retry_at_ms <= $1 ORDER BY next_retry_at_ms LIMIT $2"
        ))
        .bind(now_ms())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(analysis).collect::<Result<_, _>>()?)
    }

    /// Take a due retry (moves its time to `hold_until_ms`, so no other replica takes it).
    pub async fn claim_review_retry(
        &self,
        id: &str,
        seen_at_ms: i64,
        hold_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE review_analyses SET next_retry_at_ms = $1 WHERE id = $2 AND \
             retry_state = 'waiting' AND next_retry_at_ms = $3",
        )
        .bind(hold_until_ms)
        .bind(id)
        .bind(seen_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// PR-QUEST answered a retry: the full result replaces the degraded one.
    pub async fn finish_review_retry(&self, id: &str, result: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE review_analyses SET result = $1, degraded = 0, retry_state = 'done', \
             next_retry_at_ms = NULL, last_error = NULL, updated_at_ms = $2 WHERE id = $3",
        )
        .bind(result)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn record_review_retry_failure(
        &self,
        id: &str,
        next_at_ms: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE review_analyses SET retry_attempts = retry_attempts + 1, next_retry_at_ms = $1, \
             last_error = $2, updated_at_ms = $3 WHERE id = $4 AND retry_state = 'waiting'",
        )
        .bind(next_at_ms)
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Degraded analyses still waiting for PR-QUEST.
    pub async fn count_review_retries(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM review_analyses WHERE retry_state = 'waiting'",
            )
            .fetch_one(&self.pool)
            .await?,
        )
    }

    /// Records `sub` as a reviewer of `analysis_id` (the first time: now is when they started).
    pub async fn touch_reviewer(
        &self,
        analysis_id: &str,
        sub: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO review_reviewers (analysis_id, reviewer_sub, reviewer_name, started_at_ms, xp) \
             VALUES ($1, $2, $3, $4, 0) ON CONFLICT (analysis_id, reviewer_sub) DO NOTHING",
        )
        .bind(analysis_id)
        .bind(sub)
        .bind(name)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn add_review_note(
        &self,
        analysis_id: &str,
        sub: &str,
        name: &str,
        step_id: &str,
        text: &str,
    ) -> Result<(), StoreError> {
        self.touch_reviewer(analysis_id, sub, name).await?;
        sqlx::query(
            "INSERT INTO review_notes (id, analysis_id, reviewer_sub, reviewer_name, step_id, text, at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(analysis_id)
        .bind(sub)
        .bind(name)
        .bind(step_id)
        .bind(text)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a step done for `sub`; false when it already was.
    pub async fn complete_review_step(
        &self,
        analysis_id: &str,
        sub: &str,
        name: &str,
        step_id: &str,
    ) -> Result<bool, StoreError> {
        self.touch_reviewer(analysis_id, sub, name).await?;
        let done = sqlx::query(
            "INSERT INTO review_steps_done (analysis_id, reviewer_sub, step_id, at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (analysis_id, reviewer_sub, step_id) DO NOTHING",
        )
        .bind(analysis_id)
        .bind(sub)
        .bind(step_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every note of an analysis, oldest first.
    pub async fn review_notes(&self, analysis_id: &str) -> Result<Vec<ReviewNoteRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT reviewer_sub, reviewer_name, step_id, text, at_ms FROM review_notes \
             WHERE analysis_id = $1 ORDER BY at_ms, id",
        )
        .bind(analysis_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReviewNoteRow {
                    reviewer_sub: r.try_get("reviewer_sub")?,
                    reviewer_name: r.try_get("reviewer_name")?,
                    step_id: r.try_get("step_id")?,
                    text: r.try_get("text")?,
                    at_ms: r.try_get("at_ms")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Every reviewer of an analysis with the steps each completed, in order of starting.
    pub async fn reviewers(&self, analysis_id: &str) -> Result<Vec<ReviewerRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT reviewer_sub, reviewer_name, started_at_ms, completed_at_ms, xp FROM review_reviewers \
             WHERE analysis_id = $1 ORDER BY started_at_ms, reviewer_sub",
        )
        .bind(analysis_id)
        .fetch_all(&self.pool)
        .await?;
        let steps = sqlx::query(
            "SELECT reviewer_sub, step_id FROM review_steps_done WHERE analysis_id = $1 ORDER BY at_ms",
        )
        .bind(analysis_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let sub: String = r.try_get("reviewer_sub")?;
            let mut done = Vec::new();
            for s in &steps {
                if s.try_get::<String, _>("reviewer_sub")? == sub {
                    done.push(s.try_get("step_id")?);
                }
            }
            out.push(ReviewerRow {
                reviewer_name: r.try_get("reviewer_name")?,
                started_at_ms: r.try_get("started_at_ms")?,
                completed_at_ms: r.try_get("completed_at_ms")?,
                xp: r.try_get("xp")?,
                steps: done,
                reviewer_sub: sub,
            });
        }
        Ok(out)
    }

    /// Awards `xp` for a finished review, once: false when it was already awarded.
    pub async fn finish_review(
        &self,
        analysis_id: &str,
        sub: &str,
        xp: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE review_reviewers SET completed_at_ms = $1, xp = $2 WHERE analysis_id = $3 AND \
             reviewer_sub = $4 AND completed_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(xp)
        .bind(analysis_id)
        .bind(sub)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Reviews `sub` has finished.
    pub async fn finished_reviews(&self, sub: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM review_reviewers WHERE reviewer_sub = $1 AND completed_at_ms IS NOT NULL",
        )
        .bind(sub)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Awards an achievement, once per reviewer: false when they had it.
    pub async fn award_achievement(
        &self,
        sub: &str,
        achievement: &str,
        analysis_id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO review_achievements (reviewer_sub, achievement, analysis_id, at_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (reviewer_sub, achievement) DO NOTHING",
        )
        .bind(sub)
        .bind(achievement)
        .bind(analysis_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Reviewers by XP (then finished reviews, then name), at most `limit`.
    pub async fn review_leaderboard(&self, limit: i64) -> Result<Vec<LeaderRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT reviewer_sub, MAX(reviewer_name) AS reviewer_name, SUM(xp) AS xp, \
             SUM(CASE WHEN completed_at_ms IS NULL THEN 0 ELSE 1 END) AS reviews \
             FROM review_reviewers GROUP BY reviewer_sub \
             HAVING SUM(CASE WHEN completed_at_ms IS NULL THEN 0 ELSE 1 END) > 0 \
             ORDER BY SUM(xp) DESC, SUM(CASE WHEN completed_at_ms IS NULL THEN 0 ELSE 1 END) DESC, \
             MAX(reviewer_name) LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let sub: String = r.try_get("reviewer_sub")?;
            let achievements: Vec<String> = sqlx::query_scalar(
                "SELECT achievement FROM review_achievements WHERE reviewer_sub = $1 ORDER BY at_ms, achievement",
            )
            .bind(&sub)
            .fetch_all(&self.pool)
            .await?;
            out.push(LeaderRow {
                reviewer_name: r.try_get("reviewer_name")?,
                xp: int(r, "xp")?,
                reviews: int(r, "reviews")?,
                achievements,
                reviewer_sub: sub,
            });
        }
        Ok(out)
    }
}

/// A SUM: BIGINT on SQLite, NUMERIC on PostgreSQL (read through its text).
fn int(r: &AnyRow, column: &str) -> Result<i64, sqlx::Error> {
    match r.try_get::<i64, _>(column) {
        Ok(v) => Ok(v),
        Err(_) => {
            let text: String = r.try_get(column)?;
            text.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))
        }
    }
}
