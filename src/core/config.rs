//! The core's config sections: `tools` (time limit, output budget, argument size), `limits`
//! (per-principal rate limits), `policies` (where the policy files are), `approvals` (notify
//! webhook, expiry sweep) and `audit` (the chain's key, argument size). Raw blocks (all
//! optional, `deny_unknown_fields`) are embedded in `config::RawConfig`; `resolve_*` validate
//! them and report every problem by its key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::http::Credential;
use crate::adapters::http::config::{RawCredential, RawDuration};

// ---- tools ----

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTools {
    /// Time limit of one tool call (`30s`, `2m`, or a number of seconds). Default 30s.
    pub timeout_seconds: Option<RawDuration>,
    /// Default output budget in bytes (`max_bytes` argument). Default 16384.
    pub default_max_bytes: Option<usize>,
    /// Largest `max_bytes` a caller may ask for. Default 1048576.
    pub max_bytes_limit: Option<usize>,
    /// Largest arguments object of one call, in bytes of JSON. Default 524288 (512 KiB).
    pub max_argument_bytes: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct ToolsConfig {
    pub timeout: Duration,
    pub default_max_bytes: usize,
    pub max_bytes_limit: usize,
    /// Largest arguments object of one call (bytes of JSON).
    pub max_argument_bytes: usize,
}

/// Validate the `tools` block.
pub fn resolve_tools(raw: RawTools, problems: &mut Vec<String>) -> ToolsConfig {
    let timeout = RawDuration::resolve_or(
        raw.timeout_seconds.as_ref(),
        "tools.timeout_seconds",
        Duration::from_secs(30),
        (Duration::from_millis(100), Duration::from_secs(3600)),
        problems,
    );
    let max_bytes_limit = raw.max_bytes_limit.unwrap_or(1 << 20);
    let max_argument_bytes = raw.max_argument_bytes.unwrap_or(512 << 10);
    if max_argument_bytes < 1024 {
        problems.push(format!(
            "tools.max_argument_bytes: {max_argument_bytes} is too small; expected at least 1024"
        ));
    }
    let default_max_bytes = raw.default_max_bytes.unwrap_or(16384);
    if default_max_bytes < 1024 {
        problems.push(format!(
            "tools.default_max_bytes: {default_max_bytes} is too small; expected at least 1024"
        ));
    }
    if default_max_bytes > max_bytes_limit {
        problems.push(format!(
            "tools.default_max_bytes ({default_max_bytes}) is larger than tools.max_bytes_limit ({max_bytes_limit})"
        ));
    }
    ToolsConfig {
        timeout,
        default_max_bytes,
        max_bytes_limit,
        max_argument_bytes,
    }
}

// ---- limits ----

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Tool calls one principal may make per minute, over every transport together (a burst
    /// of this many, refilled evenly over the minute). Default 120; `0` = no limit.
    pub tool_calls_per_minute: Option<u32>,
    /// Calls one principal may have held for approval per hour (a burst of this many, refilled
    /// evenly over the hour). Default 30; `0` = no limit.
    pub approval_requests_per_hour: Option<u32>,
}

/// Per-principal rate limits (`0` = no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    pub tool_calls_per_minute: u32,
    pub approval_requests_per_hour: u32,
}

impl LimitsConfig {
    pub const DEFAULT_TOOL_CALLS_PER_MINUTE: u32 = 120;
    pub const DEFAULT_APPROVAL_REQUESTS_PER_HOUR: u32 = 30;
    /// No limits at all.
    pub const OFF: LimitsConfig = LimitsConfig {
        tool_calls_per_minute: 0,
        approval_requests_per_hour: 0,
    };
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            tool_calls_per_minute: Self::DEFAULT_TOOL_CALLS_PER_MINUTE,
            approval_requests_per_hour: Self::DEFAULT_APPROVAL_REQUESTS_PER_HOUR,
        }
    }
}

/// The `limits` block, defaults filled in (every value is valid: `0` turns a limit off).
pub fn resolve_limits(raw: RawLimits) -> LimitsConfig {
    LimitsConfig {
        tool_calls_per_minute: raw
            .tool_calls_per_minute
            .unwrap_or(LimitsConfig::DEFAULT_TOOL_CALLS_PER_MINUTE),
        approval_requests_per_hour: raw
            .approval_requests_per_hour
            .unwrap_or(LimitsConfig::DEFAULT_APPROVAL_REQUESTS_PER_HOUR),
    }
}

// ---- policies ----

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPolicies {
    /// Directory of policy files (`*.yaml`). Default: `policies` when it exists, else the
    /// built-in default policy.
    pub dir: Option<String>,
}

/// The policy directory; `None`: the built-in default policy.
pub fn resolve_policies_dir(raw: RawPolicies, problems: &mut Vec<String>) -> Option<PathBuf> {
    match raw.dir {
        Some(dir) => {
            if !Path::new(&dir).is_dir() {
                problems.push(format!("policies.dir: `{dir}` is not a directory"));
            }
            Some(PathBuf::from(dir))
        }
        None => Some(PathBuf::from("policies")).filter(|p| p.join("default.yaml").is_file()),
    }
}

// ---- approvals ----

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApprovals {
    /// Slack-compatible incoming-webhook URL told about each new request and decision. It
    /// holds a token: the URL, `{file: PATH}`, `{env: VAR}` or `{secret_ref: …}`.
    pub webhook_url: Option<RawCredential>,
    /// How often pending requests past their TTL are expired (`5s`, or a number of seconds).
    /// Default 5s.
    pub sweep_interval_seconds: Option<RawDuration>,
}

#[derive(Debug, Clone)]
pub struct ApprovalsConfig {
    /// Holds a token, so it is a credential (checked to be http(s) when the server starts).
    pub webhook_url: Option<Credential>,
    pub sweep_interval: Duration,
}

/// Validate the `approvals` block.
pub fn resolve_approvals(raw: RawApprovals, problems: &mut Vec<String>) -> ApprovalsConfig {
    if let Some(RawCredential::Value(url)) = &raw.webhook_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        problems.push("approvals.webhook_url: must start with http:// or https://".to_string());
    }
    let webhook_url = raw
        .webhook_url
        .as_ref()
        .and_then(|u| u.resolve("approvals.webhook_url", problems));
    let sweep_interval = RawDuration::resolve_or(
        raw.sweep_interval_seconds.as_ref(),
        "approvals.sweep_interval_seconds",
        Duration::from_secs(5),
        (Duration::from_millis(100), Duration::from_secs(3600)),
        problems,
    );
    ApprovalsConfig {
        webhook_url,
        sweep_interval,
    }
}

// ---- audit ----

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Key of the audit chain's HMAC-SHA256 (a credential, at least 32 bytes). Default for a
    /// SQLite store: a key generated once into `<db>.audit-key` (mode 0600); required for
    /// PostgreSQL.
    pub hmac_key: Option<RawCredential>,
    /// Arguments whose JSON is larger than this are audited as a summary (sha256, size, top-level
    /// keys with sizes, first bytes). Default 65536.
    pub max_args_bytes: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// `None`: the embedded default (SQLite only; see [`RawAudit::hmac_key`]).
    pub hmac_key: Option<Credential>,
    pub max_args_bytes: usize,
}

/// Default of `audit.max_args_bytes`.
pub const DEFAULT_AUDIT_MAX_ARGS_BYTES: usize = 64 * 1024;
/// Smallest `audit.max_args_bytes`: room for the summary that replaces larger arguments.
pub const MIN_AUDIT_MAX_ARGS_BYTES: usize = 1024;

/// Validate the `audit` block for the store at `store_url` (PostgreSQL needs a key).
pub fn resolve_audit(raw: RawAudit, store_url: &str, problems: &mut Vec<String>) -> AuditConfig {
    let hmac_key = raw
        .hmac_key
        .as_ref()
        .and_then(|k| k.resolve("audit.hmac_key", problems));
    if let Some(RawCredential::Value(v)) = &raw.hmac_key
        && !v.is_empty()
        && v.len() < crate::store::MIN_KEY_BYTES
    {
        problems.push(format!(
            "audit.hmac_key: the key has {} bytes; it needs at least {} (e.g. `openssl rand -hex 32`)",
            v.len(),
            crate::store::MIN_KEY_BYTES
        ));
    }
    if raw.hmac_key.is_none()
        && (store_url.starts_with("postgres://") || store_url.starts_with("postgresql://"))
    {
        problems.push(format!(
            "audit.hmac_key: a PostgreSQL store needs the audit chain's key, shared by every replica and kept out of the database: set audit.hmac_key to {{file: PATH}} or {{env: VAR}} holding at least {} bytes (e.g. `openssl rand -hex 32` in a Secret)",
            crate::store::MIN_KEY_BYTES
        ));
    }
    let max_args_bytes = raw.max_args_bytes.unwrap_or(DEFAULT_AUDIT_MAX_ARGS_BYTES);
    if max_args_bytes < MIN_AUDIT_MAX_ARGS_BYTES {
        problems.push(format!(
            "audit.max_args_bytes: {max_args_bytes} is too small; expected at least {MIN_AUDIT_MAX_ARGS_BYTES}"
        ));
    }
    AuditConfig {
        hmac_key,
        max_args_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::test_config_file as write_config;
    use crate::config::test_env as env;

    #[test]
    fn tool_budgets_are_checked_against_each_other() {
        let mut problems = Vec::new();
        let tools = resolve_tools(RawTools::default(), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            (
                tools.timeout,
                tools.default_max_bytes,
                tools.max_bytes_limit
            ),
            (Duration::from_secs(30), 16384, 1 << 20)
        );
        assert_eq!(tools.max_argument_bytes, 512 << 10);
        let raw = RawTools {
            default_max_bytes: Some(512),
            max_argument_bytes: Some(100),
            ..RawTools::default()
        };
        resolve_tools(raw, &mut problems);
        let raw = RawTools {
            default_max_bytes: Some(4096),
            max_bytes_limit: Some(2048),
            ..RawTools::default()
        };
        resolve_tools(raw, &mut problems);
        assert_eq!(
            problems,
            [
                "tools.max_argument_bytes: 100 is too small; expected at least 1024",
                "tools.default_max_bytes: 512 is too small; expected at least 1024",
                "tools.default_max_bytes (4096) is larger than tools.max_bytes_limit (2048)",
            ]
        );
    }

    #[test]
    fn the_policy_dir_must_exist_and_defaults_to_policies_when_it_holds_default_yaml() {
        let mut problems = Vec::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let given = RawPolicies {
            dir: Some(dir.path().display().to_string()),
        };
        assert_eq!(
            resolve_policies_dir(given, &mut problems).as_deref(),
            Some(dir.path())
        );
        assert!(problems.is_empty(), "{problems:?}");
        let missing = RawPolicies {
            dir: Some("/nonexistent/policies".into()),
        };
        resolve_policies_dir(missing, &mut problems);
        assert_eq!(
            problems,
            ["policies.dir: `/nonexistent/policies` is not a directory"]
        );
        // Tests run in the crate root, which ships policies/default.yaml.
        assert_eq!(
            resolve_policies_dir(RawPolicies::default(), &mut Vec::new()),
            Some(PathBuf::from("policies"))
        );
    }

    #[test]
    fn rate_limits_default_on_and_zero_turns_them_off() {
        let c = Config::load_from(None, &[]).expect("defaults are valid");
        assert_eq!(c.limits, LimitsConfig::default());
        assert_eq!(c.limits.tool_calls_per_minute, 120);
        assert_eq!(c.limits.approval_requests_per_hour, 30);
        let c = Config::load_from(
            None,
            &env(&[
                ("TOOLGATE_LIMITS_TOOL_CALLS_PER_MINUTE", "0"),
                ("TOOLGATE_LIMITS_APPROVAL_REQUESTS_PER_HOUR", "5"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.limits.tool_calls_per_minute, 0);
        assert_eq!(c.limits.approval_requests_per_hour, 5);
        let err = Config::load_from(
            None,
            &env(&[("TOOLGATE_LIMITS_TOOL_CALLS_PER_MINUTE", "-1")]),
        )
        .expect_err("negative");
        assert!(err.to_string().contains("tool_calls_per_minute"), "{err}");
    }

    #[test]
    fn audit_keys_are_checked_without_showing_the_key() {
        let c = Config::load_from(None, &[]).expect("defaults");
        assert!(c.audit.hmac_key.is_none(), "SQLite: the embedded default");
        assert_eq!(c.audit.max_args_bytes, 64 * 1024);
        let err = Config::load_from(
            None,
            &env(&[
                ("TOOLGATE_STORE_URL", "postgres://db/toolgate"),
                ("TOOLGATE_AUDIT_MAX_ARGS_BYTES", "100"),
            ]),
        )
        .expect_err("PostgreSQL without a key");
        let text = err.to_string();
        assert!(
            text.contains("audit.hmac_key: a PostgreSQL store needs"),
            "{text}"
        );
        assert!(
            text.contains("audit.max_args_bytes: 100 is too small"),
            "{text}"
        );
        let err = Config::load_from(None, &env(&[("TOOLGATE_AUDIT_HMAC_KEY", "hunter2-short")]))
            .expect_err("short inline key");
        let text = err.to_string();
        assert!(
            text.contains("audit.hmac_key: the key has 13 bytes"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        let (_dir, path) = write_config("audit:\n  hmac_key: {file: /nonexistent/audit-key}\n");
        let err = Config::load_from(Some(&path), &[]).expect_err("missing file");
        assert!(err.to_string().contains("audit.hmac_key.file"), "{err}");
    }
}
