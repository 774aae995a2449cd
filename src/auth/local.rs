//! `auth.mode: local`: static bearer tokens from a YAML file (the embedded default, loopback
//! only). Tokens are kept as SHA-256 digests, compared in constant time, and never logged.

use std::collections::HashMap;
use std::path::Path;

use axum::http::HeaderMap;
use futures::future::BoxFuture;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{AuthError, Authenticator, bearer};
use crate::core::principal::Principal;

/// One entry of the tokens file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    /// The token itself…
    token: Option<String>,
    /// …or its SHA-256 (hex), so the file need not hold the secret.
    token_sha256: Option<String>,
    sub: String,
    name: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("auth.tokens_file {path}: {message}")]
pub struct TokensFileError {
    pub path: String,
    pub message: String,
}

pub struct LocalTokens {
    by_digest: HashMap<[u8; 32], Principal>,
    /// Who a request without a token is, when anonymous loopback callers are allowed.
    anonymous: Option<Principal>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

impl LocalTokens {
    pub fn new(principals: Vec<(String, Principal)>, anonymous: Option<Principal>) -> Self {
        let by_digest = principals
            .into_iter()
            .map(|(token, p)| (digest(&token), p))
            .collect();
        Self {
            by_digest,
            anonymous,
        }
    }

    /// Load a tokens file: a YAML list of `{token | token_sha256, sub, name, roles}`.
    pub fn load(path: &Path, anonymous: Option<Principal>) -> Result<Self, TokensFileError> {
        let err = |message: String| TokensFileError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let entries: Vec<TokenEntry> =
            serde_yaml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let mut by_digest = HashMap::new();
        for (i, e) in entries.into_iter().enumerate() {
            let key = match (&e.token, &e.token_sha256) {
                (Some(t), None) if t.len() >= 16 => digest(t),
                (Some(_), None) => {
                    return Err(err(format!(
                        "entry {i} ({}): token shorter than 16 characters",
                        e.sub
                    )));
                }
                (None, Some(h)) => parse_hex(h).ok_or_else(|| {
                    err(format!(
                        "entry {i} ({}): token_sha256 must be 64 hex digits",
                        e.sub
                    ))
                })?,
                _ => {
                    return Err(err(format!(
                        "entry {i} ({}): give exactly one of token, token_sha256",
                        e.sub
                    )));
                }
            };
            let name = e.name.unwrap_or_else(|| e.sub.clone());
            if by_digest
                .insert(key, Principal::new(e.sub.clone(), name, e.roles))
                .is_some()
            {
                return Err(err(format!(
                    "entry {i} ({}): the same token appears twice",
                    e.sub
                )));
            }
        }
        Ok(Self {
            by_digest,
            anonymous,
        })
    }

    fn lookup(&self, token: &str) -> Option<&Principal> {
        let wanted = digest(token);
        // Compare every digest in full so the time taken does not depend on which one matched.
        let mut found = None;
        for (key, principal) in &self.by_digest {
            let diff = key
                .iter()
                .zip(wanted.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(principal);
            }
        }
        found
    }
}

impl Authenticator for LocalTokens {
    fn authenticate<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, Result<Principal, AuthError>> {
        let result = match bearer(headers) {
            Some(token) => self.lookup(token).cloned().ok_or(AuthError::Invalid),
            None => self.anonymous.clone().ok_or(AuthError::Missing),
        };
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(token: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = token {
            h.insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {t}")).expect("header"),
            );
        }
        h
    }

    #[tokio::test]
    async fn tokens_map_to_principals_and_bad_tokens_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.yaml");
        let hashed = Sha256::digest(b"bob-token-0123456789")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        std::fs::write(
            &path,
            format!(
                "- {{token: alice-token-0123456789, sub: alice, name: Alice, roles: [toolgate.approver]}}\n- {{token_sha256: {hashed}, sub: bob, roles: [toolgate.caller]}}\n"
            ),
        )
        .expect("write");
        let auth = LocalTokens::load(&path, None).expect("loads");
        let alice = auth
            .authenticate(&headers(Some("alice-token-0123456789")))
            .await
            .expect("alice");
        assert_eq!(alice.sub, "alice");
        assert_eq!(alice.roles, vec!["toolgate.approver"]);
        let bob = auth
            .authenticate(&headers(Some("bob-token-0123456789")))
            .await
            .expect("bob");
        assert_eq!(bob.name, "bob");
        assert_eq!(
            auth.authenticate(&headers(Some("nope-nope-nope-nope")))
                .await,
            Err(AuthError::Invalid)
        );
        assert_eq!(
            auth.authenticate(&headers(None)).await,
            Err(AuthError::Missing)
        );
    }

    #[tokio::test]
    async fn anonymous_loopback_callers_get_the_configured_principal() {
        let auth = LocalTokens::new(Vec::new(), Some(Principal::local("local")));
        let p = auth.authenticate(&headers(None)).await.expect("anonymous");
        assert_eq!(p.roles, vec!["toolgate.caller"]);
    }

    #[test]
    fn short_tokens_and_bad_digests_are_config_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.yaml");
        std::fs::write(&path, "- {token: short, sub: a}\n").expect("write");
        let err = LocalTokens::load(&path, None)
            .err()
            .expect("short token refused");
        assert!(err.to_string().contains("shorter than 16"), "{err}");
        std::fs::write(&path, "- {token_sha256: abc, sub: a}\n").expect("write");
        assert!(LocalTokens::load(&path, None).is_err());
        let err = LocalTokens::load(&path, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            !err.contains("abc"),
            "errors never echo token material: {err}"
        );
    }
}
