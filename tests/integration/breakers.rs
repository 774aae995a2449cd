//! Each upstream's circuit breaker, end to end through a running toolgate: upstream faults (a
//! stopped server, 5xx, 429) open it — the next call fails fast, refused without reaching the
//! upstream, with an error that names it; the server keeps serving the rest; `/readyz` stays
//! 200 but `degraded` with the upstream `down` and its breaker `open`; the gauge
//! `toolgate_upstream_breaker_state` says 2 — while more caller errors than the threshold (4xx
//! the call's own arguments caused) leave it closed and the next good call reaches the
//! upstream. Where the config has `retry:` and `breaker:` the tests set one attempt per call
//! and three faults; the identity provider and the approvals webhook keep the kit's defaults.

use std::path::Path;

use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};
use toolgate::adapters::http::BREAKER_THRESHOLD;
use toolgate::store::Store;

use crate::approvals_api::{mcp_as, request_restart};
use crate::daemons::{eventually, free_port, require};
use crate::fake_kube::FakeKube;
use crate::fake_obs::{self, Fake};
use crate::harness::{self, ALICE, Toolgate};
use crate::obs::{TRACE_ID, start, start_prometheus, tempo_with_trace, tool};
use crate::zitadel::{AUD, INTROSPECTOR, INTROSPECTOR_SECRET, PROJECT, Provider, RESOURCE};

/// Consecutive faults that open the breakers configured here.
const FAILURES: usize = 3;
/// The kit's keys of a test upstream, each line after `indent`: one attempt per call (so a
/// call is one fault), `FAILURES` faults, a cool-down longer than any test.
fn fast(indent: &str) -> String {
    format!(
        "{indent}retry: {{attempts: 1}}\n{indent}breaker: {{failures: {FAILURES}, cooldown: 1h}}\n"
    )
}

/// `observability.<name>` at `url` with the fast breaker and `extra` keys (4-space indented).
fn obs_block(name: &str, url: &str, extra: &str) -> String {
    format!("  {name}:\n    url: {url}\n{}{extra}", fast("    "))
}

/// Loki's block, for tests that need a working tool beside the upstream under test.
fn loki_block(loki: &Fake) -> String {
    obs_block("loki", &loki.url, "    tenant: t1\n")
}

/// A toolgate with the observability `blocks` (each from `obs_block`), and Alice's MCP client.
async fn with_obs(blocks: &[String]) -> (FakeKube, Toolgate, Client) {
    start(&format!("observability:\n{}", blocks.concat())).await
}

/// The upstream kit's series in `/metrics`.
struct Scrape(String);

impl Scrape {
    async fn of(tg: &Toolgate) -> Scrape {
        Scrape(tg.metrics().await)
    }

    /// The value of the series written exactly `series` (name and labels).
    fn value(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
    }

    fn breaker(&self, upstream: &str) -> Option<f64> {
        self.value(&format!(
            "toolgate_upstream_breaker_state{{upstream=\"{upstream}\"}}"
        ))
    }

    fn requests(&self, upstream: &str, outcome: &str) -> f64 {
        self.value(&format!(
            "toolgate_upstream_requests_total{{upstream=\"{upstream}\",outcome=\"{outcome}\"}}"
        ))
        .unwrap_or(0.0)
    }

    /// Requests that went out to `upstream`, whatever their outcome.
    fn sent(&self, upstream: &str) -> f64 {
        let prefix = format!("toolgate_upstream_requests_total{{upstream=\"{upstream}\",");
        self.0
            .lines()
            .filter(|l| l.starts_with(&prefix) && !l.contains("outcome=\"circuit_open\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// `/readyz`, which an upstream never turns away from 200 (only the store does).
async fn readiness(tg: &Toolgate) -> Value {
    let resp = harness::http()
        .get(format!("{}/readyz", tg.url))
        .send()
        .await
        .expect("GET /readyz");
    assert_eq!(
        resp.status(),
        200,
        "an upstream never makes a replica unready"
    );
    resp.json().await.expect("readyz is JSON")
}

/// `upstream`'s breaker is closed: `/readyz` lists it `ok`, the gauge says 0.
async fn assert_closed(tg: &Toolgate, upstream: &str) {
    let r = readiness(tg).await;
    let entry = &r["integrations"][upstream];
    assert_eq!(entry["breaker"], "closed", "{upstream}: {r}");
    assert_eq!(entry["state"], "ok", "{upstream}: {r}");
    assert_eq!(
        Scrape::of(tg).await.breaker(upstream),
        Some(0.0),
        "{upstream}"
    );
}

/// `upstream`'s breaker is open: `/readyz` is `degraded` with it `down`, its breaker `open` and
/// its last error; the gauge says 2.
async fn assert_open(tg: &Toolgate, upstream: &str) {
    let r = readiness(tg).await;
    assert_eq!(r["status"], "degraded", "{r}");
    let entry = &r["integrations"][upstream];
    assert_eq!(entry["breaker"], "open", "{upstream}: {r}");
    assert_eq!(entry["state"], "down", "{upstream}: {r}");
    assert!(entry["last_error"].is_string(), "{upstream}: {r}");
    assert_eq!(
        Scrape::of(tg).await.breaker(upstream),
        Some(2.0),
        "{upstream}"
    );
}

type Client = RunningService<RoleClient, ()>;

/// A tool call and the text its tool error must hold.
struct Call<'a> {
    tool: &'a str,
    args: Value,
    error: &'a str,
}

fn call<'a>(tool: &'a str, args: Value, error: &'a str) -> Call<'a> {
    Call { tool, args, error }
}

/// What else a tool sends its upstream around a caller error.
#[derive(PartialEq)]
enum Between {
    /// Nothing: were the caller errors counted as faults, they would be consecutive.
    Nothing,
    /// Its own lookups for a better message (a not-found error listing what exists).
    Lookups,
}

/// Each of `calls` is a caller error the upstream refuses with a 4xx; more of them than open a
/// breaker leave `upstream`'s breaker closed, and the kit counted each as `rejected`, none as
/// a fault.
async fn caller_errors_leave_it_closed(
    tg: &Toolgate,
    client: &Client,
    upstream: &str,
    calls: &[Call<'_>],
    between: Between,
) {
    assert!(
        calls.len() > FAILURES,
        "more caller errors than faults open it"
    );
    let before = Scrape::of(tg).await;
    for c in calls {
        let err = tool(client, c.tool, c.args.clone())
            .await
            .expect_err("a caller error");
        assert!(err.contains(c.error), "{} {}: {err}", c.tool, c.args);
    }
    let after = Scrape::of(tg).await;
    let delta =
        |outcome: &str| after.requests(upstream, outcome) - before.requests(upstream, outcome);
    assert!(
        delta("rejected") >= calls.len() as f64,
        "each caller error reached {upstream} and was refused there"
    );
    assert_eq!(
        after.sent(upstream) - before.sent(upstream),
        delta("rejected") + delta("ok"),
        "no fault among them"
    );
    if between == Between::Nothing {
        assert_eq!(
            delta("ok"),
            0.0,
            "nothing but the refused requests went to {upstream}"
        );
    }
    assert_closed(tg, upstream).await;
}

/// With `upstream` failing, `FAILURES` calls of `c` fail naming it, and open its breaker; the
/// next call fails fast: refused by the breaker, nothing sent, `open_error` in its text.
/// `received` counts the requests the upstream got, where a fake can tell.
async fn faults_open_it(
    tg: &Toolgate,
    client: &Client,
    upstream: &str,
    c: Call<'_>,
    open_error: &str,
    received: Option<&dyn Fn() -> usize>,
) {
    let first = received.map(|r| r());
    for _ in 0..FAILURES {
        let err = tool(client, c.tool, c.args.clone())
            .await
            .expect_err("the upstream is failing");
        assert!(err.contains(c.error), "{} {}: {err}", c.tool, c.args);
    }
    assert_open(tg, upstream).await;
    let before = Scrape::of(tg).await;
    let err = tool(client, c.tool, c.args.clone())
        .await
        .expect_err("the breaker is open");
    assert!(err.contains(open_error), "{} {}: {err}", c.tool, c.args);
    let after = Scrape::of(tg).await;
    assert_eq!(
        after.requests(upstream, "circuit_open") - before.requests(upstream, "circuit_open"),
        1.0,
        "the breaker refused the call"
    );
    assert_eq!(
        after.sent(upstream),
        before.sent(upstream),
        "nothing went to {upstream}"
    );
    if let (Some(received), Some(first)) = (received, first) {
        // The `/readyz` checks in between sent nothing either (a cluster's probe is refused).
        assert_eq!(
            received(),
            first + FAILURES,
            "{upstream} got the failing calls and nothing after"
        );
    }
}

/// A Loki fake with one stream (app web, namespace shop), for tests that need a working tool.
async fn loki() -> Fake {
    let now = jiff::Timestamp::now().as_nanosecond().to_string();
    fake_obs::loki(
        json!([{"stream": {"namespace": "shop", "app": "web"}, "values": [[now, "GET / 200"]]}]),
    )
    .await
}

fn logs_call() -> Value {
    json!({"query": "{app=\"web\"}"})
}

async fn logs_work(client: &Client) {
    let lines = tool(client, "obs.search_logs", logs_call())
        .await
        .expect("Loki answers");
    assert_eq!(lines["entries"][0]["line"], "GET / 200", "{lines}");
}

// ------------------------------------------------------------ Prometheus (real)

#[tokio::test]
async fn prometheus_breaker_opens_when_prometheus_is_down_and_not_on_bad_queries() {
    let mut prometheus = start_prometheus(1).await;
    let loki = loki().await;
    let (_kube, tg, client) = with_obs(&[
        obs_block("prometheus", &prometheus.url, ""),
        loki_block(&loki),
    ])
    .await;

    // Bad PromQL (400 bad_data) and queries that fail to evaluate (422 execution).
    let q = |query: &str| json!({ "query": query });
    let bad = |query, error| call("obs.query_metrics", q(query), error);
    let two = "{__name__=~\"up|scrape_duration_seconds\"}";
    let collide = format!("label_replace({two}, \"__name__\", \"x\", \"\", \"\")");
    let many_to_one = format!("{two} + on() up");
    let (parse, execution) = (
        "Prometheus rejected the request (HTTP 400): bad_data",
        "Prometheus rejected the request (HTTP 422): execution",
    );
    caller_errors_leave_it_closed(
        &tg,
        &client,
        "prometheus",
        &[
            bad("sum(", parse),
            bad(&many_to_one, execution),
            bad("rate(up)", parse),
            bad(&collide, execution),
            bad("up{", parse),
        ],
        Between::Nothing,
    )
    .await;
    let up = tool(&client, "obs.query_metrics", q("up"))
        .await
        .expect("the next good query reaches Prometheus");
    assert_eq!(up["series"][0]["labels"]["job"], "prometheus", "{up}");

    prometheus.stop().await;
    faults_open_it(
        &tg,
        &client,
        "prometheus",
        call(
            "obs.query_metrics",
            q("up"),
            "Prometheus is unavailable: cannot connect",
        ),
        "Prometheus is unavailable: circuit open after repeated failures of Prometheus",
        None,
    )
    .await;
    logs_work(&client).await;
    client.cancel().await.ok();
}

// ------------------------------------------------------------ Loki, Tempo, Grafana (fakes)

#[tokio::test]
async fn loki_breaker_opens_on_503_and_not_on_bad_logql() {
    let loki = loki().await;
    let tempo = tempo_with_trace().await;
    let (_kube, tg, client) =
        with_obs(&[loki_block(&loki), obs_block("tempo", &tempo.url, "")]).await;

    let bad = |query: &str| {
        call(
            "obs.search_logs",
            json!({ "query": query }),
            "Loki rejected the request (HTTP 400): parse error",
        )
    };
    caller_errors_leave_it_closed(
        &tg,
        &client,
        "loki",
        &[
            bad("{app=\"web\""),
            bad("app=\"web\""),
            bad("{app=web}"),
            bad("{app=\"web\"} |= error"),
        ],
        Between::Nothing,
    )
    .await;
    let sent = loki.requests().len();
    logs_work(&client).await;
    assert_eq!(
        loki.requests().len(),
        sent + 1,
        "the good query reached Loki"
    );

    loki.answer_every_request_with(Some((503, "too many outstanding requests")));
    faults_open_it(
        &tg,
        &client,
        "loki",
        call(
            "obs.search_logs",
            logs_call(),
            "Loki is unavailable: Loki answered HTTP 503: too many outstanding requests",
        ),
        "Loki is unavailable: circuit open after repeated failures of Loki",
        Some(&|| loki.requests().len()),
    )
    .await;
    let trace = tool(&client, "obs.get_trace", json!({"trace_id": TRACE_ID}))
        .await
        .expect("Tempo still answers");
    assert_eq!(trace["trace_id"], TRACE_ID);
    client.cancel().await.ok();
}

#[tokio::test]
async fn tempo_breaker_opens_on_429_and_not_on_unknown_traces() {
    let tempo = tempo_with_trace().await;
    let loki = loki().await;
    let (_kube, tg, client) =
        with_obs(&[obs_block("tempo", &tempo.url, ""), loki_block(&loki)]).await;

    let unknown: Vec<Call> = ["abc1", "abc2", "abc3", "abc4", "abc5"]
        .into_iter()
        .map(|id| call("obs.get_trace", json!({ "trace_id": id }), "not found"))
        .collect();
    caller_errors_leave_it_closed(&tg, &client, "tempo", &unknown, Between::Nothing).await;
    let sent = tempo.requests().len();
    let trace = tool(&client, "obs.get_trace", json!({"trace_id": TRACE_ID}))
        .await
        .expect("the next good call reaches Tempo");
    assert_eq!(trace["trace_id"], TRACE_ID);
    assert_eq!(tempo.requests().len(), sent + 1);

    tempo.answer_every_request_with(Some((429, "job queue full")));
    faults_open_it(
        &tg,
        &client,
        "tempo",
        call(
            "obs.get_trace",
            json!({"trace_id": TRACE_ID}),
            "Tempo is unavailable: Tempo answered HTTP 429: job queue full",
        ),
        "Tempo is unavailable: circuit open after repeated failures of Tempo",
        Some(&|| tempo.requests().len()),
    )
    .await;
    logs_work(&client).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn grafana_breaker_opens_on_5xx_and_not_on_requests_grafana_refuses() {
    let grafana = fake_obs::grafana(
        "glsa_test",
        json!([{"uid": "svc", "title": "Service", "tags": ["shop"]}]),
    )
    .await;
    let loki = loki().await;
    let auth = "    auth: {bearer_token: glsa_test}\n";
    let (_kube, tg, client) =
        with_obs(&[obs_block("grafana", &grafana.url, auth), loki_block(&loki)]).await;
    let search = || json!({"tags": ["shop"]});

    // Grafana refusing requests it finds wrong: bad data, an unknown dashboard, over a limit.
    let refusals = [
        (400, r#"{"message":"bad request data"}"#),
        (404, r#"{"message":"Dashboard not found"}"#),
        (
            422,
            r#"{"message":"Limit is above maximum allowed (5000), use page"}"#,
        ),
        (400, r#"{"message":"bad request data"}"#),
    ];
    grafana.answer_next_with(&refusals);
    let wants: Vec<String> = refusals
        .iter()
        .map(|(status, _)| format!("Grafana rejected the request (HTTP {status})"))
        .collect();
    let calls: Vec<Call> = wants
        .iter()
        .map(|want| call("obs.get_dashboard_url", search(), want))
        .collect();
    caller_errors_leave_it_closed(&tg, &client, "grafana", &calls, Between::Nothing).await;
    let sent = grafana.requests().len();
    let links = tool(&client, "obs.get_dashboard_url", search())
        .await
        .expect("the next good call reaches Grafana");
    assert_eq!(links["count"], 1, "{links}");
    assert_eq!(grafana.requests().len(), sent + 1);

    grafana.answer_every_request_with(Some((502, r#"{"message":"Bad Gateway"}"#)));
    faults_open_it(
        &tg,
        &client,
        "grafana",
        call(
            "obs.get_dashboard_url",
            search(),
            "Grafana is unavailable: Grafana answered HTTP 502",
        ),
        "Grafana is unavailable: circuit open after repeated failures of Grafana",
        Some(&|| grafana.requests().len()),
    )
    .await;
    logs_work(&client).await;
    client.cancel().await.ok();
}

// ------------------------------------------------------------ Kubernetes (fake API server)

#[tokio::test]
async fn kubernetes_breaker_opens_on_api_server_5xx_and_not_on_not_found_or_bad_selectors() {
    let kube = crate::mcp::seeded_fake().await;
    let loki = loki().await;
    let tg = harness::start(
        &kube,
        &format!(
            "kubernetes:\n{}observability:\n{}",
            fast("  "),
            loki_block(&loki)
        ),
    )
    .await;
    let client = mcp_as(&tg.url, ALICE).await;
    let pods = json!({"kind": "pods", "namespace": "shop"});
    // Discovery first, so the calls below send only the requests under test.
    let listed = tool(&client, "k8s.list_resources", pods.clone())
        .await
        .expect("pods listed");
    assert!(listed.to_string().contains("web-0"), "{listed}");

    // Selectors and a continue token the API server refuses (400): one request each.
    let list = |key: &str, value: &str, error: &'static str| {
        let mut args = pods.clone();
        args[key] = json!(value);
        call("k8s.list_resources", args, error)
    };
    caller_errors_leave_it_closed(
        &tg,
        &client,
        "kubernetes/fake",
        &[
            list(
                "field_selector",
                "spec.bogus=1",
                "field label not supported",
            ),
            list(
                "label_selector",
                "app in (web",
                "unable to parse requirement",
            ),
            list("continue", "not-a-token", "invalid continue token"),
            list(
                "field_selector",
                "status.nope=x",
                "field label not supported",
            ),
        ],
        Between::Nothing,
    )
    .await;
    // Objects that do not exist (404), each followed by the tool's look for close names.
    let missing = |name: &str| {
        call(
            "k8s.get_resource",
            json!({"kind": "pod", "namespace": "shop", "name": name}),
            "not found",
        )
    };
    caller_errors_leave_it_closed(
        &tg,
        &client,
        "kubernetes/fake",
        &[
            missing("web-9"),
            missing("api-0"),
            missing("db-0"),
            missing("cache-0"),
        ],
        Between::Lookups,
    )
    .await;
    let pod = tool(
        &client,
        "k8s.get_resource",
        json!({"kind": "pod", "namespace": "shop", "name": "web-0"}),
    )
    .await
    .expect("the next good call reaches the API server");
    assert!(pod.to_string().contains("web-0"), "{pod}");

    kube.fail_every_request_with(Some(503));
    faults_open_it(
        &tg,
        &client,
        "kubernetes/fake",
        call(
            "k8s.list_resources",
            pods.clone(),
            "the server is currently unable to handle the request",
        ),
        "circuit open after repeated failures of cluster fake",
        Some(&|| kube.requests().len()),
    )
    .await;
    logs_work(&client).await;
    client.cancel().await.ok();
}

// ------------------------------------------------------------ Zitadel (real OIDC provider)

#[tokio::test]
async fn identity_provider_breaker_opens_on_issuer_5xx_and_not_on_bad_tokens() {
    let provider = Provider::start().await;
    let kube = crate::mcp::seeded_fake().await;
    let tg = harness::start(
        &kube,
        &format!(
            "auth:\n  mode: zitadel\n  issuer: {}\n  project_id: \"{PROJECT}\"\n  audiences: [\"{AUD}\"]\n  \
             introspection_client_id: \"{INTROSPECTOR}\"\n  introspection_client_secret: \"{INTROSPECTOR_SECRET}\"\n",
            provider.issuer
        ),
    )
    .await;
    let rpc = |token: String| {
        let url = format!("{}/rpc", tg.url);
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools.list"}))
                .send()
                .await
                .expect("POST /rpc");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // A JWT caller: checked with the issuer's keys, which toolgate now holds.
    let jwt = provider.token("ci-bot", RESOURCE).await;
    assert_eq!(rpc(jwt.clone()).await.0, 200);
    let mut fresh = Vec::new();
    for _ in 0..BREAKER_THRESHOLD + 2 {
        fresh.push(provider.token("opaque-bot", RESOURCE).await);
    }

    // Bad tokens are the caller's: unknown opaque tokens (the issuer says inactive) and a JWT
    // naming a key the issuer never published. More of them than open the breaker.
    let before = provider.introspections().await;
    let bad = BREAKER_THRESHOLD as u64 + 1;
    for i in 0..bad {
        let (status, _) = rpc(format!("unknown-opaque-token-{i}-0123456789")).await;
        assert_eq!(status, 401);
    }
    assert_eq!(
        provider.introspections().await - before,
        bad,
        "each reached the issuer"
    );
    let forged = provider
        .forge(json!({"kid": "never-published"}), json!({}))
        .await;
    assert_eq!(rpc(forged).await.0, 401);
    assert_closed(&tg, "issuer").await;
    let good = fresh.pop().expect("a token");
    assert_eq!(
        rpc(good).await.0,
        200,
        "the next good token is introspected and passes"
    );
    assert_eq!(provider.introspections().await - before, bad + 1);

    // The issuer fails: a few requests (reads are tried three times, each attempt a fault)
    // open the breaker; each is 503, never a token accepted unchecked.
    provider.fail_every_request_with(503).await;
    let mut opened = false;
    for _ in 0..BREAKER_THRESHOLD {
        let (status, body) = rpc(fresh.pop().expect("a token")).await;
        assert_eq!(status, 503, "{body}");
        if readiness(&tg).await["integrations"]["issuer"]["breaker"] == "open" {
            opened = true;
            break;
        }
    }
    assert!(opened, "the issuer's faults open its breaker");
    assert_open(&tg, "issuer").await;
    let before = provider.introspections().await;
    let (status, body) = rpc(fresh.pop().expect("a token")).await;
    assert_eq!(status, 503);
    assert_eq!(
        body["error"]["message"], "the identity provider is unavailable; try again shortly",
        "{body}"
    );
    assert_eq!(
        provider.introspections().await,
        before,
        "fails fast: nothing reached the issuer"
    );
    assert!(Scrape::of(&tg).await.requests("issuer", "circuit_open") >= 1.0);
    // Callers whose tokens toolgate can check alone are still served.
    assert_eq!(rpc(jwt).await.0, 200);
}

// ------------------------------------------------------------ the approvals webhook

#[tokio::test]
async fn approvals_webhook_breaker_opens_on_5xx_and_not_on_webhook_refusals() {
    let hook = fake_obs::webhook().await;
    let kube = crate::mcp::seeded_fake().await;
    let tg = harness::start(
        &kube,
        &format!(
            "approvals:\n  webhook_url: {}/services/T0/B0/secret\n  sweep_interval_seconds: 1\n",
            hook.url
        ),
    )
    .await;
    let webhook = "approvals-webhook";
    // Each held call posts one message, sent once (a POST is not retried); wait for it.
    let mut posts = 0;
    let mut held = async || {
        request_restart(&tg.url, ALICE).await;
        posts += 1;
        let (hook, posts) = (&hook, posts);
        eventually(10, "the webhook got the message", move || async move {
            hook.requests().len() == posts
        })
        .await;
    };
    let before = Scrape::of(&tg).await;
    let counted = |s: &Scrape, outcome: &str| {
        s.requests(webhook, outcome) - before.requests(webhook, outcome)
    };

    // Slack's refusals of a message: the hook is gone, the payload is bad, the channel archived.
    let refusals = [
        (404, "no_service"),
        (400, "invalid_payload"),
        (410, "channel_is_archived"),
    ];
    let n = BREAKER_THRESHOLD as usize + 1;
    hook.answer_next_with(&refusals.iter().cycle().take(n).copied().collect::<Vec<_>>());
    for _ in 0..n {
        held().await;
    }
    let scrape = Scrape::of(&tg).await;
    assert_eq!(counted(&scrape, "rejected"), n as f64);
    assert_eq!(
        scrape.sent(webhook) - before.sent(webhook),
        n as f64,
        "no success in between"
    );
    assert_closed(&tg, webhook).await;
    held().await;
    eventually(10, "the next message accepted", || async {
        counted(&Scrape::of(&tg).await, "ok") == 1.0
    })
    .await;

    hook.answer_every_request_with(Some((503, "service unavailable")));
    for _ in 0..BREAKER_THRESHOLD {
        held().await;
    }
    eventually(10, "the last fault recorded", || async {
        counted(&Scrape::of(&tg).await, "server_error") == f64::from(BREAKER_THRESHOLD)
    })
    .await;
    assert_open(&tg, webhook).await;
    // The server keeps holding calls; their messages are dropped without a request.
    let sent = hook.requests().len();
    request_restart(&tg.url, ALICE).await;
    eventually(10, "the message refused by the breaker", || async {
        counted(&Scrape::of(&tg).await, "circuit_open") == 1.0
    })
    .await;
    assert_eq!(hook.requests().len(), sent, "nothing reached the webhook");
}

// ------------------------------------------------------------ NATS (real nats-server)

fn nats(port: u16, dir: &Path) -> crate::daemons::Daemon {
    crate::intents_nats::nats(port, &dir.join("js"), &dir.join("nats.log"))
}

/// NATS has no caller errors (toolgate writes every message): publishes that fail open its
/// breaker, and after the cool-down one probe that succeeds closes it again.
#[tokio::test]
async fn nats_breaker_opens_when_nats_is_down_and_closes_after_the_cool_down_probe() {
    require("nats-server", "nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut server = nats(port, dir.path());
    server.wait_tcp(port).await;
    let kube = crate::mcp::seeded_fake().await;
    let tg = harness::start(
        &kube,
        &format!(
            "intents:\n  sink: nats\n  nats:\n    url: nats://127.0.0.1:{port}\n    timeout_seconds: 1\n    \
             retry: {{attempts: 1}}\n    breaker: {{failures: 2, cooldown: 2s}}\n"
        ),
    )
    .await;
    let store = Store::connect(&tg.store_url).await.expect("store");
    let delivered = || async { store.count_intents().await.expect("count").0 == 0 };

    crate::intents_nats::post(&tg, crate::intents_nats::notification("up", 1)).await;
    eventually(20, "the intent published", delivered).await;
    assert_closed(&tg, "nats").await;

    server.kill();
    crate::intents_nats::post(&tg, crate::intents_nats::notification("down", 3)).await;
    eventually(30, "the breaker open", || async {
        readiness(&tg).await["integrations"]["nats"]["breaker"] == "open"
    })
    .await;
    let r = readiness(&tg).await;
    assert_eq!(r["status"], "degraded", "{r}");
    assert_eq!(r["integrations"]["nats"]["state"], "down", "{r}");
    eventually(10, "a publish refused by the open breaker", || async {
        Scrape::of(&tg).await.requests("nats", "circuit_open") >= 1.0
    })
    .await;
    // Publishing stopped, nothing else did: alerts are taken into the outbox, tools answer.
    crate::intents_nats::post(&tg, crate::intents_nats::notification("still", 1)).await;
    let client = mcp_as(&tg.url, ALICE).await;
    tool(
        &client,
        "k8s.list_resources",
        json!({"kind": "pods", "namespace": "shop"}),
    )
    .await
    .expect("tools still answer");
    client.cancel().await.ok();
    assert_eq!(
        store.count_intents().await.expect("count").0,
        4,
        "held in the outbox"
    );

    let _server = {
        let mut s = nats(port, dir.path());
        s.wait_tcp(port).await;
        s
    };
    eventually(60, "every held intent published after the probe", delivered).await;
    assert_closed(&tg, "nats").await;
}
