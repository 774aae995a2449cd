//! Approval requests and approvers' decisions. Owns the `approvals` and `approval_decisions`
//! rows; it never writes audit records (the caller audits each decision it acts on).
//!
//! Race-freedom: a state change is either one `UPDATE … WHERE id = $ AND state = $from`, which only
//! one racer can win, or (for decisions) one transaction that first locks the approval row:
//! `SELECT … FOR UPDATE` on PostgreSQL; on SQLite `BEGIN IMMEDIATE` takes the database write lock
//! and the single pooled connection serializes callers inside the process.

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::retention::PrunedApprovals;
use super::tasks::FINISHED_TASK_STATES;
use super::{
    ApprovalRecord, ApprovalState, Backend, DecisionOutcome, DecisionRecord, NewApproval,
    Requester, Store, StoreError,
};

#[cfg(test)]
const APPROVAL_COLUMNS: &str = "id, tool, args, args_sha256, target, risk, requester_sub, \
     requester_name, requester_transport, created_at_ms, expires_at_ms, required_approvals, \
     approver_roles, reason_required, allow_target_change, rule, preview, call_context, state, \
     state_reason, result, updated_at_ms";

// sqlx takes only `&'static str` SQL without an explicit assertion, so the select lists are
// spelled out per query (they must match APPROVAL_COLUMNS; a unit test checks it).
const SELECT_ONE: &str = "SELECT id, tool, args, args_sha256, target, risk, requester_sub, \
     requester_name, requester_transport, created_at_ms, expires_at_ms, required_approvals, \
     approver_roles, reason_required, allow_target_change, rule, preview, call_context, state, \
     state_reason, result, updated_at_ms FROM approvals WHERE id = $1";
// A listing reads neither the arguments, nor the stored call, nor the result (`GET` one request
// for those): a page of 500 requests holding 1 MB arguments each would be half a gigabyte.
// Their columns keep their places so one row reader serves both.
macro_rules! list_columns {
    () => {
        "id, tool, 'null' AS args, args_sha256, target, risk, requester_sub, requester_name, \
         requester_transport, created_at_ms, expires_at_ms, required_approvals, approver_roles, \
         reason_required, allow_target_change, rule, preview, 'null' AS call_context, state, \
         state_reason, NULL AS result, updated_at_ms"
    };
}
const SELECT_PAGE: &str = concat!(
    "SELECT ",
    list_columns!(),
    " FROM approvals ORDER BY created_at_ms DESC, id DESC LIMIT $1"
);
const SELECT_PAGE_IN_STATE: &str = concat!(
    "SELECT ",
    list_columns!(),
    " FROM approvals WHERE state = $1 ORDER BY created_at_ms DESC, id DESC LIMIT $2"
);

const DECISIONS_OF_ONE: &str = "SELECT approval_id, approver_sub, approver_name, decision, \
     reason, at_ms FROM approval_decisions WHERE approval_id = $1 ORDER BY at_ms, approver_sub";
const DECISIONS_OF_PAGE: &str = "SELECT approval_id, approver_sub, approver_name, decision, \
     reason, at_ms FROM approval_decisions WHERE approval_id IN \
     (SELECT id FROM approvals ORDER BY created_at_ms DESC, id DESC LIMIT $1) \
     ORDER BY at_ms, approver_sub";
const DECISIONS_OF_PAGE_IN_STATE: &str = "SELECT approval_id, approver_sub, approver_name, \
     decision, reason, at_ms FROM approval_decisions WHERE approval_id IN \
     (SELECT id FROM approvals WHERE state = $1 ORDER BY created_at_ms DESC, id DESC LIMIT $2) \
     ORDER BY at_ms, approver_sub";

const LOCK_FOR_DECISION_SQLITE: &str =
    "SELECT state, expires_at_ms, required_approvals FROM approvals WHERE id = $1";
const LOCK_FOR_DECISION_POSTGRES: &str =
    "SELECT state, expires_at_ms, required_approvals FROM approvals WHERE id = $1 FOR UPDATE";

/// Which requests a listing shows.
pub enum Visibility<'a> {
    /// Every request (auditors, and the core itself).
    All,
    /// Those `sub` asked for, and those one of `roles` may decide.
    Of { sub: &'a str, roles: &'a [String] },
}

/// `text` for a LIKE pattern with `\` as its escape character.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Rows of a page and the decisions read for it, joined.
fn with_decisions(
    rows: &[sqlx::any::AnyRow],
    decision_rows: &[sqlx::any::AnyRow],
) -> Result<Vec<ApprovalRecord>, StoreError> {
    let mut records = rows
        .iter()
        .map(approval_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    for row in decision_rows {
        let (approval_id, decision) = decision_from_row(row)?;
        // A decision whose request changed state between the two reads is simply not shown.
        if let Some(record) = records.iter_mut().find(|r| r.id == approval_id) {
            record.decisions.push(decision);
        }
    }
    Ok(records)
}

/// The terminal states ([`ApprovalState::is_terminal`]; a unit test keeps the two equal): only
/// requests in these are ever pruned.
pub(super) const FINISHED: [ApprovalState; 6] = [
    ApprovalState::Executed,
    ApprovalState::Failed,
    ApprovalState::Denied,
    ApprovalState::Expired,
    ApprovalState::Cancelled,
    ApprovalState::Interrupted,
];

// Finished, idle before $7, and named by no unfinished A2A task (that task still derives its state
// from this request). The task subquery is uncorrelated: computed once, not once per request.
const PRUNE_SELECT_SQLITE: &str = "SELECT id FROM approvals \
     WHERE state IN ($1, $2, $3, $4, $5, $6) AND updated_at_ms < $7 \
     AND id NOT IN (SELECT approval_id FROM a2a_tasks WHERE approval_id IS NOT NULL \
     AND state NOT IN ($8, $9, $10, $11)) LIMIT $12";
// Rows another replica is pruning right now are skipped rather than waited for.
const PRUNE_SELECT_POSTGRES: &str = "SELECT id FROM approvals \
     WHERE state IN ($1, $2, $3, $4, $5, $6) AND updated_at_ms < $7 \
     AND id NOT IN (SELECT approval_id FROM a2a_tasks WHERE approval_id IS NOT NULL \
     AND state NOT IN ($8, $9, $10, $11)) LIMIT $12 FOR UPDATE SKIP LOCKED";

/// `state_reason` of requests the store itself expires or interrupts.
const REASON_EXPIRED: &str = "expired before enough approvals";
const REASON_INTERRUPTED: &str = "toolgate stopped while the call was executing; outcome unknown";

impl Store {
    pub async fn insert_approval(&self, a: &NewApproval) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO approvals (id, tool, args, args_sha256, target, risk, requester_sub, \
             requester_name, requester_transport, created_at_ms, expires_at_ms, \
             required_approvals, approver_roles, reason_required, allow_target_change, rule, \
             preview, state, state_reason, result, updated_at_ms, call_context) VALUES ($1, $2, \
             $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, NULL, NULL, \
             $19, $20)",
        )
        .bind(a.id.as_str())
        .bind(a.tool.as_str())
        .bind(to_json(&a.args)?)
        .bind(a.args_sha256.as_str())
        .bind(to_json(&a.target)?)
        .bind(a.risk.as_str())
        .bind(a.requester.sub.as_str())
        .bind(a.requester.name.as_str())
        .bind(a.requester.transport.as_str())
        .bind(a.created_at_ms)
        .bind(a.expires_at_ms)
        .bind(i64::from(a.required_approvals))
        .bind(to_json(&a.approver_roles)?)
        .bind(i64::from(a.reason_required))
        .bind(i64::from(a.allow_target_change))
        .bind(a.rule.as_str())
        .bind(to_json(&a.preview)?)
        .bind(ApprovalState::Pending.as_str())
        .bind(a.created_at_ms)
        .bind(to_json(&a.call_context)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        let Some(row) = sqlx::query(SELECT_ONE)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut record = approval_from_row(&row)?;
        let rows = sqlx::query(DECISIONS_OF_ONE)
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        for row in &rows {
            record.decisions.push(decision_from_row(row)?.1);
        }
        Ok(Some(record))
    }

    /// Newest first, at most `limit` (negative counts as 0), each with its decisions.
    /// The newest requests (in `state`, when given) that `viewer` may see, at most `limit`.
    pub async fn list_approvals_visible(
        &self,
        state: Option<ApprovalState>,
        viewer: &Visibility<'_>,
        limit: i64,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        let Visibility::Of { sub, roles } = viewer else {
            return self.list_approvals(state, limit).await;
        };
        let limit = limit.max(0);
        // Every value is bound; only placeholders are written into the SQL.
        let mut binds: Vec<String> = Vec::new();
        let mut terms: Vec<String> = Vec::new();
        if let Some(state) = state {
            binds.push(state.as_str().to_string());
            terms.push(format!("state = ${}", binds.len()));
        }
        binds.push(sub.to_string());
        let mut who = vec![format!("requester_sub = ${}", binds.len())];
        for role in roles.iter() {
            // approver_roles holds a JSON array of strings: match the role's JSON form.
            binds.push(format!(
                "%{}%",
                like_escape(&Value::from(role.as_str()).to_string())
            ));
            who.push(format!("approver_roles LIKE ${} ESCAPE '\\'", binds.len()));
        }
        terms.push(format!("({})", who.join(" OR ")));
        let page = format!(
            "FROM approvals WHERE {} ORDER BY created_at_ms DESC, id DESC LIMIT ${}",
            terms.join(" AND "),
            binds.len() + 1
        );
        let select = format!("SELECT {} {page}", list_columns!());
        let decisions = format!(
            "SELECT approval_id, approver_sub, approver_name, decision, reason, at_ms \
             FROM approval_decisions WHERE approval_id IN (SELECT id {page}) \
             ORDER BY at_ms, approver_sub"
        );
        let mut rows_q = sqlx::query(sqlx::AssertSqlSafe(select));
        let mut decisions_q = sqlx::query(sqlx::AssertSqlSafe(decisions));
        for b in &binds {
            rows_q = rows_q.bind(b.clone());
            decisions_q = decisions_q.bind(b.clone());
        }
        let rows = rows_q.bind(limit).fetch_all(&self.pool).await?;
        let decision_rows = decisions_q.bind(limit).fetch_all(&self.pool).await?;
        with_decisions(&rows, &decision_rows)
    }

    pub async fn list_approvals(
        &self,
        state: Option<ApprovalState>,
        limit: i64,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        let limit = limit.max(0);
        let (rows, decision_rows) = match state {
            Some(state) => {
                let rows = sqlx::query(SELECT_PAGE_IN_STATE)
                    .bind(state.as_str())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                let decisions = sqlx::query(DECISIONS_OF_PAGE_IN_STATE)
                    .bind(state.as_str())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                (rows, decisions)
            }
            None => {
                let rows = sqlx::query(SELECT_PAGE)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                let decisions = sqlx::query(DECISIONS_OF_PAGE)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                (rows, decisions)
            }
        };
        with_decisions(&rows, &decision_rows)
    }

    /// One transaction: approval must be Pending and not expired (else NotPending/Expired,
    /// expiring it if due); (approval_id, approver_sub) unique → AlreadyDecided; "deny" moves it
    /// to Denied; "approve" counts approvals and moves it to Approved when count >= required.
    pub async fn add_decision(
        &self,
        id: &str,
        d: &DecisionRecord,
        now_ms: i64,
    ) -> Result<DecisionOutcome, StoreError> {
        let deny = match d.decision.as_str() {
            "approve" => false,
            "deny" => true,
            other => {
                return Err(StoreError::Db(format!(
                    "decision must be `approve` or `deny`, got `{other}`"
                )));
            }
        };
        let mut tx = self.begin_write().await?;
        let lock = match self.backend {
            Backend::Sqlite => LOCK_FOR_DECISION_SQLITE,
            Backend::Postgres => LOCK_FOR_DECISION_POSTGRES,
        };
        let Some(row) = sqlx::query(lock).bind(id).fetch_optional(&mut *tx).await? else {
            tx.commit().await?;
            return Ok(DecisionOutcome::NotFound);
        };
        let state: ApprovalState = row.try_get::<String, _>("state")?.parse()?;
        let expires_at_ms: i64 = row.try_get("expires_at_ms")?;
        let required = to_u32(row.try_get("required_approvals")?, "required_approvals")?;
        if state != ApprovalState::Pending {
            tx.commit().await?;
            return Ok(DecisionOutcome::NotPending(state));
        }
        if now_ms >= expires_at_ms {
            set_state(&mut tx, id, ApprovalState::Expired, REASON_EXPIRED, now_ms).await?;
            tx.commit().await?;
            return Ok(DecisionOutcome::Expired);
        }
        let inserted = sqlx::query(
            "INSERT INTO approval_decisions (approval_id, approver_sub, approver_name, decision, \
             reason, at_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (approval_id, approver_sub) DO NOTHING",
        )
        .bind(id)
        .bind(d.approver_sub.as_str())
        .bind(d.approver_name.as_str())
        .bind(d.decision.as_str())
        .bind(d.reason.as_deref())
        .bind(d.at_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.commit().await?;
            return Ok(DecisionOutcome::AlreadyDecided);
        }
        let approvals: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM approval_decisions WHERE approval_id = $1 AND decision = 'approve'",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let approvals = to_u32(approvals, "approval count")?;
        let new_state = if deny {
            let reason = match d.reason.as_deref() {
                Some(reason) => format!("denied by {}: {reason}", d.approver_name),
                None => format!("denied by {}", d.approver_name),
            };
            set_state(&mut tx, id, ApprovalState::Denied, &reason, now_ms).await?;
            ApprovalState::Denied
        } else if approvals >= required {
            set_state(&mut tx, id, ApprovalState::Approved, "approved", now_ms).await?;
            ApprovalState::Approved
        } else {
            sqlx::query("UPDATE approvals SET updated_at_ms = $1 WHERE id = $2")
                .bind(now_ms)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            ApprovalState::Pending
        };
        tx.commit().await?;
        Ok(DecisionOutcome::Recorded {
            approvals,
            state: new_state,
        })
    }

    /// One conditional `UPDATE … WHERE id = $ AND state = $from`; true when this call made the
    /// change. An edge outside [`ApprovalState::can_move_to`] is refused (false) without a write.
    /// `reason` and `result` replace the stored ones when given.
    pub async fn transition(
        &self,
        id: &str,
        from: ApprovalState,
        to: ApprovalState,
        reason: Option<&str>,
        result: Option<&Value>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        if !from.can_move_to(to) {
            tracing::warn!(approval_id = id, %from, %to, "refused illegal approval transition");
            return Ok(false);
        }
        let result = result.map(to_json).transpose()?;
        let changed = sqlx::query(
            "UPDATE approvals SET state = $1, state_reason = COALESCE($2, state_reason), \
             result = COALESCE($3, result), updated_at_ms = $4 WHERE id = $5 AND state = $6",
        )
        .bind(to.as_str())
        .bind(reason)
        .bind(result)
        .bind(now_ms)
        .bind(id)
        .bind(from.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Pending requests with `expires_at_ms <= now_ms` → Expired; returns the ids moved.
    pub async fn expire_due(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let ids = sqlx::query_scalar(
            "UPDATE approvals SET state = $1, state_reason = $2, updated_at_ms = $3 \
             WHERE state = $4 AND expires_at_ms <= $3 RETURNING id",
        )
        .bind(ApprovalState::Expired.as_str())
        .bind(REASON_EXPIRED)
        .bind(now_ms)
        .bind(ApprovalState::Pending.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    /// At start-up: Executing requests last updated at or before `now_ms` → Interrupted; returns
    /// the ids moved. With replicas sharing PostgreSQL, pass `now - longest tool timeout` so a
    /// call still running on another replica is left alone.
    pub async fn mark_interrupted(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let ids = sqlx::query_scalar(
            "UPDATE approvals SET state = $1, state_reason = $2, updated_at_ms = $3 \
             WHERE state = $4 AND updated_at_ms <= $3 RETURNING id",
        )
        .bind(ApprovalState::Interrupted.as_str())
        .bind(REASON_INTERRUPTED)
        .bind(now_ms)
        .bind(ApprovalState::Executing.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    /// Deletes requests in a terminal state last changed before `updated_before_ms`, with their
    /// decisions, at most `batch` requests per transaction, until a transaction finds fewer;
    /// returns how many of each. Pending, approved and executing requests are never touched, nor
    /// a request still named by an A2A task that is not finished, nor any audit record.
    pub async fn prune_finished_approvals(
        &self,
        updated_before_ms: i64,
        batch: i64,
    ) -> Result<PrunedApprovals, StoreError> {
        let batch = batch.max(1);
        let mut pruned = PrunedApprovals::default();
        loop {
            let (found, decisions) = self.prune_approvals_batch(updated_before_ms, batch).await?;
            pruned.approvals += found;
            pruned.decisions += decisions;
            if found < batch.unsigned_abs() {
                return Ok(pruned);
            }
            // Let waiting writers take the (SQLite: only) connection between two batches.
            tokio::task::yield_now().await;
        }
    }

    /// One batch in one transaction: (requests deleted, decisions deleted).
    async fn prune_approvals_batch(
        &self,
        updated_before_ms: i64,
        limit: i64,
    ) -> Result<(u64, u64), StoreError> {
        let mut tx = self.begin_write().await?;
        let select = match self.backend {
            Backend::Sqlite => PRUNE_SELECT_SQLITE,
            Backend::Postgres => PRUNE_SELECT_POSTGRES,
        };
        let mut query = sqlx::query_scalar::<_, String>(select);
        for state in FINISHED {
            query = query.bind(state.as_str());
        }
        query = query.bind(updated_before_ms);
        for state in FINISHED_TASK_STATES {
            query = query.bind(state);
        }
        let ids = query.bind(limit).fetch_all(&mut *tx).await?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok((0, 0));
        }
        let placeholders = (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Only `$n` placeholders are generated; every id is bound. Decisions go first: they
        // reference their request.
        let mut decisions = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM approval_decisions WHERE approval_id IN ({placeholders})"
        )));
        let mut requests = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM approvals WHERE id IN ({placeholders})"
        )));
        for id in &ids {
            decisions = decisions.bind(id.as_str());
            requests = requests.bind(id.as_str());
        }
        let gone_decisions = decisions.execute(&mut *tx).await?.rows_affected();
        let gone_requests = requests.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok((gone_requests, gone_decisions))
    }
}

/// Inside a decision transaction whose row lock is held, so the state check is a formality.
async fn set_state(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &str,
    to: ApprovalState,
    reason: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE approvals SET state = $1, state_reason = $2, updated_at_ms = $3 \
         WHERE id = $4 AND state = $5",
    )
    .bind(to.as_str())
    .bind(reason)
    .bind(now_ms)
    .bind(id)
    .bind(ApprovalState::Pending.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Db(format!("encoding JSON: {e}")))
}

pub(super) fn json_column<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn to_u32(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} out of range: {value}")))
}

fn approval_from_row(row: &AnyRow) -> Result<ApprovalRecord, StoreError> {
    let result: Option<String> = row.try_get("result")?;
    let result = result
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("result: {e}")))?;
    Ok(ApprovalRecord {
        id: row.try_get("id")?,
        tool: row.try_get("tool")?,
        args: json_column(row, "args")?,
        args_sha256: row.try_get("args_sha256")?,
        target: json_column(row, "target")?,
        risk: row.try_get("risk")?,
        requester: Requester {
            sub: row.try_get("requester_sub")?,
            name: row.try_get("requester_name")?,
            transport: row.try_get("requester_transport")?,
        },
        created_at_ms: row.try_get("created_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        required_approvals: to_u32(row.try_get("required_approvals")?, "required_approvals")?,
        approver_roles: json_column(row, "approver_roles")?,
        reason_required: row.try_get::<i64, _>("reason_required")? != 0,
        allow_target_change: row.try_get::<i64, _>("allow_target_change")? != 0,
        rule: row.try_get("rule")?,
        preview: json_column(row, "preview")?,
        call_context: {
            let text: Option<String> = row.try_get("call_context")?;
            text.map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("call_context: {e}")))?
                .unwrap_or(Value::Null)
        },
        state: row.try_get::<String, _>("state")?.parse()?,
        state_reason: row.try_get("state_reason")?,
        result,
        updated_at_ms: row.try_get("updated_at_ms")?,
        decisions: Vec::new(),
    })
}

fn decision_from_row(row: &AnyRow) -> Result<(String, DecisionRecord), StoreError> {
    Ok((
        row.try_get("approval_id")?,
        DecisionRecord {
            approver_sub: row.try_get("approver_sub")?,
            approver_name: row.try_get("approver_name")?,
            decision: row.try_get("decision")?,
            reason: row.try_get("reason")?,
            at_ms: row.try_get("at_ms")?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{approval, sqlite};
    use super::*;
    use ApprovalState::*;

    fn decision(sub: &str, decision: &str) -> DecisionRecord {
        DecisionRecord {
            approver_sub: sub.to_string(),
            approver_name: sub.to_uppercase(),
            decision: decision.to_string(),
            reason: None,
            at_ms: 5_000,
        }
    }

    #[test]
    fn select_lists_match_the_column_list() {
        let names = |sql: &str| -> Vec<String> {
            sql.trim_start_matches("SELECT ")
                .split(" FROM ")
                .next()
                .unwrap_or_default()
                .split(',')
                .map(|c| {
                    c.trim()
                        .rsplit(" AS ")
                        .next()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        };
        let expected: Vec<String> = APPROVAL_COLUMNS
            .split(',')
            .map(|c| c.trim().to_string())
            .collect();
        for sql in [SELECT_ONE, SELECT_PAGE, SELECT_PAGE_IN_STATE] {
            assert_eq!(names(sql), expected, "{sql}");
        }
        // Listings never read the heavy columns.
        for sql in [SELECT_PAGE, SELECT_PAGE_IN_STATE] {
            for heavy in ["args", "call_context", "result"] {
                assert!(sql.contains(&format!(" AS {heavy}")), "{heavy} in {sql}");
            }
        }
    }

    #[test]
    fn finished_is_exactly_the_terminal_states() {
        let terminal: Vec<ApprovalState> = ApprovalState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, FINISHED.to_vec());
    }

    #[tokio::test]
    async fn insert_get_round_trips_every_field() {
        let (store, _dir) = sqlite().await;
        let new = approval("a1", 2, 9_000);
        store.insert_approval(&new).await.expect("insert");
        let got = store.get_approval("a1").await.expect("get").expect("found");
        assert_eq!(serde_json::to_value(&got).expect("json")["args"], new.args);
        assert_eq!(got.tool, new.tool);
        assert_eq!(got.args_sha256, new.args_sha256);
        assert_eq!(got.target, new.target);
        assert_eq!(got.risk, "write");
        assert_eq!(got.requester.sub, "agent-1");
        assert_eq!(got.requester.name, "SRECoder");
        assert_eq!(got.requester.transport, "mcp_http");
        assert_eq!((got.created_at_ms, got.expires_at_ms), (1_000, 9_000));
        assert_eq!(got.required_approvals, 2);
        assert_eq!(got.approver_roles, vec!["sre", "oncall"]);
        assert!(got.reason_required);
        assert!(!got.allow_target_change);
        assert_eq!(got.rule, "writes-need-approval");
        assert_eq!(got.preview["resourceVersion"], "42");
        assert_eq!(got.call_context, new.call_context);
        assert_eq!(got.state, Pending);
        assert_eq!(got.state_reason, None);
        assert_eq!(got.result, None);
        assert_eq!(got.updated_at_ms, 1_000);
        assert!(got.decisions.is_empty());
        assert!(store.get_approval("nope").await.expect("get").is_none());
        assert!(
            store.insert_approval(&new).await.is_err(),
            "duplicate id is refused"
        );
    }

    #[tokio::test]
    async fn happy_path_transitions_store_reason_and_result() {
        let (store, _dir) = sqlite().await;
        store
            .insert_approval(&approval("a", 1, i64::MAX))
            .await
            .expect("insert");
        assert!(
            store
                .transition("a", Pending, Approved, None, None, 10)
                .await
                .expect("t")
        );
        assert!(
            store
                .transition("a", Approved, Executing, None, None, 11)
                .await
                .expect("t")
        );
        let result = serde_json::json!({"restarted": true});
        assert!(
            store
                .transition("a", Executing, Executed, Some("ok"), Some(&result), 12)
                .await
                .expect("t")
        );
        let got = store.get_approval("a").await.expect("get").expect("found");
        assert_eq!(got.state, Executed);
        assert_eq!(got.state_reason.as_deref(), Some("ok"));
        assert_eq!(got.result, Some(result));
        assert_eq!(got.updated_at_ms, 12);
    }

    #[tokio::test]
    async fn every_legal_edge_moves_once_and_illegal_edges_are_refused() {
        let (store, _dir) = sqlite().await;
        // Walk each legal edge from a request put into `from` via legal edges.
        let path_to = |s: ApprovalState| -> Vec<ApprovalState> {
            match s {
                Pending => vec![],
                Approved => vec![Approved],
                Executing => vec![Approved, Executing],
                _ => unreachable!("only non-terminal states have outgoing edges"),
            }
        };
        let mut n = 0;
        for from in [Pending, Approved, Executing] {
            for to in ApprovalState::ALL {
                n += 1;
                let id = format!("r{n}");
                store
                    .insert_approval(&approval(&id, 1, i64::MAX))
                    .await
                    .expect("insert");
                let mut at = Pending;
                for step in path_to(from) {
                    assert!(
                        store
                            .transition(&id, at, step, None, None, 2)
                            .await
                            .expect("t")
                    );
                    at = step;
                }
                let moved = store
                    .transition(&id, from, to, None, None, 3)
                    .await
                    .expect("t");
                assert_eq!(moved, from.can_move_to(to), "{from} → {to}");
                if moved {
                    // The same edge again: the state is no longer `from`.
                    assert!(
                        !store
                            .transition(&id, from, to, None, None, 4)
                            .await
                            .expect("t"),
                        "{from} → {to} twice"
                    );
                }
                let expected = if moved { to } else { from };
                let got = store.get_approval(&id).await.expect("get").expect("found");
                assert_eq!(got.state, expected);
            }
        }
        // The refusals the approval flow relies on.
        store
            .insert_approval(&approval("p", 1, i64::MAX))
            .await
            .expect("insert");
        assert!(
            !store
                .transition("p", Pending, Executing, None, None, 5)
                .await
                .expect("t")
        );
        assert!(
            !store
                .transition("p", Executed, Executing, None, None, 5)
                .await
                .expect("t")
        );
        // `from` that does not match the stored state.
        assert!(
            !store
                .transition("p", Approved, Executing, None, None, 5)
                .await
                .expect("t")
        );
        assert!(
            !store
                .transition("missing", Pending, Approved, None, None, 5)
                .await
                .expect("t")
        );
        let got = store.get_approval("p").await.expect("get").expect("found");
        assert_eq!(got.state, Pending);
    }

    #[tokio::test]
    async fn two_of_n_approvals_count_each_approver_once() {
        let (store, _dir) = sqlite().await;
        store
            .insert_approval(&approval("a", 2, 10_000))
            .await
            .expect("insert");
        let out = store
            .add_decision("a", &decision("alice", "approve"), 5_000)
            .await
            .expect("d");
        assert_eq!(
            out,
            DecisionOutcome::Recorded {
                approvals: 1,
                state: Pending
            }
        );
        let out = store
            .add_decision("a", &decision("alice", "approve"), 5_001)
            .await
            .expect("d");
        assert_eq!(out, DecisionOutcome::AlreadyDecided);
        let out = store
            .add_decision("a", &decision("bob", "approve"), 5_002)
            .await
            .expect("d");
        assert_eq!(
            out,
            DecisionOutcome::Recorded {
                approvals: 2,
                state: Approved
            }
        );
        let out = store
            .add_decision("a", &decision("carol", "approve"), 5_003)
            .await
            .expect("d");
        assert_eq!(out, DecisionOutcome::NotPending(Approved));
        let got = store.get_approval("a").await.expect("get").expect("found");
        assert_eq!(got.state, Approved);
        let subs: Vec<_> = got
            .decisions
            .iter()
            .map(|d| d.approver_sub.as_str())
            .collect();
        assert_eq!(subs, vec!["alice", "bob"]);
        assert_eq!(
            store
                .add_decision("missing", &decision("bob", "approve"), 5_000)
                .await
                .expect("d"),
            DecisionOutcome::NotFound
        );
        assert!(
            store
                .add_decision("a", &decision("bob", "maybe"), 5_000)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn deny_ends_the_request_with_the_reason() {
        let (store, _dir) = sqlite().await;
        store
            .insert_approval(&approval("a", 2, 10_000))
            .await
            .expect("insert");
        store
            .add_decision("a", &decision("alice", "approve"), 5_000)
            .await
            .expect("d");
        let mut deny = decision("bob", "deny");
        deny.reason = Some("not during the freeze".to_string());
        let out = store.add_decision("a", &deny, 5_001).await.expect("d");
        assert_eq!(
            out,
            DecisionOutcome::Recorded {
                approvals: 1,
                state: Denied
            }
        );
        let got = store.get_approval("a").await.expect("get").expect("found");
        assert_eq!(got.state, Denied);
        assert_eq!(
            got.state_reason.as_deref(),
            Some("denied by BOB: not during the freeze")
        );
        assert_eq!(got.decisions.len(), 2);
        assert_eq!(
            store
                .add_decision("a", &decision("carol", "approve"), 5_002)
                .await
                .expect("d"),
            DecisionOutcome::NotPending(Denied)
        );
    }

    #[tokio::test]
    async fn decision_after_expiry_expires_the_request() {
        let (store, _dir) = sqlite().await;
        store
            .insert_approval(&approval("a", 1, 10_000))
            .await
            .expect("insert");
        let out = store
            .add_decision("a", &decision("alice", "approve"), 10_000)
            .await
            .expect("d");
        assert_eq!(out, DecisionOutcome::Expired);
        let got = store.get_approval("a").await.expect("get").expect("found");
        assert_eq!(got.state, Expired);
        assert!(got.decisions.is_empty(), "the late decision is not kept");
        assert_eq!(
            store
                .add_decision("a", &decision("bob", "approve"), 10_001)
                .await
                .expect("d"),
            DecisionOutcome::NotPending(Expired)
        );
    }

    #[tokio::test]
    async fn expire_due_moves_only_due_pending_requests() {
        let (store, _dir) = sqlite().await;
        for (id, expires) in [("due", 100), ("due-exactly", 200), ("later", 201)] {
            store
                .insert_approval(&approval(id, 1, expires))
                .await
                .expect("insert");
        }
        store
            .insert_approval(&approval("approved", 1, 50))
            .await
            .expect("insert");
        assert!(
            store
                .transition("approved", Pending, Approved, None, None, 10)
                .await
                .expect("t")
        );
        let mut moved = store.expire_due(200).await.expect("expire");
        moved.sort();
        assert_eq!(moved, vec!["due", "due-exactly"]);
        assert!(store.expire_due(200).await.expect("expire").is_empty());
        let due = store
            .get_approval("due")
            .await
            .expect("get")
            .expect("found");
        assert_eq!(due.state, Expired);
        assert_eq!(due.state_reason.as_deref(), Some(REASON_EXPIRED));
        assert_eq!(due.updated_at_ms, 200);
        let later = store
            .get_approval("later")
            .await
            .expect("get")
            .expect("found");
        assert_eq!(later.state, Pending);
        let approved = store
            .get_approval("approved")
            .await
            .expect("get")
            .expect("found");
        assert_eq!(approved.state, Approved);
    }

    #[tokio::test]
    async fn mark_interrupted_moves_stale_executing_requests() {
        let (store, _dir) = sqlite().await;
        for id in ["old", "fresh", "approved"] {
            store
                .insert_approval(&approval(id, 1, i64::MAX))
                .await
                .expect("insert");
            assert!(
                store
                    .transition(id, Pending, Approved, None, None, 10)
                    .await
                    .expect("t")
            );
        }
        assert!(
            store
                .transition("old", Approved, Executing, None, None, 100)
                .await
                .expect("t")
        );
        assert!(
            store
                .transition("fresh", Approved, Executing, None, None, 500)
                .await
                .expect("t")
        );
        assert_eq!(
            store.mark_interrupted(200).await.expect("mark"),
            vec!["old".to_string()]
        );
        let old = store
            .get_approval("old")
            .await
            .expect("get")
            .expect("found");
        assert_eq!(old.state, Interrupted);
        assert_eq!(old.state_reason.as_deref(), Some(REASON_INTERRUPTED));
        assert_eq!(
            store.mark_interrupted(1_000).await.expect("mark"),
            vec!["fresh".to_string()]
        );
        let approved = store
            .get_approval("approved")
            .await
            .expect("get")
            .expect("found");
        assert_eq!(approved.state, Approved);
    }

    #[tokio::test]
    async fn list_filters_by_state_newest_first_with_decisions() {
        let (store, _dir) = sqlite().await;
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            let mut new = approval(id, 2, i64::MAX);
            new.created_at_ms = 1_000 + i64::try_from(i).expect("small");
            store.insert_approval(&new).await.expect("insert");
        }
        assert!(
            store
                .transition("b", Pending, Cancelled, Some("withdrawn"), None, 10)
                .await
                .expect("t")
        );
        store
            .add_decision("c", &decision("alice", "approve"), 20)
            .await
            .expect("d");
        let ids = |records: &[ApprovalRecord]| -> Vec<String> {
            records.iter().map(|r| r.id.clone()).collect()
        };
        let all = store.list_approvals(None, 100).await.expect("list");
        assert_eq!(ids(&all), vec!["d", "c", "b", "a"]);
        assert_eq!(all[1].decisions.len(), 1);
        assert_eq!(all[1].decisions[0].approver_sub, "alice");
        let pending = store
            .list_approvals(Some(Pending), 100)
            .await
            .expect("list");
        assert_eq!(ids(&pending), vec!["d", "c", "a"]);
        assert_eq!(pending[1].decisions.len(), 1);
        let cancelled = store
            .list_approvals(Some(Cancelled), 100)
            .await
            .expect("list");
        assert_eq!(ids(&cancelled), vec!["b"]);
        assert_eq!(cancelled[0].state_reason.as_deref(), Some("withdrawn"));
        let page = store.list_approvals(Some(Pending), 2).await.expect("list");
        assert_eq!(ids(&page), vec!["d", "c"]);
        assert!(
            store
                .list_approvals(None, -1)
                .await
                .expect("list")
                .is_empty()
        );
    }
}
