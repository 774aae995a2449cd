//! OpenBao (Vault-compatible HTTP API) on the upstream kit: toolgate's login (Kubernetes auth,
//! or a fixed token), KV v2, PKI and transit. Every request goes through one `Upstream` ("openbao"):
//! timeout, retries for reads only (GET, LIST), the breaker (5xx, sealed, unreachable open it;
//! 400/403/404 and CAS mismatches never do), metrics, correlation id. Owns no tool or policy
//! logic; never logs or returns a token, a JWT or a secret value.
//!
//! The public API (tools get it as `Adapters::openbao: Option<Arc<OpenBao>>`; `None` when the
//! config has no `openbao` section):
//!
//! - `OpenBao::new(&OpenBaoConfig) -> Result<OpenBao, String>` (no I/O) and
//!   `start_renewal(&self)` (the background login/renewal task; `app::adapters` calls it).
//! - `parse_path(&self, "mount/path") -> Result<KvPath, OpenBaoError>`: the one path parser
//!   ([`path::parse`] against `kv_mounts()`); every KV method takes the resolved `KvPath`.
//! - `kv_read(&KvPath, version: Option<u64>) -> Result<KvSecret, _>` (values are `Secret`s),
//!   `kv_list(&KvPath) -> Result<Vec<String>, _>` (folders end in `/`),
//!   `kv_metadata(&KvPath) -> Result<KvMetadata, _>`,
//!   `kv_write(&KvPath, &BTreeMap<String, Secret>, cas: Option<u64>) -> Result<KvVersion, _>`.
//! - `pki_issue(role, &CertRequest) -> Result<IssuedCert, _>` (`private_key` is a `Secret`).
//! - Transit with toolgate's key (`openbao.transit`): `transit_hmac(&[&[u8]]) -> Vec<Mac>`,
//!   `transit_encrypt(&[&Secret], context) -> Vec<String>`, `transit_decrypt(&[&str], context)`.
//! - `references()`: the upstream kit's provider of `secret_ref` credentials over `kv_read`
//!   ([`secret_ref`]: cached, read again every `openbao.refresh` and when an upstream refuses
//!   the value).
//! - `health() -> Health` (for `/readyz`: sealed, down, token not renewable, login failing),
//!   `session() -> Option<SessionInfo>` (accessor and TTL, no token).
//! - Errors: [`OpenBaoError`]; `class()` says which tool-error kind it is.

mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod kv;
pub mod path;
pub mod pki;
pub mod secret_ref;
pub mod transit;

use std::sync::{Arc, Weak};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use self::api::{Api, Purpose, answer};
use self::auth::Session;
use crate::adapters::http::{Health, HttpAuth, Reply, Retry, Upstream};

pub use self::auth::SessionInfo;
pub use self::config::{OpenBaoAuth, OpenBaoConfig, RenewBefore};
pub use self::error::{ErrorClass, OpenBaoError};
pub use self::kv::{KvMetadata, KvSecret, KvVersion};
pub use self::path::{KvPath, PathError};
pub use self::pki::{CertRequest, IssuedCert};
pub use self::transit::Mac;

/// The OpenBao adapter. Cheap to clone (clones share the session and the breaker).
#[derive(Clone)]
pub struct OpenBao {
    inner: Arc<Inner>,
}

struct Inner {
    api: Api,
    session: Session,
    kv_mounts: Vec<String>,
    pki_mount: Option<String>,
    transit: Option<config::TransitKey>,
    refresh: std::time::Duration,
}

impl std::fmt::Debug for OpenBao {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBao")
            .field("kv_mounts", &self.inner.kv_mounts)
            .field("pki_mount", &self.inner.pki_mount)
            .finish_non_exhaustive()
    }
}

impl OpenBao {
    /// The client (no I/O: the first request or `start_renewal` logs in).
    pub fn new(config: &OpenBaoConfig) -> Result<Self, String> {
        let upstream = Upstream::new(
            "openbao",
            "OpenBao",
            &config.endpoint.settings,
            HttpAuth::None,
        )
        .map_err(|e| format!("openbao: {e}"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                api: Api::new(upstream, &config.endpoint.url)?,
                session: Session::new(&config.auth, config.renew_before),
                kv_mounts: config.kv_mounts.clone(),
                pki_mount: config.pki_mount.clone(),
                transit: config.transit.clone(),
                refresh: config.refresh,
            }),
        })
    }

    /// Log in now and keep the token renewed in the background (Kubernetes auth only; nothing
    /// for a fixed token or outside a Tokio runtime). The task ends with the last clone.
    pub fn start_renewal(&self) {
        if !self.inner.session.logs_in() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            loop {
                let wait = match weak.upgrade() {
                    Some(inner) => inner.session.next_check(),
                    None => break,
                };
                tokio::time::sleep(wait).await;
                let Some(inner) = weak.upgrade() else { break };
                if let Err(e) = inner.session.token(&inner.api).await {
                    tracing::warn!(error = %e, "OpenBao login or renewal failed");
                }
            }
        });
    }

    /// The KV v2 mounts tools may touch (`openbao.kv_mounts`).
    pub fn kv_mounts(&self) -> &[String] {
        &self.inner.kv_mounts
    }

    /// The kit's provider of secret references over this OpenBao (`app::adapters` installs it).
    pub fn references(&self) -> secret_ref::References {
        secret_ref::References::new(self.clone(), self.inner.refresh)
    }

    /// The PKI mount, when configured.
    pub fn pki_mount(&self) -> Option<&str> {
        self.inner.pki_mount.as_deref()
    }

    /// `mount/path` resolved against the configured mounts (see [`path::parse`]).
    pub fn parse_path(&self, text: &str) -> Result<KvPath, OpenBaoError> {
        Ok(path::parse(text, &self.inner.kv_mounts)?)
    }

    /// toolgate's current token, described without the token (`None` before the first login
    /// and with a fixed token).
    pub fn session(&self) -> Option<SessionInfo> {
        self.inner.session.info()
    }

    /// For `/readyz`: the breaker and the last requests, sealed, and the token's state.
    pub fn health(&self) -> Health {
        let mut h = self.inner.api.upstream.guard().health();
        let mut worse = |state: &'static str, error: String| {
            if rank(state) > rank(h.state) {
                h.state = state;
            }
            h.last_error = Some(error);
        };
        if self.inner.api.sealed() {
            worse("down", "OpenBao is sealed".into());
        } else if let Some((state, error)) = self.inner.session.problem() {
            worse(state, error);
        }
        h
    }

    /// An authenticated request whose 2xx JSON is returned and other answers mapped to errors.
    async fn call(
        &self,
        retry: Retry,
        method: Method,
        api_path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        purpose: &Purpose<'_>,
    ) -> Result<Value, OpenBaoError> {
        let reply = self
            .send_authenticated(retry, method, api_path, query, body)
            .await?;
        answer(&reply, purpose)
    }

    /// Send with toolgate's token; on a 403 whose token turns out dead (expired, revoked), log
    /// in again and send once more.
    async fn send_authenticated(
        &self,
        retry: Retry,
        method: Method,
        api_path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, OpenBaoError> {
        let inner = &self.inner;
        let url = inner.api.url(&[api_path], query);
        let (token, generation) = inner.session.token(&inner.api).await?;
        let reply = inner
            .api
            .send(retry, method.clone(), &url, Some(&token), body)
            .await?;
        if reply.status != StatusCode::FORBIDDEN
            || !inner.session.revoked(&inner.api, &token, generation).await
        {
            return Ok(reply);
        }
        tracing::info!("OpenBao no longer accepts toolgate's token; logging in again");
        let (token, _) = inner.session.token(&inner.api).await?;
        inner
            .api
            .send(retry, method, &url, Some(&token), body)
            .await
    }
}

fn rank(state: &str) -> u8 {
    match state {
        "ok" => 0,
        "degraded" => 1,
        _ => 2,
    }
}
