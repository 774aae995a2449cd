//! Policy judges what will run, not what was typed: over MCP against the running server, every
//! spelling of a protected target that the tools would settle to the canonical one needs the
//! approvals the canonical spelling needs, or is refused with an error naming the field; the
//! fake API server records that nothing was written.

use serde_json::{Value, json};

use crate::approvals_api::mcp_as;
use crate::fake_kube::{FakeKube, objects};
use crate::gate::get_approval;
use crate::harness::{self, ALICE, BOB};
use crate::mcp::{call, text_of};

/// A cluster with namespaces `shop` and `prod-eu`, a running pod `web-1` in each.
async fn cluster() -> FakeKube {
    let fake = FakeKube::start().await;
    for ns in ["shop", "prod-eu"] {
        fake.insert(objects::pod(ns, "web-1"));
    }
    fake
}

/// Requests that changed something (not reads, not dry runs: `dryRun` in the query, or in
/// a delete's options body).
fn writes(fake: &FakeKube) -> Vec<String> {
    fake.requests()
        .iter()
        .filter(|r| r.method != "GET" && !r.query.contains("dryRun") && !r.body.contains("dryRun"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// The call was held: its approval id and how many approvals it needs.
fn held(result: &rmcp::model::CallToolResult, what: &str) -> (String, u64) {
    let sc = result
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("{what}: no structured answer: {}", text_of(result)));
    assert_eq!(sc["status"], "approval_required", "{what}: {sc}");
    (
        sc["approval_id"].as_str().expect("approval_id").to_string(),
        sc["required_approvals"]
            .as_u64()
            .expect("required_approvals"),
    )
}

#[tokio::test]
async fn a_protected_namespace_spelled_otherwise_is_refused_naming_the_field() {
    let fake = cluster().await;
    let tg = harness::start(&fake, "").await;
    let alice = mcp_as(&tg.url, ALICE).await;

    // The canonical spelling needs two approvals (delete in prod*).
    let canonical = call(
        &alice,
        "k8s.delete_resource",
        json!({"kind": "pod", "name": "web-1", "namespace": "prod-eu"}),
    )
    .await;
    assert_eq!(held(&canonical, "canonical").1, 2);

    for ns in [
        " prod-eu",
        "prod-eu ",
        "prod-eu\t",
        "prod-eu/x",
        "prod-eu?x",
        "prod-eu/../shop",
        "PROD-EU",
        "prod-eu.",
    ] {
        for (tool, args) in [
            (
                "k8s.delete_resource",
                json!({"kind": "pod", "name": "web-1", "namespace": ns}),
            ),
            (
                "k8s.exec_command",
                json!({"pod": "web-1", "namespace": ns, "command": ["true"]}),
            ),
            (
                "k8s.get_resource",
                json!({"kind": "pod", "name": "web-1", "namespace": ns}),
            ),
        ] {
            let result = call(&alice, tool, args.clone()).await;
            let text = text_of(&result);
            assert_eq!(result.is_error, Some(true), "{tool} {args}: {text}");
            assert!(
                text.contains("argument `namespace`") && text.contains("DNS-1123 label"),
                "{tool} {args}: {text}"
            );
        }
    }
    // Names too: checked as the API server checks names of the resolved kind.
    for name in ["web-1/exec", "../secrets/db", "web-1?x", " web-1", "Web-1"] {
        let result = call(
            &alice,
            "k8s.delete_resource",
            json!({"kind": "pod", "name": name, "namespace": "shop"}),
        )
        .await;
        let text = text_of(&result);
        assert_eq!(result.is_error, Some(true), "{name}: {text}");
        assert!(text.contains("argument `name`"), "{name}: {text}");
    }
    assert_eq!(writes(&fake), Vec::<String>::new());
}

#[tokio::test]
async fn every_spelling_of_the_namespace_kind_is_judged_as_a_namespace_delete() {
    let fake = cluster().await;
    let tg = harness::start(&fake, "").await;
    let alice = mcp_as(&tg.url, ALICE).await;
    for kind in [
        "Namespace",
        "namespace.",
        " Namespace",
        "Namespace ",
        "NAMESPACES",
        "ns",
        "namespaces.v1.",
    ] {
        // A namespace argument for a cluster-scoped kind is ignored, as kubectl does: the call
        // is judged as cluster-scoped, not as one in `shop`.
        let result = call(
            &alice,
            "k8s.delete_resource",
            json!({"kind": kind, "name": "shop", "namespace": "shop"}),
        )
        .await;
        let (id, approvals) = held(&result, kind);
        assert_eq!(
            approvals, 2,
            "{kind:?} must be judged as deleting a namespace"
        );
        let approval = get_approval(&tg.url, BOB, &id).await;
        assert_eq!(
            approval["target"],
            json!({"cluster": "fake", "kind": "Namespace", "api_version": "v1", "name": "shop"}),
            "{kind:?}: {approval}"
        );
        // What runs once approved is the settled call, not the spelling.
        assert_eq!(approval["args"]["kind"], "Namespace", "{approval}");
        assert_eq!(approval["args"]["api_version"], "v1", "{approval}");
        assert!(approval["args"].get("namespace").is_none(), "{approval}");
    }
    assert_eq!(writes(&fake), Vec::<String>::new());
}

#[tokio::test]
async fn an_omitted_or_empty_namespace_is_judged_as_the_contexts_namespace() {
    let fake = cluster().await;
    // The kubeconfig context's namespace is a protected one.
    let kubeconfig = std::fs::read_to_string(&fake.kubeconfig).expect("kubeconfig");
    std::fs::write(
        &fake.kubeconfig,
        kubeconfig.replace("namespace: default", "namespace: prod-eu"),
    )
    .expect("rewrite kubeconfig");
    let tg = harness::start(&fake, "").await;
    let alice = mcp_as(&tg.url, ALICE).await;
    for args in [
        json!({"kind": "pod", "name": "web-1"}),
        json!({"kind": "pod", "name": "web-1", "namespace": ""}),
    ] {
        let result = call(&alice, "k8s.delete_resource", args.clone()).await;
        let (id, approvals) = held(&result, &args.to_string());
        assert_eq!(approvals, 2, "{args}");
        let approval = get_approval(&tg.url, BOB, &id).await;
        assert_eq!(approval["target"]["namespace"], "prod-eu", "{approval}");
        assert_eq!(approval["args"]["namespace"], "prod-eu", "{approval}");
        assert_eq!(approval["args"]["cluster"], "fake", "{approval}");
    }
    assert_eq!(writes(&fake), Vec::<String>::new());
}

#[tokio::test]
async fn a_manifest_is_judged_on_every_namespace_it_touches() {
    let fake = cluster().await;
    // A rule on the list of namespaces: applying anything into prod* needs two approvals.
    let dir = tempfile::tempdir().expect("tempdir");
    let default = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/default.yaml"
    ))
    .expect("default policy");
    std::fs::write(
        dir.path().join("default.yaml"),
        default
            + r#"
  - name: apply-into-prod
    tools: [k8s.apply_manifest]
    roles: [toolgate.caller]
    when: 'target.namespaces.exists(n, n.startsWith("prod"))'
    effect:
      require_approval:
        approvals: 2
        approver_roles: [toolgate.approver]
        ttl: 1h
"#,
    )
    .expect("policy");
    let tg = harness::start(
        &fake,
        &format!("policies:\n  dir: {}\n", dir.path().display()),
    )
    .await;
    let alice = mcp_as(&tg.url, ALICE).await;
    let manifest = "apiVersion: v1\nkind: configmap\nmetadata: {name: a, namespace: shop}\ndata: {k: v}\n\
                    ---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: prod-eu}\ndata: {k: v}\n";
    let result = call(&alice, "k8s.apply_manifest", json!({"manifest": manifest})).await;
    let (id, approvals) = held(&result, "two documents");
    assert_eq!(approvals, 2);
    let approval = get_approval(&tg.url, BOB, &id).await;
    let target = &approval["target"];
    assert_eq!(
        target["namespaces"],
        json!(["prod-eu", "shop"]),
        "{approval}"
    );
    assert!(target.get("namespace").is_none(), "{approval}");
    assert_eq!(target["kind"], "ConfigMap", "{approval}");
    // One document in shop only: one approval.
    let shop_only =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: shop}\ndata: {k: v}\n";
    let result = call(&alice, "k8s.apply_manifest", json!({"manifest": shop_only})).await;
    let (id, approvals) = held(&result, "shop only");
    assert_eq!(approvals, 1);
    let approval = get_approval(&tg.url, BOB, &id).await;
    assert_eq!(
        approval["target"],
        json!({"cluster": "fake", "namespace": "shop", "namespaces": ["shop"],
               "kind": "ConfigMap", "api_version": "v1", "name": "a"}),
        "{approval}"
    );
    // A document name the API server would refuse is refused before policy.
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: A_b, namespace: shop}\n";
    let result = call(&alice, "k8s.apply_manifest", json!({"manifest": bad})).await;
    let text = text_of(&result);
    assert_eq!(result.is_error, Some(true), "{text}");
    assert!(
        text.contains("document 1") && text.contains("argument `metadata.name`"),
        "{text}"
    );
    assert_eq!(writes(&fake), Vec::<String>::new());
}

/// An approved call is settled again when it runs; the settled arguments it stored run as
/// they are, on the approved target.
#[tokio::test]
async fn the_approved_call_runs_the_settled_arguments() {
    let fake = cluster().await;
    let tg = harness::start(&fake, "").await;
    let alice = mcp_as(&tg.url, ALICE).await;
    let result = call(
        &alice,
        "k8s.delete_resource",
        json!({"kind": "po", "name": "web-1", "namespace": "shop"}),
    )
    .await;
    let (id, approvals) = held(&result, "delete shop/web-1");
    assert_eq!(approvals, 1);
    let (status, body) = crate::gate::decide(&tg.url, BOB, &id, "approve", None).await;
    assert_eq!(status, 200, "{body}");
    let mut state = Value::Null;
    for _ in 0..100 {
        state = get_approval(&tg.url, BOB, &id).await;
        if state["state"] == "executed" || state["state"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(state["state"], "executed", "{state}");
    assert_eq!(
        writes(&fake),
        vec!["DELETE /api/v1/namespaces/shop/pods/web-1".to_string()]
    );
}

/// `toolgate policy explain` shows what a real call would be judged on: the settled target.
#[tokio::test]
async fn policy_explain_shows_the_resolved_target() {
    let fake = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("toolgate.yaml");
    std::fs::write(&config, harness::config_yaml(&fake, dir.path(), "")).expect("config");
    let explain = |args: &str, extra: &[&str]| {
        let config = config.clone();
        let args = args.to_string();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
                    .args(["policy", "explain", "--config"])
                    .arg(&config)
                    .args([
                        "--tool",
                        "k8s.delete_resource",
                        "--roles",
                        "toolgate.caller",
                    ])
                    .args(["--args", &args])
                    .args(&extra)
                    .env_remove("TOOLGATE_CONFIG")
                    .output()
                    .expect("run toolgate")
            })
            .await
            .expect("join")
        }
    };
    let out = explain(
        r#"{"kind": "namespace.", "name": "shop", "namespace": "shop"}"#,
        &[],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("cluster=fake kind=Namespace (v1) name=shop"),
        "{text}"
    );
    assert!(text.contains("default.yaml#delete-namespace"), "{text}");
    // As typed, the same spelling is not recognized: the reason policy must see settled calls.
    let out = explain(
        r#"{"kind": "namespace.", "name": "shop", "namespace": "shop"}"#,
        &["--as-typed"],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("as typed"), "{text}");
    assert!(
        !text.contains("rule:     default.yaml#delete-namespace"),
        "{text}"
    );
    // A call that cannot be settled is refused before policy, and explain says so.
    let out = explain(
        r#"{"kind": "pod", "name": "web-1", "namespace": "prod eu"}"#,
        &[],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("refused before policy") && text.contains("argument `namespace`"),
        "{text}"
    );
}

/// A Secret spelled as discovery would still read it (` Secret`, `secrets.`, `secrets.v1.`)
/// is redacted wherever the call shows up: the held answer, the approval's stored arguments
/// and its dry-run preview.
#[tokio::test]
async fn a_secret_spelled_otherwise_never_shows_its_values() {
    use base64::Engine;
    let fake = cluster().await;
    let tg = harness::start(&fake, "").await;
    let alice = mcp_as(&tg.url, ALICE).await;
    let value = "sk_live_resolved_0123456789";
    let encoded = base64::engine::general_purpose::STANDARD.encode(value);
    for kind in [" Secret", "secrets.", "secrets.v1.", "Secret."] {
        let manifest = format!(
            "apiVersion: v1\nkind: \"{kind}\"\nmetadata: {{name: api, namespace: shop}}\nstringData: {{token: {value}}}\n"
        );
        let result = call(&alice, "k8s.apply_manifest", json!({"manifest": manifest})).await;
        let answer = serde_json::to_string(&result).expect("answer");
        let (id, _) = held(&result, kind);
        let approval = get_approval(&tg.url, BOB, &id).await.to_string();
        for (what, text) in [("answer", &answer), ("approval", &approval)] {
            assert!(
                !text.contains(value) && !text.contains(&encoded),
                "{kind:?}: the {what} shows the Secret's value: {text}"
            );
        }
        assert!(approval.contains("Secret"), "{approval}");
    }
    assert_eq!(writes(&fake), Vec::<String>::new());
}
