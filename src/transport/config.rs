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
    /// A plain tool call of a session that answers within this time gets one JSON body; one
    /// that runs longer, a resumable SSE stream (`0s`: every answer a stream). Default 20ms.
    pub json_answer_within: Option<RawDuration>,
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
    /// `None`: the default toolsets (resolved against the registry when the server starts).
    pub toolsets: Option<Vec<String>>,
    pub read_only: bool,
    pub allowed_origins: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub sessions: bool,
    pub max_sessions: usize,
    pub session_idle_timeout: Duration,
    pub json_answer_within: Duration,
}

/// Default of `mcp.json_answer_within`: as long as a quick answer stream's first events are
/// held anyway (`sse_coalesce`), so a call that runs longer gets its stream's priming event as
/// early as before.
pub const JSON_ANSWER_WITHIN: Duration = crate::transport::sse_coalesce::COALESCE_FOR;

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
    let json_answer_within = RawDuration::resolve_or(
        raw.json_answer_within.as_ref(),
        "mcp.json_answer_within",
        JSON_ANSWER_WITHIN,
        (Duration::ZERO, Duration::from_secs(60)),
        problems,
    );
    let tool_names = match raw.tool_names.as_deref() {
        None | Some("underscored") => ToolNames::Underscored,
        Some("dotted") => ToolNames::Dotted,
        Some(other) => {
            problems.push(format!(
                "mcp.tool_names: `{other}` is not supported; expected `underscored` or `dotted`"
            ));
            ToolNames::Underscored
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
        toolsets: raw.toolsets,
        read_only: raw.read_only.unwrap_or(false),
        allowed_origins,
        allowed_hosts,
        sessions: raw.sessions.unwrap_or(true),
        max_sessions,
        session_idle_timeout,
        json_answer_within,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(addr: &str) -> SocketAddr {
        addr.parse().expect("address")
    }

    #[test]
    fn mcp_defaults_serve_loopback_clients() {
        let mut problems = Vec::new();
        let mcp = resolve_mcp(RawMcp::default(), listen("127.0.0.1:3000"), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(mcp.tool_names, ToolNames::Underscored);
        assert_eq!(mcp.toolsets, None);
        assert!(!mcp.read_only);
        assert!(mcp.sessions);
        assert_eq!(mcp.max_sessions, 1000);
        assert_eq!(mcp.session_idle_timeout, Duration::from_secs(300));
        assert_eq!(mcp.json_answer_within, Duration::from_millis(20));
        assert!(mcp.allowed_hosts.contains(&"localhost".to_string()));
        assert!(mcp.allowed_origins.iter().all(|o| o.starts_with("http")));
    }

    #[test]
    fn mcp_problems_name_the_key_and_what_would_work() {
        let raw = RawMcp {
            tool_names: Some("dots".into()),
            allowed_origins: Some(vec!["app.example.com".into(), "null".into()]),
            max_sessions: Some(0),
            session_idle_timeout: Some(RawDuration::Text("2d".into())),
            json_answer_within: Some(RawDuration::Text("2m".into())),
            ..RawMcp::default()
        };
        let mut problems = Vec::new();
        let mcp = resolve_mcp(raw, listen("10.0.0.5:3000"), &mut problems);
        assert_eq!(
            problems,
            [
                "mcp.max_sessions: 0 would refuse every client; expected at least 1",
                "mcp.session_idle_timeout: 2d is out of range; expected 1s to 1d",
                "mcp.json_answer_within: 2m is out of range; expected 0ms to 1m",
                "mcp.tool_names: `dots` is not supported; expected `underscored` or `dotted`",
                "mcp.allowed_origins: `app.example.com` must include a scheme, e.g. https://app.example.com:443 or http://app.example.com:*",
                "mcp.allowed_hosts: listening on 10.0.0.5:3000 but only loopback Host names are allowed; add the names clients use",
            ]
        );
        assert_eq!(mcp.session_idle_timeout, Duration::from_secs(300));

        // Every address (0.0.0.0) and a named host are fine for a remote listener.
        for (addr, hosts) in [
            ("0.0.0.0:3000", None),
            (
                "10.0.0.5:3000",
                Some(vec!["toolgate.example.com".to_string()]),
            ),
        ] {
            let raw = RawMcp {
                allowed_hosts: hosts,
                ..RawMcp::default()
            };
            let mut problems = Vec::new();
            resolve_mcp(raw, listen(addr), &mut problems);
            assert!(problems.is_empty(), "{addr}: {problems:?}");
        }
    }

    #[test]
    fn the_stdio_principal_is_configured_else_user_else_local() {
        let user = [("USER".to_string(), "ada".to_string())];
        let configured = Some(RawStdio {
            principal: Some("ci-bot".into()),
        });
        assert_eq!(resolve_stdio_principal(configured, &user), "ci-bot");
        assert_eq!(resolve_stdio_principal(None, &user), "ada");
        assert_eq!(
            resolve_stdio_principal(Some(RawStdio::default()), &[]),
            "local"
        );
    }
}
