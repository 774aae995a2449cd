//! toolgate's own access token as a Zitadel service user, for adapters that call services which
//! trust Zitadel: JWT profile grant from a key file, or client_credentials; cached, renewed before
//! it expires, one request for concurrent callers. An upstream asks for it in its config
//! (`auth.zitadel_service_token`); [`install`] makes this module the upstream kit's provider.
//! Outbound only: verifying callers' tokens is `auth::zitadel`'s job. Keys, secrets, assertions
//! and tokens never reach a log or an error.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::oidc_discovery;
use crate::adapters::http::{
    CallError, HttpAuth, Retry, Secret, SecretError, SecretSource, ServiceTokenSpec, Settings,
    TokenProvider, Upstream,
};
use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `grant_type` of the JWT profile grant (RFC 7523).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Asks Zitadel for the roles of every project in the token's audience.
pub const ROLES_SCOPE: &str = "urn:zitadel:iam:org:projects:roles";
/// Renew a cached token when it expires within this long, unless configured otherwise.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(60);
/// Per-request timeout unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Token requests per `get_access_token` when the issuer is unreachable or answers 5xx.
const MAX_ATTEMPTS: u32 = 3;
/// What a signing failure's message starts with (it names the key file's field, never the key).
const SIGNING: &str = "cannot sign the assertion";
/// Lifetime of the signed assertion (Zitadel accepts `iat` up to 1 h old).
const ASSERTION_LIFETIME: u64 = 3600;
/// Assumed lifetime when a token response has no `expires_in` (RFC 6749 makes it optional).
const DEFAULT_EXPIRES_IN: u64 = 300;

/// How toolgate proves it is its service user.
#[derive(Clone)]
pub enum ServiceCredentials {
    /// A Zitadel service-user key file `{"type":"serviceaccount","keyId","key","userId"}`.
    KeyFile(PathBuf),
    /// A service-user client secret (Basic auth on the token endpoint).
    ClientCredentials {
        client_id: String,
        client_secret: String,
    },
}

// By hand: the secret must never print.
impl fmt::Debug for ServiceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyFile(path) => f.debug_tuple("KeyFile").field(path).finish(),
            Self::ClientCredentials { client_id, .. } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .field("client_secret", &"***")
                .finish(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServiceTokenConfig {
    /// Zitadel issuer URL, e.g. `https://acme.zitadel.cloud` (no trailing slash needed).
    pub issuer: String,
    /// Adds the `urn:zitadel:iam:org:project:id:{id}:aud` and roles scopes, so services of that
    /// project accept the token.
    pub project_id: Option<String>,
    /// Extra scopes, after `openid` and the project scopes.
    pub scopes: Vec<String>,
    pub credentials: ServiceCredentials,
    /// Timeout of each HTTP request to the issuer.
    pub timeout: Duration,
    /// Renew the cached token when it expires within this long.
    pub renew_before: Duration,
}

impl ServiceTokenConfig {
    /// A config with no project, no extra scopes and the default timeout and renewal margin.
    pub fn new(issuer: impl Into<String>, credentials: ServiceCredentials) -> Self {
        Self {
            issuer: issuer.into(),
            project_id: None,
            scopes: Vec::new(),
            credentials,
            timeout: DEFAULT_TIMEOUT,
            renew_before: DEFAULT_RENEW_BEFORE,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceTokenError {
    /// The key file is unreadable or invalid; names the file and the field, never the key.
    #[error("service-user key file {0}")]
    KeyFile(String),
    /// The token endpoint refused the request (RFC 6749 error body).
    #[error("the issuer rejected toolgate's token request: {error}: {description}")]
    Rejected { error: String, description: String },
    /// The issuer could not be reached, timed out, or answered something that is not a token.
    #[error("the issuer is unavailable: {0}")]
    Unavailable(String),
}

/// Access tokens for toolgate's own service user. Cheap to clone: clones share the cache.
#[derive(Clone)]
pub struct ServiceTokens {
    inner: Arc<Inner>,
}

impl fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceTokens")
            .field("issuer", &self.inner.issuer)
            .field("scope", &self.inner.scope)
            .finish_non_exhaustive()
    }
}

struct Inner {
    issuer: String,
    scope: String,
    grant: Grant,
    renew_before: Duration,
    /// The issuer through the upstream kit: timeouts, retries of transport errors and 5xx
    /// (a token request changes nothing, so it is retried like a read), breaker, metrics.
    upstream: Upstream,
    cached: Mutex<Option<Cached>>,
    /// Finished token attempts; a waiter that sees it move takes that attempt's outcome.
    attempts: AtomicU64,
    /// Held by the one caller that talks to the issuer (single flight).
    flight: tokio::sync::Mutex<Flight>,
}

enum Grant {
    JwtProfile {
        key: EncodingKey,
        key_id: String,
        user_id: String,
    },
    ClientCredentials {
        client_id: String,
        client_secret: String,
    },
}

#[derive(Clone)]
struct Cached {
    token: String,
    expires_at: Instant,
}

#[derive(Default)]
struct Flight {
    /// Token endpoint, once discovery answered (or definitively did not).
    endpoint: Option<String>,
    /// Outcome of the last attempt, shared with the callers that waited for it.
    last: Option<Result<String, ServiceTokenError>>,
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    error_description: Option<String>,
}

impl ServiceTokens {
    /// Reads and validates the key file (JSON fields, `type` serviceaccount, PEM RSA key that
    /// signs) and builds the HTTP client. No network.
    pub fn new(cfg: ServiceTokenConfig) -> Result<Self, ServiceTokenError> {
        let issuer = cfg.issuer.trim().trim_end_matches('/').to_string();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(ServiceTokenError::Unavailable(format!(
                "issuer `{issuer}` is not an http(s) URL"
            )));
        }
        let grant = match &cfg.credentials {
            ServiceCredentials::KeyFile(path) => load_key_file(path)?,
            ServiceCredentials::ClientCredentials {
                client_id,
                client_secret,
            } => Grant::ClientCredentials {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
            },
        };
        let mut settings = Settings {
            max_response_bytes: 1 << 20,
            ..Settings::with_timeout(cfg.timeout)
        };
        settings.retry.attempts = MAX_ATTEMPTS;
        let upstream = Upstream::new(
            "zitadel-service-token",
            "the issuer (service token)",
            &settings,
            HttpAuth::None,
        )
        .map_err(|e| {
            ServiceTokenError::Unavailable(format!("cannot build the HTTP client: {e}"))
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                scope: scope(cfg.project_id.as_deref(), &cfg.scopes),
                issuer,
                grant,
                renew_before: cfg.renew_before,
                upstream,
                cached: Mutex::new(None),
                attempts: AtomicU64::new(0),
                flight: tokio::sync::Mutex::new(Flight::default()),
            }),
        })
    }

    /// The `scope` sent with each token request.
    pub fn scope(&self) -> &str {
        &self.inner.scope
    }

    /// A bearer token for toolgate's service user: the cached one while it is valid for longer
    /// than `renew_before`, else a new one. Concurrent callers share one request.
    pub async fn get_access_token(&self) -> Result<String, ServiceTokenError> {
        let inner = &self.inner;
        if let Some(token) = inner.cached_valid_for(inner.renew_before) {
            return Ok(token);
        }
        let seen = inner.attempts.load(Ordering::Acquire);
        let mut flight = inner.flight.lock().await;
        if inner.attempts.load(Ordering::Acquire) != seen
            && let Some(outcome) = &flight.last
        {
            // Someone fetched while we waited: their answer is ours.
            return outcome.clone();
        }
        if let Some(token) = inner.cached_valid_for(inner.renew_before) {
            return Ok(token);
        }
        let outcome = match inner.fetch(&mut flight).await {
            Ok(cached) => {
                let token = cached.token.clone();
                *inner.lock_cache() = Some(cached);
                Ok(token)
            }
            Err(err) => match inner.cached_valid_for(Duration::ZERO) {
                Some(token) => {
                    tracing::warn!(issuer = %inner.issuer, error = %err, "token renewal failed; using the current token until it expires");
                    Ok(token)
                }
                None => Err(err),
            },
        };
        flight.last = Some(outcome.clone());
        inner.attempts.fetch_add(1, Ordering::Release);
        outcome
    }
}

/// The service token as an outbound credential: an upstream configured with
/// `HttpAuth::Bearer(Credential::from_source(tokens))` sends a current token on every request.
impl SecretSource for ServiceTokens {
    fn current(&self) -> BoxFuture<'_, Result<Secret, SecretError>> {
        Box::pin(async move {
            self.get_access_token()
                .await
                .map(Secret::new)
                .map_err(|e| SecretError::Source(format!("{}: {e}", self.describe())))
        })
    }

    fn describe(&self) -> String {
        format!("Zitadel service token from {}", self.inner.issuer)
    }
}

/// The upstream kit's service-token provider: one `ServiceTokens` per spec, shared by every
/// upstream configured with the same one (one cache, one request per renewal).
#[derive(Default)]
pub struct Provider {
    built: Mutex<HashMap<ServiceTokenSpec, ServiceTokens>>,
}

impl TokenProvider for Provider {
    fn source(&self, spec: &ServiceTokenSpec) -> Result<Arc<dyn SecretSource>, String> {
        // A map of finished entries: a poisoned lock still holds consistent ones.
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tokens) = built.get(spec) {
            return Ok(Arc::new(tokens.clone()));
        }
        let mut config = ServiceTokenConfig::new(
            spec.issuer.clone(),
            ServiceCredentials::KeyFile(spec.key_file.clone()),
        );
        config.project_id = spec.project_id.clone();
        config.scopes = spec.scopes.clone();
        config.timeout = spec.timeout.unwrap_or(DEFAULT_TIMEOUT);
        config.renew_before = spec.renew_before.unwrap_or(DEFAULT_RENEW_BEFORE);
        let tokens = ServiceTokens::new(config).map_err(|e| e.to_string())?;
        built.insert(spec.clone(), tokens.clone());
        Ok(Arc::new(tokens))
    }
}

/// Make this module the upstream kit's service-token provider (once per process; later calls
/// change nothing).
pub fn install() {
    crate::adapters::http::install_token_provider(Arc::new(Provider::default()));
}

impl Inner {
    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        // The guarded value is replaced whole, so a poisoned lock still holds a consistent one.
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cached_valid_for(&self, margin: Duration) -> Option<String> {
        let cached = self.lock_cache();
        let c = cached.as_ref()?;
        (c.expires_at.checked_duration_since(Instant::now())? > margin).then(|| c.token.clone())
    }

    async fn fetch(&self, flight: &mut Flight) -> Result<Cached, ServiceTokenError> {
        let endpoint = match &flight.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => match self.discover().await {
                Ok(found) => {
                    let endpoint = found.unwrap_or_else(|| self.fallback_endpoint());
                    flight.endpoint = Some(endpoint.clone());
                    endpoint
                }
                // Not cached: discovery is tried again next time.
                Err(_) => self.fallback_endpoint(),
            },
        };
        let started = Instant::now();
        let (token, expires_in) = self.request_token(&endpoint).await?;
        tracing::debug!(issuer = %self.issuer, expires_in, "obtained a service token");
        Ok(Cached {
            token,
            expires_at: started + Duration::from_secs(expires_in),
        })
    }

    fn fallback_endpoint(&self) -> String {
        format!("{}/oauth/v2/token", self.issuer)
    }

    /// `Ok(Some)` the discovered token endpoint; `Ok(None)` the issuer has no usable discovery
    /// document (use the fallback for good); `Err` a transient failure.
    async fn discover(&self) -> Result<Option<String>, String> {
        match oidc_discovery::fetch(&self.upstream, &self.issuer).await {
            Ok(doc) => Ok(doc.token_endpoint().ok().map(str::to_string)),
            Err(e) if e.is_transient() => {
                tracing::debug!(issuer = %self.issuer, error = %e, "discovery failed");
                Err(e.to_string())
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "no usable discovery document; using the default token endpoint");
                Ok(None)
            }
        }
    }

    /// The token request (retried by the kit on transport errors and 5xx, with a freshly
    /// signed assertion per attempt): `Ok((access_token, expires_in))`.
    async fn request_token(&self, endpoint: &str) -> Result<(String, u64), ServiceTokenError> {
        let attempts = MAX_ATTEMPTS;
        let resp = self
            .upstream
            .send(Retry::Read, || {
                let request = match &self.grant {
                    Grant::JwtProfile {
                        key,
                        key_id,
                        user_id,
                    } => {
                        let assertion = sign_assertion(key, key_id, user_id, &self.issuer)?;
                        self.upstream.http().post(endpoint).form(&[
                            ("grant_type", JWT_BEARER_GRANT),
                            ("assertion", &assertion),
                            ("scope", &self.scope),
                        ])
                    }
                    Grant::ClientCredentials {
                        client_id,
                        client_secret,
                    } => self
                        .upstream
                        .http()
                        .post(endpoint)
                        // RFC 6749 §2.3.1: form-encode both parts before Basic.
                        .basic_auth(form_encode(client_id), Some(form_encode(client_secret)))
                        .form(&[("grant_type", "client_credentials"), ("scope", &self.scope)]),
                };
                Ok(request.header(reqwest::header::ACCEPT, "application/json"))
            })
            .await
            .map_err(|e| match e {
                // Only signing can fail before a request goes out; its message names the key file.
                CallError::Failed(why) if why.starts_with(SIGNING) => {
                    ServiceTokenError::KeyFile(why)
                }
                other => ServiceTokenError::Unavailable(format!(
                    "token endpoint {endpoint}: {other} (after {attempts} attempts)"
                )),
            })?;
        let status = resp.status;
        let body = resp.body;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<OAuthError>(&body) {
                Ok(e) => ServiceTokenError::Rejected {
                    error: e.error,
                    description: e.error_description.unwrap_or_default(),
                },
                Err(_) => ServiceTokenError::Unavailable(format!(
                    "token endpoint {endpoint} answered HTTP {status} without an OAuth error body"
                )),
            });
        }
        let unusable = |why: &str| {
            ServiceTokenError::Unavailable(format!(
                "token endpoint {endpoint} answered HTTP {status} {why}"
            ))
        };
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| unusable("with a body that is not a token response"))?;
        let token = parsed
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unusable("without an access_token"))?;
        if parsed
            .token_type
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(unusable("with a token_type other than Bearer"));
        }
        Ok((token, parsed.expires_in.unwrap_or(DEFAULT_EXPIRES_IN)))
    }
}

/// `openid`, the project's audience and roles scopes, then the extra ones, each once.
fn scope(project_id: Option<&str>, extra: &[String]) -> String {
    let mut scopes = vec!["openid".to_string()];
    if let Some(id) = project_id.map(str::trim).filter(|id| !id.is_empty()) {
        scopes.push(format!("urn:zitadel:iam:org:project:id:{id}:aud"));
        scopes.push(ROLES_SCOPE.to_string());
    }
    for s in extra.iter().flat_map(|s| s.split_whitespace()) {
        if !scopes.iter().any(|have| have == s) {
            scopes.push(s.to_string());
        }
    }
    scopes.join(" ")
}

/// Parse and check a service-user key file; errors name the file and the field only.
fn load_key_file(path: &Path) -> Result<Grant, ServiceTokenError> {
    let shown = path.display();
    let bad = |why: String| ServiceTokenError::KeyFile(format!("{shown}: {why}"));
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    // Parsed as a Value: serde's typed errors can quote field values, and one is the key.
    let doc: Value = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "is not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let field = |name: &str| -> Result<String, ServiceTokenError> {
        match doc.get(name) {
            None | Some(Value::Null) => Err(bad(format!("field `{name}` is missing"))),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(Value::String(_)) => Err(bad(format!("field `{name}` is empty"))),
            Some(_) => Err(bad(format!("field `{name}` is not a string"))),
        }
    };
    let kind = field("type")?;
    if kind != "serviceaccount" {
        let hint = if kind == "application" {
            " (an API-app key; toolgate's own token needs a service-user key)"
        } else {
            ""
        };
        return Err(bad(format!(
            "field `type` is `{kind}`, expected `serviceaccount`{hint}"
        )));
    }
    let key_id = field("keyId")?;
    let user_id = field("userId")?;
    let pem = field("key")?;
    let key = EncodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|_| bad("field `key` is not a PEM RSA private key".into()))?;
    // A trial signature: the PEM wrapper can be right around a key that does not parse.
    sign_assertion(&key, &key_id, &user_id, "https://issuer.invalid")
        .map_err(|_| bad("field `key` is not a usable RSA private key".into()))?;
    Ok(Grant::JwtProfile {
        key,
        key_id,
        user_id,
    })
}

/// The JWT profile assertion: `iss = sub = userId`, `aud = issuer`, valid for an hour.
fn sign_assertion(
    key: &EncodingKey,
    key_id: &str,
    user_id: &str,
    issuer: &str,
) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key_id.to_string());
    let claims = AssertionClaims {
        iss: user_id,
        sub: user_id,
        aud: issuer,
        iat: now,
        exp: now + ASSERTION_LIFETIME,
    };
    jsonwebtoken::encode(&header, &claims, key)
        .map_err(|e| format!("cannot sign the assertion with field `key`: {:?}", e.kind()))
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_has_openid_project_and_extras_once() {
        assert_eq!(scope(None, &[]), "openid");
        assert_eq!(
            scope(Some("123"), &["openid".into(), "profile email".into()]),
            "openid urn:zitadel:iam:org:project:id:123:aud urn:zitadel:iam:org:projects:roles profile email"
        );
    }

    #[test]
    fn form_encoding_follows_rfc_6749() {
        assert_eq!(form_encode("svc@acme:x y+/"), "svc%40acme%3Ax+y%2B%2F");
        assert_eq!(form_encode("abc-._*"), "abc-._*");
    }

    #[test]
    fn debug_hides_the_secret() {
        let cfg = ServiceTokenConfig::new(
            "https://issuer.example",
            ServiceCredentials::ClientCredentials {
                client_id: "toolgate".into(),
                client_secret: "hunter2-secret".into(),
            },
        );
        let shown = format!("{cfg:?}");
        assert!(
            shown.contains("toolgate") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn key_file_errors_name_the_field_not_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.json");
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nTUlJQ1NFQ1JFVEtFWQ==\n-----END RSA PRIVATE KEY-----\n";
        let doc = serde_json::json!({"type": "serviceaccount", "keyId": "k1", "key": pem, "userId": "u1"});
        std::fs::write(&path, doc.to_string()).expect("write");
        let err = match load_key_file(&path) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a garbage key was accepted"),
        };
        assert!(err.contains("key.json") && err.contains("`key`"), "{err}");
        assert!(!err.contains("TUlJQ1NF"), "{err}");

        std::fs::write(
            &path,
            r#"{"type":"application","keyId":"k","key":"x","appId":"a"}"#,
        )
        .expect("write");
        let err = load_key_file(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("`type`") && err.contains("application"),
            "{err}"
        );

        std::fs::write(&path, r#"{"type":"serviceaccount","keyId":"k","key":"x"}"#).expect("write");
        let err = load_key_file(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("`userId` is missing"), "{err}");
    }

    #[test]
    fn the_provider_keeps_one_token_cache_per_spec_and_names_bad_key_files() {
        use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).expect("key");
        let pem = key.to_pkcs1_pem(LineEnding::LF).expect("pem").to_string();
        let good = dir.path().join("sa.json");
        let doc = serde_json::json!({"type": "serviceaccount", "keyId": "k1", "key": pem, "userId": "u1"});
        std::fs::write(&good, doc.to_string()).expect("write");
        let spec = ServiceTokenSpec {
            issuer: "https://id.example".into(),
            key_file: good,
            project_id: Some("p1".into()),
            scopes: Vec::new(),
            timeout: None,
            renew_before: None,
        };
        let provider = Provider::default();
        let first = provider.source(&spec).expect("valid key file");
        assert_eq!(
            first.describe(),
            "Zitadel service token from https://id.example"
        );
        provider.source(&spec).expect("the same spec again");
        let other = ServiceTokenSpec {
            project_id: Some("p2".into()),
            ..spec.clone()
        };
        provider.source(&other).expect("another project");
        let built = provider.built.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(built.len(), 2, "one ServiceTokens per distinct spec");
        assert_eq!(
            built[&other].scope(),
            "openid urn:zitadel:iam:org:project:id:p2:aud urn:zitadel:iam:org:projects:roles"
        );
        drop(built);

        let bad = dir.path().join("bad.json");
        let doc = serde_json::json!({"type": "serviceaccount", "keyId": "k1", "key": "MIIsecret", "userId": "u1"});
        std::fs::write(&bad, doc.to_string()).expect("write");
        let err = match provider.source(&ServiceTokenSpec {
            key_file: bad,
            ..spec
        }) {
            Err(e) => e,
            Ok(_) => panic!("a key that is no key was accepted"),
        };
        assert!(err.contains("bad.json") && err.contains("`key`"), "{err}");
        assert!(!err.contains("MIIsecret"), "{err}");
    }
}
