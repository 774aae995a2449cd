//! The retention job of a running server: with a one-second window and interval, old finished
//! rows written through the store disappear by themselves; open ones and the audit chain stay.

use std::time::{Duration, Instant};

use serde_json::json;
use toolgate::store::{
    ApprovalState, AuditEntry, DedupItem, NewApproval, NewIntent, Requester, Store, TaskRecord,
    now_ms,
};

use crate::fake_kube::FakeKube;
use crate::harness;

const RETENTION: &str =
    "retention:\n  outbox: 1s\n  a2a_tasks: 1s\n  approvals: 1s\n  interval: 1s\n";

fn approval(id: &str, at: i64) -> NewApproval {
    NewApproval {
        id: id.to_string(),
        tool: "k8s.restart".to_string(),
        args: json!({"namespace": "prod", "name": "api"}),
        args_sha256: "ef".repeat(32),
        target: json!({"cluster": "fake", "namespace": "prod", "name": "api"}),
        risk: "write".to_string(),
        requester: Requester {
            sub: "agent".to_string(),
            name: "SRECoder".to_string(),
            transport: "a2a".to_string(),
        },
        created_at_ms: at,
        expires_at_ms: i64::MAX,
        required_approvals: 1,
        approver_roles: vec!["toolgate.approver".to_string()],
        reason_required: false,
        allow_target_change: false,
        rule: "writes".to_string(),
        preview: json!({}),
        call_context: json!({}),
    }
}

fn task(id: &str, state: &str, approval_id: Option<&str>, at: i64) -> TaskRecord {
    TaskRecord {
        id: id.to_string(),
        context_id: "ctx".to_string(),
        owner_sub: "agent".to_string(),
        owner_name: "SRECoder".to_string(),
        tool: "k8s.restart".to_string(),
        state: state.to_string(),
        approval_id: approval_id.map(str::to_string),
        status: json!({"text": state}),
        result: None,
        request: json!({"messageId": id}),
        created_at_ms: at,
        updated_at_ms: at,
    }
}

fn intent(key: &str) -> DedupItem {
    DedupItem {
        dedup_key: key.to_string(),
        source: "test".to_string(),
        window_ms: 1,
        intents: vec![NewIntent {
            id: key.to_string(),
            idempotency_key: key.to_string(),
            intent_type: "IngestAlertRequested".to_string(),
            correlation_id: key.to_string(),
            envelope: "{}".to_string(),
        }],
    }
}

#[tokio::test]
async fn the_running_server_prunes_old_finished_rows() {
    let fake = FakeKube::start().await;
    let tg = harness::start(&fake, RETENTION).await;
    let store = Store::connect(&tg.store_url).await.expect("store");
    let old = now_ms() - 60_000;

    store
        .insert_approval(&approval("old-cancelled", old))
        .await
        .expect("insert");
    assert!(
        store
            .transition(
                "old-cancelled",
                ApprovalState::Pending,
                ApprovalState::Cancelled,
                Some("withdrawn"),
                None,
                old
            )
            .await
            .expect("cancel")
    );
    store
        .insert_approval(&approval("old-pending", old))
        .await
        .expect("insert");
    store
        .insert_task(&task("old-done", "completed", None, old))
        .await
        .expect("insert");
    store
        .insert_task(&task("old-held", "auth_required", Some("old-pending"), old))
        .await
        .expect("insert");
    store
        .ingest_deduplicated(&[intent("k1"), intent("k2"), intent("k3")], old)
        .await
        .expect("ingest");
    store
        .mark_intents_sent(1, 2, "log", old)
        .await
        .expect("mark");
    let mut record = AuditEntry {
        at_ms: old,
        principal_sub: "agent".to_string(),
        principal_name: "SRECoder".to_string(),
        transport: "a2a".to_string(),
        tool: "k8s.restart".to_string(),
        args: json!({"name": "api"}),
        decision: "cancelled".to_string(),
        rule: None,
        approval_id: Some("old-cancelled".to_string()),
        result_summary: None,
        trace_id: None,
    };
    store.append_audit(&record).await.expect("audit");
    record.decision = "approval_requested".to_string();
    store.append_audit(&record).await.expect("audit");

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let gone = store
            .get_approval("old-cancelled")
            .await
            .expect("get")
            .is_none()
            && store.get_task("old-done").await.expect("get").is_none()
            && store.list_intents(None, 10).await.expect("list").len() == 1;
        if gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not prune within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Seq 1 and 2 were sent long ago; seq 3 (pending, then sent by the server's own publisher
    // just now) is inside its window and the newest row anyway.
    let seqs: Vec<i64> = store
        .list_intents(None, 10)
        .await
        .expect("list")
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, [3]);
    let pending = store
        .get_approval("old-pending")
        .await
        .expect("get")
        .expect("an open request is never pruned");
    assert_eq!(pending.state, ApprovalState::Pending);
    assert!(
        store.get_task("old-held").await.expect("get").is_some(),
        "a task waiting for approval is never pruned"
    );
    let report = store.audit_verify().await.expect("verify");
    assert!(report.records >= 2, "{report:?}");
    assert!(report.first_broken.is_none(), "{report:?}");
    assert_eq!(
        store
            .audit_for_approval("old-cancelled")
            .await
            .expect("audit")
            .len(),
        2
    );

    let metrics = tg.metrics().await;
    for table in ["approvals", "a2a_tasks", "intent_outbox"] {
        assert!(
            metrics.lines().any(|l| l.starts_with(&format!(
                "toolgate_retention_pruned_total{{table=\"{table}\"}}"
            ))),
            "no counter for {table} in\n{metrics}"
        );
    }
}
