//! The keyed audit chain against someone who can edit the database: a cut tail fails
//! `audit verify --head`, a record rewritten with recomputed plain SHA-256 links fails, the
//! key file is private; oversized arguments are audited as a summary while the approval keeps
//! them whole. Attacks run on the real SQLite file of a running server, checks through the
//! built binary.

use std::process::{Command, Output};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::Connection;
use toolgate::store::{AuditEntry, Store};

use crate::harness::{self, ALICE};
use crate::mcp::{call, seeded_fake};

pub use crate::approvals_api::mcp_as as client_as;

/// The plain SHA-256 link an older toolgate wrote, recomputed from a record's content: all an
/// attacker without the key can compute.
pub fn unkeyed_link(prev_hash: &str, seq: i64, e: &AuditEntry) -> String {
    let text = |s: &str| Value::String(s.to_string()).to_string();
    let opt = |s: &Option<String>| s.as_deref().map_or("null".to_string(), text);
    let body = [
        ("approval_id", opt(&e.approval_id)),
        ("args", canonical(&e.args)),
        ("at_ms", e.at_ms.to_string()),
        ("decision", text(&e.decision)),
        ("principal_name", text(&e.principal_name)),
        ("principal_sub", text(&e.principal_sub)),
        ("result_summary", opt(&e.result_summary)),
        ("rule", opt(&e.rule)),
        ("seq", seq.to_string()),
        ("tool", text(&e.tool)),
        ("trace_id", opt(&e.trace_id)),
        ("transport", text(&e.transport)),
    ]
    .iter()
    .map(|(k, v)| format!("\"{k}\":{v}"))
    .collect::<Vec<_>>()
    .join(",");
    let digest = Sha256::digest(format!("{prev_hash}{{{body}}}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn canonical(v: &Value) -> String {
    match v {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let members: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        other => other.to_string(),
    }
}

fn toolgate(store_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(args)
        .env("TOOLGATE_STORE_URL", store_url)
        .env_remove("TOOLGATE_AUDIT_HMAC_KEY")
        .output()
        .expect("run toolgate")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A running server with `n` audited read calls behind it.
async fn server_with_records(
    n: usize,
    extra: &str,
) -> (harness::Toolgate, crate::fake_kube::FakeKube) {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, extra).await;
    let client = client_as(&tg.url, ALICE).await;
    for _ in 0..n {
        call(
            &client,
            "k8s.list_resources",
            json!({"kind": "pods", "namespace": "shop"}),
        )
        .await;
    }
    client.cancel().await.ok();
    (tg, fake)
}

/// Recomputes the links of records `from..` as plain SHA-256 in the SQLite file, after
/// applying `edit` (SQL) — what write access to the file without the key allows.
async fn rewrite_unkeyed(store_url: &str, edit: &str, from: i64) {
    let store = Store::connect(store_url).await.expect("open");
    let records = store.audit_tail(i64::MAX).await.expect("records");
    store.close().await;
    let mut conn = sqlx::sqlite::SqliteConnection::connect(store_url)
        .await
        .expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(edit.to_string()))
        .execute(&mut conn)
        .await
        .expect("edit");
    let mut prev = "0".repeat(64);
    for rec in records {
        if rec.seq < from {
            prev = rec.hash;
            continue;
        }
        let row: (String, String) =
            sqlx::query_as("SELECT decision, tool FROM audit WHERE seq = $1")
                .bind(rec.seq)
                .fetch_one(&mut conn)
                .await
                .expect("row");
        let mut entry = rec.entry;
        (entry.decision, entry.tool) = row;
        let hash = unkeyed_link(&prev, rec.seq, &entry);
        sqlx::query("UPDATE audit SET prev_hash = $1, hash = $2 WHERE seq = $3")
            .bind(&prev)
            .bind(&hash)
            .bind(rec.seq)
            .execute(&mut conn)
            .await
            .expect("rewrite");
        prev = hash;
    }
}

#[tokio::test]
async fn a_cut_tail_fails_verify_against_the_head_taken_before() {
    let (tg, _fake) = server_with_records(4, "").await;
    let out = toolgate(&tg.store_url, &["audit", "head"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let head = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(head.contains(":hmac-sha256:"), "a keyed head: {head}");
    let ok = toolgate(&tg.store_url, &["audit", "verify", "--head", &head]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("holds head"));

    let seq: i64 = head
        .split(':')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("seq");
    let mut conn = sqlx::sqlite::SqliteConnection::connect(&tg.store_url)
        .await
        .expect("connect");
    sqlx::query("DELETE FROM audit WHERE seq >= $1")
        .bind(seq - 1)
        .execute(&mut conn)
        .await
        .expect("cut the tail");
    // Without a head, a shorter chain is whole: that is why the head is kept elsewhere.
    assert!(
        toolgate(&tg.store_url, &["audit", "verify"])
            .status
            .success()
    );
    let out = toolgate(&tg.store_url, &["audit", "verify", "--head", &head]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("does not hold the given head")
            && err.contains(&format!("ends at seq {}", seq - 2))
            && err.contains("cut"),
        "{err}"
    );
    // A malformed head is a usage error that shows the expected form.
    let out = toolgate(&tg.store_url, &["audit", "verify", "--head", "12"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("SEQ:HASH"), "{}", stderr(&out));
}

#[tokio::test]
async fn a_record_rewritten_with_recomputed_unkeyed_links_fails_verify() {
    let (tg, _fake) = server_with_records(4, "").await;
    let head = String::from_utf8_lossy(&toolgate(&tg.store_url, &["audit", "head"]).stdout)
        .trim()
        .to_string();
    // Edit record 3 and recompute plain SHA-256 links from there to the end.
    rewrite_unkeyed(
        &tg.store_url,
        "UPDATE audit SET decision = 'denied' WHERE seq = 3",
        3,
    )
    .await;
    let out = toolgate(&tg.store_url, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("record 3") && err.contains("without the audit key"),
        "{err}"
    );

    // Rewriting the whole chain as unkeyed passes on its own — it looks like a log written
    // before the key, and verify says so — and the head kept elsewhere catches it.
    rewrite_unkeyed(&tg.store_url, "SELECT 1", 1).await;
    let out = toolgate(&tg.store_url, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "the recomputed links are right: {}",
        stderr(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("unkeyed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = toolgate(&tg.store_url, &["audit", "verify", "--head", &head]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("rewritten"), "{}", stderr(&out));
}

#[tokio::test]
async fn the_default_key_is_private_and_another_key_does_not_verify() {
    let (tg, _fake) = server_with_records(2, "").await;
    let db = tg.store_url.trim_start_matches("sqlite://");
    let key_file = toolgate::store::key_file_of(std::path::Path::new(db));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let key = std::fs::read_to_string(&key_file).expect("read key");
    // The same key, configured: verifies. Another: fails, and neither is printed.
    let same = Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["audit", "verify"])
        .env("TOOLGATE_STORE_URL", &tg.store_url)
        .env("TOOLGATE_AUDIT_HMAC_KEY", key.trim())
        .output()
        .expect("verify");
    assert!(same.status.success(), "{}", stderr(&same));
    let other = "another-key-of-enough-length-0123456789";
    let out = Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["audit", "verify"])
        .env("TOOLGATE_STORE_URL", &tg.store_url)
        .env("TOOLGATE_AUDIT_HMAC_KEY", other)
        .output()
        .expect("verify");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("MAC mismatch"), "{err}");
    assert!(!err.contains(other) && !err.contains(key.trim()), "{err}");
    // Too short a key is a configuration error naming the key, not showing it.
    let out = Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(["audit", "verify"])
        .env("TOOLGATE_STORE_URL", &tg.store_url)
        .env("TOOLGATE_AUDIT_HMAC_KEY", "short-key")
        .output()
        .expect("verify");
    assert_eq!(out.status.code(), Some(64));
    let err = stderr(&out);
    assert!(
        err.contains("audit.hmac_key") && !err.contains("short-key"),
        "{err}"
    );
}

#[tokio::test]
async fn oversized_arguments_are_audited_as_a_summary_and_kept_whole_in_the_approval() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "audit:\n  max_args_bytes: 2048\n").await;
    let client = client_as(&tg.url, ALICE).await;
    let filler = "x".repeat(50_000);
    let manifest = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n  namespace: shop\ndata:\n  filler: {filler}\n"
    );
    call(&client, "k8s.apply_manifest", json!({"manifest": manifest})).await;
    client.cancel().await.ok();

    let store = Store::connect(&tg.store_url).await.expect("store");
    let records: Vec<_> = store
        .audit_tail(100)
        .await
        .expect("tail")
        .into_iter()
        .filter(|r| r.entry.tool == "k8s.apply_manifest")
        .collect();
    assert!(
        records.iter().any(|r| r.entry.approval_id.is_some()),
        "the write was held for approval: {:?}",
        records
            .iter()
            .map(|r| &r.entry.decision)
            .collect::<Vec<_>>()
    );
    for rec in &records {
        let text = rec.entry.args.to_string();
        assert!(text.len() <= 2048, "seq {}: {} bytes", rec.seq, text.len());
        let summary = &rec.entry.args["_audit_summary"];
        assert!(summary["bytes"].as_u64().unwrap_or(0) > 50_000, "{summary}");
        assert!(
            summary["keys"]["manifest"].as_u64().unwrap_or(0) > 50_000,
            "{summary}"
        );
        assert_eq!(
            summary["sha256"].as_str().map(str::len),
            Some(64),
            "{summary}"
        );
        if let Some(id) = &rec.entry.approval_id {
            let approval = store.get_approval(id).await.expect("get").expect("row");
            assert_eq!(
                approval.args["manifest"],
                json!(manifest),
                "kept whole for the run"
            );
            assert_eq!(
                summary["sha256"],
                json!(approval.args_sha256),
                "same digest"
            );
        }
    }
    assert!(
        toolgate(&tg.store_url, &["audit", "verify"])
            .status
            .success(),
        "summaries are chained like any record"
    );
}
