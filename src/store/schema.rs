//! Tables and their creation. Only `ensure` runs DDL; the other store files only read and write rows.
//!
//! The DDL is the common subset of SQLite and PostgreSQL: timestamps are BIGINT unix
//! milliseconds, JSON is TEXT, booleans are BIGINT 0/1 (what the `Any` driver carries).

use super::{Backend, Store, StoreError};

/// Bump with a new step in `ensure` when a table changes.
/// 2: `approvals.call_context` (the caller's output budget and roles, for the approved run).
pub(super) const SCHEMA_VERSION: i64 = 2;

/// Steps that bring a database written at version `.0 - 1` to version `.0`. Fresh databases get
/// the tables of [`DDL`] as they are now and skip them.
const MIGRATIONS: &[(i64, &str)] = &[(2, "ALTER TABLE approvals ADD COLUMN call_context TEXT")];

/// Serializes DDL across replicas starting at once: concurrent `CREATE TABLE IF NOT EXISTS` on
/// PostgreSQL can fail with a unique violation in the catalog. (ASCII "tg-schem".)
const PG_SCHEMA_LOCK: i64 = 0x7467_2d73_6368_656d;

/// The audit table, named `$name`, with `seq` of type `$seq`. seq is the chain position; the
/// primary key rejects a second writer of the same position.
macro_rules! audit_table {
    ($name:literal, $seq:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS ",
            $name,
            " (
        seq ",
            $seq,
            " PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        principal_sub TEXT NOT NULL,
        principal_name TEXT NOT NULL,
        transport TEXT NOT NULL,
        tool TEXT NOT NULL,
        args TEXT NOT NULL,
        decision TEXT NOT NULL,
        rule TEXT,
        approval_id TEXT,
        result_summary TEXT,
        trace_id TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )"
        )
    };
}

/// PostgreSQL's audit table: a heap and its primary-key index, as every table there.
const AUDIT_TABLE: &str = audit_table!("audit", "BIGINT");
/// SQLite's: `seq` is the rowid (only `INTEGER PRIMARY KEY` makes it so), so an append writes
/// the table's page alone. `BIGINT PRIMARY KEY` there is a separate index, a second page written
/// in every commit, which is how toolgate created the table before; [`ensure`] rebuilds such a
/// table once. Both layouts read and write the same (an older toolgate works on either), so no
/// version step.
const SQLITE_AUDIT_TABLE: &str = audit_table!("audit", "INTEGER");
const SQLITE_AUDIT_REBUILT: &str = audit_table!("audit_rowid", "INTEGER");

const DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS toolgate_schema (
        id BIGINT PRIMARY KEY,
        version BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS approvals (
        id TEXT PRIMARY KEY,
        tool TEXT NOT NULL,
        args TEXT NOT NULL,
        args_sha256 TEXT NOT NULL,
        target TEXT NOT NULL,
        risk TEXT NOT NULL,
        requester_sub TEXT NOT NULL,
        requester_name TEXT NOT NULL,
        requester_transport TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        required_approvals BIGINT NOT NULL,
        approver_roles TEXT NOT NULL,
        reason_required BIGINT NOT NULL,
        allow_target_change BIGINT NOT NULL,
        rule TEXT NOT NULL,
        preview TEXT NOT NULL,
        call_context TEXT,
        state TEXT NOT NULL,
        state_reason TEXT,
        result TEXT,
        updated_at_ms BIGINT NOT NULL
    )",
    // expire_due and mark_interrupted scan by state.
    "CREATE INDEX IF NOT EXISTS approvals_state_expires ON approvals (state, expires_at_ms)",
    "CREATE INDEX IF NOT EXISTS approvals_created ON approvals (created_at_ms)",
    // The primary key is what makes an approver count once.
    "CREATE TABLE IF NOT EXISTS approval_decisions (
        approval_id TEXT NOT NULL REFERENCES approvals (id),
        approver_sub TEXT NOT NULL,
        approver_name TEXT NOT NULL,
        decision TEXT NOT NULL,
        reason TEXT,
        at_ms BIGINT NOT NULL,
        PRIMARY KEY (approval_id, approver_sub)
    )",
    // Only records of approvals are looked up by approval, and reads (most records) have none:
    // a partial index spares every read's record an index entry (a page write per append).
    // `approval_id = $1` implies the index's condition, so both databases use it. It replaces
    // `audit_approval`, which indexed every record; compatible both ways, so no version step.
    "CREATE INDEX IF NOT EXISTS audit_by_approval ON audit (approval_id) WHERE approval_id IS NOT NULL",
    "DROP INDEX IF EXISTS audit_approval",
    // A2A tasks (src/store/tasks.rs): listed per owner, newest first; found by approval.
    "CREATE TABLE IF NOT EXISTS a2a_tasks (
        id TEXT PRIMARY KEY,
        context_id TEXT NOT NULL,
        owner_sub TEXT NOT NULL,
        owner_name TEXT NOT NULL,
        tool TEXT NOT NULL,
        state TEXT NOT NULL,
        approval_id TEXT,
        status TEXT NOT NULL,
        result TEXT,
        request TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS a2a_tasks_owner ON a2a_tasks (owner_sub, created_at_ms)",
    // Inbound-signal idempotency (webhook deliveries, SLI ticks): a key seen before its
    // expiry is a duplicate. Written in the same transaction as the intents it caused.
    "CREATE TABLE IF NOT EXISTS intent_dedup (
        dedup_key TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        seen_at_ms BIGINT NOT NULL,
        expires_at_ms BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS intent_dedup_expires ON intent_dedup (expires_at_ms)",
    // The intents outbox: seq is the delivery order; state is pending until a sink took it.
    "CREATE TABLE IF NOT EXISTS intent_outbox (
        seq BIGINT PRIMARY KEY,
        id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        intent_type TEXT NOT NULL,
        correlation_id TEXT NOT NULL,
        envelope TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        state TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        last_error TEXT,
        sink TEXT,
        sent_at_ms BIGINT
    )",
    "CREATE INDEX IF NOT EXISTS intent_outbox_state ON intent_outbox (state, seq)",
    // Adds made while Cognee was down (src/store/memory_queue.rs): replayed in seq order; state
    // is pending until Cognee accepted them. New in place (no version step): older databases get
    // the table from this statement, and older toolgates never read it.
    "CREATE TABLE IF NOT EXISTS memory_queue (
        seq BIGINT PRIMARY KEY,
        dataset TEXT NOT NULL,
        documents TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        state TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        last_error TEXT,
        done_at_ms BIGINT
    )",
    "CREATE INDEX IF NOT EXISTS memory_queue_state ON memory_queue (state, seq)",
    // The ArgoCD poller's last seen state per application (src/store/argocd_state.rs), so a
    // restart does not report every application as changed. New in place, like memory_queue.
    "CREATE TABLE IF NOT EXISTS argocd_app_state (
        app TEXT PRIMARY KEY,
        environment TEXT NOT NULL,
        health TEXT NOT NULL,
        sync TEXT NOT NULL,
        seq BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL
    )",
    // The Kubernetes watch's last known health per object (src/integrations/kubernetes).
    "CREATE TABLE IF NOT EXISTS k8s_watch_state (
        cluster TEXT NOT NULL,
        object TEXT NOT NULL,
        state TEXT NOT NULL,
        updated_at_ms BIGINT NOT NULL,
        PRIMARY KEY (cluster, object)
    )",
    // Review analyses (src/store/review.rs). New in place, like memory_queue. A worker holds an
    // analysis under a lease (claimed_by, claimed_until_ms); review_cache's primary key makes one
    // head SHA analysed once; XP is per reviewer and analysis, achievements once per reviewer.
    "CREATE TABLE IF NOT EXISTS review_analyses (
        id TEXT PRIMARY KEY,
        pr_key TEXT NOT NULL,
        pr_url TEXT NOT NULL,
        options TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        state TEXT NOT NULL,
        stage TEXT NOT NULL,
        progress BIGINT NOT NULL,
        head_sha TEXT,
        cache_key TEXT,
        source_id TEXT,
        degraded BIGINT NOT NULL,
        retry_state TEXT,
        retry_attempts BIGINT NOT NULL,
        next_retry_at_ms BIGINT,
        last_error TEXT,
        result TEXT,
        diff TEXT,
        group_request TEXT,
        claimed_by TEXT,
        claimed_until_ms BIGINT,
        created_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL,
        completed_at_ms BIGINT
    )",
    "CREATE INDEX IF NOT EXISTS review_analyses_state ON review_analyses (state, created_at_ms)",
    "CREATE INDEX IF NOT EXISTS review_analyses_retry ON review_analyses (retry_state, next_retry_at_ms)",
    "CREATE TABLE IF NOT EXISTS review_cache (
        cache_key TEXT PRIMARY KEY,
        analysis_id TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS review_reviewers (
        analysis_id TEXT NOT NULL,
        reviewer_sub TEXT NOT NULL,
        reviewer_name TEXT NOT NULL,
        started_at_ms BIGINT NOT NULL,
        completed_at_ms BIGINT,
        xp BIGINT NOT NULL,
        PRIMARY KEY (analysis_id, reviewer_sub)
    )",
    "CREATE TABLE IF NOT EXISTS review_steps_done (
        analysis_id TEXT NOT NULL,
        reviewer_sub TEXT NOT NULL,
        step_id TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        PRIMARY KEY (analysis_id, reviewer_sub, step_id)
    )",
    "CREATE TABLE IF NOT EXISTS review_notes (
        id TEXT PRIMARY KEY,
        analysis_id TEXT NOT NULL,
        reviewer_sub TEXT NOT NULL,
        reviewer_name TEXT NOT NULL,
        step_id TEXT NOT NULL,
        text TEXT NOT NULL,
        at_ms BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS review_notes_analysis ON review_notes (analysis_id, at_ms)",
    "CREATE TABLE IF NOT EXISTS review_achievements (
        reviewer_sub TEXT NOT NULL,
        achievement TEXT NOT NULL,
        analysis_id TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        PRIMARY KEY (reviewer_sub, achievement)
    )",
    // Fallback notices per upstream (src/store/review.rs): the outage under way (NULL once the
    // upstream answered), when its last notice went out, and how many were held back since
    // (`carried` passes that count out of the UPDATE that sends). New in place, like memory_queue.
    "CREATE TABLE IF NOT EXISTS review_notices (
        upstream TEXT PRIMARY KEY,
        outage_since_ms BIGINT,
        last_notice_at_ms BIGINT NOT NULL,
        suppressed BIGINT NOT NULL,
        carried BIGINT NOT NULL
    )",
    // Incident follow-through (src/store/incident_links.rs): per incident, its ticket, its page
    // (or the deferred page), and the last fact applied (stream sequence), so redelivered facts
    // change nothing. New in place, like memory_queue.
    "CREATE TABLE IF NOT EXISTS incident_links (
        incident_id TEXT PRIMARY KEY,
        severity TEXT NOT NULL,
        title TEXT NOT NULL,
        state TEXT NOT NULL,
        ticket_provider TEXT,
        ticket_key TEXT,
        ticket_state TEXT NOT NULL,
        page_provider TEXT,
        page_state TEXT NOT NULL,
        page_deferred_until_ms BIGINT,
        last_seq BIGINT NOT NULL,
        notes TEXT NOT NULL,
        updated_at_ms BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS incident_links_deferred ON incident_links (page_deferred_until_ms)",
    // Which replica is applying a fact of an incident, until when (a lease renewed while the
    // side effects run), so two replicas never create one incident's ticket twice.
    "CREATE TABLE IF NOT EXISTS incident_claims (
        incident_id TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until_ms BIGINT NOT NULL
    )",
];

/// Creates missing tables and refuses a database written by a newer toolgate.
pub(super) async fn ensure(store: &Store) -> Result<(), StoreError> {
    if store.backend == Backend::Sqlite {
        // Readers do not block the writer; persistent in the file. Must run outside a transaction.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&store.pool)
            .await?;
    }
    let mut tx = store.begin_write().await?;
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
            .bind(PG_SCHEMA_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    match store.backend {
        Backend::Sqlite => {
            sqlite_audit_rowid(&mut tx).await?;
            sqlx::query(SQLITE_AUDIT_TABLE).execute(&mut *tx).await?;
        }
        Backend::Postgres => {
            sqlx::query(AUDIT_TABLE).execute(&mut *tx).await?;
        }
    }
    for statement in DDL {
        sqlx::query(*statement).execute(&mut *tx).await?;
    }
    sqlx::query(
        "INSERT INTO toolgate_schema (id, version) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
    )
    .bind(SCHEMA_VERSION)
    .execute(&mut *tx)
    .await?;
    let mut version: i64 = sqlx::query_scalar("SELECT version FROM toolgate_schema WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?;
    for (to, statement) in MIGRATIONS {
        if version < *to && *to <= SCHEMA_VERSION {
            sqlx::query(*statement).execute(&mut *tx).await?;
            sqlx::query("UPDATE toolgate_schema SET version = $1 WHERE id = 1")
                .bind(*to)
                .execute(&mut *tx)
                .await?;
            version = *to;
        }
    }
    tx.commit().await?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Db(format!(
            "database schema version {version} is newer than this toolgate supports ({SCHEMA_VERSION}); upgrade toolgate"
        )));
    }
    Ok(())
}

/// Rebuilds a SQLite audit table whose primary key is a separate index (`seq BIGINT PRIMARY
/// KEY`, as toolgate created it before) with `seq` as the rowid: every record copied as it is,
/// in the schema transaction (all or nothing; the chain's hashes cover the records, not where
/// they are stored). Its indexes go with the old table and are created again after.
async fn sqlite_audit_rowid(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), StoreError> {
    let pk_index: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pragma_index_list('audit') WHERE origin = 'pk'")
            .fetch_one(&mut **tx)
            .await?;
    if pk_index == 0 {
        return Ok(());
    }
    let columns = super::audit::COLUMNS;
    sqlx::query(SQLITE_AUDIT_REBUILT).execute(&mut **tx).await?;
    let copied = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO audit_rowid ({columns}) SELECT {columns} FROM audit ORDER BY seq"
    )))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    sqlx::query("DROP TABLE audit").execute(&mut **tx).await?;
    sqlx::query("ALTER TABLE audit_rowid RENAME TO audit")
        .execute(&mut **tx)
        .await?;
    tracing::info!(
        records = copied,
        "audit table rebuilt with seq as its rowid"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::super::Store;

    #[tokio::test]
    async fn records_are_found_by_approval_through_the_partial_index_and_the_old_index_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        drop(Store::connect(&url).await.expect("create"));
        {
            // The index as toolgate created it before.
            let mut conn = sqlx::sqlite::SqliteConnection::connect(&url)
                .await
                .expect("open");
            sqlx::query("CREATE INDEX audit_approval ON audit (approval_id)")
                .execute(&mut conn)
                .await
                .expect("old index");
        }
        let store = Store::connect(&url).await.expect("reopen");
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit' AND sql IS NOT NULL",
        )
        .fetch_all(&store.pool)
        .await
        .expect("indexes");
        assert_eq!(indexes, ["audit_by_approval"]);
        let plan = query_plan(
            &store.pool,
            &super::super::audit::SELECT_FOR_APPROVAL.replace("$1", "'a-1'"),
        )
        .await;
        assert!(
            plan.iter().any(|d| d.contains("audit_by_approval")),
            "{plan:?}"
        );
    }

    /// What SQLite's `EXPLAIN QUERY PLAN` says of `sql`, a line a step.
    async fn query_plan(pool: &sqlx::AnyPool, sql: &str) -> Vec<String> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
            .fetch_all(pool)
            .await
            .expect("plan");
        rows.iter()
            .map(|r| sqlx::Row::try_get::<String, _>(r, "detail").unwrap_or_default())
            .collect()
    }

    /// How many separate primary-key indexes the audit table has (0: `seq` is the rowid).
    async fn audit_pk_indexes(pool: &sqlx::AnyPool) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM pragma_index_list('audit') WHERE origin = 'pk'")
            .fetch_one(pool)
            .await
            .expect("index list")
    }

    #[tokio::test]
    async fn an_audit_table_keyed_by_a_separate_index_is_rebuilt_with_seq_as_its_rowid() {
        use super::super::audit::tests::entry;
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let store = Store::connect(&url).await.expect("create");
        assert_eq!(audit_pk_indexes(&store.pool).await, 0, "a new table");
        for i in 1..=5 {
            store.append_audit(&entry(i)).await.expect("append");
        }
        let before = store.audit_tail(10).await.expect("tail");
        store.close().await;
        drop(store);
        {
            // The table as toolgate created it before: `seq BIGINT PRIMARY KEY`.
            let mut conn = sqlx::sqlite::SqliteConnection::connect(&url)
                .await
                .expect("open");
            let columns = super::super::audit::COLUMNS;
            for statement in [
                audit_table!("audit_bigint", "BIGINT").to_string(),
                format!("INSERT INTO audit_bigint ({columns}) SELECT {columns} FROM audit"),
                "DROP TABLE audit".to_string(),
                "ALTER TABLE audit_bigint RENAME TO audit".to_string(),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut conn)
                    .await
                    .expect("old layout");
            }
            let pk: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pragma_index_list('audit') WHERE origin = 'pk'",
            )
            .fetch_one(&mut conn)
            .await
            .expect("index list");
            assert_eq!(pk, 1, "the old layout has its separate index");
        }
        let store = Store::connect(&url).await.expect("reopen");
        assert_eq!(audit_pk_indexes(&store.pool).await, 0, "rebuilt");
        let after = store.audit_tail(10).await.expect("tail");
        assert_eq!(
            serde_json::to_value(&after).expect("json"),
            serde_json::to_value(&before).expect("json"),
            "every record as it was"
        );
        let report = store.audit_verify().await.expect("verify");
        assert_eq!(report.records, 5);
        assert!(report.first_broken.is_none(), "{report:?}");
        // The chain goes on, the approval index is back, and a lookup by seq is a rowid lookup.
        let next = store.append_audit(&entry(6)).await.expect("append");
        assert_eq!(
            (next.seq, next.prev_hash.as_str()),
            (6, before[4].hash.as_str())
        );
        assert_eq!(
            store.audit_for_approval("ap-3").await.expect("for").len(),
            1
        );
        let plan = query_plan(&store.pool, "SELECT hash FROM audit WHERE seq = 3").await;
        assert!(
            plan.iter().any(|d| d.contains("INTEGER PRIMARY KEY")),
            "{plan:?}"
        );
        // A second start finds nothing to rebuild.
        drop(store);
        let again = Store::connect(&url).await.expect("reopen");
        assert_eq!(again.audit_verify().await.expect("verify").records, 6);
    }

    #[tokio::test]
    async fn a_version_1_database_gets_the_call_context_column_and_keeps_its_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        {
            // The approvals table and version row as toolgate wrote them before version 2.
            let mut conn = sqlx::sqlite::SqliteConnection::connect(&format!("{url}?mode=rwc"))
                .await
                .expect("create");
            for statement in [
                "CREATE TABLE toolgate_schema (id BIGINT PRIMARY KEY, version BIGINT NOT NULL)",
                "INSERT INTO toolgate_schema (id, version) VALUES (1, 1)",
                "CREATE TABLE approvals (id TEXT PRIMARY KEY, tool TEXT NOT NULL, args TEXT NOT NULL, \
                 args_sha256 TEXT NOT NULL, target TEXT NOT NULL, risk TEXT NOT NULL, \
                 requester_sub TEXT NOT NULL, requester_name TEXT NOT NULL, \
                 requester_transport TEXT NOT NULL, created_at_ms BIGINT NOT NULL, \
                 expires_at_ms BIGINT NOT NULL, required_approvals BIGINT NOT NULL, \
                 approver_roles TEXT NOT NULL, reason_required BIGINT NOT NULL, \
                 allow_target_change BIGINT NOT NULL, rule TEXT NOT NULL, preview TEXT NOT NULL, \
                 state TEXT NOT NULL, state_reason TEXT, result TEXT, updated_at_ms BIGINT NOT NULL)",
                "INSERT INTO approvals VALUES ('old', 'k8s.rollout_restart', '{}', 'ab', '{}', \
                 'write', 'alice', 'Alice', 'mcp-http', 1, 2, 1, '[]', 0, 0, 'r', '{}', \
                 'pending', NULL, NULL, 1)",
            ] {
                sqlx::query(statement)
                    .execute(&mut conn)
                    .await
                    .expect("v1 DDL");
            }
        }
        let store = Store::connect(&url).await.expect("migrates");
        let old = store
            .get_approval("old")
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(old.call_context, serde_json::Value::Null);
        let mut fresh = super::super::test_support::approval("new", 1, 9_000);
        fresh.call_context = serde_json::json!({"max_bytes": 2048});
        store.insert_approval(&fresh).await.expect("insert");
        let got = store.get_approval("new").await.expect("read").expect("row");
        assert_eq!(got.call_context["max_bytes"], 2048);
        drop(store);
        // A second start finds version 2 and changes nothing.
        let again = Store::connect(&url).await.expect("reopen");
        assert!(again.get_approval("new").await.expect("read").is_some());
    }
}
