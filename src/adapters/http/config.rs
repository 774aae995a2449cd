//! The kit's configuration vocabulary, shared by every upstream's config block: `url`,
//! `timeout`, `connect_timeout`, `retry: {attempts, backoff, max_backoff}`, `breaker:
//! {failures, cooldown}`, `max_response_bytes`, `auth:` and `tls:`; durations written `30s`,
//! `5m`, `1h`, `500ms`, `7d` (or `1h30m`; a bare integer is seconds); credentials given inline,
//! as `{file: PATH}` (re-read when it changes), `{env: VAR}`, or `{secret_ref: "mount/path#key"}`
//! (OpenBao KV v2, through the installed provider), or toolgate's own Zitadel service token
//! (`auth.zitadel_service_token`). An adapter declares its block with `raw_endpoint!` and
//! resolves it with `resolve`, collecting every problem with its key path.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::HeaderName;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::auth::{HttpAuth, ServiceTokenSpec};
use super::breaker::BreakerConfig;
use super::client::TlsSettings;
use super::retry::RetryPolicy;
use super::secret::{Credential, SecretRefSpec};
use super::upstream::Settings;

/// `1h30m`, `500ms`, `2d`: one or more number+unit pairs, integers only (Prometheus' form;
/// units ms, s, m, h, d, w, y).
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            "w" => Duration::from_secs(n.checked_mul(604_800)?),
            "y" => Duration::from_secs(n.checked_mul(31_536_000)?),
            _ => return None,
        };
        total = total.checked_add(d)?;
    }
    Some(total)
}

/// A duration as written in config (a file or a `TOOLGATE_*` variable): `30s`, `5m`, `1h30m`,
/// `500ms`, `7d`, or an integer number of seconds. The one duration type of toolgate's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "expected a duration such as 30s, 5m, 1h, 500ms or 7d, or a number of seconds"
)]
pub enum RawDuration {
    Seconds(u64),
    Text(String),
}

impl RawDuration {
    /// The duration, or a problem naming `key` and the accepted forms.
    pub fn resolve(&self, key: &str, problems: &mut Vec<String>) -> Option<Duration> {
        match self {
            RawDuration::Seconds(n) => Some(Duration::from_secs(*n)),
            RawDuration::Text(t) => {
                let parsed = parse_duration(t.trim());
                if parsed.is_none() {
                    problems.push(format!(
                        "{key}: `{t}` is not a duration; write e.g. 30s, 5m, 1h, 500ms, 7d (or a number of seconds)"
                    ));
                }
                parsed
            }
        }
    }

    /// As written, for messages.
    pub fn as_written(&self) -> String {
        match self {
            RawDuration::Seconds(n) => n.to_string(),
            RawDuration::Text(t) => t.clone(),
        }
    }

    /// `raw` (else `default`) within `min..=max`; a problem naming `key` otherwise, and then
    /// `default`.
    pub fn resolve_or(
        raw: Option<&RawDuration>,
        key: &str,
        default: Duration,
        (min, max): (Duration, Duration),
        problems: &mut Vec<String>,
    ) -> Duration {
        raw.and_then(|d| d.resolve_within(key, min, max, problems))
            .unwrap_or(default)
    }

    /// The duration within `min..=max`, else a problem.
    pub fn resolve_within(
        &self,
        key: &str,
        min: Duration,
        max: Duration,
        problems: &mut Vec<String>,
    ) -> Option<Duration> {
        let d = self.resolve(key, problems)?;
        if d < min || d > max {
            problems.push(format!(
                "{key}: {} is out of range; expected {} to {}",
                self.as_written(),
                show(min),
                show(max)
            ));
            return None;
        }
        Some(d)
    }
}

/// `500ms`, `30s`, `5m`, `1h`, `7d`: the largest unit that shows `d` exactly.
pub fn show(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 || secs == 0 {
        format!("{}ms", d.as_millis())
    } else if secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// A credential as written in config: the value itself, or where to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawCredential {
    /// The value inline (prefer a file, a variable or a secret reference).
    Value(String),
    Source(RawCredentialSource),
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCredentialSource {
    /// A file holding the value (e.g. a mounted Kubernetes Secret); re-read when it changes.
    pub file: Option<String>,
    /// An environment variable holding the value.
    pub env: Option<String>,
    /// `mount/path#key` in OpenBao KV v2.
    pub secret_ref: Option<String>,
}

impl RawCredential {
    /// The credential, or a problem naming `key`. Never echoes a value.
    pub fn resolve(&self, key: &str, problems: &mut Vec<String>) -> Option<Credential> {
        let source = match self {
            RawCredential::Value(v) if v.is_empty() => {
                problems.push(format!("{key}: is empty"));
                return None;
            }
            RawCredential::Value(v) => return Some(Credential::inline(v.clone())),
            RawCredential::Source(s) => s,
        };
        match (&source.file, &source.env, &source.secret_ref) {
            (Some(file), None, None) => Credential::file(PathBuf::from(file))
                .map_err(|e| problems.push(format!("{key}.file: {e}")))
                .ok(),
            (None, Some(var), None) => Credential::env(var)
                .map_err(|e| problems.push(format!("{key}.env: {e}")))
                .ok(),
            // Whether OpenBao is configured, and the mount, are checked with the whole config
            // (`config::secret_refs`); the value is read on first use.
            (None, None, Some(text)) => SecretRefSpec::parse(key, text)
                .map(Credential::secret_ref)
                .map_err(|e| problems.push(format!("{key}.secret_ref: {e}")))
                .ok(),
            _ => {
                problems.push(format!(
                    "{key}: give exactly one of file, env or secret_ref"
                ));
                None
            }
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHttpAuth {
    /// Sent as `Authorization: Bearer …`.
    pub bearer_token: Option<RawCredential>,
    /// Basic auth user (with `password`).
    pub username: Option<String>,
    /// Basic auth password.
    pub password: Option<RawCredential>,
    /// An API key in a header: `{header: X-API-Key, value: …}` (`prefix` e.g. `GenieKey `).
    pub api_key: Option<RawApiKey>,
    /// OpenBao/Vault token, sent as `X-Vault-Token`.
    pub vault_token: Option<RawCredential>,
    /// toolgate's own token as a Zitadel service user (JWT-profile grant), sent as
    /// `Authorization: Bearer …` and renewed before it expires: for upstreams behind a proxy
    /// that checks Zitadel tokens.
    pub zitadel_service_token: Option<RawServiceToken>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawServiceToken {
    /// The Zitadel issuer, e.g. https://acme.zitadel.cloud (http only on loopback).
    pub issuer: Option<String>,
    /// The service user's key file as the Zitadel console downloads it
    /// (`{"type":"serviceaccount","keyId","key","userId"}`).
    pub key_file: Option<String>,
    /// The project the upstream's proxy checks: asks for its audience and roles scopes.
    pub project_id: Option<String>,
    /// More scopes, after `openid` and the project's.
    pub scopes: Option<Vec<String>>,
    /// Renew the token when it expires within this long. Default 60s.
    pub renew_before: Option<RawDuration>,
    /// Time limit of each request to the issuer. Default 10s.
    pub timeout: Option<RawDuration>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    pub header: String,
    #[serde(default)]
    pub prefix: Option<String>,
    pub value: RawCredential,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM file of CA certificates trusted in addition to the system roots.
    pub ca_file: Option<String>,
    /// PEM client certificate for mutual TLS (with `client_key_file`).
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
    /// Accept any server certificate (testing only). Default false.
    pub insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Attempts per idempotent request, the first included. Default 3; 1 turns retries off.
    pub attempts: Option<u32>,
    /// Ceiling of the first backoff (doubles per attempt, full jitter). Default 100ms.
    pub backoff: Option<RawDuration>,
    /// Longest backoff. Default 2s.
    pub max_backoff: Option<RawDuration>,
    /// Longest `Retry-After` of a 429 that an idempotent request waits out before its next
    /// attempt; a longer one fails the call at once, naming when to retry. Default 10s.
    pub max_retry_after: Option<RawDuration>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    /// Consecutive upstream faults that open the breaker. Default 5.
    pub failures: Option<u32>,
    /// How long it stays open before one probe. Default 30s.
    pub cooldown: Option<RawDuration>,
}

/// The fields every upstream block has (borrowed from the block `raw_endpoint!` made).
pub struct EndpointFields<'a> {
    pub timeout: Option<&'a RawDuration>,
    pub timeout_seconds: Option<&'a RawDuration>,
    pub connect_timeout: Option<&'a RawDuration>,
    pub retry: Option<&'a RawRetry>,
    pub breaker: Option<&'a RawBreaker>,
    pub max_response_bytes: Option<usize>,
    pub auth: Option<&'a RawHttpAuth>,
    pub tls: Option<&'a RawTls>,
}

/// Declare an upstream's config block: the kit's fields (`url`, `timeout`, `connect_timeout`,
/// `retry`, `breaker`, `max_response_bytes`, `auth`, `tls`) plus the upstream's own.
#[macro_export]
macro_rules! raw_endpoint {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Base URL (http:// or https://). Unset: the upstream is not configured.
            pub url: Option<String>,
            /// Time limit of one request, answer included (`30s`; default 30s).
            pub timeout: Option<$crate::adapters::http::config::RawDuration>,
            /// The same under its older name (`30`, or `30s` like `timeout`).
            pub timeout_seconds: Option<$crate::adapters::http::config::RawDuration>,
            /// Time limit to connect (default 5s, at most `timeout`).
            pub connect_timeout: Option<$crate::adapters::http::config::RawDuration>,
            /// Retries of idempotent requests.
            pub retry: Option<$crate::adapters::http::config::RawRetry>,
            /// The circuit breaker.
            pub breaker: Option<$crate::adapters::http::config::RawBreaker>,
            /// Larger answers are refused. Default 32 MiB.
            pub max_response_bytes: Option<usize>,
            pub auth: Option<$crate::adapters::http::config::RawHttpAuth>,
            pub tls: Option<$crate::adapters::http::config::RawTls>,
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $name {
            pub fn endpoint_fields(&self) -> $crate::adapters::http::config::EndpointFields<'_> {
                $crate::adapters::http::config::EndpointFields {
                    timeout: self.timeout.as_ref(),
                    timeout_seconds: self.timeout_seconds.as_ref(),
                    connect_timeout: self.connect_timeout.as_ref(),
                    retry: self.retry.as_ref(),
                    breaker: self.breaker.as_ref(),
                    max_response_bytes: self.max_response_bytes,
                    auth: self.auth.as_ref(),
                    tls: self.tls.as_ref(),
                }
            }
        }
    };
}

/// An upstream's resolved base URL, credentials and client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub auth: HttpAuth,
    pub settings: Settings,
}

impl Endpoint {
    /// An endpoint at `url` with no credentials and default settings but `timeout`.
    pub fn plain(url: &str, timeout: Duration) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            auth: HttpAuth::None,
            settings: Settings::with_timeout(timeout),
        }
    }
}

/// Resolve the block at `key` (e.g. `observability.prometheus`); `None` when its `url` is unset.
pub fn resolve(
    key: &str,
    url: Option<&str>,
    fields: EndpointFields<'_>,
    problems: &mut Vec<String>,
) -> Option<Endpoint> {
    let url = url.map(str::trim).filter(|u| !u.is_empty())?;
    let url = url.trim_end_matches('/').to_string();
    match reqwest::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
            if !parsed.username().is_empty() || parsed.password().is_some() {
                problems.push(format!(
                    "{key}.url: must not carry credentials; use {key}.auth.username/password"
                ));
            }
        }
        _ => problems.push(format!(
            "{key}.url: `{url}` is not an http:// or https:// URL"
        )),
    }
    Some(Endpoint {
        url,
        auth: resolve_auth(key, fields.auth, problems),
        settings: resolve_settings(key, &fields, problems),
    })
}

/// The client settings of the block at `key` (also for upstreams that are not plain HTTP,
/// such as a Kubernetes cluster: timeouts, breaker, byte cap).
pub fn resolve_settings(
    key: &str,
    fields: &EndpointFields<'_>,
    problems: &mut Vec<String>,
) -> Settings {
    let defaults = Settings::default();
    let max = Duration::from_secs(600);
    let ms = Duration::from_millis(1);
    let timeout = match (fields.timeout, fields.timeout_seconds) {
        (Some(_), Some(_)) => {
            problems.push(format!("{key}: give timeout or timeout_seconds, not both"));
            None
        }
        (Some(t), None) => t.resolve_within(&format!("{key}.timeout"), ms, max, problems),
        (None, Some(s)) => s.resolve_within(&format!("{key}.timeout_seconds"), ms, max, problems),
        (None, None) => None,
    }
    .unwrap_or(defaults.timeout);
    let connect_timeout = fields
        .connect_timeout
        .and_then(|t| t.resolve_within(&format!("{key}.connect_timeout"), ms, max, problems))
        .unwrap_or(defaults.connect_timeout)
        .min(timeout);
    let mut retry = RetryPolicy::default();
    if let Some(r) = fields.retry {
        let k = |f: &str| format!("{key}.retry.{f}");
        set_count(
            &mut retry.attempts,
            r.attempts,
            &k("attempts"),
            10,
            problems,
        );
        set_duration(
            &mut retry.backoff,
            r.backoff.as_ref(),
            &k("backoff"),
            max,
            problems,
        );
        set_duration(
            &mut retry.max_backoff,
            r.max_backoff.as_ref(),
            &k("max_backoff"),
            max,
            problems,
        );
        set_duration(
            &mut retry.max_retry_after,
            r.max_retry_after.as_ref(),
            &k("max_retry_after"),
            max,
            problems,
        );
    }
    let mut breaker = BreakerConfig::default();
    if let Some(b) = fields.breaker {
        let k = |f: &str| format!("{key}.breaker.{f}");
        set_count(
            &mut breaker.failures,
            b.failures,
            &k("failures"),
            1000,
            problems,
        );
        let hour = Duration::from_secs(3600);
        set_duration(
            &mut breaker.cooldown,
            b.cooldown.as_ref(),
            &k("cooldown"),
            hour,
            problems,
        );
    }
    let max_response_bytes = match fields.max_response_bytes {
        Some(n) if n >= 1024 => n,
        Some(n) => {
            problems.push(format!(
                "{key}.max_response_bytes: {n} is too small; expected at least 1024"
            ));
            defaults.max_response_bytes
        }
        None => defaults.max_response_bytes,
    };
    Settings {
        timeout,
        connect_timeout,
        retry,
        breaker,
        max_response_bytes,
        tls: resolve_tls(key, fields.tls, problems),
    }
}

/// `target = value` when given and within `1..=max`, else a problem naming `key`.
fn set_count(
    target: &mut u32,
    value: Option<u32>,
    key: &str,
    max: u32,
    problems: &mut Vec<String>,
) {
    match value {
        Some(n) if (1..=max).contains(&n) => *target = n,
        Some(n) => problems.push(format!("{key}: {n} is out of range; expected 1..={max}")),
        None => {}
    }
}

/// `target = value` when given and within `1ms..=max`, else a problem naming `key`.
fn set_duration(
    target: &mut Duration,
    value: Option<&RawDuration>,
    key: &str,
    max: Duration,
    problems: &mut Vec<String>,
) {
    if let Some(d) =
        value.and_then(|d| d.resolve_within(key, Duration::from_millis(1), max, problems))
    {
        *target = d;
    }
}

fn resolve_tls(key: &str, tls: Option<&RawTls>, problems: &mut Vec<String>) -> TlsSettings {
    let Some(tls) = tls else {
        return TlsSettings::default();
    };
    let file = |name: &str, value: &Option<String>, problems: &mut Vec<String>| {
        let path = value.as_ref().map(PathBuf::from)?;
        if !path.is_file() {
            problems.push(format!(
                "{key}.tls.{name}: file `{}` does not exist",
                path.display()
            ));
        }
        Some(path)
    };
    let settings = TlsSettings {
        ca_file: file("ca_file", &tls.ca_file, problems),
        client_cert_file: file("client_cert_file", &tls.client_cert_file, problems),
        client_key_file: file("client_key_file", &tls.client_key_file, problems),
        insecure_skip_verify: tls.insecure_skip_verify.unwrap_or(false),
    };
    if settings.client_cert_file.is_some() != settings.client_key_file.is_some() {
        problems.push(format!(
            "{key}.tls: a client certificate needs both client_cert_file and client_key_file"
        ));
    }
    settings
}

fn resolve_auth(key: &str, auth: Option<&RawHttpAuth>, problems: &mut Vec<String>) -> HttpAuth {
    let Some(auth) = auth else {
        return HttpAuth::None;
    };
    let k = |field: &str| format!("{key}.auth.{field}");
    let given = [
        auth.bearer_token.is_some(),
        auth.username.is_some() || auth.password.is_some(),
        auth.api_key.is_some(),
        auth.vault_token.is_some(),
        auth.zitadel_service_token.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given > 1 {
        problems.push(format!(
            "{key}.auth: give one of bearer_token, username with password, api_key, vault_token or zitadel_service_token, not several"
        ));
        return HttpAuth::None;
    }
    if let Some(token) = &auth.zitadel_service_token {
        return resolve_service_token(&k("zitadel_service_token"), token, problems)
            .map(HttpAuth::ServiceToken)
            .unwrap_or_default();
    }
    if let Some(token) = &auth.bearer_token {
        return token
            .resolve(&k("bearer_token"), problems)
            .map(HttpAuth::Bearer)
            .unwrap_or_default();
    }
    if let Some(token) = &auth.vault_token {
        return token
            .resolve(&k("vault_token"), problems)
            .map(HttpAuth::VaultToken)
            .unwrap_or_default();
    }
    if let Some(api) = &auth.api_key {
        let Ok(name) = HeaderName::from_bytes(api.header.trim().as_bytes()) else {
            problems.push(format!(
                "{}: `{}` is not a header name",
                k("api_key.header"),
                api.header
            ));
            return HttpAuth::None;
        };
        return api
            .value
            .resolve(&k("api_key.value"), problems)
            .map(|value| HttpAuth::Header {
                name,
                prefix: api.prefix.clone().unwrap_or_default(),
                value,
            })
            .unwrap_or_default();
    }
    match (&auth.username, &auth.password) {
        (Some(username), Some(password)) => password
            .resolve(&k("password"), problems)
            .map(|password| HttpAuth::Basic {
                username: username.clone(),
                password,
            })
            .unwrap_or_default(),
        (None, None) => HttpAuth::None,
        _ => {
            problems.push(format!(
                "{key}.auth: basic auth needs both username and password"
            ));
            HttpAuth::None
        }
    }
}

/// The service-token spec at `key`: an http(s) issuer (http only on loopback), a key file that
/// exists; the file's content is checked when the upstream is built.
fn resolve_service_token(
    key: &str,
    raw: &RawServiceToken,
    problems: &mut Vec<String>,
) -> Option<ServiceTokenSpec> {
    let before = problems.len();
    let issuer = raw
        .issuer
        .as_deref()
        .map(|i| i.trim().trim_end_matches('/'))
        .unwrap_or_default();
    let loopback_http = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|host| {
            issuer
                .strip_prefix(host)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
    if issuer.is_empty() {
        problems.push(format!(
            "{key}.issuer: required, e.g. https://acme.zitadel.cloud"
        ));
    } else if !(issuer.starts_with("https://") || loopback_http)
        || reqwest::Url::parse(issuer).is_err()
    {
        problems.push(format!(
            "{key}.issuer: `{issuer}` must be an https:// URL (http only on loopback, for tests)"
        ));
    }
    let key_file = match raw.key_file.as_deref().map(str::trim) {
        None | Some("") => {
            problems.push(format!(
                "{key}.key_file: required: the service user's key file from the Zitadel console"
            ));
            PathBuf::new()
        }
        Some(file) => {
            let path = PathBuf::from(file);
            if !path.is_file() {
                problems.push(format!("{key}.key_file: file `{file}` does not exist"));
            }
            path
        }
    };
    let hour = Duration::from_secs(3600);
    let renew_before = raw.renew_before.as_ref().and_then(|d| {
        d.resolve_within(
            &format!("{key}.renew_before"),
            Duration::ZERO,
            24 * hour,
            problems,
        )
    });
    let timeout = raw.timeout.as_ref().and_then(|d| {
        d.resolve_within(
            &format!("{key}.timeout"),
            Duration::from_millis(100),
            Duration::from_secs(60),
            problems,
        )
    });
    (problems.len() == before).then(|| ServiceTokenSpec {
        issuer: issuer.to_string(),
        key_file,
        project_id: raw
            .project_id
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        scopes: raw.scopes.clone().unwrap_or_default(),
        timeout,
        renew_before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::raw_endpoint! {
        /// A test block with one extra key.
        pub struct RawTest {
            /// Extra.
            pub tenant: Option<String>,
        }
    }

    fn parse(yaml: &str) -> Result<RawTest, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    /// The block `yaml` resolved at key `t`, and the problems found.
    fn resolved(yaml: &str) -> (Option<Endpoint>, Vec<String>) {
        let raw = parse(yaml).expect("yaml");
        let mut problems = Vec::new();
        let endpoint = resolve(
            "t",
            raw.url.as_deref(),
            raw.endpoint_fields(),
            &mut problems,
        );
        (endpoint, problems)
    }

    #[test]
    fn durations_take_units_and_integers_are_seconds() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("5 m"), None);
        assert_eq!(parse_duration("m"), None);
        let (e, problems) = resolved("url: http://x\ntimeout: 45\nconnect_timeout: 750ms\n");
        let e = e.expect("configured");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(e.settings.timeout, Duration::from_secs(45));
        assert_eq!(e.settings.connect_timeout, Duration::from_millis(750));
    }

    #[test]
    fn every_problem_names_its_key() {
        let raw = parse(
            "url: ftp://x\ntimeout: soon\nretry: {attempts: 99, backoff: 10x}\nbreaker: {failures: 0}\nmax_response_bytes: 10\nauth: {username: u}\ntls: {client_cert_file: /nope.pem}\n",
        )
        .expect("yaml");
        let mut problems = Vec::new();
        resolve(
            "observability.loki",
            raw.url.as_deref(),
            raw.endpoint_fields(),
            &mut problems,
        );
        let text = problems.join("\n");
        for key in [
            "observability.loki.url",
            "observability.loki.timeout: `soon` is not a duration",
            "observability.loki.retry.attempts",
            "observability.loki.retry.backoff",
            "observability.loki.breaker.failures",
            "observability.loki.max_response_bytes",
            "observability.loki.auth: basic auth needs both",
            "observability.loki.tls.client_cert_file",
            "observability.loki.tls: a client certificate needs both",
        ] {
            assert!(text.contains(key), "missing {key} in:\n{text}");
        }
        assert!(
            parse("url: http://x\nretries: 3\n")
                .expect_err("unknown key")
                .contains("unknown field `retries`")
        );
    }

    #[tokio::test]
    async fn credentials_come_from_files_and_variables_and_never_show() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "from-a-file\n").expect("write");
        let yaml = format!(
            "url: http://x\nauth: {{bearer_token: {{file: {}}}}}\n",
            path.display()
        );
        let (e, problems) = resolved(&yaml);
        let e = e.expect("configured");
        assert!(problems.is_empty(), "{problems:?}");
        let HttpAuth::Bearer(c) = &e.auth else {
            panic!("bearer expected: {:?}", e.auth)
        };
        assert_eq!(c.current().await.expect("value").expose(), "from-a-file");
        assert!(!format!("{e:?}").contains("from-a-file"));

        let (e, problems) = resolved("url: http://x\nauth: {vault_token: {secret_ref: kv/x#y}}\n");
        assert!(problems.is_empty(), "{problems:?}");
        let HttpAuth::VaultToken(c) = &e.expect("configured").auth else {
            panic!("vault token expected")
        };
        assert_eq!(c.describe(), "openbao kv/x#y");
        let (_, problems) =
            resolved("url: http://x\nauth: {bearer_token: {secret_ref: 'kv/x#'}}\n");
        assert_eq!(
            problems,
            vec![
                "t.auth.bearer_token.secret_ref: `kv/x#`: the field after `#` must be one non-empty name, e.g. platform/grafana-api-key#value"
            ]
        );
        let (_, problems) = resolved(
            "url: http://x\nauth: {api_key: {header: X-API-Key, value: {env: TOOLGATE_TEST_UNSET_KEY_VAR}}}\n",
        );
        assert_eq!(
            problems,
            vec![
                "t.auth.api_key.value.env: environment variable TOOLGATE_TEST_UNSET_KEY_VAR is not set or empty"
            ]
        );
    }

    #[test]
    fn a_service_token_needs_an_issuer_and_a_key_file_and_stands_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("sa.json");
        std::fs::write(&key, "{}").expect("write");
        let yaml = format!(
            "url: http://x\nauth: {{zitadel_service_token: {{issuer: 'https://id.example/', key_file: {}, project_id: ' 42 ', scopes: [email], renew_before: 5m}}}}\n",
            key.display()
        );
        let (e, problems) = resolved(&yaml);
        let e = e.expect("configured");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            e.auth,
            HttpAuth::ServiceToken(ServiceTokenSpec {
                issuer: "https://id.example".into(),
                key_file: key.clone(),
                project_id: Some("42".into()),
                scopes: vec!["email".into()],
                timeout: None,
                renew_before: Some(Duration::from_secs(300)),
            })
        );

        let (e, problems) = resolved(
            "url: http://x\nauth: {zitadel_service_token: {issuer: 'http://id.example', key_file: /nonexistent/sa.json, timeout: 0s}}\n",
        );
        let e = e.expect("configured");
        assert_eq!(e.auth, HttpAuth::None);
        let text = problems.join("\n");
        for expected in [
            "t.auth.zitadel_service_token.issuer: `http://id.example` must be an https:// URL",
            "t.auth.zitadel_service_token.key_file: file `/nonexistent/sa.json` does not exist",
            "t.auth.zitadel_service_token.timeout: 0s is out of range",
        ] {
            assert!(text.contains(expected), "missing {expected} in:\n{text}");
        }

        let (_, problems) =
            resolved("url: http://x\nauth: {bearer_token: t, zitadel_service_token: {}}\n");
        assert!(
            problems[0].contains("zitadel_service_token, not several"),
            "{problems:?}"
        );
        let (_, problems) = resolved("url: http://x\nauth: {zitadel_service_token: {}}\n");
        assert_eq!(
            problems,
            vec![
                "t.auth.zitadel_service_token.issuer: required, e.g. https://acme.zitadel.cloud",
                "t.auth.zitadel_service_token.key_file: required: the service user's key file from the Zitadel console",
            ]
        );
        assert!(
            parse("url: http://x\nauth: {zitadel_service_token: {audience: a}}\n")
                .expect_err("unknown key")
                .contains("unknown field `audience`")
        );
    }
}
