//! The `memory` config section: `memory.cognee` (the kit's endpoint keys, Cognee's own `auth`
//! — an API key or a login — the dataset DataPoints go to, and how long a cognify run may take).
//! `config.rs` embeds the block and collects the problems; the checks live here.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::http::Endpoint;
use crate::adapters::http::config::{
    EndpointFields, RawBreaker, RawCredential, RawDuration, RawRetry, RawTls, resolve as endpoint,
};
use crate::adapters::http::secret::Credential;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMemory {
    /// The Cognee REST server behind the `memory.*` tools.
    pub cognee: Option<RawCognee>,
}

/// Cognee: the kit's keys (but `auth`, which is Cognee's own) and the memory settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCognee {
    /// Base URL (http:// or https://), e.g. http://cognee:8000. Unset: memory is not configured.
    pub url: Option<String>,
    /// `{api_key: …}` (sent as `X-Api-Key`) or `{username, password}` (form login → bearer
    /// token, renewed on 401). Default: none (Cognee with `REQUIRE_AUTHENTICATION=false`).
    pub auth: Option<RawCogneeAuth>,
    /// Dataset DataPoints are added to and searched in. Default `toolgate`.
    pub dataset: Option<String>,
    /// Time limit of one request (`30s`; default 30s).
    pub timeout: Option<RawDuration>,
    /// Time limit to connect (default 5s, at most `timeout`).
    pub connect_timeout: Option<RawDuration>,
    /// How long `memory.cognify` with `wait: true` polls a run before giving up. Default 10m.
    pub cognify_deadline: Option<RawDuration>,
    /// Pause between status polls of a run. Default 2s.
    pub poll_interval: Option<RawDuration>,
    /// How often queued DataPoints are offered again while Cognee is down. Default 15s.
    pub replay_interval: Option<RawDuration>,
    /// Retries of idempotent requests (search, status, login).
    pub retry: Option<RawRetry>,
    /// The circuit breaker.
    pub breaker: Option<RawBreaker>,
    /// Larger answers are refused. Default 32 MiB.
    pub max_response_bytes: Option<usize>,
    pub tls: Option<RawTls>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCogneeAuth {
    /// A Cognee API key, sent as `X-Api-Key`.
    pub api_key: Option<RawCredential>,
    /// Login user (an e-mail address), with `password`.
    pub username: Option<String>,
    pub password: Option<RawCredential>,
}

/// How toolgate authenticates to Cognee.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CogneeAuth {
    #[default]
    None,
    ApiKey(Credential),
    /// `POST /api/v1/auth/login` (form) → bearer token.
    Login {
        username: String,
        password: Credential,
    },
}

/// The validated `memory.cognee` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CogneeConfig {
    /// URL and client settings; credentials are in `auth`.
    pub endpoint: Endpoint,
    pub auth: CogneeAuth,
    pub dataset: String,
    pub cognify_deadline: Duration,
    pub poll_interval: Duration,
    pub replay_interval: Duration,
}

/// The validated `memory` section (`cognee: None`: the memory tools say Cognee is not configured).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryConfig {
    pub cognee: Option<CogneeConfig>,
}

pub const DEFAULT_DATASET: &str = "toolgate";

/// Validate the `memory` block; every problem names its key.
pub fn resolve(raw: RawMemory, problems: &mut Vec<String>) -> MemoryConfig {
    let Some(c) = raw.cognee else {
        return MemoryConfig::default();
    };
    let key = "memory.cognee";
    let fields = EndpointFields {
        timeout: c.timeout.as_ref(),
        timeout_seconds: None,
        connect_timeout: c.connect_timeout.as_ref(),
        retry: c.retry.as_ref(),
        breaker: c.breaker.as_ref(),
        max_response_bytes: c.max_response_bytes,
        auth: None,
        tls: c.tls.as_ref(),
    };
    let Some(endpoint) = endpoint(key, c.url.as_deref(), fields, problems) else {
        if c.auth.is_some() || c.dataset.is_some() {
            problems.push(format!(
                "{key}.url: not set, but the block has other keys; set the Cognee URL (e.g. http://cognee:8000)"
            ));
        }
        return MemoryConfig::default();
    };
    let dataset = c.dataset.unwrap_or_else(|| DEFAULT_DATASET.to_string());
    if dataset.trim().is_empty() || dataset.contains(['/', '\r', '\n']) {
        problems.push(format!(
            "{key}.dataset: `{dataset}` is not a dataset name; use a word such as `{DEFAULT_DATASET}`"
        ));
    }
    let auth = resolve_auth(key, c.auth.as_ref(), problems);
    let range = |min: u64, max: u64| (Duration::from_millis(min), Duration::from_secs(max));
    let cognify_deadline = RawDuration::resolve_or(
        c.cognify_deadline.as_ref(),
        &format!("{key}.cognify_deadline"),
        Duration::from_secs(600),
        range(100, 86_400),
        problems,
    );
    let poll_interval = RawDuration::resolve_or(
        c.poll_interval.as_ref(),
        &format!("{key}.poll_interval"),
        Duration::from_secs(2),
        range(10, 600),
        problems,
    );
    let replay_interval = RawDuration::resolve_or(
        c.replay_interval.as_ref(),
        &format!("{key}.replay_interval"),
        Duration::from_secs(15),
        range(10, 3600),
        problems,
    );
    MemoryConfig {
        cognee: Some(CogneeConfig {
            endpoint,
            auth,
            dataset,
            cognify_deadline,
            poll_interval,
            replay_interval,
        }),
    }
}

fn resolve_auth(key: &str, auth: Option<&RawCogneeAuth>, problems: &mut Vec<String>) -> CogneeAuth {
    let Some(auth) = auth else {
        return CogneeAuth::None;
    };
    let login = auth.username.is_some() || auth.password.is_some();
    match (&auth.api_key, login) {
        (Some(_), true) => {
            problems.push(format!(
                "{key}.auth: give api_key or username with password, not both"
            ));
            CogneeAuth::None
        }
        (Some(k), false) => k
            .resolve(&format!("{key}.auth.api_key"), problems)
            .map(CogneeAuth::ApiKey)
            .unwrap_or_default(),
        (None, true) => match (&auth.username, &auth.password) {
            (Some(u), Some(p)) if !u.trim().is_empty() => p
                .resolve(&format!("{key}.auth.password"), problems)
                .map(|password| CogneeAuth::Login {
                    username: u.trim().to_string(),
                    password,
                })
                .unwrap_or_default(),
            _ => {
                problems.push(format!(
                    "{key}.auth: a login needs both username and password"
                ));
                CogneeAuth::None
            }
        },
        (None, false) => CogneeAuth::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::test_config_file as write_config;
    use crate::config::test_env as env;

    #[test]
    fn the_cognee_block_resolves_with_its_login_from_the_environment() {
        let (_dir, path) = write_config(
            "memory:\n  cognee:\n    url: http://cognee:8000/\n    auth: {username: bot@example.com}\n    dataset: governance\n    cognify_deadline: 2m\n",
        );
        let err = Config::load_from(Some(&path), &[]).expect_err("password missing");
        assert!(
            err.to_string()
                .contains("memory.cognee.auth: a login needs both username and password"),
            "{err}"
        );
        let c = Config::load_from(
            Some(&path),
            &env(&[("TOOLGATE_MEMORY_COGNEE_AUTH_PASSWORD", "s3cret")]),
        )
        .expect("valid");
        let cognee = c.memory.cognee.as_ref().expect("cognee");
        assert_eq!(cognee.endpoint.url, "http://cognee:8000");
        assert_eq!(cognee.dataset, "governance");
        assert_eq!(cognee.cognify_deadline, Duration::from_secs(120));
        assert_eq!(
            cognee.auth,
            CogneeAuth::Login {
                username: "bot@example.com".into(),
                password: Credential::inline("s3cret"),
            }
        );
        assert!(
            !format!("{cognee:?}").contains("s3cret"),
            "secrets never print"
        );
    }

    #[test]
    fn bad_cognee_settings_are_all_reported() {
        let (_dir, path) = write_config(
            "memory:\n  cognee:\n    url: cognee:8000\n    auth: {api_key: k, username: u, password: p}\n    dataset: 'a/b'\n    cognify_deadline: 0s\n",
        );
        let text = Config::load_from(Some(&path), &[])
            .expect_err("invalid")
            .to_string();
        for needle in [
            "memory.cognee.url: `cognee:8000` is not an http:// or https:// URL",
            "memory.cognee.auth: give api_key or username with password, not both",
            "memory.cognee.dataset: `a/b` is not a dataset name",
            "memory.cognee.cognify_deadline: 0s is out of range",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
        let (_dir, path) = write_config("memory:\n  cognee:\n    dataset: x\n");
        let text = Config::load_from(Some(&path), &[])
            .expect_err("no url")
            .to_string();
        assert!(text.contains("memory.cognee.url: not set"), "{text}");
    }
}
