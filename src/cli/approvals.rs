//! `toolgate approvals list|show|approve|deny`: the approver's command line, a thin client of
//! the REST API (`/api/v1/approvals…`). It decides nothing itself; the server's answer, error
//! messages included, is what it prints. Authenticates with the bearer `TOOLGATE_TOKEN`.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use crate::transport::approvals_page::target_text;

#[derive(Debug, clap::Subcommand)]
pub enum ApprovalsCommand {
    /// List approval requests, newest first.
    List {
        /// Only requests in this state: pending, approved, executing, executed, failed, denied,
        /// expired, cancelled, interrupted.
        #[arg(long)]
        state: Option<String>,
        /// At most this many (1–500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one request: target, arguments, preview and diff, decisions, result, audit trail.
    Show {
        id: String,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Approve a request. When it is the last approval needed, the call runs now.
    Approve {
        id: String,
        /// Why (some policies require one).
        #[arg(long)]
        reason: Option<String>,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Deny a request; it will not run.
    Deny {
        id: String,
        /// Why (some policies require one).
        #[arg(long)]
        reason: Option<String>,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Environment variable holding the bearer token.
const TOKEN_ENV: &str = "TOOLGATE_TOKEN";

/// Run one approvals subcommand against `server` (e.g. `http://127.0.0.1:3000`).
pub async fn run(server: &str, cmd: ApprovalsCommand) -> ExitCode {
    crate::adapters::http::init_crypto();
    let api = match Api::new(server) {
        Ok(api) => api,
        Err(e) => {
            eprintln!("toolgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let outcome = match cmd {
        ApprovalsCommand::List { state, limit, json } => {
            let mut query = vec![("limit", limit.to_string())];
            if let Some(s) = state {
                query.push(("state", s));
            }
            api.get("/api/v1/approvals", &query)
                .await
                .map(|v| if json { pretty(&v) } else { list_text(&v) })
        }
        ApprovalsCommand::Show { id, json } => api
            .get(&format!("/api/v1/approvals/{}", segment(&id)), &[])
            .await
            .map(|v| {
                if json {
                    pretty(&v)
                } else {
                    show_text(&v, color)
                }
            }),
        ApprovalsCommand::Approve { id, reason, json } => api
            .post(
                &format!("/api/v1/approvals/{}/approve", segment(&id)),
                json!({"reason": reason}),
            )
            .await
            .map(|v| {
                if json {
                    pretty(&v)
                } else {
                    decided_text("approved", &v)
                }
            }),
        ApprovalsCommand::Deny { id, reason, json } => api
            .post(
                &format!("/api/v1/approvals/{}/deny", segment(&id)),
                json!({"reason": reason}),
            )
            .await
            .map(|v| {
                if json {
                    pretty(&v)
                } else {
                    decided_text("denied", &v)
                }
            }),
    };
    match outcome {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("toolgate: {message}");
            ExitCode::FAILURE
        }
    }
}

struct Api {
    base: String,
    client: reqwest::Client,
    token: Option<String>,
}

impl Api {
    fn new(server: &str) -> Result<Self, String> {
        let base = server.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "--server `{base}` must start with http:// or https://"
            ));
        }
        // The kit's client (rustls, no redirects that would carry the token elsewhere). An
        // approval that completes the count runs the call before the server answers.
        let client = crate::adapters::http::client::build(
            Duration::from_secs(5),
            Duration::from_secs(300),
            &crate::adapters::http::TlsSettings::default(),
        )
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let token = std::env::var(TOKEN_ENV)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Ok(Self {
            base,
            client,
            token,
        })
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, String> {
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", segment(v)))
            .collect();
        let url = if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{}", self.base, query.join("&"))
        };
        self.send(self.client.get(url)).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.send(self.client.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    async fn send(&self, mut req: reqwest::RequestBuilder) -> Result<Value, String> {
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let res = req
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {e}", self.base))?;
        let status = res.status();
        let text = res
            .text()
            .await
            .map_err(|e| format!("reading the answer of {}: {e}", self.base))?;
        let body: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return body.ok_or_else(|| {
                format!(
                    "{} answered {status} with a body that is not JSON",
                    self.base
                )
            });
        }
        let message = body
            .as_ref()
            .and_then(|b| b.pointer("/error/message"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{} answered {status}: {}", self.base, text.trim()));
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED && self.token.is_none() {
            format!(" (set {TOKEN_ENV} to your access token)")
        } else {
            String::new()
        };
        Err(format!("{message}{hint}"))
    }
}

/// Percent-encode one path segment or query value.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn str_of<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The list as a table, one request per line.
pub fn list_text(body: &Value) -> String {
    let items = body
        .get("approvals")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if items.is_empty() {
        return "no approval requests\n".to_string();
    }
    let headers = [
        "ID",
        "STATE",
        "TOOL",
        "TARGET",
        "REQUESTER",
        "APPROVALS",
        "CREATED",
    ];
    let rows: Vec<[String; 7]> = items
        .iter()
        .map(|a| {
            [
                str_of(a, "/id").to_string(),
                str_of(a, "/state").to_string(),
                str_of(a, "/tool").to_string(),
                target_text(a.get("target").unwrap_or(&Value::Null)),
                str_of(a, "/requester/name").to_string(),
                format!(
                    "{}/{}",
                    a["approvals"].as_u64().unwrap_or(0),
                    a["required_approvals"].as_u64().unwrap_or(0)
                ),
                str_of(a, "/created_at").to_string(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths.iter()).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&headers);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn diff_text(diff: &str, color: bool) -> String {
    diff.lines()
        .map(|l| {
            let code = if !color || l.starts_with("+++") || l.starts_with("---") {
                None
            } else if l.starts_with('+') {
                Some("32")
            } else if l.starts_with('-') {
                Some("31")
            } else if l.starts_with("@@") {
                Some("36")
            } else {
                None
            };
            match code {
                Some(c) => format!("  \x1b[{c}m{l}\x1b[0m\n"),
                None => format!("  {l}\n"),
            }
        })
        .collect()
}

fn ms_text(v: &Value) -> String {
    v.as_i64()
        .map(crate::core::approval::rfc3339)
        .unwrap_or_default()
}

/// One request as readable text.
pub fn show_text(a: &Value, color: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Approval {}", str_of(a, "/id"));
    let state_reason = a
        .get("state_reason")
        .and_then(Value::as_str)
        .map(|r| format!(" — {r}"))
        .unwrap_or_default();
    let facts = [
        ("state", format!("{}{state_reason}", str_of(a, "/state"))),
        (
            "tool",
            format!("{} (risk {})", str_of(a, "/tool"), str_of(a, "/risk")),
        ),
        (
            "target",
            target_text(a.get("target").unwrap_or(&Value::Null)),
        ),
        (
            "requester",
            format!(
                "{} ({}) via {}",
                str_of(a, "/requester/name"),
                str_of(a, "/requester/sub"),
                str_of(a, "/requester/transport")
            ),
        ),
        ("created", str_of(a, "/created_at").to_string()),
        ("expires", str_of(a, "/expires_at").to_string()),
        (
            "approvals",
            format!(
                "{} of {} by {}{}",
                a["approvals"].as_u64().unwrap_or(0),
                a["required_approvals"].as_u64().unwrap_or(0),
                a["approver_roles"]
                    .as_array()
                    .map(|r| r
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" or "))
                    .unwrap_or_default(),
                if a["reason_required"].as_bool() == Some(true) {
                    "; a reason is required"
                } else {
                    ""
                }
            ),
        ),
        ("rule", str_of(a, "/rule").to_string()),
        ("page", str_of(a, "/approve_url").to_string()),
    ];
    for (k, v) in facts {
        let _ = writeln!(out, "  {:<10} {v}", format!("{k}:"));
    }
    let _ = writeln!(out, "\nPreview:");
    let summary = str_of(a, "/preview/summary");
    out.push_str(&indent(if summary.is_empty() {
        "(no summary)"
    } else {
        summary
    }));
    if let Some(diff) = a
        .pointer("/preview/diff")
        .and_then(Value::as_str)
        .filter(|d| !d.trim().is_empty())
    {
        let _ = writeln!(out, "\nDiff:");
        out.push_str(&diff_text(diff, color));
    }
    let _ = writeln!(out, "\nArguments:");
    out.push_str(&indent(
        &serde_json::to_string_pretty(&a["args"]).unwrap_or_default(),
    ));
    let _ = writeln!(out, "\nDecisions:");
    match a["decisions"].as_array().filter(|d| !d.is_empty()) {
        None => out.push_str("  none yet\n"),
        Some(decisions) => {
            for d in decisions {
                let reason = d
                    .get("reason")
                    .and_then(Value::as_str)
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {}  {} ({}) {}{reason}",
                    ms_text(&d["at_ms"]),
                    str_of(d, "/approver_name"),
                    str_of(d, "/approver_sub"),
                    str_of(d, "/decision")
                );
            }
        }
    }
    if let Some(result) = a.get("result").filter(|r| !r.is_null()) {
        let _ = writeln!(out, "\nResult:");
        out.push_str(&indent(
            &serde_json::to_string_pretty(result).unwrap_or_default(),
        ));
    }
    if let Some(audit) = a
        .get("audit")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    {
        let _ = writeln!(out, "\nAudit trail:");
        for r in audit {
            let summary = r
                .get("result_summary")
                .and_then(Value::as_str)
                .map(|s| format!(" — {s}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  #{} {}  {} via {}: {}{summary}",
                r["seq"].as_i64().unwrap_or(0),
                ms_text(&r["at_ms"]),
                str_of(r, "/principal_name"),
                str_of(r, "/transport"),
                str_of(r, "/decision")
            );
        }
    }
    out
}

/// After approve/deny: the new state, and the result when the call ran.
pub fn decided_text(verb: &str, a: &Value) -> String {
    let mut out = String::new();
    let state = str_of(a, "/state");
    let _ = write!(out, "{verb} {}: now {state}", str_of(a, "/id"));
    if state == "pending" {
        let _ = write!(
            out,
            " ({} of {} approvals)",
            a["approvals"].as_u64().unwrap_or(0),
            a["required_approvals"].as_u64().unwrap_or(0)
        );
    }
    if let Some(reason) = a.get("state_reason").and_then(Value::as_str) {
        let _ = write!(out, " — {reason}");
    }
    out.push('\n');
    if let Some(result) = a.get("result").filter(|r| !r.is_null()) {
        let _ = writeln!(out, "\nResult:");
        out.push_str(&indent(
            &serde_json::to_string_pretty(result).unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "id": "5f0c6f7e-1111-2222-3333-444455556666", "tool": "k8s.rollout_restart", "state": "executed",
            "risk": "write", "target": {"cluster": "fake", "namespace": "shop", "kind": "Deployment", "name": "web"},
            "args": {"kind": "deploy", "name": "web", "namespace": "shop"}, "args_sha256": "ab",
            "requester": {"sub": "alice", "name": "Alice", "transport": "mcp-http"},
            "created_at": "2026-11-23T10:00:00Z", "expires_at": "2026-11-23T11:00:00Z",
            "required_approvals": 1, "approvals": 1, "approver_roles": ["toolgate.approver"],
            "reason_required": false, "rule": "write-needs-approval",
            "preview": {"summary": "restart Deployment shop/web", "diff": "--- live\n+++ after\n@@ -1 +1 @@\n-a: 1\n+a: 2\n"},
            "decisions": [{"approver_sub": "bob", "approver_name": "Bob", "decision": "approve", "reason": "fine", "at_ms": 0}],
            "result": {"restarted_at": "2026-11-23T10:01:00Z"},
            "approve_url": "http://127.0.0.1:3000/approvals/5f0c",
            "audit": [{"seq": 1, "at_ms": 0, "principal_name": "Alice", "transport": "mcp-http", "decision": "approval_requested", "result_summary": "restart"}]
        })
    }

    #[test]
    fn list_is_an_aligned_table() {
        let text = list_text(&json!({"approvals": [sample()]}));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("ID  ") && lines[0].contains("STATE"),
            "{text}"
        );
        assert!(
            lines[1].contains("5f0c6f7e-1111-2222-3333-444455556666")
                && lines[1].contains("executed"),
            "{text}"
        );
        assert!(
            lines[1].contains("Deployment shop/web on cluster fake") && lines[1].contains("1/1"),
            "{text}"
        );
        assert_eq!(
            lines[0].find("STATE"),
            lines[1].find("executed"),
            "columns line up:\n{text}"
        );
        assert_eq!(
            list_text(&json!({"approvals": []})),
            "no approval requests\n"
        );
    }

    #[test]
    fn show_has_preview_diff_decisions_result_and_audit() {
        let text = show_text(&sample(), false);
        for expected in [
            "Approval 5f0c6f7e",
            "state:     executed",
            "restart Deployment shop/web",
            "Diff:\n  --- live\n  +++ after\n  @@ -1 +1 @@\n  -a: 1\n  +a: 2\n",
            "Bob (bob) approve: fine",
            "Result:",
            "restarted_at",
            "Audit trail:",
            "approval_requested — restart",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(!text.contains('\x1b'), "no colour when not asked");
        assert!(show_text(&sample(), true).contains("\x1b[32m+a: 2\x1b[0m"));
    }

    #[test]
    fn decided_prints_state_and_result() {
        let text = decided_text("approved", &sample());
        assert!(
            text.starts_with("approved 5f0c6f7e-1111-2222-3333-444455556666: now executed\n"),
            "{text}"
        );
        assert!(text.contains("restarted_at"), "{text}");
    }

    #[test]
    fn ids_are_path_encoded() {
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
