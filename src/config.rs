//! Configuration: a raw, all-optional, `deny_unknown_fields` YAML document, overridden by
//! `TOOLGATE_*` environment variables, then resolved into a validated [`Config`].
//! Every problem is collected and reported at once, before any port is bound.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::adapters::http::config::{RawCredential, RawDuration};

pub mod seed_blocks;

/// Kubernetes' section lives beside its adapter.
pub use crate::adapters::kube::config::{
    ClusterConfig, ClusterSource, KubernetesConfig, RawCluster, RawKubernetes,
};

/// Exit code for a configuration error (EX_CONFIG-style usage error, as linkerd does).
pub const EXIT_CONFIG: i32 = 64;

/// Environment variables with the `TOOLGATE_` prefix that are not config keys.
const NON_CONFIG_ENV: &[&str] = &[
    "TOOLGATE_TOKEN",
    "TOOLGATE_CONFIG",
    "TOOLGATE_LOG",
    "TOOLGATE_SERVER",
    "TOOLGATE_TEST_PYTHON",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address of the HTTP listener (`toolgate serve`). Default 127.0.0.1:3000.
    pub listen: Option<String>,
    /// Base URL under which clients reach this server (used in links). Default http://{listen}.
    pub public_url: Option<String>,
    pub log: Option<RawLog>,
    pub mcp: Option<RawMcp>,
    pub store: Option<RawStore>,
    pub tools: Option<RawTools>,
    pub kubernetes: Option<RawKubernetes>,
    pub stdio: Option<RawStdio>,
    pub auth: Option<RawAuth>,
    pub policies: Option<RawPolicies>,
    pub approvals: Option<RawApprovals>,
    pub observability: Option<RawObservability>,
    /// Inbound webhooks (Alertmanager).
    pub webhooks: Option<crate::intents::config::RawWebhooks>,
    /// Where intents (`sre.domain.intents.v1`) go.
    pub intents: Option<crate::intents::config::RawIntents>,
    /// Scheduled SLI windows from Prometheus.
    pub sli_calculation: Option<crate::intents::config::RawSliCalculation>,
    /// How long finished rows are kept (audit records are never pruned).
    pub retention: Option<RawRetention>,
    /// Per-principal rate limits on tool calls and on approval requests.
    pub limits: Option<RawLimits>,
    /// The audit log: its MAC key and the size of arguments it keeps.
    pub audit: Option<RawAudit>,
    /// The SRE integration spec's blocks (seed 004), as written: moved onto `kubernetes`, …
    pub kubernetes_integration: Option<seed_blocks::RawKubernetesIntegration>,
    /// … `observability`, `webhooks.alertmanager` and `sli_calculation`, …
    pub observability_integration: Option<seed_blocks::RawObservabilityIntegration>,
    /// … `webhooks.alertmanager`.
    pub alertmanager_integration: Option<seed_blocks::RawSeedAlertmanager>,
    /// Refused until issue 19 (ArgoCD poller and tools) unless `enabled: false`.
    pub argocd_integration: Option<Value>,
    /// Refused until issue 20 (Jira/GitHub ticketing) unless `enabled: false`.
    pub ticketing_integration: Option<Value>,
    /// Refused until issue 20 (PagerDuty/OpsGenie paging) unless `enabled: false`.
    pub paging_integration: Option<Value>,
}

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

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPolicies {
    /// Directory of policy files (`*.yaml`). Default: `policies` when it exists, else the
    /// built-in default policy.
    pub dir: Option<String>,
}

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

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Sent outbox intents, counted from when they were sent. Default `7d`; `0` or `off` keeps
    /// them forever.
    pub outbox: Option<RawDuration>,
    /// Finished A2A tasks (completed, failed, canceled, rejected), counted from their last
    /// change. Default `30d`; `0` or `off` keeps them forever.
    pub a2a_tasks: Option<RawDuration>,
    /// Finished approval requests and their decisions, counted from their last change. Default
    /// `90d`; `0` or `off` keeps them forever.
    pub approvals: Option<RawDuration>,
    /// How often the pruning job runs. Default `1h`; at least `1s`.
    pub interval: Option<RawDuration>,
}

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

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `text` (default) or `json`.
    pub format: Option<String>,
    /// tracing filter, e.g. `info` or `toolgate=debug,info`. Default `info`.
    pub level: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMcp {
    /// `underscored` (default, `k8s_get_resource`: clients backed by the OpenAI and Anthropic
    /// APIs refuse dots) or `dotted` (`k8s.get_resource`). Calls are accepted in either form.
    pub tool_names: Option<String>,
    /// Toolsets offered on every tool surface (MCP, /rpc, A2A): `k8s`, `obs`, `approval`, or
    /// `all`. Default: `k8s` and `approval`, plus `obs` when an observability upstream is set.
    /// Tools of other toolsets are neither listed nor run. `--toolsets` overrides it.
    pub toolsets: Option<Vec<String>>,
    /// Offer only read tools: write, critical and sensitive tools are neither listed nor run,
    /// whatever the policy says. Default false. `--read-only` sets it.
    pub read_only: Option<bool>,
    /// Browser origins allowed to call `/mcp` (scheme://host[:port|:*]). Requests with any
    /// other `Origin` get 403. Default: loopback origins on any port.
    pub allowed_origins: Option<Vec<String>>,
    /// `Host` names accepted (DNS-rebinding protection). Default: loopback names.
    pub allowed_hosts: Option<Vec<String>>,
    /// Keep MCP sessions in memory (`true`, default) or serve every request statelessly
    /// (`false`, for several replicas behind a load balancer).
    pub sessions: Option<bool>,
    /// Most MCP sessions held at once; an `initialize` past it gets 503 with Retry-After.
    /// Default 1000.
    pub max_sessions: Option<usize>,
    /// A session with no request for this long is closed (`5m`, `30m`). Default 5m.
    pub session_idle_timeout: Option<RawDuration>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `sqlite://PATH` (default `sqlite://toolgate.db`) or `postgres://…`.
    pub url: Option<String>,
    /// When the audit record of a read call reaches the disk. `deferred` (default): committed
    /// before the answer (survives a crash of toolgate), synced within a second or by the next
    /// synced record; a power loss can lose that last second of read records. `synced`: synced
    /// before the answer, like the records of writes, approvals and decisions always are.
    pub read_audit_durability: Option<crate::store::Durability>,
}

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

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStdio {
    /// Subject recorded for calls over stdio. Default: $USER, else `local`.
    pub principal: Option<String>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: String,
    pub log: LogConfig,
    pub mcp: McpConfig,
    pub store_url: String,
    pub read_audit_durability: crate::store::Durability,
    pub tools: ToolsConfig,
    pub kubernetes: KubernetesConfig,
    pub stdio_principal: String,
    pub auth: AuthConfig,
    /// `None`: the built-in default policy.
    pub policies_dir: Option<PathBuf>,
    pub approvals: ApprovalsConfig,
    pub observability: ObservabilityConfig,
    pub webhooks: crate::intents::config::WebhooksConfig,
    pub intents: crate::intents::config::IntentsConfig,
    pub sli_calculation: crate::intents::config::SliConfig,
    pub retention: crate::store::Retention,
    pub limits: LimitsConfig,
    pub audit: AuditConfig,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    Local {
        tokens_file: Option<PathBuf>,
        anonymous: bool,
    },
    Zitadel(ZitadelSettings),
}

/// Credentials and upstream blocks are the upstream kit's types.
pub use crate::adapters::http::config::Endpoint as HttpUpstream;
pub use crate::adapters::http::{Credential, HttpAuth, Secret, TlsSettings};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZitadelSettings {
    pub issuer: String,
    pub project_id: String,
    pub audiences: Vec<String>,
    pub introspection: Option<IntrospectionSettings>,
    pub timeout: std::time::Duration,
    /// How long a refused opaque token is refused without asking the issuer (zero: off).
    pub introspection_negative_cache: std::time::Duration,
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

#[derive(Debug, Clone)]
pub struct ApprovalsConfig {
    /// Holds a token, so it is a credential (checked to be http(s) when the server starts).
    pub webhook_url: Option<Credential>,
    pub sweep_interval: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolNames {
    Dotted,
    Underscored,
}

#[derive(Debug, Clone)]
pub struct McpConfig {
    pub tool_names: ToolNames,
    /// `None`: the default toolsets (resolved against the registry when the server starts).
    pub toolsets: Option<Vec<String>>,
    pub read_only: bool,
    pub allowed_origins: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub sessions: bool,
    pub max_sessions: usize,
    pub session_idle_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct ToolsConfig {
    pub timeout: std::time::Duration,
    pub default_max_bytes: usize,
    pub max_bytes_limit: usize,
    /// Largest arguments object of one call (bytes of JSON).
    pub max_argument_bytes: usize,
}

/// All problems found while loading; printed one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl Config {
    /// Load from an optional file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// Load from an optional file and the given environment (testable).
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut doc = match file {
            None => Value::Object(Default::default()),
            Some(path) => match std::fs::read_to_string(path) {
                Err(e) => {
                    return Err(ConfigError {
                        problems: vec![format!("cannot read config file {}: {e}", path.display())],
                    });
                }
                Ok(text) if text.trim().is_empty() => Value::Object(Default::default()),
                Ok(text) => match serde_yaml::from_str::<Value>(&text) {
                    Ok(Value::Null) => Value::Object(Default::default()),
                    Ok(v @ Value::Object(_)) => v,
                    Ok(_) => {
                        return Err(ConfigError {
                            problems: vec![format!(
                                "{}: the top level must be a mapping of keys",
                                path.display()
                            )],
                        });
                    }
                    Err(e) => {
                        return Err(ConfigError {
                            problems: vec![format!("{}: {e}", path.display())],
                        });
                    }
                },
            },
        };
        apply_env(&mut doc, env, &mut problems);
        // The error names the key (`store.read_audit_durability: unknown variant …`).
        let mut raw: RawConfig = match serde_path_to_error::deserialize(doc) {
            Ok(raw) => raw,
            Err(e) => {
                let origin = file
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "environment".into());
                let path = e.path().to_string();
                let e = e.into_inner().to_string();
                if let Some(message) = unknown_key_message(&path, &e) {
                    problems.push(format!("{origin}: {message}"));
                } else if path.is_empty() || path == "." {
                    problems.push(format!("{origin}: {e}"));
                } else {
                    problems.push(format!("{origin}: {path}: {e}"));
                }
                return Err(ConfigError { problems });
            }
        };
        seed_blocks::apply(&mut raw, &mut problems);
        let config = resolve(raw, env, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// JSON Schema of the configuration file.
    pub fn schema() -> Value {
        serde_json::to_value(schemars::schema_for!(RawConfig)).unwrap_or(Value::Null)
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`, …" for the key at `path`, rewritten to
/// name the whole key and only the closest valid one (or, when none is close, the valid keys).
fn unknown_key_message(path: &str, serde_message: &str) -> Option<String> {
    let rest = serde_message.strip_prefix("unknown field `")?;
    let (field, expected) = rest.split_once('`')?;
    let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let key = if path.is_empty() || path == "." {
        field.to_string()
    } else {
        path.to_string()
    };
    let closest = valid
        .iter()
        .map(|v| (strsim::damerau_levenshtein(field, v), *v))
        .filter(|(d, v)| *d <= 2.max(v.len() / 3) || strsim::jaro_winkler(field, v) >= 0.9)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v);
    Some(match (closest, valid.is_empty()) {
        (Some(v), _) => format!("unknown key `{key}`; did you mean `{v}`?"),
        (None, true) => format!("unknown key `{key}`: this section takes no keys"),
        (None, false) => format!(
            "unknown key `{key}`; the keys here are {}",
            valid.join(", ")
        ),
    })
}

/// Leaf keys of the config, as paths (`["store","url"]`), from the raw type's schema.
fn config_paths() -> Vec<Vec<String>> {
    fn walk(schema: &Value, defs: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        let schema = resolve_ref(schema, defs);
        let props = schema.get("properties").and_then(Value::as_object);
        match props {
            // An object section with named keys: descend. Arrays and maps are leaves.
            Some(props) if schema_type_is(schema, "object") => {
                for (key, sub) in props {
                    prefix.push(key.clone());
                    walk(sub, defs, prefix, out);
                    prefix.pop();
                }
            }
            _ => out.push(prefix.clone()),
        }
    }
    fn resolve_ref<'a>(schema: &'a Value, defs: &'a Value) -> &'a Value {
        // Option<T> shows up as anyOf[{$ref}, {type:null}].
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
            && let Some(first) = any
                .iter()
                .find(|s| s.get("type") != Some(&Value::String("null".into())))
        {
            return resolve_ref(first, defs);
        }
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or_default();
            if let Some(def) = defs.get(name) {
                return def;
            }
        }
        schema
    }
    fn schema_type_is(schema: &Value, t: &str) -> bool {
        match schema.get("type") {
            Some(Value::String(s)) => s == t,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(t)),
            _ => false,
        }
    }
    let root = Config::schema();
    let defs = root.get("$defs").cloned().unwrap_or(Value::Null);
    let mut out = Vec::new();
    walk(&root, &defs, &mut Vec::new(), &mut out);
    out
}

/// Apply `TOOLGATE_*` overrides: nested keys joined with `_`, upper-cased
/// (`store.url` ↔ `TOOLGATE_STORE_URL`). Values are read as YAML scalars or flow
/// collections (`8080`, `true`, `[a, b]`).
fn apply_env(doc: &mut Value, env: &[(String, String)], problems: &mut Vec<String>) {
    let paths = config_paths();
    let by_env: BTreeMap<String, &Vec<String>> = paths
        .iter()
        .map(|p| (format!("TOOLGATE_{}", p.join("_").to_ascii_uppercase()), p))
        .collect();
    for (name, value) in env {
        if !name.starts_with("TOOLGATE_")
            || NON_CONFIG_ENV.contains(&name.as_str())
            || is_service_link(name)
        {
            continue;
        }
        let Some(path) = by_env.get(name) else {
            let close: Vec<&str> = by_env
                .keys()
                .filter(|k| strsim::levenshtein(k, name) <= 3)
                .map(String::as_str)
                .collect();
            let hint = if close.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {}?)", close.join(", "))
            };
            problems.push(format!(
                "environment variable {name} is not a config key{hint}"
            ));
            continue;
        };
        let parsed: Value = match serde_yaml::from_str::<Value>(value) {
            Ok(v @ (Value::Array(_) | Value::Bool(_) | Value::Number(_))) => v,
            _ => Value::String(value.clone()),
        };
        let mut cursor = &mut *doc;
        for (i, key) in path.iter().enumerate() {
            let Value::Object(map) = cursor else {
                problems.push(format!(
                    "{name}: cannot override `{}`: the file sets a non-mapping there",
                    path[..i].join(".")
                ));
                break;
            };
            if i + 1 == path.len() {
                map.insert(key.clone(), parsed.clone());
                break;
            }
            cursor = map
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Default::default()));
        }
    }
}

/// Kubernetes injects `{SERVICE}_SERVICE_HOST`, `{SERVICE}_PORT…` for a Service named
/// `toolgate`; those are not config keys and must not stop the pod.
fn is_service_link(name: &str) -> bool {
    name.starts_with("TOOLGATE_SERVICE_")
        || name == "TOOLGATE_PORT"
        || name.starts_with("TOOLGATE_PORT_")
}

fn is_loopback_host(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]")
}

fn resolve(raw: RawConfig, env: &[(String, String)], problems: &mut Vec<String>) -> Config {
    let listen_text = raw
        .listen
        .clone()
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            problems.push(format!(
                "listen: `{listen_text}` is not an address; expected IP:PORT such as 127.0.0.1:3000"
            ));
            SocketAddr::from(([127, 0, 0, 1], 3000))
        }
    };
    let public_url = match raw.public_url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            url.trim_end_matches('/').to_string()
        }
        Some(url) => {
            problems.push(format!(
                "public_url: `{url}` must start with http:// or https://"
            ));
            String::new()
        }
        None => format!("http://{listen}"),
    };

    let raw_log = raw.log.unwrap_or_default();
    let format = match raw_log.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            problems.push(format!(
                "log.format: `{other}` is not supported; expected `text` or `json`"
            ));
            LogFormat::Text
        }
    };
    let level = raw_log.level.unwrap_or_else(|| "info,rmcp=warn".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        problems.push(format!("log.level: `{level}` is not a tracing filter; expected e.g. `info` or `toolgate=debug,info`"));
    }

    let raw_mcp = raw.mcp.unwrap_or_default();
    let max_sessions = raw_mcp.max_sessions.unwrap_or(1000);
    if max_sessions == 0 {
        problems.push("mcp.max_sessions: 0 would refuse every client; expected at least 1".into());
    }
    let session_idle_timeout = RawDuration::resolve_or(
        raw_mcp.session_idle_timeout.as_ref(),
        "mcp.session_idle_timeout",
        Duration::from_secs(300),
        (Duration::from_secs(1), Duration::from_secs(24 * 3600)),
        problems,
    );
    let tool_names = match raw_mcp.tool_names.as_deref() {
        None | Some("underscored") => ToolNames::Underscored,
        Some("dotted") => ToolNames::Dotted,
        Some(other) => {
            problems.push(format!(
                "mcp.tool_names: `{other}` is not supported; expected `underscored` or `dotted`"
            ));
            ToolNames::Underscored
        }
    };
    let allowed_origins = raw_mcp.allowed_origins.unwrap_or_else(|| {
        [
            "http://localhost:*",
            "http://127.0.0.1:*",
            "http://[::1]:*",
            "https://localhost:*",
            "https://127.0.0.1:*",
        ]
        .map(String::from)
        .to_vec()
    });
    for origin in &allowed_origins {
        if origin != "null" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
            problems.push(format!(
                "mcp.allowed_origins: `{origin}` must include a scheme, e.g. https://{origin}:443 or http://{origin}:*"
            ));
        }
    }
    let allowed_hosts = raw_mcp.allowed_hosts.unwrap_or_else(|| {
        ["localhost", "127.0.0.1", "::1", "[::1]"]
            .map(String::from)
            .to_vec()
    });
    if !listen.ip().is_loopback()
        && allowed_hosts.iter().all(|h| is_loopback_host(h))
        && !listen.ip().is_unspecified()
    {
        // A non-loopback listener with only loopback Host names would refuse every remote client.
        problems.push(format!(
            "mcp.allowed_hosts: listening on {listen} but only loopback Host names are allowed; add the names clients use"
        ));
    }

    let raw_store = raw.store.unwrap_or_default();
    let read_audit_durability = raw_store
        .read_audit_durability
        .unwrap_or(crate::store::Durability::Deferred);
    let store_url = raw_store
        .url
        .unwrap_or_else(|| "sqlite://toolgate.db".into());
    if !(store_url.starts_with("sqlite:")
        || store_url.starts_with("postgres://")
        || store_url.starts_with("postgresql://"))
    {
        problems.push(format!(
            "store.url: `{store_url}` is not supported; expected sqlite://PATH or postgres://…"
        ));
    }

    let raw_tools = raw.tools.unwrap_or_default();
    let tool_timeout = RawDuration::resolve_or(
        raw_tools.timeout_seconds.as_ref(),
        "tools.timeout_seconds",
        Duration::from_secs(30),
        (Duration::from_millis(100), Duration::from_secs(3600)),
        problems,
    );
    let max_bytes_limit = raw_tools.max_bytes_limit.unwrap_or(1 << 20);
    let max_argument_bytes = raw_tools.max_argument_bytes.unwrap_or(512 << 10);
    if max_argument_bytes < 1024 {
        problems.push(format!(
            "tools.max_argument_bytes: {max_argument_bytes} is too small; expected at least 1024"
        ));
    }
    let default_max_bytes = raw_tools.default_max_bytes.unwrap_or(16384);
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

    let kubernetes =
        crate::adapters::kube::config::resolve(raw.kubernetes.unwrap_or_default(), problems);

    let stdio_principal = raw
        .stdio
        .and_then(|s| s.principal)
        .or_else(|| {
            env.iter()
                .find(|(k, _)| k == "USER")
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| "local".into());

    let raw_auth = raw.auth.unwrap_or_default();
    let auth = match raw_auth.mode.as_deref() {
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
    };
    let policies_dir = match raw.policies.and_then(|p| p.dir) {
        Some(dir) => {
            if !Path::new(&dir).is_dir() {
                problems.push(format!("policies.dir: `{dir}` is not a directory"));
            }
            Some(PathBuf::from(dir))
        }
        None => Some(PathBuf::from("policies")).filter(|p| p.join("default.yaml").is_file()),
    };
    let raw_approvals = raw.approvals.unwrap_or_default();
    if let Some(RawCredential::Value(url)) = &raw_approvals.webhook_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        problems.push("approvals.webhook_url: must start with http:// or https://".to_string());
    }
    let webhook_url = raw_approvals
        .webhook_url
        .as_ref()
        .and_then(|u| u.resolve("approvals.webhook_url", problems));
    let sweep = RawDuration::resolve_or(
        raw_approvals.sweep_interval_seconds.as_ref(),
        "approvals.sweep_interval_seconds",
        Duration::from_secs(5),
        (Duration::from_millis(100), Duration::from_secs(3600)),
        problems,
    );

    let observability = resolve_observability(raw.observability.unwrap_or_default(), problems);
    let (webhooks, intents, sli_calculation) =
        crate::intents::config::resolve(raw.webhooks, raw.intents, raw.sli_calculation, problems);
    // Anyone who reaches the port could post alerts (and so open incidents): beyond loopback,
    // the webhook needs the credentials Alertmanager's http_config sends.
    if webhooks.alertmanager.enabled
        && webhooks.alertmanager.auth == crate::intents::config::WebhookAuth::None
        && !listen.ip().is_loopback()
    {
        problems.push(format!(
            "webhooks.alertmanager: listening on {listen} (beyond loopback) without credentials; set webhooks.alertmanager.auth.bearer_token (Alertmanager: http_config.authorization.credentials) or auth.username/password (http_config.basic_auth), or webhooks.alertmanager.enabled: false"
        ));
    }
    if !sli_calculation.slis.is_empty()
        && sli_calculation.prometheus_url.is_none()
        && observability.prometheus.is_none()
    {
        problems.push(
            "sli_calculation: SLIs need a Prometheus: set observability.prometheus.url \
             (or sli_calculation.prometheus_url), e.g. http://prometheus.monitoring:9090"
                .into(),
        );
    }

    let retention = resolve_retention(raw.retention.unwrap_or_default(), problems);
    let raw_limits = raw.limits.unwrap_or_default();
    let limits = LimitsConfig {
        tool_calls_per_minute: raw_limits
            .tool_calls_per_minute
            .unwrap_or(LimitsConfig::DEFAULT_TOOL_CALLS_PER_MINUTE),
        approval_requests_per_hour: raw_limits
            .approval_requests_per_hour
            .unwrap_or(LimitsConfig::DEFAULT_APPROVAL_REQUESTS_PER_HOUR),
    };
    let audit = resolve_audit(raw.audit.unwrap_or_default(), &store_url, problems);

    Config {
        limits,
        retention,
        audit,
        observability,
        webhooks,
        intents,
        sli_calculation,
        auth,
        policies_dir,
        approvals: ApprovalsConfig {
            webhook_url,
            sweep_interval: sweep,
        },
        listen,
        public_url,
        log: LogConfig { format, level },
        mcp: McpConfig {
            tool_names,
            toolsets: raw_mcp.toolsets,
            read_only: raw_mcp.read_only.unwrap_or(false),
            allowed_origins,
            allowed_hosts,
            sessions: raw_mcp.sessions.unwrap_or(true),
            max_sessions,
            session_idle_timeout,
        },
        store_url,
        read_audit_durability,
        tools: ToolsConfig {
            timeout: tool_timeout,
            default_max_bytes,
            max_bytes_limit,
            max_argument_bytes,
        },
        kubernetes,
        stdio_principal,
    }
}

// ---- audit ----

fn resolve_audit(raw: RawAudit, store_url: &str, problems: &mut Vec<String>) -> AuditConfig {
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

// ---- retention ----

/// A retention window: `None` when `0` / `off`; a problem naming `retention.{key}` when it is no
/// duration.
fn retention_window(
    key: &str,
    raw: Option<RawDuration>,
    default: std::time::Duration,
    problems: &mut Vec<String>,
) -> Option<std::time::Duration> {
    let Some(raw) = raw else {
        return Some(default);
    };
    let window = match &raw {
        RawDuration::Text(text) if text.trim().eq_ignore_ascii_case("off") => return None,
        RawDuration::Seconds(n) => Some(Duration::from_secs(*n)),
        RawDuration::Text(text) => crate::adapters::http::parse_duration(text.trim()),
    };
    match window {
        Some(window) if window.is_zero() => None,
        Some(window) => Some(window),
        None => {
            problems.push(format!(
                "retention.{key}: `{}` is not a duration; expected e.g. 30s, 5m, 1h or 7d, \
                 or 0 / off to keep these rows forever",
                raw.as_written()
            ));
            Some(default)
        }
    }
}

fn resolve_retention(raw: RawRetention, problems: &mut Vec<String>) -> crate::store::Retention {
    use crate::store::Retention;
    let outbox = retention_window("outbox", raw.outbox, Retention::DEFAULT_OUTBOX, problems);
    let a2a_tasks = retention_window(
        "a2a_tasks",
        raw.a2a_tasks,
        Retention::DEFAULT_A2A_TASKS,
        problems,
    );
    let approvals = retention_window(
        "approvals",
        raw.approvals,
        Retention::DEFAULT_APPROVALS,
        problems,
    );
    let interval = match retention_window(
        "interval",
        raw.interval,
        Retention::DEFAULT_INTERVAL,
        problems,
    ) {
        Some(interval) if interval >= std::time::Duration::from_secs(1) => interval,
        Some(interval) => {
            problems.push(format!(
                "retention.interval: {}ms is too short; expected at least 1s",
                interval.as_millis()
            ));
            Retention::DEFAULT_INTERVAL
        }
        None => {
            problems.push(
                "retention.interval: cannot be 0 / off; to stop pruning set retention.outbox, \
                 retention.a2a_tasks and retention.approvals to off"
                    .into(),
            );
            Retention::DEFAULT_INTERVAL
        }
    };
    Retention {
        outbox,
        a2a_tasks,
        approvals,
        interval,
    }
}

// ---- observability: Prometheus, Loki, Tempo, Grafana ----

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawObservability {
    /// Prometheus (or any server with its HTTP API) for `obs.query_metrics`.
    pub prometheus: Option<RawObsUpstream>,
    /// Loki for `obs.search_logs`.
    pub loki: Option<RawLoki>,
    /// Tempo for `obs.get_trace` and `obs.search_traces`.
    pub tempo: Option<RawObsUpstream>,
    /// Grafana for `obs.get_dashboard_url` and `obs.annotate`.
    pub grafana: Option<RawGrafana>,
}

crate::raw_endpoint! {
    /// An observability upstream (the kit's keys only).
    pub struct RawObsUpstream {}
}

crate::raw_endpoint! {
    /// Loki.
    pub struct RawLoki {
        /// Tenant sent as `X-Scope-OrgID` (multi-tenant Loki). Default: none.
        pub tenant: Option<String>,
    }
}

crate::raw_endpoint! {
    /// Grafana; a service-account token goes in `auth.bearer_token`.
    pub struct RawGrafana {
        /// Base URL people open in a browser, for dashboard links. Default: `url`.
        pub public_url: Option<String>,
    }
}

/// Which observability upstreams are configured (`None`: its tools say "not configured").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservabilityConfig {
    pub prometheus: Option<HttpUpstream>,
    pub loki: Option<HttpUpstream>,
    /// Loki's `X-Scope-OrgID`.
    pub loki_tenant: Option<String>,
    pub tempo: Option<HttpUpstream>,
    pub grafana: Option<HttpUpstream>,
    /// Base of dashboard links; `grafana.url` unless `public_url` is set.
    pub grafana_public_url: Option<String>,
}

fn resolve_observability(raw: RawObservability, problems: &mut Vec<String>) -> ObservabilityConfig {
    use crate::adapters::http::config::resolve as endpoint;
    let p = raw.prometheus.unwrap_or_default();
    let t = raw.tempo.unwrap_or_default();
    let l = raw.loki.unwrap_or_default();
    let g = raw.grafana.unwrap_or_default();
    let prometheus = endpoint(
        "observability.prometheus",
        p.url.as_deref(),
        p.endpoint_fields(),
        problems,
    );
    let tempo = endpoint(
        "observability.tempo",
        t.url.as_deref(),
        t.endpoint_fields(),
        problems,
    );
    let loki = endpoint(
        "observability.loki",
        l.url.as_deref(),
        l.endpoint_fields(),
        problems,
    );
    if let Some(tenant) = &l.tenant
        && (tenant.trim().is_empty() || tenant.contains(['\r', '\n']))
    {
        problems
            .push("observability.loki.tenant: must be a non-empty single-line tenant id".into());
    }
    let grafana = endpoint(
        "observability.grafana",
        g.url.as_deref(),
        g.endpoint_fields(),
        problems,
    );
    let grafana_public_url = match g.public_url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Some(url.trim_end_matches('/').to_string())
        }
        Some(url) => {
            problems.push(format!(
                "observability.grafana.public_url: `{url}` must start with http:// or https://"
            ));
            None
        }
        None => grafana.as_ref().map(|g| g.url.clone()),
    };
    ObservabilityConfig {
        prometheus,
        loki,
        loki_tenant: l.tenant,
        tempo,
        grafana,
        grafana_public_url,
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut problems = Vec::new();
        resolve(RawConfig::default(), &[], &mut problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_run_without_a_file() {
        let c = Config::load_from(None, &[]).expect("defaults are valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.store_url, "sqlite://toolgate.db");
        assert_eq!(c.kubernetes.default_cluster, "default");
        assert_eq!(c.kubernetes.clusters[0].source, ClusterSource::Infer);
        assert_eq!(c.kubernetes.log_tail_lines, 500);
        assert_eq!(c.tools.default_max_bytes, 16384);
        assert_eq!(c.read_audit_durability, crate::store::Durability::Deferred);
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
    fn an_https_public_url_is_refused_in_local_mode_naming_both_keys() {
        let err = Config::load_from(
            None,
            &env(&[("TOOLGATE_PUBLIC_URL", "https://toolgate.example.com")]),
        )
        .expect_err("https in local mode");
        let text = err.to_string();
        assert!(
            text.contains("public_url")
                && text.contains("auth.mode")
                && text.contains("zitadel")
                && text.contains("http://127.0.0.1:3000"),
            "{text}"
        );
        let c = Config::load_from(
            None,
            &env(&[("TOOLGATE_PUBLIC_URL", "http://127.0.0.1:3000")]),
        )
        .expect("http is fine");
        assert_eq!(c.public_url, "http://127.0.0.1:3000");
        let c = Config::load_from(
            None,
            &env(&[
                ("TOOLGATE_PUBLIC_URL", "https://toolgate.example.com"),
                ("TOOLGATE_AUTH_MODE", "zitadel"),
                ("TOOLGATE_AUTH_ISSUER", "https://acme.zitadel.cloud"),
                ("TOOLGATE_AUTH_PROJECT_ID", "p1"),
                ("TOOLGATE_AUTH_INTROSPECTION_NEGATIVE_CACHE_SECONDS", "0"),
            ]),
        )
        .expect("https with an identity provider");
        let AuthConfig::Zitadel(z) = c.auth else {
            panic!("zitadel mode")
        };
        assert_eq!(z.introspection_negative_cache, Duration::ZERO);
    }

    #[test]
    fn an_unknown_read_audit_durability_is_named_with_the_choices() {
        let err = Config::load_from(
            None,
            &env(&[("TOOLGATE_STORE_READ_AUDIT_DURABILITY", "fast")]),
        )
        .expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("read_audit_durability"), "{text}");
        assert!(
            text.contains("synced") && text.contains("deferred"),
            "{text}"
        );
    }

    #[test]
    fn env_overrides_nested_keys() {
        let c = Config::load_from(
            None,
            &env(&[
                ("TOOLGATE_LISTEN", "127.0.0.1:4000"),
                ("TOOLGATE_STORE_URL", "postgres://db/toolgate"),
                ("TOOLGATE_STORE_READ_AUDIT_DURABILITY", "synced"),
                ("TOOLGATE_KUBERNETES_LOG_TAIL_LINES", "42"),
                ("TOOLGATE_MCP_TOOL_NAMES", "dotted"),
                ("TOOLGATE_MCP_TOOLSETS", "[k8s, obs]"),
                ("TOOLGATE_MCP_READ_ONLY", "true"),
                ("TOOLGATE_TOKEN", "ignored-here"),
                (
                    "TOOLGATE_AUDIT_HMAC_KEY",
                    "an-audit-key-of-enough-bytes-0123456789",
                ),
                ("TOOLGATE_AUDIT_MAX_ARGS_BYTES", "4096"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.audit.max_args_bytes, 4096);
        assert!(c.audit.hmac_key.is_some());
        assert_eq!(c.listen.port(), 4000);
        assert_eq!(c.store_url, "postgres://db/toolgate");
        assert_eq!(c.read_audit_durability, crate::store::Durability::Synced);
        assert_eq!(c.kubernetes.log_tail_lines, 42);
        assert_eq!(c.mcp.tool_names, ToolNames::Dotted);
        assert_eq!(c.mcp.toolsets, Some(vec!["k8s".into(), "obs".into()]));
        assert!(c.mcp.read_only);
        let defaults = Config::load_from(None, &[]).expect("defaults");
        assert_eq!(defaults.mcp.tool_names, ToolNames::Underscored);
        assert_eq!(defaults.mcp.toolsets, None);
        assert!(!defaults.mcp.read_only);
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
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "audit:\n  hmac_key: {file: /nonexistent/audit-key}\n",
        )
        .expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("missing file");
        assert!(err.to_string().contains("audit.hmac_key.file"), "{err}");
    }

    #[test]
    fn env_beats_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "listen: 127.0.0.1:5000\nlog:\n  format: json\n").expect("write");
        let c = Config::load_from(Some(&path), &env(&[("TOOLGATE_LISTEN", "127.0.0.1:6000")]))
            .expect("valid");
        assert_eq!(c.listen.port(), 6000);
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "listen: nowhere\nlog:\n  format: xml\nkubernetes:\n  default_cluster: prod\n  log_tail_lines: 0\n",
        )
        .expect("write");
        let err =
            Config::load_from(Some(&path), &env(&[("TOOLGATE_LISTN", "x")])).expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("listen: `nowhere`"), "{text}");
        assert!(text.contains("log.format: `xml`"), "{text}");
        assert!(text.contains("default_cluster: `prod`"), "{text}");
        assert!(text.contains("log_tail_lines: 0"), "{text}");
        assert!(
            text.contains("TOOLGATE_LISTN is not a config key (did you mean TOOLGATE_LISTEN?)"),
            "{text}"
        );
        assert_eq!(err.problems.len(), 5, "{text}");
    }

    #[test]
    fn kubernetes_service_links_are_not_config_errors() {
        let c = Config::load_from(
            None,
            &env(&[
                ("TOOLGATE_SERVICE_HOST", "10.0.0.1"),
                ("TOOLGATE_PORT", "tcp://10.0.0.1:3000"),
                ("TOOLGATE_PORT_3000_TCP_ADDR", "10.0.0.1"),
            ]),
        );
        assert!(c.is_ok(), "{:?}", c.err());
    }

    #[test]
    fn sli_windows_use_the_observability_prometheus_unless_they_name_their_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        let slis = "sli_calculation:\n  slis:\n    - {name: a, good: sum(up), total: count(up), window: 5m}\n";
        std::fs::write(&path, slis).expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("no Prometheus anywhere");
        assert!(
            err.to_string().contains("set observability.prometheus.url"),
            "{err}"
        );
        let shared = format!("{slis}observability:\n  prometheus:\n    url: http://prom:9090\n");
        std::fs::write(&path, shared).expect("write");
        let c = Config::load_from(Some(&path), &[]).expect("the shared Prometheus serves SLIs");
        assert_eq!(c.sli_calculation.prometheus_url, None);
        assert!(c.observability.prometheus.is_some());
        let own = format!("{slis}  prometheus_url: http://sli-prom:9090\n");
        std::fs::write(&path, own).expect("write");
        let c = Config::load_from(Some(&path), &[]).expect("an own Prometheus is fine too");
        assert_eq!(
            c.sli_calculation.prometheus_url.as_deref(),
            Some("http://sli-prom:9090")
        );
    }

    #[test]
    fn retention_defaults_off_and_environment_overrides() {
        use crate::store::Retention;
        use std::time::Duration;
        let c = Config::load_from(None, &[]).expect("defaults are valid");
        assert_eq!(c.retention, Retention::default());
        assert_eq!(c.retention.outbox, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(
            c.retention.a2a_tasks,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(
            c.retention.approvals,
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(c.retention.interval, Duration::from_secs(3_600));

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "retention:\n  outbox: off\n  a2a_tasks: 0\n  approvals: 1h30m\n  interval: 30s\n",
        )
        .expect("write");
        let c = Config::load_from(Some(&path), &[]).expect("valid");
        assert_eq!(c.retention.outbox, None);
        assert_eq!(c.retention.a2a_tasks, None);
        assert_eq!(c.retention.approvals, Some(Duration::from_secs(5_400)));
        assert_eq!(c.retention.interval, Duration::from_secs(30));

        let c = Config::load_from(
            Some(&path),
            &env(&[
                ("TOOLGATE_RETENTION_OUTBOX", "5m"),
                ("TOOLGATE_RETENTION_A2A_TASKS", "7d"),
                ("TOOLGATE_RETENTION_APPROVALS", "0"),
                ("TOOLGATE_RETENTION_INTERVAL", "OFF"),
            ]),
        )
        .expect_err("interval cannot be off");
        assert_eq!(
            err_lines(&c),
            [
                "retention.interval: cannot be 0 / off; to stop pruning set retention.outbox, retention.a2a_tasks and retention.approvals to off"
            ]
        );
        let c = Config::load_from(
            Some(&path),
            &env(&[
                ("TOOLGATE_RETENTION_OUTBOX", "5m"),
                ("TOOLGATE_RETENTION_A2A_TASKS", "7d"),
                ("TOOLGATE_RETENTION_APPROVALS", "0"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.retention.outbox, Some(Duration::from_secs(300)));
        assert_eq!(c.retention.a2a_tasks, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(c.retention.approvals, None);
    }

    fn err_lines(e: &ConfigError) -> Vec<&str> {
        e.problems.iter().map(String::as_str).collect()
    }

    #[test]
    fn bad_retention_values_name_their_key() {
        use std::time::Duration;
        let err = Config::load_from(None, &env(&[("TOOLGATE_RETENTION_OUTBOX", "7 days")]))
            .expect_err("invalid");
        assert_eq!(
            err_lines(&err),
            [
                "retention.outbox: `7 days` is not a duration; expected e.g. 30s, 5m, 1h or 7d, or 0 / off to keep these rows forever"
            ]
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        // Units written out, a fraction, and an interval below a second.
        std::fs::write(
            &path,
            "retention:\n  a2a_tasks: 3 weeks\n  approvals: 1.5h\n  interval: 500ms\n",
        )
        .expect("write");
        let text = Config::load_from(Some(&path), &[])
            .expect_err("invalid")
            .to_string();
        for needle in [
            "retention.a2a_tasks: `3 weeks` is not a duration",
            "retention.approvals: `1.5h` is not a duration",
            "retention.interval: 500ms is too short; expected at least 1s",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
        // A bare number is seconds, as everywhere in the config; a zero with a unit is off.
        std::fs::write(&path, "retention:\n  a2a_tasks: 3600\n  approvals: 0s\n").expect("write");
        let c = Config::load_from(Some(&path), &[]).expect("valid");
        assert_eq!(c.retention.a2a_tasks, Some(Duration::from_secs(3600)));
        assert_eq!(c.retention.approvals, None);
        std::fs::write(&path, "retention:\n  sent: 1d\n").expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("unknown key");
        assert!(
            err.to_string().contains(
                "unknown key `retention.sent`; the keys here are outbox, a2a_tasks, approvals, interval"
            ),
            "{err}"
        );
        std::fs::write(&path, "retention:\n  outbox: [1d]\n").expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("not a scalar");
        assert!(
            err.to_string()
                .contains("retention.outbox: expected a duration such as 30s"),
            "{err}"
        );
    }

    fn write_config(yaml: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).expect("write");
        (dir, path)
    }

    #[test]
    fn every_duration_key_takes_units_and_bare_numbers_are_seconds() {
        use crate::intents::config::IntentSink;
        let (_dir, path) = write_config(
            "tools: {timeout_seconds: 2m}\n\
             auth: {mode: zitadel, issuer: 'https://id.example', project_id: p, timeout_seconds: 500ms}\n\
             approvals: {sweep_interval_seconds: 1h}\n\
             kubernetes: {request_timeout_seconds: 45}\n\
             webhooks: {alertmanager: {dedup_window_seconds: 10m}}\n\
             intents: {sink: nats, nats: {url: 'nats://n:4222', timeout_seconds: 1500ms}}\n\
             sli_calculation: {timeout_seconds: 1m}\n\
             observability: {prometheus: {url: 'http://p:9090', timeout_seconds: 5s}}\n",
        );
        let c = Config::load_from(Some(&path), &[]).expect("valid");
        assert_eq!(c.tools.timeout, Duration::from_secs(120));
        let AuthConfig::Zitadel(z) = &c.auth else {
            panic!("zitadel expected: {:?}", c.auth)
        };
        assert_eq!(z.timeout, Duration::from_millis(500));
        assert_eq!(c.approvals.sweep_interval, Duration::from_secs(3600));
        assert_eq!(c.kubernetes.request_timeout, Duration::from_secs(45));
        assert_eq!(c.kubernetes.client.timeout, Duration::from_secs(45));
        assert_eq!(
            c.webhooks.alertmanager.dedup_window,
            Duration::from_secs(600)
        );
        let IntentSink::Nats(nats) = &c.intents.sink else {
            panic!("nats expected")
        };
        assert_eq!(nats.timeout, Duration::from_millis(1500));
        assert_eq!(c.sli_calculation.timeout, Duration::from_secs(60));
        let prom = c.observability.prometheus.as_ref().expect("prometheus");
        assert_eq!(prom.settings.timeout, Duration::from_secs(5));

        // The same spellings through TOOLGATE_* variables, which beat the file.
        let c = Config::load_from(
            Some(&path),
            &env(&[
                ("TOOLGATE_TOOLS_TIMEOUT_SECONDS", "90s"),
                ("TOOLGATE_AUTH_TIMEOUT_SECONDS", "7"),
                ("TOOLGATE_APPROVALS_SWEEP_INTERVAL_SECONDS", "250ms"),
                ("TOOLGATE_KUBERNETES_REQUEST_TIMEOUT_SECONDS", "1m"),
                ("TOOLGATE_WEBHOOKS_ALERTMANAGER_DEDUP_WINDOW_SECONDS", "1h"),
                ("TOOLGATE_INTENTS_NATS_TIMEOUT_SECONDS", "3s"),
                ("TOOLGATE_SLI_CALCULATION_TIMEOUT_SECONDS", "45"),
                ("TOOLGATE_OBSERVABILITY_PROMETHEUS_TIMEOUT_SECONDS", "750ms"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.tools.timeout, Duration::from_secs(90));
        let AuthConfig::Zitadel(z) = &c.auth else {
            panic!("zitadel expected")
        };
        assert_eq!(z.timeout, Duration::from_secs(7));
        assert_eq!(c.approvals.sweep_interval, Duration::from_millis(250));
        assert_eq!(c.kubernetes.request_timeout, Duration::from_secs(60));
        assert_eq!(
            c.webhooks.alertmanager.dedup_window,
            Duration::from_secs(3600)
        );
        let IntentSink::Nats(nats) = &c.intents.sink else {
            panic!("nats expected")
        };
        assert_eq!(nats.timeout, Duration::from_secs(3));
        assert_eq!(c.sli_calculation.timeout, Duration::from_secs(45));
        let prom = c.observability.prometheus.as_ref().expect("prometheus");
        assert_eq!(prom.settings.timeout, Duration::from_millis(750));
    }

    #[test]
    fn bad_durations_name_the_key_and_the_accepted_forms() {
        let err = Config::load_from(
            None,
            &env(&[
                ("TOOLGATE_TOOLS_TIMEOUT_SECONDS", "30 seconds"),
                ("TOOLGATE_APPROVALS_SWEEP_INTERVAL_SECONDS", "2h"),
                ("TOOLGATE_KUBERNETES_REQUEST_TIMEOUT_SECONDS", "0"),
            ]),
        )
        .expect_err("invalid");
        assert_eq!(
            err_lines(&err),
            [
                "tools.timeout_seconds: `30 seconds` is not a duration; write e.g. 30s, 5m, 1h, 500ms, 7d (or a number of seconds)",
                "kubernetes.request_timeout_seconds: 0 is out of range; expected 100ms to 10m",
                "approvals.sweep_interval_seconds: 2h is out of range; expected 100ms to 1h",
            ]
        );
        let (_dir, path) = write_config("tools:\n  timeout_seconds: [30s]\n");
        let err = Config::load_from(Some(&path), &[]).expect_err("not a scalar");
        assert!(
            err.to_string().contains(
                "tools.timeout_seconds: expected a duration such as 30s, 5m, 1h, 500ms or 7d, or a number of seconds"
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn secret_values_take_the_credential_forms_and_plain_strings() {
        use crate::intents::config::WebhookAuth;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = |name: &str, value: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, value).expect("write");
            path.display().to_string()
        };
        let introspection = file("introspection", "intro-secret-1\n");
        let password = file("am-password", "am-pw-2");
        let hook = file("hook", "https://hooks.example/services/T0/B0/xyz\n");
        let yaml = format!(
            "auth:\n  mode: zitadel\n  issuer: https://id.example\n  project_id: p\n\
             \x20 introspection_client_id: api\n  introspection_client_secret: {{file: {introspection}}}\n\
             \x20 web_client_id: web\n  web_client_secret: plain-web-secret\n\
             webhooks:\n  alertmanager:\n    auth: {{username: am, password: {{file: {password}}}}}\n\
             approvals:\n  webhook_url: {{file: {hook}}}\n"
        );
        let (_d, path) = write_config(&yaml);
        let c = Config::load_from(Some(&path), &[]).expect("valid");
        let AuthConfig::Zitadel(z) = &c.auth else {
            panic!("zitadel expected")
        };
        let Some(IntrospectionSettings::Basic { client_secret, .. }) = &z.introspection else {
            panic!("basic introspection expected: {:?}", z.introspection)
        };
        let value = |c: &Credential| {
            let c = c.clone();
            async move { c.current().await.expect("value").expose().to_string() }
        };
        assert_eq!(value(client_secret).await, "intro-secret-1");
        let web = z.web_client_secret.as_ref().expect("web secret");
        assert_eq!(value(web).await, "plain-web-secret");
        let WebhookAuth::Basic { username, password } = &c.webhooks.alertmanager.auth else {
            panic!("basic expected")
        };
        assert_eq!(username, "am");
        assert_eq!(value(password).await, "am-pw-2");
        let url = c.approvals.webhook_url.as_ref().expect("webhook url");
        assert_eq!(value(url).await, "https://hooks.example/services/T0/B0/xyz");
        let shown = format!("{c:?}");
        for secret in ["intro-secret-1", "plain-web-secret", "am-pw-2", "xyz"] {
            assert!(!shown.contains(secret), "{secret} printed");
        }

        // Each form's problem names its key; a secret_ref waits for OpenBao.
        let yaml = format!(
            "auth:\n  mode: zitadel\n  issuer: https://id.example\n  project_id: p\n\
             \x20 introspection_client_id: api\n  introspection_client_secret: {{file: {}/missing}}\n\
             \x20 web_client_secret: {{env: TOOLGATE_TEST_SURELY_UNSET_WEB_SECRET}}\n\
             webhooks:\n  alertmanager:\n    auth: {{bearer_token: {{secret_ref: 'kv/toolgate#am'}}}}\n\
             approvals:\n  webhook_url: hooks.example/x\n",
            dir.path().display()
        );
        std::fs::write(&path, yaml).expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "auth.introspection_client_secret.file: cannot read secret file",
            "auth.web_client_secret.env: environment variable TOOLGATE_TEST_SURELY_UNSET_WEB_SECRET is not set or empty",
            "webhooks.alertmanager.auth.bearer_token.secret_ref: secret references resolve through OpenBao",
            "approvals.webhook_url: must start with http:// or https://",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
        assert_eq!(err.problems.len(), 4, "{text}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "kubernetes:\n  clusterz: []\n").expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("unknown key");
        assert_eq!(
            err_lines(&err),
            [format!(
                "{}: unknown key `kubernetes.clusterz`; did you mean `clusters`?",
                path.display()
            )]
        );
        // The closest key only, not every key of the section.
        std::fs::write(&path, "tools:\n  timout_seconds: 5\n").expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("unknown key");
        assert_eq!(
            err_lines(&err),
            [format!(
                "{}: unknown key `tools.timout_seconds`; did you mean `timeout_seconds`?",
                path.display()
            )]
        );
        std::fs::write(
            &path,
            "kubernetes:\n  clusters:\n    - {name: a, kubeconfg: x}\n",
        )
        .expect("write");
        let text = Config::load_from(Some(&path), &[])
            .expect_err("unknown key")
            .to_string();
        assert!(
            text.contains(
                "unknown key `kubernetes.clusters[0].kubeconfg`; did you mean `kubeconfig`?"
            ),
            "{text}"
        );
        // Nothing close: the keys of that section, so the reader sees what is possible.
        std::fs::write(&path, "mcp:\n  zzz: 1\n").expect("write");
        let text = Config::load_from(Some(&path), &[])
            .expect_err("unknown key")
            .to_string();
        assert!(
            text.contains(
                "unknown key `mcp.zzz`; the keys here are tool_names, toolsets, read_only, allowed_origins, allowed_hosts, sessions"
            ),
            "{text}"
        );
    }

    #[test]
    fn observability_upstreams_resolve_with_secrets_from_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "observability:\n  prometheus:\n    url: http://prom:9090/\n    timeout_seconds: 5\n  loki:\n    url: http://loki:3100\n    tenant: team-a\n    auth: {username: u}\n  grafana:\n    url: http://grafana:3000\n",
        )
        .expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("password missing");
        assert!(
            err.to_string()
                .contains("observability.loki.auth: basic auth needs both username and password"),
            "{err}"
        );
        let c = Config::load_from(
            Some(&path),
            &env(&[
                ("TOOLGATE_OBSERVABILITY_LOKI_AUTH_PASSWORD", "pw"),
                ("TOOLGATE_OBSERVABILITY_GRAFANA_AUTH_BEARER_TOKEN", "glsa_x"),
            ]),
        )
        .expect("valid");
        let o = &c.observability;
        let prom = o.prometheus.as_ref().expect("prometheus");
        assert_eq!(prom.url, "http://prom:9090");
        assert_eq!(prom.settings.timeout, std::time::Duration::from_secs(5));
        assert_eq!(o.loki_tenant.as_deref(), Some("team-a"));
        assert_eq!(
            o.loki.as_ref().map(|l| l.auth.clone()),
            Some(HttpAuth::Basic {
                username: "u".into(),
                password: crate::adapters::http::Credential::inline("pw")
            })
        );
        let grafana = o.grafana.as_ref().expect("grafana");
        assert_eq!(
            grafana.auth,
            HttpAuth::Bearer(crate::adapters::http::Credential::inline("glsa_x"))
        );
        assert!(
            !format!("{grafana:?}").contains("glsa_x"),
            "secrets never print"
        );
        assert_eq!(o.grafana_public_url.as_deref(), Some("http://grafana:3000"));
        assert!(o.tempo.is_none());
    }

    #[test]
    fn bad_observability_settings_are_all_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "observability:\n  prometheus:\n    url: prom:9090\n    timeout_seconds: 0\n  tempo:\n    url: http://u:p@tempo:3200\n    tls: {ca_file: /nonexistent/ca.pem}\n",
        )
        .expect("write");
        let text = Config::load_from(Some(&path), &[])
            .expect_err("invalid")
            .to_string();
        for needle in [
            "observability.prometheus.url: `prom:9090` is not an http:// or https:// URL",
            "observability.prometheus.timeout_seconds: 0 is out of range",
            "observability.tempo.url: must not carry credentials",
            "observability.tempo.tls.ca_file: file `/nonexistent/ca.pem` does not exist",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
        std::fs::write(&path, "observability:\n  prometheus:\n    tenant: x\n").expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("tenant is Loki's");
        assert!(
            err.to_string()
                .contains("unknown key `observability.prometheus.tenant`"),
            "{err}"
        );
    }

    #[test]
    fn an_open_alertmanager_webhook_beyond_loopback_refuses_to_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "listen: 0.0.0.0:3000\n").expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("open webhook on 0.0.0.0");
        let text = err.to_string();
        assert!(
            text.contains("webhooks.alertmanager") && text.contains("bearer_token"),
            "{text}"
        );
        // With credentials, or switched off, or on loopback, it starts.
        for yaml in [
            "listen: 0.0.0.0:3000\nwebhooks:\n  alertmanager:\n    auth: {bearer_token: t0ken-0123456789}\n",
            "listen: 0.0.0.0:3000\nwebhooks:\n  alertmanager:\n    enabled: false\n",
            "listen: 127.0.0.1:3000\n",
        ] {
            std::fs::write(&path, yaml).expect("write");
            let result = Config::load_from(Some(&path), &[]);
            let problems = result.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                !problems.contains("webhooks.alertmanager"),
                "{yaml}: {problems}"
            );
        }
    }
}
