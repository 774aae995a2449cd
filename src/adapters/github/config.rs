//! The `review.github` block: the kit's endpoint keys (base URL defaults to
//! https://api.github.com; GitHub Enterprise is `https://HOST/api/v3`) and `token`, a
//! credential (inline, `{env}`, `{file}` or `{secret_ref}`) sent as a bearer token.

use crate::adapters::http::config::{RawCredential, resolve as endpoint};
use crate::adapters::http::{Endpoint, HttpAuth};

pub const DEFAULT_API_URL: &str = "https://api.github.com";

crate::raw_endpoint! {
    /// GitHub's REST API (pull requests; later issues).
    pub struct RawGitHub {
        /// A token (fine-grained or classic) with read access to pull requests, and write
        /// access to issues for `review.post_comment`. Sent as `Authorization: Bearer`.
        pub token: Option<RawCredential>,
        /// The web host pull request URLs are on. Default: derived from `url` (`github.com` for
        /// api.github.com, the API's host for GitHub Enterprise).
        pub web_host: Option<String>,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubConfig {
    pub endpoint: Endpoint,
    /// The host of pull request URLs (`github.com`).
    pub web_host: String,
}

impl GitHubConfig {
    /// api.github.com without a token (tests set `url`).
    pub fn public() -> Self {
        Self {
            endpoint: Endpoint::plain(DEFAULT_API_URL, std::time::Duration::from_secs(30)),
            web_host: "github.com".into(),
        }
    }
}

/// Resolve `review.github` (absent: api.github.com without a token).
pub fn resolve(raw: Option<&RawGitHub>, problems: &mut Vec<String>) -> GitHubConfig {
    let key = "review.github";
    let default = RawGitHub::default();
    let raw = raw.unwrap_or(&default);
    let url = raw.url.as_deref().unwrap_or(DEFAULT_API_URL);
    let Some(mut endpoint) = endpoint(key, Some(url), raw.endpoint_fields(), problems) else {
        return GitHubConfig::public();
    };
    if let Some(token) = &raw.token {
        if endpoint.auth != HttpAuth::None {
            problems.push(format!("{key}: give token or auth, not both"));
        }
        if let Some(credential) = token.resolve(&format!("{key}.token"), problems) {
            endpoint.auth = HttpAuth::Bearer(credential);
        }
    }
    let web_host = match &raw.web_host {
        Some(h) if !h.trim().is_empty() && !h.contains(['/', ':', ' ']) => h.trim().to_lowercase(),
        Some(h) => {
            problems.push(format!(
                "{key}.web_host: `{h}` is not a host name; write e.g. github.example.com"
            ));
            "github.com".into()
        }
        None => {
            let host = reqwest::Url::parse(&endpoint.url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_lowercase))
                .unwrap_or_default();
            if host == "api.github.com" || host.is_empty() {
                "github.com".into()
            } else {
                host
            }
        }
    };
    GitHubConfig { endpoint, web_host }
}
