//! Inbound token verification (`auth.mode: zitadel`) against a real OpenID provider: npm
//! `oidc-provider` run by `tests/oidc/provider.mjs`, issuing JWT access tokens (resource
//! indicators) with Zitadel-shaped role claims, opaque tokens checked by introspection, and
//! key rotation on demand.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tempfile::TempDir;
use toolgate::auth::zitadel::{IntrospectionAuth, VerifyError, ZitadelConfig, ZitadelVerifier};
use toolgate::auth::{AuthError, Authenticator};
use toolgate::config::Credential;

pub(crate) const PROJECT: &str = "306810123456789012";
pub(crate) const ORG: &str = "306810000000000001";
/// Zitadel puts the project id into `aud`; that is the accepted audience here too.
pub(crate) const AUD: &str = PROJECT;
/// The resource indicator the provider turns into `aud: PROJECT` (Zitadel's audience scope).
pub(crate) const RESOURCE: &str = "urn:zitadel:iam:org:project:id:306810123456789012:aud";
pub(crate) const INTROSPECTOR: &str = "toolgate-api@toolgate";
pub(crate) const INTROSPECTOR_SECRET: &str = "introspector-secret-0123456789";

fn roles_claim() -> String {
    format!("urn:zitadel:iam:org:project:{PROJECT}:roles")
}

/// Clients of the test provider: id, secret, and how its tokens look.
fn provider_config(key_file: &std::path::Path) -> Value {
    let project_roles = json!({
        "toolgate.approver": {ORG: "acme.example"},
        "toolgate.caller": {ORG: "acme.example"}
    });
    json!({
        "clients": [
            {"client_id": "ci-bot", "client_secret": "ci-bot-secret-0123456789",
             "claims": {(roles_claim()): project_roles, "preferred_username": "ci-bot@acme.example"}},
            {"client_id": "array-bot", "client_secret": "array-bot-secret-0123456789",
             "claims": {(roles_claim()): [{"toolgate.caller": {ORG: "acme.example"}}]}},
            {"client_id": "es-bot", "client_secret": "es-bot-secret-0123456789", "alg": "ES256"},
            {"client_id": "other-bot", "client_secret": "other-bot-secret-0123456789",
             "claims": {"urn:zitadel:iam:org:project:999999:roles": {"toolgate.approver": {ORG: "acme.example"}, "toolgate.caller": {ORG: "acme.example"}}}},
            {"client_id": "ed-bot", "client_secret": "ed-bot-secret-0123456789", "alg": "EdDSA"},
            {"client_id": "ps-bot", "client_secret": "ps-bot-secret-0123456789", "alg": "PS256"},
            {"client_id": "hs-bot", "client_secret": "hs-bot-secret-0123456789", "alg": "HS256"},
            {"client_id": "opaque-bot", "client_secret": "opaque-bot-secret-0123456789", "format": "opaque",
             "claims": {(roles_claim()): {"toolgate.caller": {ORG: "acme.example"}}, "username": "opaque-bot@acme.example"}}
        ],
        "introspectors": [{"client_id": INTROSPECTOR, "client_secret": INTROSPECTOR_SECRET}],
        "keyFileIntrospectors": [{"client_id": "toolgate-key-app", "key_file": key_file}]
    })
}

/// `tests/oidc/provider.mjs` on 127.0.0.1, killed on drop.
pub(crate) struct Provider {
    pub(crate) issuer: String,
    child: Option<tokio::process::Child>,
    /// The API-app key file the provider wrote (private-key JWT introspection).
    key_file: PathBuf,
    pub(crate) http: reqwest::Client,
    _dir: TempDir,
}

impl Provider {
    pub(crate) async fn start() -> Self {
        Self::start_with(provider_config).await
    }

    /// Start the provider with the clients `config` describes (given the path where the
    /// provider writes its API-app key file).
    pub(crate) async fn start_with(config: impl FnOnce(&std::path::Path) -> Value) -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        toolgate::app::init_crypto();
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        assert!(
            repo.join("node_modules/oidc-provider").exists(),
            "this test needs node and the npm package oidc-provider: run `npm ci` in {}",
            repo.display()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let key_file = dir.path().join("api-app-key.json");
        let mut child = tokio::process::Command::new("node")
            .arg(repo.join("tests/oidc/provider.mjs"))
            .arg("0")
            .current_dir(&repo)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(config(&key_file).to_string().as_bytes())
            .await
            .expect("write provider config");
        drop(stdin);
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the provider listens within 30 s")
            .expect("read provider stdout")
            .expect("the provider printed its issuer");
        let ready: Value = serde_json::from_str(&line).expect("issuer line is JSON");
        let issuer = ready["issuer"].as_str().expect("issuer").to_string();
        let http = reqwest::Client::new();
        // Ready means discovery answers.
        let discovery = format!("{issuer}/.well-known/openid-configuration");
        let mut up = false;
        for _ in 0..100 {
            if http
                .get(&discovery)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(up, "discovery never answered at {discovery}");
        Self {
            issuer,
            child: Some(child),
            key_file,
            http,
            _dir: dir,
        }
    }

    /// A client_credentials token for `resource` (RFC 8707); `RESOURCE` gives `aud: PROJECT`.
    pub(crate) async fn token(&self, client: &str, resource: &str) -> String {
        let response = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth(client, Some(format!("{client}-secret-0123456789")))
            .form(&[("grant_type", "client_credentials"), ("resource", resource)])
            .send()
            .await
            .expect("token request");
        let status = response.status();
        let body: Value = response.json().await.expect("token JSON");
        assert!(status.is_success(), "token for {client}: {status} {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub(crate) async fn revoke(&self, client: &str, token: &str) {
        let status = self
            .http
            .post(format!("{}/token/revocation", self.issuer))
            .basic_auth(client, Some(format!("{client}-secret-0123456789")))
            .form(&[("token", token)])
            .send()
            .await
            .expect("revocation")
            .status();
        assert!(status.is_success(), "revocation: {status}");
    }

    pub(crate) async fn admin(&self, path: &str) -> Value {
        self.http
            .post(format!("{}{path}", self.issuer))
            .send()
            .await
            .expect("admin call")
            .json()
            .await
            .expect("admin JSON")
    }

    /// A JWT the issuer's current key signed, with `header` and `claims` on top of the defaults
    /// (RS256 with the key's kid; iss, sub, iat, exp): what a hostile or broken token service
    /// with the real key could issue.
    pub(crate) async fn forge(&self, header: Value, claims: Value) -> String {
        let answer: Value = self
            .http
            .post(format!("{}/__forge", self.issuer))
            .json(&json!({"header": header, "claims": claims}))
            .send()
            .await
            .expect("forge call")
            .json()
            .await
            .expect("forge JSON");
        answer["token"].as_str().expect("token").to_string()
    }

    pub(crate) async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/__stats", self.issuer))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON")
    }

    async fn jwks_requests(&self) -> u64 {
        self.stats().await["jwks"].as_u64().expect("jwks count")
    }

    pub(crate) async fn introspections(&self) -> u64 {
        self.stats().await["introspection"]
            .as_u64()
            .expect("introspection count")
    }

    /// A token issued while the provider's clock is shifted by `offset` seconds.
    pub(crate) async fn token_at(&self, offset: i64, client: &str) -> String {
        self.admin(&format!("/__clock?offset={offset}")).await;
        let token = self.token(client, RESOURCE).await;
        self.admin("/__clock?offset=0").await;
        token
    }

    /// From now on every request to the issuer (discovery, JWKS, token, introspection) is
    /// answered with HTTP `status`, as in an outage; 0 ends it.
    pub(crate) async fn fail_every_request_with(&self, status: u16) {
        let answer = self.admin(&format!("/__fail?status={status}")).await;
        assert_eq!(answer["status"], status, "{answer}");
    }

    pub(crate) async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill provider");
        }
    }

    fn verifier(&self, introspection: Option<IntrospectionAuth>) -> ZitadelVerifier {
        ZitadelVerifier::new(ZitadelConfig {
            issuer: self.issuer.clone(),
            project_id: PROJECT.into(),
            audiences: vec![AUD.into()],
            introspection,
            timeout: Duration::from_secs(2),
            trust_generic_roles_claim: false,
            negative_cache: Duration::from_secs(60),
        })
        .expect("verifier config")
    }
}

fn basic() -> Option<IntrospectionAuth> {
    Some(IntrospectionAuth::Basic {
        client_id: INTROSPECTOR.into(),
        client_secret: Credential::inline(INTROSPECTOR_SECRET),
    })
}

#[track_caller]
fn assert_invalid(result: Result<impl std::fmt::Debug, VerifyError>, why: &str, token: &str) {
    match result {
        Err(VerifyError::Invalid(m)) => {
            assert!(m.contains(why), "expected `{why}` in: {m}");
            assert!(!m.contains(token), "the error quotes the token: {m}");
        }
        other => panic!("expected Invalid({why}), got {other:?}"),
    }
}

#[track_caller]
fn assert_unavailable(result: Result<impl std::fmt::Debug, VerifyError>, token: &str) {
    match result {
        Err(VerifyError::Unavailable(m)) => {
            assert!(!m.contains(token), "the error quotes the token: {m}");
            assert!(
                !m.contains(INTROSPECTOR_SECRET),
                "the error has the secret: {m}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn payload_of(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("payload part");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url payload");
    serde_json::from_slice(&raw).expect("JSON payload")
}

#[tokio::test]
async fn jwt_access_tokens_are_verified_with_the_issuers_keys() {
    let provider = Provider::start().await;
    let v = provider.verifier(None);

    // Project role claim, object form → roles, org ids; name from preferred_username.
    let token = provider.token("ci-bot", RESOURCE).await;
    let verified = v.verify(&token).await.expect("valid RS256 token");
    assert_eq!(verified.principal.sub, "ci-bot");
    assert_eq!(verified.principal.name, "ci-bot@acme.example");
    assert_eq!(
        verified.principal.roles,
        vec!["toolgate.approver", "toolgate.caller"]
    );
    assert_eq!(verified.org_ids, vec![ORG]);
    assert_eq!(
        verified.principal.org, ORG,
        "the org reaches policy conditions as principal.org"
    );
    assert_eq!(
        v.verify_token(&token).await.expect("same token"),
        verified.principal
    );

    // Generic claim, array-wrapped form.
    let token = provider.token("array-bot", RESOURCE).await;
    let p = v.verify_token(&token).await.expect("valid token");
    assert_eq!(
        (p.sub.as_str(), p.roles),
        ("array-bot", vec!["toolgate.caller".to_string()])
    );

    // The other accepted algorithms, each with its own key type.
    for client in ["es-bot", "ed-bot"] {
        let token = provider.token(client, RESOURCE).await;
        let p = v
            .verify_token(&token)
            .await
            .unwrap_or_else(|e| panic!("{client}: {e}"));
        assert_eq!(p.sub, client);
        assert!(p.roles.is_empty());
    }

    // Wrong audience.
    let token = provider.token("ci-bot", "urn:someone-else:api").await;
    assert_invalid(v.verify(&token).await, "audience", &token);

    // PS256 signed by the provider with its real RSA key: the key says RS256, so no.
    let token = provider.token("ps-bot", RESOURCE).await;
    assert_invalid(v.verify(&token).await, "not accepted", &token);

    // HS256 signed by the provider (a shared secret, no kid).
    let token = provider.token("hs-bot", RESOURCE).await;
    assert_invalid(v.verify(&token).await, "not accepted", &token);

    // Algorithm confusion: HS256 "signed" with the public RSA key, naming its kid.
    let genuine = provider.token("ci-bot", RESOURCE).await;
    let claims = payload_of(&genuine);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let jwks: Value = provider
        .http
        .get(format!("{}/jwks", provider.issuer))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks JSON");
    let modulus = jwks["keys"][0]["n"].as_str().expect("n").to_string();
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(modulus.as_bytes()),
    )
    .expect("forge");
    assert_invalid(v.verify(&forged).await, "not accepted", &forged);

    // `alg: none` with the real kid and genuine claims.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","kid":"rsa-1"}"#),
        genuine.split('.').nth(1).expect("payload")
    );
    assert_invalid(v.verify(&none).await, "never accepted", &none);

    // Genuine header and signature, edited claims.
    let mut parts: Vec<String> = genuine.split('.').map(str::to_string).collect();
    let mut edited = claims.clone();
    edited["sub"] = json!("admin");
    parts[1] = b64(edited.to_string().as_bytes());
    let tampered = parts.join(".");
    assert_invalid(v.verify(&tampered).await, "bad signature", &tampered);

    // Expired two hours ago (600 s TTL, issued with the provider's clock 2 h back).
    let token = provider.token_at(-7200, "ci-bot").await;
    assert_invalid(v.verify(&token).await, "expired", &token);
    // Issued two hours in the future.
    let token = provider.token_at(7200, "ci-bot").await;
    assert_invalid(v.verify(&token).await, "future", &token);

    // All of the above came from one JWKS fetch by the verifier (plus this test's own).
    assert_eq!(provider.jwks_requests().await, 2, "keys are cached");

    // Another issuer's token, even with a kid this issuer also uses: refused.
    let other = Provider::start().await;
    let token = other.token("ci-bot", RESOURCE).await;
    assert_invalid(v.verify(&token).await, "bad signature", &token);

    // Through the Authenticator trait.
    let mut headers = HeaderMap::new();
    assert_eq!(v.authenticate(&headers).await, Err(AuthError::Missing));
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {genuine}")).expect("header"),
    );
    assert_eq!(
        v.authenticate(&headers).await.map(|p| p.sub),
        Ok("ci-bot".to_string())
    );
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {tampered}")).expect("header"),
    );
    assert_eq!(v.authenticate(&headers).await, Err(AuthError::Invalid));
}

#[tokio::test]
async fn rotated_keys_are_picked_up_with_at_most_one_fetch_per_30_seconds() {
    let provider = Provider::start().await;
    let v = provider.verifier(None);
    let first = provider.token("ci-bot", RESOURCE).await;
    v.verify(&first).await.expect("token of the first key");
    let fetched_at = Instant::now();
    assert_eq!(provider.jwks_requests().await, 1);

    // Rotation right after a fetch: the new kid is unknown and may not be fetched yet.
    assert_eq!(provider.admin("/__rotate").await["kid"], "rsa-2");
    let second = provider.token("ci-bot", RESOURCE).await;
    assert_invalid(v.verify(&second).await, "unknown signing key", &second);
    assert_eq!(provider.jwks_requests().await, 1, "no fetch within 30 s");

    // Once 30 s have passed since the last fetch, the unknown kid causes one fetch.
    tokio::time::sleep(Duration::from_millis(30_100).saturating_sub(fetched_at.elapsed())).await;
    let p = v.verify_token(&second).await.expect("new kid picked up");
    assert_eq!(p.roles, vec!["toolgate.approver", "toolgate.caller"]);
    assert_eq!(provider.jwks_requests().await, 2);
    v.verify(&first)
        .await
        .expect("the old key is still published, so its tokens still verify");

    // A second rotation within 30 s of that fetch: refused without a fetch.
    assert_eq!(provider.admin("/__rotate").await["kid"], "rsa-3");
    let third = provider.token("ci-bot", RESOURCE).await;
    assert_invalid(v.verify(&third).await, "unknown signing key", &third);
    assert_invalid(v.verify(&third).await, "unknown signing key", &third);
    assert_eq!(
        provider.jwks_requests().await,
        2,
        "at most one fetch per 30 s"
    );
    assert_eq!(provider.jwks_requests().await, 2);
    v.verify(&second).await.expect("known keys keep working");
}

#[tokio::test]
async fn opaque_tokens_are_introspected_and_positive_answers_cached() {
    let provider = Provider::start().await;
    let v = provider.verifier(basic());

    let token = provider.token("opaque-bot", RESOURCE).await;
    assert!(!token.contains('.'), "an opaque token");
    let verified = v.verify(&token).await.expect("active opaque token");
    // client_credentials tokens have no end user: the subject is the client.
    assert_eq!(verified.principal.sub, "opaque-bot");
    assert_eq!(verified.principal.name, "opaque-bot@acme.example");
    assert_eq!(verified.principal.roles, vec!["toolgate.caller"]);
    assert_eq!(verified.org_ids, vec![ORG]);
    assert!(verified.expires_at.is_some());
    assert_eq!(provider.introspections().await, 1);

    // Cached by token hash: no second call, even after revocation (bounded by 5 min / exp).
    provider.revoke("opaque-bot", &token).await;
    assert_eq!(v.verify(&token).await.expect("cached"), verified);
    assert_eq!(provider.introspections().await, 1, "answer cached");

    // Revoked before first use, unknown, expired, other audience: not active / not accepted.
    let revoked = provider.token("opaque-bot", RESOURCE).await;
    provider.revoke("opaque-bot", &revoked).await;
    assert_invalid(v.verify(&revoked).await, "not active", &revoked);
    assert_invalid(
        v.verify("no-such-token-0123456789").await,
        "not active",
        "no-such-token",
    );
    let expired = provider.token_at(-7200, "opaque-bot").await;
    assert_invalid(v.verify(&expired).await, "not active", &expired);
    let elsewhere = provider.token("opaque-bot", "urn:someone-else:api").await;
    assert_invalid(v.verify(&elsewhere).await, "audience", &elsewhere);
    assert_eq!(
        provider.introspections().await,
        5,
        "each refused token is asked about once"
    );
    // Refusals are remembered by token hash: asking again does not reach the issuer.
    for _ in 0..3 {
        assert_invalid(v.verify(&revoked).await, "not active", &revoked);
        assert_invalid(v.verify(&elsewhere).await, "audience", &elsewhere);
    }
    assert_eq!(provider.introspections().await, 5, "refusals cached");

    // Private-key JWT with the API-app key file the provider handed out (Zitadel's format);
    // each call signs a fresh assertion (the provider refuses replays).
    let keyed = provider.verifier(Some(IntrospectionAuth::PrivateKeyJwt {
        key_file: provider.key_file.clone(),
    }));
    for _ in 0..2 {
        let token = provider.token("opaque-bot", RESOURCE).await;
        let p = keyed
            .verify_token(&token)
            .await
            .expect("introspected with private-key JWT");
        assert_eq!(p.sub, "opaque-bot");
    }
    assert_eq!(provider.introspections().await, 7);

    // Wrong client secret: toolgate's own problem, so 503-worthy, never "invalid token".
    let wrong = provider.verifier(Some(IntrospectionAuth::Basic {
        client_id: INTROSPECTOR.into(),
        client_secret: Credential::inline("not-the-secret-0123456789"),
    }));
    let token = provider.token("opaque-bot", RESOURCE).await;
    match wrong.verify(&token).await {
        Err(VerifyError::Unavailable(m)) => {
            assert!(m.contains("401") && m.contains("invalid_client"), "{m}");
            assert!(!m.contains("not-the-secret") && !m.contains(&token), "{m}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(
        provider.introspections().await,
        8,
        "a refused client is not retried"
    );
    // An outage of toolgate's own making is never remembered as the token's fault.
    assert!(matches!(
        wrong.verify(&token).await,
        Err(VerifyError::Unavailable(_))
    ));
    assert_eq!(
        provider.introspections().await,
        9,
        "Unavailable is not cached"
    );
    // The right client still accepts that token.
    v.verify(&token).await.expect("valid with the right client");
}

#[tokio::test]
async fn a_stopped_provider_means_unavailable_and_nothing_unchecked_is_accepted() {
    let mut provider = Provider::start().await;
    let warm = provider.verifier(basic());
    let jwt = provider.token("ci-bot", RESOURCE).await;
    let opaque = provider.token("opaque-bot", RESOURCE).await;
    let fresh_opaque = provider.token("opaque-bot", RESOURCE).await;
    warm.verify(&jwt).await.expect("keys cached");
    warm.verify(&opaque).await.expect("answer cached");
    provider.stop().await;

    // What was checked before stays checkable: cached keys, cached introspection answers.
    warm.verify(&jwt)
        .await
        .expect("JWT checked with cached keys");
    warm.verify(&opaque)
        .await
        .expect("cached introspection answer");
    // What needs the issuer now cannot be checked: 503-worthy, not 401, never accepted.
    assert_unavailable(warm.verify(&fresh_opaque).await, &fresh_opaque);

    let cold = provider.verifier(basic());
    assert_unavailable(cold.verify(&jwt).await, &jwt);
    assert_unavailable(cold.verify(&opaque).await, &opaque);
    assert_unavailable(
        cold.verify("no-such-token-0123456789").await,
        "no-such-token",
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {jwt}")).expect("header"),
    );
    assert_eq!(
        cold.authenticate(&headers).await,
        Err(AuthError::Unavailable)
    );

    // Repeated failures open the breaker: later calls fail fast, still as unavailable.
    for _ in 0..5 {
        assert_unavailable(cold.verify(&jwt).await, &jwt);
    }
    let started = Instant::now();
    match cold.verify(&jwt).await {
        Err(VerifyError::Unavailable(m)) => assert!(m.contains("circuit open"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(100), "fails fast");
}

/// A toolgate server in `auth.mode: zitadel` against the real provider: tokens from the IdP
/// call tools with the roles their claims carry, approve held calls, and are refused without.
#[tokio::test]
async fn a_server_in_zitadel_mode_authorizes_mcp_and_approvals_by_token_roles() {
    let provider = Provider::start().await;
    let fake = crate::mcp::seeded_fake().await;
    let extra = format!(
        "auth:\n  mode: zitadel\n  issuer: {}\n  project_id: \"{PROJECT}\"\n  audiences: [\"{AUD}\"]\n",
        provider.issuer
    );
    let tg = crate::harness::start(&fake, &extra).await;

    // The resource metadata names the issuer; a missing token is challenged with scopes.
    let metadata: Value = reqwest::Client::new()
        .get(format!("{}/.well-known/oauth-protected-resource", tg.url))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert_eq!(metadata["authorization_servers"], json!([provider.issuer]));
    let challenge = reqwest::Client::new()
        .post(format!("{}/mcp", tg.url))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .expect("POST /mcp");
    assert_eq!(challenge.status(), 401);
    let www = challenge.headers()["www-authenticate"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        www.contains("resource_metadata=") && www.contains(&format!("project:id:{PROJECT}:aud")),
        "{www}"
    );

    // array-bot holds only toolgate.caller: it may call tools and ask for changes.
    let caller = provider.token("array-bot", RESOURCE).await;
    let client = crate::gate::client_as(&tg.url, &caller).await;
    let list = crate::mcp::call(
        &client,
        "k8s.list_resources",
        json!({"kind": "pods", "namespace": "shop"}),
    )
    .await;
    assert_ne!(list.is_error, Some(true));
    client.cancel().await.ok();
    let id = crate::gate::request_restart(&tg.url, &caller).await;

    // It cannot approve (no approver role); ci-bot (approver) can, and the call runs.
    let (status, _) = crate::gate::decide(&tg.url, &caller, &id, "approve", Some("mine")).await;
    assert_eq!(status, 403);
    let approver = provider.token("ci-bot", RESOURCE).await;
    let (status, body) = crate::gate::decide(&tg.url, &approver, &id, "approve", Some("ok")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], json!("executed"), "{body}");
    assert_eq!(body["decisions"][0]["approver_sub"], json!("ci-bot"));

    // A valid token without any toolgate role is 403 on /mcp; a token for another audience 401.
    let no_roles = provider.token("es-bot", RESOURCE).await;
    let refused = reqwest::Client::new()
        .post(format!("{}/mcp", tg.url))
        .bearer_auth(&no_roles)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .expect("POST /mcp");
    assert_eq!(refused.status(), 403);
    let other = provider
        .token("ci-bot", "urn:zitadel:iam:org:project:id:999:aud")
        .await;
    let (status, _) = crate::gate::decide(&tg.url, &other, &id, "approve", Some("x")).await;
    assert_eq!(status, 401);
}

/// A flood of one bad opaque token against a running server in zitadel mode: every request is
/// refused with 401, and the issuer is asked about it once (the refusal is cached by token
/// hash); a good opaque token still passes.
#[tokio::test]
async fn the_same_bad_opaque_token_reaches_the_issuer_once() {
    let provider = Provider::start().await;
    let fake = crate::mcp::seeded_fake().await;
    let extra = format!(
        "auth:\n  mode: zitadel\n  issuer: {}\n  project_id: \"{PROJECT}\"\n  audiences: [\"{AUD}\"]\n  \
         introspection_client_id: \"{INTROSPECTOR}\"\n  introspection_client_secret: \"{INTROSPECTOR_SECRET}\"\n  \
         introspection_negative_cache_seconds: 60s\n",
        provider.issuer
    );
    let tg = crate::harness::start(&fake, &extra).await;
    let ping = |token: String| {
        let url = format!("{}/rpc", tg.url);
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools.list"}))
                .send()
                .await
                .expect("POST /rpc")
                .status()
        }
    };
    let revoked = provider.token("opaque-bot", RESOURCE).await;
    provider.revoke("opaque-bot", &revoked).await;
    let before = provider.introspections().await;
    for _ in 0..10 {
        assert_eq!(ping(revoked.clone()).await, 401);
    }
    assert_eq!(
        provider.introspections().await - before,
        1,
        "ten requests with one bad token, one introspection"
    );
    let good = provider.token("opaque-bot", RESOURCE).await;
    assert_eq!(ping(good).await, 200);
}

/// The hostile-token suite: tokens signed with the issuer's real key that must still be refused
/// (or read narrowly), each beside a control token that passes, so a broken forge cannot make
/// the suite pass.
#[tokio::test]
async fn validly_signed_but_hostile_tokens_are_refused() {
    let provider = Provider::start().await;
    let v = provider.verifier(None);
    let roles = |r: &[&str]| {
        let mut m = serde_json::Map::new();
        for role in r {
            m.insert(role.to_string(), json!({ORG: "acme.example"}));
        }
        Value::Object(m)
    };
    // Control: a forged token that is in order is accepted.
    let fine = provider
        .forge(
            json!({}),
            json!({"aud": AUD, (roles_claim()): roles(&["toolgate.caller"])}),
        )
        .await;
    let p = v
        .verify_token(&fine)
        .await
        .expect("a well-formed token passes");
    assert_eq!(p.roles, vec!["toolgate.caller".to_string()]);

    // RFC 7515 §4.1.11: a critical extension toolgate does not understand.
    let crit = provider
        .forge(
            json!({"crit": ["x-toolgate-test"], "x-toolgate-test": true}),
            json!({"aud": AUD, (roles_claim()): roles(&["toolgate.caller"])}),
        )
        .await;
    assert_invalid(v.verify_token(&crit).await, "critical extensions", &crit);

    // An issuer that differs from the discovery document's only by a trailing slash.
    let slash = provider
        .forge(
            json!({}),
            json!({"iss": format!("{}/", provider.issuer), "aud": AUD,
                   (roles_claim()): roles(&["toolgate.caller"])}),
        )
        .await;
    assert_invalid(v.verify_token(&slash).await, "another issuer", &slash);

    // The project's own claim says caller; the generic claim (another project's roles) says
    // approver: only caller counts.
    let mixed = provider
        .forge(
            json!({}),
            json!({"aud": AUD, (roles_claim()): roles(&["toolgate.caller"]),
                   "urn:zitadel:iam:org:project:roles": roles(&["toolgate.approver"])}),
        )
        .await;
    let p = v.verify_token(&mixed).await.expect("valid token");
    assert_eq!(p.roles, vec!["toolgate.caller".to_string()]);

    // Only the generic claim: no roles unless the config trusts that claim.
    let generic = provider
        .forge(
            json!({}),
            json!({"aud": AUD, "urn:zitadel:iam:org:project:roles": roles(&["toolgate.approver"])}),
        )
        .await;
    let p = v.verify_token(&generic).await.expect("valid token");
    assert_eq!(p.roles, Vec::<String>::new());
    let trusting = ZitadelVerifier::new(ZitadelConfig {
        issuer: provider.issuer.clone(),
        project_id: PROJECT.into(),
        audiences: vec![AUD.into()],
        introspection: None,
        timeout: Duration::from_secs(2),
        trust_generic_roles_claim: true,
        negative_cache: Duration::from_secs(60),
    })
    .expect("verifier config");
    let p = trusting.verify_token(&generic).await.expect("valid token");
    assert_eq!(p.roles, vec!["toolgate.approver".to_string()]);
}
