//! The approvals page's sign-in against the OIDC issuer (`auth.mode: zitadel`): authorization
//! code flow with PKCE, one-shot pending sign-ins bound to a pre-login cookie, the issuer's
//! endpoints (`auth::oidc_discovery`), and the code exchange. The page owns cookies, sessions and HTML; this
//! module owns the protocol and must not render anything or keep sessions.

use crate::adapters::http::{HttpAuth, Retry, Settings, Upstream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::oidc_discovery::{self, Discovery, DiscoveryError};
use super::{AuthError, Authenticator};
use crate::config::ZitadelSettings;
use crate::core::principal::Principal;

/// How long a started sign-in may stay at the identity provider.
pub const OIDC_LOGIN_TTL: Duration = Duration::from_secs(600);
/// Sign-ins in flight kept at most; the oldest go first.
pub const MAX_PENDING_LOGINS: usize = 10_000;
/// Largest discovery document or token response read from the issuer.
const MAX_IDP_RESPONSE: usize = 256 * 1024;

/// 256 random bits, URL-safe base64 (session ids, CSRF tokens, OIDC state and verifier).
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Equal strings, compared in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// A sign-in sent to the identity provider, keyed by the SHA-256 of its pre-login cookie.
struct PendingLogin {
    state: String,
    code_verifier: String,
    next: String,
    created: Instant,
}

/// What the issuer sent the browser back with.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    /// Seconds the access token lives (RFC 6749 §5.1).
    expires_in: Option<u64>,
    error: Option<String>,
}

/// How long an access token stays valid: the token response's `expires_in`, else a JWT's `exp`
/// (read after the token was verified), else unknown (an opaque token without `expires_in`).
pub fn token_lifetime(access_token: &str, expires_in: Option<u64>) -> Option<Duration> {
    if let Some(seconds) = expires_in {
        return Some(Duration::from_secs(seconds));
    }
    let payload = access_token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let exp = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_u64()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(exp.saturating_sub(now)))
}

/// Why a sign-in failed: the status and what the page may show (never a token or secret).
#[derive(Debug)]
pub struct OidcFailure(pub StatusCode, pub String);

impl OidcFailure {
    fn unavailable(what: &str) -> Self {
        OidcFailure(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The identity provider could not be reached ({what}); try again shortly."),
        )
    }
}

/// A started sign-in: where to send the browser, and the pre-login cookie value to set.
pub struct Authorize {
    pub location: String,
    pub cookie: String,
}

/// Sign-ins in flight, the issuer's endpoints (discovered once) and an HTTP client.
pub struct OidcLogins {
    pending: Mutex<HashMap<[u8; 32], PendingLogin>>,
    discovery: Mutex<Option<Arc<Discovery>>>,
    http: Mutex<Option<Arc<Upstream>>>,
    ttl: Duration,
    max: usize,
}

impl OidcLogins {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            discovery: Mutex::new(None),
            http: Mutex::new(None),
            ttl,
            max: max.max(1),
        }
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], PendingLogin>> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remembers a sign-in; returns its pre-login cookie value.
    fn begin(&self, login: PendingLogin) -> Result<String, getrandom::Error> {
        let id = random_token()?;
        let mut map = self.lock_pending();
        let ttl = self.ttl;
        map.retain(|_, p| p.created.elapsed() < ttl);
        while map.len() >= self.max {
            let Some(oldest) = map.iter().min_by_key(|(_, p)| p.created).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(key(&id), login);
        Ok(id)
    }

    /// Takes (one use only) the live sign-in of a pre-login cookie.
    fn take(&self, id: &str) -> Option<PendingLogin> {
        self.lock_pending()
            .remove(&key(id))
            .filter(|p| p.created.elapsed() < self.ttl)
    }

    /// The identity provider through the upstream kit (breaker, metrics, byte cap), built once.
    fn client(&self, timeout: Duration) -> Result<Arc<Upstream>, OidcFailure> {
        let mut guard = self
            .http
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let settings = Settings {
            max_response_bytes: MAX_IDP_RESPONSE,
            ..Settings::with_timeout(timeout)
        };
        let client = Upstream::new(
            "issuer-login",
            "the identity provider",
            &settings,
            HttpAuth::None,
        )
        .map(Arc::new)
        .map_err(|_| OidcFailure::unavailable("no HTTP client"))?;
        *guard = Some(client.clone());
        Ok(client)
    }

    /// The issuer's discovery document, fetched on first use (and again after a failure); it
    /// must name the authorization and token endpoints.
    async fn discovery(&self, z: &ZitadelSettings) -> Result<Arc<Discovery>, OidcFailure> {
        let cached = self
            .discovery
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some(d) = cached {
            return Ok(d);
        }
        let http = self.client(z.timeout)?;
        let d = oidc_discovery::fetch(&http, &z.issuer)
            .await
            .and_then(|d| {
                d.authorization_endpoint()?;
                d.token_endpoint()?;
                Ok(d)
            })
            .map_err(|e| {
                tracing::warn!(error = %e, "approvals page: OIDC discovery failed");
                match e {
                    DiscoveryError::OtherIssuer { .. } => {
                        OidcFailure::unavailable("discovery names another issuer")
                    }
                    _ => OidcFailure::unavailable("discovery"),
                }
            })?;
        let d = Arc::new(d);
        *self
            .discovery
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(d.clone());
        Ok(d)
    }

    /// Starts a sign-in that comes back to `redirect_uri` and then goes on to `next`.
    pub async fn authorize(
        &self,
        z: &ZitadelSettings,
        redirect_uri: &str,
        next: &str,
    ) -> Result<Authorize, OidcFailure> {
        let Some(client_id) = z.web_client_id.as_deref() else {
            return Err(OidcFailure(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "This page cannot sign anyone in: page login needs auth.web_client_id (a \
                     Zitadel web app using the authorization code flow with PKCE, redirect URI \
                     {redirect_uri}). API callers are not affected."
                ),
            ));
        };
        let discovery = self.discovery(z).await?;
        let no_randomness = || {
            OidcFailure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no randomness available for a sign-in".into(),
            )
        };
        let csrf_state = random_token().map_err(|_| no_randomness())?;
        let nonce = random_token().map_err(|_| no_randomness())?;
        let code_verifier = random_token().map_err(|_| no_randomness())?;
        let challenge = pkce_challenge(&code_verifier);
        let endpoint = discovery
            .authorization_endpoint()
            .map_err(|_| OidcFailure::unavailable("bad authorization_endpoint"))?;
        let mut url = reqwest::Url::parse(endpoint)
            .map_err(|_| OidcFailure::unavailable("bad authorization_endpoint"))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &oidc_scope(z))
            .append_pair("state", &csrf_state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let cookie = self
            .begin(PendingLogin {
                state: csrf_state,
                code_verifier,
                next: next.to_string(),
                created: Instant::now(),
            })
            .map_err(|_| no_randomness())?;
        Ok(Authorize {
            location: url.to_string(),
            cookie,
        })
    }

    /// Checks the callback against the sign-in its pre-login cookie names, redeems the code and
    /// authenticates the token: the principal, where the browser goes next (unchecked), and how
    /// long the token lives (a page session must not outlive it).
    pub async fn finish(
        &self,
        z: &ZitadelSettings,
        auth: &dyn Authenticator,
        redirect_uri: &str,
        pre_login_cookie: Option<&str>,
        query: CallbackQuery,
    ) -> Result<(Principal, String, Option<Duration>), OidcFailure> {
        let Some(client_id) = z.web_client_id.as_deref() else {
            return Err(OidcFailure(
                StatusCode::SERVICE_UNAVAILABLE,
                "page login needs auth.web_client_id".into(),
            ));
        };
        let expired = || {
            OidcFailure(
                StatusCode::BAD_REQUEST,
                "This sign-in expired or was started in another browser; sign in again.".into(),
            )
        };
        let pending = pre_login_cookie
            .filter(|c| !c.is_empty())
            .and_then(|c| self.take(c))
            .ok_or_else(expired)?;
        let given_state = query.state.as_deref().unwrap_or_default();
        if given_state.is_empty() || !same_secret(&pending.state, given_state) {
            return Err(OidcFailure(
                StatusCode::BAD_REQUEST,
                "This sign-in does not match the one this browser started (state mismatch); sign in again."
                    .into(),
            ));
        }
        if let Some(error) = query.error.as_deref() {
            return Err(OidcFailure(
                StatusCode::UNAUTHORIZED,
                format!(
                    "The identity provider did not sign you in ({}).",
                    plain_code(error)
                ),
            ));
        }
        let code = query
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                OidcFailure(
                    StatusCode::BAD_REQUEST,
                    "The identity provider sent no authorization code.".into(),
                )
            })?;
        let discovery = self.discovery(z).await?;
        let token_endpoint = discovery
            .token_endpoint()
            .map_err(|_| OidcFailure::unavailable("discovery"))?;
        let http = self.client(z.timeout)?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
            ("code_verifier", pending.code_verifier.as_str()),
        ];
        let secret = match &z.web_client_secret {
            Some(c) => Some(c.current().await.map_err(|e| {
                tracing::warn!(error = %e, "approvals page: web client secret unavailable");
                OidcFailure::unavailable("web client secret")
            })?),
            None => None,
        };
        // A code is redeemed once: the exchange is not retried.
        let response = http
            .send(Retry::Write, || {
                let mut request = http.http().post(token_endpoint).form(&form);
                if let Some(secret) = &secret {
                    request = request.basic_auth(client_id, Some(secret.expose()));
                }
                Ok(request)
            })
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "approvals page: code exchange failed");
                OidcFailure::unavailable("token endpoint")
            })?;
        let status = response.status;
        let body = response.body;
        let token: Option<TokenResponse> = serde_json::from_slice(&body).ok();
        let (access_token, expires_in) = match token {
            Some(TokenResponse {
                access_token: Some(t),
                expires_in,
                ..
            }) if status.is_success() && !t.is_empty() => (t, expires_in),
            other => {
                let code = other
                    .and_then(|t| t.error)
                    .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
                let code = if code.starts_with("HTTP ") {
                    code
                } else {
                    plain_code(&code).to_string()
                };
                tracing::warn!(%status, error = %code, "approvals page: code exchange refused");
                return Err(OidcFailure(
                    if status.is_server_error() {
                        StatusCode::BAD_GATEWAY
                    } else {
                        StatusCode::UNAUTHORIZED
                    },
                    format!("The identity provider did not redeem the sign-in ({code})."),
                ));
            }
        };
        let mut auth_headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {access_token}")).map_err(|_| {
            OidcFailure(
                StatusCode::UNAUTHORIZED,
                "The identity provider's token was not accepted.".into(),
            )
        })?;
        auth_headers.insert(header::AUTHORIZATION, value);
        match auth.authenticate(&auth_headers).await {
            Ok(principal) => Ok((
                principal,
                pending.next,
                token_lifetime(&access_token, expires_in),
            )),
            Err(AuthError::Unavailable) => Err(OidcFailure::unavailable("token check")),
            Err(_) => Err(OidcFailure(
                StatusCode::FORBIDDEN,
                "Your sign-in worked, but its token is not accepted here (project audience or roles); ask for access to the toolgate project."
                    .into(),
            )),
        }
    }
}

/// RFC 7636 S256: base64url(SHA-256(verifier)).
fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn oidc_scope(z: &ZitadelSettings) -> String {
    format!(
        "openid profile urn:zitadel:iam:org:project:id:{}:aud urn:zitadel:iam:org:projects:roles",
        z.project_id
    )
}

/// An OAuth error code fit to show: RFC 6749 codes are short and plain.
fn plain_code(code: &str) -> &str {
    let plain = !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain { code } else { "error" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn pending_sign_ins_are_one_shot_expiring_and_bounded() {
        let pending = |next: &str| PendingLogin {
            state: "s".into(),
            code_verifier: "v".into(),
            next: next.into(),
            created: Instant::now(),
        };
        let logins = OidcLogins::new(Duration::from_secs(600), 2);
        let a = logins.begin(pending("/approvals/a")).expect("random");
        let b = logins.begin(pending("/approvals/b")).expect("random");
        assert_eq!(
            logins.take(&a).map(|p| p.next).as_deref(),
            Some("/approvals/a")
        );
        assert!(logins.take(&a).is_none(), "a state is used once");
        let _c = logins.begin(pending("/approvals/c")).expect("random");
        let _d = logins.begin(pending("/approvals/d")).expect("random");
        assert!(logins.take(&b).is_none(), "the oldest sign-in was dropped");
        let short = OidcLogins::new(Duration::ZERO, 10);
        let e = short.begin(pending("/approvals")).expect("random");
        assert!(short.take(&e).is_none(), "expired");
    }

    #[test]
    fn only_plain_error_codes_are_shown() {
        assert_eq!(plain_code("access_denied"), "access_denied");
        assert_eq!(plain_code("<script>"), "error");
        assert_eq!(plain_code(""), "error");
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        let t = random_token().expect("random");
        assert_eq!(t.len(), 43, "256 bits in URL-safe base64");
        assert_ne!(t, random_token().expect("random"));
    }
}
