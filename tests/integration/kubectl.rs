//! The real `kubectl` against the fake API server: output, exit codes and what reached the server.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::fake_kube::{FakeKube, objects};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs kubectl with its own HOME/cache dir inside the fake's temp dir, optionally feeding stdin.
async fn kubectl_with_stdin(fake: &FakeKube, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let home = fake.temp_dir().join("home");
    std::fs::create_dir_all(&home).expect("kubectl home dir");
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(&fake.kubeconfig)
        .args(args)
        .env("HOME", &home)
        .env("KUBECACHEDIR", home.join("cache"))
        .env_remove("KUBECONFIG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn kubectl");
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data).await.expect("write kubectl stdin");
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
        .expect("kubectl output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn kubectl(fake: &FakeKube, args: &[&str]) -> Run {
    kubectl_with_stdin(fake, args, None).await
}

/// Runs kubectl and requires exit code 0.
async fn kubectl_ok(fake: &FakeKube, args: &[&str]) -> String {
    let r = kubectl(fake, args).await;
    assert_eq!(
        r.code, 0,
        "kubectl {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
    r.stdout
}

fn names(fake: &FakeKube, api_version: &str, kind: &str, ns: Option<&str>) -> Vec<String> {
    fake.list(api_version, kind, ns)
        .iter()
        .filter_map(|o| {
            o.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

/// The first column of each table row (after the header) — or the second with `-A`.
fn column(out: &str, idx: usize) -> Vec<String> {
    out.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(idx).map(str::to_string))
        .collect()
}

#[tokio::test]
async fn get_pods_all_namespaces_shows_ready_and_status() {
    let fake = FakeKube::start().await;
    fake.seed_pods(12, &["default", "prod"]);
    let out = kubectl_ok(&fake, &["get", "pods", "-A"]).await;
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    let pods = fake.list("v1", "Pod", None);
    assert_eq!(pods.len(), 12);
    for p in &pods {
        let name = p
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ns = p
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let row = out
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("pod {name} missing from:\n{out}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[..4], [ns, name, "1/1", "Running"], "row: {row}");
    }
    assert!(
        out.contains("2 ("),
        "a seeded pod with restarts shows its last restart age:\n{out}"
    );
    let table = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/pods")
        .expect("list request");
    assert!(
        table.accept.unwrap_or_default().contains("as=Table"),
        "kubectl asks for server-side tables"
    );
}

#[tokio::test]
async fn get_pods_chunked_lists_every_pod_exactly_once() {
    let fake = FakeKube::start().await;
    fake.seed_pods(30, &["default", "prod", "staging"]);
    let out = kubectl_ok(&fake, &["get", "pods", "-A", "--chunk-size=7"]).await;
    let mut listed: Vec<String> = out
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cells = l.split_whitespace();
            Some(format!("{}/{}", cells.next()?, cells.next()?))
        })
        .collect();
    let total = listed.len();
    listed.sort();
    listed.dedup();
    assert_eq!(total, 30, "every pod listed:\n{out}");
    assert_eq!(listed.len(), 30, "no pod listed twice:\n{out}");
    let pages: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/pods")
        .collect();
    assert_eq!(pages.len(), 5, "30 pods in pages of 7");
    assert!(pages.iter().all(|r| r.query.contains("limit=7")));
    assert_eq!(
        pages
            .iter()
            .filter(|r| r.query.contains("continue="))
            .count(),
        4
    );
}

#[tokio::test]
async fn get_deployment_as_yaml() {
    let fake = FakeKube::start().await;
    fake.seed_deployment("shop", "checkout", 3);
    let out = kubectl_ok(&fake, &["get", "deploy", "-n", "shop", "-o", "yaml"]).await;
    let doc: Value = serde_yaml::from_str(&out).expect("kubectl prints YAML");
    assert_eq!(doc["kind"], "List");
    let items = doc["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    let d = &items[0];
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["metadata"]["name"], "checkout");
    assert_eq!(d["metadata"]["namespace"], "shop");
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["status"]["readyReplicas"], 3);
    assert!(
        d["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|rv| rv.parse::<u64>().is_ok())
    );
    assert!(d["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
}

#[tokio::test]
async fn get_pods_by_label_selector() {
    let fake = FakeKube::start().await;
    fake.seed_pods(16, &["default"]);
    let out = kubectl_ok(&fake, &["get", "pods", "-l", "app=web"]).await;
    let mut listed = column(&out, 0);
    listed.sort();
    let mut want: Vec<String> = fake
        .list("v1", "Pod", Some("default"))
        .iter()
        .filter(|p| p.pointer("/metadata/labels/app") == Some(&Value::from("web")))
        .filter_map(|p| {
            p.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    want.sort();
    assert_eq!(want.len(), 4);
    assert_eq!(listed, want, "{out}");
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.path == "/api/v1/namespaces/default/pods"
                && r.query.contains("labelSelector=app%3Dweb"))
    );
    let r = kubectl(
        &fake,
        &["get", "pods", "-l", "app notin (web,api,worker,cache)"],
    )
    .await;
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
    assert!(
        r.stderr.contains("No resources found in default namespace"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn describe_pod_shows_its_events() {
    let fake = FakeKube::start().await;
    let pod = objects::crash_looping(objects::pod("default", "payments-0"), 4);
    let other = objects::pod("default", "other");
    fake.insert(objects::event(
        &pod,
        "Warning",
        "BackOff",
        "Back-off restarting failed container app in pod payments-0",
    ));
    fake.insert(objects::event(
        &pod,
        "Normal",
        "Pulled",
        "Container image \"nginx:1.27\" already present on machine",
    ));
    fake.insert(objects::event(
        &other,
        "Warning",
        "Unhealthy",
        "Readiness probe failed for other",
    ));
    fake.insert(pod);
    fake.insert(other);
    let out = kubectl_ok(&fake, &["describe", "pod", "payments-0"]).await;
    assert!(out.contains("Name:") && out.contains("payments-0"), "{out}");
    assert!(out.contains("CrashLoopBackOff"), "{out}");
    assert!(out.contains("Restart Count:  4"), "{out}");
    let events = out.split("Events:").nth(1).expect("an Events section");
    assert!(
        events.contains("BackOff") && events.contains("Back-off restarting failed container"),
        "{events}"
    );
    assert!(events.contains("Pulled"), "{events}");
    assert!(
        !events.contains("Readiness probe failed"),
        "only this pod's events:\n{events}"
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.path.ends_with("/events")
                && r.query.contains("involvedObject.name%3Dpayments-0")),
        "events are found with an involvedObject field selector"
    );
}

#[tokio::test]
async fn logs_tail_returns_last_lines() {
    let fake = FakeKube::start().await;
    fake.insert(objects::pod("default", "api-0"));
    fake.set_log_lines(
        "default",
        "api-0",
        "app",
        &[
            "starting",
            "listening on :8080",
            "GET /healthz 200",
            "GET /orders 500",
            "panic: boom",
        ],
    );
    let out = kubectl_ok(&fake, &["logs", "api-0", "--tail=3"]).await;
    assert_eq!(out, "GET /healthz 200\nGET /orders 500\npanic: boom\n");
    let req = fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/pods/api-0/log"))
        .expect("log request");
    assert!(req.query.contains("tailLines=3"), "{}", req.query);
}

#[tokio::test]
async fn exec_echo_prints_output_once() {
    let fake = FakeKube::start().await;
    fake.insert(objects::pod("default", "web-0"));
    let r = kubectl(&fake, &["exec", "web-0", "--", "echo", "hi"]).await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "hi\n"),
        "stderr: {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("discarding"),
        "no message raced the client's stream setup: {}",
        r.stderr
    );
    let execs = fake.execs();
    assert_eq!(execs.len(), 1);
    assert_eq!(execs[0].command, ["echo", "hi"]);
    assert_eq!(
        (execs[0].container.as_str(), execs[0].protocol.as_str()),
        ("app", "v5.channel.k8s.io")
    );
    assert_eq!(fake.count("GET", "/pods/web-0/exec"), 1);
}

#[tokio::test]
async fn exec_propagates_exit_codes_and_stderr() {
    let fake = FakeKube::start().await;
    fake.insert(objects::pod("default", "web-0"));
    let r = kubectl(&fake, &["exec", "web-0", "--", "sh", "-c", "exit 3"]).await;
    assert_eq!(r.code, 3, "stdout: {} stderr: {}", r.stdout, r.stderr);
    let r = kubectl(&fake, &["exec", "web-0", "--", "frobnicate"]).await;
    assert_eq!(r.code, 127);
    assert!(
        r.stderr.contains("frobnicate: command not found"),
        "{}",
        r.stderr
    );
    assert_eq!(
        fake.execs().iter().map(|e| e.exit_code).collect::<Vec<_>>(),
        [3, 127]
    );
}

#[tokio::test]
async fn exec_with_stdin_echoes_through_cat() {
    let fake = FakeKube::start().await;
    fake.insert(objects::pod("default", "web-0"));
    let r = kubectl_with_stdin(
        &fake,
        &["exec", "-i", "web-0", "--", "cat"],
        Some(b"line one\nline two\n"),
    )
    .await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "line one\nline two\n"),
        "stderr: {}",
        r.stderr
    );
    assert_eq!(fake.execs()[0].stdin, b"line one\nline two\n");
}

const MANIFEST: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  mode: blue
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 2
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
      - name: app
        image: nginx:1.27
";

fn write_manifest(fake: &FakeKube, name: &str, text: &str) -> String {
    let path = fake.temp_dir().join(name);
    std::fs::write(&path, text).expect("write manifest");
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn apply_server_side_creates_then_updates() {
    let fake = FakeKube::start().await;
    let file = write_manifest(&fake, "app.yaml", MANIFEST);
    let out = kubectl_ok(&fake, &["apply", "--server-side", "-f", &file]).await;
    assert!(
        out.contains("configmap/app-config serverside-applied"),
        "{out}"
    );
    assert!(
        out.contains("deployment.apps/app serverside-applied"),
        "{out}"
    );
    let cm = fake
        .get("v1", "ConfigMap", Some("default"), "app-config")
        .expect("configmap created");
    assert_eq!(cm["data"]["mode"], "blue");
    let d = fake
        .get("apps/v1", "Deployment", Some("default"), "app")
        .expect("deployment created");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["metadata"]["managedFields"][0]["manager"], "kubectl");
    assert_eq!(d["metadata"]["managedFields"][0]["operation"], "Apply");

    let file = write_manifest(
        &fake,
        "app.yaml",
        &MANIFEST
            .replace("mode: blue", "mode: green")
            .replace("replicas: 2", "replicas: 5"),
    );
    kubectl_ok(&fake, &["apply", "--server-side", "-f", &file]).await;
    let cm2 = fake
        .get("v1", "ConfigMap", Some("default"), "app-config")
        .expect("configmap");
    assert_eq!(cm2["data"]["mode"], "green");
    assert_eq!(
        cm2["metadata"]["uid"], cm["metadata"]["uid"],
        "updated in place"
    );
    let d = fake
        .get("apps/v1", "Deployment", Some("default"), "app")
        .expect("deployment");
    assert_eq!(
        (
            d["spec"]["replicas"].as_i64(),
            d["metadata"]["generation"].as_i64()
        ),
        (Some(5), Some(2))
    );
    let patches: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 4);
    assert!(
        patches
            .iter()
            .all(|r| r.content_type.as_deref() == Some("application/apply-patch+yaml"))
    );
    assert!(
        patches
            .iter()
            .all(|r| r.query.contains("fieldManager=kubectl"))
    );
}

#[tokio::test]
async fn apply_server_side_dry_run_stores_nothing() {
    let fake = FakeKube::start().await;
    let file = write_manifest(&fake, "app.yaml", MANIFEST);
    let rv = fake.resource_version();
    let out = kubectl_ok(
        &fake,
        &["apply", "--server-side", "--dry-run=server", "-f", &file],
    )
    .await;
    assert!(
        out.contains("deployment.apps/app serverside-applied (server dry run)"),
        "{out}"
    );
    assert!(
        fake.get("apps/v1", "Deployment", Some("default"), "app")
            .is_none()
    );
    assert!(
        fake.get("v1", "ConfigMap", Some("default"), "app-config")
            .is_none()
    );
    assert_eq!(
        fake.resource_version(),
        rv,
        "a dry run bumps no resourceVersion"
    );
    let dry: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.query.contains("dryRun=All"))
        .collect();
    assert_eq!(dry.len(), 2);
}

#[tokio::test]
async fn delete_deployment_removes_dependents() {
    let fake = FakeKube::start().await;
    fake.seed_deployment("default", "doomed", 3);
    fake.seed_deployment("default", "keeper", 2);
    assert_eq!(fake.list("v1", "Pod", Some("default")).len(), 5);
    let out = kubectl_ok(&fake, &["delete", "deployment", "doomed"]).await;
    assert!(out.contains("deployment.apps \"doomed\" deleted"), "{out}");
    assert!(
        fake.get("apps/v1", "Deployment", Some("default"), "doomed")
            .is_none()
    );
    assert_eq!(
        names(&fake, "apps/v1", "ReplicaSet", Some("default")).len(),
        1
    );
    let pods = names(&fake, "v1", "Pod", Some("default"));
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| p.starts_with("keeper-")), "{pods:?}");
    let del = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .expect("a DELETE");
    assert!(
        del.body.contains("\"propagationPolicy\":\"Background\""),
        "{}",
        del.body
    );
}

#[tokio::test]
async fn rollout_restart_sets_restarted_at() {
    let fake = FakeKube::start().await;
    fake.seed_deployment("default", "web", 2);
    let out = kubectl_ok(&fake, &["rollout", "restart", "deployment", "web"]).await;
    assert!(out.contains("deployment.apps/web restarted"), "{out}");
    let d = fake
        .get("apps/v1", "Deployment", Some("default"), "web")
        .expect("deployment");
    let at = d
        .pointer("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt")
        .and_then(Value::as_str)
        .expect("restartedAt annotation");
    assert!(at.parse::<jiff::Timestamp>().is_ok(), "RFC 3339: {at}");
    assert_eq!(d["metadata"]["generation"], 2);
    assert_eq!(d["status"]["observedGeneration"], 2);
    let patch = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .expect("a PATCH");
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
}

#[tokio::test]
async fn get_custom_resource_by_short_name() {
    let fake = FakeKube::start().await;
    fake.insert(objects::widget("default", "gizmo"));
    fake.insert(objects::widget("lab", "sprocket"));
    let out = kubectl_ok(&fake, &["get", "wd", "-A"]).await;
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAMESPACE", "NAME", "AGE"]);
    assert_eq!(column(&out, 1), ["gizmo", "sprocket"]);
    assert_eq!(fake.count("GET", "/apis/example.com/v1/widgets"), 1);
}

#[tokio::test]
async fn missing_objects_are_not_found() {
    let fake = FakeKube::start().await;
    let r = kubectl(&fake, &["get", "pod", "ghost"]).await;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("pods \"ghost\" not found"),
        "{}",
        r.stderr
    );
    let r = kubectl(&fake, &["get", "deploy", "ghost"]).await;
    assert!(
        r.stderr.contains("deployments.apps \"ghost\" not found"),
        "{}",
        r.stderr
    );
    // kubectl looks the namespace up after a NotFound and reports that instead.
    let r = kubectl(&fake, &["get", "deploy", "ghost", "-n", "nowhere"]).await;
    assert!(
        r.stderr.contains("namespaces \"nowhere\" not found"),
        "{}",
        r.stderr
    );
    assert_eq!(fake.count("GET", "/api/v1/namespaces/nowhere"), 1);
}

#[tokio::test]
async fn auth_can_i_posts_a_protobuf_self_subject_access_review_and_is_allowed() {
    let fake = FakeKube::start().await;
    let out = kubectl_ok(
        &fake,
        &["auth", "can-i", "list", "pods", "--all-namespaces"],
    )
    .await;
    assert_eq!(out.trim(), "yes");
    let review = fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/selfsubjectaccessreviews"))
        .expect("a review reached the server");
    assert_eq!(review.method, "POST");
    // kubectl (client-go) sends the review in protobuf and reads the protobuf answer.
    assert_eq!(
        review.content_type.as_deref(),
        Some("application/vnd.kubernetes.protobuf")
    );
    assert!(review.body.starts_with("k8s\0"), "protobuf envelope");
    assert!(review.body.contains("list") && review.body.contains("pods"));
}
