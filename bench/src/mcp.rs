//! A minimal MCP client over streamable HTTP (JSON-RPC POSTs answered in JSON or SSE), enough to
//! do the handshake and call one tool many times with little client-side overhead.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

pub const PROTOCOL_VERSION: &str = "2025-06-18";

pub struct Session {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    session_id: Option<String>,
    protocol: String,
    next_id: u64,
}

impl Session {
    /// `initialize` + `notifications/initialized`.
    pub async fn open(http: &reqwest::Client, url: &str, token: Option<&str>) -> Result<Session> {
        let mut s = Session {
            http: http.clone(),
            url: url.to_string(),
            token: token.map(String::from),
            session_id: None,
            protocol: PROTOCOL_VERSION.to_string(),
            next_id: 0,
        };
        let init = s
            .request(
                "initialize",
                json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "toolgate-bench", "version": "0.1.0"},
                }),
            )
            .await?;
        let v: Value = serde_json::from_str(&init).context("initialize answer is not JSON")?;
        if let Some(p) = v.pointer("/result/protocolVersion").and_then(Value::as_str) {
            s.protocol = p.to_string();
        } else {
            bail!("initialize failed: {init}");
        }
        s.notify("notifications/initialized").await?;
        Ok(s)
    }

    fn post(&self, body: String) -> reqwest::RequestBuilder {
        let mut rb = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", &self.protocol)
            .body(body);
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(sid) = &self.session_id {
            rb = rb.header("mcp-session-id", sid);
        }
        rb
    }

    async fn notify(&self, method: &str) -> Result<()> {
        let resp = self
            .post(json!({"jsonrpc": "2.0", "method": method}).to_string())
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("{method}: HTTP {}", resp.status());
        }
        let _ = resp.bytes().await;
        Ok(())
    }

    /// One request; returns the JSON-RPC answer message as text.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<String> {
        self.next_id += 1;
        let id = self.next_id;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let resp = self.post(body.to_string()).send().await?;
        let status = resp.status();
        if let Some(sid) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session_id = Some(sid.to_string());
        }
        let sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        // Bytes, checked as UTF-8 once: `text()` would run a lossy decode over every answer.
        let body = resp.bytes().await?;
        let text =
            std::str::from_utf8(&body).with_context(|| format!("{method}: answer is not UTF-8"))?;
        if !status.is_success() {
            bail!(
                "{method}: HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            );
        }
        if !sse {
            return Ok(text.to_string());
        }
        // The answer is the SSE event whose data is a message with our id.
        let id_marker = format!("\"id\":{id}");
        let mut data = String::new();
        for line in text.lines().chain(std::iter::once("")) {
            if let Some(d) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            } else if line.is_empty() && !data.is_empty() {
                if data.contains(&id_marker) || data.contains(&format!("\"id\": {id}")) {
                    return Ok(data);
                }
                data.clear();
            }
        }
        bail!("{method}: no answer with id {id} in the event stream")
    }

    pub async fn call_tool(&mut self, name: &str, args: &Value) -> Result<String> {
        self.request("tools/call", json!({"name": name, "arguments": args}))
            .await
    }
}
