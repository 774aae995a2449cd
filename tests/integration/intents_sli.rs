//! Scheduled SLI windows against a real Prometheus (Debian `prometheus`) scraping itself and a
//! target that is down: every-second cron ticks produce `RecordSLIWindowRequested` intents with
//! the ratio Prometheus' numbers give; a bad query is Prometheus' error, not an intent.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use toolgate::intents::sli::{PrometheusSli, SliError, SliSource};
use toolgate::store::Store;

use crate::daemons::{Daemon, dead_port, eventually, free_port, require};
use crate::fake_kube::FakeKube;
use crate::harness;

/// Prometheus scraping itself (up) and a port nothing listens on (down), every second.
async fn prometheus(dir: &std::path::Path) -> (Daemon, String, tokio::net::TcpSocket) {
    require("prometheus", "prometheus");
    let port = free_port();
    // Held for the whole test (the daemon's lifetime): the scrape target must keep refusing.
    let (dead_socket, dead) = dead_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n\
             \x20 - job_name: dead\n    static_configs:\n      - targets: ['127.0.0.1:{dead}']\n"
        ),
    )
    .expect("write prometheus.yml");
    let mut daemon = Daemon::spawn(
        "prometheus",
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        &dir.join("prometheus.log"),
    );
    let url = format!("http://127.0.0.1:{port}");
    daemon.wait_http(&format!("{url}/-/ready")).await;
    // Both targets scraped once: one up, one down.
    let source = PrometheusSli::new(&url, Duration::from_secs(5)).expect("client");
    eventually(30, "both targets scraped", || async {
        source
            .scalar("count(up)", jiff::Timestamp::now())
            .await
            .ok()
            .flatten()
            == Some(2.0)
    })
    .await;
    (daemon, url, dead_socket)
}

#[tokio::test]
async fn cron_ticks_record_sli_windows_with_the_ratio_from_prometheus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_prom, url, _dead) = prometheus(dir.path()).await;
    let source = PrometheusSli::new(&url, Duration::from_secs(5)).expect("client");

    let fake = FakeKube::start().await;
    let tg = harness::start(
        &fake,
        &format!(
            "sli_calculation:\n  schedule: '* * * * * *'\n  prometheus_url: {url}\n  timeout_seconds: 5\n  slis:\n\
             \x20   - name: targets-up\n      good: sum(up)\n      total: count(up)\n      window: 1m\n\
             \x20   - name: scrapes\n      good: sum(count_over_time(up{{job=\"self\"}}[$window]))\n      total: sum(count_over_time(up[$window]))\n      window: 30s\n\
             \x20   - name: broken\n      good: 'sum(rate('\n      total: count(up)\n"
        ),
    )
    .await;
    let store = Store::connect(&tg.store_url).await.expect("store");
    let windows = || async {
        store
            .list_intents(None, 1_000)
            .await
            .expect("list")
            .into_iter()
            .filter(|r| r.intent_type == "RecordSLIWindowRequested")
            .map(|r| r.envelope)
            .collect::<Vec<Value>>()
    };
    eventually(30, "two ticks of each working SLI", || async {
        let w = windows().await;
        let count = |name: &str| w.iter().filter(|e| e["payload"]["sli"] == name).count();
        count("targets-up") >= 2 && count("scrapes") >= 2
    })
    .await;
    let all = windows().await;
    assert!(
        all.iter().all(|e| e["payload"]["sli"] != "broken"),
        "a failing query emits nothing"
    );

    let up: Vec<&Value> = all
        .iter()
        .filter(|e| e["payload"]["sli"] == "targets-up")
        .collect();
    for e in &up {
        let p = &e["payload"];
        assert_eq!(e["version"], 1);
        assert_eq!(e["source"], "toolgate/sli");
        assert_eq!(p["good"], 1.0, "{p}");
        assert_eq!(p["total"], 2.0, "{p}");
        assert_eq!(p["ratio"], 0.5, "{p}");
        assert_eq!(p["window"], "1m");
        let end: jiff::Timestamp = p["window_end"].as_str().expect("end").parse().expect("ts");
        let start: jiff::Timestamp = p["window_start"]
            .as_str()
            .expect("start")
            .parse()
            .expect("ts");
        assert_eq!(end.as_second() - start.as_second(), 60);
        assert_eq!(end.subsec_nanosecond(), 0, "ticks fall on whole seconds");
        assert_eq!(e["idempotency_key"], format!("sli:targets-up:{end}"));
    }
    let ends: BTreeSet<&str> = up
        .iter()
        .filter_map(|e| e["payload"]["window_end"].as_str())
        .collect();
    assert_eq!(ends.len(), up.len(), "one intent per tick");

    // The ratio is what Prometheus answers for the two queries at the window's end.
    let scrapes = all
        .iter()
        .find(|e| e["payload"]["sli"] == "scrapes")
        .expect("scrapes window");
    let p = &scrapes["payload"];
    assert_eq!(
        p["good_query"],
        "sum(count_over_time(up{job=\"self\"}[30s]))"
    );
    let at: jiff::Timestamp = p["window_end"].as_str().expect("end").parse().expect("ts");
    let good = source
        .scalar(p["good_query"].as_str().expect("q"), at)
        .await
        .expect("good")
        .expect("data");
    let total = source
        .scalar(p["total_query"].as_str().expect("q"), at)
        .await
        .expect("total")
        .expect("data");
    // A scrape started just before the tick may be appended just after toolgate's query: allow
    // that one sample per target.
    let (rec_good, rec_total) = (
        p["good"].as_f64().expect("good"),
        p["total"].as_f64().expect("total"),
    );
    assert!((rec_good - good).abs() <= 1.0, "{rec_good} vs {good}");
    assert!((rec_total - total).abs() <= 2.0, "{rec_total} vs {total}");
    let ratio = p["ratio"].as_f64().expect("ratio");
    assert!(
        (ratio - rec_good / rec_total).abs() < 1e-12,
        "{ratio} vs {rec_good}/{rec_total}"
    );
    assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
}

#[tokio::test]
async fn prometheus_errors_and_unreachable_servers_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_prom, url, _dead) = prometheus(dir.path()).await;
    let source = PrometheusSli::new(&url, Duration::from_secs(5)).expect("client");
    let err = source
        .scalar("sum(rate(", jiff::Timestamp::now())
        .await
        .expect_err("bad PromQL");
    let text = err.to_string();
    assert!(matches!(err, SliError::Query { .. }), "{text}");
    assert!(text.contains("bad_data"), "{text}");
    assert!(text.contains("parse error"), "{text}");
    let err = source
        .scalar("up", jiff::Timestamp::now())
        .await
        .expect_err("two series");
    assert!(err.to_string().contains("wrap it in sum()"), "{err}");
    assert_eq!(
        source
            .scalar("sum(up{job=\"nothing\"})", jiff::Timestamp::now())
            .await
            .expect("empty"),
        None
    );

    // A server that accepts and never answers: the timeout ends the call.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_url = format!("http://{}", silent.local_addr().expect("addr"));
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            open.push(conn);
        }
    });
    let slow = PrometheusSli::new(&silent_url, Duration::from_secs(1)).expect("client");
    let err = slow
        .scalar("up", jiff::Timestamp::now())
        .await
        .expect_err("timeout");
    assert!(matches!(err, SliError::Upstream(_)), "{err}");
    hold.abort();
    let down = PrometheusSli::new(
        &format!("http://127.0.0.1:{}", free_port()),
        Duration::from_secs(1),
    )
    .expect("client");
    assert!(matches!(
        down.scalar("up", jiff::Timestamp::now()).await,
        Err(SliError::Upstream(_))
    ));
}
