//! The `argocd` config section: where ArgoCD's API server is (the kit's endpoint keys: `url`,
//! `timeout`, `retry`, `breaker`, `tls`, and `auth: {bearer_token: …}` for an API token, which
//! may be a `secret_ref`), or a `session` login (`POST /api/v1/session`), and the poller's
//! settings: `poll_interval`, the `environments` it polls (each the application label
//! `environment_label` = the environment's name), the `projects` it is limited to. No section
//! (or no `url`), no ArgoCD.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::http::config::{RawCredential, RawDuration};
use crate::adapters::http::secret::Credential;
use crate::adapters::http::{Endpoint, HttpAuth};

/// The poller's default cycle (the seed's 30 s).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// The application label that names an application's environment, unless configured.
pub const DEFAULT_ENVIRONMENT_LABEL: &str = "environment";

crate::raw_endpoint! {
    /// ArgoCD's API server (REST API v1).
    pub struct RawArgoCd {
        /// Log in with a local user instead of an API token: `{username, password}`.
        pub session: Option<RawArgoSession>,
        /// How often the poller reads every application. Default 30s.
        pub poll_interval: Option<RawDuration>,
        /// `false`: the argocd.* tools only, no poller. Default true.
        pub poll: Option<bool>,
        /// Environments polled, each read with the label selector `<environment_label>=<name>`.
        /// Default: every application, grouped by that label.
        pub environments: Option<Vec<String>>,
        /// The application label naming its environment. Default `environment`.
        pub environment_label: Option<String>,
        /// Only applications of these ArgoCD projects (tools and poller). Default all.
        pub projects: Option<Vec<String>>,
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawArgoSession {
    /// An ArgoCD local user (e.g. a `apiKey, login` account).
    pub username: Option<String>,
    /// Its password: inline, `{file}`, `{env}` or `{secret_ref}`.
    pub password: Option<RawCredential>,
}

/// The validated `argocd` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgoCdConfig {
    /// URL, client settings and the API token (`auth`, `None` with a session login).
    pub endpoint: Endpoint,
    /// `POST /api/v1/session {username, password}` → a bearer token, again on 401.
    pub session: Option<(String, Credential)>,
    pub poll: bool,
    pub poll_interval: Duration,
    /// Empty: every application, grouped by `environment_label`.
    pub environments: Vec<String>,
    pub environment_label: String,
    pub projects: Vec<String>,
}

/// Validate the `argocd` block (`None` when absent or without `url`); problems name their key.
pub fn resolve(raw: Option<RawArgoCd>, problems: &mut Vec<String>) -> Option<ArgoCdConfig> {
    let raw = raw?;
    let key = "argocd";
    let Some(endpoint) = crate::adapters::http::config::resolve(
        key,
        raw.url.as_deref(),
        raw.endpoint_fields(),
        problems,
    ) else {
        if raw.session.is_some() || raw.environments.is_some() || raw.auth.is_some() {
            problems.push(format!(
                "{key}.url: not set, but the block has other keys; set ArgoCD's API server, e.g. https://argocd-server.argocd.svc:443"
            ));
        }
        return None;
    };
    match &endpoint.auth {
        HttpAuth::None | HttpAuth::Bearer(_) | HttpAuth::ServiceToken(_) => {}
        _ => problems.push(format!(
            "{key}.auth: ArgoCD takes a bearer token (auth.bearer_token, an API token of an ArgoCD account); for a login with a password use {key}.session"
        )),
    }
    let session = raw.session.as_ref().and_then(|s| {
        let user = s.username.as_deref().map(str::trim).unwrap_or_default();
        match (&s.password, user.is_empty()) {
            (Some(p), false) => p
                .resolve(&format!("{key}.session.password"), problems)
                .map(|password| (user.to_string(), password)),
            _ => {
                problems.push(format!(
                    "{key}.session: a login needs both username and password"
                ));
                None
            }
        }
    });
    if session.is_some() && endpoint.auth != HttpAuth::None {
        problems.push(format!(
            "{key}: give auth.bearer_token or session, not both"
        ));
    }
    let poll_interval = RawDuration::resolve_or(
        raw.poll_interval.as_ref(),
        &format!("{key}.poll_interval"),
        DEFAULT_POLL_INTERVAL,
        (Duration::from_millis(100), Duration::from_secs(3600)),
        problems,
    );
    let environment_label = raw
        .environment_label
        .clone()
        .unwrap_or_else(|| DEFAULT_ENVIRONMENT_LABEL.to_string());
    if !is_label_key(&environment_label) {
        problems.push(format!(
            "{key}.environment_label: `{environment_label}` is not a Kubernetes label key; write e.g. `environment` or `example.com/env`"
        ));
    }
    let environments = raw.environments.clone().unwrap_or_default();
    for (i, e) in environments.iter().enumerate() {
        if !is_label_value(e) {
            problems.push(format!(
                "{key}.environments[{i}]: `{e}` is not a label value (at most 63 letters, digits, '-', '_' or '.'); write e.g. `staging`"
            ));
        }
    }
    let projects = raw.projects.clone().unwrap_or_default();
    for (i, p) in projects.iter().enumerate() {
        if p.trim().is_empty() || p.contains([',', '/', '\n']) {
            problems.push(format!(
                "{key}.projects[{i}]: `{p}` is not an ArgoCD project name; write e.g. `default`"
            ));
        }
    }
    Some(ArgoCdConfig {
        endpoint,
        session,
        poll: raw.poll.unwrap_or(true),
        poll_interval,
        environments,
        environment_label,
        projects,
    })
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends.
pub fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_none_or(u8::is_ascii_alphanumeric)
        && b.last().is_none_or(u8::is_ascii_alphanumeric)
}

/// A label key: `[prefix/]name`, the name a non-empty label value, the prefix a DNS name.
pub fn is_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    !name.is_empty()
        && is_label_value(name)
        && prefix.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 253
                && p.split('.').all(|part| {
                    let b = part.as_bytes();
                    !b.is_empty()
                        && b.iter()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                        && b[0] != b'-'
                        && b[b.len() - 1] != b'-'
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::test_config_file as write_config;

    #[test]
    fn the_argocd_block_resolves_with_defaults_and_reports_every_problem() {
        let (_dir, path) = write_config(
            "argocd:\n  url: https://argocd.example:443/\n  auth: {bearer_token: t0ken}\n  environments: [dev, production]\n",
        );
        let c = Config::load_from(Some(&path), &[]).expect("valid");
        let a = c.argocd.as_ref().expect("argocd");
        assert_eq!(a.endpoint.url, "https://argocd.example:443");
        assert_eq!(a.poll_interval, DEFAULT_POLL_INTERVAL);
        assert!(a.poll);
        assert_eq!(a.environments, ["dev", "production"]);
        assert_eq!(a.environment_label, "environment");
        assert!(matches!(a.endpoint.auth, HttpAuth::Bearer(_)));

        let (_dir, path) = write_config(
            "argocd:\n  url: argocd:443\n  auth: {username: u, password: p}\n  session: {username: admin}\n  poll_interval: 0s\n  environments: ['pro duction']\n  environment_label: 'Bad Key'\n",
        );
        let text = Config::load_from(Some(&path), &[])
            .expect_err("invalid")
            .to_string();
        for needle in [
            "argocd.url: `argocd:443` is not an http:// or https:// URL",
            "argocd.auth: ArgoCD takes a bearer token",
            "argocd.session: a login needs both username and password",
            "argocd.poll_interval: 0s is out of range",
            "argocd.environments[0]: `pro duction` is not a label value",
            "argocd.environment_label: `Bad Key` is not a Kubernetes label key",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
    }

    #[test]
    fn label_keys_and_values_follow_kubernetes() {
        assert!(is_label_key("environment"));
        assert!(is_label_key("example.com/env"));
        assert!(!is_label_key("Example.com/env"));
        assert!(!is_label_key("/env"));
        assert!(is_label_value(""));
        assert!(is_label_value("prod_eu.1"));
        assert!(!is_label_value("-prod"));
    }
}
