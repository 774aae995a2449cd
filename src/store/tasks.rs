//! A2A tasks: one row per task an agent started over `/a2a`, owned by the principal that sent
//! the message. The row is the task's durable state; a task held for approval also names its
//! approval request, whose state the transport maps onto the task.
//!
//! Like approvals, a state change is one conditional `UPDATE … WHERE id = $ AND state = $from`,
//! so two replicas refreshing the same task move it once.

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::approvals::{FINISHED as FINISHED_APPROVALS, json_column, to_json};
use super::{Store, StoreError};

/// One stored task. `state` is the transport's own name for the state (the store does not
/// interpret it); `status` and `result` are JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub id: String,
    pub context_id: String,
    pub owner_sub: String,
    pub owner_name: String,
    /// The tool the message asked for (empty when the message named none).
    pub tool: String,
    pub state: String,
    pub approval_id: Option<String>,
    /// The status message shown to the agent (text and data).
    pub status: Value,
    /// The structured result of a completed task.
    pub result: Option<Value>,
    /// The agent's message that started the task.
    pub request: Value,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Filters and page of a task listing; empty strings mean "any".
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    pub owner_sub: String,
    pub context_id: String,
    pub state: String,
    pub limit: i64,
    /// Continue after this task (created_at_ms, id) of the previous page.
    pub after: Option<(i64, String)>,
}

const SELECT_ONE: &str = "SELECT id, context_id, owner_sub, owner_name, tool, state, \
     approval_id, status, result, request, created_at_ms, updated_at_ms FROM a2a_tasks WHERE id = $1";
const SELECT_PAGE: &str = "SELECT id, context_id, owner_sub, owner_name, tool, state, \
     approval_id, status, result, request, created_at_ms, updated_at_ms FROM a2a_tasks \
     WHERE owner_sub = $1 AND ($2 = '' OR context_id = $2) AND ($3 = '' OR state = $3) \
     AND (created_at_ms < $4 OR (created_at_ms = $4 AND id < $5)) \
     ORDER BY created_at_ms DESC, id DESC LIMIT $6";
const COUNT: &str = "SELECT COUNT(*) FROM a2a_tasks \
     WHERE owner_sub = $1 AND ($2 = '' OR context_id = $2) AND ($3 = '' OR state = $3)";

/// The states a task never leaves: the A2A transport's terminal states (`TaskState::is_terminal`
/// in src/transport/a2a/wire.rs, spelled as it stores them). Only these tasks are ever pruned.
pub const FINISHED_TASK_STATES: [&str; 4] = ["completed", "failed", "canceled", "rejected"];

// A finished task, idle before $5, whose approval (if any) is not open. The open approvals are an
// uncorrelated subquery, computed once per statement rather than once per task.
const PRUNE_BATCH: &str = "DELETE FROM a2a_tasks WHERE id IN (SELECT id FROM a2a_tasks \
     WHERE state IN ($1, $2, $3, $4) AND updated_at_ms < $5 \
     AND (approval_id IS NULL OR approval_id NOT IN (SELECT id FROM approvals \
     WHERE state NOT IN ($6, $7, $8, $9, $10, $11))) LIMIT $12)";

impl Store {
    pub async fn insert_task(&self, t: &TaskRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO a2a_tasks (id, context_id, owner_sub, owner_name, tool, state, \
             approval_id, status, result, request, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(t.id.as_str())
        .bind(t.context_id.as_str())
        .bind(t.owner_sub.as_str())
        .bind(t.owner_name.as_str())
        .bind(t.tool.as_str())
        .bind(t.state.as_str())
        .bind(t.approval_id.as_deref())
        .bind(to_json(&t.status)?)
        .bind(t.result.as_ref().map(to_json).transpose()?)
        .bind(to_json(&t.request)?)
        .bind(t.created_at_ms)
        .bind(t.updated_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        sqlx::query(SELECT_ONE)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(task_from_row)
            .transpose()
    }

    /// Moves a task from `from` to `to` with its new status (and result, approval). Returns
    /// false when the task was no longer in `from` (someone else moved it first).
    pub async fn update_task(
        &self,
        id: &str,
        from: &str,
        next: &TaskRecord,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE a2a_tasks SET state = $1, approval_id = $2, status = $3, result = $4, \
             updated_at_ms = $5 WHERE id = $6 AND state = $7",
        )
        .bind(next.state.as_str())
        .bind(next.approval_id.as_deref())
        .bind(to_json(&next.status)?)
        .bind(next.result.as_ref().map(to_json).transpose()?)
        .bind(next.updated_at_ms)
        .bind(id)
        .bind(from)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One owner's tasks, newest first, and how many match the filters in all.
    pub async fn list_tasks(&self, q: &TaskQuery) -> Result<(Vec<TaskRecord>, i64), StoreError> {
        let (after_ms, after_id) = q.after.clone().unwrap_or((i64::MAX, String::new()));
        let rows = sqlx::query(SELECT_PAGE)
            .bind(q.owner_sub.as_str())
            .bind(q.context_id.as_str())
            .bind(q.state.as_str())
            .bind(after_ms)
            .bind(after_id.as_str())
            .bind(q.limit.max(0))
            .fetch_all(&self.pool)
            .await?;
        let tasks = rows.iter().map(task_from_row).collect::<Result<_, _>>()?;
        let total: i64 = sqlx::query_scalar(COUNT)
            .bind(q.owner_sub.as_str())
            .bind(q.context_id.as_str())
            .bind(q.state.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok((tasks, total))
    }

    /// Deletes tasks in a [`FINISHED_TASK_STATES`] state last changed before `updated_before_ms`,
    /// at most `batch` per statement, until a statement deletes fewer; returns how many. A task
    /// whose approval request is still open (pending, approved, executing) is kept whatever its
    /// state and age.
    pub async fn prune_finished_tasks(
        &self,
        updated_before_ms: i64,
        batch: i64,
    ) -> Result<u64, StoreError> {
        super::retention::in_batches(batch, |limit| async move {
            let mut query = sqlx::query(PRUNE_BATCH);
            for state in FINISHED_TASK_STATES {
                query = query.bind(state);
            }
            query = query.bind(updated_before_ms);
            for state in FINISHED_APPROVALS {
                query = query.bind(state.as_str());
            }
            let done = query.bind(limit).execute(&self.pool).await?;
            Ok(done.rows_affected())
        })
        .await
    }
}

fn task_from_row(row: &AnyRow) -> Result<TaskRecord, StoreError> {
    let result: Option<String> = row.try_get("result")?;
    Ok(TaskRecord {
        id: row.try_get("id")?,
        context_id: row.try_get("context_id")?,
        owner_sub: row.try_get("owner_sub")?,
        owner_name: row.try_get("owner_name")?,
        tool: row.try_get("tool")?,
        state: row.try_get("state")?,
        approval_id: row.try_get("approval_id")?,
        status: json_column(row, "status")?,
        result: result
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("a2a_tasks.result: {e}")))?,
        request: json_column(row, "request")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::sqlite;
    use super::*;
    use serde_json::json;

    fn task(id: &str, owner: &str, context: &str, created: i64) -> TaskRecord {
        TaskRecord {
            id: id.to_string(),
            context_id: context.to_string(),
            owner_sub: owner.to_string(),
            owner_name: owner.to_string(),
            tool: "k8s.list_resources".to_string(),
            state: "working".to_string(),
            approval_id: None,
            status: json!({"text": "running"}),
            result: None,
            request: json!({"messageId": "m1"}),
            created_at_ms: created,
            updated_at_ms: created,
        }
    }

    #[tokio::test]
    async fn tasks_round_trip_move_once_and_list_per_owner_in_pages() {
        let (store, _dir) = sqlite().await;
        for i in 0..5 {
            store
                .insert_task(&task(
                    &format!("t{i}"),
                    "alice",
                    if i % 2 == 0 { "c-even" } else { "c-odd" },
                    100 + i,
                ))
                .await
                .expect("insert");
        }
        store
            .insert_task(&task("b0", "bob", "c-even", 50))
            .await
            .expect("insert");

        let got = store.get_task("t3").await.expect("get").expect("present");
        assert_eq!(got, task("t3", "alice", "c-odd", 103));
        assert!(store.get_task("nope").await.expect("get").is_none());

        let mut next = got.clone();
        next.state = "completed".to_string();
        next.result = Some(json!({"items": [1, 2]}));
        next.updated_at_ms = 200;
        assert!(
            store
                .update_task("t3", "working", &next)
                .await
                .expect("update")
        );
        // A second mover from the old state loses.
        assert!(
            !store
                .update_task("t3", "working", &next)
                .await
                .expect("update")
        );
        assert_eq!(store.get_task("t3").await.expect("get"), Some(next));

        let q = TaskQuery {
            owner_sub: "alice".into(),
            limit: 2,
            ..Default::default()
        };
        let (page1, total) = store.list_tasks(&q).await.expect("list");
        assert_eq!(total, 5);
        assert_eq!(
            page1.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["t4", "t3"]
        );
        let last = page1.last().expect("last");
        let q2 = TaskQuery {
            after: Some((last.created_at_ms, last.id.clone())),
            ..q.clone()
        };
        let (page2, _) = store.list_tasks(&q2).await.expect("list");
        assert_eq!(
            page2.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["t2", "t1"]
        );

        let even = TaskQuery {
            owner_sub: "alice".into(),
            context_id: "c-even".into(),
            limit: 10,
            ..Default::default()
        };
        let (tasks, total) = store.list_tasks(&even).await.expect("list");
        assert_eq!(total, 3);
        assert!(
            tasks
                .iter()
                .all(|t| t.context_id == "c-even" && t.owner_sub == "alice")
        );
        let done = TaskQuery {
            owner_sub: "alice".into(),
            state: "completed".into(),
            limit: 10,
            ..Default::default()
        };
        let (tasks, total) = store.list_tasks(&done).await.expect("list");
        assert_eq!((tasks.len(), total), (1, 1));
    }
}
