//! Approval notifications: a Slack-compatible incoming webhook (`{"text": …}`) told about each
//! new request and each decision, through the upstream kit (timeouts, breaker, metrics,
//! correlation id). Best effort: a failing webhook is logged, never blocks a call. A message is
//! sent once (a POST is not idempotent: a lost answer must not post it twice).

use std::sync::Arc;
use std::time::Duration;

use crate::adapters::http::{CallError, Credential, Health, HttpAuth, Retry, Settings, Upstream};

#[derive(Clone)]
pub struct Webhook {
    upstream: Arc<Upstream>,
    /// The URL carries the hook's token, so it is a credential (a file is re-read on change).
    url: Credential,
}

impl Webhook {
    /// Reads the URL once now, so a URL that is not http(s) is a start-up error.
    pub async fn new(url: Credential) -> Result<Self, String> {
        let now = url
            .current()
            .await
            .map_err(|e| format!("approvals.webhook_url: {e}"))?;
        if !(now.expose().starts_with("http://") || now.expose().starts_with("https://")) {
            return Err(format!(
                "approvals.webhook_url ({}): must start with http:// or https://",
                url.describe()
            ));
        }
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

    /// Breaker state and last results, for `/readyz`.
    pub fn health(&self) -> Health {
        self.upstream.guard().health()
    }

    /// Send in the background.
    pub fn send(&self, text: String) {
        let hook = self.clone();
        tokio::spawn(async move {
            let body = serde_json::json!({ "text": text });
            let url = match hook.url.current().await {
                Ok(url) => url,
                Err(e) => {
                    tracing::warn!(error = %e, "approval webhook skipped: its URL is unavailable");
                    return;
                }
            };
            let sent = hook
                .upstream
                .send(Retry::Write, || {
                    Ok(hook.upstream.http().post(url.expose()).json(&body))
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
                Err(CallError::RateLimited { .. }) => {
                    tracing::warn!("approval webhook rate limited the message")
                }
            }
        });
    }
}
