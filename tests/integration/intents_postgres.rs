//! The intents outbox and dedup records on a real PostgreSQL shared by two replicas: the same
//! alerts delivered to both at once become one intent each, in one gap-free order.

use std::collections::BTreeSet;

use toolgate::intents::{Envelope, IntentType, Intents, Signal};

use crate::postgres::PgCluster;

fn signal(i: usize) -> Signal {
    let key = format!("alertmanager:fp{i}:2026-11-23T16:39:30Z:firing");
    Signal {
        dedup_key: key.clone(),
        intents: vec![Envelope::new(
            IntentType::IngestAlertRequested,
            key,
            "toolgate/alertmanager",
            format!("alert:fp{i}"),
            jiff::Timestamp::now(),
            serde_json::json!({"fingerprint": format!("fp{i}")}),
        )],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_ingesting_the_same_alerts_write_each_intent_once() {
    let pg = PgCluster::start();
    let a = Intents::new(crate::postgres::connect(&pg.url).await.expect("replica a"));
    let b = Intents::new(crate::postgres::connect(&pg.url).await.expect("replica b"));
    let mut tasks = Vec::new();
    for replica in [a.clone(), b.clone()] {
        for batch in 0..20 {
            let replica = replica.clone();
            tasks.push(tokio::spawn(async move {
                let signals: Vec<Signal> = (batch * 10..batch * 10 + 10).map(signal).collect();
                replica
                    .emit("toolgate/alertmanager", &signals, 300_000)
                    .await
                    .expect("emit")
            }));
        }
    }
    let mut new = 0;
    let mut duplicates = 0;
    for task in futures::future::join_all(tasks).await {
        let outcome = task.expect("task");
        new += outcome.new;
        duplicates += outcome.duplicates;
    }
    assert_eq!((new, duplicates), (200, 200));
    let store = a.store();
    let all = store.list_intents(None, 1_000).await.expect("list");
    let seqs: Vec<i64> = all.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    let keys: BTreeSet<&str> = all.iter().map(|r| r.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), 200);

    // Delivery bookkeeping works there too.
    let pending = b.store().pending_intents(50).await.expect("pending");
    b.store()
        .record_intent_failure(pending[0].seq, "nats: down")
        .await
        .expect("failure");
    let marked = b
        .store()
        .mark_intents_sent(pending[0].seq, pending[49].seq, "nats", 1)
        .await
        .expect("mark");
    assert_eq!(marked, 50);
    assert_eq!(store.count_intents().await.expect("count"), (150, 50));
    assert_eq!(store.prune_dedup(i64::MAX).await.expect("prune"), 200);
}
