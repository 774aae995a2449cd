//! OpenBao's HTTP API through the upstream kit: URLs under `/v1/` with every segment
//! percent-encoded, the token in a sensitive `X-Vault-Token` header, and the kit's answers
//! mapped to [`OpenBaoError`] (sealed, down, rate limited). Remembers whether OpenBao said it
//! is sealed, for `/readyz`.

use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::error::{OpenBaoError, error_message};
use crate::adapters::http::{CallError, Reply, Retry, Secret, Upstream};

pub(super) struct Api {
    pub(super) upstream: Upstream,
    base: reqwest::Url,
    sealed: AtomicBool,
}

impl Api {
    pub(super) fn new(upstream: Upstream, address: &str) -> Result<Self, String> {
        let base = reqwest::Url::parse(address)
            .map_err(|e| format!("openbao.address: `{address}` is not a URL ({e})"))?;
        Ok(Self {
            upstream,
            base,
            sealed: AtomicBool::new(false),
        })
    }

    /// `/v1/` + each of `segments` (split further at `/`), percent-encoded, + `query`.
    pub(super) fn url(&self, segments: &[&str], query: &[(&str, String)]) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1");
            for part in segments.iter().flat_map(|s| s.split('/')) {
                if !part.is_empty() {
                    path.push(part);
                }
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    pub(super) fn sealed(&self) -> bool {
        self.sealed.load(Ordering::Relaxed)
    }

    /// One request through the kit; any HTTP answer comes back (callers map 4xx), faults
    /// become `Sealed`, `RateLimited` or `Down`.
    pub(super) async fn send(
        &self,
        retry: Retry,
        method: Method,
        url: &reqwest::Url,
        token: Option<&Secret>,
        body: Option<&Value>,
    ) -> Result<Reply, OpenBaoError> {
        let token = match token {
            Some(t) => {
                let mut v = HeaderValue::from_str(t.expose()).map_err(|_| {
                    OpenBaoError::Login(
                        "the token holds characters a header cannot carry; check openbao.auth.token"
                            .into(),
                    )
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let result = self
            .upstream
            .send(retry, || {
                let mut request = self.upstream.http().request(method.clone(), url.clone());
                if let Some(t) = &token {
                    request = request.header(HeaderName::from_static("x-vault-token"), t.clone());
                }
                if let Some(b) = body {
                    request = request.json(b);
                }
                Ok(request)
            })
            .await;
        match result {
            Ok(reply) => {
                self.sealed.store(false, Ordering::Relaxed);
                Ok(reply)
            }
            Err(CallError::CircuitOpen(_)) => {
                let why = if self.sealed() {
                    "it is sealed"
                } else {
                    "it failed repeatedly"
                };
                Err(OpenBaoError::Down(format!(
                    "circuit open because {why}; toolgate tries again after the breaker's cooldown"
                )))
            }
            Err(CallError::Failed(message) | CallError::RateLimited { message, .. }) => {
                Err(self.fault(message))
            }
        }
    }

    /// The kit's description of a failed call, as an OpenBao error.
    fn fault(&self, message: String) -> OpenBaoError {
        if message.contains("HTTP 503") && message.to_ascii_lowercase().contains("sealed") {
            self.sealed.store(true, Ordering::Relaxed);
            return OpenBaoError::Sealed;
        }
        if message.contains("HTTP 429") {
            return OpenBaoError::RateLimited;
        }
        OpenBaoError::Down(message)
    }
}

/// What a request was for, so errors say it in the caller's terms.
pub(super) struct Purpose<'a> {
    /// `read`, `list`, `write`, `issue a certificate from`.
    pub action: &'static str,
    /// `secret/platform/grafana`, `PKI role web`.
    pub what: &'a str,
    /// The API path the policy must grant (`secret/data/platform/grafana`).
    pub api_path: &'a str,
}

/// The `data`-bearing JSON of a 2xx answer (`Null` for 204), or the error its status means.
pub(super) fn answer(reply: &Reply, purpose: &Purpose<'_>) -> Result<Value, OpenBaoError> {
    match reply.status {
        StatusCode::NO_CONTENT => Ok(Value::Null),
        s if s.is_success() => serde_json::from_slice(&reply.body).map_err(|e| {
            OpenBaoError::BadAnswer(format!(
                "HTTP {} to {} {} with a body that is not JSON ({e})",
                s.as_u16(),
                purpose.action,
                purpose.what
            ))
        }),
        StatusCode::FORBIDDEN => Err(OpenBaoError::PermissionDenied {
            action: purpose.action,
            what: purpose.what.to_string(),
            api_path: purpose.api_path.to_string(),
        }),
        StatusCode::NOT_FOUND => Err(OpenBaoError::NotFound {
            action: purpose.action,
            what: purpose.what.to_string(),
        }),
        s => Err(OpenBaoError::Rejected {
            action: purpose.action,
            what: purpose.what.to_string(),
            status: s.as_u16(),
            message: error_message(&reply.body),
        }),
    }
}
