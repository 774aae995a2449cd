//! The `auth` config section: its raw (all-optional, `deny_unknown_fields`) block and the
//! validated settings the authenticators (`auth::local`, `auth::zitadel`) and the approvals
//! page's sign-in (`auth::page_login`) are built from. `config.rs` embeds the block, merges
//! environment overrides and collects the problems; the checks live here, beside their users.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::http::Credential;
use crate::adapters::http::config::{RawCredential, RawDuration};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// `local` (default): static bearer tokens, loopback listeners only.
    pub mode: Option<String>,
    /// YAML list of `{token | token_sha256, sub, name, roles}`.
    pub tokens_file: Option<String>,
    /// Whether a loopback request without a token is served as the local user with role
    /// `toolgate.caller` (default true). Approving always needs a token.
    pub anonymous: Option<bool>,
    /// `zitadel`: the issuer URL, e.g. https://acme.zitadel.cloud.
    pub issuer: Option<String>,
    /// `zitadel`: the project whose roles become the principal's roles.
    pub project_id: Option<String>,
    /// `zitadel`: accepted token audiences. Default: the project id.
    pub audiences: Option<Vec<String>>,
    /// `zitadel`: read roles from the generic claim `urn:zitadel:iam:org:project:roles` when a
    /// token has no claim for toolgate's project. Default false: that claim may carry another
    /// project's roles.
    pub trust_generic_roles_claim: Option<bool>,
    /// `zitadel`: API-app client id for introspecting opaque tokens (Basic auth).
    pub introspection_client_id: Option<String>,
    /// `zitadel`: its secret: the value, `{file: PATH}`, `{env: VAR}` or `{secret_ref: …}`
    /// (or the TOOLGATE_AUTH_INTROSPECTION_CLIENT_SECRET variable).
    pub introspection_client_secret: Option<RawCredential>,
    /// `zitadel`: or an API-app key file (`{"type":"application",…}`) for private-key JWT.
    pub introspection_key_file: Option<String>,
    /// `zitadel`: timeout of calls to the issuer (`5s`, or a number of seconds). Default 5s.
    pub timeout_seconds: Option<RawDuration>,
    /// `zitadel`: how long an opaque token the issuer called inactive (or otherwise refused)
    /// is refused again without asking it (`60s`, or a number of seconds; `0` = ask every
    /// time). Default 60s.
    pub introspection_negative_cache_seconds: Option<RawDuration>,
    /// `zitadel`: client id of the web app the approvals page signs people in with
    /// (authorization code + PKCE). Without it the page cannot sign anyone in.
    pub web_client_id: Option<String>,
    /// `zitadel`: its secret, if the app is confidential: the value, `{file: PATH}`,
    /// `{env: VAR}` or `{secret_ref: …}` (or the TOOLGATE_AUTH_WEB_CLIENT_SECRET variable).
    pub web_client_secret: Option<RawCredential>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    Local {
        tokens_file: Option<PathBuf>,
        anonymous: bool,
    },
    Zitadel(ZitadelSettings),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZitadelSettings {
    pub issuer: String,
    pub project_id: String,
    pub audiences: Vec<String>,
    pub introspection: Option<IntrospectionSettings>,
    pub timeout: Duration,
    /// How long a refused opaque token is refused without asking the issuer (zero: off).
    pub introspection_negative_cache: Duration,
    pub trust_generic_roles_claim: bool,
    /// The approvals page's web app (authorization code + PKCE); `None`: no page login.
    pub web_client_id: Option<String>,
    /// Its secret (Basic auth at the token endpoint) when the app is confidential.
    pub web_client_secret: Option<Credential>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntrospectionSettings {
    Basic {
        client_id: String,
        client_secret: Credential,
    },
    KeyFile(PathBuf),
}

/// The validated `auth` section. `listen` and `public_url` decide whether local tokens are
/// allowed (loopback only, no TLS proxy in front).
pub fn resolve(
    raw_auth: RawAuth,
    listen: SocketAddr,
    public_url: &str,
    problems: &mut Vec<String>,
) -> AuthConfig {
    match raw_auth.mode.as_deref() {
        None | Some("local") => {
            if !listen.ip().is_loopback() {
                problems.push(format!(
                    "auth.mode: `local` (static tokens) is only allowed on a loopback listener, but listen is {listen}; listen on 127.0.0.1 or use an identity provider"
                ));
            }
            if public_url.starts_with("https://") {
                // TLS ends in a proxy then, whose requests all arrive from loopback.
                problems.push(format!(
                    "public_url: `{public_url}` is an https URL, but auth.mode is `local` (static tokens and anonymous loopback access, no TLS of its own): a TLS proxy in front would pass remote callers in as loopback; use auth.mode zitadel behind the proxy, or set public_url to http://{listen}"
                ));
            }
            let tokens_file = raw_auth.tokens_file.map(PathBuf::from);
            if let Some(path) = &tokens_file
                && !path.exists()
            {
                problems.push(format!(
                    "auth.tokens_file: file `{}` does not exist",
                    path.display()
                ));
            }
            AuthConfig::Local {
                tokens_file,
                anonymous: raw_auth.anonymous.unwrap_or(true),
            }
        }
        Some("zitadel") => {
            let issuer = raw_auth
                .issuer
                .clone()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string();
            let loopback_http =
                issuer.starts_with("http://127.0.0.1") || issuer.starts_with("http://localhost");
            if issuer.is_empty() {
                problems.push(
                    "auth.issuer: required with auth.mode zitadel, e.g. https://acme.zitadel.cloud"
                        .into(),
                );
            } else if !issuer.starts_with("https://") && !loopback_http {
                problems.push(format!("auth.issuer: `{issuer}` must be an https:// URL (http only on loopback, for tests)"));
            }
            let project_id = raw_auth.project_id.clone().unwrap_or_default();
            if project_id.trim().is_empty() {
                problems.push("auth.project_id: required with auth.mode zitadel (the project whose roles count)".into());
            }
            let audiences = raw_auth
                .audiences
                .clone()
                .unwrap_or_else(|| vec![project_id.clone()]);
            let introspection = match (
                raw_auth.introspection_client_id.clone(),
                raw_auth.introspection_client_secret.clone(),
                raw_auth.introspection_key_file.clone(),
            ) {
                (None, None, None) => None,
                (Some(client_id), Some(secret), None) => secret
                    .resolve("auth.introspection_client_secret", problems)
                    .map(|client_secret| IntrospectionSettings::Basic {
                        client_id,
                        client_secret,
                    }),
                (None, None, Some(file)) => {
                    if !Path::new(&file).is_file() {
                        problems.push(format!(
                            "auth.introspection_key_file: file `{file}` does not exist"
                        ));
                    }
                    Some(IntrospectionSettings::KeyFile(PathBuf::from(file)))
                }
                _ => {
                    problems.push(
                        "auth: give introspection_client_id with introspection_client_secret, or introspection_key_file alone".into(),
                    );
                    None
                }
            };
            let timeout = RawDuration::resolve_or(
                raw_auth.timeout_seconds.as_ref(),
                "auth.timeout_seconds",
                Duration::from_secs(5),
                (Duration::from_millis(100), Duration::from_secs(60)),
                problems,
            );
            let introspection_negative_cache = RawDuration::resolve_or(
                raw_auth.introspection_negative_cache_seconds.as_ref(),
                "auth.introspection_negative_cache_seconds",
                Duration::from_secs(60),
                (Duration::ZERO, Duration::from_secs(3600)),
                problems,
            );
            AuthConfig::Zitadel(ZitadelSettings {
                issuer,
                project_id,
                audiences,
                introspection,
                timeout,
                introspection_negative_cache,
                trust_generic_roles_claim: raw_auth.trust_generic_roles_claim.unwrap_or(false),
                web_client_id: raw_auth
                    .web_client_id
                    .clone()
                    .filter(|id| !id.trim().is_empty()),
                // An empty inline value means "public app", as before.
                web_client_secret: raw_auth
                    .web_client_secret
                    .as_ref()
                    .filter(|s| **s != RawCredential::Value(String::new()))
                    .and_then(|s| s.resolve("auth.web_client_secret", problems)),
            })
        }
        Some(other) => {
            problems.push(format!(
                "auth.mode: `{other}` is not supported; expected `local` or `zitadel`"
            ));
            AuthConfig::Local {
                tokens_file: None,
                anonymous: false,
            }
        }
    }
}
