//! The transports' config sections: `mcp` (tool names, Origin/Host checks, sessions) and
//! `stdio` (who a stdio caller is). Raw blocks (all optional, `deny_unknown_fields`) are embedded
//! in `config::RawConfig`; `resolve_*` validate them and report every problem by its key.

use std::net::SocketAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::http::config::RawDuration;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMcp {
    /// `dotted` (default, `k8s.get_resource`) or `underscored` (`k8s_get_resource`), for
    /// clients that refuse dots. Calls are accepted in either form.
    pub tool_names: Option<String>,
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
pub struct RawStdio {
    /// Subject recorded for calls over stdio. Default: $USER, else `local`.
    pub principal: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolNames {
    Dotted,
    Underscored,
}

#[derive(Debug, Clone)]
pub struct McpConfig {
    pub tool_names: ToolNames,
    pub allowed_origins: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub sessions: bool,
    pub max_sessions: usize,
    pub session_idle_timeout: Duration,
}

fn is_loopback_host(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]")
}

/// Validate the `mcp` block against the HTTP listener it will serve on.
pub fn resolve_mcp(raw: RawMcp, listen: SocketAddr, problems: &mut Vec<String>) -> McpConfig {
    let max_sessions = raw.max_sessions.unwrap_or(1000);
    if max_sessions == 0 {
        problems.push("mcp.max_sessions: 0 would refuse every client; expected at least 1".into());
    }
    let session_idle_timeout = RawDuration::resolve_or(
        raw.session_idle_timeout.as_ref(),
        "mcp.session_idle_timeout",
        Duration::from_secs(300),
        (Duration::from_secs(1), Duration::from_secs(24 * 3600)),
        problems,
    );
    let tool_names = match raw.tool_names.as_deref() {
        None | Some("dotted") => ToolNames::Dotted,
        Some("underscored") => ToolNames::Underscored,
        Some(other) => {
            problems.push(format!(
                "mcp.tool_names: `{other}` is not supported; expected `dotted` or `underscored`"
            ));
            ToolNames::Dotted
        }
    };
    let allowed_origins = raw.allowed_origins.unwrap_or_else(|| {
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
    let allowed_hosts = raw.allowed_hosts.unwrap_or_else(|| {
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
    McpConfig {
        tool_names,
        allowed_origins,
        allowed_hosts,
        sessions: raw.sessions.unwrap_or(true),
        max_sessions,
        session_idle_timeout,
    }
}

/// The subject of stdio calls: `stdio.principal`, else `$USER` from `env`, else `local`.
pub fn resolve_stdio_principal(raw: Option<RawStdio>, env: &[(String, String)]) -> String {
    raw.and_then(|s| s.principal)
        .or_else(|| {
            env.iter()
                .find(|(k, _)| k == "USER")
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| "local".into())
}
