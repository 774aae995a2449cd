//! Opaque tokens: how toolgate authenticates to the introspection endpoint (Basic or
//! private-key JWT from an API-app key file), the cache of positive answers by token hash, and
//! the short-lived, bounded cache of refusals (so a bad token is not sent to the issuer again).
//! Client secrets and keys live here only; nothing here implements `Debug`.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{IntrospectionAuth, Verified, VerifyError};
use crate::adapters::http::{Credential, Secret};

/// Positive introspection answers are reused for at most this long (a revoked token keeps
/// working this long at most).
pub(super) const MAX_CACHE: Duration = Duration::from_secs(300);
/// Bound on cached answers; past it the entry closest to expiry goes.
const CACHE_CAPACITY: usize = 10_000;
/// Bound on remembered refusals; past it the oldest goes (first in, first out: all live as
/// long). Kept apart from the positive answers so a flood of bad tokens cannot evict them.
const REFUSAL_CAPACITY: usize = 10_000;
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Zitadel's API-app key file. Only the fields used are read; others are ignored.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "keyId")]
    key_id: String,
    key: String,
    #[serde(rename = "clientId")]
    client_id: String,
}

/// Credentials for the introspection endpoint, ready to use.
pub(super) enum ClientAuth {
    Basic {
        client_id: String,
        client_secret: Credential,
    },
    PrivateKeyJwt {
        client_id: String,
        key_id: String,
        key: EncodingKey,
    },
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

impl ClientAuth {
    /// Reads the key file (local, once, at start-up so a bad file is a config error).
    pub(super) fn from_config(auth: &IntrospectionAuth) -> Result<Self, String> {
        match auth {
            IntrospectionAuth::Basic {
                client_id,
                client_secret,
            } => {
                if client_id.is_empty() {
                    return Err("introspection client id must not be empty".into());
                }
                Ok(Self::Basic {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                })
            }
            IntrospectionAuth::PrivateKeyJwt { key_file } => Self::from_key_file(key_file),
        }
    }

    fn from_key_file(path: &Path) -> Result<Self, String> {
        let err = |m: &str| format!("introspection key file {}: {m}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| err(&format!("cannot read: {e}")))?;
        // serde's messages can quote values (the key itself): report the position only.
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| {
            err(&format!(
                "not a Zitadel key file (JSON with type, keyId, key, clientId); problem at line {} column {}",
                e.line(),
                e.column()
            ))
        })?;
        if file.kind != "application" {
            return Err(err(
                "`type` must be \"application\" (an API-app key); service-user keys cannot introspect",
            ));
        }
        if file.client_id.is_empty() || file.key_id.is_empty() {
            return Err(err("`clientId` and `keyId` must not be empty"));
        }
        let key = EncodingKey::from_rsa_pem(file.key.as_bytes())
            .map_err(|_| err("`key` is not an RSA private key in PEM form"))?;
        Ok(Self::PrivateKeyJwt {
            client_id: file.client_id,
            key_id: file.key_id,
            key,
        })
    }

    /// The client secret's current value (Basic only; a key file signs instead).
    pub(super) async fn current_secret(&self) -> Result<Option<Secret>, VerifyError> {
        match self {
            Self::Basic { client_secret, .. } => {
                client_secret.current().await.map(Some).map_err(|e| {
                    VerifyError::Unavailable(format!("introspection client secret: {e}"))
                })
            }
            Self::PrivateKeyJwt { .. } => Ok(None),
        }
    }

    /// Add this client's authentication to an introspection request whose form is `form`;
    /// `secret` is `current_secret()`'s answer.
    pub(super) fn apply(
        &self,
        request: reqwest::RequestBuilder,
        issuer: &str,
        mut form: Vec<(&'static str, String)>,
        secret: Option<&Secret>,
    ) -> Result<reqwest::RequestBuilder, String> {
        match self {
            // RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
            Self::Basic { client_id, .. } => {
                let secret = secret.ok_or("introspection client secret not read")?;
                Ok(request
                    .basic_auth(form_encode(client_id), Some(form_encode(secret.expose())))
                    .form(&form))
            }
            Self::PrivateKeyJwt {
                client_id,
                key_id,
                key,
            } => {
                let now = jsonwebtoken::get_current_timestamp();
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some(key_id.clone());
                let claims = AssertionClaims {
                    iss: client_id,
                    sub: client_id,
                    aud: issuer,
                    iat: now,
                    exp: now + 60,
                    // A fresh jti each time: issuers refuse replayed assertions.
                    jti: uuid::Uuid::new_v4().to_string(),
                };
                let assertion = jsonwebtoken::encode(&header, &claims, key)
                    .map_err(|_| "cannot sign the client assertion with the key file's key")?;
                form.push(("client_assertion_type", ASSERTION_TYPE.to_string()));
                form.push(("client_assertion", assertion));
                Ok(request.form(&form))
            }
        }
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (unreserved characters kept).
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How long an answer for a token expiring at `exp` (unix seconds) may be reused at `now_unix`.
pub(super) fn cache_lifetime(exp: Option<u64>, now_unix: u64) -> Duration {
    match exp {
        Some(exp) => Duration::from_secs(exp.saturating_sub(now_unix)).min(MAX_CACHE),
        None => MAX_CACHE,
    }
}

/// Positive introspection answers by SHA-256 of the token (the token itself is not kept).
#[derive(Default)]
pub(super) struct AnswerCache {
    entries: HashMap<[u8; 32], (Verified, Instant)>,
}

pub(super) fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl AnswerCache {
    pub(super) fn get(&self, digest: &[u8; 32], now: Instant) -> Option<Verified> {
        self.entries
            .get(digest)
            .filter(|(_, until)| now < *until)
            .map(|(v, _)| v.clone())
    }

    pub(super) fn put(
        &mut self,
        digest: [u8; 32],
        verified: Verified,
        lifetime: Duration,
        now: Instant,
    ) {
        if lifetime.is_zero() {
            return;
        }
        if self.entries.len() >= CACHE_CAPACITY {
            self.entries.retain(|_, (_, until)| now < *until);
        }
        if self.entries.len() >= CACHE_CAPACITY
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, until))| *until)
                .map(|(k, _)| *k)
        {
            self.entries.remove(&oldest);
        }
        self.entries.insert(digest, (verified, now + lifetime));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Refusals (`active: false`, wrong audience, expired…) by SHA-256 of the token, each for the
/// same lifetime; never outages, which the caller must not remember.
pub(super) struct RefusalCache {
    lifetime: Duration,
    entries: HashMap<[u8; 32], (String, Instant)>,
    /// Insertion order with each entry's deadline, to drop the oldest in O(1).
    order: VecDeque<([u8; 32], Instant)>,
}

impl RefusalCache {
    pub(super) fn new(lifetime: Duration) -> Self {
        Self {
            lifetime,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Why the token was refused, while that is remembered.
    pub(super) fn get(&self, digest: &[u8; 32], now: Instant) -> Option<String> {
        self.entries
            .get(digest)
            .filter(|(_, until)| now < *until)
            .map(|(reason, _)| reason.clone())
    }

    pub(super) fn put(&mut self, digest: [u8; 32], reason: String, now: Instant) {
        if self.lifetime.is_zero() {
            return;
        }
        // Drop what has expired, then the oldest while full.
        while let Some((oldest, until)) = self.order.front().copied() {
            if now < until && self.entries.len() < REFUSAL_CAPACITY {
                break;
            }
            self.order.pop_front();
            // Only the entry this order slot belongs to (a re-put token has a later deadline).
            if self.entries.get(&oldest).is_some_and(|(_, u)| *u == until) {
                self.entries.remove(&oldest);
            }
        }
        let until = now + self.lifetime;
        self.entries.insert(digest, (reason, until));
        self.order.push_back((digest, until));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::principal::Principal;

    fn verified(sub: &str) -> Verified {
        Verified {
            principal: Principal::new(sub, sub, vec![]),
            org_ids: vec![],
            expires_at: None,
        }
    }

    #[test]
    fn answers_live_until_exp_but_never_longer_than_five_minutes() {
        assert_eq!(
            cache_lifetime(Some(1_000 + 60), 1_000),
            Duration::from_secs(60)
        );
        assert_eq!(cache_lifetime(Some(1_000 + 3_600), 1_000), MAX_CACHE);
        assert_eq!(cache_lifetime(None, 1_000), MAX_CACHE);
        assert_eq!(cache_lifetime(Some(900), 1_000), Duration::ZERO);
    }

    #[test]
    fn cache_hits_until_its_deadline_and_skips_expired_answers() {
        let t0 = Instant::now();
        let mut c = AnswerCache::default();
        let d = token_digest("opaque-token-a");
        c.put(d, verified("a"), Duration::from_secs(60), t0);
        assert_eq!(
            c.get(&d, t0 + Duration::from_secs(59))
                .map(|v| v.principal.sub),
            Some("a".to_string())
        );
        assert!(c.get(&d, t0 + Duration::from_secs(60)).is_none());
        assert!(c.get(&token_digest("opaque-token-b"), t0).is_none());
        c.put(token_digest("expired"), verified("x"), Duration::ZERO, t0);
        assert_eq!(c.len(), 1, "a token already past exp is not cached");
    }

    #[test]
    fn cache_is_bounded() {
        let t0 = Instant::now();
        let mut c = AnswerCache::default();
        for i in 0..CACHE_CAPACITY + 10 {
            let life = Duration::from_secs(10 + i as u64);
            c.put(token_digest(&format!("t{i}")), verified("s"), life, t0);
        }
        assert_eq!(c.len(), CACHE_CAPACITY);
        assert!(
            c.get(&token_digest("t0"), t0).is_none(),
            "closest to expiry evicted"
        );
        assert!(
            c.get(&token_digest(&format!("t{}", CACHE_CAPACITY + 9)), t0)
                .is_some()
        );
    }

    #[test]
    fn refusals_are_remembered_for_their_lifetime_and_bounded() {
        let t0 = Instant::now();
        let mut c = RefusalCache::new(Duration::from_secs(60));
        let d = token_digest("bad-token");
        c.put(d, "token is not active".into(), t0);
        assert_eq!(
            c.get(&d, t0 + Duration::from_secs(59)).as_deref(),
            Some("token is not active")
        );
        assert!(c.get(&d, t0 + Duration::from_secs(60)).is_none());
        for i in 0..REFUSAL_CAPACITY + 10 {
            c.put(token_digest(&format!("b{i}")), "no".into(), t0);
        }
        assert_eq!(c.len(), REFUSAL_CAPACITY);
        assert!(c.get(&token_digest("b0"), t0).is_none(), "oldest dropped");
        assert!(
            c.get(&token_digest(&format!("b{}", REFUSAL_CAPACITY + 9)), t0)
                .is_some()
        );
        // Expired entries make room before live ones go.
        let later = t0 + Duration::from_secs(61);
        c.put(token_digest("fresh"), "no".into(), later);
        assert_eq!(c.len(), 1);
        let mut off = RefusalCache::new(Duration::ZERO);
        off.put(d, "no".into(), t0);
        assert!(off.get(&d, t0).is_none(), "0 turns the cache off");
    }

    #[test]
    fn basic_credentials_are_form_encoded() {
        assert_eq!(form_encode("123@toolgate"), "123%40toolgate");
        assert_eq!(form_encode("a b:c/d"), "a%20b%3Ac%2Fd");
        assert_eq!(form_encode("Az09-._~"), "Az09-._~");
    }

    #[test]
    fn key_file_problems_never_echo_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.json");
        let secret = "-----BEGIN RSA PRIVATE KEY-----\nSECRETSECRET\n-----END RSA PRIVATE KEY-----";
        let cases = [
            (
                serde_json::json!({"type": "application", "keyId": "k", "key": secret, "clientId": "c"}),
                "not an RSA private key",
            ),
            (
                serde_json::json!({"type": "serviceaccount", "keyId": "k", "key": secret, "userId": "u", "clientId": "c"}),
                "API-app key",
            ),
            (
                serde_json::json!({"type": "application", "keyId": 5, "key": secret, "clientId": "c"}),
                "not a Zitadel key file",
            ),
        ];
        for (content, expected) in cases {
            std::fs::write(&path, content.to_string()).expect("write");
            let auth = IntrospectionAuth::PrivateKeyJwt {
                key_file: path.clone(),
            };
            let err = ClientAuth::from_config(&auth).err().unwrap_or_default();
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains("SECRET"), "{err}");
        }
        let missing = IntrospectionAuth::PrivateKeyJwt {
            key_file: dir.path().join("absent.json"),
        };
        assert!(ClientAuth::from_config(&missing).is_err());
    }
}
