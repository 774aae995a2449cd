//! Hostile requests against a server in `auth.mode: zitadel` (real oidc-provider): each one is
//! refused, executes nothing, and leaves an audit record of the refusal — its only trace.

use serde_json::{Value, json};
use toolgate::store::Store;

use crate::zitadel::{
    INTROSPECTOR, INTROSPECTOR_SECRET, PROJECT, Provider, RESOURCE, b64, payload_of,
};

const MCP_ACCEPT: &str = "application/json, text/event-stream";

/// POST an MCP tools/call for a delete with the given extra headers; the status it got.
async fn mcp_delete(url: &str, headers: &[(&str, String)]) -> u16 {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/mcp"))
        .header("content-type", "application/json")
        .header("accept", MCP_ACCEPT)
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "k8s.delete_resource",
                "arguments": {"kind": "deployment", "name": "web", "namespace": "shop"}}})
            .to_string(),
        );
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    req.send().await.expect("POST /mcp").status().as_u16()
}

/// A hostile request: what it is, its headers, the status it must get.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, u16);

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

async fn refusals(store: &Store) -> usize {
    store
        .audit_tail(10_000)
        .await
        .expect("audit")
        .iter()
        .filter(|r| {
            ["unauthenticated", "forbidden", "decision_refused"]
                .contains(&r.entry.decision.as_str())
        })
        .count()
}

#[tokio::test]
async fn hostile_requests_are_refused_and_only_audited() {
    let mut provider = Provider::start().await;
    let fake = crate::mcp::seeded_fake().await;
    let extra = format!(
        "auth:\n  mode: zitadel\n  issuer: {}\n  project_id: \"{PROJECT}\"\n  audiences: [\"{PROJECT}\"]\n  introspection_client_id: \"{INTROSPECTOR}\"\n  introspection_client_secret: \"{INTROSPECTOR_SECRET}\"\n",
        provider.issuer
    );
    let tg = crate::harness::start(&fake, &extra).await;
    let store = Store::connect(&tg.store_url).await.expect("store");

    let genuine = provider.token("ci-bot", RESOURCE).await;
    let claims = payload_of(&genuine);
    let parts: Vec<&str> = genuine.split('.').collect();
    let jwks: Value = provider
        .http
        .get(format!("{}/jwks", provider.issuer))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks JSON");
    let kid = jwks["keys"][0]["kid"]
        .as_str()
        .unwrap_or("rsa-1")
        .to_string();
    let modulus = jwks["keys"][0]["n"].as_str().expect("n").to_string();

    let mut hs_confusion = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_confusion.kid = Some(kid.clone());
    let forged_hs = jsonwebtoken::encode(
        &hs_confusion,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(modulus.as_bytes()),
    )
    .expect("forge");
    let alg_none = format!(
        "{}.{}.",
        b64(format!(r#"{{"alg":"none","kid":"{kid}"}}"#).as_bytes()),
        parts[1]
    );
    let mut escalated = claims.clone();
    escalated["sub"] = json!("admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(escalated.to_string().as_bytes()),
        parts[2]
    );
    let unknown_kid = format!(
        "{}.{}.{}",
        b64(format!(r#"{{"alg":"RS256","kid":"nope-{kid}"}}"#).as_bytes()),
        parts[1],
        parts[2]
    );
    let truncated = genuine[..genuine.len() - 10].to_string();
    let expired = provider.token_at(-7200, "ci-bot").await;
    let future = provider.token_at(7200, "ci-bot").await;
    let wrong_audience = provider
        .token("ci-bot", "urn:zitadel:iam:org:project:id:999999:aud")
        .await;
    let other_project_roles = provider.token("other-bot", RESOURCE).await;
    let no_roles = provider.token("es-bot", RESOURCE).await;
    let ps256 = provider.token("ps-bot", RESOURCE).await;
    let hs256 = provider.token("hs-bot", RESOURCE).await;
    let revoked = provider.token("opaque-bot", RESOURCE).await;
    provider.revoke("opaque-bot", &revoked).await;
    let huge = "a".repeat(40_000);

    let before = refusals(&store).await;
    let cases: Vec<Case> = vec![
        ("alg none", bearer(&alg_none), 401),
        (
            "HS256 signed with the RSA public key",
            bearer(&forged_hs),
            401,
        ),
        ("HS256 token from the provider", bearer(&hs256), 401),
        ("PS256 where the key says RS256", bearer(&ps256), 401),
        ("expired", bearer(&expired), 401),
        ("iat/nbf in the future", bearer(&future), 401),
        ("wrong audience", bearer(&wrong_audience), 401),
        ("unknown kid", bearer(&unknown_kid), 401),
        ("tampered payload", bearer(&tampered), 401),
        ("truncated token", bearer(&truncated), 401),
        (
            "roles of another project",
            bearer(&other_project_roles),
            403,
        ),
        ("no role at all", bearer(&no_roles), 403),
        (
            "revoked opaque token (introspection inactive)",
            bearer(&revoked),
            401,
        ),
        (
            "random opaque token",
            bearer("b2gx9q7ZrR0mN3pL5tYw8vK1cD4fH6jS"),
            401,
        ),
        ("oversized token", bearer(&huge), 401),
        (
            "Basic scheme with a valid token",
            vec![("authorization", format!("Basic {genuine}"))],
            401,
        ),
        (
            "token smuggled in X-Forwarded-User",
            vec![("x-forwarded-user", "admin".into())],
            401,
        ),
        (
            "identity in X-Remote-User and X-Auth-Request-User",
            vec![
                ("x-remote-user", "admin".into()),
                ("x-auth-request-user", "admin".into()),
            ],
            401,
        ),
        (
            "token in a cookie",
            vec![("cookie", format!("access_token={genuine}"))],
            401,
        ),
        (
            "empty bearer",
            vec![("authorization", "Bearer ".into())],
            401,
        ),
        (
            "Origin from another site",
            [
                bearer(&genuine),
                vec![("origin", "https://evil.example".into())],
            ]
            .concat(),
            403,
        ),
    ];
    let mut audited_refusals = 0;
    for (name, headers, expected) in &cases {
        let status = mcp_delete(&tg.url, headers).await;
        assert_eq!(status, *expected, "{name}");
        // Requests without any credential are challenges, not refusals, and the Origin check
        // happens in the MCP layer after authentication.
        let has_credential = headers.iter().any(|(k, v)| {
            *k == "authorization" && v.starts_with("Bearer ") && v.trim() != "Bearer"
        });
        if has_credential && !name.starts_with("Origin") {
            audited_refusals += 1;
        }
    }
    // The token in the query string is not a bearer method toolgate accepts.
    let query = reqwest::Client::new()
        .post(format!("{}/mcp?access_token={genuine}", tg.url))
        .header("content-type", "application/json")
        .header("accept", MCP_ACCEPT)
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(query.status(), 401, "access_token in the query");

    // Approval abuse: a caller approving, an approver approving its own request, a replay.
    let caller = provider.token("array-bot", RESOURCE).await;
    let id = crate::gate::request_restart(&tg.url, &caller).await;
    let (status, _) = crate::gate::decide(&tg.url, &caller, &id, "approve", Some("me")).await;
    assert_eq!(status, 403, "caller without the approver role");
    let approver_client = crate::gate::client_as(&tg.url, &genuine).await;
    let own = crate::mcp::call(
        &approver_client,
        "k8s.rollout_restart",
        json!({"kind": "deployment", "name": "web", "namespace": "shop"}),
    )
    .await;
    let own_id = own.structured_content.clone().expect("sc")["approval_id"]
        .as_str()
        .expect("id")
        .to_string();
    approver_client.cancel().await.ok();
    let (status, _) =
        crate::gate::decide(&tg.url, &genuine, &own_id, "approve", Some("mine")).await;
    assert_eq!(status, 403, "self-approval");
    audited_refusals += 2;
    let (status, body) = crate::gate::decide(&tg.url, &genuine, &id, "approve", Some("ok")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = crate::gate::decide(&tg.url, &genuine, &id, "approve", Some("again")).await;
    assert_eq!(status, 409, "a replayed decision is refused as a conflict");
    let (status, _) =
        crate::gate::decide(&tg.url, &tampered, &own_id, "approve", Some("forged")).await;
    assert_eq!(status, 401, "a forged token on the REST API");
    audited_refusals += 1;

    // Nothing but the one approved restart reached the cluster.
    let real_writes: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| ["POST", "PUT", "PATCH", "DELETE"].contains(&r.method.as_str()))
        .filter(|r| !r.query.contains("dryRun") && !r.body.contains("\"dryRun\":[\"All\"]"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(real_writes.len(), 1, "{real_writes:?}");
    assert!(real_writes[0].contains("/deployments/web"));
    assert!(
        fake.get("apps/v1", "Deployment", Some("shop"), "web")
            .is_some(),
        "the delete never ran"
    );

    let after = refusals(&store).await;
    assert!(
        after - before >= audited_refusals,
        "each refused credential left an audit record ({} < {audited_refusals})",
        after - before
    );
    let tail = store.audit_tail(10_000).await.expect("audit");
    let text = serde_json::to_string(&tail).expect("json");
    assert!(
        !text.contains(&genuine) && !text.contains(&tampered),
        "no token material in the audit log"
    );
    // The end-to-end flow records both subjects: the caller's request, the approver's decision.
    let trail: Vec<(String, String)> = tail
        .iter()
        .filter(|r| r.entry.approval_id.as_deref() == Some(id.as_str()))
        .map(|r| (r.entry.decision.clone(), r.entry.principal_sub.clone()))
        .collect();
    assert!(
        trail.contains(&("approval_requested".into(), "array-bot".into())),
        "{trail:?}"
    );
    assert!(
        trail.contains(&("approved".into(), "ci-bot".into())),
        "{trail:?}"
    );

    // The identity provider goes down: an unchecked token is never accepted (503, fail closed).
    let fresh_opaque = provider.token("opaque-bot", RESOURCE).await;
    provider.stop().await;
    let status = mcp_delete(&tg.url, &bearer(&fresh_opaque)).await;
    assert_eq!(status, 503, "introspection endpoint down");
    assert_eq!(
        cases.len() + 7,
        28,
        "the number of hostile cases this test covers"
    );
}
