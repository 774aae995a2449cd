//! Incident links: for each incident the facts consumer followed, its ticket, its page (or the
//! page deferred to business hours), its state, and the stream sequence of the last fact
//! applied; and the claims (`incident_claims`) that let one replica at a time apply an
//! incident's facts. Owns those rows only; what the states mean is the consumer's.

use sqlx::Row;

use super::{Store, StoreError, now_ms};

/// One incident's row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IncidentLink {
    pub incident_id: String,
    pub severity: String,
    pub title: String,
    /// open | acknowledged | resolved | closed.
    pub state: String,
    pub ticket_provider: Option<String>,
    pub ticket_key: Option<String>,
    /// none | open | resolved | closed.
    pub ticket_state: String,
    pub page_provider: Option<String>,
    /// none | deferred | triggered | acknowledged | resolved | skipped.
    pub page_state: String,
    /// When a deferred page is due (unix ms).
    pub page_deferred_until_ms: Option<i64>,
    /// Stream sequence of the last fact applied (0: none yet).
    pub last_seq: i64,
    /// What happened that a human should know (out of order facts), one per line.
    pub notes: String,
}

macro_rules! columns {
    () => {
        "incident_id, severity, title, state, ticket_provider, ticket_key, ticket_state, \
         page_provider, page_state, page_deferred_until_ms, last_seq, notes"
    };
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<IncidentLink, sqlx::Error> {
    Ok(IncidentLink {
        incident_id: r.try_get("incident_id")?,
        severity: r.try_get("severity")?,
        title: r.try_get("title")?,
        state: r.try_get("state")?,
        ticket_provider: r.try_get("ticket_provider")?,
        ticket_key: r.try_get("ticket_key")?,
        ticket_state: r.try_get("ticket_state")?,
        page_provider: r.try_get("page_provider")?,
        page_state: r.try_get("page_state")?,
        page_deferred_until_ms: r.try_get("page_deferred_until_ms")?,
        last_seq: r.try_get("last_seq")?,
        notes: r.try_get("notes")?,
    })
}

impl Store {
    pub async fn get_incident_link(&self, id: &str) -> Result<Option<IncidentLink>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM incident_links WHERE incident_id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// Writes the whole row (insert or replace).
    pub async fn put_incident_link(&self, l: &IncidentLink) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO incident_links (",
            columns!(),
            ", updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (incident_id) DO UPDATE SET severity = excluded.severity, \
             title = excluded.title, state = excluded.state, \
             ticket_provider = excluded.ticket_provider, ticket_key = excluded.ticket_key, \
             ticket_state = excluded.ticket_state, page_provider = excluded.page_provider, \
             page_state = excluded.page_state, \
             page_deferred_until_ms = excluded.page_deferred_until_ms, \
             last_seq = excluded.last_seq, notes = excluded.notes, \
             updated_at_ms = excluded.updated_at_ms"
        ))
        .bind(&l.incident_id)
        .bind(&l.severity)
        .bind(&l.title)
        .bind(&l.state)
        .bind(&l.ticket_provider)
        .bind(&l.ticket_key)
        .bind(&l.ticket_state)
        .bind(&l.page_provider)
        .bind(&l.page_state)
        .bind(l.page_deferred_until_ms)
        .bind(l.last_seq)
        .bind(&l.notes)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims `id` for `holder` until `lease_ms` from now: free, already `holder`'s (renewed),
    /// or held under an expired lease (its replica died). One conditional upsert, so two
    /// replicas racing for it cannot both win. True when `holder` has it now.
    pub async fn claim_incident(
        &self,
        id: &str,
        holder: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO incident_claims (incident_id, holder, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (incident_id) DO UPDATE SET holder = excluded.holder, \
             until_ms = excluded.until_ms \
             WHERE incident_claims.holder = excluded.holder OR incident_claims.until_ms < $4",
        )
        .bind(id)
        .bind(holder)
        .bind(now.saturating_add(lease_ms))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up `holder`'s claim on `id` (another holder's claim is left alone).
    pub async fn release_incident(&self, id: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM incident_claims WHERE incident_id = $1 AND holder = $2")
            .bind(id)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Incidents whose deferred page is due at `now_ms`.
    pub async fn due_deferred_pages(&self, now_ms: i64) -> Result<Vec<IncidentLink>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM incident_links WHERE page_state = 'deferred' \
             AND page_deferred_until_ms <= $1 ORDER BY page_deferred_until_ms LIMIT 100"
        ))
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }
}
