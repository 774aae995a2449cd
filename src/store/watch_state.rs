//! Last-known health of watched Kubernetes objects (the `k8s_watch_state` rows), so a restart
//! compares against what was last reported instead of reporting every object again. States
//! are opaque JSON text here; the signal source owns their meaning.

use sqlx::Row;

use super::{Store, StoreError, now_ms};

impl Store {
    /// Every stored `(object key, state)` of `cluster`.
    pub async fn watch_states(&self, cluster: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT object, state FROM k8s_watch_state WHERE cluster = $1")
            .bind(cluster)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("object")?, r.try_get("state")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Record the states of objects (insert or replace), in one transaction.
    pub async fn put_watch_states(
        &self,
        cluster: &str,
        states: &[(String, String)],
    ) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        for (object, state) in states {
            sqlx::query(
                "INSERT INTO k8s_watch_state (cluster, object, state, updated_at_ms) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (cluster, object) DO UPDATE SET \
                 state = excluded.state, updated_at_ms = excluded.updated_at_ms",
            )
            .bind(cluster)
            .bind(object)
            .bind(state)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forget objects that no longer exist.
    pub async fn delete_watch_states(
        &self,
        cluster: &str,
        objects: &[String],
    ) -> Result<(), StoreError> {
        for object in objects {
            sqlx::query("DELETE FROM k8s_watch_state WHERE cluster = $1 AND object = $2")
                .bind(cluster)
                .bind(object)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}
