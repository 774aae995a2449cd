//! `auth.mode: zitadel`: inbound bearer tokens checked against a Zitadel issuer. JWT access
//! tokens are verified locally with the issuer's JWKS (found through OIDC discovery); opaque
//! tokens go to the introspection endpoint. Owns verification only: it never forwards the
//! caller's token anywhere but the issuer's introspection endpoint, and never logs a token or
//! a client secret. When the issuer cannot be reached it says so (`VerifyError::Unavailable`)
//! and accepts nothing it could not check.

mod introspection;
mod keys;
mod roles;
mod upstream;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use futures::future::BoxFuture;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use reqwest::StatusCode;
use serde_json::Value;

use super::oidc_discovery::{self, Discovery, DiscoveryError};
use super::{AuthError, Authenticator, bearer};
use crate::adapters::http::Credential;
use crate::core::principal::Principal;
use introspection::{AnswerCache, ClientAuth, RefusalCache, cache_lifetime, token_digest};
use keys::{ACCEPTED, KeyState, Lookup, VerifyKey, parse_jwks};
use upstream::Upstream;

pub use roles::roles_from_claims;

/// Clock skew allowed on `exp`, `nbf` and `iat`, seconds.
const LEEWAY: u64 = 60;
/// Longer bearer values are refused before any parsing or upstream call.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// The discovery document is re-read this often (endpoints rarely move).
const DISCOVERY_MAX_AGE: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct ZitadelConfig {
    /// e.g. `https://acme.zitadel.cloud` (a trailing `/` is ignored).
    pub issuer: String,
    /// The project whose role claim counts.
    pub project_id: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// API-app credentials for introspecting opaque tokens; without them opaque tokens fail.
    pub introspection: Option<IntrospectionAuth>,
    /// Per-attempt timeout (connect and total) of every call to the issuer.
    pub timeout: Duration,
    /// Read the generic roles claim when the project's own claim is absent (see
    /// [`roles_from_claims`]).
    pub trust_generic_roles_claim: bool,
    /// How long an opaque token the issuer refused is refused again without asking it (zero:
    /// ask every time). Outages (the issuer unreachable or failing) are never cached.
    pub negative_cache: Duration,
}

#[derive(Clone)]
pub enum IntrospectionAuth {
    Basic {
        client_id: String,
        /// From the config's credential forms (inline, file re-read on change, env).
        client_secret: Credential,
    },
    /// Zitadel API-app key file: `{"type":"application","keyId","key","appId","clientId"}`.
    PrivateKeyJwt { key_file: PathBuf },
}

/// Written by hand so the client secret never prints.
impl std::fmt::Debug for IntrospectionAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { client_id, .. } => f
                .debug_struct("Basic")
                .field("client_id", client_id)
                .field("client_secret", &"***")
                .finish(),
            Self::PrivateKeyJwt { key_file } => f
                .debug_struct("PrivateKeyJwt")
                .field("key_file", key_file)
                .finish(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The token is not acceptable (→ 401). The message never quotes the token.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The issuer could not be asked, so the token could not be checked (→ 503).
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
}

/// A verified token: the principal plus what `Principal` does not carry (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub principal: Principal,
    /// Org ids from the role claims (which orgs granted the roles).
    pub org_ids: Vec<String>,
    /// The token's `exp` (unix seconds), when it had one.
    pub expires_at: Option<u64>,
}

/// The issuer's discovery document and when it was read.
struct Discovered {
    doc: Discovery,
    fetched_at: Instant,
}

impl From<DiscoveryError> for VerifyError {
    fn from(e: DiscoveryError) -> Self {
        VerifyError::Unavailable(e.to_string())
    }
}

pub struct ZitadelVerifier {
    issuer: String,
    project_id: String,
    trust_generic_roles_claim: bool,
    audiences: Vec<String>,
    upstream: Upstream,
    client_auth: Option<ClientAuth>,
    discovery: tokio::sync::Mutex<Option<Discovered>>,
    keys: Mutex<KeyState>,
    /// Held while fetching the JWKS so concurrent unknown kids cause one fetch.
    key_fetch: tokio::sync::Mutex<()>,
    answers: Mutex<AnswerCache>,
    refusals: Mutex<RefusalCache>,
}

impl ZitadelVerifier {
    /// Checks the config and reads the introspection key file if one is named; no network I/O
    /// (discovery and keys are fetched on first use).
    pub fn new(cfg: ZitadelConfig) -> Result<Self, String> {
        let issuer = cfg.issuer.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&issuer)
            .map_err(|e| format!("zitadel issuer `{issuer}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(format!("zitadel issuer `{issuer}` must be an http(s) URL"));
        }
        if cfg.project_id.trim().is_empty() {
            return Err("zitadel project_id must not be empty".into());
        }
        let audiences: Vec<String> = cfg
            .audiences
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        if audiences.is_empty() {
            return Err("zitadel audiences must name at least one accepted audience".into());
        }
        if cfg.timeout.is_zero() {
            return Err("zitadel timeout must be positive".into());
        }
        let client_auth = cfg
            .introspection
            .as_ref()
            .map(ClientAuth::from_config)
            .transpose()?;
        Ok(Self {
            issuer,
            project_id: cfg.project_id,
            trust_generic_roles_claim: cfg.trust_generic_roles_claim,
            audiences,
            upstream: Upstream::new(cfg.timeout)?,
            client_auth,
            discovery: tokio::sync::Mutex::new(None),
            keys: Mutex::new(KeyState::default()),
            key_fetch: tokio::sync::Mutex::new(()),
            answers: Mutex::new(AnswerCache::default()),
            refusals: Mutex::new(RefusalCache::new(cfg.negative_cache)),
        })
    }

    /// The principal behind a bearer token.
    pub async fn verify_token(&self, token: &str) -> Result<Principal, VerifyError> {
        self.verify(token).await.map(|v| v.principal)
    }

    /// Like `verify_token`, with the org ids and expiry as well.
    pub async fn verify(&self, token: &str) -> Result<Verified, VerifyError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::Invalid("empty or oversized token".into()));
        }
        // A JWS in compact form has exactly three parts; opaque Zitadel tokens have no dots.
        if token.split('.').count() == 3 {
            self.verify_jwt(token).await
        } else {
            self.introspect(token).await
        }
    }

    async fn verify_jwt(&self, token: &str) -> Result<Verified, VerifyError> {
        // `alg: none` and unknown algorithms fail here: jsonwebtoken has no variant for them.
        let header = decode_header(token).map_err(|_| {
            VerifyError::Invalid(
                "malformed JWT header or an algorithm that is never accepted".into(),
            )
        })?;
        // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; toolgate
        // understands none, so a token that lists any is refused.
        if names_critical_extensions(token) {
            return Err(VerifyError::Invalid(
                "the token's header lists critical extensions (crit) that toolgate does not understand".into(),
            ));
        }
        if !ACCEPTED.contains(&header.alg) {
            return Err(VerifyError::Invalid(format!(
                "algorithm {:?} is not accepted (RS256, ES256, EdDSA only)",
                header.alg
            )));
        }
        let kid = header
            .kid
            .filter(|k| !k.is_empty())
            .ok_or_else(|| VerifyError::Invalid("the token names no signing key (kid)".into()))?;
        let key = self.signing_key(&kid).await?;
        // The key decides the algorithm; the header only has to agree with it.
        if key.alg != header.alg {
            return Err(VerifyError::Invalid(
                "the token's algorithm does not match its signing key".into(),
            ));
        }
        let mut validation = Validation::new(key.alg);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Exactly the issuer discovery names (a trailing slash makes another issuer).
        let issuer = self.discovery().await?.issuer;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&self.audiences);
        let claims = decode::<Value>(token, &key.key, &validation)
            .map_err(|e| VerifyError::Invalid(jwt_problem(e.kind())))?
            .claims;
        let now = jsonwebtoken::get_current_timestamp();
        match claims.get("iat") {
            None => {}
            Some(iat) => match iat.as_u64() {
                Some(iat) if iat <= now + LEEWAY => {}
                Some(_) => return Err(VerifyError::Invalid("token issued in the future".into())),
                None => return Err(VerifyError::Invalid("`iat` is not a number".into())),
            },
        }
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| VerifyError::Invalid("`sub` is empty or not a string".into()))?
            .to_string();
        Ok(self.verified(&claims, sub))
    }

    /// The key for `kid`: cached, or after one (rate-limited) JWKS fetch.
    async fn signing_key(&self, kid: &str) -> Result<VerifyKey, VerifyError> {
        if let Some(done) = self.settled(kid)? {
            return Ok(done);
        }
        let _single_flight = self.key_fetch.lock().await;
        // Another request may have fetched while this one waited.
        let fallback = match self.lock_keys().lookup(kid, Instant::now()) {
            Lookup::Found(k) => return Ok(k),
            Lookup::Unknown { failed } => return Err(unknown_key(failed)),
            Lookup::Fetch { fallback } => fallback,
        };
        match self.fetch_keys().await {
            Ok(set) => {
                let now = Instant::now();
                let mut state = self.lock_keys();
                state.fetched(set, now);
                match state.lookup(kid, now) {
                    Lookup::Found(k) => Ok(k),
                    _ => Err(VerifyError::Invalid(
                        "unknown signing key: the issuer does not publish it".into(),
                    )),
                }
            }
            Err(e) => {
                self.lock_keys().fetch_failed(Instant::now());
                match fallback {
                    Some(k) => {
                        tracing::warn!(error = %e, "refreshing the issuer's keys failed; using the cached set");
                        Ok(k)
                    }
                    None => Err(e),
                }
            }
        }
    }

    /// `Some(key)` or an error when the cache decides alone; `None` when a fetch is due.
    fn settled(&self, kid: &str) -> Result<Option<VerifyKey>, VerifyError> {
        match self.lock_keys().lookup(kid, Instant::now()) {
            Lookup::Found(k) => Ok(Some(k)),
            Lookup::Unknown { failed } => Err(unknown_key(failed)),
            Lookup::Fetch { .. } => Ok(None),
        }
    }

    async fn fetch_keys(
        &self,
    ) -> Result<std::collections::HashMap<String, VerifyKey>, VerifyError> {
        let discovery = self.discovery().await?;
        let doc = self
            .upstream
            .get_json(discovery.jwks_uri()?, "JWKS")
            .await?;
        let set = parse_jwks(&doc).map_err(|m| VerifyError::Unavailable(format!("JWKS: {m}")))?;
        tracing::debug!(keys = set.len(), "fetched the issuer's signing keys");
        Ok(set)
    }

    async fn discovery(&self) -> Result<Discovery, VerifyError> {
        let mut cached = self.discovery.lock().await;
        if let Some(d) = cached.as_ref()
            && d.fetched_at.elapsed() < DISCOVERY_MAX_AGE
        {
            return Ok(d.doc.clone());
        }
        match self.fetch_discovery().await {
            Ok(doc) => {
                *cached = Some(Discovered {
                    doc: doc.clone(),
                    fetched_at: Instant::now(),
                });
                Ok(doc)
            }
            // Endpoints rarely move: an old document beats none.
            Err(e) => cached.as_ref().map(|d| d.doc.clone()).ok_or(e),
        }
    }

    /// The issuer's document; without a `jwks_uri` it is of no use here.
    async fn fetch_discovery(&self) -> Result<Discovery, VerifyError> {
        let doc = oidc_discovery::fetch(self.upstream.kit(), &self.issuer).await?;
        doc.jwks_uri()?;
        Ok(doc)
    }

    async fn introspect(&self, token: &str) -> Result<Verified, VerifyError> {
        let Some(auth) = &self.client_auth else {
            return Err(VerifyError::Invalid(
                "opaque token, and no introspection credentials are configured".into(),
            ));
        };
        let digest = token_digest(token);
        if let Some(hit) = self.lock_answers().get(&digest, Instant::now()) {
            return Ok(hit);
        }
        if let Some(reason) = self.lock_refusals().get(&digest, Instant::now()) {
            return Err(VerifyError::Invalid(reason));
        }
        let outcome = self.introspect_uncached(auth, token, digest).await;
        // A token the issuer refused is refused again for a while without asking it, so bad
        // tokens cannot hammer it; an outage (Unavailable) is never remembered.
        if let Err(VerifyError::Invalid(reason)) = &outcome {
            self.lock_refusals()
                .put(digest, reason.clone(), Instant::now());
        }
        outcome
    }

    /// One introspection request and the checks of its answer.
    async fn introspect_uncached(
        &self,
        auth: &ClientAuth,
        token: &str,
        digest: [u8; 32],
    ) -> Result<Verified, VerifyError> {
        let discovery = self.discovery().await?;
        let endpoint = discovery
            .introspection_endpoint()
            .map(str::to_string)
            .unwrap_or_else(|_| format!("{}/oauth/v2/introspect", self.issuer));
        // Read once per introspection, so a rotated secret file is used from the next one on.
        let secret = auth.current_secret().await?;
        let build = || {
            let form = vec![
                ("token", token.to_string()),
                ("token_type_hint", "access_token".to_string()),
            ];
            let request = self
                .upstream
                .http()
                .post(&endpoint)
                .header(reqwest::header::ACCEPT, "application/json");
            auth.apply(request, &self.issuer, form, secret.as_ref())
        };
        let answer = self.upstream.call("token introspection", build).await?;
        if answer.status != StatusCode::OK {
            let code = answer
                .body
                .get("error")
                .and_then(Value::as_str)
                .filter(|c| {
                    c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .map(|c| format!(", {c}"))
                .unwrap_or_default();
            tracing::error!(
                status = answer.status.as_u16(),
                "the issuer refused toolgate's introspection request; check the introspection credentials"
            );
            return Err(VerifyError::Unavailable(format!(
                "token introspection: the issuer refused toolgate's request (HTTP {}{code}); check the introspection client credentials",
                answer.status.as_u16()
            )));
        }
        let body = answer.body;
        if body.get("active") != Some(&Value::Bool(true)) {
            return Err(VerifyError::Invalid(
                "token is not active (expired, revoked or unknown)".into(),
            ));
        }
        let issuer = self.discovery().await?.issuer;
        if let Some(iss) = body.get("iss")
            && iss.as_str() != Some(issuer.as_str())
        {
            return Err(VerifyError::Invalid("token from another issuer".into()));
        }
        if !self.audience_accepted(body.get("aud")) {
            return Err(VerifyError::Invalid("token audience not accepted".into()));
        }
        let now = jsonwebtoken::get_current_timestamp();
        let exp = match body.get("exp") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| VerifyError::Invalid("`exp` is not a number".into()))?,
            ),
        };
        if exp.is_some_and(|e| e + LEEWAY < now) {
            return Err(VerifyError::Invalid("token expired".into()));
        }
        let sub = ["sub", "client_id"]
            .iter()
            .find_map(|k| {
                body.get(*k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            })
            .ok_or_else(|| VerifyError::Invalid("introspection names no subject".into()))?
            .to_string();
        let verified = self.verified(&body, sub);
        self.lock_answers().put(
            digest,
            verified.clone(),
            cache_lifetime(exp, now),
            Instant::now(),
        );
        Ok(verified)
    }

    fn audience_accepted(&self, aud: Option<&Value>) -> bool {
        let accepted = |a: &Value| {
            a.as_str()
                .is_some_and(|a| self.audiences.iter().any(|x| x == a))
        };
        match aud {
            Some(Value::Array(items)) => items.iter().any(accepted),
            Some(single) => accepted(single),
            None => false,
        }
    }

    /// Principal, org ids and expiry from verified claims (JWT payload or introspection).
    fn verified(&self, claims: &Value, sub: String) -> Verified {
        let (roles, org_ids) =
            roles_from_claims(claims, &self.project_id, self.trust_generic_roles_claim);
        let name = ["name", "preferred_username", "username"]
            .iter()
            .find_map(|k| {
                claims
                    .get(*k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            })
            .map(str::to_string)
            .unwrap_or_else(|| sub.clone());
        // The user's own organisation when the token says it, else the org its roles belong to.
        let org = claims
            .get("urn:zitadel:iam:user:resourceowner:id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| org_ids.first().cloned())
            .unwrap_or_default();
        Verified {
            principal: Principal::new(sub, name, roles).with_org(org),
            org_ids,
            expires_at: claims.get("exp").and_then(Value::as_u64),
        }
    }

    fn lock_keys(&self) -> std::sync::MutexGuard<'_, KeyState> {
        // Plain data with no cross-field invariant a panic could break.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_answers(&self) -> std::sync::MutexGuard<'_, AnswerCache> {
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_refusals(&self) -> std::sync::MutexGuard<'_, RefusalCache> {
        self.refusals.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn unknown_key(fetch_failed: bool) -> VerifyError {
    if fetch_failed {
        VerifyError::Unavailable(
            "unknown signing key, and the issuer's key set could not be fetched".into(),
        )
    } else {
        VerifyError::Invalid(
            "unknown signing key (the key set was fetched less than 30 s ago)".into(),
        )
    }
}

/// Whether the JWS header has a `crit` member. Called after `decode_header` accepted the header,
/// so the segment decodes; anything else counts as no `crit` (and failed there already).
fn names_critical_extensions(token: &str) -> bool {
    use base64::Engine;
    token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|h| h.get("crit").is_some())
}

/// What was wrong, in words that never quote the token.
fn jwt_problem(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "token expired".into(),
        ErrorKind::ImmatureSignature => "token not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "token audience not accepted".into(),
        ErrorKind::InvalidIssuer => "token from another issuer".into(),
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::InvalidAlgorithm => {
            "the token's algorithm does not match its signing key".into()
        }
        ErrorKind::MissingRequiredClaim(c) => format!("required claim `{c}` missing"),
        ErrorKind::InvalidClaimFormat(c) => format!("claim `{c}` malformed"),
        _ => "malformed token".into(),
    }
}

impl Authenticator for ZitadelVerifier {
    fn health(&self) -> Option<crate::adapters::http::Health> {
        Some(self.upstream.health())
    }

    fn authenticate<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, Result<Principal, AuthError>> {
        Box::pin(async move {
            let token = bearer(headers).ok_or(AuthError::Missing)?;
            match self.verify_token(token).await {
                Ok(principal) => Ok(principal),
                Err(VerifyError::Invalid(reason)) => {
                    tracing::debug!(%reason, "bearer token rejected");
                    Err(AuthError::Invalid)
                }
                Err(VerifyError::Unavailable(reason)) => {
                    tracing::debug!(%reason, "bearer token not checked: identity provider unavailable");
                    Err(AuthError::Unavailable)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn config(issuer: &str) -> ZitadelConfig {
        ZitadelConfig {
            issuer: issuer.into(),
            project_id: "p1".into(),
            audiences: vec!["p1".into()],
            introspection: Some(IntrospectionAuth::Basic {
                client_id: "api@toolgate".into(),
                client_secret: Credential::inline("very-secret-value"),
            }),
            timeout: Duration::from_secs(1),
            trust_generic_roles_claim: false,
            negative_cache: Duration::from_secs(60),
        }
    }

    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }

    #[test]
    fn config_problems_are_reported_and_the_secret_never_prints() {
        assert!(ZitadelVerifier::new(config("not a url")).is_err());
        assert!(ZitadelVerifier::new(config("ftp://x.example")).is_err());
        let mut c = config("https://acme.zitadel.cloud/");
        c.audiences = vec![String::new()];
        assert!(ZitadelVerifier::new(c).is_err());
        let mut c = config("https://acme.zitadel.cloud/");
        c.project_id = " ".into();
        assert!(ZitadelVerifier::new(c).is_err());
        let c = config("https://acme.zitadel.cloud/");
        let printed = format!("{c:?}");
        assert!(!printed.contains("very-secret-value"), "{printed}");
        assert!(printed.contains("api@toolgate"));
        let v = ZitadelVerifier::new(c).expect("valid, and no I/O happens here");
        assert_eq!(v.issuer, "https://acme.zitadel.cloud");
    }

    #[tokio::test]
    async fn malformed_and_unacceptable_jwts_are_refused_before_any_io() {
        // The issuer is unreachable: anything that reached it would be `Unavailable`.
        let v = ZitadelVerifier::new(config(&format!("http://127.0.0.1:{}", closed_port())))
            .expect("verifier");
        let b64 = |s: &str| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
        };
        let payload = b64(r#"{"sub":"x","exp":9999999999}"#);
        for (header, why) in [
            (r#"{"alg":"none","kid":"k"}"#, "never accepted"),
            (r#"{"alg":"HS256","kid":"k"}"#, "not accepted"),
            (r#"{"alg":"PS256","kid":"k"}"#, "not accepted"),
            (r#"{"alg":"RS256"}"#, "no signing key"),
            ("not json", "malformed"),
        ] {
            let token = format!("{}.{payload}.c2ln", b64(header));
            match v.verify(&token).await {
                Err(VerifyError::Invalid(m)) => {
                    assert!(m.contains(why), "{header}: {m}");
                    assert!(!m.contains(&payload), "errors never quote the token");
                }
                other => panic!("{header}: expected Invalid, got {other:?}"),
            }
        }
        assert!(matches!(v.verify("").await, Err(VerifyError::Invalid(_))));
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert!(matches!(
            v.verify(&huge).await,
            Err(VerifyError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn unreachable_issuer_is_unavailable_never_invalid_and_nothing_is_accepted() {
        let v = ZitadelVerifier::new(config(&format!("http://127.0.0.1:{}", closed_port())))
            .expect("verifier");
        let b64 = |s: &str| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
        };
        let jwt = format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"RS256","kid":"k1"}"#),
            b64(r#"{"sub":"x"}"#)
        );
        for token in [jwt.as_str(), "opaque-token-value"] {
            match v.verify(token).await {
                Err(VerifyError::Unavailable(m)) => {
                    assert!(!m.contains(token), "{m}");
                    assert!(!m.contains("very-secret-value"), "{m}");
                }
                other => panic!("expected Unavailable, got {other:?}"),
            }
        }
        let mut headers = HeaderMap::new();
        assert_eq!(v.authenticate(&headers).await, Err(AuthError::Missing));
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer opaque-token-value"),
        );
        assert_eq!(v.authenticate(&headers).await, Err(AuthError::Unavailable));
    }

    #[tokio::test]
    async fn opaque_tokens_without_introspection_credentials_are_invalid() {
        let mut c = config(&format!("http://127.0.0.1:{}", closed_port()));
        c.introspection = None;
        let v = ZitadelVerifier::new(c).expect("verifier");
        assert!(matches!(
            v.verify("opaque-token-value").await,
            Err(VerifyError::Invalid(_))
        ));
    }
}
