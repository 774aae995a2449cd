//! Each operation of [`KubeOps`] against a mocked API server: the exact method, path, query,
//! headers and body it sends, and what it makes of the answer.

use std::time::Duration;

use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
use serde_json::json;

use super::*;
use crate::adapters::kube::paths::NAMESPACES;
use crate::adapters::kube::verifier::{Exchange, mocked};

const DEPLOYMENTS: Resource<'static> = Resource {
    group: "apps",
    version: "v1",
    plural: "deployments",
};
const CONFIGMAPS: Resource<'static> = Resource::core("configmaps");

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
           "reason": reason, "message": message, "code": code})
}

#[tokio::test]
async fn get_reads_one_object_by_its_path() {
    let (cluster, api) = mocked();
    let obj = json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}});
    let server = api.serve(vec![
        Exchange::get("/apis/apps/v1/namespaces/shop/deployments/web").reply_json(200, &obj),
        Exchange::get("/api/v1/namespaces/gone").reply_json(
            404,
            &status(404, "NotFound", "namespaces \"gone\" not found"),
        ),
    ]);
    let got = KubeOps::get(&cluster, DEPLOYMENTS, Some("shop"), "web")
        .await
        .expect("get");
    assert_eq!(got, obj);
    let err = KubeOps::get(&cluster, NAMESPACES, None, "gone")
        .await
        .expect_err("404");
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.to_string(), "namespaces \"gone\" not found");
    let seen = server.done().await;
    assert!(seen.iter().all(|s| s.body.is_empty()), "reads send no body");
}

#[tokio::test]
async fn reads_build_a_fresh_request_for_each_retry() {
    let (cluster, api) = mocked();
    let server = api.serve(vec![
        Exchange::get("/api/v1/namespaces/shop/configmaps/c")
            .reply_json(503, &status(503, "ServiceUnavailable", "etcd is busy")),
        Exchange::get("/api/v1/namespaces/shop/configmaps/c")
            .reply_json(200, &json!({"metadata": {"name": "c"}})),
    ]);
    let got = KubeOps::get(&cluster, CONFIGMAPS, Some("shop"), "c")
        .await
        .expect("second attempt answers");
    assert_eq!(got["metadata"]["name"], "c");
    assert_eq!(server.done().await.len(), 2);
}

#[tokio::test]
async fn list_sends_selectors_page_size_and_continue_token() {
    let (cluster, api) = mocked();
    let page = json!({"kind": "PodList", "metadata": {"continue": "next"}, "items": []});
    let server = api.serve(vec![
        Exchange::get("/api/v1/namespaces/shop/pods")
            .query("&fieldSelector=status.phase%3DRunning&labelSelector=app%3Dweb%2Ctier%21%3Dcache&limit=50&continue=tok%2F1")
            .reply_json(200, &page),
        Exchange::get("/api/v1/pods").query("&limit=500").reply_json(200, &page),
    ]);
    let query = ListQuery::default()
        .labels("app=web,tier!=cache")
        .fields("status.phase=Running")
        .limit(50)
        .continue_token("tok/1");
    let got = KubeOps::list(&cluster, PODS, Some("shop"), &query)
        .await
        .expect("list");
    assert_eq!(got, page);
    KubeOps::list(&cluster, PODS, None, &ListQuery::default().limit(500))
        .await
        .expect("all namespaces");
    server.done().await;
}

#[tokio::test]
async fn list_text_hands_back_the_page_as_sent_and_can_ask_for_metadata_only() {
    let (cluster, api) = mocked();
    // Odd spacing and key order: the text must come back untouched, not re-serialized.
    let text =
        r#"{"kind":"DeploymentList",  "items":[{"metadata":{"name":"a"},"apiVersion":"x"}]}"#;
    let server = api.serve(vec![
        Exchange::get("/apis/apps/v1/deployments")
            .query("&limit=10")
            .reply(200, text),
        Exchange::get("/apis/apps/v1/namespaces/shop/deployments")
            .query("&limit=10")
            .header(
                "accept",
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            )
            .reply(200, text),
    ]);
    let got = KubeOps::list_text(&cluster, DEPLOYMENTS, None, &ListQuery::default().limit(10))
        .await
        .expect("list");
    assert_eq!(got, text);
    let query = ListQuery::default().limit(10).metadata_only();
    KubeOps::list_text(&cluster, DEPLOYMENTS, Some("shop"), &query)
        .await
        .expect("metadata list");
    server.done().await;
}

#[tokio::test]
async fn logs_read_one_container_with_tail_since_previous_and_a_byte_cap() {
    let (cluster, api) = mocked();
    let server = api.serve(vec![
        Exchange::get("/api/v1/namespaces/shop/pods/web-0/log")
            .query("&container=app&limitBytes=8388608&previous=true&sinceSeconds=60&tailLines=100")
            .reply(200, "line 1\nline 2\n"),
    ]);
    let query = LogQuery {
        container: Some("app".into()),
        tail_lines: Some(100),
        since_seconds: Some(60),
        previous: true,
        limit_bytes: Some(8 << 20),
    };
    let text = KubeOps::logs(&cluster, "shop", "web-0", &query)
        .await
        .expect("logs");
    assert_eq!(text, "line 1\nline 2\n");
    server.done().await;
}

#[tokio::test]
async fn events_of_an_object_use_an_escaped_field_selector() {
    let (cluster, api) = mocked();
    let server = api.serve(vec![
        Exchange::get("/api/v1/namespaces/shop/events")
            .query("&fieldSelector=involvedObject.kind%3DPod%2CinvolvedObject.name%3Dweb%5C%2Ctype%5C%3DNormal%2CinvolvedObject.namespace%3Dshop&limit=500&continue=c1")
            .reply_json(200, &json!({"items": []})),
        Exchange::get("/api/v1/events")
            .query("&fieldSelector=type%3DWarning&limit=20")
            .reply_json(200, &json!({"items": []})),
    ]);
    // A name cannot smuggle in another selector term.
    let filter = EventFilter {
        kind: Some("Pod".into()),
        name: Some("web,type=Normal".into()),
        namespace: Some("shop".into()),
        event_type: None,
    };
    KubeOps::events(&cluster, Some("shop"), &filter, 500, Some("c1"))
        .await
        .expect("events");
    let warnings = EventFilter {
        event_type: Some("Warning".into()),
        ..EventFilter::default()
    };
    KubeOps::events(&cluster, None, &warnings, 20, None)
        .await
        .expect("all events");
    server.done().await;
}

#[tokio::test]
async fn apply_is_a_forced_server_side_apply_as_toolgate() {
    let (cluster, api) = mocked();
    let doc = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": "web", "namespace": "shop"}, "spec": {"replicas": 2}});
    let answer = json!({"kind": "Deployment", "metadata": {"name": "web", "resourceVersion": "7"}});
    let server = api.serve(vec![
        Exchange::new(
            Method::PATCH,
            "/apis/apps/v1/namespaces/shop/deployments/web",
        )
        .query("&dryRun=All&force=true&fieldManager=toolgate")
        .header("content-type", "application/apply-patch+yaml")
        .body(doc.clone())
        .reply_json(200, &answer),
        Exchange::new(
            Method::PATCH,
            "/apis/apps/v1/namespaces/shop/deployments/web",
        )
        .query("&force=true&fieldManager=toolgate")
        .header("content-type", "application/apply-patch+yaml")
        .body(doc.clone())
        .reply_json(
            409,
            &status(409, "Conflict", "the object has been modified"),
        ),
    ]);
    let got = KubeOps::apply(&cluster, DEPLOYMENTS, Some("shop"), "web", &doc, true)
        .await
        .expect("dry run");
    assert_eq!(got, answer);
    let err = KubeOps::apply(&cluster, DEPLOYMENTS, Some("shop"), "web", &doc, false)
        .await
        .expect_err("conflict");
    assert_eq!(err.status(), Some(409));
    let seen = server.done().await;
    assert_eq!(seen.len(), 2, "a failed write is not retried");
}

#[tokio::test]
async fn delete_carries_propagation_grace_and_dry_run_in_its_body() {
    let (cluster, api) = mocked();
    let server = api.serve(vec![
        Exchange::new(Method::DELETE, "/api/v1/namespaces/shop/configmaps/c")
            .header("content-type", "application/json")
            .body(json!({"dryRun": ["All"], "gracePeriodSeconds": 0, "propagationPolicy": "Foreground"}))
            .reply_json(200, &json!({"kind": "Status", "status": "Success"})),
        Exchange::new(Method::DELETE, "/api/v1/namespaces/x")
            .body(json!({}))
            .reply_json(200, &json!({"kind": "Namespace", "metadata": {"name": "x", "deletionTimestamp": "2026-01-01T00:00:00Z"}})),
    ]);
    let options = DeleteOptions {
        propagation: Some(Propagation::Foreground),
        grace_period_seconds: Some(0),
        dry_run: true,
    };
    let got = KubeOps::delete(&cluster, CONFIGMAPS, Some("shop"), "c", &options)
        .await
        .expect("delete");
    assert_eq!(got["kind"], "Status");
    let got = KubeOps::delete(&cluster, NAMESPACES, None, "x", &DeleteOptions::default())
        .await
        .expect("delete namespace");
    assert_eq!(got["metadata"]["name"], "x");
    server.done().await;
}

#[tokio::test]
async fn restart_is_the_merge_patch_kubectl_sends() {
    let (cluster, api) = mocked();
    let at = "2026-03-01T10:00:00Z";
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}});
    let server = api.serve(vec![
        Exchange::new(
            Method::PATCH,
            "/apis/apps/v1/namespaces/shop/deployments/web",
        )
        .query("&fieldManager=toolgate")
        .header("content-type", "application/merge-patch+json")
        .body(patch.clone())
        .reply_json(200, &json!({"kind": "Deployment"})),
        Exchange::new(
            Method::PATCH,
            "/apis/apps/v1/namespaces/shop/deployments/web",
        )
        .query("&dryRun=All&fieldManager=toolgate")
        .body(patch)
        .reply_json(200, &json!({"kind": "Deployment"})),
    ]);
    KubeOps::restart(&cluster, DEPLOYMENTS, "shop", "web", at, false)
        .await
        .expect("restart");
    KubeOps::restart(&cluster, DEPLOYMENTS, "shop", "web", at, true)
        .await
        .expect("dry run");
    server.done().await;
}

#[tokio::test]
async fn exec_asks_for_a_websocket_with_command_container_and_streams() {
    let (cluster, api) = mocked();
    let server = api.serve(vec![
        Exchange::get("/api/v1/namespaces/shop/pods/web-0/exec")
            .query("&stdout=true&stderr=true&container=app&command=cat&command=%2Fetc%2Fhosts")
            .header("upgrade", "websocket")
            .reply_json(
                403,
                &status(403, "Forbidden", "pods \"web-0\" is forbidden: exec"),
            ),
    ]);
    let request = ExecRequest {
        container: "app".into(),
        command: vec!["cat".into(), "/etc/hosts".into()],
        limit: Duration::from_secs(5),
    };
    // The mock cannot upgrade the connection: a refusal shows what was asked.
    let err = KubeOps::exec(&cluster, "shop", "web-0", &request)
        .await
        .expect_err("forbidden");
    assert_eq!(err.status(), Some(403), "{err:?}");
    server.done().await;
}

#[tokio::test]
async fn exec_gives_up_at_its_time_limit() {
    let (cluster, _api) = mocked();
    let request = ExecRequest {
        container: "app".into(),
        command: vec!["sleep".into(), "60".into()],
        limit: Duration::from_millis(200),
    };
    // Nobody answers: the call must end at the limit, not at the request timeout.
    let started = std::time::Instant::now();
    let err = KubeOps::exec(&cluster, "shop", "web-0", &request)
        .await
        .expect_err("times out");
    assert!(matches!(err, KubeError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn version_reads_slash_version() {
    let (cluster, api) = mocked();
    let server = api.serve(vec![Exchange::get("/version").reply_json(
        200,
        &json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64", "goVersion": "go1.23"}),
    )]);
    let v = KubeOps::version(&cluster).await.expect("version");
    assert_eq!(
        v,
        ServerVersion {
            major: "1".into(),
            minor: "32".into(),
            git_version: "v1.32.0".into(),
            platform: "linux/amd64".into(),
        }
    );
    server.done().await;
}

fn resource_list(group_version: &str, resources: Value) -> Value {
    json!({"kind": "APIResourceList", "groupVersion": group_version, "resources": resources})
}

#[tokio::test]
async fn resolve_discovers_once_and_skips_groups_that_fail() {
    let (cluster, api) = mocked();
    let server = api.serve_any_order(vec![
        Exchange::get("/api").reply_json(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        ),
        Exchange::get("/apis").reply_json(
            200,
            &json!({"kind": "APIGroupList", "groups": [
                {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}},
                {"name": "metrics.k8s.io", "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}]}
            ]}),
        ),
        Exchange::get("/api/v1").reply_json(
            200,
            &resource_list("v1", json!([
                {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "verbs": ["get", "list"], "shortNames": ["po"]},
                {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}
            ])),
        ),
        Exchange::get("/apis/apps/v1").reply_json(
            200,
            &resource_list("apps/v1", json!([
                {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment", "verbs": ["get", "list", "patch"], "shortNames": ["deploy"]}
            ])),
        ),
        Exchange::get("/apis/metrics.k8s.io/v1beta1")
            .reply_json(503, &status(503, "ServiceUnavailable", "metrics-server is down")),
    ]);
    let k = KubeOps::resolve(&cluster, "deploy", None)
        .await
        .expect("resolves");
    assert_eq!(k.info.api_version(), "apps/v1");
    assert!(k.namespaced());
    // The cache answers the next lookup: no more requests.
    let k = KubeOps::resolve(&cluster, "po", None)
        .await
        .expect("cached");
    assert_eq!(k.info.kind, "Pod");
    let seen = server.done().await;
    assert_eq!(seen.len(), 5);
}

/// Names a caller may pass that must stay one path segment each.
const HOSTILE: &[&str] = &[
    "x/proxy/y",
    "a?b",
    "a#b",
    "../../api/v1/secrets",
    "%2e%2e",
    "a b",
    "a\\b",
];

#[tokio::test]
async fn hostile_names_never_change_the_shape_of_a_path() {
    for name in HOSTILE {
        let (cluster, api) = mocked();
        let enc = super::paths::segment("name", name).expect("encodable");
        assert!(
            !enc.contains('/') && !enc.contains('?') && !enc.contains('#') && !enc.contains('\\'),
            "{enc}"
        );
        let ns_path = format!("/api/v1/namespaces/{enc}/configmaps");
        let obj_path = format!("/api/v1/namespaces/shop/configmaps/{enc}");
        let pod_path = format!("/api/v1/namespaces/shop/pods/{enc}");
        let deploy_path = format!("/apis/apps/v1/namespaces/shop/deployments/{enc}");
        let server = api.serve(vec![
            Exchange::get(&obj_path),
            Exchange::get(&ns_path).query("&limit=5"),
            Exchange::new(Method::DELETE, &obj_path).query(""),
            Exchange::new(Method::PATCH, &obj_path).query("&force=true&fieldManager=toolgate"),
            Exchange::get(&format!("{pod_path}/log")).query("&container=app"),
            Exchange::new(Method::PATCH, &deploy_path).query("&fieldManager=toolgate"),
            Exchange::get(&format!("{pod_path}/exec"))
                .query("&stdout=true&stderr=true&container=app&command=true")
                .reply_json(403, &status(403, "Forbidden", "no")),
        ]);
        KubeOps::get(&cluster, CONFIGMAPS, Some("shop"), name)
            .await
            .expect("get");
        KubeOps::list(
            &cluster,
            CONFIGMAPS,
            Some(name),
            &ListQuery::default().limit(5),
        )
        .await
        .expect("list");
        KubeOps::delete(
            &cluster,
            CONFIGMAPS,
            Some("shop"),
            name,
            &DeleteOptions::default(),
        )
        .await
        .expect("delete");
        KubeOps::apply(&cluster, CONFIGMAPS, Some("shop"), name, &json!({}), false)
            .await
            .expect("apply");
        let logs = LogQuery {
            container: Some("app".into()),
            ..LogQuery::default()
        };
        KubeOps::logs(&cluster, "shop", name, &logs)
            .await
            .expect("logs");
        KubeOps::restart(&cluster, DEPLOYMENTS, "shop", name, "t", false)
            .await
            .expect("restart");
        let exec = ExecRequest {
            container: "app".into(),
            command: vec!["true".into()],
            limit: Duration::from_secs(5),
        };
        KubeOps::exec(&cluster, "shop", name, &exec)
            .await
            .expect_err("refused");
        // Every path has the segments of a path built from a plain name: none escaped.
        for seen in server.done().await {
            let plain = seen.path.replace(&enc, "NAME");
            assert!(
                [
                    "/api/v1/namespaces/shop/configmaps/NAME",
                    "/api/v1/namespaces/NAME/configmaps",
                    "/api/v1/namespaces/shop/pods/NAME/log",
                    "/api/v1/namespaces/shop/pods/NAME/exec",
                    "/apis/apps/v1/namespaces/shop/deployments/NAME",
                ]
                .contains(&plain.as_str()),
                "{name}: {}",
                seen.path
            );
        }
    }
}

#[tokio::test]
async fn empty_and_dot_names_are_refused_before_anything_is_sent() {
    let (cluster, mut api) = mocked();
    for name in ["", ".", ".."] {
        let err = KubeOps::get(&cluster, CONFIGMAPS, Some("shop"), name)
            .await
            .expect_err("refused");
        assert!(matches!(err, KubeError::InvalidSegment { .. }), "{err:?}");
        let err = KubeOps::list(&cluster, CONFIGMAPS, Some(name), &ListQuery::default())
            .await
            .expect_err("refused");
        assert_eq!(
            err.to_string(),
            format!(
                "namespace '{name}' cannot be used: Kubernetes names are never empty, '.' or '..'"
            )
        );
        let options = DeleteOptions::default();
        assert!(
            KubeOps::delete(&cluster, CONFIGMAPS, Some("shop"), name, &options)
                .await
                .is_err()
        );
        let exec = ExecRequest {
            container: "app".into(),
            command: vec!["true".into()],
            limit: Duration::from_secs(1),
        };
        assert!(matches!(
            KubeOps::exec(&cluster, "shop", name, &exec).await,
            Err(KubeError::InvalidSegment { .. })
        ));
    }
    api.assert_idle().await;
}

#[test]
fn exit_codes_come_from_the_status_channel() {
    let ok = Status {
        status: Some("Success".into()),
        ..Status::default()
    };
    assert_eq!(exit_code(Some(&ok)), (Some(0), None));
    let failed = Status {
        status: Some("Failure".into()),
        reason: Some("NonZeroExitCode".into()),
        details: Some(StatusDetails {
            causes: Some(vec![StatusCause {
                reason: Some("ExitCode".into()),
                message: Some("3".into()),
                field: None,
            }]),
            ..StatusDetails::default()
        }),
        ..Status::default()
    };
    assert_eq!(exit_code(Some(&failed)), (Some(3), None));
    let broken = Status {
        status: Some("Failure".into()),
        message: Some("executable file not found".into()),
        ..Status::default()
    };
    assert_eq!(
        exit_code(Some(&broken)),
        (None, Some("executable file not found".into()))
    );
    assert_eq!(
        exit_code(None),
        (None, Some("the API server sent no exit status".into()))
    );
}

#[tokio::test]
async fn exec_output_is_capped_but_drained() {
    let data = vec![b'x'; EXEC_OUTPUT_CAP + 10];
    let (text, cut) = read_capped(Some(&data[..])).await.expect("read");
    assert_eq!(text.len(), EXEC_OUTPUT_CAP);
    assert!(cut);
    let (text, cut) = read_capped(Some(&b"hi"[..])).await.expect("read");
    assert_eq!((text.as_str(), cut), ("hi", false));
}
