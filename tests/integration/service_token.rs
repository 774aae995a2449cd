//! toolgate's own Zitadel token (`auth::service_token`) against a fake Zitadel token endpoint
//! built from PROTOCOLS.md: it verifies the JWT assertion's RS256 signature with the public half
//! of the key file written here, checks claims, grant type, scope and Basic auth, and counts.
//! (The npm `oidc-provider` the other OIDC tests run has no JWT-profile grant.) End to end, a
//! running toolgate whose Grafana is configured with `auth.zitadel_service_token` sends it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rsa::RsaPrivateKey;
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey, LineEnding};
use serde_json::{Value, json};
use tempfile::TempDir;
use toolgate::auth::service_token::{
    JWT_BEARER_GRANT, ServiceCredentials, ServiceTokenConfig, ServiceTokenError, ServiceTokens,
};

const KEY_ID: &str = "284517694573576197";
const USER_ID: &str = "284517507545366533";
const PROJECT_ID: &str = "284516876327780357";
const CLIENT_ID: &str = "toolgate-svc";
/// Characters that RFC 6749 §2.3.1 form-encodes inside Basic auth.
const CLIENT_SECRET: &str = "s3cr3t:with+odd/chars=";

struct KeyPair {
    private_pem: String,
    public_pem: String,
}

/// The service user's key, one per test binary: RSA generation is slow in debug builds.
fn service_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| generate(2048))
}

/// A well-formed key that the fake Zitadel does not know.
fn unknown_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| generate(1024))
}

fn generate(bits: usize) -> KeyPair {
    let mut rng = rsa::rand_core::OsRng;
    let key = RsaPrivateKey::new(&mut rng, bits).expect("generate RSA key");
    KeyPair {
        private_pem: key
            .to_pkcs1_pem(LineEnding::LF)
            .expect("encode private key")
            .to_string(),
        public_pem: key
            .to_public_key()
            .to_pkcs1_pem(LineEnding::LF)
            .expect("encode public key"),
    }
}

/// A Zitadel service-user key file as the console downloads it.
fn write_key_file(dir: &Path, private_pem: &str) -> PathBuf {
    let path = dir.join("toolgate-sa.json");
    let doc =
        json!({"type": "serviceaccount", "keyId": KEY_ID, "key": private_pem, "userId": USER_ID});
    std::fs::write(&path, doc.to_string()).expect("write key file");
    path
}

#[derive(Clone)]
struct FakeOptions {
    /// Serve `/.well-known/openid-configuration`.
    discovery: bool,
    /// Where the token endpoint lives (and what discovery advertises).
    token_path: &'static str,
    /// Whether the token request must carry the project scopes.
    project_id: Option<&'static str>,
    /// How long the endpoint takes to answer a token request.
    delay: Duration,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            discovery: true,
            token_path: "/oauth/v2/token",
            project_id: Some(PROJECT_ID),
            delay: Duration::ZERO,
        }
    }
}

struct FakeState {
    issuer: String,
    options: FakeOptions,
    public_key: DecodingKey,
    expires_in: AtomicU64,
    /// Answer this many token requests with 503 first.
    fail_next: AtomicUsize,
    token_requests: AtomicUsize,
    discovery_requests: AtomicUsize,
}

struct FakeZitadel {
    issuer: String,
    state: Arc<FakeState>,
}

impl FakeZitadel {
    async fn start(options: FakeOptions) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(FakeState {
            issuer: issuer.clone(),
            public_key: DecodingKey::from_rsa_pem(service_key().public_pem.as_bytes())
                .expect("public key"),
            options: options.clone(),
            expires_in: AtomicU64::new(43199),
            fail_next: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
            discovery_requests: AtomicUsize::new(0),
        });
        let mut app = Router::new().route(options.token_path, post(token));
        if options.discovery {
            app = app.route("/.well-known/openid-configuration", get(discovery));
        }
        let app = app.with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { issuer, state }
    }

    fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }
}

async fn discovery(State(state): State<Arc<FakeState>>) -> Json<Value> {
    state.discovery_requests.fetch_add(1, Ordering::SeqCst);
    let i = &state.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/oauth/v2/authorize"),
        "token_endpoint": format!("{i}{}", state.options.token_path),
        "introspection_endpoint": format!("{i}/oauth/v2/introspect"),
        "userinfo_endpoint": format!("{i}/oidc/v1/userinfo"),
        "revocation_endpoint": format!("{i}/oauth/v2/revoke"),
        "end_session_endpoint": format!("{i}/oidc/v1/end_session"),
        "jwks_uri": format!("{i}/oauth/v2/keys"),
        "scopes_supported": ["openid", "profile", "email", "phone", "address", "offline_access"],
        "response_types_supported": ["code", "id_token", "id_token token"],
        "grant_types_supported": ["authorization_code", "implicit", "refresh_token", "client_credentials", JWT_BEARER_GRANT, "urn:ietf:params:oauth:grant-type:device_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
    }))
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = Json(json!({"error": error, "error_description": description}));
    if status == StatusCode::UNAUTHORIZED {
        (status, [(header::WWW_AUTHENTICATE, "Basic")], body).into_response()
    } else {
        (status, body).into_response()
    }
}

async fn token(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let n = state.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(state.options.delay).await;
    if state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
        .is_ok()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "upstream connect error").into_response();
    }
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    let subject = match grant {
        JWT_BEARER_GRANT => match check_assertion(&state, form.get("assertion")) {
            Ok(sub) => sub,
            Err(why) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", &why),
        },
        "client_credentials" => match check_basic(&headers) {
            Ok(sub) => sub,
            Err(why) => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", &why),
        },
        other => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("{other} not supported"),
            );
        }
    };
    let scope = form.get("scope").cloned().unwrap_or_default();
    let scopes: Vec<&str> = scope.split(' ').collect();
    let mut required = vec!["openid".to_string()];
    if let Some(id) = state.options.project_id {
        required.push(format!("urn:zitadel:iam:org:project:id:{id}:aud"));
        required.push("urn:zitadel:iam:org:projects:roles".into());
    }
    if let Some(missing) = required.iter().find(|r| !scopes.contains(&r.as_str())) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!("scope {missing} missing"),
        );
    }
    Json(json!({
        "access_token": format!("opaque-token-{subject}-{n}"),
        "token_type": "Bearer",
        "expires_in": state.expires_in.load(Ordering::SeqCst),
        "scope": scope,
    }))
    .into_response()
}

/// The JWT profile grant's checks: RS256 by the known key and `kid`, `iss = sub = userId`,
/// `aud = issuer`, `iat` at most an hour old, `exp` in the future.
fn check_assertion(state: &FakeState, assertion: Option<&String>) -> Result<String, String> {
    let assertion = assertion.ok_or("assertion missing")?;
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| format!("header: {e}"))?;
    if header.alg != Algorithm::RS256 || header.kid.as_deref() != Some(KEY_ID) {
        return Err(format!(
            "unknown key {:?} / alg {:?}",
            header.kid, header.alg
        ));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[&state.issuer]);
    validation.set_issuer(&[USER_ID]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<Value>(assertion, &state.public_key, &validation)
        .map_err(|e| format!("assertion invalid: {e}"))?;
    let claims = data.claims;
    if claims["sub"] != USER_ID {
        return Err("sub must equal iss".into());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let iat = claims["iat"].as_u64().ok_or("iat missing")?;
    if iat + 3600 < now || iat > now + 60 {
        return Err("iat out of range".into());
    }
    Ok(USER_ID.to_string())
}

fn check_basic(headers: &HeaderMap) -> Result<String, String> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .ok_or("client authentication missing")?;
    let decoded = STANDARD
        .decode(value)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or("malformed basic auth")?;
    let (id, secret) = decoded.split_once(':').ok_or("malformed basic auth")?;
    let (id, secret) = (form_decode(id), form_decode(secret));
    if id.as_deref() != Some(CLIENT_ID) {
        return Err("client not found".into());
    }
    if secret.as_deref() != Some(CLIENT_SECRET) {
        return Err("invalid client secret".into());
    }
    Ok(CLIENT_ID.into())
}

/// `application/x-www-form-urlencoded` decoding of one value.
fn form_decode(s: &str) -> Option<String> {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn config(issuer: &str, credentials: ServiceCredentials) -> ServiceTokenConfig {
    ServiceTokenConfig {
        issuer: issuer.to_string(),
        project_id: Some(PROJECT_ID.into()),
        scopes: vec![],
        credentials,
        timeout: Duration::from_secs(5),
        renew_before: Duration::from_secs(60),
    }
}

/// A fake Zitadel and a key-file client for it.
async fn key_file_setup(options: FakeOptions) -> (FakeZitadel, ServiceTokens, TempDir) {
    toolgate::app::init_crypto();
    let fake = FakeZitadel::start(options).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_key_file(dir.path(), &service_key().private_pem);
    let tokens = ServiceTokens::new(config(&fake.issuer, ServiceCredentials::KeyFile(path)))
        .expect("valid key file");
    (fake, tokens, dir)
}

fn client_credentials(secret: &str) -> ServiceCredentials {
    ServiceCredentials::ClientCredentials {
        client_id: CLIENT_ID.into(),
        client_secret: secret.into(),
    }
}

#[tokio::test]
async fn jwt_profile_token_is_obtained_then_served_from_cache() {
    let (fake, tokens, _dir) = key_file_setup(FakeOptions::default()).await;
    let first = tokens.get_access_token().await.expect("token");
    assert_eq!(first, format!("opaque-token-{USER_ID}-1"));
    let second = tokens
        .clone()
        .get_access_token()
        .await
        .expect("cached token");
    assert_eq!(second, first);
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(fake.state.discovery_requests.load(Ordering::SeqCst), 1);
    assert_eq!(
        tokens.scope(),
        format!(
            "openid urn:zitadel:iam:org:project:id:{PROJECT_ID}:aud urn:zitadel:iam:org:projects:roles"
        )
    );
}

#[tokio::test]
async fn token_expiring_within_renew_before_is_renewed() {
    let (fake, tokens, _dir) = key_file_setup(FakeOptions::default()).await;
    fake.state.expires_in.store(30, Ordering::SeqCst);
    let first = tokens.get_access_token().await.expect("token");
    let second = tokens.get_access_token().await.expect("renewed token");
    assert_ne!(first, second);
    assert_eq!(fake.token_requests(), 2);
    // Discovery is asked once, not per renewal.
    assert_eq!(fake.state.discovery_requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn failed_renewal_keeps_the_unexpired_token() {
    let (fake, tokens, _dir) = key_file_setup(FakeOptions::default()).await;
    fake.state.expires_in.store(30, Ordering::SeqCst);
    let first = tokens.get_access_token().await.expect("token");
    fake.state.fail_next.store(100, Ordering::SeqCst);
    let again = tokens
        .get_access_token()
        .await
        .expect("current token while renewal fails");
    assert_eq!(again, first);
    assert_eq!(fake.token_requests(), 1 + 3, "renewal retried 3 times");
}

#[tokio::test]
async fn concurrent_callers_share_one_request() {
    let options = FakeOptions {
        delay: Duration::from_millis(300),
        ..FakeOptions::default()
    };
    let (fake, tokens, _dir) = key_file_setup(options).await;
    let calls = (0..10).map(|_| {
        let tokens = tokens.clone();
        tokio::spawn(async move { tokens.get_access_token().await })
    });
    let results = futures::future::join_all(calls).await;
    let got: Vec<String> = results
        .into_iter()
        .map(|r| r.expect("task").expect("token"))
        .collect();
    assert!(got.iter().all(|t| t == &got[0]), "{got:?}");
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn discovered_token_endpoint_is_used() {
    let options = FakeOptions {
        token_path: "/custom/token",
        ..FakeOptions::default()
    };
    let (fake, tokens, _dir) = key_file_setup(options).await;
    tokens
        .get_access_token()
        .await
        .expect("token via discovery");
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn without_discovery_the_zitadel_token_path_is_used() {
    let options = FakeOptions {
        discovery: false,
        ..FakeOptions::default()
    };
    let (fake, tokens, _dir) = key_file_setup(options).await;
    tokens.get_access_token().await.expect("token via fallback");
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn server_errors_are_retried() {
    let (fake, tokens, _dir) = key_file_setup(FakeOptions::default()).await;
    fake.state.fail_next.store(2, Ordering::SeqCst);
    tokens
        .get_access_token()
        .await
        .expect("token after retries");
    assert_eq!(fake.token_requests(), 3);
}

#[tokio::test]
async fn assertion_signed_by_an_unknown_key_is_rejected() {
    toolgate::app::init_crypto();
    let fake = FakeZitadel::start(FakeOptions::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_key_file(dir.path(), &unknown_key().private_pem);
    let tokens = ServiceTokens::new(config(&fake.issuer, ServiceCredentials::KeyFile(path)))
        .expect("well-formed key file");
    match tokens.get_access_token().await {
        Err(ServiceTokenError::Rejected { error, description }) => {
            assert_eq!(error, "invalid_grant");
            assert!(description.contains("assertion invalid"), "{description}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(fake.token_requests(), 1, "4xx is not retried");
}

#[tokio::test]
async fn client_credentials_use_basic_auth() {
    toolgate::app::init_crypto();
    let fake = FakeZitadel::start(FakeOptions::default()).await;
    let tokens = ServiceTokens::new(config(&fake.issuer, client_credentials(CLIENT_SECRET)))
        .expect("config");
    let token = tokens.get_access_token().await.expect("token");
    assert_eq!(token, format!("opaque-token-{CLIENT_ID}-1"));
    tokens.get_access_token().await.expect("cached");
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn invalid_client_is_rejected_once_with_the_description() {
    toolgate::app::init_crypto();
    let fake = FakeZitadel::start(FakeOptions::default()).await;
    let secret = "wrong-secret-value";
    let tokens =
        ServiceTokens::new(config(&fake.issuer, client_credentials(secret))).expect("config");
    // Concurrent callers share the one failed attempt.
    let calls = (0..5).map(|_| {
        let tokens = tokens.clone();
        async move { tokens.get_access_token().await }
    });
    for result in futures::future::join_all(calls).await {
        match result {
            Err(err @ ServiceTokenError::Rejected { .. }) => {
                let ServiceTokenError::Rejected { error, description } = &err else {
                    unreachable!()
                };
                assert_eq!(error, "invalid_client");
                assert_eq!(description, "invalid client secret");
                assert!(!err.to_string().contains(secret), "{err}");
                assert!(!format!("{err:?}").contains(secret), "{err:?}");
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
    }
    assert_eq!(fake.token_requests(), 1);
    assert!(!format!("{tokens:?}").contains(secret));
}

#[tokio::test]
async fn endpoint_down_is_unavailable_quickly() {
    toolgate::app::init_crypto();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cfg = config(
        &format!("http://127.0.0.1:{port}"),
        client_credentials(CLIENT_SECRET),
    );
    cfg.timeout = Duration::from_millis(200);
    let tokens = ServiceTokens::new(cfg).expect("config");
    let started = Instant::now();
    let err = tokens
        .get_access_token()
        .await
        .expect_err("nothing listens");
    let elapsed = started.elapsed();
    assert!(matches!(err, ServiceTokenError::Unavailable(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("after 3 attempts"), "{text}");
    assert!(!text.contains(CLIENT_SECRET), "{text}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[tokio::test]
async fn silent_endpoint_times_out_on_every_call() {
    toolgate::app::init_crypto();
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_key_file(dir.path(), &service_key().private_pem);
    let mut cfg = config(&format!("http://{addr}"), ServiceCredentials::KeyFile(path));
    cfg.timeout = Duration::from_millis(200);
    let tokens = ServiceTokens::new(cfg).expect("config");
    let started = Instant::now();
    let err = tokens.get_access_token().await.expect_err("no answer");
    let elapsed = started.elapsed();
    assert!(matches!(err, ServiceTokenError::Unavailable(_)), "{err:?}");
    // Discovery plus three token attempts, 200 ms each, plus backoff.
    assert!(elapsed >= Duration::from_millis(800), "took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
}

#[test]
fn bad_key_files_name_the_file_and_field_never_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = &service_key().private_pem;
    let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    // The PEM cut in half: right armour, a body that is not a whole key.
    let half = format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n",
        body[..body.len() / 2].join("\n")
    );
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"type": "serviceaccount", "keyId": KEY_ID, "key": half, "userId": USER_ID}),
            "`key`",
        ),
        (
            json!({"type": "serviceaccount", "keyId": KEY_ID, "key": "not a pem", "userId": USER_ID}),
            "`key`",
        ),
        (
            json!({"type": "serviceaccount", "keyId": KEY_ID, "key": pem}),
            "`userId`",
        ),
        (
            json!({"type": "serviceaccount", "keyId": 42, "key": pem, "userId": USER_ID}),
            "`keyId`",
        ),
        (
            json!({"type": "application", "keyId": KEY_ID, "key": pem, "appId": "1", "clientId": "c"}),
            "`type`",
        ),
    ];
    for (doc, field) in cases {
        let path = dir.path().join("svc-key.json");
        std::fs::write(&path, doc.to_string()).expect("write");
        let cfg = config(
            "https://acme.zitadel.cloud",
            ServiceCredentials::KeyFile(path),
        );
        let err = match ServiceTokens::new(cfg) {
            Err(err @ ServiceTokenError::KeyFile(_)) => err.to_string(),
            other => panic!("expected KeyFile for {field}, got {other:?}"),
        };
        assert!(err.contains("svc-key.json"), "{err}");
        assert!(err.contains(field), "{err}");
        for line in &body {
            assert!(!err.contains(line), "key material in: {err}");
        }
    }
    let missing = dir.path().join("absent.json");
    let cfg = config(
        "https://acme.zitadel.cloud",
        ServiceCredentials::KeyFile(missing),
    );
    let err = ServiceTokens::new(cfg).expect_err("no file").to_string();
    assert!(err.contains("absent.json"), "{err}");
}

/// The real OpenID provider of `tests/oidc/provider.mjs` (npm `oidc-provider`), killed on drop.
struct RealProvider {
    issuer: String,
    _child: tokio::process::Child,
}

impl RealProvider {
    async fn start(config: Value) -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        assert!(
            repo.join("node_modules/oidc-provider").exists(),
            "this test needs node and the npm package oidc-provider: run `npm ci` in {}",
            repo.display()
        );
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
            .write_all(config.to_string().as_bytes())
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
        Self {
            issuer,
            _child: child,
        }
    }

    async fn token_requests(&self) -> u64 {
        let stats: Value = reqwest::get(format!("{}/__stats", self.issuer))
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON");
        stats["token"].as_u64().expect("token count")
    }
}

#[tokio::test]
async fn client_credentials_against_a_real_oidc_provider() {
    toolgate::app::init_crypto();
    let provider = RealProvider::start(json!({
        "clients": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "format": "opaque", "ttl": 600}],
    }))
    .await;
    // oidc-provider's token endpoint is `/token`, so this also shows discovery is followed.
    let tokens = ServiceTokens::new(config(&provider.issuer, client_credentials(CLIENT_SECRET)))
        .expect("config");
    let token = tokens
        .get_access_token()
        .await
        .expect("token from oidc-provider");
    assert!(token.len() >= 20, "an opaque token: {} chars", token.len());
    assert_eq!(tokens.get_access_token().await.expect("cached"), token);
    assert_eq!(provider.token_requests().await, 1);

    let wrong = ServiceTokens::new(config(
        &provider.issuer,
        client_credentials("not-the-secret"),
    ))
    .expect("config");
    match wrong.get_access_token().await {
        Err(ServiceTokenError::Rejected { error, description }) => {
            assert_eq!(error, "invalid_client");
            assert!(!description.is_empty());
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(provider.token_requests().await, 2, "4xx is not retried");
}

/// The service token is an outbound credential of the upstream kit: an upstream whose auth is
/// the token source sends `Bearer <current token>`, fetched once and then served from cache.
#[tokio::test]
async fn an_upstream_authenticated_by_the_service_token_sends_it() {
    use toolgate::adapters::http::{Credential, HttpAuth, Retry, Settings, Upstream};
    let (fake, tokens, _dir) = key_file_setup(FakeOptions::default()).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/api",
        axum::routing::get(move |headers: HeaderMap| {
            let record = record.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                record.lock().unwrap_or_else(|e| e.into_inner()).push(auth);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/api", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let auth = HttpAuth::Bearer(Credential::from_source(Arc::new(tokens)));
    assert!(format!("{auth:?}").contains("Zitadel service token from"));
    let upstream = Upstream::new(
        "service-token-test",
        "Test",
        &Settings::with_timeout(Duration::from_secs(5)),
        auth,
    )
    .expect("upstream");
    for _ in 0..2 {
        let reply = upstream
            .send(Retry::Read, || Ok(upstream.http().get(&url)))
            .await
            .expect("answer");
        assert_eq!(reply.status, 200);
    }
    let expected = format!("Bearer opaque-token-{USER_ID}-1");
    assert_eq!(
        *seen.lock().unwrap_or_else(|e| e.into_inner()),
        vec![expected.clone(), expected]
    );
    assert_eq!(
        fake.token_requests(),
        1,
        "the token is cached between requests"
    );
}

/// The Grafana block of a toolgate config whose credential is the service token of `issuer`.
fn grafana_with_service_token(grafana: &str, issuer: &str, key_file: &Path) -> String {
    format!(
        "observability:\n  grafana:\n    url: {grafana}\n    auth:\n      zitadel_service_token:\n\
         \x20       issuer: {issuer}\n        key_file: {}\n        project_id: \"{PROJECT_ID}\"\n",
        key_file.display()
    )
}

/// Grafana behind a proxy that checks Zitadel tokens, configured with
/// `auth.zitadel_service_token`: a running toolgate sends `Bearer <service token>` on the
/// tool's requests, and a token about to expire is renewed before the next request.
#[tokio::test]
async fn a_running_toolgate_sends_the_service_token_to_its_upstream_and_renews_it() {
    toolgate::app::init_crypto();
    let fake = FakeZitadel::start(FakeOptions::default()).await;
    // Tokens live 30 s, less than the default renew_before (60 s): every request renews.
    fake.state.expires_in.store(30, Ordering::SeqCst);
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = write_key_file(dir.path(), &service_key().private_pem);
    let token = |n: usize| format!("opaque-token-{USER_ID}-{n}");
    let grafana = crate::fake_obs::grafana(
        &token(1),
        json!([{"uid": "svc", "title": "Service", "tags": ["shop"]}]),
    )
    .await;
    let kube = crate::fake_kube::FakeKube::start().await;
    let tg = crate::harness::start(
        &kube,
        &grafana_with_service_token(&grafana.url, &fake.issuer, &key_file),
    )
    .await;
    let client = crate::approvals_api::mcp_as(&tg.url, crate::harness::ALICE).await;
    let args = json!({"tags": ["shop"]});
    let links = crate::obs::tool(&client, "obs.get_dashboard_url", args.clone())
        .await
        .expect("Grafana accepts the service token");
    assert_eq!(links["count"], 1, "{links}");
    // Grafana now accepts only the next token: the renewed one must be what arrives.
    grafana.set("token", json!(token(2)));
    crate::obs::tool(&client, "obs.get_dashboard_url", args)
        .await
        .expect("Grafana accepts the renewed token");
    let sent: Vec<String> = grafana
        .requests_to("/api/search")
        .iter()
        .map(|r| r.header("authorization").unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        sent,
        [
            format!("Bearer {}", token(1)),
            format!("Bearer {}", token(2))
        ]
    );
    assert_eq!(fake.token_requests(), 2);
    client.cancel().await.ok();
}

/// With the issuer down, a call that needs the upstream fails as a tool error naming the
/// upstream's credential; nothing is sent to the upstream without it, the upstream's breaker
/// does not open (the issuer failed, not Grafana), and the server keeps serving.
#[tokio::test]
async fn with_the_issuer_down_the_tool_fails_naming_the_credential_and_the_server_keeps_serving() {
    toolgate::app::init_crypto();
    let (_reserved, port) = crate::daemons::dead_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = write_key_file(dir.path(), &service_key().private_pem);
    let grafana = crate::fake_obs::grafana("any", json!([])).await;
    let kube = crate::fake_kube::FakeKube::start().await;
    let tg = crate::harness::start(
        &kube,
        &grafana_with_service_token(&grafana.url, &issuer, &key_file),
    )
    .await;
    let client = crate::approvals_api::mcp_as(&tg.url, crate::harness::ALICE).await;
    let key_lines: Vec<&str> = service_key()
        .private_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    // More calls than Grafana's breaker threshold.
    for _ in 0..6 {
        let err = crate::obs::tool(&client, "obs.get_dashboard_url", json!({"tags": ["shop"]}))
            .await
            .expect_err("no token without the issuer");
        assert!(
            err.contains(&format!(
                "Grafana is unavailable: credentials for Grafana: Zitadel service token from {issuer}"
            )),
            "{err}"
        );
        assert!(
            !err.contains("circuit open after repeated failures of Grafana"),
            "{err}"
        );
        for line in &key_lines {
            assert!(!err.contains(line), "key material in: {err}");
        }
    }
    assert!(
        grafana.requests().is_empty(),
        "nothing reaches Grafana without its credential"
    );
    let (status, _) = crate::approvals_api::api(
        &tg,
        "GET",
        "/api/v1/approvals",
        Some(crate::harness::BOB),
        None,
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "the server keeps serving");
    let tools = client
        .list_all_tools()
        .await
        .expect("tools/list still answers");
    assert!(tools.iter().any(|t| t.name.contains("get_dashboard_url")));
    client.cancel().await.ok();
}
