//! obs.* tools end to end through a running toolgate: a real Prometheus (Debian package,
//! started here with a temp config scraping itself), and the Loki, Tempo and Grafana fakes.
//! Upstream failures must come back as tool errors naming the upstream while the server keeps
//! serving; `obs.annotate` waits for an approval and then posts exactly once.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::approvals_api::{api, mcp_as};
use crate::daemons::free_port;
use crate::fake_kube::FakeKube;
use crate::fake_obs::{self, Fake};
use crate::harness::{self, ALICE, BOB, Toolgate};
use crate::mcp;

// ------------------------------------------------------------ a real Prometheus

pub(crate) struct Prometheus {
    pub(crate) url: String,
    child: tokio::process::Child,
    _dir: TempDir,
}

impl Prometheus {
    /// Kill it and wait until it is gone: from then on its port refuses connections.
    pub(crate) async fn stop(&mut self) {
        self.child.kill().await.expect("kill prometheus");
    }
}

fn prometheus_binary() -> PathBuf {
    let p = PathBuf::from("/usr/bin/prometheus");
    assert!(
        p.exists(),
        "prometheus is not installed: run the README's test command (scripts/test installs the Debian package)"
    );
    p
}

/// Start Prometheus scraping itself every second; returns once `up` has `samples` samples.
pub(crate) async fn start_prometheus(samples: usize) -> Prometheus {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .expect("write config");
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
    let child = tokio::process::Command::new(prometheus_binary())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start prometheus");
    let url = format!("http://127.0.0.1:{port}");
    let client = harness::http();
    let query = format!("count_over_time(up[5m]) >= {samples}");
    for _ in 0..600 {
        let ready = client
            .get(format!("{url}/api/v1/query"))
            .query_pairs(&[("query", query.as_str())])
            .send()
            .await;
        if let Ok(resp) = ready
            && let Ok(body) = resp.json::<Value>().await
            && body["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        {
            return Prometheus {
                url,
                child,
                _dir: dir,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    panic!("prometheus did not collect {samples} samples of `up` in 60 s; log:\n{log}");
}

/// reqwest in this project has no `query` feature: append pairs by hand.
trait QueryPairs {
    fn query_pairs(self, pairs: &[(&str, &str)]) -> Self;
}

impl QueryPairs for reqwest::RequestBuilder {
    fn query_pairs(self, pairs: &[(&str, &str)]) -> Self {
        let (client, request) = self.build_split();
        let mut request = request.expect("request");
        request.url_mut().query_pairs_mut().extend_pairs(pairs);
        reqwest::RequestBuilder::from_parts(client, request)
    }
}

// ------------------------------------------------------------ calling tools

/// Call `name` over MCP (the structured output is checked against the tool's outputSchema):
/// the structured answer, or the tool error's text.
pub(crate) async fn tool(
    client: &RunningService<RoleClient, ()>,
    name: &str,
    args: Value,
) -> Result<Value, String> {
    let result = mcp::call(client, name, args).await;
    if result.is_error == Some(true) {
        return Err(mcp::text_of(&result));
    }
    Ok(result.structured_content.clone().unwrap_or(Value::Null))
}

pub(crate) async fn start(extra: &str) -> (FakeKube, Toolgate, RunningService<RoleClient, ()>) {
    let kube = FakeKube::start().await;
    let tg = harness::start(&kube, extra).await;
    let client = mcp_as(&tg.url, ALICE).await;
    (kube, tg, client)
}

fn series_labels(series: &Value) -> Vec<Value> {
    series
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| s["labels"].clone())
        .collect()
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NEG_INFINITY)
}

// ------------------------------------------------------------ Prometheus

#[tokio::test]
async fn promql_instant_and_range_queries_on_a_real_prometheus() {
    let prom = start_prometheus(5).await;
    let (_kube, _tg, client) = start(&format!(
        "observability:\n  prometheus:\n    url: {}\n    timeout_seconds: 10\n",
        prom.url
    ))
    .await;

    // Instant: Prometheus scraping itself is up.
    let up = tool(&client, "obs.query_metrics", json!({"query": "up"}))
        .await
        .expect("instant query");
    assert_eq!(up["mode"], "instant", "{up}");
    assert_eq!(up["result_type"], "vector", "{up}");
    assert_eq!(up["series_total"], 1, "{up}");
    assert_eq!(up["series"][0]["metric"], "up", "{up}");
    assert_eq!(up["series"][0]["value"], json!(1.0), "{up}");
    assert_eq!(up["series"][0]["labels"]["job"], "prometheus", "{up}");

    // Relative, RFC3339 and unix times; an hour ago there was no data yet.
    let before = tool(
        &client,
        "obs.query_metrics",
        json!({"query": "up", "time": "now-1h"}),
    )
    .await
    .expect("relative time");
    assert_eq!(before["series_total"], 0, "{before}");
    let now = jiff::Timestamp::now();
    let unix = format!("{}", now.as_second() - 2);
    let at_unix = tool(
        &client,
        "obs.query_metrics",
        json!({"query": "up", "time": unix}),
    )
    .await
    .expect("unix time");
    let expected = jiff::Timestamp::from_second(now.as_second() - 2)
        .expect("ts")
        .to_string();
    assert_eq!(at_unix["time"], json!(expected), "{at_unix}");
    assert_eq!(at_unix["series_total"], 1, "{at_unix}");
    let at_rfc = tool(
        &client,
        "obs.query_metrics",
        json!({"query": "up", "time": expected.clone()}),
    )
    .await
    .expect("rfc3339 time");
    assert_eq!(at_rfc["time"], json!(expected), "{at_rfc}");
    let bad_time = tool(
        &client,
        "obs.query_metrics",
        json!({"query": "up", "time": "yesterday"}),
    )
    .await
    .expect_err("not a time");
    assert!(
        bad_time.contains("argument `time`: `yesterday` is not a time"),
        "{bad_time}"
    );

    // Range: points per series are thinned to max_points, first and last kept.
    let range = tool(
        &client,
        "obs.query_metrics",
        json!({"query": "up", "start": "now-2m", "step": "1s", "max_points": 3}),
    )
    .await
    .expect("range query");
    assert_eq!(range["mode"], "range", "{range}");
    assert_eq!(range["result_type"], "matrix", "{range}");
    assert_eq!(range["step_seconds"], json!(1.0), "{range}");
    let points = range["series"][0]["points"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(points.len(), 3, "{range}");
    let total = range["series"][0]["points_total"].as_u64().unwrap_or(0);
    assert!(
        total >= 5,
        "Prometheus returned every second's sample: {range}"
    );
    assert!(points.iter().all(|p| p[1] == json!(1.0)), "{range}");

    // Series cap: the top-N by last value, marked truncated, labels shared by all listed once.
    let many = tool(
        &client,
        "obs.query_metrics",
        json!({"query": "{job=\"prometheus\", __name__=~\"prometheus_.*\"}", "start": "now-1m", "max_series": 4, "max_points": 5}),
    )
    .await
    .expect("many series");
    let series = many["series"].as_array().cloned().unwrap_or_default();
    assert_eq!(series.len(), 4, "{many}");
    assert!(many["series_total"].as_u64().unwrap_or(0) > 4, "{many}");
    assert_eq!(many["truncated"], true, "{many}");
    assert!(
        many.get("cursor").is_none(),
        "a top-N cut has nothing to page: {many}"
    );
    assert_eq!(many["common_labels"]["job"], "prometheus", "{many}");
    assert!(
        series_labels(&many["series"])
            .iter()
            .all(|l| l.get("job").is_none()),
        "common labels are not repeated: {many}"
    );
    let lasts: Vec<f64> = series
        .iter()
        .map(|s| {
            number(
                &s["points"]
                    .as_array()
                    .and_then(|p| p.last())
                    .cloned()
                    .unwrap_or_default()[1],
            )
        })
        .collect();
    assert!(
        lasts.windows(2).all(|w| w[0] >= w[1]),
        "highest last value first: {lasts:?}"
    );
    // Every kept series holds at most max_points points.
    assert!(
        series
            .iter()
            .all(|s| s["points"].as_array().map_or(0, Vec::len) <= 5),
        "{many}"
    );

    // The output budget cuts series further and hands out a cursor.
    let cut = tool(
        &client,
        "obs.query_metrics",
        json!({"query": "{job=\"prometheus\"}", "max_series": 200, "max_bytes": 2048}),
    )
    .await
    .expect("budgeted");
    assert_eq!(cut["truncated"], true, "{cut}");
    assert!(cut["cursor"].is_string(), "{cut}");
    assert!(cut.to_string().len() <= 2048, "{}", cut.to_string().len());

    // Bad PromQL: Prometheus' own message.
    let bad = tool(
        &client,
        "obs.query_metrics",
        json!({"query": "sum(rate(up[5m])"}),
    )
    .await
    .expect_err("bad PromQL");
    assert!(
        bad.contains("Prometheus rejected the request (HTTP 400)"),
        "{bad}"
    );
    assert!(bad.contains("bad_data"), "{bad}");
    assert!(bad.contains("parse error"), "{bad}");
    assert!(bad.contains("unclosed left parenthesis"), "{bad}");

    // The adapter API other modules (SLI windows) use directly.
    let adapter = toolgate::adapters::prometheus::Prometheus::new(
        &toolgate::config::HttpUpstream::plain(&prom.url, Duration::from_secs(5)),
    )
    .expect("adapter");
    let answer = adapter
        .instant("sum(up) / count(up)", None)
        .await
        .expect("instant");
    assert_eq!(answer.single_value(), Some(1.0), "{answer:?}");
    let end = jiff::Timestamp::now();
    let start = end - jiff::SignedDuration::from_secs(30);
    let matrix = adapter
        .range("up", start, end, Duration::from_secs(1))
        .await
        .expect("range");
    match matrix.data {
        toolgate::adapters::prometheus::QueryData::Matrix(series) => {
            assert_eq!(series.len(), 1);
            assert_eq!(
                series[0].labels.get("job").map(String::as_str),
                Some("prometheus")
            );
            assert!(series[0].points.len() >= 2, "{series:?}");
        }
        other => panic!("expected a matrix, got {other:?}"),
    }
    let err = adapter.instant("up{", None).await.expect_err("bad query");
    assert!(err.to_string().contains("parse error"), "{err}");

    // Arguments that cannot work are refused before Prometheus is asked.
    let mixed = tool(
        &client,
        "obs.query_metrics",
        json!({"query": "up", "time": "now", "start": "now-1h"}),
    )
    .await
    .expect_err("instant and range at once");
    assert!(mixed.contains("give one or the other"), "{mixed}");
    let dense = tool(
        &client,
        "obs.query_metrics",
        json!({"query": "up", "start": "now-7d", "step": "1s"}),
    )
    .await
    .expect_err("too many points");
    assert!(dense.contains("11000 points"), "{dense}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn unavailable_upstreams_are_named_and_the_server_keeps_serving() {
    // A closed port for Prometheus, a listener that never answers for Loki, no Tempo at all.
    // Bound but not listening: connections are refused and no other test can take the port.
    let (_reserved, closed) = crate::daemons::dead_port();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let grafana = fake_obs::grafana(
        "glsa_test",
        json!([{"uid": "svc", "title": "Service", "tags": ["shop"]}]),
    )
    .await;
    let (_kube, tg, client) = start(&format!(
        "observability:\n  prometheus:\n    url: http://127.0.0.1:{closed}\n    timeout_seconds: 1\n\
         \x20 loki:\n    url: http://{silent_addr}\n    timeout_seconds: 1\n    tenant: t1\n\
         \x20 grafana:\n    url: {}\n    auth: {{bearer_token: glsa_test}}\n",
        grafana.url
    ))
    .await;

    let down = tool(&client, "obs.query_metrics", json!({"query": "up"}))
        .await
        .expect_err("prometheus is down");
    assert!(down.contains("Prometheus is unavailable"), "{down}");
    assert!(down.contains("cannot connect"), "{down}");

    let slow = tool(
        &client,
        "obs.search_logs",
        json!({"query": "{app=\"web\"}"}),
    )
    .await
    .expect_err("loki never answers");
    assert!(slow.contains("Loki is unavailable"), "{slow}");
    assert!(slow.contains("timed out"), "{slow}");

    let missing = tool(&client, "obs.get_trace", json!({"trace_id": "abc123"}))
        .await
        .expect_err("tempo not configured");
    assert!(
        missing.contains("tempo is not configured: set observability.tempo.url"),
        "{missing}"
    );

    // Other upstreams and tools still work.
    let links = tool(&client, "obs.get_dashboard_url", json!({"tags": ["shop"]}))
        .await
        .expect("grafana works");
    assert_eq!(links["count"], 1, "{links}");
    let (status, _) = api(&tg, "GET", "/api/v1/approvals", Some(BOB), None).await;
    assert_eq!(status, StatusCode::OK);

    // Repeated failures open Prometheus' breaker: it then fails fast and says why.
    let mut last = String::new();
    for _ in 0..5 {
        last = tool(&client, "obs.query_metrics", json!({"query": "up"}))
            .await
            .expect_err("still down");
    }
    assert!(
        last.contains("circuit open after repeated failures of Prometheus"),
        "{last}"
    );
    client.cancel().await.ok();
}

// ------------------------------------------------------------ Loki

fn ns(t: jiff::Timestamp) -> String {
    t.as_nanosecond().to_string()
}

#[tokio::test]
async fn loki_lines_and_label_discovery_carry_tenant_and_auth() {
    let now = jiff::Timestamp::now();
    let ago = |s: i64| now - jiff::SignedDuration::from_secs(s);
    let loki = fake_obs::loki(json!([
        {"stream": {"namespace": "shop", "app": "web", "pod": "web-0"},
         "values": [[ns(ago(300)), "GET / 200"], [ns(ago(120)), "ERROR db timeout"], [ns(ago(60)), "GET / 500"]]},
        {"stream": {"namespace": "shop", "app": "web", "pod": "web-1"},
         "values": [[ns(ago(90)), "ERROR pool exhausted"], [ns(ago(30)), "GET / 200"]]},
        {"stream": {"namespace": "billing", "app": "api", "pod": "api-0"},
         "values": [[ns(ago(45)), "ERROR card declined"], [ns(ago(7200)), "ERROR too old"]]}
    ]))
    .await;
    let (_kube, _tg, client) = start(&format!(
        "observability:\n  loki:\n    url: {}\n    tenant: team-sre\n    auth: {{username: loki-reader, password: s3cret-pw}}\n",
        loki.url
    ))
    .await;

    let lines = tool(
        &client,
        "obs.search_logs",
        json!({"query": "{namespace=\"shop\"} |= \"ERROR\"", "limit": 50}),
    )
    .await
    .expect("log lines");
    let entries = lines["entries"].as_array().cloned().unwrap_or_default();
    let texts: Vec<&str> = entries.iter().filter_map(|e| e["line"].as_str()).collect();
    assert_eq!(
        texts,
        ["ERROR pool exhausted", "ERROR db timeout"],
        "newest first: {lines}"
    );
    let pod_of = |e: &Value| {
        let i = e["stream"].as_u64().unwrap_or(99) as usize;
        lines["streams"][i]["pod"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(pod_of(&entries[0]), "web-1", "{lines}");
    assert_eq!(pod_of(&entries[1]), "web-0", "{lines}");
    assert_eq!(lines["count"], 2);

    // What reached Loki: tenant, basic auth, the query, the time range in ns, limit, direction.
    let sent = loki.requests_to("/loki/api/v1/query_range");
    let r = sent.last().expect("query_range request");
    assert_eq!(r.header("x-scope-orgid"), Some("team-sre"));
    let basic = format!("Basic {}", STANDARD.encode("loki-reader:s3cret-pw"));
    assert_eq!(r.header("authorization"), Some(basic.as_str()));
    assert_eq!(r.param("query"), Some("{namespace=\"shop\"} |= \"ERROR\""));
    assert_eq!(r.param("limit"), Some("50"));
    assert_eq!(r.param("direction"), Some("backward"));
    let start: i128 = r
        .param("start")
        .and_then(|s| s.parse().ok())
        .expect("start ns");
    let end: i128 = r.param("end").and_then(|s| s.parse().ok()).expect("end ns");
    let hour = 3_600_000_000_000i128;
    assert!(
        (end - start - hour).abs() < 1_000_000_000,
        "default range is the last hour"
    );

    // labels + contains build the query; forward order and limit.
    let forward = tool(
        &client,
        "obs.search_logs",
        json!({"labels": {"app": "web"}, "contains": "GET", "direction": "forward", "limit": 2,
               "start": "now-10m"}),
    )
    .await
    .expect("forward");
    assert_eq!(forward["query"], "{app=\"web\"} |= \"GET\"", "{forward}");
    let texts: Vec<&str> = forward["entries"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["line"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        texts,
        ["GET / 200", "GET / 500"],
        "oldest first, 2 lines: {forward}"
    );
    assert_eq!(forward["limit_reached"], true, "{forward}");
    let r = loki.requests_to("/loki/api/v1/query_range");
    assert_eq!(r.last().and_then(|r| r.param("direction")), Some("forward"));

    // Label discovery.
    let names = tool(&client, "obs.search_logs", json!({"mode": "labels"}))
        .await
        .expect("labels");
    assert_eq!(
        names["label_names"],
        json!(["app", "namespace", "pod"]),
        "{names}"
    );
    let values = tool(
        &client,
        "obs.search_logs",
        json!({"mode": "values", "label": "pod", "labels": {"namespace": "shop"}}),
    )
    .await
    .expect("values");
    assert_eq!(values["values"], json!(["web-0", "web-1"]), "{values}");
    let r = loki.requests_to("/loki/api/v1/label/pod/values");
    assert_eq!(
        r.last().and_then(|r| r.param("query")),
        Some("{namespace=\"shop\"}")
    );
    assert_eq!(
        r.last().and_then(|r| r.header("x-scope-orgid")),
        Some("team-sre")
    );

    // Loki's own parse error comes back.
    let bad = tool(&client, "obs.search_logs", json!({"query": "{app=\"web\""}))
        .await
        .expect_err("bad LogQL");
    assert!(
        bad.contains("Loki rejected the request (HTTP 400)"),
        "{bad}"
    );
    assert!(bad.contains("parse error at line 1"), "{bad}");
    let no_label = tool(&client, "obs.search_logs", json!({"mode": "values"}))
        .await
        .expect_err("label missing");
    assert!(no_label.contains("argument `label`"), "{no_label}");
    // The password never shows up in answers.
    assert!(!bad.contains("s3cret-pw") && !lines.to_string().contains("s3cret-pw"));
    client.cancel().await.ok();
}

#[tokio::test]
async fn loki_without_a_tenant_says_the_credentials_are_refused() {
    let loki = fake_obs::loki(json!([])).await;
    let (_kube, _tg, client) =
        start(&format!("observability:\n  loki:\n    url: {}\n", loki.url)).await;
    let err = tool(&client, "obs.search_logs", json!({"mode": "labels"}))
        .await
        .expect_err("no tenant");
    assert!(
        err.contains("Loki refused toolgate's credentials (HTTP 401: no org id)"),
        "{err}"
    );
    assert!(err.contains("observability.loki.auth"), "{err}");
    client.cancel().await.ok();
}

// ------------------------------------------------------------ Tempo

pub(crate) const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn span_id(n: u64) -> String {
    STANDARD.encode(n.to_be_bytes())
}

fn otlp_span(
    n: u64,
    parent: u64,
    name: &str,
    start_ms: u64,
    end_ms: u64,
    error: Option<&str>,
) -> Value {
    let base: u64 = 1_795_428_000_000_000_000;
    let mut s = json!({
        "traceId": STANDARD.encode([0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36]),
        "spanId": span_id(n),
        "name": name,
        "kind": if parent == 0 { "SPAN_KIND_SERVER" } else { "SPAN_KIND_CLIENT" },
        "startTimeUnixNano": (base + start_ms * 1_000_000).to_string(),
        "endTimeUnixNano": (base + end_ms * 1_000_000).to_string(),
        "attributes": [{"key": "step", "value": {"intValue": n.to_string()}}],
        "status": {}
    });
    if parent != 0 {
        s["parentSpanId"] = json!(span_id(parent));
    }
    if let Some(msg) = error {
        s["status"] = json!({"code": "STATUS_CODE_ERROR", "message": msg});
    }
    s
}

fn batch(service: &str, spans: Vec<Value>) -> Value {
    json!({
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "manual"}, "spans": spans}]
    })
}

pub(crate) async fn tempo_with_trace() -> Fake {
    let mut checkout = vec![
        otlp_span(3, 2, "POST /checkout", 10, 110, None),
        otlp_span(4, 3, "SELECT orders", 20, 60, None),
        otlp_span(5, 3, "charge card", 60, 105, Some("card declined")),
    ];
    for i in 0..40u64 {
        checkout.push(otlp_span(
            100 + i,
            3,
            &format!("cache get {i}"),
            20 + i,
            21 + i,
            None,
        ));
    }
    fake_obs::tempo(json!({
        "traces": {TRACE_ID: {"batches": [
            batch("frontend", vec![
                otlp_span(1, 0, "GET /checkout", 0, 120, None),
                otlp_span(2, 1, "call checkout", 5, 115, None),
            ]),
            batch("checkout", checkout),
        ]}},
        "search": [
            {"traceID": TRACE_ID, "rootServiceName": "frontend", "rootTraceName": "GET /checkout",
             "startTimeUnixNano": "1795428000000000000", "durationMs": 120,
             "spanSets": [{"spans": [], "matched": 2}]},
            {"traceID": "1234", "rootServiceName": "billing", "rootTraceName": "POST /charge",
             "startTimeUnixNano": "1795428001000000000", "durationMs": 40,
             "spanSet": {"spans": [], "matched": 1}}
        ]
    }))
    .await
}

#[tokio::test]
async fn tempo_traces_are_summarized_within_the_budget_and_searched() {
    let tempo = tempo_with_trace().await;
    let (_kube, _tg, client) = start(&format!(
        "observability:\n  tempo:\n    url: {}\n    auth: {{bearer_token: tempo-token}}\n",
        tempo.url
    ))
    .await;

    let trace = tool(
        &client,
        "obs.get_trace",
        json!({"trace_id": TRACE_ID.to_uppercase(), "max_bytes": 4096}),
    )
    .await
    .expect("trace");
    assert_eq!(trace["trace_id"], TRACE_ID);
    assert_eq!(trace["span_count"], 45, "{trace}");
    assert_eq!(trace["duration_ms"], json!(120.0), "{trace}");
    assert_eq!(trace["root"]["name"], "GET /checkout", "{trace}");
    assert_eq!(trace["root"]["service"], "frontend", "{trace}");
    assert_eq!(
        trace["services"],
        json!([{"service": "checkout", "spans": 43, "errors": 1}, {"service": "frontend", "spans": 2, "errors": 0}]),
        "{trace}"
    );
    assert_eq!(trace["slowest"][0]["name"], "GET /checkout", "{trace}");
    assert_eq!(trace["slowest"][1]["name"], "call checkout", "{trace}");
    assert_eq!(trace["error_count"], 1);
    assert_eq!(trace["errors"][0]["name"], "charge card");
    assert_eq!(trace["errors"][0]["status_message"], "card declined");
    assert_eq!(
        trace["errors"][0]["span_id"], "0000000000000005",
        "hex ids: {trace}"
    );
    // Full spans only as far as the budget goes; the summary is always there.
    assert_eq!(trace["truncated"], true, "{trace}");
    assert!(trace.to_string().len() <= 4096);
    let mut spans: Vec<Value> = trace["spans"].as_array().cloned().unwrap_or_default();
    assert!(!spans.is_empty() && spans.len() < 45, "{}", spans.len());
    assert_eq!(
        spans[0]["parent_span_id"],
        Value::Null,
        "the root has no parent"
    );
    assert_eq!(spans[1]["parent_span_id"], "0000000000000001");
    let mut cursor = trace["cursor"].as_str().map(String::from);
    while let Some(c) = cursor {
        let next = tool(
            &client,
            "obs.get_trace",
            json!({"trace_id": TRACE_ID.to_uppercase(), "max_bytes": 4096, "cursor": c}),
        )
        .await
        .expect("next page");
        spans.extend(next["spans"].as_array().cloned().unwrap_or_default());
        cursor = next["cursor"].as_str().map(String::from);
    }
    assert_eq!(spans.len(), 45, "every span exactly once across pages");
    let r = tempo.requests_to("/api/traces/");
    assert_eq!(r[0].path, format!("/api/traces/{TRACE_ID}"));
    assert_eq!(r[0].header("authorization"), Some("Bearer tempo-token"));

    let missing = tool(
        &client,
        "obs.get_trace",
        json!({"trace_id": "00000000000000000000000000000bad"}),
    )
    .await
    .expect_err("unknown trace");
    assert!(
        missing.contains("trace 00000000000000000000000000000bad not found"),
        "{missing}"
    );
    let invalid = tool(&client, "obs.get_trace", json!({"trace_id": "not-a-trace"}))
        .await
        .expect_err("bad id");
    assert!(
        invalid.contains("expected up to 32 hex digits"),
        "{invalid}"
    );

    let found = tool(
        &client,
        "obs.search_traces",
        json!({"query": "{ resource.service.name = \"frontend\" }", "limit": 5, "start": "2026-11-23T09:00:00Z", "end": "2026-11-23T11:00:00Z"}),
    )
    .await
    .expect("search");
    assert_eq!(found["count"], 1, "{found}");
    assert_eq!(found["traces"][0]["trace_id"], TRACE_ID);
    assert_eq!(found["traces"][0]["root_name"], "GET /checkout");
    assert_eq!(found["traces"][0]["matched_spans"], 2);
    assert_eq!(found["traces"][0]["start"], "2026-11-23T10:00:00Z");
    let r = tempo.requests_to("/api/search");
    let r = r.last().expect("search request");
    assert_eq!(
        r.param("q"),
        Some("{ resource.service.name = \"frontend\" }")
    );
    assert_eq!(r.param("limit"), Some("5"));
    assert_eq!(r.param("start"), Some("1795424400"));
    assert_eq!(r.param("end"), Some("1795431600"));
    let all = tool(&client, "obs.search_traces", json!({}))
        .await
        .expect("default search");
    assert_eq!(all["query"], "{}");
    assert_eq!(all["count"], 2, "{all}");
    assert_eq!(
        all["traces"][1]["matched_spans"], 1,
        "older spanSet form: {all}"
    );

    let bad = tool(
        &client,
        "obs.search_traces",
        json!({"query": "status = error"}),
    )
    .await
    .expect_err("bad TraceQL");
    assert!(
        bad.contains("Tempo rejected the request (HTTP 400): invalid TraceQL query"),
        "{bad}"
    );
    client.cancel().await.ok();
}

// ------------------------------------------------------------ Grafana

fn dashboards() -> Value {
    json!([
        {"uid": "svc-overview", "title": "Service Overview", "tags": ["shop", "golden-signals"], "folderTitle": "SRE"},
        {"uid": "k8s-pods", "title": "Kubernetes Pods", "tags": ["k8s"], "folderTitle": "Platform"},
        {"uid": "shop-db", "title": "Shop Database", "tags": ["shop"], "folderTitle": "SRE"}
    ])
}

#[tokio::test]
async fn grafana_links_carry_time_range_variables_and_panel() {
    let grafana = fake_obs::grafana("glsa_good", dashboards()).await;
    let (_kube, _tg, client) = start(&format!(
        "observability:\n  grafana:\n    url: {}\n    public_url: https://grafana.example.com\n    auth: {{bearer_token: glsa_good}}\n",
        grafana.url
    ))
    .await;

    let by_title = tool(
        &client,
        "obs.get_dashboard_url",
        json!({"title": "service overview", "from": "now-6h", "to": "now",
               "variables": {"namespace": "shop", "pod": ["web-0", "web-1"]}, "panel_id": 4}),
    )
    .await
    .expect("by title");
    assert_eq!(by_title["count"], 1, "{by_title}");
    assert_eq!(
        by_title["dashboards"][0]["url"],
        "https://grafana.example.com/d/svc-overview/service-overview?from=now-6h&to=now&var-namespace=shop&var-pod=web-0&var-pod=web-1&viewPanel=4",
        "{by_title}"
    );
    assert_eq!(by_title["dashboards"][0]["folder"], "SRE");
    let r = grafana.requests_to("/api/search");
    let r = r.last().expect("search");
    assert_eq!(r.param("query"), Some("service overview"));
    assert_eq!(r.param("type"), Some("dash-db"));
    assert_eq!(r.header("authorization"), Some("Bearer glsa_good"));

    let by_tag = tool(
        &client,
        "obs.get_dashboard_url",
        json!({"tags": ["shop"], "from": "2026-11-23T10:00:00Z", "to": "1795431600"}),
    )
    .await
    .expect("by tag");
    let uids: Vec<&str> = by_tag["dashboards"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["uid"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(uids, ["svc-overview", "shop-db"], "{by_tag}");
    assert_eq!(
        by_tag["from"], "1795428000000",
        "absolute times become epoch ms"
    );
    assert_eq!(by_tag["to"], "1795431600000");
    let by_uid = tool(&client, "obs.get_dashboard_url", json!({"uid": "k8s-pods"}))
        .await
        .expect("by uid");
    assert_eq!(
        by_uid["dashboards"][0]["title"], "Kubernetes Pods",
        "{by_uid}"
    );
    let r = grafana.requests_to("/api/search");
    assert_eq!(
        r.last().and_then(|r| r.param("dashboardUIDs")),
        Some("k8s-pods")
    );

    let nothing = tool(&client, "obs.get_dashboard_url", json!({}))
        .await
        .expect_err("no criteria");
    assert!(
        nothing.contains("give `title`, `tags` or `uid`"),
        "{nothing}"
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_wrong_grafana_token_is_reported_as_refused_credentials() {
    let grafana = fake_obs::grafana("glsa_good", dashboards()).await;
    let (_kube, _tg, client) = start(&format!(
        "observability:\n  grafana:\n    url: {}\n    auth: {{bearer_token: glsa_wrong_secret}}\n",
        grafana.url
    ))
    .await;
    let err = tool(&client, "obs.get_dashboard_url", json!({"title": "x"}))
        .await
        .expect_err("401");
    assert!(
        err.contains("Grafana refused toolgate's credentials (HTTP 401: Unauthorized); check observability.grafana.auth"),
        "{err}"
    );
    assert!(
        !err.contains("glsa_wrong_secret"),
        "the token never shows: {err}"
    );
    client.cancel().await.ok();
}

async fn rpc(url: &str, token: &str, body: Value) -> Value {
    let resp = harness::http()
        .post(format!("{url}/rpc"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("POST /rpc");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("JSON answer")
}

#[tokio::test]
async fn annotate_waits_for_approval_then_posts_exactly_once() {
    let grafana = fake_obs::grafana("glsa_good", dashboards()).await;
    let kube = FakeKube::start().await;
    let tg = harness::start(
        &kube,
        &format!(
            "observability:\n  grafana:\n    url: {}\n    auth: {{bearer_token: glsa_good}}\n",
            grafana.url
        ),
    )
    .await;

    let held = rpc(
        &tg.url,
        ALICE,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools.call", "params": {
            "name": "obs.annotate",
            "arguments": {"text": "Rolled back checkout to v41", "tags": ["incident", "INC-7"],
                          "dashboard_uid": "svc-overview", "panel_id": 4, "time": "2026-11-23T10:00:00Z"}}}),
    )
    .await;
    let sc = &held["result"]["structuredContent"];
    assert_eq!(sc["status"], "approval_required", "{held}");
    let id = sc["approval_id"].as_str().expect("approval_id").to_string();
    assert!(
        grafana.annotations().is_empty(),
        "nothing posted before approval"
    );
    assert!(grafana.requests_to("/api/annotations").is_empty());

    let path = format!("/api/v1/approvals/{id}");
    let (status, view) = api(&tg, "GET", &path, Some(BOB), None).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["tool"], "obs.annotate");
    let summary = view["preview"]["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("on panel 4 of dashboard svc-overview")
            && summary.contains("2026-11-23T10:00:00Z")
            && summary.contains("Rolled back checkout to v41"),
        "approvers see what will be written: {summary}"
    );

    let (status, done) = api(
        &tg,
        "POST",
        &format!("{path}/approve"),
        Some(BOB),
        Some(json!({"reason": "mark the rollback"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "executed", "{done}");
    let annotations = grafana.annotations();
    assert_eq!(
        annotations.len(),
        1,
        "exactly one annotation: {annotations:?}"
    );
    assert_eq!(
        annotations[0],
        json!({"text": "Rolled back checkout to v41", "tags": ["incident", "INC-7"],
               "dashboardUID": "svc-overview", "panelId": 4, "time": 1795428000000i64})
    );
    let posted = grafana.requests_to("/api/annotations");
    assert_eq!(posted[0].header("authorization"), Some("Bearer glsa_good"));

    let (status, _) = api(&tg, "POST", &format!("{path}/approve"), Some(BOB), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        grafana.annotations().len(),
        1,
        "approving again posts nothing"
    );
}

/// Each tool call's upstream requests carry its correlation id: `x-request-id` and a W3C
/// `traceparent` whose trace id follows from it; two calls have two ids.
#[tokio::test]
async fn upstream_requests_carry_the_calls_correlation_id() {
    let loki = fake_obs::loki(json!([])).await;
    let (_kube, _tg, client) = start(&format!(
        "observability:\n  loki:\n    url: {}\n    tenant: t\n",
        loki.url
    ))
    .await;
    for _ in 0..2 {
        tool(
            &client,
            "obs.search_logs",
            json!({"query": "{namespace=\"shop\"}"}),
        )
        .await
        .expect("empty result");
    }
    let sent = loki.requests_to("/loki/api/v1/query_range");
    assert_eq!(sent.len(), 2, "{sent:?}");
    let mut ids = Vec::new();
    for r in &sent {
        let id = r.header("x-request-id").expect("x-request-id").to_string();
        // The MCP request's JSON-RPC id is the call's request id (not a fresh UUID).
        assert!(
            id.parse::<u64>().is_ok(),
            "x-request-id {id} is the call's id"
        );
        let tp = r.header("traceparent").expect("traceparent");
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert_eq!((parts[0], parts[3]), ("00", "01"), "{tp}");
        assert!(
            parts[1].len() == 32 && parts[1].chars().all(|c| c.is_ascii_hexdigit()),
            "{tp}"
        );
        assert_eq!(
            parts[1],
            toolgate::adapters::http::correlation::traceparent(&id)
                .split('-')
                .nth(1)
                .unwrap_or_default(),
            "the trace id follows from the request id"
        );
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "each call has its own id");
}
