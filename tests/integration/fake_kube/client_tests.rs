//! The fake driven by kube-rs clients, the way toolgate talks to a cluster.

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, AttachParams, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams,
    PostParams, WatchEvent, WatchParams,
};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::{FakeKube, objects};

#[tokio::test]
async fn aggregated_discovery_resolves_builtin_and_custom_kinds() {
    let fake = FakeKube::start().await;
    let discovery = Discovery::new(fake.client().await)
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .expect("Widget");
    assert_eq!(
        (ar.plural.as_str(), caps.scope.clone()),
        ("widgets", Scope::Namespaced)
    );
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .expect("Deployment");
    assert_eq!(ar.plural, "deployments");
    assert!(caps.supports_operation("patch"));
    assert!(
        caps.subresources
            .iter()
            .any(|(sub, _)| sub.plural == "scale")
    );
    let (_, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Node"))
        .expect("Node");
    assert_eq!(caps.scope, Scope::Cluster);
    let discovery_calls: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        discovery_calls,
        ["/apis", "/api"],
        "two aggregated requests, no per-group fan-out"
    );
}

#[tokio::test]
async fn dynamic_paged_lists_see_every_object_once_and_filter() {
    let fake = FakeKube::start().await;
    fake.seed_pods(23, &["a", "b"]);
    let client = fake.client().await;
    let discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("discovery");
    let (ar, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Pod"))
        .expect("Pod");
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let (mut seen, mut token) = (Vec::new(), None::<String>);
    loop {
        let mut lp = ListParams::default().limit(5);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.expect("page");
        seen.extend(page.items.iter().map(|o| {
            format!(
                "{}/{}",
                o.metadata.namespace.clone().unwrap_or_default(),
                o.metadata.name.clone().unwrap_or_default()
            )
        }));
        token = page.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
        assert!(page.metadata.remaining_item_count.is_some());
    }
    let total = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!((total, seen.len()), (23, 23));

    let web = api
        .list(&ListParams::default().labels("app in (web),pod-template-hash"))
        .await
        .expect("labels");
    assert!(
        !web.items.is_empty()
            && web
                .items
                .iter()
                .all(|p| p.labels().get("app").map(String::as_str) == Some("web"))
    );
    let on_node = api
        .list(&ListParams::default().fields("spec.nodeName=node-2,status.phase=Running"))
        .await
        .expect("fields");
    assert!(!on_node.items.is_empty() && on_node.items.len() < 23);
    let err = api
        .list(&ListParams::default().fields("spec.bogus=1"))
        .await
        .expect_err("unsupported field");
    assert!(matches!(err, kube::Error::Api(s) if s.code == 400));
    let meta = Api::<Pod>::namespaced(client, "a")
        .list_metadata(&ListParams::default())
        .await
        .expect("metadata list");
    assert_eq!(meta.items.len(), 12);
    assert!(meta.items[0].metadata.uid.is_some());
}

use kube::ResourceExt;

#[tokio::test]
async fn table_output_has_kubectl_columns() {
    let fake = FakeKube::start().await;
    fake.seed_deployment("default", "web", 2);
    let client = fake.client().await;
    let req = http::Request::get("/apis/apps/v1/namespaces/default/deployments")
        .header("Accept", "application/json;as=Table;g=meta.k8s.io;v=v1")
        .body(Vec::new())
        .expect("request");
    let table: Value = client.request(req).await.expect("table");
    assert_eq!(table["kind"], "Table");
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["priority"] == 0)
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(cols, ["Name", "Ready", "Up-to-date", "Available", "Age"]);
    assert_eq!(table["rows"][0]["cells"][1], "2/2");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

fn pod_key(p: &Pod) -> String {
    format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any())
}

/// Paging as the API server documents it ("Retrieving large results sets in chunks"): a page
/// of `limit`, `remainingItemCount` without selectors, and a continue token that expires when
/// the storage compacts its history (410 Expired, with a token that goes on inconsistently).
#[tokio::test]
async fn continue_tokens_expire_with_compaction_as_the_api_server_answers() {
    let fake = FakeKube::start().await;
    fake.seed_pods(12, &["a", "b"]);
    let pods: Api<Pod> = Api::all(fake.client().await);
    let first = pods
        .list(&ListParams::default().limit(5))
        .await
        .expect("first page");
    assert_eq!(first.items.len(), 5);
    assert_eq!(first.metadata.remaining_item_count, Some(7));
    let token = first.metadata.continue_.clone().expect("a continue token");
    let second = pods
        .list(&ListParams::default().limit(5).continue_token(&token))
        .await
        .expect("second page before compaction");
    assert_eq!(second.items.len(), 5);
    assert_eq!(second.metadata.remaining_item_count, Some(2));

    fake.compact();
    let err = pods
        .list(&ListParams::default().limit(5).continue_token(&token))
        .await
        .expect_err("the token's snapshot is compacted");
    let kube::Error::Api(status) = err else {
        panic!("not a Status error: {err:?}");
    };
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
    assert!(
        status
            .message
            .contains("start a new list without the continue parameter"),
        "{}",
        status.message
    );
    // The token in the 410 goes on from the same place, at the current state.
    let inconsistent = status
        .metadata
        .and_then(|m| m.continue_)
        .expect("a 410 Expired carries a continue token");
    let rest = pods
        .list(
            &ListParams::default()
                .limit(50)
                .continue_token(&inconsistent),
        )
        .await
        .expect("the inconsistent token is accepted");
    let all = pods.list(&ListParams::default()).await.expect("whole list");
    assert_eq!(
        rest.items.iter().map(pod_key).collect::<Vec<_>>(),
        all.items[5..].iter().map(pod_key).collect::<Vec<_>>(),
        "it goes on after the first page"
    );
    // A list started after the compaction pages normally.
    let fresh = pods
        .list(&ListParams::default().limit(5))
        .await
        .expect("new list");
    let again = fresh.metadata.continue_.expect("token");
    pods.list(&ListParams::default().limit(5).continue_token(&again))
        .await
        .expect("a token issued after the compaction is valid");
}

/// A page is read from the token on: its cost does not depend on how many objects come
/// before it or after it (what a real API server's storage range read gives).
#[tokio::test]
async fn a_page_reads_from_its_token_and_selectors_page_too() {
    let fake = FakeKube::start().await;
    // `a` sorts before `a-b` by namespace, though "a/…" sorts after "a-b/…" as text.
    fake.seed_pods(6, &["a", "a-b"]);
    let pods: Api<Pod> = Api::all(fake.client().await);
    let all: Vec<String> = fake
        .list("v1", "Pod", None)
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str().unwrap_or(""),
                p["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    let (mut seen, mut token) = (Vec::new(), None::<String>);
    loop {
        let mut lp = ListParams::default().limit(2);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = pods.list(&lp).await.expect("page");
        seen.extend(page.items.iter().map(pod_key));
        token = page.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, all, "every pod once, in storage order");

    // With a selector the page holds `limit` matches; the remaining count is unknown.
    let web = pods
        .list(&ListParams::default().labels("app=web").limit(1))
        .await
        .expect("selected page");
    assert_eq!(web.items.len(), 1);
    assert!(web.metadata.continue_.is_some());
    assert_eq!(web.metadata.remaining_item_count, None);
    // Exactly `limit` left: no continue token (etcd reports no more keys).
    let last = pods
        .list(&ListParams::default().limit(6))
        .await
        .expect("everything");
    assert_eq!(last.items.len(), 6);
    assert_eq!(last.metadata.continue_, None);
}

#[tokio::test]
async fn logs_honour_container_tail_since_and_limit() {
    let fake = FakeKube::start().await;
    let mut pod = objects::pod("default", "two");
    pod["spec"]["containers"] =
        json!([{"name": "app", "image": "a"}, {"name": "sidecar", "image": "b"}]);
    fake.insert(pod);
    let old = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(3600))
        .expect("ts");
    fake.set_logs(
        "default",
        "two",
        "app",
        vec![
            (old, "old line".into()),
            (jiff::Timestamp::now(), "new line".into()),
        ],
        false,
    );
    fake.set_logs(
        "default",
        "two",
        "app",
        vec![(old, "before crash".into())],
        true,
    );
    let pods: Api<Pod> = Api::default_namespaced(fake.client().await);
    let err = pods
        .logs("two", &LogParams::default())
        .await
        .expect_err("container required");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 400 && s.message.contains("choose one of: [app sidecar]")),
        "{err:?}"
    );
    let lp = |f: fn(&mut LogParams)| {
        let mut lp = LogParams {
            container: Some("app".into()),
            ..LogParams::default()
        };
        f(&mut lp);
        lp
    };
    assert_eq!(
        pods.logs("two", &lp(|_| {})).await.expect("all"),
        "old line\nnew line\n"
    );
    assert_eq!(
        pods.logs("two", &lp(|l| l.tail_lines = Some(1)))
            .await
            .expect("tail"),
        "new line\n"
    );
    assert_eq!(
        pods.logs("two", &lp(|l| l.since_seconds = Some(60)))
            .await
            .expect("since"),
        "new line\n"
    );
    assert_eq!(
        pods.logs("two", &lp(|l| l.limit_bytes = Some(3)))
            .await
            .expect("limit"),
        "old"
    );
    assert_eq!(
        pods.logs("two", &lp(|l| l.previous = true))
            .await
            .expect("previous"),
        "before crash\n"
    );
    let stamped = pods
        .logs("two", &lp(|l| l.timestamps = true))
        .await
        .expect("timestamps");
    assert!(
        stamped.lines().all(|l| l
            .split_once(' ')
            .is_some_and(|(t, _)| t.parse::<jiff::Timestamp>().is_ok())),
        "{stamped}"
    );
    let mut stream = pods
        .log_stream("two", &lp(|_| {}))
        .await
        .expect("stream")
        .lines();
    assert_eq!(
        stream.next().await.transpose().expect("line"),
        Some("old line".into())
    );
}

/// kube-apiserver's answer to a log read that does not name a container of a pod with
/// several: a 400 `Status` naming every container, init first (`validateContainer`).
#[tokio::test]
async fn a_log_read_without_a_container_of_several_is_a_bad_request_status() {
    let fake = FakeKube::start().await;
    let mut pod = objects::pod("default", "web");
    pod["spec"]["containers"] =
        json!([{"name": "app", "image": "a"}, {"name": "proxy", "image": "b"}]);
    pod["spec"]["initContainers"] = json!([{"name": "migrate", "image": "a"}]);
    fake.insert(pod);
    let mut empty = objects::pod("default", "empty");
    empty["spec"]["containers"] = json!([]);
    fake.insert(empty);
    toolgate::app::init_crypto();
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", fake.url)).send();
    let resp = get("/api/v1/namespaces/default/pods/web/log")
        .await
        .expect("log");
    assert_eq!(resp.status().as_u16(), 400);
    let status: Value = resp.json().await.expect("Status body");
    assert_eq!(
        (
            &status["kind"],
            &status["status"],
            &status["reason"],
            &status["code"]
        ),
        (
            &json!("Status"),
            &json!("Failure"),
            &json!("BadRequest"),
            &json!(400)
        ),
        "{status}"
    );
    assert_eq!(
        status["message"],
        "a container name must be specified for pod web, choose one of: [migrate app proxy]"
    );
    let status: Value = get("/api/v1/namespaces/default/pods/web/log?container=nope")
        .await
        .expect("log")
        .json()
        .await
        .expect("Status body");
    assert_eq!(status["message"], "container nope is not valid for pod web");
    let status: Value = get("/api/v1/namespaces/default/pods/empty/log")
        .await
        .expect("log")
        .json()
        .await
        .expect("Status body");
    assert_eq!(
        status["message"],
        "a container name must be specified for pod empty"
    );
}

#[tokio::test]
async fn exec_over_websocket_reports_output_and_exit_codes() {
    let fake = FakeKube::start().await;
    fake.insert(objects::pod("default", "web-0"));
    let pods: Api<Pod> = Api::default_namespaced(fake.client().await);
    let mut proc = pods
        .exec(
            "web-0",
            ["echo", "hello", "world"],
            &AttachParams::default().stderr(true),
        )
        .await
        .expect("exec");
    let mut out = String::new();
    proc.stdout()
        .expect("stdout")
        .read_to_string(&mut out)
        .await
        .expect("read");
    let status = proc
        .take_status()
        .expect("status")
        .await
        .expect("status sent");
    assert_eq!(
        (out.as_str(), status.status.as_deref()),
        ("hello world\n", Some("Success"))
    );

    let mut proc = pods
        .exec(
            "web-0",
            ["sh", "-c", "exit 3"],
            &AttachParams::default().stderr(true),
        )
        .await
        .expect("exec");
    let status = proc
        .take_status()
        .expect("status")
        .await
        .expect("status sent");
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let code = status.details.and_then(|d| d.causes).and_then(|c| {
        c.into_iter()
            .find(|c| c.reason.as_deref() == Some("ExitCode"))
    });
    assert_eq!(code.and_then(|c| c.message).as_deref(), Some("3"));

    let mut proc = pods
        .exec(
            "web-0",
            ["cat"],
            &AttachParams::default().stdin(true).stderr(false),
        )
        .await
        .expect("exec cat");
    let mut stdin = proc.stdin().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"ping\n")
        .await
        .expect("write");
    // Shutting stdin down makes kube-rs send the v5 close signal for channel 0.
    tokio::io::AsyncWriteExt::shutdown(&mut stdin)
        .await
        .expect("close stdin");
    let mut echoed = String::new();
    proc.stdout()
        .expect("stdout")
        .read_to_string(&mut echoed)
        .await
        .expect("read");
    assert_eq!(echoed, "ping\n");
    assert_eq!(fake.execs().len(), 3);
    assert_eq!(fake.count("GET", "/pods/web-0/exec"), 3);
}

#[tokio::test]
async fn server_side_apply_conflicts_dry_runs_and_creates() {
    let fake = FakeKube::start().await;
    let client = fake.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": v}});
    let rv = fake.resource_version();
    let dry = cms
        .patch(
            "cfg",
            &PatchParams::apply("toolgate").dry_run(),
            &Patch::Apply(cm("1")),
        )
        .await
        .expect("dry run");
    assert_eq!(
        dry.data.unwrap_or_default().get("k").map(String::as_str),
        Some("1")
    );
    assert!(
        fake.get("v1", "ConfigMap", Some("default"), "cfg")
            .is_none()
    );
    assert_eq!(fake.resource_version(), rv);
    cms.patch(
        "cfg",
        &PatchParams::apply("toolgate"),
        &Patch::Apply(cm("1")),
    )
    .await
    .expect("apply create");
    cms.patch(
        "cfg",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "edited"}})),
    )
    .await
    .expect("merge patch");
    let err = cms
        .patch(
            "cfg",
            &PatchParams::apply("toolgate"),
            &Patch::Apply(cm("2")),
        )
        .await
        .expect_err("conflict");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.message.contains(".data.k")),
        "{err:?}"
    );
    let forced = cms
        .patch(
            "cfg",
            &PatchParams::apply("toolgate").force(),
            &Patch::Apply(cm("2")),
        )
        .await
        .expect("forced");
    assert_eq!(
        forced.data.unwrap_or_default().get("k").map(String::as_str),
        Some("2")
    );
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"toolgate".to_string()), "{managers:?}");

    let dup = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(cm("x")).expect("cm"),
        )
        .await
        .expect_err("exists");
    assert!(
        matches!(&dup, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{dup:?}"
    );
    let nameless = cms
        .create(&PostParams::default(), &ConfigMap::default())
        .await
        .expect_err("invalid");
    assert!(
        matches!(&nameless, kube::Error::Api(s) if s.code == 422 && s.reason == "Invalid"),
        "{nameless:?}"
    );
    let missing = cms.get("nope").await.expect_err("missing");
    assert!(
        matches!(&missing, kube::Error::Api(s) if s.code == 404 && s.reason == "NotFound"),
        "{missing:?}"
    );
}

#[tokio::test]
async fn deletes_propagate_or_orphan() {
    let fake = FakeKube::start().await;
    fake.seed_deployment("default", "a", 2);
    fake.seed_deployment("default", "b", 2);
    let client = fake.client().await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys
        .delete("a", &DeleteParams::foreground().dry_run())
        .await
        .expect("dry-run delete");
    assert_eq!(fake.list("v1", "Pod", Some("default")).len(), 4);
    deploys
        .delete("a", &DeleteParams::foreground())
        .await
        .expect("foreground delete");
    assert_eq!(fake.list("v1", "Pod", Some("default")).len(), 2);
    deploys
        .delete("b", &DeleteParams::orphan())
        .await
        .expect("orphan delete");
    let rs = fake.list("apps/v1", "ReplicaSet", Some("default"));
    assert_eq!(rs.len(), 1);
    assert!(
        rs[0].pointer("/metadata/ownerReferences/0").is_none(),
        "orphaned"
    );
    assert_eq!(fake.list("v1", "Pod", Some("default")).len(), 2);
}

#[tokio::test]
async fn watch_streams_changes_after_a_resource_version() {
    let fake = FakeKube::start().await;
    let client = fake.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut events = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .expect("watch")
        .boxed();
    fake.insert(objects::configmap("default", "late", &[("a", "b")]));
    match events.try_next().await.expect("event") {
        Some(WatchEvent::Added(cm)) => assert_eq!(cm.name_any(), "late"),
        other => panic!("unexpected {other:?}"),
    }
}

/// As the API server's watch cache: bookmarks carry the resourceVersion up to which every
/// event was sent (events of other namespaces included); an expired resourceVersion is a 200
/// whose one event is an ERROR with a 410 Expired Status; a restarting server ends streams.
#[tokio::test]
async fn watches_get_bookmarks_410_in_the_stream_and_end_when_dropped() {
    let fake = FakeKube::start().await;
    fake.set_bookmark_interval(std::time::Duration::from_millis(100));
    let client = fake.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut events = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .expect("watch")
        .boxed();
    fake.insert(objects::configmap("elsewhere", "other", &[("a", "b")]));
    let after_insert = fake.resource_version();
    let bookmark = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match events.try_next().await.expect("event") {
                Some(WatchEvent::Bookmark(b))
                    if b.metadata.resource_version.parse::<u64>().unwrap_or(0) >= after_insert =>
                {
                    return b;
                }
                Some(WatchEvent::Bookmark(_)) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("a bookmark within 5 s");
    assert_eq!(bookmark.types.kind, "ConfigMap");

    // Ended by the server: the stream closes.
    fake.drop_watches();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(e) = events.try_next().await.expect("event") {
            assert!(matches!(e, WatchEvent::Bookmark(_)), "{e:?}");
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream ends when the server drops watches"
    );

    fake.compact();
    let mut expired = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .expect("200 with an ERROR event")
        .boxed();
    match expired.try_next().await.expect("event") {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(
                status.message.starts_with("too old resource version"),
                "{status:?}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        expired.try_next().await.expect("end").is_none(),
        "then the stream ends"
    );
}

#[tokio::test]
async fn malformed_requests_get_status_errors() {
    let fake = FakeKube::start().await;
    fake.insert(objects::pod("default", "p"));
    let client = fake.client().await;
    let pods = "/api/v1/namespaces/default/pods";
    let cases: &[(&str, String, &str, &str, u16)] = &[
        (
            "POST",
            pods.into(),
            "application/json",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":"x"}"#,
            400,
        ),
        (
            "POST",
            "/api/v1/namespaces/default/services".into(),
            "application/json",
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"ports":[1]}}"#,
            400,
        ),
        (
            "POST",
            pods.into(),
            "application/json",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"Bad_Name"}}"#,
            422,
        ),
        (
            "POST",
            "/api/v1/namespaces/nope/configmaps".into(),
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#,
            404,
        ),
        (
            "POST",
            pods.into(),
            "application/vnd.kubernetes.protobuf",
            "k8s\0",
            415,
        ),
        (
            "PATCH",
            format!("{pods}/p"),
            "application/merge-patch+json",
            r#"{"metadata":5}"#,
            400,
        ),
        (
            "PATCH",
            format!("{pods}/p"),
            "application/json-patch+json",
            r#"[{"op":"replace","path":"","value":7}]"#,
            400,
        ),
        ("PATCH", format!("{pods}/p"), "text/plain", "x", 415),
        (
            "PATCH",
            format!("{pods}/p"),
            "application/apply-patch+yaml",
            "apiVersion: v1\nkind: Pod\n",
            422,
        ),
        (
            "PUT",
            format!("{pods}/p"),
            "application/json",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"q"}}"#,
            400,
        ),
        ("DELETE", format!("{pods}/p"), "application/json", "[]", 400),
        ("GET", "/api/v1/pods?limit=abc".into(), "", "", 400),
        ("GET", "/api/v1/pods?continue=garbage".into(), "", "", 400),
        (
            "GET",
            "/api/v1/pods?labelSelector=a%20in%20(".into(),
            "",
            "",
            400,
        ),
        ("GET", "/api/v1/frobs".into(), "", "", 404),
        (
            "GET",
            "/api/v1/namespaces/default/pods/p/log?container=nope".into(),
            "",
            "",
            400,
        ),
        ("POST", "/api/v1/pods".into(), "application/json", "{}", 405),
    ];
    for (method, uri, ct, body, code) in cases {
        let mut req = http::Request::builder().method(*method).uri(uri.as_str());
        if !ct.is_empty() {
            req = req.header("content-type", *ct);
        }
        let req = req.body(body.as_bytes().to_vec()).expect("request");
        let err = client
            .request::<Value>(req)
            .await
            .expect_err(&format!("{method} {uri} {body}"));
        match err {
            kube::Error::Api(s) => assert_eq!(
                (s.code, s.status.as_ref().map(|_| ())),
                (*code, Some(())),
                "{method} {uri}: {s:?}"
            ),
            other => panic!("{method} {uri}: not a Status error: {other:?}"),
        }
    }
    let pod: Pod = Api::default_namespaced(client)
        .get("p")
        .await
        .expect("server still up");
    assert_eq!(pod.name_any(), "p");
}
