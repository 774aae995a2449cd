//! A real, temporary PostgreSQL (Debian's `postgresql` package) and the store's multi-replica
//! guarantees against it: shared approvals, exactly-once execution, one audit chain.
//!
//! `PgCluster` is reusable by other test modules: `let pg = PgCluster::start();` then
//! `pg.url` (or `pg.create_database("name")` for a fresh database); dropping it stops the server
//! and deletes its directory.

use crate::daemons::free_port;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::json;
use tempfile::TempDir;
use toolgate::store::{
    ApprovalState, AuditEntry, AuditKey, DecisionOutcome, DecisionRecord, NewApproval, Requester,
    Store,
};

/// The audit key the PostgreSQL tests' replicas share (PostgreSQL stores need one).
pub const AUDIT_KEY: &str = "test-audit-key-0123456789abcdef0123456789";

/// A replica's store on `url`, with the shared audit key.
pub async fn connect(url: &str) -> Result<Store, toolgate::store::StoreError> {
    Store::connect_with(url, Some(AuditKey::new(AUDIT_KEY.as_bytes().to_vec())?)).await
}

const PACKAGE_HINT: &str = "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; \
     install them with `apt-get install -y postgresql`";

/// A PostgreSQL server on 127.0.0.1, owned by the test that started it.
pub struct PgCluster {
    /// `postgres://postgres@127.0.0.1:PORT/postgres` (trust auth, no password).
    pub url: String,
    pub port: u16,
    bin: PathBuf,
    as_postgres_user: bool,
    dir: TempDir,
}

impl PgCluster {
    /// initdb + pg_ctl start on a free port; panics (never skips) when the binaries are missing.
    pub fn start() -> PgCluster {
        let bin = pg_bin();
        // initdb refuses to run as root: run the server as the `postgres` user then.
        let as_postgres_user = is_root();
        // Under /tmp so the postgres user can reach it whatever TMPDIR says.
        let dir = tempfile::Builder::new()
            .prefix("toolgate-pg-")
            .tempdir_in("/tmp")
            .expect("create temp dir for PostgreSQL");
        if as_postgres_user {
            let out = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .output()
                .expect("run chown");
            assert!(
                out.status.success(),
                "chown postgres {}: {}",
                dir.path().display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut cluster = PgCluster {
            url: String::new(),
            port: 0,
            bin,
            as_postgres_user,
            dir,
        };
        let data = cluster.data_dir();
        let out = cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // A free port can be taken between probing and binding: retry with another.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let socket_dir = path_str(cluster.dir.path()).to_string();
            let options = format!(
                "-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            );
            let log = cluster.dir.path().join("log");
            let out = cluster.run(
                "pg_ctl",
                &[
                    "-D",
                    path_str(&data),
                    "-o",
                    &options,
                    "-l",
                    path_str(&log),
                    "-w",
                    "start",
                ],
            );
            if out.status.success() {
                cluster.port = port;
                cluster.url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
                return cluster;
            }
            last_error = format!(
                "{}{}\n--- server log ---\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("PostgreSQL did not start: {last_error}");
    }

    /// Creates database `name` (letters, digits, `_`) and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "database name `{name}` must be letters, digits and _"
        );
        let port = self.port.to_string();
        let out = self.run(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", name],
        );
        assert!(
            out.status.success(),
            "createdb {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut cmd = if self.as_postgres_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&program);
            cmd
        } else {
            Command::new(&program)
        };
        cmd.args(args)
            // The server must not inherit the test's working directory (root-only under /root).
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.port != 0 {
            let data = self.data_dir();
            let _ = self.run(
                "pg_ctl",
                &["-D", path_str(&data), "stop", "-m", "immediate", "-w"],
            );
        }
        // TempDir removes the directory (root may delete the postgres-owned files).
    }
}

/// `/usr/lib/postgresql/15/bin`, else the newest installed major version.
fn pg_bin() -> PathBuf {
    let preferred = Path::new("/usr/lib/postgresql/15/bin");
    if preferred.join("initdb").exists() {
        return preferred.to_path_buf();
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!("{PACKAGE_HINT}"),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

fn approval(id: &str, required: u32) -> NewApproval {
    NewApproval {
        id: id.to_string(),
        tool: "k8s.restart".to_string(),
        args: json!({"namespace": "prod", "name": "api"}),
        args_sha256: "cd".repeat(32),
        target: json!({"cluster": "prod", "namespace": "prod", "name": "api"}),
        risk: "write".to_string(),
        requester: Requester {
            sub: "agent".to_string(),
            name: "SRECoder".to_string(),
            transport: "a2a".to_string(),
        },
        created_at_ms: toolgate::store::now_ms(),
        expires_at_ms: toolgate::store::now_ms() + 600_000,
        required_approvals: required,
        approver_roles: vec!["sre".to_string()],
        reason_required: false,
        allow_target_change: true,
        rule: "writes".to_string(),
        preview: json!({"resourceVersion": "7"}),
        call_context: json!({"max_bytes": 4096}),
    }
}

fn approve(sub: &str) -> DecisionRecord {
    DecisionRecord {
        approver_sub: sub.to_string(),
        approver_name: sub.to_string(),
        decision: "approve".to_string(),
        reason: None,
        at_ms: toolgate::store::now_ms(),
    }
}

fn audit_entry(replica: usize, i: usize) -> AuditEntry {
    AuditEntry {
        at_ms: toolgate::store::now_ms(),
        principal_sub: format!("replica-{replica}"),
        principal_name: "SRECoder".to_string(),
        transport: "mcp_http".to_string(),
        tool: "obs.query_metrics".to_string(),
        args: json!({"query": "up", "i": i}),
        decision: "allow".to_string(),
        rule: None,
        approval_id: None,
        result_summary: Some("ok".to_string()),
        trace_id: None,
    }
}

async fn two_replicas(pg: &PgCluster) -> (Store, Store) {
    let a = connect(&pg.url).await.expect("replica a connects");
    let b = connect(&pg.url).await.expect("replica b connects");
    assert_eq!(a.backend_name(), "postgres");
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_approvals_and_decisions() {
    let pg = PgCluster::start();
    let (a, b) = two_replicas(&pg).await;
    a.ping().await.expect("ping");
    a.insert_approval(&approval("shared", 2))
        .await
        .expect("insert via a");
    let seen = b
        .get_approval("shared")
        .await
        .expect("get")
        .expect("b sees it");
    assert_eq!(seen.state, ApprovalState::Pending);
    assert_eq!(seen.preview["resourceVersion"], "7");
    assert!(seen.allow_target_change);

    let out = b
        .add_decision("shared", &approve("alice"), toolgate::store::now_ms())
        .await
        .expect("decide via b");
    assert_eq!(
        out,
        DecisionOutcome::Recorded {
            approvals: 1,
            state: ApprovalState::Pending
        }
    );
    let out = a
        .add_decision("shared", &approve("alice"), toolgate::store::now_ms())
        .await
        .expect("again via a");
    assert_eq!(out, DecisionOutcome::AlreadyDecided);
    let listed = a
        .list_approvals(Some(ApprovalState::Pending), 10)
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].decisions.len(), 1);
    assert_eq!(listed[0].decisions[0].approver_sub, "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_approvers_on_two_replicas_execute_exactly_once() {
    let pg = PgCluster::start();
    let (a, b) = two_replicas(&pg).await;
    a.insert_approval(&approval("race", 1))
        .await
        .expect("insert");
    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let now = toolgate::store::now_ms();
            let outcome = store
                .add_decision("race", &approve(&format!("approver-{i}")), now)
                .await
                .expect("add_decision");
            let executed = store
                .transition(
                    "race",
                    ApprovalState::Approved,
                    ApprovalState::Executing,
                    None,
                    None,
                    now,
                )
                .await
                .expect("transition");
            (outcome, executed)
        }));
    }
    let results = futures::future::join_all(tasks).await;
    let results: Vec<_> = results.into_iter().map(|r| r.expect("task")).collect();
    let executions = results.iter().filter(|(_, executed)| *executed).count();
    assert_eq!(executions, 1, "exactly one replica may execute the call");
    let recorded: Vec<_> = results
        .iter()
        .filter(|(o, _)| matches!(o, DecisionOutcome::Recorded { .. }))
        .collect();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(
        recorded[0].0,
        DecisionOutcome::Recorded {
            approvals: 1,
            state: ApprovalState::Approved
        }
    );
    assert!(results.iter().all(|(o, _)| matches!(
        o,
        DecisionOutcome::Recorded { .. } | DecisionOutcome::NotPending(_)
    )));
    let final_state = b.get_approval("race").await.expect("get").expect("found");
    assert_eq!(final_state.state, ApprovalState::Executing);
    assert_eq!(final_state.decisions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_approvers_count_each_once_for_n_of_m() {
    let pg = PgCluster::start();
    let (a, b) = two_replicas(&pg).await;
    a.insert_approval(&approval("three", 3))
        .await
        .expect("insert");
    let mut tasks = Vec::new();
    // 20 approvers, each trying twice (once per replica): double counting would show up here.
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let sub = format!("approver-{}", i / 2);
        tasks.push(tokio::spawn(async move {
            store
                .add_decision("three", &approve(&sub), toolgate::store::now_ms())
                .await
                .expect("add_decision")
        }));
    }
    let outcomes: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let mut counts: Vec<u32> = outcomes
        .iter()
        .filter_map(|o| match o {
            DecisionOutcome::Recorded { approvals, .. } => Some(*approvals),
            _ => None,
        })
        .collect();
    counts.sort();
    assert_eq!(counts, vec![1, 2, 3], "{outcomes:?}");
    let approved = outcomes
        .iter()
        .filter(|o| {
            **o == DecisionOutcome::Recorded {
                approvals: 3,
                state: ApprovalState::Approved,
            }
        })
        .count();
    assert_eq!(approved, 1);
    let stored = a.get_approval("three").await.expect("get").expect("found");
    assert_eq!(stored.state, ApprovalState::Approved);
    assert_eq!(stored.decisions.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_audit_appends_from_two_replicas_form_one_chain() {
    let pg = PgCluster::start();
    let (a, b) = two_replicas(&pg).await;
    let mut tasks = Vec::new();
    for (replica, store) in [a.clone(), b.clone()].into_iter().enumerate() {
        for i in 0..50 {
            let store = store.clone();
            // Reads' records (deferred: synchronous_commit off) and others' interleave.
            tasks.push(tokio::spawn(async move {
                let entry = audit_entry(replica, i);
                if i % 2 == 0 {
                    store.append_read_audit(&entry).await.expect("append read")
                } else {
                    store.append_audit(&entry).await.expect("append")
                }
            }));
        }
    }
    for task in futures::future::join_all(tasks).await {
        task.expect("task");
    }
    let report = b.audit_verify().await.expect("verify");
    assert_eq!(report.records, 100);
    assert!(report.first_broken.is_none(), "{report:?}");
    let tail = a.audit_tail(1_000).await.expect("tail");
    let seqs: Vec<i64> = tail.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    assert_eq!(
        tail.iter()
            .filter(|r| r.entry.principal_sub == "replica-1")
            .count(),
        50
    );
    for pair in tail.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_connecting_at_once_to_a_fresh_database_both_succeed() {
    let pg = PgCluster::start();
    for round in 0..3 {
        let url = Arc::new(pg.create_database(&format!("fresh_{round}")));
        let connects = (0..4).map(|_| {
            let url = Arc::clone(&url);
            tokio::spawn(async move { connect(&url).await })
        });
        let stores: Vec<Store> = futures::future::join_all(connects)
            .await
            .into_iter()
            .map(|r| r.expect("task").expect("concurrent connect"))
            .collect();
        stores[0]
            .insert_approval(&approval("after-connect", 1))
            .await
            .expect("schema usable");
        assert!(
            stores[3]
                .get_approval("after-connect")
                .await
                .expect("get")
                .is_some()
        );
    }
}

/// The dialect-sensitive statements (RETURNING, ON CONFLICT, typed NULLs, FOR UPDATE) on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_store_operation_works_on_postgres() {
    let pg = PgCluster::start();
    let store = connect(&pg.create_database("parity"))
        .await
        .expect("connect");
    let now = toolgate::store::now_ms();

    let mut due = approval("due", 1);
    due.expires_at_ms = now - 1;
    store.insert_approval(&due).await.expect("insert");
    assert_eq!(
        store
            .add_decision("due", &approve("alice"), now)
            .await
            .expect("d"),
        DecisionOutcome::Expired
    );
    let mut due2 = approval("due2", 1);
    due2.expires_at_ms = now - 1;
    store.insert_approval(&due2).await.expect("insert");
    assert_eq!(
        store.expire_due(now).await.expect("expire"),
        vec!["due2".to_string()]
    );

    store
        .insert_approval(&approval("run", 1))
        .await
        .expect("insert");
    let mut deny = approve("bob");
    deny.decision = "deny".to_string();
    store
        .insert_approval(&approval("deny", 2))
        .await
        .expect("insert");
    assert_eq!(
        store.add_decision("deny", &deny, now).await.expect("d"),
        DecisionOutcome::Recorded {
            approvals: 0,
            state: ApprovalState::Denied
        }
    );
    assert!(matches!(
        store
            .add_decision("run", &approve("alice"), now)
            .await
            .expect("d"),
        DecisionOutcome::Recorded {
            state: ApprovalState::Approved,
            ..
        }
    ));
    assert!(
        !store
            .transition(
                "run",
                ApprovalState::Pending,
                ApprovalState::Executing,
                None,
                None,
                now
            )
            .await
            .expect("t")
    );
    assert!(
        store
            .transition(
                "run",
                ApprovalState::Approved,
                ApprovalState::Executing,
                None,
                None,
                now
            )
            .await
            .expect("t")
    );
    assert_eq!(
        store.mark_interrupted(now).await.expect("mark"),
        vec!["run".to_string()]
    );
    let run = store
        .get_approval("run")
        .await
        .expect("get")
        .expect("found");
    assert_eq!(run.state, ApprovalState::Interrupted);
    assert!(
        !store
            .transition(
                "run",
                ApprovalState::Interrupted,
                ApprovalState::Executing,
                None,
                None,
                now
            )
            .await
            .expect("t")
    );

    store
        .insert_approval(&approval("done", 1))
        .await
        .expect("insert");
    for (from, to) in [
        (ApprovalState::Pending, ApprovalState::Approved),
        (ApprovalState::Approved, ApprovalState::Executing),
    ] {
        assert!(
            store
                .transition("done", from, to, None, None, now)
                .await
                .expect("t")
        );
    }
    let result = json!({"ok": true});
    assert!(
        store
            .transition(
                "done",
                ApprovalState::Executing,
                ApprovalState::Failed,
                Some("upstream 500"),
                Some(&result),
                now + 1
            )
            .await
            .expect("t")
    );
    let done = store
        .get_approval("done")
        .await
        .expect("get")
        .expect("found");
    assert_eq!(done.state_reason.as_deref(), Some("upstream 500"));
    assert_eq!(done.result, Some(result));
    assert_eq!(done.updated_at_ms, now + 1);

    let states: Vec<_> = store
        .list_approvals(None, 10)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.state)
        .collect();
    assert_eq!(states.len(), 5);
    assert_eq!(
        store
            .list_approvals(Some(ApprovalState::Expired), 10)
            .await
            .expect("list")
            .len(),
        2
    );

    for i in 0..3 {
        let mut e = audit_entry(0, i);
        e.approval_id = Some("done".to_string());
        store.append_audit(&e).await.expect("append");
    }
    assert_eq!(
        store.audit_for_approval("done").await.expect("for").len(),
        3
    );
    assert!(
        store
            .audit_verify()
            .await
            .expect("verify")
            .first_broken
            .is_none()
    );
    // Tamper through a second connection, as an operator with psql would.
    let psql_port = pg.port.to_string();
    let out = Command::new(pg.bin.join("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &psql_port,
            "-U",
            "postgres",
            "-d",
            "parity",
            "-c",
            "UPDATE audit SET decision = 'allowed' WHERE seq = 2",
        ])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = store.audit_verify().await.expect("verify");
    assert_eq!(report.first_broken.expect("broken").seq, 2);
}

/// The keyed chain on PostgreSQL: it verifies, a cut tail fails against the head kept before,
/// and a record rewritten with a recomputed unkeyed hash (what psql access without the key
/// allows) fails; the same through the built binary, with the key from the environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_audit_chain_is_keyed_and_a_cut_tail_fails_against_the_head() {
    let pg = PgCluster::start();
    let url = pg.create_database("keyed");
    let store = connect(&url).await.expect("connect");
    for i in 0..5 {
        store
            .append_audit(&audit_entry(0, i))
            .await
            .expect("append");
    }
    let head = store.audit_head().await.expect("head").expect("not empty");
    assert!(head.is_keyed(), "{head}");
    let verify = |head: Option<String>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_toolgate"));
        cmd.args(["audit", "verify"])
            .env("TOOLGATE_STORE_URL", &url)
            .env("TOOLGATE_AUDIT_HMAC_KEY", AUDIT_KEY);
        if let Some(h) = head {
            cmd.args(["--head", &h]);
        }
        cmd.output().expect("audit verify")
    };
    let out = verify(Some(head.to_string()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the key the binary refuses to start, naming the key.
    let out = Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["audit", "verify"])
        .env("TOOLGATE_STORE_URL", &url)
        .output()
        .expect("audit verify");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit.hmac_key"));

    let psql = |sql: &str| {
        let out = Command::new(pg.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "keyed", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql("DELETE FROM audit WHERE seq = 5");
    let report = store.audit_verify().await.expect("verify");
    assert!(
        report.first_broken.is_none(),
        "a shorter chain is whole by itself"
    );
    let out = verify(Some(head.to_string()));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not hold the given head") && err.contains("cut"),
        "{err}"
    );

    // Rewrite record 4's decision with a plain SHA-256 link, as before the key.
    let rows = store.audit_tail(2).await.expect("tail");
    let mut edited = rows[1].entry.clone();
    edited.decision = "denied".into();
    let hash = crate::audit_integrity::unkeyed_link(&rows[0].hash, 4, &edited);
    psql(&format!(
        "UPDATE audit SET decision = 'denied', hash = '{hash}' WHERE seq = 4"
    ));
    let out = verify(None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("record 4") && err.contains("without the audit key"),
        "{err}"
    );
}

/// Retention on PostgreSQL: the dialect-sensitive prunes (DELETE … IN (SELECT … LIMIT), FOR UPDATE
/// SKIP LOCKED), run by two replicas at once over a backlog of several batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_prune_only_old_finished_rows_once() {
    use toolgate::store::retention::sweep;
    use toolgate::store::{DedupItem, NewIntent, Pruned, Retention, TaskRecord};

    let pg = PgCluster::start();
    let url = pg.create_database("retention");
    let (a, b) = (
        connect(&url).await.expect("replica a"),
        connect(&url).await.expect("replica b"),
    );
    let now = toolgate::store::now_ms();
    let old = now - 3_600_000;
    let task = |id: &str, state: &str, approval_id: Option<&str>| TaskRecord {
        id: id.to_string(),
        context_id: "ctx".to_string(),
        owner_sub: "agent".to_string(),
        owner_name: "SRECoder".to_string(),
        tool: "k8s.restart".to_string(),
        state: state.to_string(),
        approval_id: approval_id.map(str::to_string),
        status: json!({}),
        result: None,
        request: json!({}),
        created_at_ms: old,
        updated_at_ms: old,
    };
    // 30 old finished requests, each with a decision, in several batches.
    for i in 0..30 {
        let id = format!("denied-{i}");
        a.insert_approval(&approval(&id, 2)).await.expect("insert");
        let mut deny = approve("bob");
        deny.decision = "deny".to_string();
        a.add_decision(&id, &deny, old).await.expect("deny");
    }
    a.insert_approval(&approval("open", 1))
        .await
        .expect("insert");
    assert!(
        a.transition(
            "open",
            ApprovalState::Pending,
            ApprovalState::Approved,
            None,
            None,
            old
        )
        .await
        .expect("approve")
    );
    a.insert_approval(&approval("held", 1))
        .await
        .expect("insert");
    assert!(
        a.transition(
            "held",
            ApprovalState::Pending,
            ApprovalState::Cancelled,
            None,
            None,
            old
        )
        .await
        .expect("cancel")
    );
    for i in 0..20 {
        a.insert_task(&task(&format!("done-{i}"), "completed", None))
            .await
            .expect("task");
    }
    a.insert_task(&task("done-open", "completed", Some("open")))
        .await
        .expect("task");
    a.insert_task(&task("waiting", "auth_required", Some("held")))
        .await
        .expect("task");
    a.insert_task(&task("working", "working", None))
        .await
        .expect("task");
    let items: Vec<DedupItem> = (0..25)
        .map(|i| DedupItem {
            dedup_key: format!("k{i}"),
            source: "test".to_string(),
            window_ms: 1,
            intents: vec![NewIntent {
                id: format!("k{i}"),
                idempotency_key: format!("k{i}"),
                intent_type: "IngestAlertRequested".to_string(),
                correlation_id: format!("k{i}"),
                envelope: "{}".to_string(),
            }],
        })
        .collect();
    a.ingest_deduplicated(&items, old).await.expect("ingest");
    a.mark_intents_sent(1, 20, "nats", old).await.expect("mark");
    for i in 0..3 {
        a.append_audit(&audit_entry(0, i)).await.expect("audit");
    }

    let windows = Retention {
        outbox: Some(std::time::Duration::from_secs(60)),
        a2a_tasks: Some(std::time::Duration::from_secs(60)),
        approvals: Some(std::time::Duration::from_secs(60)),
        interval: std::time::Duration::from_secs(3_600),
    };
    // Each replica runs the store's prunes directly, so an error (a deadlock, a lock timeout)
    // fails the test instead of being logged by the sweep.
    let cut = now - 60_000;
    let replica = |store: Store| async move {
        let tasks = store.prune_finished_tasks(cut, 4).await.expect("tasks");
        let approvals = store
            .prune_finished_approvals(cut, 4)
            .await
            .expect("approvals");
        let outbox = store.prune_sent_intents(cut, 4).await.expect("outbox");
        Pruned {
            a2a_tasks: tasks,
            approvals: approvals.approvals,
            approval_decisions: approvals.decisions,
            outbox,
        }
    };
    let (pa, pb) = tokio::join!(
        tokio::spawn(replica(a.clone())),
        tokio::spawn(replica(b.clone()))
    );
    let (pa, pb) = (pa.expect("replica a"), pb.expect("replica b"));
    let sum = Pruned {
        a2a_tasks: pa.a2a_tasks + pb.a2a_tasks,
        approvals: pa.approvals + pb.approvals,
        approval_decisions: pa.approval_decisions + pb.approval_decisions,
        outbox: pa.outbox + pb.outbox,
    };
    assert_eq!(
        sum,
        Pruned {
            a2a_tasks: 20,
            approvals: 30,
            approval_decisions: 30,
            outbox: 20,
        },
        "replica a {pa:?}, replica b {pb:?}"
    );
    assert!(a.get_approval("open").await.expect("get").is_some());
    assert!(
        a.get_approval("held").await.expect("get").is_some(),
        "named by a task still waiting on it"
    );
    for id in ["done-open", "waiting", "working"] {
        assert!(a.get_task(id).await.expect("get").is_some(), "{id}");
    }
    assert_eq!(a.count_intents().await.expect("count"), (5, 0));
    let report = b.audit_verify().await.expect("verify");
    assert_eq!(report.records, 3);
    assert!(report.first_broken.is_none(), "{report:?}");
    assert_eq!(sweep(&b, &windows, now, 4).await, Pruned::default());
}

/// The memory queue on PostgreSQL: two replicas queueing at once get distinct, ordered seqs;
/// either sees the other's adds, marks them done once, and prunes only replayed rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_the_memory_queue_in_one_order() {
    let pg = PgCluster::start();
    let (a, b) = two_replicas(&pg).await;
    let (qa, qb) = tokio::join!(
        async {
            let mut seqs = Vec::new();
            for i in 0..10 {
                seqs.push(
                    a.enqueue_memory_add("d", &format!("[\"a{i}\"]"))
                        .await
                        .expect("a"),
                );
            }
            seqs
        },
        async {
            let mut seqs = Vec::new();
            for i in 0..10 {
                seqs.push(
                    b.enqueue_memory_add("d", &format!("[\"b{i}\"]"))
                        .await
                        .expect("b"),
                );
            }
            seqs
        }
    );
    let mut all: Vec<i64> = qa.iter().chain(&qb).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 20, "every add got its own seq");
    assert!(qa.windows(2).all(|w| w[0] < w[1]) && qb.windows(2).all(|w| w[0] < w[1]));
    let pending = b.pending_memory_adds(100).await.expect("pending");
    assert_eq!(
        pending.iter().map(|r| r.seq).collect::<Vec<_>>(),
        all,
        "oldest first"
    );
    for row in &pending[..15] {
        a.mark_memory_add_done(row.seq).await.expect("done");
    }
    assert_eq!(b.count_memory_adds().await.expect("counts"), (5, 15, None));
    let pruned = b.prune_done_memory_adds(i64::MAX, 4).await.expect("prune");
    assert_eq!(pruned, 15);
    assert_eq!(a.pending_memory_adds(100).await.expect("pending").len(), 5);
}

/// Review analyses on PostgreSQL: two replicas racing for the same head SHA analyse it once
/// (one owner of the cache key, every other analysis links to it), claim each analysis once,
/// and share one fallback-notice interval per upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_analyse_one_head_sha_once_and_share_the_notice_interval() {
    use toolgate::store::OutageNotice;
    let pg = PgCluster::start();
    let (a, b) = two_replicas(&pg).await;
    let ids: Vec<String> = (0..20).map(|i| format!("analysis-{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let store = if i % 2 == 0 { &a } else { &b };
        store
            .insert_review_analysis(
                id,
                "acme/shop#7",
                "https://github.com/acme/shop/pull/7",
                "{}",
                "alice",
            )
            .await
            .expect("insert");
    }
    // Both replicas try to claim every analysis at once: each is taken exactly once.
    let mut claims = Vec::new();
    for id in &ids {
        for (worker, store) in [("worker-a", a.clone()), ("worker-b", b.clone())] {
            let id = id.clone();
            claims.push(tokio::spawn(async move {
                store
                    .claim_review_analysis(&id, worker, 60_000)
                    .await
                    .expect("claim")
                    .then_some(id)
            }));
        }
    }
    let mut claimed = Vec::new();
    for c in claims {
        claimed.extend(c.await.expect("join"));
    }
    claimed.sort();
    assert_eq!(claimed, ids, "every analysis claimed by one replica");
    // Every analysis reaches the same head at once: one owns the key, the rest link to it.
    let mut heads = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let id = id.clone();
        heads.push(tokio::spawn(async move {
            store
                .claim_review_head(&id, "sha-7", "acme/shop#7@sha-7")
                .await
                .expect("claim head")
        }));
    }
    let mut owners = Vec::new();
    for h in heads {
        owners.push(h.await.expect("join"));
    }
    owners.dedup();
    assert_eq!(owners.len(), 1, "one owner of the head: {owners:?}");
    assert!(ids.contains(&owners[0]));

    // The fallback notice: racing replicas send one per outage and count the rest.
    let now = toolgate::store::now_ms();
    let mut decisions = Vec::new();
    for i in 0..10 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        decisions.push(tokio::spawn(async move {
            store
                .review_outage_notice("pr-quest", now, 900_000)
                .await
                .expect("decide")
        }));
    }
    let mut sent = 0;
    for d in decisions {
        if matches!(d.await.expect("join"), OutageNotice::Send { .. }) {
            sent += 1;
        }
    }
    assert_eq!(sent, 1, "one notice for ten degraded analyses");
    assert!(b.review_upstream_recovered("pr-quest").await.expect("ok"));
    assert_eq!(
        a.review_outage_notice("pr-quest", now + 1, 900_000)
            .await
            .expect("decide"),
        OutageNotice::Send {
            suppressed: 9,
            since_ms: now + 1
        }
    );
}
