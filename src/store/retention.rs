//! Retention: how long finished rows are kept, and the background job that prunes them. Owns
//! the order of a sweep, its batching and its schedule; each table's delete lives beside that
//! table's other queries (tasks.rs, approvals.rs, intents.rs). It must never touch `audit`: the
//! hash chain is kept whole, so `audit verify` passes after any number of sweeps.
//!
//! A sweep prunes A2A tasks first, then approvals, then the outbox. An approval still named by a
//! task that is not finished is kept whatever its age (that task derives its state from it), so
//! the order is a convenience, not a correctness condition.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Store, StoreError, now_ms};

/// Rows per delete statement: one statement holds the write lock for milliseconds, never for a
/// whole backlog, so calls and audit appends interleave with a long prune.
pub const BATCH: i64 = 500;

/// How long finished rows are kept; `None` keeps that table's rows forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Sent outbox intents, counted from when they were sent.
    pub outbox: Option<Duration>,
    /// A2A tasks in a finished state, counted from their last change.
    pub a2a_tasks: Option<Duration>,
    /// Finished approval requests (with their decisions), counted from their last change.
    pub approvals: Option<Duration>,
    /// Time between two sweeps (the first runs at start-up).
    pub interval: Duration,
}

impl Retention {
    pub const DEFAULT_OUTBOX: Duration = Duration::from_secs(7 * 86_400);
    pub const DEFAULT_A2A_TASKS: Duration = Duration::from_secs(30 * 86_400);
    pub const DEFAULT_APPROVALS: Duration = Duration::from_secs(90 * 86_400);
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3_600);

    fn is_off(&self) -> bool {
        self.outbox.is_none() && self.a2a_tasks.is_none() && self.approvals.is_none()
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            outbox: Some(Self::DEFAULT_OUTBOX),
            a2a_tasks: Some(Self::DEFAULT_A2A_TASKS),
            approvals: Some(Self::DEFAULT_APPROVALS),
            interval: Self::DEFAULT_INTERVAL,
        }
    }
}

/// Rows one sweep deleted, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub a2a_tasks: u64,
    pub approvals: u64,
    pub approval_decisions: u64,
    pub outbox: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.a2a_tasks + self.approvals + self.approval_decisions + self.outbox
    }
}

/// What [`Store::prune_finished_approvals`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrunedApprovals {
    pub approvals: u64,
    pub decisions: u64,
}

/// The cut-off for rows older than `window` at `now_ms`.
fn cutoff(now_ms: i64, window: Duration) -> i64 {
    now_ms.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX))
}

/// Runs `one` (deleting at most `batch` rows, returning how many) until it deletes fewer than
/// `batch`; returns the total.
pub(super) async fn in_batches<F, Fut>(batch: i64, mut one: F) -> Result<u64, StoreError>
where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    let batch = batch.max(1);
    let mut total = 0;
    loop {
        let deleted = one(batch).await?;
        total += deleted;
        if deleted < batch.unsigned_abs() {
            return Ok(total);
        }
        // Let waiting writers take the (SQLite: only) connection between two batches.
        tokio::task::yield_now().await;
    }
}

/// One sweep at `now_ms`. A table whose prune fails is logged and left for the next sweep; the
/// other tables are still pruned.
pub async fn sweep(store: &Store, retention: &Retention, now_ms: i64, batch: i64) -> Pruned {
    let mut pruned = Pruned::default();
    if let Some(window) = retention.a2a_tasks {
        match store
            .prune_finished_tasks(cutoff(now_ms, window), batch)
            .await
        {
            Ok(n) => pruned.a2a_tasks = n,
            Err(e) => {
                tracing::warn!(table = "a2a_tasks", error = %e, "retention: prune failed; retrying next sweep")
            }
        }
    }
    if let Some(window) = retention.approvals {
        match store
            .prune_finished_approvals(cutoff(now_ms, window), batch)
            .await
        {
            Ok(n) => {
                pruned.approvals = n.approvals;
                pruned.approval_decisions = n.decisions;
            }
            Err(e) => {
                tracing::warn!(table = "approvals", error = %e, "retention: prune failed; retrying next sweep")
            }
        }
    }
    if let Some(window) = retention.outbox {
        match store
            .prune_sent_intents(cutoff(now_ms, window), batch)
            .await
        {
            Ok(n) => pruned.outbox = n,
            Err(e) => {
                tracing::warn!(table = "intent_outbox", error = %e, "retention: prune failed; retrying next sweep")
            }
        }
        // Memory adds replayed to Cognee are delivered outbox rows too: the same window.
        match store
            .prune_done_memory_adds(cutoff(now_ms, window), batch)
            .await
        {
            Ok(n) if n > 0 => crate::metrics::retention_pruned("memory_queue", n),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(table = "memory_queue", error = %e, "retention: prune failed; retrying next sweep")
            }
        }
    }
    for (table, rows) in [
        ("a2a_tasks", pruned.a2a_tasks),
        ("approvals", pruned.approvals),
        ("approval_decisions", pruned.approval_decisions),
        ("intent_outbox", pruned.outbox),
    ] {
        if rows > 0 {
            crate::metrics::retention_pruned(table, rows);
        }
    }
    pruned
}

/// Sweeps every `retention.interval` (the first at once) until `shutdown`. Nothing is spawned
/// when every window is off.
pub fn spawn(store: Store, retention: Retention, shutdown: CancellationToken) {
    if retention.is_off() {
        tracing::info!("retention: every window is off; nothing is pruned");
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(retention.interval);
        // A sweep slower than the interval is followed by one interval of rest, not a burst.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    let pruned = sweep(&store, &retention, now_ms(), BATCH).await;
                    if pruned.total() > 0 {
                        tracing::info!(
                            a2a_tasks = pruned.a2a_tasks,
                            approvals = pruned.approvals,
                            approval_decisions = pruned.approval_decisions,
                            intent_outbox = pruned.outbox,
                            "retention: pruned finished rows"
                        );
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use serde_json::json;

    use super::super::test_support::{approval, sqlite};
    use super::super::{
        ApprovalState::{self, *},
        DecisionOutcome, DecisionRecord, DedupItem, NewIntent, TaskRecord, audit,
    };
    use super::*;

    const NOW: i64 = 10_000_000;
    /// Well outside every window of [`windows`].
    const OLD: i64 = NOW - 1_000_000;
    /// Well inside every window.
    const RECENT: i64 = NOW - 1_000;
    const TASK_STATES: [&str; 8] = [
        "submitted",
        "working",
        "input_required",
        "auth_required",
        "completed",
        "failed",
        "canceled",
        "rejected",
    ];

    fn windows() -> Retention {
        Retention {
            outbox: Some(Duration::from_secs(100)),
            a2a_tasks: Some(Duration::from_secs(100)),
            approvals: Some(Duration::from_secs(100)),
            interval: Duration::from_secs(3_600),
        }
    }

    /// Request `id` moved into `state` along legal edges, every change at `at`; leaving Pending
    /// for Approved or Denied goes through a decision, so those requests have a decision row.
    async fn approval_in(store: &Store, id: &str, state: ApprovalState, at: i64) {
        let mut new = approval(id, 1, i64::MAX);
        new.created_at_ms = at;
        store.insert_approval(&new).await.expect("insert");
        let path: &[ApprovalState] = match state {
            Pending => &[],
            Approved => &[Approved],
            Executing => &[Approved, Executing],
            Executed => &[Approved, Executing, Executed],
            Failed => &[Approved, Failed],
            Denied => &[Denied],
            Expired => &[Expired],
            Cancelled => &[Cancelled],
            Interrupted => &[Approved, Executing, Interrupted],
        };
        let mut from = Pending;
        for &to in path {
            if from == Pending && matches!(to, Approved | Denied) {
                let d = DecisionRecord {
                    approver_sub: "bob".to_string(),
                    approver_name: "Bob".to_string(),
                    decision: if to == Approved { "approve" } else { "deny" }.to_string(),
                    reason: None,
                    at_ms: at,
                };
                let out = store.add_decision(id, &d, at).await.expect("decide");
                assert!(
                    matches!(out, DecisionOutcome::Recorded { state, .. } if state == to),
                    "{id}: {out:?}"
                );
            } else {
                assert!(
                    store
                        .transition(id, from, to, None, None, at)
                        .await
                        .expect("transition"),
                    "{id}: {from} → {to}"
                );
            }
            from = to;
        }
    }

    async fn task_in(store: &Store, id: &str, state: &str, approval_id: Option<&str>, at: i64) {
        store
            .insert_task(&TaskRecord {
                id: id.to_string(),
                context_id: "ctx".to_string(),
                owner_sub: "agent-1".to_string(),
                owner_name: "SRECoder".to_string(),
                tool: "k8s.restart".to_string(),
                state: state.to_string(),
                approval_id: approval_id.map(str::to_string),
                status: json!({"text": state}),
                result: None,
                request: json!({"messageId": id}),
                created_at_ms: at,
                updated_at_ms: at,
            })
            .await
            .expect("insert task");
    }

    /// One outbox intent per key, appended at `at` (seqs follow the call order).
    async fn intents(store: &Store, keys: &[String], at: i64) {
        let items: Vec<DedupItem> = keys
            .iter()
            .map(|key| DedupItem {
                dedup_key: key.clone(),
                source: "am".to_string(),
                window_ms: 1,
                intents: vec![NewIntent {
                    id: key.clone(),
                    idempotency_key: key.clone(),
                    intent_type: "IngestAlertRequested".to_string(),
                    correlation_id: key.clone(),
                    envelope: "{}".to_string(),
                }],
            })
            .collect();
        store.ingest_deduplicated(&items, at).await.expect("ingest");
    }

    async fn present_approvals(store: &Store, ids: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for id in ids {
            if store.get_approval(id).await.expect("get").is_some() {
                out.push(id.clone());
            }
        }
        out
    }

    async fn present_tasks(store: &Store, ids: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for id in ids {
            if store.get_task(id).await.expect("get").is_some() {
                out.push(id.clone());
            }
        }
        out
    }

    #[tokio::test]
    async fn only_old_finished_rows_go_and_the_audit_chain_stays_whole() {
        let (store, _dir) = sqlite().await;
        let mut approval_ids = Vec::new();
        for state in ApprovalState::ALL {
            for (age, at) in [("old", OLD), ("new", RECENT)] {
                let id = format!("{age}-{state}");
                approval_in(&store, &id, state, at).await;
                approval_ids.push(id);
            }
        }
        // Old and finished, but named by a task still waiting on it (never refreshed since).
        approval_in(&store, "ref-held", Executed, OLD).await;
        // Old and finished, named by a finished task: both go.
        approval_in(&store, "ref-done", Executed, OLD).await;
        approval_ids.extend(["ref-held".to_string(), "ref-done".to_string()]);

        let mut task_ids = Vec::new();
        for state in TASK_STATES {
            for (age, at) in [("old", OLD), ("new", RECENT)] {
                let id = format!("{age}-{state}");
                task_in(&store, &id, state, None, at).await;
                task_ids.push(id);
            }
        }
        // Finished tasks whose approval is still open survive however old they are.
        task_in(
            &store,
            "done-pending",
            "completed",
            Some("old-pending"),
            OLD,
        )
        .await;
        task_in(
            &store,
            "done-executing",
            "failed",
            Some("old-executing"),
            OLD,
        )
        .await;
        task_in(&store, "held", "auth_required", Some("ref-held"), OLD).await;
        task_in(&store, "done-ref", "completed", Some("ref-done"), OLD).await;
        task_ids.extend(["done-pending", "done-executing", "held", "done-ref"].map(String::from));

        // seq 1, 2: sent long ago; 3: pending; 4: sent recently; 5: sent long ago but newest.
        let keys: Vec<String> = (1..=5).map(|i| format!("k{i}")).collect();
        intents(&store, &keys, OLD).await;
        for (from, to, at) in [(1, 2, OLD), (4, 4, RECENT), (5, 5, OLD)] {
            store
                .mark_intents_sent(from, to, "log", at)
                .await
                .expect("mark");
        }

        for i in 0..6 {
            let mut e = audit::tests::entry(i);
            e.approval_id = Some("old-executed".to_string());
            store.append_audit(&e).await.expect("audit");
        }

        let pruned = sweep(&store, &windows(), NOW, BATCH).await;
        assert_eq!(
            pruned,
            Pruned {
                a2a_tasks: 5,
                approvals: 7,
                // executed, failed, denied and interrupted went through a decision; ref-done too.
                approval_decisions: 5,
                outbox: 2,
            }
        );

        let mut kept_approvals: Vec<String> = [Pending, Approved, Executing]
            .iter()
            .map(|s| format!("old-{s}"))
            .chain(ApprovalState::ALL.iter().map(|s| format!("new-{s}")))
            .chain(["ref-held".to_string()])
            .collect();
        kept_approvals.sort();
        let mut present = present_approvals(&store, &approval_ids).await;
        present.sort();
        assert_eq!(present, kept_approvals);
        let new_executed = store
            .get_approval("new-executed")
            .await
            .expect("get")
            .expect("kept");
        assert_eq!(
            new_executed.decisions.len(),
            1,
            "kept requests keep decisions"
        );
        let remaining_decisions: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM approval_decisions")
                .fetch_one(&store.pool)
                .await
                .expect("count");
        // Kept with a decision: old approved/executing, new approved/executing/executed/failed/
        // denied/interrupted, ref-held.
        assert_eq!(remaining_decisions, 9);

        let mut kept_tasks: Vec<String> = TASK_STATES[..4]
            .iter()
            .map(|s| format!("old-{s}"))
            .chain(TASK_STATES.iter().map(|s| format!("new-{s}")))
            .chain(["done-pending", "done-executing", "held"].map(String::from))
            .collect();
        kept_tasks.sort();
        let mut present = present_tasks(&store, &task_ids).await;
        present.sort();
        assert_eq!(present, kept_tasks);

        let seqs: Vec<i64> = store
            .list_intents(None, 100)
            .await
            .expect("list")
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, vec![3, 4, 5]);

        let report = store.audit_verify().await.expect("verify");
        assert_eq!(report.records, 6);
        assert!(report.first_broken.is_none(), "{report:?}");
        assert_eq!(
            store
                .audit_for_approval("old-executed")
                .await
                .expect("audit")
                .len(),
            6,
            "audit records of a pruned request stay"
        );

        assert_eq!(
            sweep(&store, &windows(), NOW, BATCH).await,
            Pruned::default(),
            "a second sweep finds nothing"
        );
        intents(&store, &["k6".to_string()], NOW).await;
        let newest = store.list_intents(None, 1).await.expect("list");
        assert_eq!(newest[0].seq, 6, "seq never goes back");
    }

    #[tokio::test]
    async fn a_backlog_larger_than_a_batch_is_pruned_in_several_batches() {
        let (store, _dir) = sqlite().await;
        for i in 0..11 {
            task_in(&store, &format!("t{i}"), "completed", None, OLD).await;
        }
        for i in 0..7 {
            approval_in(&store, &format!("a{i}"), Denied, OLD).await;
        }
        let keys: Vec<String> = (0..26).map(|i| format!("k{i}")).collect();
        intents(&store, &keys, OLD).await;
        store
            .mark_intents_sent(1, 26, "log", OLD)
            .await
            .expect("mark");

        let pruned = sweep(&store, &windows(), NOW, 3).await;
        assert_eq!(
            pruned,
            Pruned {
                a2a_tasks: 11,
                approvals: 7,
                approval_decisions: 7,
                outbox: 25,
            }
        );
        assert_eq!(store.count_intents().await.expect("count"), (0, 1));

        // The loop itself: full batches go on, the first short one ends it.
        let calls = AtomicU64::new(0);
        let mut left = 10u64;
        let total = in_batches(4, |limit| {
            calls.fetch_add(1, Ordering::Relaxed);
            let n = left.min(limit.unsigned_abs());
            left -= n;
            async move { Ok(n) }
        })
        .await
        .expect("batches");
        assert_eq!((total, calls.load(Ordering::Relaxed)), (10, 3));
    }

    #[tokio::test]
    async fn a_window_that_is_off_keeps_its_table() {
        let (store, _dir) = sqlite().await;
        task_in(&store, "t", "completed", None, OLD).await;
        approval_in(&store, "a", Expired, OLD).await;
        intents(&store, &["k1".to_string(), "k2".to_string()], OLD).await;
        store
            .mark_intents_sent(1, 2, "log", OLD)
            .await
            .expect("mark");
        let only_approvals = Retention {
            outbox: None,
            a2a_tasks: None,
            ..windows()
        };
        let pruned = sweep(&store, &only_approvals, NOW, BATCH).await;
        assert_eq!(
            pruned,
            Pruned {
                approvals: 1,
                ..Pruned::default()
            }
        );
        assert!(store.get_task("t").await.expect("get").is_some());
        assert_eq!(store.count_intents().await.expect("count"), (0, 2));
    }

    #[tokio::test]
    async fn a_failing_store_is_logged_not_fatal() {
        let (store, _dir) = sqlite().await;
        task_in(&store, "t", "completed", None, OLD).await;
        store.pool.close().await;
        assert_eq!(
            sweep(&store, &windows(), NOW, BATCH).await,
            Pruned::default()
        );
    }
}
