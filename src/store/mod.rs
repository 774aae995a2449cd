//! The durable store: approval requests with their decisions, and the hash-chained audit log.
//!
//! One implementation serves SQLite (default, `sqlite://PATH`) and PostgreSQL (`postgres://…`,
//! shared by replicas) through sqlx's `Any` driver. It must not import toolgate's core types
//! (arrows go core → store): risk, target, args, preview and result are plain strings and JSON.
//!
//! Finished rows (sent intents, finished A2A tasks and approvals) are pruned by the retention job
//! ([`retention`]); audit records never are.
//!
//! Every state change is one conditional statement (or one transaction that locks the row), so two
//! approvers or two replicas racing can never move an approval twice.

mod approvals;
mod argocd_state;
mod audit;
mod audit_file;
mod audit_key;
mod audit_writer;
pub mod config;
mod incident_links;
mod intents;
mod memory_queue;
pub mod retention;
mod review;
mod schema;
mod tasks;
mod watch_state;

pub use approvals::Visibility;
pub use retention::{Pruned, PrunedApprovals, Retention};
pub use tasks::{FINISHED_TASK_STATES, TaskQuery, TaskRecord};

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, Transaction};

pub use argocd_state::AppStateRow;
pub use audit::{AuditHead, DEFERRED_SYNC_WITHIN, Durability};
pub use audit_key::{AuditKey, KEY_FILE_SUFFIX, MIN_KEY_BYTES, key_file_of};
pub use incident_links::IncidentLink;
pub use intents::{DedupItem, IngestOutcome, IntentRecord, NewIntent};
pub use memory_queue::MemoryQueueRow;
pub use review::{LeaderRow, OutageNotice, ReviewAnalysisRow, ReviewNoteRow, ReviewerRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Db(String),
    #[error("store: unsupported url `{0}`; expected sqlite://PATH or postgres://…")]
    Url(String),
    #[error("store: corrupt row: {0}")]
    Corrupt(String),
    /// The audit chain's key is missing, unreadable or unfit. Never holds the key.
    #[error("store: {0}")]
    AuditKey(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// Where an approval request is in its life.
///
/// pending → approved → executing → executed | failed; pending → denied | expired | cancelled;
/// executing found at start-up → interrupted. [`ApprovalState::can_move_to`] is the whole graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Approved,
    Executing,
    Executed,
    Failed,
    Denied,
    Expired,
    Cancelled,
    Interrupted,
}

impl ApprovalState {
    pub const ALL: [ApprovalState; 9] = [
        ApprovalState::Pending,
        ApprovalState::Approved,
        ApprovalState::Executing,
        ApprovalState::Executed,
        ApprovalState::Failed,
        ApprovalState::Denied,
        ApprovalState::Expired,
        ApprovalState::Cancelled,
        ApprovalState::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Executing => "executing",
            ApprovalState::Executed => "executed",
            ApprovalState::Failed => "failed",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
            ApprovalState::Cancelled => "cancelled",
            ApprovalState::Interrupted => "interrupted",
        }
    }

    /// No transition leaves a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ApprovalState::Executed
                | ApprovalState::Failed
                | ApprovalState::Denied
                | ApprovalState::Expired
                | ApprovalState::Cancelled
                | ApprovalState::Interrupted
        )
    }

    /// The legal edges. Executing is reachable only from Approved, so a call runs at most once.
    /// Approved may also be cancelled, expire, or fail without running (e.g. the target changed
    /// since the preview).
    pub fn can_move_to(self, to: ApprovalState) -> bool {
        use ApprovalState::*;
        matches!(
            (self, to),
            (Pending, Approved | Denied | Expired | Cancelled)
                | (Approved, Executing | Failed | Expired | Cancelled)
                | (Executing, Executed | Failed | Interrupted)
        )
    }
}

impl std::fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApprovalState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ApprovalState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown approval state `{s}`")))
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Requester {
    pub sub: String,
    pub name: String,
    pub transport: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct NewApproval {
    pub id: String,
    pub tool: String,
    pub args: Value,
    pub args_sha256: String,
    pub target: Value,
    pub risk: String,
    pub requester: Requester,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub required_approvals: u32,
    pub approver_roles: Vec<String>,
    pub reason_required: bool,
    pub allow_target_change: bool,
    pub rule: String,
    /// Dry-run output, including the target's resourceVersion at preview time.
    pub preview: Value,
    /// What the core needs to run the call exactly as it was asked (the caller's output budget,
    /// the requester's roles); opaque JSON here.
    pub call_context: Value,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DecisionRecord {
    pub approver_sub: String,
    pub approver_name: String,
    /// "approve" | "deny"
    pub decision: String,
    pub reason: Option<String>,
    pub at_ms: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApprovalRecord {
    pub id: String,
    pub tool: String,
    pub args: Value,
    pub args_sha256: String,
    pub target: Value,
    pub risk: String,
    pub requester: Requester,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub required_approvals: u32,
    pub approver_roles: Vec<String>,
    pub reason_required: bool,
    pub allow_target_change: bool,
    pub rule: String,
    pub preview: Value,
    /// See [`NewApproval::call_context`]; `Null` on rows written before it existed.
    pub call_context: Value,
    pub state: ApprovalState,
    pub state_reason: Option<String>,
    pub result: Option<Value>,
    pub updated_at_ms: i64,
    /// Oldest first.
    pub decisions: Vec<DecisionRecord>,
}

/// What [`Store::add_decision`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionOutcome {
    /// `state` is Pending, Approved (this decision completed the count) or Denied.
    Recorded {
        approvals: u32,
        state: ApprovalState,
    },
    /// This approver already decided on this request; nothing changed.
    AlreadyDecided,
    NotPending(ApprovalState),
    NotFound,
    /// It was pending but due; the store moved it to Expired in the same transaction.
    Expired,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub at_ms: i64,
    pub principal_sub: String,
    pub principal_name: String,
    pub transport: String,
    pub tool: String,
    /// Already redacted by the caller.
    pub args: Value,
    pub decision: String,
    pub rule: Option<String>,
    pub approval_id: Option<String>,
    pub result_summary: Option<String>,
    pub trace_id: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub records: i64,
    /// Records written before the chain was keyed (plain SHA-256 links); they all precede the
    /// keyed ones.
    pub unkeyed: i64,
    /// The newest record walked (`None`: the log is empty).
    pub head: Option<AuditHead>,
    pub first_broken: Option<BrokenLink>,
    /// Set when a head was given and the chain does not hold it (tail cut or rewritten).
    pub head_mismatch: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: String,
}

/// The few places where SQLite and PostgreSQL differ (row locks, transaction start, DDL lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Handle to the database; cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Group commit of audit appends; `None` inside the writer task itself.
    audit_writer: Option<audit_writer::AuditWriter>,
    /// How reads' audit records reach the disk (`store.read_audit_durability`).
    read_audit: Durability,
    /// The MAC key of the audit chain.
    audit_key: std::sync::Arc<AuditKey>,
}

/// How long a caller waits for a pooled connection before the operation fails (closed).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// PostgreSQL connections per replica.
const POSTGRES_POOL_SIZE: u32 = 10;

impl Store {
    /// [`Store::connect_with`] without a configured audit key: the embedded default.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, None).await
    }

    /// Opens (and for SQLite creates) the database and creates missing tables. Safe when two
    /// replicas start at once: PostgreSQL DDL runs under an advisory lock.
    ///
    /// `audit_key` keys the audit chain's MAC. Without one, a SQLite file uses the key in the
    /// file beside it (`<db>.audit-key`, created mode 0600 on first use), `sqlite::memory:` a
    /// random key, and PostgreSQL refuses: replicas must share a key that the database does not
    /// hold.
    pub async fn connect_with(url: &str, audit_key: Option<AuditKey>) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, driver_url, sqlite_file) = resolve_url(url).await?;
        if backend == Backend::Postgres && audit_key.is_none() {
            return Err(StoreError::AuditKey(
                "a PostgreSQL store needs an audit key that every replica shares and the database does not hold: set audit.hmac_key (at least 32 bytes, e.g. {env: TOOLGATE_AUDIT_HMAC_KEY} from a Secret)".into(),
            ));
        }
        let pool = match backend {
            // One connection serializes every writer inside the process, so SQLite never answers
            // SQLITE_BUSY to ourselves and a decision's read-count-update needs no row lock.
            // Reads are short, so sharing the one connection costs little for a single replica.
            // The audit writer of a file keeps a second one for its appends (`audit_file`),
            // which never waits for this one's lock on the runtime's threads.
            // The connection is kept forever, which also keeps `sqlite::memory:` alive.
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    // A local file needs no liveness check: pinging before every use cost a
                    // round trip to SQLite's worker thread per statement.
                    .test_before_acquire(false)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(&driver_url)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(POSTGRES_POOL_SIZE)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(&driver_url)
                    .await?
            }
        };
        let mut store = Store {
            pool,
            backend,
            audit_writer: None,
            read_audit: Durability::Deferred,
            // Replaced below, before anything appends.
            audit_key: std::sync::Arc::new(AuditKey::ephemeral()?),
        };
        schema::ensure(&store).await?;
        // A file's audit appends get a connection of the writer's own (see `audit_file`);
        // `sqlite::memory:` has no file a second connection could open.
        let file = match &sqlite_file {
            Some(db) => Some(audit_file::AuditFile::open(db)?),
            None => None,
        };
        let key = match (audit_key, sqlite_file) {
            (Some(key), _) => key,
            (None, Some(db)) => store.default_audit_key(&db).await?,
            (None, None) => AuditKey::ephemeral()?,
        };
        store.audit_key = std::sync::Arc::new(key);
        store.audit_writer = Some(audit_writer::AuditWriter::spawn(store.clone(), file));
        Ok(store)
    }

    /// How the audit records of reads reach the disk (default [`Durability::Deferred`]); set
    /// before the store is cloned.
    pub fn set_read_audit_durability(&mut self, durability: Durability) {
        self.read_audit = durability;
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Close every connection: later calls fail (readiness tests use it as a store outage).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A transaction that writes. SQLite takes the write lock up front (`BEGIN IMMEDIATE`): a
    /// deferred transaction upgrading from read to write fails at once with SQLITE_BUSY when
    /// another process holds the lock, instead of waiting for busy_timeout.
    async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(tx)
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Maps the user's URL to a backend, the URL sqlx should open and, for a SQLite file, its path.
async fn resolve_url(url: &str) -> Result<(Backend, String, Option<PathBuf>), StoreError> {
    let url = url.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_string(), None));
    }
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Err(StoreError::Url(redact_url(url)));
    };
    if rest.contains('?') {
        // Options are ours to choose (create, WAL, busy timeout); a query would be ignored.
        return Err(StoreError::Url(redact_url(url)));
    }
    if rest == ":memory:" {
        return Ok((Backend::Sqlite, "sqlite::memory:".to_string(), None));
    }
    if rest.is_empty() {
        return Err(StoreError::Url(redact_url(url)));
    }
    // An absolute path keeps the URL parser from reading `sqlite://data/x.db` as host `data`.
    let path = std::path::absolute(Path::new(rest))
        .map_err(|e| StoreError::Db(format!("sqlite path `{rest}`: {e}")))?;
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| StoreError::Db(format!("creating `{}`: {e}", dir.display())))?;
    }
    create_private(&path).await?;
    let text = path
        .to_str()
        .ok_or_else(|| StoreError::Url(redact_url(url)))?;
    let driver_url = format!("sqlite://{}?mode=rwc", encode_path(text));
    Ok((Backend::Sqlite, driver_url, Some(path)))
}

/// Create the database file readable and writable by its owner only (0600), before SQLite
/// would create it with the umask's mode (often world-readable): it holds the arguments of
/// held calls and the audit log. SQLite gives its WAL and shared-memory files the same mode.
/// An existing file keeps its mode.
async fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    match options.open(path).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Db(format!(
            "creating `{}`: {e}",
            path.display()
        ))),
    }
}

/// Percent-encodes the characters that would end or corrupt the path part of a URL.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

/// The URL without its user-info, so an error never prints a password.
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A store on a fresh SQLite file; keep the TempDir alive as long as the store.
    pub async fn sqlite() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = Store::connect(&url).await.expect("connect sqlite");
        (store, dir)
    }

    pub fn approval(id: &str, required: u32, expires_at_ms: i64) -> NewApproval {
        NewApproval {
            id: id.to_string(),
            tool: "k8s.restart".to_string(),
            args: serde_json::json!({"namespace": "prod", "name": "api", "kind": "Deployment"}),
            args_sha256: "ab".repeat(32),
            target: serde_json::json!({"cluster": "fake", "namespace": "prod", "name": "api"}),
            risk: "write".to_string(),
            requester: Requester {
                sub: "agent-1".to_string(),
                name: "SRECoder".to_string(),
                transport: "mcp_http".to_string(),
            },
            created_at_ms: 1_000,
            expires_at_ms,
            required_approvals: required,
            approver_roles: vec!["sre".to_string(), "oncall".to_string()],
            reason_required: true,
            allow_target_change: false,
            rule: "writes-need-approval".to_string(),
            preview: serde_json::json!({"resourceVersion": "42", "diff": "+restartedAt"}),
            call_context: serde_json::json!({"max_bytes": 4096}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn states_round_trip_and_graph_is_closed_at_terminals() {
        for state in ApprovalState::ALL {
            assert_eq!(state.as_str().parse::<ApprovalState>().ok(), Some(state));
            let json = serde_json::to_string(&state).expect("serialize");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            if state.is_terminal() {
                assert!(ApprovalState::ALL.iter().all(|to| !state.can_move_to(*to)));
            }
        }
        assert!("bogus".parse::<ApprovalState>().is_err());
        // Executing only from Approved: the exactly-once guarantee rests on this.
        let into_executing: Vec<_> = ApprovalState::ALL
            .into_iter()
            .filter(|s| s.can_move_to(ApprovalState::Executing))
            .collect();
        assert_eq!(into_executing, vec![ApprovalState::Approved]);
    }

    #[tokio::test]
    #[cfg(unix)]
    async fn a_new_database_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("toolgate.db");
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("store");
        store.ping().await.expect("ping");
        for file in ["toolgate.db", "toolgate.db-wal"] {
            let p = dir.path().join(file);
            if p.exists() {
                let mode = std::fs::metadata(&p)
                    .expect("metadata")
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{file}: {mode:o}");
            }
        }
        assert!(path.exists());
    }

    #[tokio::test]
    async fn urls_are_checked_and_passwords_never_printed() {
        let err = Store::connect("mysql://root:hunter2@db/x")
            .await
            .expect_err("mysql is unsupported");
        let msg = err.to_string();
        assert!(msg.contains("mysql://***@db/x"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(matches!(
            Store::connect("sqlite://").await,
            Err(StoreError::Url(_))
        ));
        assert!(matches!(
            Store::connect("sqlite://x.db?mode=ro").await,
            Err(StoreError::Url(_))
        ));
    }

    #[tokio::test]
    async fn sqlite_file_and_parent_dirs_are_created_and_memory_works() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested dir/with#hash/toolgate.db");
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("connect");
        assert_eq!(store.backend_name(), "sqlite");
        store.ping().await.expect("ping");
        assert!(path.exists());
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .expect("pragma");
        assert_eq!(mode, "wal");

        let mem = Store::connect("sqlite::memory:").await.expect("memory");
        mem.insert_approval(&approval("m", 1, i64::MAX))
            .await
            .expect("insert");
        assert!(mem.get_approval("m").await.expect("get").is_some());
    }

    #[tokio::test]
    async fn restart_keeps_approvals_decisions_and_audit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        {
            let store = Store::connect(&url).await.expect("connect");
            store
                .insert_approval(&approval("a1", 2, i64::MAX))
                .await
                .expect("insert");
            let d = DecisionRecord {
                approver_sub: "alice".to_string(),
                approver_name: "Alice".to_string(),
                decision: "approve".to_string(),
                reason: Some("looks fine".to_string()),
                at_ms: 2_000,
            };
            store.add_decision("a1", &d, 2_000).await.expect("decide");
            for i in 0..3 {
                store
                    .append_audit(&audit::tests::entry(i))
                    .await
                    .expect("audit");
            }
            store.pool.close().await;
        }
        let store = Store::connect(&url).await.expect("reconnect");
        let a = store.get_approval("a1").await.expect("get").expect("kept");
        assert_eq!(a.state, ApprovalState::Pending);
        assert_eq!(a.decisions.len(), 1);
        assert_eq!(a.decisions[0].reason.as_deref(), Some("looks fine"));
        assert_eq!(a.preview["resourceVersion"], "42");
        let report = store.audit_verify().await.expect("verify");
        assert_eq!(report.records, 3);
        assert!(report.first_broken.is_none());
        let next = store
            .append_audit(&audit::tests::entry(3))
            .await
            .expect("append after restart");
        assert_eq!(next.seq, 4);
    }
}
