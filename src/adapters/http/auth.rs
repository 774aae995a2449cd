//! Credentials put on outbound requests: bearer token, basic auth, an API key header,
//! OpenBao's `X-Vault-Token`, or toolgate's own Zitadel service token (a `SecretSource` that
//! renews itself: `auth::service_token`). Applied per attempt, so a rotated value is used at
//! once. Values never reach an error or a log.

use reqwest::RequestBuilder;
use reqwest::header::{HeaderName, HeaderValue};

use super::secret::{Credential, SecretError};

/// How one upstream is authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HttpAuth {
    #[default]
    None,
    /// `Authorization: Bearer …` (a static token, a file, or a service token source).
    Bearer(Credential),
    Basic {
        username: String,
        password: Credential,
    },
    /// An API key in a header of the upstream's choosing (`X-API-Key`, `Authorization: GenieKey …`).
    Header {
        name: HeaderName,
        /// Put before the value, e.g. `GenieKey ` (may be empty).
        prefix: String,
        value: Credential,
    },
    /// OpenBao / Vault-compatible APIs.
    VaultToken(Credential),
}

impl HttpAuth {
    /// The request with this upstream's credentials.
    pub async fn apply(&self, request: RequestBuilder) -> Result<RequestBuilder, SecretError> {
        Ok(match self {
            HttpAuth::None => request,
            HttpAuth::Bearer(token) => request.bearer_auth(token.current().await?.expose()),
            HttpAuth::Basic { username, password } => {
                request.basic_auth(username, Some(password.current().await?.expose()))
            }
            HttpAuth::Header {
                name,
                prefix,
                value,
            } => request.header(
                name.clone(),
                sensitive(&format!("{prefix}{}", value.current().await?.expose()))?,
            ),
            HttpAuth::VaultToken(token) => request.header(
                HeaderName::from_static("x-vault-token"),
                sensitive(token.current().await?.expose())?,
            ),
        })
    }
}

/// A header value marked sensitive (hyper never logs it), or an error naming no value.
fn sensitive(value: &str) -> Result<HeaderValue, SecretError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        SecretError::Source(
            "the credential holds characters a header cannot carry (a newline?)".into(),
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn headers(auth: &HttpAuth) -> reqwest::header::HeaderMap {
        let t = std::time::Duration::from_secs(1);
        let client =
            crate::adapters::http::client::build(t, t, &Default::default()).expect("client");
        let request = auth
            .apply(client.get("http://127.0.0.1:1/"))
            .await
            .expect("applies")
            .build()
            .expect("builds");
        request.headers().clone()
    }

    #[tokio::test]
    async fn each_injector_sets_its_header() {
        let h = headers(&HttpAuth::Bearer(Credential::inline("t0k"))).await;
        assert_eq!(h["authorization"], "Bearer t0k");
        assert!(h["authorization"].is_sensitive());
        let h = headers(&HttpAuth::Basic {
            username: "u".into(),
            password: Credential::inline("p"),
        })
        .await;
        assert_eq!(h["authorization"], "Basic dTpw");
        let h = headers(&HttpAuth::Header {
            name: HeaderName::from_static("authorization"),
            prefix: "GenieKey ".into(),
            value: Credential::inline("k"),
        })
        .await;
        assert_eq!(h["authorization"], "GenieKey k");
        assert!(h["authorization"].is_sensitive());
        let h = headers(&HttpAuth::VaultToken(Credential::inline("hvs.x"))).await;
        assert_eq!(h["x-vault-token"], "hvs.x");
        assert!(headers(&HttpAuth::None).await.is_empty());
    }

    #[tokio::test]
    async fn a_value_that_cannot_be_a_header_is_an_error_without_the_value() {
        let auth = HttpAuth::VaultToken(Credential::inline("line\nbreak"));
        let err = auth
            .apply(
                crate::adapters::http::client::build(
                    std::time::Duration::from_secs(1),
                    std::time::Duration::from_secs(1),
                    &Default::default(),
                )
                .expect("client")
                .get("http://127.0.0.1:1/"),
            )
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("newline") && !err.contains("break"), "{err}");
    }
}
