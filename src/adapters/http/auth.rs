//! Credentials put on outbound requests: bearer token, basic auth, an API key header,
//! OpenBao's `X-Vault-Token`, or toolgate's own Zitadel service token. Applied per attempt, so a
//! rotated value is used at once. Values never reach an error or a log.
//!
//! The service token speaks a protocol (the JWT-profile grant) the kit does not: a config names
//! it with a [`ServiceTokenSpec`], and the [`TokenProvider`] installed at start
//! (`auth::service_token`) turns the spec into a renewing `SecretSource` when an `Upstream` is
//! built — the way the TLS crypto provider is installed once for every client.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::RequestBuilder;
use reqwest::header::{HeaderName, HeaderValue};

use super::secret::{Credential, SecretError, SecretSource};

/// toolgate's own access token as a Zitadel service user (JWT-profile grant with the user's key
/// file), as an upstream's config asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceTokenSpec {
    /// The issuer, without a trailing `/`.
    pub issuer: String,
    /// The service user's key file (`{"type":"serviceaccount","keyId","key","userId"}`).
    pub key_file: PathBuf,
    /// The project whose audience (and roles) the token must carry.
    pub project_id: Option<String>,
    /// Extra scopes.
    pub scopes: Vec<String>,
    /// Time limit of each request to the issuer (`None`: the provider's default).
    pub timeout: Option<Duration>,
    /// Renew the token when it expires within this long (`None`: the provider's default).
    pub renew_before: Option<Duration>,
}

/// Turns a [`ServiceTokenSpec`] into the source of its current token (no network: the key file
/// is read and checked, the token is fetched on first use).
pub trait TokenProvider: Send + Sync {
    fn source(&self, spec: &ServiceTokenSpec) -> Result<Arc<dyn SecretSource>, String>;
}

static TOKEN_PROVIDER: OnceLock<Arc<dyn TokenProvider>> = OnceLock::new();

/// Install the provider of service tokens for this process; the first one installed stays.
pub fn install_token_provider(provider: Arc<dyn TokenProvider>) {
    let _ = TOKEN_PROVIDER.set(provider);
}

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
    /// `Authorization: Bearer` with toolgate's own service token, as configured; [`bind`]
    /// (done by `Upstream::new`) makes it a `Bearer` over the installed provider's source.
    ///
    /// [`bind`]: HttpAuth::bind
    ServiceToken(ServiceTokenSpec),
}

impl HttpAuth {
    /// These credentials with every spec turned into its source (secret references bound to
    /// the provider installed now); an error names the problem
    /// (a key file that is not one, no provider installed), never a value.
    pub fn bind(self) -> Result<HttpAuth, String> {
        let spec = match self {
            HttpAuth::ServiceToken(spec) => spec,
            HttpAuth::None => return Ok(self),
            HttpAuth::Bearer(ref c)
            | HttpAuth::VaultToken(ref c)
            | HttpAuth::Basic {
                password: ref c, ..
            }
            | HttpAuth::Header { value: ref c, .. } => {
                c.bind();
                return Ok(self);
            }
        };
        let provider = TOKEN_PROVIDER.get().ok_or_else(|| {
            "auth.zitadel_service_token: no service-token provider is installed in this process"
                .to_string()
        })?;
        let source = provider
            .source(&spec)
            .map_err(|e| format!("auth.zitadel_service_token: {e}"))?;
        Ok(HttpAuth::Bearer(Credential::from_source(source)))
    }

    /// The upstream refused these credentials (401/403): have their source read them again.
    /// `true` when a value changed, so the request is worth sending once more.
    pub async fn refresh(&self) -> bool {
        match self {
            HttpAuth::None | HttpAuth::ServiceToken(_) => false,
            HttpAuth::Bearer(c) | HttpAuth::VaultToken(c) => c.refresh().await,
            HttpAuth::Basic { password: c, .. } | HttpAuth::Header { value: c, .. } => {
                c.refresh().await
            }
        }
    }

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
            HttpAuth::ServiceToken(spec) => {
                return Err(SecretError::Source(format!(
                    "the service token from {} was never bound to its source (an Upstream binds it)",
                    spec.issuer
                )));
            }
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
