//! Approval notifications: a Slack-compatible incoming webhook (`{"text": …}`) told about each
//! new request and each decision. Best effort: a failing webhook is logged, never blocks a call.

use std::time::Duration;

#[derive(Clone)]
pub struct Webhook {
    client: reqwest::Client,
    url: String,
}

impl Webhook {
    pub fn new(url: String) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(Self { client, url })
    }

    /// Send in the background, retrying twice with backoff.
    pub fn send(&self, text: String) {
        let hook = self.clone();
        tokio::spawn(async move {
            let body = serde_json::json!({ "text": text });
            for attempt in 0..3u32 {
                match hook.client.post(&hook.url).json(&body).send().await {
                    Ok(resp) if resp.status().is_success() => return,
                    Ok(resp) => tracing::warn!(
                        status = resp.status().as_u16(),
                        attempt,
                        "approval webhook refused the message"
                    ),
                    // The URL can carry a secret token: log the error kind, not the URL.
                    Err(e) => tracing::warn!(
                        attempt,
                        timeout = e.is_timeout(),
                        connect = e.is_connect(),
                        "approval webhook unreachable"
                    ),
                }
                crate::metrics::upstream_error("webhook");
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
            }
        });
    }
}
