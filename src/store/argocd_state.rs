//! The ArgoCD poller's last seen state per application: health, sync and a change counter
//! (`seq`, part of each health intent's idempotency key). Owns the `argocd_app_state` rows only.

use sqlx::Row;

use super::{Store, StoreError, now_ms};

/// One application's last seen state as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppStateRow {
    /// `namespace/name` of the Application object.
    pub app: String,
    pub environment: String,
    pub health: String,
    pub sync: String,
    /// How many changes were reported for it.
    pub seq: i64,
}

impl Store {
    /// Every application's last seen state.
    pub async fn argocd_app_states(&self) -> Result<Vec<AppStateRow>, StoreError> {
        let rows = sqlx::query("SELECT app, environment, health, sync, seq FROM argocd_app_state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AppStateRow {
                    app: r.try_get("app")?,
                    environment: r.try_get("environment")?,
                    health: r.try_get("health")?,
                    sync: r.try_get("sync")?,
                    seq: r.try_get("seq")?,
                })
            })
            .collect()
    }

    /// Insert or replace these applications' states in one transaction.
    pub async fn put_argocd_app_states(&self, states: &[AppStateRow]) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        for s in states {
            sqlx::query(
                "INSERT INTO argocd_app_state (app, environment, health, sync, seq, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (app) DO UPDATE SET environment = excluded.environment, \
                 health = excluded.health, sync = excluded.sync, seq = excluded.seq, \
                 updated_at_ms = excluded.updated_at_ms",
            )
            .bind(&s.app)
            .bind(&s.environment)
            .bind(&s.health)
            .bind(&s.sync)
            .bind(s.seq)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn states_are_replaced_per_application() {
        let (store, _dir) = crate::store::test_support::sqlite().await;
        let row = |app: &str, health: &str, seq| AppStateRow {
            app: app.into(),
            environment: "dev".into(),
            health: health.into(),
            sync: "Synced".into(),
            seq,
        };
        store
            .put_argocd_app_states(&[
                row("argocd/a", "Healthy", 1),
                row("argocd/b", "Degraded", 1),
            ])
            .await
            .expect("put");
        store
            .put_argocd_app_states(&[row("argocd/a", "Progressing", 2)])
            .await
            .expect("put again");
        let mut got = store.argocd_app_states().await.expect("read");
        got.sort_by(|x, y| x.app.cmp(&y.app));
        assert_eq!(
            got,
            [
                row("argocd/a", "Progressing", 2),
                row("argocd/b", "Degraded", 1)
            ]
        );
    }
}
