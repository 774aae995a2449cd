//! What the observability adapters share: the holder of the configured upstreams, their
//! error type (which names the upstream and quotes its own message), and an HTTP API client
//! over the upstream kit's `Upstream` (base URL, credentials, extra headers such as Loki's tenant).

pub mod config;

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;

use self::config::ObservabilityConfig;
use super::grafana::{Dashboards, Grafana};
use super::http::Endpoint;
use super::http::{CallError, Health, Reply, Retry, Upstream};
use super::loki::{Logs, Loki};
use super::prometheus::{Metrics, Prometheus};
use super::tempo::{Tempo, Traces};

/// The configured observability upstreams; `None` where the config has no URL.
#[derive(Default)]
pub struct Observability {
    pub prometheus: Option<Arc<dyn Metrics>>,
    pub loki: Option<Arc<dyn Logs>>,
    pub tempo: Option<Arc<dyn Traces>>,
    pub grafana: Option<Arc<dyn Dashboards>>,
}

impl Observability {
    /// Clients for every configured upstream (no I/O).
    pub fn new(config: &ObservabilityConfig) -> Result<Self, String> {
        Ok(Self {
            prometheus: match &config.prometheus {
                Some(c) => Some(Arc::new(Prometheus::new(c)?) as Arc<dyn Metrics>),
                None => None,
            },
            loki: match &config.loki {
                Some(c) => {
                    Some(Arc::new(Loki::new(c, config.loki_tenant.clone())?) as Arc<dyn Logs>)
                }
                None => None,
            },
            tempo: match &config.tempo {
                Some(c) => Some(Arc::new(Tempo::new(c)?) as Arc<dyn Traces>),
                None => None,
            },
            grafana: match &config.grafana {
                Some(c) => Some(Arc::new(Grafana::new(
                    c,
                    config
                        .grafana_public_url
                        .clone()
                        .unwrap_or_else(|| c.url.clone()),
                )?) as Arc<dyn Dashboards>),
                None => None,
            },
        })
    }

    /// Health of each configured upstream, for `/readyz`.
    pub fn health(&self) -> Vec<Health> {
        let prometheus = self.prometheus.as_ref().and_then(|u| u.health());
        let loki = self.loki.as_ref().and_then(|u| u.health());
        let tempo = self.tempo.as_ref().and_then(|u| u.health());
        let grafana = self.grafana.as_ref().and_then(|u| u.health());
        [prometheus, loki, tempo, grafana]
            .into_iter()
            .flatten()
            .collect()
    }

    pub fn prometheus(&self) -> Result<&dyn Metrics, ObsError> {
        self.prometheus
            .as_deref()
            .ok_or(ObsError::NotConfigured("prometheus"))
    }

    pub fn loki(&self) -> Result<&dyn Logs, ObsError> {
        self.loki.as_deref().ok_or(ObsError::NotConfigured("loki"))
    }

    pub fn tempo(&self) -> Result<&dyn Traces, ObsError> {
        self.tempo
            .as_deref()
            .ok_or(ObsError::NotConfigured("tempo"))
    }

    pub fn grafana(&self) -> Result<&dyn Dashboards, ObsError> {
        self.grafana
            .as_deref()
            .ok_or(ObsError::NotConfigured("grafana"))
    }
}

/// Why an observability call failed. Every message names the upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObsError {
    #[error(
        "{0} is not configured: set observability.{0}.url (or TOOLGATE_OBSERVABILITY_{upper}_URL)",
        upper = .0.to_ascii_uppercase()
    )]
    NotConfigured(&'static str),
    /// Unreachable, timing out, failing with 5xx, or its breaker is open.
    #[error("{upstream} is unavailable: {message}")]
    Unavailable {
        upstream: &'static str,
        message: String,
    },
    /// The upstream refused the request (4xx) with its own message (bad query, unknown label).
    #[error("{upstream} rejected the request (HTTP {status}): {message}")]
    Rejected {
        upstream: &'static str,
        status: u16,
        message: String,
    },
    /// 401/403: the configured credentials are missing or wrong.
    #[error(
        "{upstream} refused toolgate's credentials (HTTP {status}: {message}); check observability.{key}.auth",
        key = .upstream.to_ascii_lowercase()
    )]
    Unauthorized {
        upstream: &'static str,
        status: u16,
        message: String,
    },
    /// A request the upstream would answer, but not in a form this tool can return.
    #[error("{upstream}: {message}")]
    Unsupported {
        upstream: &'static str,
        message: String,
    },
    #[error("{upstream}: {message}")]
    NotFound {
        upstream: &'static str,
        message: String,
    },
    /// A 2xx answer that is not what the API documents.
    #[error("{upstream} sent an unexpected answer: {message}")]
    BadAnswer {
        upstream: &'static str,
        message: String,
    },
}

/// An HTTP API under a base URL, with credentials and fixed headers, behind one breaker.
pub struct HttpApi {
    /// Display name used in errors ("Prometheus").
    name: &'static str,
    base: String,
    headers: Vec<(&'static str, String)>,
    upstream: Upstream,
}

impl HttpApi {
    pub fn new(
        name: &'static str,
        config: &Endpoint,
        headers: Vec<(&'static str, String)>,
    ) -> Result<Self, String> {
        let id = name.to_ascii_lowercase();
        let upstream = Upstream::new(&id, name, &config.settings, config.auth.clone())
            .map_err(|e| format!("observability.{id}: {e}"))?;
        Ok(Self {
            name,
            base: config.url.trim_end_matches('/').to_string(),
            headers,
            upstream,
        })
    }

    /// Breaker state, last error and last success, for `/readyz`.
    pub fn health(&self) -> Health {
        self.upstream.guard().health()
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `base + path` with query parameters (encoded).
    pub fn url(&self, path: &str, query: &[(&str, String)]) -> Result<reqwest::Url, ObsError> {
        let raw = format!("{}{path}", self.base);
        reqwest::Url::parse_with_params(&raw, query).map_err(|e| ObsError::BadAnswer {
            upstream: self.name,
            message: format!("cannot build the URL for {path}: {e}"),
        })
    }

    /// GET with retries; any status is returned (callers read error bodies).
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Reply, ObsError> {
        let url = self.url(path, query)?;
        self.send(Retry::Read, || self.upstream.http().get(url.clone()))
            .await
    }

    /// POST a form with retries (Prometheus' query endpoints read nothing else).
    pub async fn post_form_read(
        &self,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<Reply, ObsError> {
        let url = self.url(path, &[])?;
        self.send(Retry::Read, || {
            self.upstream.http().post(url.clone()).form(form)
        })
        .await
    }

    /// POST JSON once (a write).
    pub async fn post_json_write(&self, path: &str, body: &Value) -> Result<Reply, ObsError> {
        let url = self.url(path, &[])?;
        self.send(Retry::Write, || {
            self.upstream.http().post(url.clone()).json(body)
        })
        .await
    }

    async fn send(
        &self,
        retry: Retry,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Reply, ObsError> {
        let reply = self
            .upstream
            .send(retry, || {
                let mut request = build();
                for (name, value) in &self.headers {
                    request = request.header(*name, value);
                }
                Ok(request)
            })
            .await
            .map_err(|e| ObsError::Unavailable {
                upstream: self.name,
                message: match e {
                    CallError::CircuitOpen(_) => e.to_string(),
                    CallError::Failed(m) | CallError::RateLimited { message: m, .. } => m,
                },
            })?;
        if matches!(
            reply.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(ObsError::Unauthorized {
                upstream: self.name,
                status: reply.status.as_u16(),
                message: error_text(&reply),
            });
        }
        Ok(reply)
    }

    /// Parse a 2xx JSON body.
    pub fn json(&self, reply: &Reply) -> Result<Value, ObsError> {
        serde_json::from_slice(&reply.body).map_err(|e| ObsError::BadAnswer {
            upstream: self.name,
            message: format!(
                "HTTP {} with a body that is not JSON ({e})",
                reply.status.as_u16()
            ),
        })
    }

    pub fn rejected(&self, reply: &Reply) -> ObsError {
        ObsError::Rejected {
            upstream: self.name,
            status: reply.status.as_u16(),
            message: error_text(reply),
        }
    }

    pub fn bad_answer(&self, message: impl Into<String>) -> ObsError {
        ObsError::BadAnswer {
            upstream: self.name,
            message: message.into(),
        }
    }
}

/// The upstream's own error message: `error` or `message` of a JSON body, else the text.
pub fn error_text(reply: &Reply) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(&reply.body) {
        for key in ["error", "message"] {
            if let Some(m) = v.get(key).and_then(Value::as_str) {
                return bounded(m);
            }
        }
    }
    let text = reply.text();
    let text = text.trim();
    if text.is_empty() {
        format!("empty body with HTTP {}", reply.status.as_u16())
    } else {
        bounded(text)
    }
}

fn bounded(text: &str) -> String {
    const MAX: usize = 1000;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TlsSettings;

    fn upstream(url: &str, tls: TlsSettings) -> Endpoint {
        let mut e = Endpoint::plain(url, std::time::Duration::from_secs(1));
        e.settings.tls = tls;
        e
    }

    #[test]
    fn a_ca_file_that_is_not_pem_stops_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").expect("write");
        let config = ObservabilityConfig {
            tempo: Some(upstream(
                "https://tempo:3200",
                TlsSettings {
                    ca_file: Some(ca),
                    ..TlsSettings::default()
                },
            )),
            ..ObservabilityConfig::default()
        };
        let err = Observability::new(&config).err().expect("refused");
        assert!(err.starts_with("observability.tempo: CA file"), "{err}");
        let ok = ObservabilityConfig {
            prometheus: Some(upstream(
                "https://prom:9090",
                TlsSettings {
                    insecure_skip_verify: true,
                    ..TlsSettings::default()
                },
            )),
            ..ObservabilityConfig::default()
        };
        let built = Observability::new(&ok).expect("builds");
        assert!(built.prometheus().is_ok());
        assert_eq!(
            built.loki().err().map(|e| e.to_string()).as_deref(),
            Some(
                "loki is not configured: set observability.loki.url (or TOOLGATE_OBSERVABILITY_LOKI_URL)"
            )
        );
    }
}
