//! Approval previews of the k8s write tools against the fake API server: what each would do
//! (dry runs, diffs, dependents, pods), that nothing changes while previewing, the target
//! version the core compares before running an approved call, and Secret redaction.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use toolgate::adapters::Adapters;
use toolgate::adapters::kube::KubeAdapter;
use toolgate::config::{ClusterConfig, ClusterSource, KubernetesConfig};
use toolgate::core::context::{Page, ToolContext};
use toolgate::core::error::{ToolError, ToolErrorKind};
use toolgate::core::principal::Principal;
use toolgate::core::tool::{Preview, Tool};

use crate::fake_kube::{FakeKube, objects};

/// Secret values used below; none may appear in a preview or in redacted arguments.
const SECRET_VALUES: &[&str] = &[
    "hunter2",
    "aHVudGVyMg==",
    "sk_live_123",
    "c2tfbGl2ZV8xMjM=",
    "new-password-42",
];

struct Env {
    fake: FakeKube,
    adapters: Arc<Adapters>,
    tools: Vec<Arc<dyn Tool>>,
}

impl Env {
    async fn start() -> Env {
        let fake = FakeKube::start().await;
        let clusters = vec![ClusterConfig {
            name: "fake".into(),
            source: ClusterSource::Kubeconfig {
                path: Some(fake.kubeconfig.clone()),
                context: Some("fake".into()),
            },
        }];
        let cfg = KubernetesConfig {
            default_cluster: "fake".into(),
            clusters,
            log_tail_lines: 500,
            request_timeout: Duration::from_secs(5),
            client: toolgate::adapters::http::Settings::default(),
            watch: None,
        };
        let adapters = Arc::new(Adapters::new(Arc::new(KubeAdapter::new(&cfg))));
        Env {
            fake,
            adapters,
            tools: toolgate::tools::k8s::tools(),
        }
    }

    fn ctx(&self) -> ToolContext {
        ToolContext {
            principal: Principal::local("tester"),
            transport: "test",
            request_id: "req-1".into(),
            page: Page::default(),
            adapters: self.adapters.clone(),
            approvals: None,
            progress: None,
            knowledge: None,
            review: None,
        }
    }

    fn tool(&self, name: &str) -> &Arc<dyn Tool> {
        self.tools
            .iter()
            .find(|t| t.spec().name == name)
            .unwrap_or_else(|| panic!("no tool {name}"))
    }

    async fn try_preview(&self, tool: &str, args: &Value) -> Result<Option<Preview>, ToolError> {
        let ctx = self.ctx();
        tokio::time::timeout(Duration::from_secs(30), self.tool(tool).preview(&ctx, args))
            .await
            .expect("preview answered in time")
    }

    async fn preview(&self, tool: &str, args: Value) -> Preview {
        match self.try_preview(tool, &args).await {
            Ok(Some(p)) => p,
            Ok(None) => panic!("{tool} has no preview"),
            Err(e) => panic!("{tool} preview {args} failed: {e:?}"),
        }
    }

    async fn version(&self, tool: &str, args: &Value) -> Option<String> {
        let ctx = self.ctx();
        tokio::time::timeout(
            Duration::from_secs(30),
            self.tool(tool).target_version(&ctx, args),
        )
        .await
        .expect("target_version answered in time")
        .unwrap_or_else(|e| panic!("{tool} target_version {args} failed: {e:?}"))
    }

    async fn run(&self, tool: &str, args: Value) -> Value {
        let ctx = self.ctx();
        tokio::time::timeout(Duration::from_secs(30), self.tool(tool).invoke(&ctx, args))
            .await
            .expect("tool answered in time")
            .unwrap_or_else(|e| panic!("{tool} failed: {e:?}"))
    }

    /// Writes (PATCH, DELETE, POST, PUT) the fake received without `dryRun=All`.
    fn real_writes(&self) -> Vec<String> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| matches!(r.method.as_str(), "PATCH" | "DELETE" | "POST" | "PUT"))
            // kube sends a DELETE's dryRun in the DeleteOptions body.
            .filter(|r| !r.query.contains("dryRun=All") && !r.body.contains(r#""dryRun":["All"]"#))
            .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
            .collect()
    }

    fn writes(&self, method: &str) -> Vec<String> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.method == method)
            .map(|r| r.query)
            .collect()
    }

    fn deployment(&self, ns: &str, name: &str) -> Option<Value> {
        self.fake.get("apps/v1", "Deployment", Some(ns), name)
    }
}

fn rv(obj: &Value) -> String {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn text_of(p: &Preview) -> String {
    serde_json::to_string(p).expect("preview serializes")
}

fn assert_no_secret_values(what: &str, text: &str) {
    for s in SECRET_VALUES {
        assert!(!text.contains(s), "{what} leaked `{s}`: {text}");
    }
}

const WEB_1_28: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.28\n";
const NEW_CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: shop\ndata:\n  mode: fast\n";

#[tokio::test]
async fn apply_preview_diffs_live_objects_against_the_dry_run_and_stores_nothing() {
    let env = Env::start().await;
    env.fake.seed_deployment("shop", "web", 3);
    let before = env.deployment("shop", "web").expect("seeded");
    let args = json!({"manifest": format!("{NEW_CONFIGMAP}---\n{WEB_1_28}")});

    let p = env.preview("k8s.apply_manifest", args.clone()).await;
    assert!(
        p.summary
            .starts_with("would create configmap shop/x; would change deployment shop/web ("),
        "{}",
        p.summary
    );
    let diff = p.diff.clone().expect("a diff");
    let lines: Vec<&str> = diff.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('-') && l.contains("image: nginx:1.27")),
        "{diff}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('+') && l.contains("image: nginx:1.28")),
        "{diff}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('+') && l.contains("mode: fast")),
        "the new object is all additions: {diff}"
    );
    for noise in [
        "managedFields",
        "resourceVersion",
        "uid:",
        "creationTimestamp",
        "status:",
    ] {
        assert!(!diff.contains(noise), "{noise} in the diff: {diff}");
    }
    assert_eq!(p.detail["documents"][0]["action"], "create");
    assert_eq!(p.detail["documents"][1]["action"], "change");
    assert_eq!(p.detail["documents"][1]["changed_lines"], 2, "{diff}");

    // Nothing stored: the deployment is as it was, the config map does not exist, and every
    // write was a dry run.
    let after = env.deployment("shop", "web").expect("still there");
    assert_eq!(rv(&after), rv(&before));
    assert_eq!(
        after.pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("nginx:1.27"))
    );
    assert!(env.fake.get("v1", "ConfigMap", Some("shop"), "x").is_none());
    assert_eq!(env.writes("PATCH").len(), 2);
    assert!(env.real_writes().is_empty(), "{:?}", env.real_writes());

    // The target version names every document's live version, and is stable until a change.
    let version = p.target_version.clone().expect("a target version");
    assert_eq!(
        version,
        format!(
            "configmap/shop/x=absent,deployment/shop/web={}",
            rv(&before)
        )
    );
    assert_eq!(
        env.version("k8s.apply_manifest", &args).await,
        Some(version.clone())
    );
    let mut changed = before.clone();
    changed["spec"]["replicas"] = json!(5);
    env.fake.insert(changed);
    let v2 = env
        .version("k8s.apply_manifest", &args)
        .await
        .expect("a version");
    assert_ne!(v2, version, "a modified deployment changes the version");
    env.run("k8s.apply_manifest", json!({"manifest": NEW_CONFIGMAP}))
        .await;
    let v3 = env
        .version("k8s.apply_manifest", &args)
        .await
        .expect("a version");
    assert_ne!(v3, v2, "a created config map changes the version");
    assert!(!v3.contains("absent"), "{v3}");

    // An unchanged object says so and has no diff.
    let p = env
        .preview("k8s.apply_manifest", json!({"manifest": NEW_CONFIGMAP}))
        .await;
    assert_eq!(p.summary, "configmap shop/x unchanged");
    assert!(p.diff.is_none(), "{:?}", p.diff);

    // One failing document is shown; when every document fails, the preview fails like the
    // call (nothing would be applied).
    let elsewhere = NEW_CONFIGMAP
        .replace("namespace: shop", "namespace: nowhere")
        .replace("name: x", "name: y");
    let p = env
        .preview(
            "k8s.apply_manifest",
            json!({"manifest": format!("{NEW_CONFIGMAP}---\n{elsewhere}")}),
        )
        .await;
    assert!(
        p.summary.starts_with(
            "configmap shop/x unchanged; configmap nowhere/y would fail: configmap 'y' in namespace 'nowhere': namespace 'nowhere' not found"
        ),
        "{}",
        p.summary
    );
    assert_eq!(p.detail["failed"], 1);
    assert_eq!(p.detail["documents"][1]["action"], "fail");
    let e = env
        .try_preview(
            "k8s.apply_manifest",
            &json!({"manifest": NEW_CONFIGMAP.replace("namespace: shop", "namespace: nowhere")}),
        )
        .await
        .expect_err("no such namespace");
    assert_eq!(e.kind, ToolErrorKind::NotFound);
    assert!(
        e.message.contains("namespace 'nowhere' not found"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn apply_preview_and_arguments_never_show_secret_values() {
    let env = Env::start().await;
    let mut db = objects::secret("shop", "db", &[("password", "hunter2")]);
    db["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"password\":\"aHVudGVyMg==\"}}"
    });
    env.fake.insert(db);
    let manifest = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\n  namespace: shop\nstringData:\n  token: sk_live_123\n---\napiVersion: v1\nkind: secret\nmetadata:\n  name: db\n  namespace: shop\nstringData:\n  password: new-password-42\n";
    let args = json!({"manifest": manifest});

    let p = env.preview("k8s.apply_manifest", args.clone()).await;
    let text = text_of(&p);
    assert_no_secret_values("apply preview", &text);
    assert!(
        p.summary.contains("would create secret shop/api")
            && p.summary.contains("would change secret shop/db"),
        "{}",
        p.summary
    );
    let diff = p.diff.clone().expect("diff");
    assert!(
        diff.contains("name: token") && diff.contains("bytes: 11"),
        "{diff}"
    );
    assert!(
        diff.lines()
            .any(|l| l.starts_with('+') && l.contains("changed: true")),
        "a changed value is flagged without showing it: {diff}"
    );

    let shown = env.tool("k8s.apply_manifest").redact_args(&args);
    let shown_text = shown.to_string();
    assert_no_secret_values("redacted arguments", &shown_text);
    let shown_manifest = shown["manifest"].as_str().expect("manifest kept");
    assert!(
        shown_manifest.contains("name: token") && shown_manifest.contains("name: password"),
        "{shown_manifest}"
    );

    // Manifests without Secrets are shown as sent; unparseable ones not at all.
    let plain = json!({"manifest": NEW_CONFIGMAP});
    assert_eq!(env.tool("k8s.apply_manifest").redact_args(&plain), plain);
    let broken = json!({"manifest": "kind: Secret\nstringData:\n  token: [sk_live_123\n"});
    assert_no_secret_values(
        "broken manifest",
        &env.tool("k8s.apply_manifest")
            .redact_args(&broken)
            .to_string(),
    );

    // The approval target is settled by the core before policy (resolved_target.rs).
    assert!(env.real_writes().is_empty(), "{:?}", env.real_writes());
}

#[tokio::test]
async fn delete_preview_counts_dependents_and_deletes_nothing() {
    let env = Env::start().await;
    env.fake.seed_deployment("shop", "web", 3);
    env.fake.seed_deployment("shop", "api", 2);
    let args = json!({"kind": "deploy", "name": "web", "namespace": "shop"});

    let p = env.preview("k8s.delete_resource", args.clone()).await;
    assert_eq!(
        p.summary,
        "would delete deployment shop/web and its 4 dependents (1 replicaset, 3 pods)"
    );
    assert_eq!(p.detail["dependents_total"], 4);
    assert_eq!(p.detail["propagation_policy"], "Background");
    let deps = p.detail["dependents"].as_array().expect("dependents");
    assert_eq!(deps[0]["kind"], "replicaset");
    assert_eq!(deps[0]["owner"], "deployment/web");
    assert!(
        deps[1..]
            .iter()
            .all(|d| d["kind"] == "pod" && d["depth"] == 2),
        "{deps:?}"
    );

    let orphan = env
        .preview(
            "k8s.delete_resource",
            json!({"kind": "deploy", "name": "web", "namespace": "shop", "propagation_policy": "Orphan"}),
        )
        .await;
    assert!(
        orphan.summary.starts_with(
            "would delete deployment shop/web and orphan its 1 dependent (1 replicaset)"
        ),
        "{}",
        orphan.summary
    );

    // A pod of the deployment: no dependents, and its controller will replace it.
    let pod = env
        .fake
        .list("v1", "Pod", Some("shop"))
        .into_iter()
        .find(|p| p.pointer("/metadata/labels/app") == Some(&json!("web")))
        .expect("a web pod");
    let pod_name = pod["metadata"]["name"].as_str().expect("name").to_string();
    let p = env
        .preview(
            "k8s.delete_resource",
            json!({"kind": "pod", "name": pod_name, "namespace": "shop"}),
        )
        .await;
    assert!(
        p.summary.contains("(no dependents)") && p.summary.contains("managed by replicaset web-"),
        "{}",
        p.summary
    );

    // Nothing deleted; the only DELETEs were dry runs.
    assert!(env.deployment("shop", "web").is_some());
    assert_eq!(env.fake.list("v1", "Pod", Some("shop")).len(), 5);
    assert_eq!(env.writes("DELETE").len(), 3);
    assert!(env.real_writes().is_empty(), "{:?}", env.real_writes());

    // Versions: stable, changed by a modification, None once deleted.
    let version = p.target_version.clone();
    assert!(version.is_some());
    let version = env.version("k8s.delete_resource", &args).await;
    assert_eq!(
        version.as_deref(),
        env.preview("k8s.delete_resource", args.clone())
            .await
            .target_version
            .as_deref()
    );
    let mut d = env.deployment("shop", "web").expect("deployment");
    d["metadata"]["labels"]["tier"] = json!("front");
    env.fake.insert(d);
    let v2 = env.version("k8s.delete_resource", &args).await;
    assert!(v2.is_some() && v2 != version, "{v2:?} vs {version:?}");
    env.run("k8s.delete_resource", args.clone()).await;
    assert_eq!(env.version("k8s.delete_resource", &args).await, None);

    // A missing object is an error, so the call is never queued.
    let e = env
        .try_preview("k8s.delete_resource", &args)
        .await
        .expect_err("gone");
    assert_eq!(e.kind, ToolErrorKind::NotFound);
    assert!(
        e.message
            .starts_with("deployment 'web' in namespace 'shop' not found"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn delete_preview_of_secrets_and_namespaces() {
    let env = Env::start().await;
    env.fake.seed_deployment("shop", "web", 2);
    env.fake
        .insert(objects::secret("shop", "db", &[("password", "hunter2")]));
    let p = env
        .preview(
            "k8s.delete_resource",
            json!({"kind": "secret", "name": "db", "namespace": "shop"}),
        )
        .await;
    assert_eq!(p.summary, "would delete secret shop/db (no dependents)");
    assert_no_secret_values("secret delete preview", &text_of(&p));

    let p = env
        .preview("k8s.delete_resource", json!({"kind": "ns", "name": "shop"}))
        .await;
    assert!(
        p.summary
            .starts_with("would delete namespace shop and everything in it ("),
        "{}",
        p.summary
    );
    assert!(
        p.summary.contains("1 deployment")
            && p.summary.contains("2 pods")
            && p.summary.contains("1 secret"),
        "{}",
        p.summary
    );
    assert!(env.real_writes().is_empty(), "{:?}", env.real_writes());
}

#[tokio::test]
async fn restart_preview_counts_pods_and_patches_only_in_dry_run() {
    let env = Env::start().await;
    env.fake.seed_deployment("shop", "web", 3);
    env.fake.seed_deployment("shop", "api", 2);
    let args = json!({"kind": "deploy", "name": "web", "namespace": "shop"});
    let before = env.deployment("shop", "web").expect("seeded");

    let p = env.preview("k8s.rollout_restart", args.clone()).await;
    assert_eq!(
        p.summary,
        "would restart deployment shop/web: 3 pods replaced by a rolling update (maxUnavailable 25%, maxSurge 25%)"
    );
    assert_eq!(p.detail["pod_count"], 3);
    assert_eq!(p.detail["selector"], "app=web");
    let diff = p.diff.clone().expect("template diff");
    assert!(
        diff.lines()
            .any(|l| l.starts_with('+') && l.contains("kubectl.kubernetes.io/restartedAt")),
        "{diff}"
    );
    assert_eq!(p.target_version, Some(rv(&before)));

    let patches = env.writes("PATCH");
    assert_eq!(patches.len(), 1);
    assert!(env.real_writes().is_empty(), "{:?}", env.real_writes());
    let after = env.deployment("shop", "web").expect("still there");
    assert_eq!(rv(&after), rv(&before));
    assert!(
        after
            .pointer("/spec/template/metadata/annotations")
            .is_none(),
        "{after}"
    );

    assert_eq!(
        env.version("k8s.rollout_restart", &args).await,
        p.target_version
    );
    env.run("k8s.rollout_restart", args.clone()).await;
    let v2 = env.version("k8s.rollout_restart", &args).await;
    assert!(v2.is_some() && v2 != p.target_version, "{v2:?}");

    // A paused deployment: the preview says the call would fail, and patches nothing.
    let mut paused = objects::deployment("shop", "frozen", 2);
    paused["spec"]["paused"] = json!(true);
    env.fake.insert(paused);
    let p = env
        .preview(
            "k8s.rollout_restart",
            json!({"kind": "deployment", "name": "frozen", "namespace": "shop"}),
        )
        .await;
    assert!(
        p.summary
            .starts_with("would fail: deployment 'frozen' in namespace 'shop' is paused"),
        "{}",
        p.summary
    );
    assert_eq!(
        env.writes("PATCH").len(),
        2,
        "one dry run, one real restart"
    );

    let e = env
        .try_preview(
            "k8s.rollout_restart",
            &json!({"kind": "deploy", "name": "nope", "namespace": "shop"}),
        )
        .await
        .expect_err("missing");
    assert_eq!(e.kind, ToolErrorKind::NotFound);
    assert_eq!(
        env.version(
            "k8s.rollout_restart",
            &json!({"kind": "deploy", "name": "nope", "namespace": "shop"})
        )
        .await,
        None
    );
}

#[tokio::test]
async fn exec_preview_names_the_command_and_runs_nothing() {
    let env = Env::start().await;
    env.fake.insert(objects::pod("shop", "web-0"));
    let args = json!({"pod": "web-0", "namespace": "shop", "command": ["echo", "hi"]});
    let p = env.preview("k8s.exec_command", args.clone()).await;
    assert_eq!(
        p.summary,
        "would run `echo hi` in pod shop/web-0, container app"
    );
    // Bound to the pod itself (its UID), which the run re-reads.
    let uid = env
        .fake
        .get("v1", "Pod", Some("shop"), "web-0")
        .expect("pod")["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    assert_eq!(p.target_version, Some(format!("pod-uid={uid}")));
    assert_eq!(p.detail["command"], json!(["echo", "hi"]));
    assert_eq!(
        env.version("k8s.exec_command", &args).await,
        p.target_version
    );

    let p = env
        .preview(
            "k8s.exec_command",
            json!({"pod": "web-0", "namespace": "shop", "command": ["sh", "-c", "cat /etc/hosts; exit 3"]}),
        )
        .await;
    assert_eq!(
        p.summary,
        "would run `sh -c 'cat /etc/hosts; exit 3'` in pod shop/web-0, container app"
    );
    assert!(env.fake.execs().is_empty(), "{:?}", env.fake.execs());

    // A pod that does not run: the call would be refused, and the preview says so.
    let mut pending = objects::pod("shop", "web-1");
    pending["status"]["phase"] = json!("Pending");
    env.fake.insert(pending);
    let p = env
        .preview(
            "k8s.exec_command",
            json!({"pod": "web-1", "namespace": "shop", "command": ["true"]}),
        )
        .await;
    assert!(
        p.summary.starts_with("would fail: pod 'web-1' is Pending"),
        "{}",
        p.summary
    );

    let e = env
        .try_preview(
            "k8s.exec_command",
            &json!({"pod": "web-9", "namespace": "shop", "command": ["true"]}),
        )
        .await
        .expect_err("no such pod");
    assert_eq!(e.kind, ToolErrorKind::NotFound);
}
