//! The `openbao` config section: where OpenBao is (`address`, `ca_file`, the kit's `timeout`,
//! `connect_timeout`, `retry`, `breaker`), how toolgate logs in (`auth: {kubernetes: {role,
//! mount, jwt_file}}`, or `auth: {token: <credential>}` for development), which KV v2 mounts the
//! tools may touch (`kv_mounts`), the PKI mount (`pki: {mount}`) and when the token is renewed
//! (`renew_before`: a duration, or a fraction of the token's TTL), and how often secret
//! references are read again (`refresh`). No section, no OpenBao.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::http::Endpoint;
use crate::adapters::http::config::{
    EndpointFields, RawBreaker, RawCredential, RawDuration, RawRetry, RawTls,
};
use crate::adapters::http::secret::Credential;

/// Where Kubernetes mounts a pod's service account token (the projected token file).
pub const DEFAULT_JWT_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// Renew once a third of the token's TTL is left, unless configured otherwise.
pub const DEFAULT_RENEW_FRACTION: f64 = 1.0 / 3.0;
/// Secret references are read again this often, unless configured otherwise.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOpenBao {
    /// OpenBao's base URL, e.g. https://openbao.openbao.svc:8200 (http only for tests).
    pub address: Option<String>,
    /// PEM file of the CA that signed OpenBao's certificate (in addition to the system roots).
    pub ca_file: Option<String>,
    /// Time limit of one request, answer included. Default 30s.
    pub timeout: Option<RawDuration>,
    /// Time limit to connect. Default 5s.
    pub connect_timeout: Option<RawDuration>,
    /// Retries of reads (GET, LIST); writes, logins and renewals go out once.
    pub retry: Option<RawRetry>,
    /// The circuit breaker (5xx, sealed, unreachable open it; 4xx never).
    pub breaker: Option<RawBreaker>,
    /// How toolgate logs in: `kubernetes` (in a cluster) or `token` (development, tests).
    pub auth: Option<RawOpenBaoAuth>,
    /// KV v2 mounts the secret tools and references may touch. Default `[secret]`.
    pub kv_mounts: Option<Vec<String>>,
    /// The PKI secrets engine certificates are issued from.
    pub pki: Option<RawPki>,
    /// The transit key that fingerprints secret values (HMAC) and seals the values of held
    /// `secret.write` calls; without it `secret.read` and `secret.write` are unavailable.
    pub transit: Option<RawTransit>,
    /// Renew the token when it expires within this long (`5m`), or within this fraction of its
    /// TTL (`0.25`). Default a third of the TTL.
    pub renew_before: Option<RawRenewBefore>,
    /// How often a secret reference (`secret_ref`, `kubeconfig_secret_ref`) is read again, so a
    /// value rotated in OpenBao is used without a restart (KV v2 values have no lease). An
    /// upstream's 401/403 reads it again at once. Default 5m.
    pub refresh: Option<RawDuration>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOpenBaoAuth {
    /// Kubernetes auth: log in with the pod's service account token.
    pub kubernetes: Option<RawKubernetesAuth>,
    /// A fixed OpenBao token (development and tests): inline, `{file: PATH}` or `{env: VAR}`.
    pub token: Option<RawCredential>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetesAuth {
    /// The OpenBao role bound to toolgate's service account (e.g. `toolgate`).
    pub role: Option<String>,
    /// Where the kubernetes auth method is mounted. Default `kubernetes`.
    pub mount: Option<String>,
    /// The service account token, re-read at every login. Default the projected token file.
    pub jwt_file: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPki {
    /// Where the PKI secrets engine is mounted. Default `pki`.
    pub mount: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTransit {
    /// Where the transit secrets engine is mounted. Default `transit`.
    pub mount: Option<String>,
    /// The key's name; create it with `derived=true` (sealing binds each value to its path).
    /// Default `toolgate`.
    pub key: Option<String>,
}

/// The transit key toolgate uses (see [`RawTransit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitKey {
    pub mount: String,
    pub key: String,
}

/// `renew_before` as written: a duration, or a fraction of the TTL (a number below 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "expected a duration such as 5m, or a fraction of the token's TTL such as 0.25"
)]
pub enum RawRenewBefore {
    Duration(RawDuration),
    Fraction(f64),
}

/// How toolgate logs in to OpenBao.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenBaoAuth {
    /// `POST /v1/auth/{mount}/login {role, jwt}` with the JWT read from `jwt_file` each time.
    Kubernetes {
        role: String,
        mount: String,
        jwt_file: PathBuf,
    },
    /// A fixed token (never renewed by toolgate).
    Token(Credential),
}

/// When the token is renewed: a fixed margin before it expires, or a fraction of its TTL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RenewBefore {
    Fixed(Duration),
    Fraction(f64),
}

impl RenewBefore {
    /// How long before the end of a `ttl`-long lease to renew. A fixed margin never exceeds
    /// half the TTL, so a short-lived token is not renewed on every request.
    pub fn margin(&self, ttl: Duration) -> Duration {
        match *self {
            RenewBefore::Fixed(d) => d.min(ttl / 2),
            RenewBefore::Fraction(f) => ttl.mul_f64(f),
        }
    }
}

/// The validated `openbao` section.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenBaoConfig {
    /// `url` is the address; `auth` is always `None` (the adapter puts its token on).
    pub endpoint: Endpoint,
    pub auth: OpenBaoAuth,
    /// Mount names without slashes at either end (`secret`, `kv/team-a`).
    pub kv_mounts: Vec<String>,
    /// `None`: certificates cannot be issued.
    pub pki_mount: Option<String>,
    /// `None`: values cannot be fingerprinted or sealed.
    pub transit: Option<TransitKey>,
    pub renew_before: RenewBefore,
    /// How long a secret reference's value is used before it is read again.
    pub refresh: Duration,
}

/// Validate the `openbao` block (`None` when absent); every problem names its key.
pub fn resolve(raw: Option<RawOpenBao>, problems: &mut Vec<String>) -> Option<OpenBaoConfig> {
    let raw = raw?;
    let before = problems.len();
    let address = raw.address.as_deref().map(str::trim).unwrap_or_default();
    if address.is_empty() {
        problems.push(
            "openbao.address: required, e.g. https://openbao.openbao.svc:8200 (or remove the openbao section)"
                .into(),
        );
    }
    let tls = RawTls {
        ca_file: raw.ca_file.clone(),
        ..RawTls::default()
    };
    let fields = EndpointFields {
        timeout: raw.timeout.as_ref(),
        timeout_seconds: None,
        connect_timeout: raw.connect_timeout.as_ref(),
        retry: raw.retry.as_ref(),
        breaker: raw.breaker.as_ref(),
        max_response_bytes: None,
        auth: None,
        tls: Some(&tls),
    };
    let endpoint = crate::adapters::http::config::resolve(
        "openbao",
        Some(address).filter(|a| !a.is_empty()),
        fields,
        problems,
    );
    // The kit names its own keys; this section calls them `address` and `ca_file`.
    for p in problems.iter_mut().skip(before) {
        if let Some(rest) = p.strip_prefix("openbao.url:") {
            *p = format!("openbao.address:{rest}");
        } else if let Some(rest) = p.strip_prefix("openbao.tls.ca_file:") {
            *p = format!("openbao.ca_file:{rest}");
        }
    }
    let auth = resolve_auth(raw.auth.as_ref(), problems);
    let kv_mounts = match &raw.kv_mounts {
        None => vec!["secret".to_string()],
        Some(mounts) => {
            let mut out = Vec::new();
            for (i, m) in mounts.iter().enumerate() {
                match mount_name(m) {
                    Ok(m) => out.push(m),
                    Err(why) => problems.push(format!("openbao.kv_mounts[{i}]: {why}")),
                }
            }
            if mounts.is_empty() {
                problems.push(
                    "openbao.kv_mounts: empty; name at least one KV v2 mount, e.g. [secret]".into(),
                );
            }
            out
        }
    };
    let pki_mount =
        raw.pki
            .as_ref()
            .and_then(|p| match mount_name(p.mount.as_deref().unwrap_or("pki")) {
                Ok(m) => Some(m),
                Err(why) => {
                    problems.push(format!("openbao.pki.mount: {why}"));
                    None
                }
            });
    let transit = raw.transit.as_ref().and_then(|t| {
        let mount = mount_name(t.mount.as_deref().unwrap_or("transit"))
            .map_err(|why| problems.push(format!("openbao.transit.mount: {why}")))
            .ok()?;
        let key = t.key.as_deref().unwrap_or("toolgate");
        match super::path::single_segment("transit key", key) {
            Ok(key) => Some(TransitKey { mount, key }),
            Err(why) => {
                problems.push(format!("openbao.transit.key: {why}"));
                None
            }
        }
    });
    let renew_before = match &raw.renew_before {
        None => RenewBefore::Fraction(DEFAULT_RENEW_FRACTION),
        Some(RawRenewBefore::Fraction(f)) if *f > 0.0 && *f < 1.0 => RenewBefore::Fraction(*f),
        Some(RawRenewBefore::Fraction(f)) => {
            problems.push(format!(
                "openbao.renew_before: {f} is not a fraction between 0 and 1; write e.g. 0.25 (a quarter of the TTL) or a duration such as 5m"
            ));
            RenewBefore::Fraction(DEFAULT_RENEW_FRACTION)
        }
        Some(RawRenewBefore::Duration(d)) => d
            .resolve_within(
                "openbao.renew_before",
                Duration::from_secs(1),
                Duration::from_secs(24 * 3600),
                problems,
            )
            .map(RenewBefore::Fixed)
            .unwrap_or(RenewBefore::Fraction(DEFAULT_RENEW_FRACTION)),
    };
    let refresh = RawDuration::resolve_or(
        raw.refresh.as_ref(),
        "openbao.refresh",
        DEFAULT_REFRESH,
        (Duration::from_secs(1), Duration::from_secs(24 * 3600)),
        problems,
    );
    if problems.len() != before {
        return None;
    }
    Some(OpenBaoConfig {
        refresh,
        endpoint: endpoint?,
        auth: auth?,
        kv_mounts,
        pki_mount,
        transit,
        renew_before,
    })
}

fn resolve_auth(raw: Option<&RawOpenBaoAuth>, problems: &mut Vec<String>) -> Option<OpenBaoAuth> {
    const HOW: &str =
        "give auth.kubernetes: {role: toolgate} (in a cluster) or auth.token (development)";
    let Some(raw) = raw else {
        problems.push(format!("openbao.auth: required; {HOW}"));
        return None;
    };
    match (&raw.kubernetes, &raw.token) {
        (Some(k), None) => {
            let role = k.role.as_deref().map(str::trim).unwrap_or_default();
            if role.is_empty() {
                problems.push(
                    "openbao.auth.kubernetes.role: required: the OpenBao role bound to toolgate's service account, e.g. toolgate"
                        .into(),
                );
            }
            let mount = match mount_name(k.mount.as_deref().unwrap_or("kubernetes")) {
                Ok(m) => m,
                Err(why) => {
                    problems.push(format!("openbao.auth.kubernetes.mount: {why}"));
                    String::new()
                }
            };
            let jwt_file = PathBuf::from(k.jwt_file.as_deref().unwrap_or(DEFAULT_JWT_FILE));
            Some(OpenBaoAuth::Kubernetes {
                role: role.to_string(),
                mount,
                jwt_file,
            })
        }
        (None, Some(token)) => token
            .resolve("openbao.auth.token", problems)
            .map(OpenBaoAuth::Token),
        (Some(_), Some(_)) => {
            problems.push(format!(
                "openbao.auth: kubernetes and token both given; {HOW}"
            ));
            None
        }
        (None, None) => {
            problems.push(format!("openbao.auth: empty; {HOW}"));
            None
        }
    }
}

/// A mount name as OpenBao spells it: segments of letters, digits, `-`, `_`, `.`, joined by
/// single slashes, without a slash at either end.
fn mount_name(text: &str) -> Result<String, String> {
    let m = text.trim();
    let ok = !m.is_empty()
        && m.len() <= 128
        && m.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    if ok {
        Ok(m.to_string())
    } else {
        Err(format!(
            "`{text}` is not a mount name; write it as OpenBao lists it without slashes at the ends, e.g. secret or kv/team-a"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::test_config_file as write_config;
    use crate::config::test_env as env;

    #[test]
    fn a_kubernetes_block_resolves_with_defaults() {
        let (_dir, path) = write_config(
            "openbao:\n  address: https://bao.example:8200/\n  timeout: 10s\n  auth:\n    kubernetes: {role: toolgate}\n  pki: {}\n",
        );
        let c = Config::load_from(Some(&path), &[]).expect("valid");
        let o = c.openbao.expect("configured");
        assert_eq!(o.endpoint.url, "https://bao.example:8200");
        assert_eq!(o.endpoint.settings.timeout, Duration::from_secs(10));
        assert_eq!(
            o.auth,
            OpenBaoAuth::Kubernetes {
                role: "toolgate".into(),
                mount: "kubernetes".into(),
                jwt_file: PathBuf::from(DEFAULT_JWT_FILE),
            }
        );
        assert_eq!(o.kv_mounts, vec!["secret"]);
        assert_eq!(o.pki_mount.as_deref(), Some("pki"));
        assert_eq!(
            o.renew_before,
            RenewBefore::Fraction(DEFAULT_RENEW_FRACTION)
        );
        assert!(
            Config::load_from(None, &[])
                .expect("defaults")
                .openbao
                .is_none()
        );
    }

    #[test]
    fn renew_before_takes_a_duration_or_a_fraction_and_a_token_from_the_environment() {
        let (_dir, path) = write_config(
            "openbao:\n  address: http://127.0.0.1:8200\n  renew_before: 5m\n  kv_mounts: [secret, kv/team-a]\n",
        );
        let c = Config::load_from(
            Some(&path),
            &env(&[("TOOLGATE_OPENBAO_AUTH_TOKEN", "s.dev")]),
        )
        .expect("valid");
        let o = c.openbao.expect("configured");
        assert_eq!(o.renew_before, RenewBefore::Fixed(Duration::from_secs(300)));
        assert_eq!(o.kv_mounts, vec!["secret", "kv/team-a"]);
        assert!(matches!(o.auth, OpenBaoAuth::Token(_)));
        assert!(
            !format!("{o:?}").contains("s.dev"),
            "the token never prints"
        );
        assert_eq!(
            RenewBefore::Fixed(Duration::from_secs(300)).margin(Duration::from_secs(60)),
            Duration::from_secs(30),
            "at most half the TTL"
        );
        assert_eq!(
            RenewBefore::Fraction(0.25).margin(Duration::from_secs(40)),
            Duration::from_secs(10)
        );
        let (_dir, path) = write_config(
            "openbao:\n  address: http://127.0.0.1:8200\n  renew_before: 0.25\n  auth: {token: t}\n",
        );
        let o = Config::load_from(Some(&path), &[]).expect("valid").openbao;
        assert_eq!(o.map(|o| o.renew_before), Some(RenewBefore::Fraction(0.25)));
    }

    #[test]
    fn every_problem_of_the_section_names_its_key() {
        let (_dir, path) = write_config(
            "openbao:\n  address: bao:8200\n  ca_file: /nonexistent/ca.pem\n  auth: {kubernetes: {mount: /kubernetes/}}\n  kv_mounts: [secret/, '..']\n  pki: {mount: 'a//b'}\n  renew_before: 1.5\n",
        );
        let err = Config::load_from(Some(&path), &[]).expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "openbao.address: `bao:8200` is not an http:// or https:// URL",
            "openbao.ca_file: file `/nonexistent/ca.pem` does not exist",
            "openbao.auth.kubernetes.role: required",
            "openbao.auth.kubernetes.mount: `/kubernetes/` is not a mount name",
            "openbao.kv_mounts[0]: `secret/` is not a mount name",
            "openbao.kv_mounts[1]: `..` is not a mount name",
            "openbao.pki.mount: `a//b` is not a mount name",
            "openbao.renew_before: 1.5 is not a fraction between 0 and 1",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
        std::fs::write(&path, "openbao:\n  adress: http://x\n").expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("unknown key");
        assert!(
            err.to_string()
                .contains("unknown key `openbao.adress`; did you mean `address`?"),
            "{err}"
        );
        std::fs::write(&path, "openbao:\n  address: http://x\n").expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("no auth");
        assert!(err.to_string().contains("openbao.auth: required"), "{err}");
    }
}
