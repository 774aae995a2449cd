//! toolgate's OpenBao token. Kubernetes auth: `POST /v1/auth/{mount}/login {role, jwt}` with
//! the service account token read from its file at every login; the client token is kept (a
//! `Secret`) and renewed with `renew-self` before it expires; when a renewal no longer extends
//! it (the role's max TTL: OpenBao grants less than asked) or is refused (403), the next
//! refresh logs in again. One refresh at a time: concurrent callers wait for it and share its
//! token. A fixed token (`auth.token`) is used as it is. Tokens and JWTs never reach a log, an
//! error or `Debug`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::api::{Api, Purpose, answer};
use super::config::{OpenBaoAuth, RenewBefore};
use super::error::{OpenBaoError, error_message};
use crate::adapters::http::{Credential, Retry, Secret};

/// What toolgate's current token looks like (no secret in it), for status and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The token's accessor (a handle that cannot read secrets; changes with every login).
    pub accessor: String,
    /// The TTL OpenBao granted at the last login or renewal.
    pub lease: Duration,
    /// Time left now.
    pub expires_in: Duration,
    /// A renewal was granted less than asked: the role's max TTL is near; the next refresh
    /// logs in again.
    pub at_max_ttl: bool,
    /// Logins and renewals so far.
    pub logins: u64,
    pub renewals: u64,
}

struct Held {
    token: Secret,
    accessor: String,
    lease: Duration,
    expires_at: Instant,
    renewable: bool,
    at_max_ttl: bool,
    /// Changes with every login, so a 403 is blamed on the token it was sent with only.
    generation: u64,
}

#[derive(Default)]
struct State {
    held: Option<Held>,
    /// Why the last login or renewal failed (cleared by the next success), for `/readyz`.
    last_error: Option<String>,
    logins: u64,
    renewals: u64,
}

pub(super) struct Session {
    mode: Mode,
    renew_before: RenewBefore,
    state: Mutex<State>,
    /// Held by the one caller that logs in or renews.
    flight: tokio::sync::Mutex<()>,
}

enum Mode {
    Kubernetes {
        role: String,
        mount: String,
        jwt_file: PathBuf,
    },
    Fixed(Credential),
}

impl Session {
    pub(super) fn new(auth: &OpenBaoAuth, renew_before: RenewBefore) -> Self {
        let mode = match auth {
            OpenBaoAuth::Kubernetes {
                role,
                mount,
                jwt_file,
            } => Mode::Kubernetes {
                role: role.clone(),
                mount: mount.clone(),
                jwt_file: jwt_file.clone(),
            },
            OpenBaoAuth::Token(c) => Mode::Fixed(c.clone()),
        };
        Self {
            mode,
            renew_before,
            state: Mutex::new(State::default()),
            flight: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is replaced field by field with finished values: still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn logs_in(&self) -> bool {
        matches!(self.mode, Mode::Kubernetes { .. })
    }

    /// A token to send now and its generation: the held one while it is not due for renewal,
    /// else a renewed or new one.
    pub(super) async fn token(&self, api: &Api) -> Result<(Secret, u64), OpenBaoError> {
        let Mode::Kubernetes { .. } = &self.mode else {
            return self.fixed().await;
        };
        if let Some(found) = self.fresh() {
            return Ok(found);
        }
        let _flight = self.flight.lock().await;
        // Whoever held the flight may have refreshed it while we waited.
        if let Some(found) = self.fresh() {
            return Ok(found);
        }
        let result = self.refresh(api).await;
        let mut state = self.lock();
        match result {
            Ok(()) => state.last_error = None,
            Err(e) => {
                state.last_error = Some(e.to_string());
                // A token that is still valid is better than none while OpenBao recovers.
                if let Some(h) = state
                    .held
                    .as_ref()
                    .filter(|h| h.expires_at > Instant::now())
                {
                    tracing::warn!(error = %e, "OpenBao token refresh failed; using the current token until it expires");
                    return Ok((h.token.clone(), h.generation));
                }
                return Err(e);
            }
        }
        state
            .held
            .as_ref()
            .map(|h| (h.token.clone(), h.generation))
            .ok_or_else(|| OpenBaoError::Login("no token after login".into()))
    }

    async fn fixed(&self) -> Result<(Secret, u64), OpenBaoError> {
        let Mode::Fixed(credential) = &self.mode else {
            return Err(OpenBaoError::Login("no fixed token configured".into()));
        };
        credential
            .current()
            .await
            .map(|t| (t, 0))
            .map_err(|e| OpenBaoError::Login(format!("openbao.auth.token: {e}")))
    }

    /// The held token while it is outside its renewal margin.
    fn fresh(&self) -> Option<(Secret, u64)> {
        let state = self.lock();
        let h = state.held.as_ref()?;
        let left = h.expires_at.checked_duration_since(Instant::now())?;
        (left > self.renew_before.margin(h.lease)).then(|| (h.token.clone(), h.generation))
    }

    /// Renew when that can still extend the token, else log in.
    async fn refresh(&self, api: &Api) -> Result<(), OpenBaoError> {
        let renewable = {
            let state = self.lock();
            state.held.as_ref().and_then(|h| {
                (h.renewable && !h.at_max_ttl && h.expires_at > Instant::now())
                    .then(|| (h.token.clone(), h.lease))
            })
        };
        if let Some((token, lease)) = renewable {
            match self.renew(api, &token, lease).await {
                Ok(()) => return Ok(()),
                Err(OpenBaoError::PermissionDenied { .. }) => {
                    tracing::info!("OpenBao refused to renew toolgate's token; logging in again");
                }
                Err(e) => return Err(e),
            }
        }
        self.login(api).await
    }

    async fn renew(&self, api: &Api, token: &Secret, lease: Duration) -> Result<(), OpenBaoError> {
        let url = api.url(&["auth/token/renew-self"], &[]);
        let body = json!({"increment": format!("{}s", lease.as_secs())});
        let reply = api
            .send(Retry::Write, Method::POST, &url, Some(token), Some(&body))
            .await?;
        let v = answer(
            &reply,
            &Purpose {
                action: "renew",
                what: "toolgate's token",
                api_path: "auth/token/renew-self",
            },
        )?;
        let granted = Duration::from_secs(v["auth"]["lease_duration"].as_u64().unwrap_or(0));
        let mut state = self.lock();
        let Some(h) = state.held.as_mut() else {
            return Ok(());
        };
        // Less than asked: the role's max TTL caps it; log in when this lease runs low.
        h.at_max_ttl = granted < lease;
        h.expires_at = Instant::now() + granted;
        if !h.at_max_ttl {
            h.lease = granted;
        }
        state.renewals += 1;
        tracing::debug!(
            granted_secs = granted.as_secs(),
            "renewed the OpenBao token"
        );
        Ok(())
    }

    async fn login(&self, api: &Api) -> Result<(), OpenBaoError> {
        let Mode::Kubernetes {
            role,
            mount,
            jwt_file,
        } = &self.mode
        else {
            return Ok(());
        };
        let jwt = read_jwt(jwt_file)?;
        let url = api.url(&["auth", mount, "login"], &[]);
        let body = json!({"role": role, "jwt": jwt.expose()});
        let started = Instant::now();
        let reply = api
            .send(Retry::Write, Method::POST, &url, None, Some(&body))
            .await?;
        if !reply.status.is_success() {
            let hint = match reply.status {
                StatusCode::BAD_REQUEST => {
                    " (is the role name right and the JWT a service account token?)"
                }
                StatusCode::FORBIDDEN => {
                    " (is the role bound to this service account and namespace, and does OpenBao's kubernetes auth reach the API server's TokenReview?)"
                }
                _ => "",
            };
            return Err(OpenBaoError::Login(format!(
                "OpenBao refused the login to auth/{mount} with role `{role}` (HTTP {}): {}{hint}",
                reply.status.as_u16(),
                error_message(&reply.body)
            )));
        }
        let v: Value = serde_json::from_slice(&reply.body)
            .map_err(|e| OpenBaoError::BadAnswer(format!("login answer is not JSON ({e})")))?;
        let auth = &v["auth"];
        let token = auth["client_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                OpenBaoError::BadAnswer("login answer has no auth.client_token".into())
            })?;
        let lease = Duration::from_secs(auth["lease_duration"].as_u64().unwrap_or(0));
        let mut state = self.lock();
        state.logins += 1;
        let generation = state.logins;
        state.held = Some(Held {
            token: Secret::new(token),
            accessor: auth["accessor"].as_str().unwrap_or_default().to_string(),
            lease,
            // A lease of 0 never expires (a root-like token); hold it for a day at a time.
            expires_at: started
                + if lease.is_zero() {
                    Duration::from_secs(86_400)
                } else {
                    lease
                },
            renewable: auth["renewable"].as_bool().unwrap_or(false),
            at_max_ttl: false,
            generation,
        });
        tracing::info!(role = %role, lease_secs = lease.as_secs(), "logged in to OpenBao");
        Ok(())
    }

    /// After a 403 with the token of `generation`: whether it is dead (OpenBao refuses to look
    /// it up), in which case it is dropped so the next `token` logs in.
    pub(super) async fn revoked(&self, api: &Api, token: &Secret, generation: u64) -> bool {
        if !self.logs_in() {
            return false;
        }
        let url = api.url(&["auth/token/lookup-self"], &[]);
        let dead = match api
            .send(Retry::Read, Method::GET, &url, Some(token), None)
            .await
        {
            Ok(reply) => reply.status == StatusCode::FORBIDDEN,
            Err(_) => false,
        };
        if dead {
            let mut state = self.lock();
            if state
                .held
                .as_ref()
                .is_some_and(|h| h.generation == generation)
            {
                state.held = None;
            }
        }
        dead
    }

    pub(super) fn info(&self) -> Option<SessionInfo> {
        let state = self.lock();
        let h = state.held.as_ref()?;
        Some(SessionInfo {
            accessor: h.accessor.clone(),
            lease: h.lease,
            expires_in: h.expires_at.saturating_duration_since(Instant::now()),
            at_max_ttl: h.at_max_ttl,
            logins: state.logins,
            renewals: state.renewals,
        })
    }

    /// What `/readyz` adds to the upstream's health: a failed login or renewal, or a token in
    /// its renewal margin (the background renewal is behind). `None`: nothing to report.
    pub(super) fn problem(&self) -> Option<(&'static str, String)> {
        let state = self.lock();
        let now = Instant::now();
        let valid = state.held.as_ref().filter(|h| h.expires_at > now);
        match (&state.last_error, valid) {
            (Some(e), None) => Some(("down", format!("no valid OpenBao token: {e}"))),
            (Some(e), Some(h)) => Some((
                "degraded",
                format!(
                    "the OpenBao token expires in {}s and could not be refreshed: {e}",
                    h.expires_at.saturating_duration_since(now).as_secs()
                ),
            )),
            (None, Some(h))
                if h.expires_at.saturating_duration_since(now)
                    <= self.renew_before.margin(h.lease) =>
            {
                Some((
                    "degraded",
                    format!(
                        "the OpenBao token expires in {}s and is not renewed yet",
                        h.expires_at.saturating_duration_since(now).as_secs()
                    ),
                ))
            }
            _ => None,
        }
    }

    /// When the background renewal should look again.
    pub(super) fn next_check(&self) -> Duration {
        let state = self.lock();
        match state.held.as_ref() {
            _ if state.last_error.is_some() => Duration::from_secs(5),
            None => Duration::ZERO,
            Some(h) => {
                let margin = self.renew_before.margin(h.lease);
                h.expires_at
                    .checked_sub(margin)
                    .map(|due| due.saturating_duration_since(Instant::now()))
                    .unwrap_or_default()
                    .clamp(Duration::from_millis(200), Duration::from_secs(300))
            }
        }
    }
}

/// The service account token, read now (it is rotated in place by the kubelet).
fn read_jwt(path: &Path) -> Result<Secret, OpenBaoError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        OpenBaoError::Login(format!(
            "cannot read the service account token {} ({}); mount it or set openbao.auth.kubernetes.jwt_file",
            path.display(),
            e.kind()
        ))
    })?;
    let jwt = text.trim();
    if jwt.is_empty() {
        return Err(OpenBaoError::Login(format!(
            "the service account token file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(jwt))
}
