//! The issuer's OIDC discovery document (`/.well-known/openid-configuration`): one type and one
//! fetch, through the upstream kit, for every reader — the token verifier (`jwks_uri`,
//! `introspection_endpoint`), the approvals page's sign-in (`authorization_endpoint`,
//! `token_endpoint`) and toolgate's service token (`token_endpoint`). The checks every reader
//! gets: the document names exactly the configured issuer (a trailing slash aside), and each
//! endpoint it names is an http(s) URL. An endpoint a reader needs and the document lacks is an
//! error of its accessor; how long a reader keeps a document is its own choice.

use reqwest::StatusCode;
use serde_json::Value;

use crate::adapters::http::{Retry, Upstream};

/// Where the document of `issuer` lives (a trailing `/` of the issuer is ignored).
pub fn url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// The endpoints toolgate reads from a discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The issuer exactly as the document names it: tokens must carry this `iss`, byte for byte.
    pub issuer: String,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    jwks_uri: Option<String>,
    introspection_endpoint: Option<String>,
}

/// Why there is no usable document. Messages name the issuer's problem, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// No answer: unreachable, timed out, 5xx or 429 after the kit's retries, breaker open.
    #[error("OIDC discovery: {0}")]
    Unreachable(String),
    /// An answer other than 2xx (no redirect is followed).
    #[error("OIDC discovery: the issuer answered HTTP {0}")]
    Status(u16),
    #[error("OIDC discovery: the document is not a JSON object")]
    NotJson,
    /// The document's `issuer` is missing or differs from the configured one.
    #[error("OIDC discovery: the document names another issuer ({named}, expected {expected})")]
    OtherIssuer { named: String, expected: String },
    /// A reader needs this endpoint and the document names none.
    #[error("OIDC discovery: the document names no {0}")]
    Missing(&'static str),
    #[error("OIDC discovery: {0} is not an http(s) URL")]
    NotUrl(&'static str),
}

impl DiscoveryError {
    /// Whether asking again later may help (no answer), as opposed to an answer that is not a
    /// usable document.
    pub fn is_transient(&self) -> bool {
        matches!(self, DiscoveryError::Unreachable(_))
    }
}

impl Discovery {
    pub fn authorization_endpoint(&self) -> Result<&str, DiscoveryError> {
        named("authorization_endpoint", &self.authorization_endpoint)
    }

    pub fn token_endpoint(&self) -> Result<&str, DiscoveryError> {
        named("token_endpoint", &self.token_endpoint)
    }

    pub fn jwks_uri(&self) -> Result<&str, DiscoveryError> {
        named("jwks_uri", &self.jwks_uri)
    }

    pub fn introspection_endpoint(&self) -> Result<&str, DiscoveryError> {
        named("introspection_endpoint", &self.introspection_endpoint)
    }

    /// Read a document for `issuer` (configured; a trailing `/` is ignored).
    pub fn parse(issuer: &str, body: &[u8]) -> Result<Discovery, DiscoveryError> {
        let doc: Value = serde_json::from_slice(body).map_err(|_| DiscoveryError::NotJson)?;
        if !doc.is_object() {
            return Err(DiscoveryError::NotJson);
        }
        let expected = issuer.trim_end_matches('/');
        let named = doc
            .get("issuer")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if named.is_empty() || named.trim_end_matches('/') != expected {
            return Err(DiscoveryError::OtherIssuer {
                named: if named.is_empty() {
                    "none".to_string()
                } else {
                    named.to_string()
                },
                expected: expected.to_string(),
            });
        }
        Ok(Discovery {
            issuer: named.to_string(),
            authorization_endpoint: endpoint(&doc, "authorization_endpoint")?,
            token_endpoint: endpoint(&doc, "token_endpoint")?,
            jwks_uri: endpoint(&doc, "jwks_uri")?,
            introspection_endpoint: endpoint(&doc, "introspection_endpoint")?,
        })
    }
}

/// `field`'s endpoint, or [`DiscoveryError::Missing`] naming it.
fn named<'a>(field: &'static str, endpoint: &'a Option<String>) -> Result<&'a str, DiscoveryError> {
    endpoint.as_deref().ok_or(DiscoveryError::Missing(field))
}

/// The endpoint named `field`, when the document names one; an http(s) URL or an error.
fn endpoint(doc: &Value, field: &'static str) -> Result<Option<String>, DiscoveryError> {
    match doc.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(url)) => match reqwest::Url::parse(url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(Some(url.clone())),
            _ => Err(DiscoveryError::NotUrl(field)),
        },
        Some(_) => Err(DiscoveryError::NotUrl(field)),
    }
}

/// The discovery document of `issuer`, fetched through `upstream` (retried like a read).
pub async fn fetch(upstream: &Upstream, issuer: &str) -> Result<Discovery, DiscoveryError> {
    let url = url(issuer);
    let reply = upstream
        .send(Retry::Read, || Ok(upstream.http().get(&url)))
        .await
        .map_err(|e| DiscoveryError::Unreachable(e.to_string()))?;
    // Only 200 carries the document (no redirect is followed; a 204 is no answer either).
    if reply.status != StatusCode::OK {
        return Err(DiscoveryError::Status(reply.status.as_u16()));
    }
    Discovery::parse(issuer, &reply.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISSUER: &str = "https://acme.zitadel.cloud";

    fn doc(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[test]
    fn a_document_keeps_the_issuer_as_written_and_its_endpoints() {
        let d = Discovery::parse(
            &format!("{ISSUER}/"),
            &doc(json!({
                "issuer": format!("{ISSUER}/"),
                "authorization_endpoint": format!("{ISSUER}/oauth/v2/authorize"),
                "token_endpoint": format!("{ISSUER}/oauth/v2/token"),
                "jwks_uri": format!("{ISSUER}/oauth/v2/keys"),
                "userinfo_endpoint": 42,
            })),
        )
        .expect("valid");
        assert_eq!(
            d.issuer,
            format!("{ISSUER}/"),
            "exactly as the document says"
        );
        assert_eq!(
            d.token_endpoint(),
            Ok("https://acme.zitadel.cloud/oauth/v2/token")
        );
        assert_eq!(
            d.introspection_endpoint(),
            Err(DiscoveryError::Missing("introspection_endpoint"))
        );
    }

    #[test]
    fn another_or_no_issuer_bad_endpoints_and_junk_are_refused() {
        let other = Discovery::parse(ISSUER, &doc(json!({"issuer": "https://evil.example"})));
        assert!(
            matches!(other, Err(DiscoveryError::OtherIssuer { ref named, .. }) if named == "https://evil.example"),
            "{other:?}"
        );
        let none = Discovery::parse(
            ISSUER,
            &doc(json!({"token_endpoint": format!("{ISSUER}/t")})),
        );
        assert!(
            matches!(none, Err(DiscoveryError::OtherIssuer { ref named, .. }) if named == "none"),
            "{none:?}"
        );
        for bad in [json!("ftp://x/token"), json!("/token"), json!(7)] {
            let d = Discovery::parse(
                ISSUER,
                &doc(json!({"issuer": ISSUER, "token_endpoint": bad})),
            );
            assert_eq!(d, Err(DiscoveryError::NotUrl("token_endpoint")));
        }
        assert_eq!(
            Discovery::parse(ISSUER, b"<html>"),
            Err(DiscoveryError::NotJson)
        );
        assert_eq!(
            Discovery::parse(ISSUER, b"[]"),
            Err(DiscoveryError::NotJson)
        );
        assert!(!DiscoveryError::NotJson.is_transient());
        assert!(DiscoveryError::Unreachable("x".into()).is_transient());
    }
}
