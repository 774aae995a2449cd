//! The `review.github` and `ticketing.github` blocks: the kit's endpoint keys (base URL
//! defaults to https://api.github.com; GitHub Enterprise is `https://HOST/api/v3`) and
//! `token`, a credential (inline, `{env}`, `{file}` or `{secret_ref}`) sent as a bearer token;
//! the ticketing block adds the repository issues are opened in.

use crate::adapters::http::config::{RawCredential, resolve as endpoint};
use crate::adapters::http::{Endpoint, HttpAuth};

pub const DEFAULT_API_URL: &str = "https://api.github.com";

crate::raw_endpoint! {
    /// GitHub's REST API for review (pull requests).
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
    resolve_block(
        key,
        raw.url.as_deref(),
        raw.endpoint_fields(),
        raw.token.as_ref(),
        raw.web_host.as_deref(),
        problems,
    )
    .unwrap_or_else(GitHubConfig::public)
}

/// The endpoint of a GitHub block at `key`: its URL (default api.github.com), the kit's keys,
/// `token` as a bearer credential, and the web host.
fn resolve_block(
    key: &str,
    url: Option<&str>,
    fields: crate::adapters::http::config::EndpointFields<'_>,
    token: Option<&RawCredential>,
    web_host: Option<&str>,
    problems: &mut Vec<String>,
) -> Option<GitHubConfig> {
    let url = url.unwrap_or(DEFAULT_API_URL);
    let mut endpoint = endpoint(key, Some(url), fields, problems)?;
    if let Some(token) = token {
        if endpoint.auth != HttpAuth::None {
            problems.push(format!("{key}: give token or auth, not both"));
        }
        if let Some(credential) = token.resolve(&format!("{key}.token"), problems) {
            endpoint.auth = HttpAuth::Bearer(credential);
        }
    }
    let web_host = match web_host {
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
    Some(GitHubConfig { endpoint, web_host })
}

crate::raw_endpoint! {
    /// GitHub Issues as a ticket provider (`ticketing.github`): `url` defaults to
    /// https://api.github.com (GitHub Enterprise: `https://HOST/api/v3`).
    pub struct RawGitHubTickets {
        /// `owner/name`: the repository incident issues are opened in.
        pub repo: Option<String>,
        /// The token as a secret reference (`platform/github-token`, or `path#field`): the
        /// seed's spelling of `token: {secret_ref: …}`.
        pub secret_ref: Option<String>,
        /// A token with write access to the repository's issues (fine-grained: Issues read and
        /// write). Sent as `Authorization: Bearer`.
        pub token: Option<RawCredential>,
        /// The web host issue URLs are on (as in `review.github`).
        pub web_host: Option<String>,
    }
}

/// GitHub Issues, resolved: the client's endpoint and the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubTicketsConfig {
    pub github: GitHubConfig,
    pub owner: String,
    pub repo: String,
}

/// Resolve `ticketing.github` (`key`); `None` when it cannot be used (the problems say why).
pub fn resolve_tickets(
    key: &str,
    raw: &RawGitHubTickets,
    problems: &mut Vec<String>,
) -> Option<GitHubTicketsConfig> {
    let (owner, repo) = match raw.repo.as_deref().map(str::trim) {
        Some(r) => match r.split_once('/') {
            Some((o, n)) if valid_name(o) && valid_name(n) => (o.to_string(), n.to_string()),
            _ => {
                problems.push(format!(
                    "{key}.repo: `{r}` is not owner/name (e.g. org/sre-incidents)"
                ));
                return None;
            }
        },
        None => {
            problems.push(format!(
                "{key}.repo: not set; name the repository incident issues go to, e.g. org/sre-incidents"
            ));
            return None;
        }
    };
    if raw.secret_ref.is_some() && raw.token.is_some() {
        problems.push(format!(
            "{key}: give secret_ref or token, not both (secret_ref: P is token: {{secret_ref: P}})"
        ));
    }
    let by_ref = raw.secret_ref.as_ref().map(|r| {
        RawCredential::Source(crate::adapters::http::config::RawCredentialSource {
            secret_ref: Some(r.clone()),
            ..Default::default()
        })
    });
    let token = raw.token.clone().or(by_ref);
    if token.is_none() && raw.auth.is_none() {
        problems.push(format!(
            "{key}: no token; GitHub needs one to open issues (secret_ref: platform/github-token, or token: {{env: GITHUB_TOKEN}})"
        ));
    }
    let github = resolve_block(
        key,
        raw.url.as_deref(),
        raw.endpoint_fields(),
        token.as_ref(),
        raw.web_host.as_deref(),
        problems,
    )?;
    Some(GitHubTicketsConfig {
        github,
        owner,
        repo,
    })
}

/// An owner or repository name as GitHub allows it (letters, digits, `-`, `_`, `.`).
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
