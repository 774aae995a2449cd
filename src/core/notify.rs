//! Approval notifications: a Slack-compatible incoming webhook (`{"text": …}`) told about each
//! new request and each decision, through the upstream kit (timeouts, breaker, metrics,
//! correlation id). Best effort: a failing webhook is logged, never blocks a call. A message is
//! sent once (a POST is not idempotent: a lost answer must not post it twice).

use std::sync::Arc;
use std::time::Duration;

use crate::adapters::http::{CallError, HttpAuth, Retry, Settings, Upstream};

#[derive(Clone)]
pub struct Webhook {
    upstream: Arc<Upstream>,
    url: String,
}

impl Webhook {
    pub fn new(url: String) -> Result<Self, String> {
        let settings = Settings {
            connect_timeout: Duration::from_secs(3),
            max_response_bytes: 64 * 1024,
            ..Settings::with_timeout(Duration::from_secs(5))
        };
        // The URL can carry a secret token: errors name the upstream, the kit strips queries.
        let upstream = Upstream::new(
            "approvals-webhook",
            "the approvals webhook",
            &settings,
            HttpAuth::None,
        )
        .map_err(|e| format!("approvals.webhook_url: {e}"))?
        .hiding_urls();
        Ok(Self {
            upstream: Arc::new(upstream),
            url,
        })
    }

    /// Send in the background.
    pub fn send(&self, text: String) {
        let hook = self.clone();
        tokio::spawn(async move {
            let body = serde_json::json!({ "text": text });
            let sent = hook
                .upstream
                .send(Retry::Write, || {
                    Ok(hook.upstream.http().post(&hook.url).json(&body))
                })
                .await;
            match sent {
                Ok(reply) if reply.status.is_success() => {}
                Ok(reply) => tracing::warn!(
                    status = reply.status.as_u16(),
                    "approval webhook refused the message"
                ),
                Err(CallError::CircuitOpen(_)) => {
                    tracing::warn!("approval webhook skipped: its breaker is open")
                }
                Err(CallError::Failed(_)) => tracing::warn!("approval webhook unreachable"),
            }
        });
    }
}
