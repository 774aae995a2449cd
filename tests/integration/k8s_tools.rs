//! The k8s.* tools against the fake API server, called through `Tool::invoke` with JSON args
//! (write tools included: the core refuses them until the approval gate exists).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use toolgate::adapters::Adapters;
use toolgate::adapters::kube::KubeAdapter;
use toolgate::config::{ClusterConfig, ClusterSource, KubernetesConfig};
use toolgate::core::context::{Page, ToolContext};
use toolgate::core::error::{ToolError, ToolErrorKind};
use toolgate::core::principal::Principal;
use toolgate::core::tool::Tool;

use crate::fake_kube::{FakeKube, objects};
use crate::mcp::column;

/// Secret values used in every redaction test; none may appear in any tool output.
const SECRET_VALUES: &[&str] = &["hunter2", "aHVudGVyMg==", "sk_live_123", "c2tfbGl2ZV8xMjM="];

struct Env {
    fake: FakeKube,
    adapters: Arc<Adapters>,
    tools: Vec<Arc<dyn Tool>>,
}

impl Env {
    async fn start() -> Env {
        let fake = FakeKube::start().await;
        let cfg = kube_config(vec![ClusterConfig {
            name: "fake".into(),
            source: ClusterSource::Kubeconfig {
                path: Some(fake.kubeconfig.clone()),
                context: Some("fake".into()),
            },
        }]);
        let adapters = Arc::new(Adapters::new(Arc::new(KubeAdapter::new(&cfg))));
        Env {
            fake,
            adapters,
            tools: toolgate::tools::k8s::tools(),
        }
    }

    fn ctx(&self, page: Page) -> ToolContext {
        ToolContext {
            principal: Principal::local("tester"),
            transport: "test",
            request_id: "req-1".into(),
            page,
            adapters: self.adapters.clone(),
            approvals: None,
            progress: None,
            knowledge: None,
            review: None,
        }
    }

    async fn call_page(&self, tool: &str, args: Value, page: Page) -> Result<Value, ToolError> {
        let tool = self
            .tools
            .iter()
            .find(|t| t.spec().name == tool)
            .unwrap_or_else(|| panic!("no tool {tool}"));
        let ctx = self.ctx(page);
        tokio::time::timeout(Duration::from_secs(30), tool.invoke(&ctx, args))
            .await
            .expect("tool answered in time")
    }

    async fn call(&self, tool: &str, args: Value) -> Result<Value, ToolError> {
        self.call_page(tool, args, Page::default()).await
    }

    async fn ok(&self, tool: &str, args: Value) -> Value {
        match self.call(tool, args.clone()).await {
            Ok(v) => v,
            Err(e) => panic!("{tool} {args} failed: {e:?}"),
        }
    }

    async fn err(&self, tool: &str, args: Value) -> ToolError {
        match self.call(tool, args.clone()).await {
            Ok(v) => panic!("{tool} {args} should fail, got {v}"),
            Err(e) => e,
        }
    }
}

fn kube_config(clusters: Vec<ClusterConfig>) -> KubernetesConfig {
    KubernetesConfig {
        default_cluster: clusters.first().map(|c| c.name.clone()).unwrap_or_default(),
        clusters,
        log_tail_lines: 500,
        request_timeout: Duration::from_secs(5),
        client: toolgate::adapters::http::Settings::default(),
        watch: None,
    }
}

fn assert_no_secrets(what: &str, v: &Value) {
    let text = v.to_string();
    for s in SECRET_VALUES {
        assert!(!text.contains(s), "{what} leaked `{s}`: {text}");
    }
    assert!(
        !text.contains("managedFields"),
        "{what} kept managedFields: {text}"
    );
}

fn seed_secret(env: &Env) {
    let mut s = objects::secret(
        "shop",
        "db",
        &[("password", "hunter2"), ("api-key", "sk_live_123")],
    );
    s["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"password\":\"aHVudGVyMg==\"}}"
    });
    env.fake.insert(s);
}

fn rows_named(out: &Value) -> Vec<String> {
    out["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r[0].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn get_resource_accepts_every_kind_form_and_strips_managed_fields() {
    let env = Env::start().await;
    env.fake.seed_deployment("shop", "web", 2);
    env.fake.insert(objects::widget("shop", "w1"));
    for kind in [
        "deploy",
        "deployments",
        "Deployment",
        "deployment",
        "deployments.apps",
    ] {
        let out = env
            .ok(
                "k8s.get_resource",
                json!({"kind": kind, "name": "web", "namespace": "shop"}),
            )
            .await;
        assert_eq!(out["kind"], "Deployment", "{kind}");
        assert_eq!(out["api_version"], "apps/v1");
        assert_eq!(out["cluster"], "fake");
        assert_eq!(out["object"]["spec"]["replicas"], 2);
        assert!(
            out["object"]["metadata"].get("managedFields").is_none(),
            "{out}"
        );
    }
    let out = env
        .ok(
            "k8s.get_resource",
            json!({"kind": "wd", "name": "w1", "namespace": "shop"}),
        )
        .await;
    assert_eq!(out["object"]["spec"]["color"], "blue");
    let out = env
        .ok(
            "k8s.get_resource",
            json!({"kind": "Widget", "name": "w1", "namespace": "shop", "output": "yaml"}),
        )
        .await;
    let yaml = out["yaml"].as_str().expect("yaml text");
    assert!(
        yaml.contains("color: blue") && yaml.contains("kind: Widget"),
        "{yaml}"
    );
    assert!(out.get("object").is_none());
    // Cluster-scoped kinds ignore a namespace, as kubectl does.
    env.fake.seed_pods(1, &["shop"]);
    let out = env
        .ok(
            "k8s.get_resource",
            json!({"kind": "no", "name": "node-1", "namespace": "shop"}),
        )
        .await;
    assert!(out.get("namespace").is_none());
    assert_eq!(out["object"]["kind"], "Node");
}

#[tokio::test]
async fn errors_say_what_to_change() {
    let env = Env::start().await;
    env.fake.seed_deployment("shop", "web", 1);
    let e = env
        .err(
            "k8s.get_resource",
            json!({"kind": "deplyment", "name": "web", "namespace": "shop"}),
        )
        .await;
    assert_eq!(e.kind, ToolErrorKind::NotFound);
    assert_eq!(
        e.message,
        "kind 'deplyment' not found; did you mean deployment?"
    );

    let e = env
        .err(
            "k8s.get_resource",
            json!({"kind": "deploy", "name": "web", "namespace": "prod"}),
        )
        .await;
    assert_eq!(e.kind, ToolErrorKind::NotFound);
    assert_eq!(
        e.message,
        "namespace 'prod' not found; namespaces: default, kube-public, kube-system, shop"
    );

    let e = env
        .err(
            "k8s.get_resource",
            json!({"kind": "deploy", "name": "wbe", "namespace": "shop"}),
        )
        .await;
    assert_eq!(
        e.message,
        "deployment 'wbe' in namespace 'shop' not found; did you mean web?"
    );

    let e = env
        .err(
            "k8s.list_resources",
            json!({"kind": "pods", "namespace": "prod"}),
        )
        .await;
    assert!(
        e.message
            .starts_with("namespace 'prod' not found; namespaces: "),
        "{}",
        e.message
    );

    let e = env
        .err(
            "k8s.get_resource",
            json!({"kind": "pod", "name": "x", "cluster": "staging"}),
        )
        .await;
    assert_eq!(e.kind, ToolErrorKind::NotFound);
    assert_eq!(
        e.message,
        "cluster `staging` is not configured; clusters: fake"
    );

    let e = env
        .err(
            "k8s.get_resource",
            json!({"kind": "pod", "name": "x", "bogus": 1}),
        )
        .await;
    assert_eq!(e.kind, ToolErrorKind::InvalidArguments);
}

#[tokio::test]
async fn a_missing_kubeconfig_is_explained_when_a_tool_needs_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = kube_config(vec![ClusterConfig {
        name: "default".into(),
        source: ClusterSource::Kubeconfig {
            path: Some(dir.path().join("absent")),
            context: None,
        },
    }]);
    // Construction does no I/O: this must not fail.
    let adapters = Arc::new(Adapters::new(Arc::new(KubeAdapter::new(&cfg))));
    let ctx = ToolContext {
        principal: Principal::local("t"),
        transport: "test",
        request_id: "r".into(),
        page: Page::default(),
        adapters,
        approvals: None,
        progress: None,
        knowledge: None,
        review: None,
    };
    let tools = toolgate::tools::k8s::tools();
    let get = tools
        .iter()
        .find(|t| t.spec().name == "k8s.get_resource")
        .expect("tool");
    let e = get
        .invoke(&ctx, json!({"kind": "pod", "name": "x"}))
        .await
        .expect_err("no cluster");
    assert_eq!(e.kind, ToolErrorKind::Upstream);
    assert!(
        e.message.starts_with("cluster `default`: kubeconfig ") && e.message.ends_with("not found"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn listing_200_pods_fits_in_25_kb_of_compact_rows() {
    let env = Env::start().await;
    env.fake.seed_pods(200, &["shop", "payments", "search"]);
    let out = env.ok("k8s.list_resources", json!({"kind": "po"})).await;
    assert_eq!(
        out["columns"],
        json!([
            "name",
            "namespace",
            "status",
            "ready",
            "restarts",
            "age",
            "node"
        ])
    );
    assert_eq!(out["rows"].as_array().map(Vec::len), Some(200));
    let bytes = serde_json::to_vec(&out).expect("json").len();
    eprintln!("200-pod compact list: {bytes} bytes");
    assert!(bytes <= 25 * 1024, "{bytes} bytes");
    let row = out["rows"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r[4] != json!(0)))
        .expect("a restarted pod");
    assert_eq!(row[2], "Running");
    assert_eq!(row[3], "1/1");
    assert!(
        row[4].as_str().is_some_and(|s| s.starts_with("2 (")),
        "{row}"
    );
    assert!(
        row[6].as_str().is_some_and(|s| s.starts_with("node-")),
        "{row}"
    );

    // One namespace: no namespace column.
    let out = env
        .ok(
            "k8s.list_resources",
            json!({"kind": "pods", "namespace": "shop", "label_selector": "app=web"}),
        )
        .await;
    assert_eq!(out["namespace"], "shop");
    assert_eq!(out["columns"][1], "status");
    assert!(
        rows_named(&out).iter().all(|n| n.starts_with("web-")),
        "{out}"
    );

    let out = env
        .ok(
            "k8s.list_resources",
            json!({"kind": "deploy", "namespace": "shop"}),
        )
        .await;
    assert_eq!(
        out["columns"],
        json!(["name", "ready", "up_to_date", "available", "age"])
    );
    let out = env.ok("k8s.list_resources", json!({"kind": "nodes"})).await;
    assert_eq!(out["columns"], json!(["name", "age", "status"]));
    assert_eq!(out["rows"][0][2], "Ready");
}

#[tokio::test]
async fn lists_page_with_the_api_servers_continue_token() {
    let env = Env::start().await;
    env.fake.seed_pods(30, &["shop"]);
    let first = env
        .ok(
            "k8s.list_resources",
            json!({"kind": "pods", "namespace": "shop", "limit": 20}),
        )
        .await;
    assert_eq!(first["rows"].as_array().map(Vec::len), Some(20));
    let token = first["continue"]
        .as_str()
        .expect("continue token")
        .to_string();
    // The core's cursor (ctx.page.upstream) wins over the tool's own `continue` argument.
    let second = env
        .call_page(
            "k8s.list_resources",
            json!({"kind": "pods", "namespace": "shop", "limit": 20, "continue": "bogus"}),
            Page {
                upstream: Some(token.clone()),
                skip: 0,
                max_bytes: None,
            },
        )
        .await
        .expect("second page");
    assert_eq!(second["rows"].as_array().map(Vec::len), Some(10));
    assert!(second.get("continue").is_none());
    let by_arg = env
        .ok(
            "k8s.list_resources",
            json!({"kind": "pods", "namespace": "shop", "limit": 20, "continue": token}),
        )
        .await;
    assert_eq!(rows_named(&by_arg), rows_named(&second));
    let mut all = rows_named(&first);
    all.extend(rows_named(&second));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 30);
}

#[tokio::test]
async fn full_object_lists_and_custom_resources() {
    let env = Env::start().await;
    env.fake.insert(objects::widget("shop", "w1"));
    env.fake.insert(objects::widget("lab", "w2"));
    let out = env.ok("k8s.list_resources", json!({"kind": "wd"})).await;
    assert_eq!(out["kind"], "Widget");
    assert_eq!(
        out["columns"],
        json!(["name", "namespace", "age", "status"])
    );
    assert_eq!(rows_named(&out), vec!["w2", "w1"]);
    let out = env
        .ok(
            "k8s.list_resources",
            json!({"kind": "cm", "namespace": "kube-system", "output": "json"}),
        )
        .await;
    assert!(out.get("columns").is_none());
    env.fake
        .insert(objects::configmap("shop", "cfg", &[("mode", "fast")]));
    let out = env
        .ok(
            "k8s.list_resources",
            json!({"kind": "configmaps", "namespace": "shop", "output": "json"}),
        )
        .await;
    assert_eq!(out["rows"][0]["kind"], "ConfigMap");
    assert_eq!(out["rows"][0]["data"]["mode"], "fast");
    let out = env
        .ok(
            "k8s.list_resources",
            json!({"kind": "configmaps", "namespace": "shop", "output": "yaml"}),
        )
        .await;
    assert!(
        out["rows"][0]
            .as_str()
            .is_some_and(|y| y.contains("mode: fast")),
        "{out}"
    );
}

#[tokio::test]
async fn secrets_never_leave_with_their_values() {
    let env = Env::start().await;
    seed_secret(&env);
    for output in ["json", "yaml"] {
        let out = env
            .ok(
                "k8s.get_resource",
                json!({"kind": "secret", "name": "db", "namespace": "shop", "output": output}),
            )
            .await;
        assert_no_secrets(&format!("get {output}"), &out);
    }
    let out = env
        .ok(
            "k8s.get_resource",
            json!({"kind": "secret", "name": "db", "namespace": "shop"}),
        )
        .await;
    assert_eq!(
        out["object"]["data_keys"],
        json!([{"name": "api-key", "bytes": 11}, {"name": "password", "bytes": 7}])
    );

    for output in ["compact", "json", "yaml"] {
        let out = env
            .ok(
                "k8s.list_resources",
                json!({"kind": "secrets", "output": output}),
            )
            .await;
        assert_no_secrets(&format!("list {output}"), &out);
        assert!(out.to_string().contains("db"), "{out}");
    }
    let out = env
        .ok(
            "k8s.list_resources",
            json!({"kind": "secrets", "namespace": "shop"}),
        )
        .await;
    assert_eq!(
        out["rows"][0],
        json!(["db", "Opaque", 2, out["rows"][0][3]])
    );

    let out = env
        .ok(
            "k8s.describe_resource",
            json!({"kind": "secret", "name": "db", "namespace": "shop"}),
        )
        .await;
    assert_no_secrets("describe", &out);
    assert_eq!(
        out["details"]["data_keys"][1],
        json!({"name": "password", "bytes": 7})
    );
    assert!(
        out.get("annotation_keys").is_none(),
        "last-applied is not listed: {out}"
    );

    let manifest = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\n  namespace: shop\nstringData:\n  token: sk_live_123\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\ndata:\n  password: aHVudGVyMg==\n";
    let tool = env
        .tools
        .iter()
        .find(|t| t.spec().name == "k8s.apply_manifest")
        .expect("apply");
    for dry_run in [true, false] {
        let out = tool
            .invoke(
                &env.ctx(Page::default()),
                json!({"manifest": manifest, "dry_run": dry_run}),
            )
            .await
            .expect("apply");
        assert_no_secrets(&format!("apply dry_run={dry_run}"), &out);
        assert_eq!(out["results"][0]["object"]["data_keys"][0]["name"], "token");
    }
    let bad =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData:\n  token: [sk_live_123\n";
    let e = tool
        .invoke(&env.ctx(Page::default()), json!({"manifest": bad}))
        .await
        .expect_err("bad yaml");
    assert!(!e.message.contains("sk_live_123"), "{}", e.message);

    let out = env
        .ok(
            "k8s.delete_resource",
            json!({"kind": "secret", "name": "db", "namespace": "shop", "dry_run": true}),
        )
        .await;
    assert_no_secrets("delete dry run", &out);
    let out = env
        .ok(
            "k8s.delete_resource",
            json!({"kind": "secret", "name": "db", "namespace": "shop"}),
        )
        .await;
    assert_no_secrets("delete", &out);
    assert!(env.fake.get("v1", "Secret", Some("shop"), "db").is_none());
}

fn two_container_pod(ns: &str, name: &str) -> Value {
    let mut pod = objects::pod(ns, name);
    pod["spec"]["containers"] =
        json!([{"name": "app", "image": "shop:1"}, {"name": "proxy", "image": "envoy:1"}]);
    pod["spec"]["initContainers"] = json!([{"name": "migrate", "image": "shop:1"}]);
    pod
}

#[tokio::test]
async fn logs_tail_grep_previous_and_container_choice() {
    let env = Env::start().await;
    env.fake.insert(objects::pod("shop", "web-1"));
    let lines: Vec<String> = (1..=50)
        .map(|i| {
            if i % 10 == 0 {
                format!("line {i} ERROR timeout")
            } else {
                format!("line {i} ok")
            }
        })
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    env.fake.set_log_lines("shop", "web-1", "app", &refs);

    let out = env
        .ok(
            "k8s.get_logs",
            json!({"pod": "web-1", "namespace": "shop", "tail_lines": 5}),
        )
        .await;
    assert!(
        out.get("container").is_none(),
        "the API server picked the only container; none is named: {out}"
    );
    assert_eq!(out["untrusted"], true, "log text is marked: {out}");
    assert_eq!(out["count"], 5);
    assert_eq!(out["lines"][4], "line 50 ERROR timeout");
    assert!(out.get("scanned").is_none());

    let out = env
        .ok(
            "k8s.get_logs",
            json!({"pod": "web-1", "namespace": "shop", "grep": "ERROR"}),
        )
        .await;
    assert_eq!(out["count"], 5);
    assert_eq!(out["scanned"], 50);
    let out = env
        .ok(
            "k8s.get_logs",
            json!({"pod": "web-1", "namespace": "shop", "grep": "/(?i)line [12]0 error/"}),
        )
        .await;
    assert_eq!(
        out["lines"],
        json!(["line 10 ERROR timeout", "line 20 ERROR timeout"])
    );
    let e = env
        .err(
            "k8s.get_logs",
            json!({"pod": "web-1", "namespace": "shop", "grep": "/[/"}),
        )
        .await;
    assert_eq!(e.kind, ToolErrorKind::InvalidArguments);

    let e = env
        .err(
            "k8s.get_logs",
            json!({"pod": "web-1", "namespace": "shop", "previous": true}),
        )
        .await;
    assert!(e.message.contains("omit `previous`"), "{}", e.message);
    env.fake.set_logs(
        "shop",
        "web-1",
        "app",
        vec![(jiff::Timestamp::now(), "panic: out of memory".into())],
        true,
    );
    let out = env
        .ok(
            "k8s.get_logs",
            json!({"pod": "web-1", "namespace": "shop", "previous": true}),
        )
        .await;
    assert_eq!(out["lines"], json!(["panic: out of memory"]));
    assert_eq!(out["previous"], true);

    env.fake.insert(two_container_pod("shop", "api-1"));
    let e = env
        .err("k8s.get_logs", json!({"pod": "api-1", "namespace": "shop"}))
        .await;
    assert_eq!(
        e.message,
        "pod 'api-1' has several containers; pass `container`, one of: app, proxy (init: migrate)"
    );
    env.fake
        .set_log_lines("shop", "api-1", "proxy", &["proxy up"]);
    let out = env
        .ok(
            "k8s.get_logs",
            json!({"pod": "api-1", "namespace": "shop", "container": "proxy"}),
        )
        .await;
    assert_eq!(out["lines"], json!(["proxy up"]));
    let e = env
        .err("k8s.get_logs", json!({"pod": "api-9", "namespace": "shop"}))
        .await;
    assert!(
        e.message
            .starts_with("pod 'api-9' in namespace 'shop' not found; did you mean api-1"),
        "{}",
        e.message
    );
}

/// Requests the fake received since `before`, as `METHOD path?query`.
fn requests_since(fake: &FakeKube, before: usize) -> Vec<String> {
    fake.requests()
        .iter()
        .skip(before)
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect()
}

#[tokio::test]
async fn a_log_read_is_one_request_to_the_log_endpoint() {
    let env = Env::start().await;
    env.fake.insert(objects::pod("shop", "web-1"));
    env.fake
        .set_log_lines("shop", "web-1", "app", &["one", "two", "three"]);
    // The first call also discovers the API; count the second.
    env.ok("k8s.get_logs", json!({"pod": "web-1", "namespace": "shop"}))
        .await;
    let before = env.fake.requests().len();
    let out = env
        .ok(
            "k8s.get_logs",
            json!({"pod": "web-1", "namespace": "shop", "tail_lines": 2}),
        )
        .await;
    assert_eq!(out["lines"], json!(["two", "three"]));
    let sent = requests_since(&env.fake, before);
    assert_eq!(sent.len(), 1, "one upstream request: {sent:?}");
    assert!(
        sent[0].starts_with("GET /api/v1/namespaces/shop/pods/web-1/log?")
            && sent[0].contains("tailLines=2"),
        "{sent:?}"
    );
    let before = env.fake.requests().len();
    let out = env
        .ok(
            "k8s.get_logs",
            json!({"pod": "web-1", "namespace": "shop", "container": "app"}),
        )
        .await;
    assert_eq!(out["container"], "app");
    let sent = requests_since(&env.fake, before);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("container=app"), "{sent:?}");
}

#[tokio::test]
async fn several_containers_are_named_after_the_api_servers_answer() {
    let env = Env::start().await;
    env.fake.insert(two_container_pod("shop", "api-1"));
    env.fake
        .set_log_lines("shop", "api-1", "proxy", &["proxy up"]);
    env.ok(
        "k8s.get_logs",
        json!({"pod": "api-1", "namespace": "shop", "container": "proxy"}),
    )
    .await;
    let before = env.fake.requests().len();
    let e = env
        .err("k8s.get_logs", json!({"pod": "api-1", "namespace": "shop"}))
        .await;
    assert_eq!(e.kind, ToolErrorKind::InvalidArguments);
    assert_eq!(
        e.message,
        "pod 'api-1' has several containers; pass `container`, one of: app, proxy (init: migrate)"
    );
    let sent: Vec<String> = requests_since(&env.fake, before)
        .iter()
        .map(|r| r.split('?').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        sent,
        vec![
            "GET /api/v1/namespaces/shop/pods/api-1/log".to_string(),
            "GET /api/v1/namespaces/shop/pods/api-1".to_string(),
        ],
        "the log first; the pod only to name its containers"
    );
    let e = env
        .err(
            "k8s.get_logs",
            json!({"pod": "api-1", "namespace": "shop", "container": "nope"}),
        )
        .await;
    assert_eq!(e.kind, ToolErrorKind::NotFound);
    assert!(
        e.message
            .starts_with("container 'nope' not found in pod 'api-1'; containers: app, proxy"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn the_default_container_annotation_is_honoured_as_kubectl_does() {
    let env = Env::start().await;
    let mut pod = two_container_pod("shop", "api-1");
    pod["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/default-container": "proxy"});
    env.fake.insert(pod);
    env.fake
        .set_log_lines("shop", "api-1", "proxy", &["proxy up"]);
    env.fake.set_log_lines("shop", "api-1", "app", &["app up"]);
    let out = env
        .ok("k8s.get_logs", json!({"pod": "api-1", "namespace": "shop"}))
        .await;
    assert_eq!(out["container"], "proxy");
    assert_eq!(out["lines"], json!(["proxy up"]));
    let before = env.fake.requests().len();
    env.ok("k8s.get_logs", json!({"pod": "api-1", "namespace": "shop"}))
        .await;
    let sent = requests_since(&env.fake, before);
    assert_eq!(
        sent.len(),
        3,
        "log (400), pod, log of the default: {sent:?}"
    );
    assert!(sent[2].contains("container=proxy"), "{sent:?}");
    // A named container wins over the annotation, in one request.
    let out = env
        .ok(
            "k8s.get_logs",
            json!({"pod": "api-1", "namespace": "shop", "container": "app"}),
        )
        .await;
    assert_eq!(out["lines"], json!(["app up"]));
}

#[tokio::test]
async fn describe_shows_why_a_pod_restarts_and_its_events() {
    let env = Env::start().await;
    let d = env.fake.seed_deployment("shop", "web", 1);
    let pod = env
        .fake
        .list("v1", "Pod", Some("shop"))
        .into_iter()
        .next()
        .expect("seeded pod");
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    env.fake.insert(objects::crash_looping(pod.clone(), 6));
    env.fake.insert(objects::event(
        &pod,
        "Warning",
        "BackOff",
        "Back-off restarting failed container app",
    ));
    env.fake.insert(objects::event(
        &d,
        "Normal",
        "ScalingReplicaSet",
        "Scaled up replica set",
    ));

    let out = env
        .ok(
            "k8s.describe_resource",
            json!({"kind": "po", "name": name, "namespace": "shop"}),
        )
        .await;
    assert_eq!(out["status"], "CrashLoopBackOff");
    let c = &out["details"]["containers"][0];
    assert_eq!(c["restarts"], 6);
    assert_eq!(c["ready"], false);
    assert!(
        c["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("waiting: CrashLoopBackOff")),
        "{c}"
    );
    assert!(
        c["last_state"]
            .as_str()
            .is_some_and(|s| s.starts_with("terminated: Error (exit 1) 5m")),
        "{c}"
    );
    assert_eq!(out["details"]["node"], "node-1");
    assert!(
        out["owners"][0]
            .as_str()
            .is_some_and(|o| o.starts_with("ReplicaSet/web-")),
        "{out}"
    );
    assert_eq!(out["events"].as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(out["events"][0]["reason"], "BackOff");
    assert!(out["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "False")
    }));

    let out = env
        .ok(
            "k8s.describe_resource",
            json!({"kind": "deployment", "name": "web", "namespace": "shop"}),
        )
        .await;
    assert_eq!(out["details"]["replicas"]["desired"], 1);
    assert_eq!(out["details"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(out["details"]["images"], json!(["app=nginx:1.27"]));
    assert_eq!(out["events"][0]["reason"], "ScalingReplicaSet");
}

#[tokio::test]
async fn events_newest_first_and_filtered() {
    let env = Env::start().await;
    env.fake.insert(objects::pod("shop", "web-1"));
    env.fake.insert(objects::pod("shop", "web-2"));
    let p1 = env
        .fake
        .get("v1", "Pod", Some("shop"), "web-1")
        .expect("pod");
    let p2 = env
        .fake
        .get("v1", "Pod", Some("shop"), "web-2")
        .expect("pod");
    let mut old = objects::event(&p1, "Normal", "Pulled", "pulled image");
    old["lastTimestamp"] = json!("2020-01-01T00:00:00Z");
    env.fake.insert(old);
    env.fake.insert(objects::event(
        &p1,
        "Warning",
        "Unhealthy",
        "Readiness probe failed",
    ));
    env.fake
        .insert(objects::event(&p2, "Warning", "BackOff", "Back-off"));

    let out = env.ok("k8s.get_events", json!({"namespace": "shop"})).await;
    assert_eq!(out["total"], 3);
    assert_eq!(
        out["columns"],
        json!([
            "last_seen",
            "type",
            "reason",
            "object",
            "message",
            "count",
            "source"
        ]),
        "one namespace: no namespace column"
    );
    let mut reasons = column(&out, "reason");
    assert_eq!(reasons.len(), 3);
    reasons[..2].sort();
    assert_eq!(reasons[..2], ["BackOff", "Unhealthy"], "{out}");
    assert_eq!(column(&out, "reason")[2], "Pulled", "oldest last: {out}");
    assert!(out.get("events").is_none(), "rows only: {out}");
    let out = env.ok("k8s.get_events", json!({"type": "Warning"})).await;
    assert_eq!(out["total"], 2);
    assert_eq!(column(&out, "namespace"), vec!["shop", "shop"]);
    let out = env
        .ok(
            "k8s.get_events",
            json!({"namespace": "shop", "kind": "po", "name": "web-1", "type": "Warning"}),
        )
        .await;
    assert_eq!(out["rows"].as_array().map(Vec::len), Some(1));
    assert_eq!(column(&out, "object"), vec!["Pod/web-1"]);
    assert_eq!(column(&out, "message"), vec!["Readiness probe failed"]);
    assert_eq!(out["untrusted"], true, "event messages are marked: {out}");
    let out = env
        .ok("k8s.get_events", json!({"namespace": "shop", "limit": 1}))
        .await;
    assert_eq!(
        (out["total"].as_u64(), out["rows"].as_array().map(Vec::len)),
        (Some(3), Some(1))
    );
    let e = env
        .err("k8s.get_events", json!({"namespace": "nope"}))
        .await;
    assert!(
        e.message.starts_with("namespace 'nope' not found"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn exec_runs_commands_and_reports_exit_codes() {
    let env = Env::start().await;
    env.fake.insert(objects::pod("shop", "web-1"));
    let out = env
        .ok(
            "k8s.exec_command",
            json!({"pod": "web-1", "namespace": "shop", "command": ["echo", "hello", "world"]}),
        )
        .await;
    assert_eq!(out["exit_code"], 0);
    assert_eq!(out["stdout"], "hello world\n");
    assert_eq!(out["container"], "app");

    let out = env.ok("k8s.exec_command", json!({"pod": "web-1", "namespace": "shop", "command": ["sh", "-c", "cat /nope; exit 3"]})).await;
    assert_eq!(out["exit_code"], 3);
    assert_eq!(out["stderr"], "cat: /nope: No such file or directory\n");

    let before = env.fake.execs().len();
    let out = env.ok("k8s.exec_command", json!({"pod": "web-1", "namespace": "shop", "command": ["rm", "-rf", "/"], "dry_run": true})).await;
    assert_eq!(out["dry_run"], true);
    assert!(out.get("exit_code").is_none());
    assert_eq!(env.fake.execs().len(), before, "a dry run runs nothing");

    let e = env.err("k8s.exec_command", json!({"pod": "web-1", "namespace": "shop", "command": ["sleep", "5"], "timeout_seconds": 1})).await;
    assert_eq!(e.kind, ToolErrorKind::Timeout);

    env.fake.insert(two_container_pod("shop", "api-1"));
    let e = env
        .err(
            "k8s.exec_command",
            json!({"pod": "api-1", "namespace": "shop", "command": ["true"]}),
        )
        .await;
    assert!(e.message.contains("one of: app, proxy"), "{}", e.message);
}

#[tokio::test]
async fn apply_creates_configures_and_checks_every_document_first() {
    let env = Env::start().await;
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  mode: fast\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: api}}\n  template:\n    metadata: {labels: {app: api}}\n    spec:\n      containers: [{name: api, image: 'api:1'}]\n";

    let e = env
        .err(
            "k8s.apply_manifest",
            json!({"manifest": manifest, "namespace": "shop"}),
        )
        .await;
    assert_eq!(e.kind, ToolErrorKind::NotFound);
    assert!(
        e.message.starts_with(
            "configmap 'cfg' in namespace 'shop': namespace 'shop' not found; namespaces: default"
        ),
        "{}",
        e.message
    );
    env.fake.insert(objects::namespace("shop"));

    let out = env
        .ok(
            "k8s.apply_manifest",
            json!({"manifest": manifest, "namespace": "shop", "dry_run": true}),
        )
        .await;
    assert_eq!(out["dry_run"], true);
    assert_eq!(out["results"][0]["action"], "created");
    assert!(
        env.fake
            .get("v1", "ConfigMap", Some("shop"), "cfg")
            .is_none(),
        "dry run persists nothing"
    );

    let out = env
        .ok(
            "k8s.apply_manifest",
            json!({"manifest": manifest, "namespace": "shop"}),
        )
        .await;
    assert_eq!(out["failed"], 0);
    assert_eq!(out["results"][0]["action"], "created");
    assert_eq!(out["results"][1]["kind"], "Deployment");
    assert_eq!(out["results"][1]["namespace"], "shop");
    let cm = env
        .fake
        .get("v1", "ConfigMap", Some("shop"), "cfg")
        .expect("created");
    assert_eq!(cm["data"]["mode"], "fast");
    let reqs: Vec<_> = env
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert!(
        reqs.iter()
            .all(|r| r.query.contains("fieldManager=toolgate") && r.query.contains("force=true")),
        "{reqs:?}"
    );
    assert!(
        reqs.iter()
            .all(|r| r.content_type.as_deref() == Some("application/apply-patch+yaml")),
        "{reqs:?}"
    );

    let out = env
        .ok(
            "k8s.apply_manifest",
            json!({"manifest": manifest, "namespace": "shop"}),
        )
        .await;
    assert_eq!(out["results"][0]["action"], "unchanged", "{out}");
    let changed = manifest.replace("mode: fast", "mode: slow");
    let out = env
        .ok(
            "k8s.apply_manifest",
            json!({"manifest": changed, "namespace": "shop", "dry_run": true}),
        )
        .await;
    assert_eq!(out["results"][0]["action"], "configured", "{out}");
    assert_eq!(out["results"][1]["action"], "unchanged", "{out}");
    assert_eq!(
        env.fake
            .get("v1", "ConfigMap", Some("shop"), "cfg")
            .expect("cm")["data"]["mode"],
        "fast"
    );
    let out = env
        .ok(
            "k8s.apply_manifest",
            json!({"manifest": changed, "namespace": "shop"}),
        )
        .await;
    assert_eq!(out["results"][0]["action"], "configured");

    let bad = format!("{manifest}---\napiVersion: v1\nkind: Gadget\nmetadata: {{name: g}}\n");
    let patches = env.fake.count("PATCH", "/");
    let e = env
        .err(
            "k8s.apply_manifest",
            json!({"manifest": bad, "namespace": "lab"}),
        )
        .await;
    assert!(
        e.message
            .starts_with("document 3 (Gadget/g): kind 'Gadget' in 'v1' not found"),
        "{}",
        e.message
    );
    assert_eq!(
        env.fake.count("PATCH", "/"),
        patches,
        "nothing applied when a document is wrong"
    );

    let e = env.err("k8s.apply_manifest", json!({"manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: a}\n", "namespace": "b"})).await;
    assert!(e.message.contains("does not match"), "{}", e.message);
}

#[tokio::test]
async fn delete_with_propagation_and_dry_run() {
    let env = Env::start().await;
    env.fake.seed_deployment("shop", "web", 2);
    let out = env
        .ok(
            "k8s.delete_resource",
            json!({"kind": "deploy", "name": "web", "namespace": "shop", "dry_run": true}),
        )
        .await;
    assert_eq!(out["dry_run"], true);
    assert!(
        env.fake
            .get("apps/v1", "Deployment", Some("shop"), "web")
            .is_some()
    );

    let out = env.ok("k8s.delete_resource", json!({"kind": "deploy", "name": "web", "namespace": "shop", "propagation_policy": "Orphan"})).await;
    assert_eq!(out["dry_run"], false);
    assert!(
        out["status"] == "deleted" || out["status"] == "deleting",
        "{out}"
    );
    let del = env
        .fake
        .requests()
        .into_iter()
        .rfind(|r| r.method == "DELETE")
        .expect("a DELETE");
    assert!(
        del.body.contains("\"propagationPolicy\":\"Orphan\""),
        "{}",
        del.body
    );

    let e = env
        .err(
            "k8s.delete_resource",
            json!({"kind": "deploy", "name": "web", "namespace": "shop"}),
        )
        .await;
    assert_eq!(e.kind, ToolErrorKind::NotFound);
    let e = env
        .err(
            "k8s.delete_resource",
            json!({"kind": "deploy", "name": "web", "propagation_policy": "Sometimes"}),
        )
        .await;
    assert_eq!(e.kind, ToolErrorKind::InvalidArguments);
}

#[tokio::test]
async fn rollout_restart_stamps_the_pod_template_like_kubectl() {
    let env = Env::start().await;
    env.fake.seed_deployment("shop", "web", 2);
    env.fake.insert(objects::statefulset("shop", "db", 1));
    let annotation = "/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt";

    let out = env
        .ok(
            "k8s.rollout_restart",
            json!({"kind": "deploy", "name": "web", "namespace": "shop", "dry_run": true}),
        )
        .await;
    assert_eq!(out["dry_run"], true);
    let stored = env
        .fake
        .get("apps/v1", "Deployment", Some("shop"), "web")
        .expect("deployment");
    assert!(
        stored.pointer(annotation).is_none(),
        "dry run persists nothing"
    );

    let out = env
        .ok(
            "k8s.rollout_restart",
            json!({"kind": "deploy", "name": "web", "namespace": "shop"}),
        )
        .await;
    let at = out["restarted_at"].as_str().expect("timestamp").to_string();
    assert!(at.parse::<jiff::Timestamp>().is_ok(), "{at}");
    let stored = env
        .fake
        .get("apps/v1", "Deployment", Some("shop"), "web")
        .expect("deployment");
    assert_eq!(
        stored.pointer(annotation).and_then(Value::as_str),
        Some(at.as_str())
    );
    assert_eq!(
        out["object"].pointer(annotation).and_then(Value::as_str),
        Some(at.as_str())
    );

    let out = env
        .ok(
            "k8s.rollout_restart",
            json!({"kind": "sts", "name": "db", "namespace": "shop"}),
        )
        .await;
    assert_eq!(out["kind"], "StatefulSet");
    let e = env
        .err(
            "k8s.rollout_restart",
            json!({"kind": "cm", "name": "x", "namespace": "shop"}),
        )
        .await;
    assert!(e.message.contains("cannot be restarted"), "{}", e.message);
}

#[tokio::test]
async fn discovery_is_cached_per_cluster() {
    let env = Env::start().await;
    env.fake.insert(objects::pod("shop", "web-1"));
    for _ in 0..3 {
        env.ok(
            "k8s.get_resource",
            json!({"kind": "po", "name": "web-1", "namespace": "shop"}),
        )
        .await;
    }
    let _ = env
        .err("k8s.get_resource", json!({"kind": "gizmo", "name": "x"}))
        .await;
    // One discovery: the miss above does not refetch within 30 s of the last fetch.
    assert_eq!(env.fake.count("GET", "/apis/apps/v1"), 1);
}

#[tokio::test]
async fn tool_metadata_is_complete() {
    let tools = toolgate::tools::k8s::tools();
    let names: Vec<&str> = tools.iter().map(|t| t.spec().name).collect();
    assert_eq!(
        names,
        vec![
            "k8s.get_resource",
            "k8s.list_resources",
            "k8s.get_logs",
            "k8s.describe_resource",
            "k8s.get_events",
            "k8s.list_clusters",
            "k8s.exec_command",
            "k8s.apply_manifest",
            "k8s.delete_resource",
            "k8s.rollout_restart",
        ]
    );
    for t in &tools {
        let s = t.spec();
        assert!(
            !s.title.is_empty() && s.description.ends_with('.'),
            "{}",
            s.name
        );
        let read =
            s.name.contains(".get_") || s.name.contains(".list_") || s.name.contains(".describe_");
        assert_eq!(
            s.risk == toolgate::core::tool::Risk::Read,
            read,
            "{}",
            s.name
        );
        if !read {
            assert!(
                s.input_schema["properties"].get("dry_run").is_some(),
                "{} has dry_run",
                s.name
            );
        }
    }
    let budget = |n: &str| {
        tools
            .iter()
            .find(|t| t.spec().name == n)
            .and_then(|t| t.spec().budget)
            .map(|b| b.items_field)
    };
    assert_eq!(budget("k8s.list_resources"), Some("rows"));
    assert_eq!(budget("k8s.get_logs"), Some("lines"));
    assert_eq!(budget("k8s.get_events"), Some("rows"));
}

/// Names and namespaces that would reach other resources if put into a path as they are.
const HOSTILE_NAMES: &[&str] = &[
    "web-1/exec",
    "x/proxy/y",
    "../secrets/db",
    "a?b",
    "a#b",
    "%2e%2e",
];

#[tokio::test]
async fn hostile_names_never_leave_their_path_segment() {
    let env = Env::start().await;
    env.fake.insert(objects::pod("shop", "web-1"));
    env.fake.seed_deployment("shop", "web", 1);
    env.fake
        .insert(objects::secret("shop", "db", &[("password", "hunter2")]));
    let before = env.fake.requests().len();
    for name in HOSTILE_NAMES {
        let calls = [
            (
                "k8s.get_resource",
                json!({"kind": "pod", "name": name, "namespace": "shop"}),
            ),
            (
                "k8s.describe_resource",
                json!({"kind": "pod", "name": name, "namespace": "shop"}),
            ),
            ("k8s.get_logs", json!({"pod": name, "namespace": "shop"})),
            (
                "k8s.exec_command",
                json!({"pod": name, "namespace": "shop", "command": ["true"]}),
            ),
            (
                "k8s.delete_resource",
                json!({"kind": "pod", "name": name, "namespace": "shop", "dry_run": true}),
            ),
            (
                "k8s.rollout_restart",
                json!({"kind": "deploy", "name": name, "namespace": "shop", "dry_run": true}),
            ),
            (
                "k8s.list_resources",
                json!({"kind": "pods", "namespace": name}),
            ),
        ];
        for (tool, args) in calls {
            let e = env.err(tool, args.clone()).await;
            // A namespace is checked as a DNS-1123 label before any request; names are
            // checked by the core's settling step (not run here), and the adapter keeps them
            // one path segment whatever they hold.
            let expected = if args.get("namespace") == Some(&json!(name)) {
                ToolErrorKind::InvalidArguments
            } else {
                ToolErrorKind::NotFound
            };
            assert_eq!(e.kind, expected, "{tool} {args}: {e:?}");
            assert_no_secrets(tool, &json!(e.message));
        }
    }
    for bad in ["..", "."] {
        let e = env
            .err(
                "k8s.get_resource",
                json!({"kind": "pod", "name": bad, "namespace": "shop"}),
            )
            .await;
        assert_eq!(e.kind, ToolErrorKind::InvalidArguments);
        assert_eq!(
            e.message,
            format!("name '{bad}' cannot be used: Kubernetes names are never empty, '.' or '..'")
        );
    }
    let requests = env.fake.requests();
    assert!(requests.len() > before);
    for r in &requests[before..] {
        let segments: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
        assert!(
            !segments
                .iter()
                .any(|s| matches!(*s, "." | ".." | "proxy" | "secrets")),
            "{} {}",
            r.method,
            r.path
        );
        // At most an object's path (`/api/v1/namespaces/NS/pods/NAME`, `/apis/G/V/namespaces/NS/R/NAME`),
        // plus the tools' own pod subresources.
        let (object_len, sub) = if segments.first() == Some(&"apis") {
            (7, None)
        } else {
            (6, segments.get(6))
        };
        assert!(segments.len() <= object_len + 1, "{} {}", r.method, r.path);
        if segments.len() > object_len {
            assert!(
                matches!(sub, Some(&"log" | &"exec")),
                "{} {}",
                r.method,
                r.path
            );
        }
    }
}
