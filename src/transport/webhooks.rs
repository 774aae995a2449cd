//! `POST /webhooks/alertmanager`: authenticates like Alertmanager's `http_config` (bearer or
//! basic), limits the body, validates the payload (400 with the reason) and hands the alerts to
//! the intents outbox. Valid deliveries get 200 (duplicates too), since Alertmanager retries any
//! non-2xx; a store failure is a 503 so Alertmanager retries and nothing is lost.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::intents::Intents;
use crate::intents::alertmanager;
use crate::intents::config::{AlertmanagerWebhookConfig, WebhookAuth};
use crate::transport::http::AppState;

pub const ALERTMANAGER_PATH: &str = "/webhooks/alertmanager";

struct AlertmanagerHook {
    config: AlertmanagerWebhookConfig,
    intents: Intents,
}

/// The webhook routes the config enables.
pub fn routes(config: &AlertmanagerWebhookConfig, intents: &Intents) -> Router<AppState> {
    if !config.enabled {
        return Router::new();
    }
    if config.auth == WebhookAuth::None {
        tracing::warn!(
            "webhooks.alertmanager.auth is not set: anyone who reaches this port can post alerts; set a bearer token or basic auth matching Alertmanager's http_config"
        );
    }
    let hook = Arc::new(AlertmanagerHook {
        config: config.clone(),
        intents: intents.clone(),
    });
    Router::new().route(
        ALERTMANAGER_PATH,
        post(alertmanager_webhook).with_state(hook),
    )
}

async fn alertmanager_webhook(State(hook): State<Arc<AlertmanagerHook>>, req: Request) -> Response {
    let config = &hook.config;
    if !authorized(&config.auth, req.headers()).await {
        let challenge = match config.auth {
            WebhookAuth::Basic { .. } => "Basic realm=\"toolgate\"",
            _ => "Bearer realm=\"toolgate\"",
        };
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            axum::Json(json!({"error": "missing or wrong credentials; configure http_config in the Alertmanager receiver as the toolgate config expects"})),
        )
            .into_response();
    }
    let limit = config.max_body_bytes;
    let body = match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "body larger than {limit} bytes (webhooks.alertmanager.max_body_bytes); set max_alerts in the Alertmanager webhook_config or raise the limit"
                ),
            );
        }
    };
    let notification = match alertmanager::parse(&body) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.0),
    };
    let signals = alertmanager::signals(
        &notification,
        &config.auto_create_incident,
        jiff::Timestamp::now(),
    );
    let window_ms = i64::try_from(config.dedup_window.as_millis()).unwrap_or(i64::MAX);
    match hook
        .intents
        .emit(alertmanager::SOURCE, &signals, window_ms)
        .await
    {
        Ok(outcome) => {
            if notification.truncated_alerts > 0 {
                tracing::warn!(
                    truncated = notification.truncated_alerts,
                    "Alertmanager truncated the alerts of a notification (max_alerts); those alerts are not ingested"
                );
            }
            (
                StatusCode::OK,
                axum::Json(json!({
                    "status": "accepted",
                    "alerts": notification.alerts.len(),
                    "new": outcome.new,
                    "duplicates": outcome.duplicates,
                    "intents": outcome.intents,
                })),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "storing webhook intents failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the intents store is unavailable; Alertmanager will retry".into(),
            )
        }
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

/// Compares digests so the comparison time does not depend on where the secret differs.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let a = Sha256::digest(given);
    let b = Sha256::digest(expected);
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The expected credential is read per request, so a rotated secret file counts at once.
async fn authorized(auth: &WebhookAuth, headers: &axum::http::HeaderMap) -> bool {
    let expected = match auth {
        WebhookAuth::None => return true,
        WebhookAuth::Bearer(c) | WebhookAuth::Basic { password: c, .. } => c.current().await,
    };
    let expected = match expected {
        Ok(secret) => secret,
        Err(e) => {
            tracing::warn!(error = %e, "webhooks.alertmanager.auth: credential unavailable; refusing");
            return false;
        }
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (scheme, credentials) = given.split_once(' ').unwrap_or((given, ""));
    match auth {
        WebhookAuth::None => true,
        WebhookAuth::Bearer(_) => {
            scheme.eq_ignore_ascii_case("bearer")
                && same_secret(credentials.trim().as_bytes(), expected.expose().as_bytes())
        }
        WebhookAuth::Basic { username, .. } => {
            if !scheme.eq_ignore_ascii_case("basic") {
                return false;
            }
            let expected = format!("{username}:{}", expected.expose());
            match base64::engine::general_purpose::STANDARD.decode(credentials.trim()) {
                Ok(decoded) => same_secret(&decoded, expected.as_bytes()),
                Err(_) => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Credential;

    fn headers(value: &str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().expect("header"));
        h
    }

    #[tokio::test]
    async fn bearer_and_basic_match_alertmanager_http_config() {
        let bearer = WebhookAuth::Bearer(Credential::inline("s3cret"));
        assert!(authorized(&bearer, &headers("Bearer s3cret")).await);
        assert!(!authorized(&bearer, &headers("Bearer s3cre")).await);
        assert!(!authorized(&bearer, &axum::http::HeaderMap::new()).await);
        let basic = WebhookAuth::Basic {
            username: "am".into(),
            password: Credential::inline("pw"),
        };
        let good = base64::engine::general_purpose::STANDARD.encode("am:pw");
        let bad = base64::engine::general_purpose::STANDARD.encode("am:px");
        assert!(authorized(&basic, &headers(&format!("Basic {good}"))).await);
        assert!(!authorized(&basic, &headers(&format!("Basic {bad}"))).await);
        assert!(!authorized(&basic, &headers("Bearer pw")).await);
        assert!(authorized(&WebhookAuth::None, &axum::http::HeaderMap::new()).await);
    }

    #[tokio::test]
    async fn a_bearer_token_from_a_file_follows_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "first-token\n").expect("write");
        let bearer = WebhookAuth::Bearer(Credential::file(&path).expect("readable"));
        assert!(authorized(&bearer, &headers("Bearer first-token")).await);
        std::fs::write(&path, "second-token").expect("rewrite");
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        f.set_modified(later).expect("mtime");
        assert!(authorized(&bearer, &headers("Bearer second-token")).await);
        assert!(!authorized(&bearer, &headers("Bearer first-token")).await);
    }
}
