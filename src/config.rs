//! Configuration: a raw, all-optional, `deny_unknown_fields` YAML document, overridden by
//! `TOOLGATE_*` environment variables, then resolved into a validated [`Config`].
//! Every problem is collected and reported at once, before any port is bound.
//!
//! This file loads, merges the environment, names unknown keys and calls each section's
//! `resolve` with the shared problem list; the sections' types and checks live beside the
//! modules that use them (`core/config.rs`, `store/config.rs`, `transport/config.rs`,
//! `telemetry.rs`, `adapters/{kube,observability,openbao,cognee,argocd}/config.rs`, `intents/config.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::adapters::http::config::{RawCredential, RawDuration};

pub mod secret_refs;
pub mod seed_blocks;

/// Kubernetes' section lives beside its adapter.
pub use crate::adapters::kube::config::{
    ClusterConfig, ClusterSource, KubernetesConfig, RawCluster, RawKubernetes,
};
/// The `auth` section lives beside the authenticators.
pub use crate::auth::config::{AuthConfig, IntrospectionSettings, RawAuth, ZitadelSettings};

// Every other section (but `auth`) lives beside the module that uses it; its validated form is
// re-exported here, so `config::X` names what a `Config` field holds.
pub use crate::adapters::cognee::config::MemoryConfig;
use crate::adapters::cognee::config::RawMemory;
pub use crate::adapters::observability::config::ObservabilityConfig;
use crate::adapters::observability::config::RawObservability;
pub use crate::core::config::{
    ApprovalsConfig, AuditConfig, DEFAULT_AUDIT_MAX_ARGS_BYTES, LimitsConfig,
    MIN_AUDIT_MAX_ARGS_BYTES, ToolsConfig,
};
use crate::core::config::{RawApprovals, RawAudit, RawLimits, RawPolicies, RawTools};
use crate::store::config::{RawRetention, RawStore};
use crate::telemetry::RawLog;
pub use crate::telemetry::{LogConfig, LogFormat};
pub use crate::transport::config::{McpConfig, ToolNames};
use crate::transport::config::{RawMcp, RawStdio};

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
    /// OpenBao: KV v2 secrets and PKI certificates (absent: no OpenBao).
    pub openbao: Option<crate::adapters::openbao::config::RawOpenBao>,
    /// Memory: the Cognee server behind the `memory.*` tools.
    pub memory: Option<RawMemory>,
    /// ArgoCD: the `argocd.*` tools and the application poller (absent: no ArgoCD).
    pub argocd: Option<crate::adapters::argocd::config::RawArgoCd>,
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
    /// The embedded knowledge index (runbooks, incidents, backlog) behind `knowledge.*`.
    pub knowledge: Option<crate::knowledge::config::RawKnowledge>,
    /// Pull request review: PR-QUEST and GitHub behind `review.*`.
    pub review: Option<crate::review::config::RawReview>,
    /// Ticket providers (Jira) for `ticket.*` and incident facts.
    pub ticketing: Option<crate::incidents::config::RawTicketing>,
    /// Pagers (PagerDuty, Opsgenie) and escalation, for `page.*` and incident facts.
    pub paging: Option<crate::incidents::config::RawPaging>,
    /// Where incident facts (`sre.domain.facts.v1`) are read from.
    pub facts: Option<crate::incidents::config::RawFacts>,
    /// The SRE integration spec's blocks (seed 004), as written: moved onto `kubernetes`, …
    pub kubernetes_integration: Option<seed_blocks::RawKubernetesIntegration>,
    /// … `observability`, `webhooks.alertmanager` and `sli_calculation`, …
    pub observability_integration: Option<seed_blocks::RawObservabilityIntegration>,
    /// … `webhooks.alertmanager`.
    pub alertmanager_integration: Option<seed_blocks::RawSeedAlertmanager>,
    /// … `argocd` (the poller and the `argocd.*` tools).
    pub argocd_integration: Option<seed_blocks::RawArgoCdIntegration>,
    /// → `ticketing` (the same keys).
    pub ticketing_integration: Option<crate::incidents::config::RawTicketing>,
    /// → `paging` (the same keys).
    pub paging_integration: Option<crate::incidents::config::RawPaging>,
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
    /// `None`: no OpenBao configured.
    pub openbao: Option<crate::adapters::openbao::OpenBaoConfig>,
    pub memory: MemoryConfig,
    /// `None`: no ArgoCD configured.
    pub argocd: Option<crate::adapters::argocd::ArgoCdConfig>,
    pub webhooks: crate::intents::config::WebhooksConfig,
    pub intents: crate::intents::config::IntentsConfig,
    pub sli_calculation: crate::intents::config::SliConfig,
    pub retention: crate::store::Retention,
    pub limits: LimitsConfig,
    pub audit: AuditConfig,
    /// `None`: no `knowledge:` section (no index; the toolset is not offered by default).
    pub knowledge: Option<crate::knowledge::KnowledgeConfig>,
    /// `None`: no `review:` section (the toolset is not offered by default).
    pub review: Option<crate::review::config::ReviewConfig>,
    /// Ticketing, paging and the facts source.
    pub incidents: crate::incidents::config::IncidentsConfig,
}

/// Credentials and upstream blocks are the upstream kit's types.
pub use crate::adapters::http::config::Endpoint as HttpUpstream;
pub use crate::adapters::http::{Credential, HttpAuth, Secret, TlsSettings};

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
        let refs = secret_refs::find(&doc);
        let openbao_written = doc.get("openbao").is_some_and(|v| !v.is_null());
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
        secret_refs::check(
            &refs,
            config.openbao.as_ref(),
            openbao_written,
            &mut problems,
        );
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

/// Leaf keys of the config, as paths (`["store","url"]`), from the raw type's schema (the
/// `TOOLGATE_*` overrides, and the deploy test that finds every upstream URL key in it).
pub fn config_paths() -> Vec<Vec<String>> {
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
    let overrides = env.iter().filter(|(name, _)| {
        name.starts_with("TOOLGATE_")
            && !NON_CONFIG_ENV.contains(&name.as_str())
            && !is_service_link(name)
    });
    // The key table comes from the whole config schema: built only when there is an override
    // to look up (a fifth of a start's instructions otherwise).
    let mut overrides = overrides.peekable();
    if overrides.peek().is_none() {
        return;
    }
    let paths = config_paths();
    let by_env: BTreeMap<String, &Vec<String>> = paths
        .iter()
        .map(|p| (format!("TOOLGATE_{}", p.join("_").to_ascii_uppercase()), p))
        .collect();
    for (name, value) in overrides {
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

    let log = crate::telemetry::resolve(raw.log.unwrap_or_default(), problems);
    let mcp = crate::transport::config::resolve_mcp(raw.mcp.unwrap_or_default(), listen, problems);
    let store = crate::store::config::resolve_store(raw.store.unwrap_or_default(), problems);
    let tools = crate::core::config::resolve_tools(raw.tools.unwrap_or_default(), problems);
    let kubernetes =
        crate::adapters::kube::config::resolve(raw.kubernetes.unwrap_or_default(), problems);
    let stdio_principal = crate::transport::config::resolve_stdio_principal(raw.stdio, env);

    let auth =
        crate::auth::config::resolve(raw.auth.unwrap_or_default(), listen, &public_url, problems);
    let policies_dir =
        crate::core::config::resolve_policies_dir(raw.policies.unwrap_or_default(), problems);
    let approvals =
        crate::core::config::resolve_approvals(raw.approvals.unwrap_or_default(), problems);
    let observability = crate::adapters::observability::config::resolve(
        raw.observability.unwrap_or_default(),
        problems,
    );
    let openbao = crate::adapters::openbao::config::resolve(raw.openbao, problems);
    let memory = crate::adapters::cognee::config::resolve(raw.memory.unwrap_or_default(), problems);
    let argocd = crate::adapters::argocd::config::resolve(raw.argocd, problems);
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

    let retention =
        crate::store::config::resolve_retention(raw.retention.unwrap_or_default(), problems);
    let limits = crate::core::config::resolve_limits(raw.limits.unwrap_or_default());
    let audit =
        crate::core::config::resolve_audit(raw.audit.unwrap_or_default(), &store.url, problems);
    let knowledge = crate::knowledge::config::resolve(raw.knowledge, &store.url, problems);
    let review = crate::review::config::resolve(raw.review, problems);
    let incidents =
        crate::incidents::config::resolve(raw.ticketing, raw.paging, raw.facts, problems);

    Config {
        review,
        incidents,
        knowledge,
        limits,
        retention,
        audit,
        observability,
        openbao,
        memory,
        argocd,
        webhooks,
        intents,
        sli_calculation,
        auth,
        policies_dir,
        approvals,
        listen,
        public_url,
        log,
        mcp,
        store_url: store.url,
        read_audit_durability: store.read_audit_durability,
        tools,
        kubernetes,
        stdio_principal,
    }
}

/// An environment for [`Config::load_from`] from literal pairs (the sections' tests).
#[cfg(test)]
pub(crate) fn test_env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A config file holding `yaml` in a fresh directory (kept while the `TempDir` lives).
#[cfg(test)]
pub(crate) fn test_config_file(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).expect("write");
    (dir, path)
}

#[cfg(test)]
impl ConfigError {
    /// The problems, one per line, for exact comparisons in tests.
    pub(crate) fn lines(&self) -> Vec<&str> {
        self.problems.iter().map(String::as_str).collect()
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

    use super::test_config_file as write_config;
    use super::test_env as env;
    use std::time::Duration;

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
            err.lines(),
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

        // Each form's problem names its key; a secret_ref needs an openbao section.
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
            "webhooks.alertmanager.auth.bearer_token.secret_ref: `kv/toolgate#am` is a secret reference, read from OpenBao, and no openbao section is configured",
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
            err.lines(),
            [format!(
                "{}: unknown key `kubernetes.clusterz`; did you mean `clusters`?",
                path.display()
            )]
        );
        // The closest key only, not every key of the section.
        std::fs::write(&path, "tools:\n  timout_seconds: 5\n").expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("unknown key");
        assert_eq!(
            err.lines(),
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
