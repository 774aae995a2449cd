//! Who may do what over HTTP: the MCP authorization challenge (401 with resource metadata,
//! 403 without the caller permission), RFC 9728 metadata, and permissions granted to
//! identity-provider roles by the policy's `permissions:` map.

use serde_json::{Value, json};

use crate::gate::client_as;
use crate::harness::{self, CAROL, DAVE};
use crate::mcp::{call, seeded_fake};

async fn post_initialize(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = harness::http()
        .post(format!("{url}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("POST /mcp")
}

#[tokio::test]
async fn mcp_challenges_name_the_resource_metadata_and_refuse_missing_permissions() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "auth:\n  anonymous: false\n").await;

    let none = post_initialize(&tg.url, None).await;
    assert_eq!(none.status(), 401);
    let challenge = none.headers()["www-authenticate"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        challenge.starts_with("Bearer ")
            && challenge.contains(&format!(
                "resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
                tg.url
            )),
        "{challenge} vs {}",
        tg.url
    );

    let bad = post_initialize(&tg.url, Some("not-a-real-token-at-all")).await;
    assert_eq!(bad.status(), 401);
    assert!(
        bad.headers()["www-authenticate"]
            .to_str()
            .unwrap_or_default()
            .contains("invalid_token")
    );

    // Carol approves but does not call tools: a valid token without the permission is 403.
    let carol = post_initialize(&tg.url, Some(CAROL)).await;
    assert_eq!(carol.status(), 403);
    assert!(
        carol.headers()["www-authenticate"]
            .to_str()
            .unwrap_or_default()
            .contains("insufficient_scope")
    );

    let metadata: Value = harness::http()
        .get(format!("{}/.well-known/oauth-protected-resource", tg.url))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert_eq!(metadata["resource"], json!(format!("{}/mcp", tg.url)));
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
}

#[tokio::test]
async fn the_policy_maps_identity_provider_roles_to_permissions() {
    let fake = seeded_fake().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/policies/default.yaml"),
        dir.path().join("default.yaml"),
    )
    .expect("copy default policy");
    let without = harness::start(
        &fake,
        &format!("policies:\n  dir: {}\n", dir.path().display()),
    )
    .await;
    assert_eq!(
        post_initialize(&without.url, Some(DAVE)).await.status(),
        403,
        "sre-oncall grants nothing yet"
    );

    std::fs::write(
        dir.path().join("roles.yaml"),
        "permissions:\n  sre-oncall: [toolgate.caller, toolgate.approver]\n",
    )
    .expect("write mapping");
    let with = harness::start(
        &fake,
        &format!("policies:\n  dir: {}\n", dir.path().display()),
    )
    .await;
    let dave = client_as(&with.url, DAVE).await;
    let list = call(
        &dave,
        "k8s.list_resources",
        json!({"kind": "pods", "namespace": "shop"}),
    )
    .await;
    assert_ne!(list.is_error, Some(true), "mapped role calls read tools");
    dave.cancel().await.ok();

    // The same permission decides approvals: Dave may now approve someone else's request.
    let alice = client_as(&with.url, harness::ALICE).await;
    let held = call(
        &alice,
        "k8s.rollout_restart",
        json!({"kind": "deployment", "name": "web", "namespace": "shop"}),
    )
    .await;
    let id = held.structured_content.clone().expect("sc")["approval_id"]
        .as_str()
        .expect("id")
        .to_string();
    alice.cancel().await.ok();
    let (status, body) =
        crate::gate::decide(&with.url, DAVE, &id, "approve", Some("on call")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], json!("executed"));
}
