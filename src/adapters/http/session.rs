//! A bearer token got by a login request (ArgoCD's `POST /api/v1/session`, Cognee's
//! `POST /api/v1/auth/login`): logged in on first use, one login shared by concurrent callers,
//! and dropped when the upstream answers 401 so that the request is sent once more after a
//! fresh login. The login itself is the adapter's (its URL, body and answer differ per upstream).

use reqwest::{RequestBuilder, StatusCode};

use super::retry::Retry;
use super::secret::Secret;
use super::upstream::{CallError, Reply, Upstream};

#[derive(Default)]
pub struct Session {
    token: tokio::sync::Mutex<Option<Secret>>,
}

impl Session {
    pub fn new() -> Session {
        Session::default()
    }

    /// The session's token, logging in with `login` when there is none. Callers arriving during
    /// a login wait for it instead of logging in again.
    pub async fn token<E, F>(&self, login: impl FnOnce() -> F) -> Result<Secret, E>
    where
        F: Future<Output = Result<Secret, E>>,
    {
        let mut token = self.token.lock().await;
        if let Some(t) = token.as_ref() {
            return Ok(t.clone());
        }
        let fresh = login().await?;
        *token = Some(fresh.clone());
        Ok(fresh)
    }

    /// Forget `stale` (the token a 401 refused). A token another caller got meanwhile stays.
    async fn forget(&self, stale: &Secret) {
        let mut token = self.token.lock().await;
        if token.as_ref() == Some(stale) {
            *token = None;
        }
    }

    /// Send `build`'s request through `upstream` with the session's bearer token. A 401 drops
    /// the token, logs in again and sends once more; the second answer is returned as it is.
    /// `down` maps the kit's errors (upstream down, breaker open) to the adapter's.
    pub async fn send<E, F>(
        &self,
        upstream: &Upstream,
        retry: Retry,
        login: impl Fn() -> F,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
        down: impl Fn(CallError) -> E,
    ) -> Result<Reply, E>
    where
        F: Future<Output = Result<Secret, E>>,
    {
        let mut logged_in_again = false;
        loop {
            let token = self.token(&login).await?;
            let reply = upstream
                .send(retry, || {
                    Ok(build(upstream.http()).bearer_auth(token.expose()))
                })
                .await
                .map_err(&down)?;
            if reply.status == StatusCode::UNAUTHORIZED && !logged_in_again {
                // The token expired, or the upstream restarted with a new signing secret.
                self.forget(&token).await;
                logged_in_again = true;
                continue;
            }
            return Ok(reply);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_login_and_a_forgotten_token_logs_in_again() {
        let session = Arc::new(Session::new());
        let logins = Arc::new(AtomicUsize::new(0));
        let login = {
            let logins = logins.clone();
            move || {
                let logins = logins.clone();
                async move {
                    let n = logins.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok::<_, String>(Secret::new(format!("token-{n}")))
                }
            }
        };
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let session = session.clone();
            let login = login.clone();
            tasks.push(tokio::spawn(async move { session.token(&login).await }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().expose(), "token-1");
        }
        assert_eq!(logins.load(Ordering::SeqCst), 1);

        // A 401 on a token that is no longer the session's does not drop the current one.
        session.forget(&Secret::new("token-0")).await;
        assert_eq!(session.token(&login).await.unwrap().expose(), "token-1");
        session.forget(&Secret::new("token-1")).await;
        assert_eq!(session.token(&login).await.unwrap().expose(), "token-2");
        assert_eq!(logins.load(Ordering::SeqCst), 2);

        // A failed login leaves no token behind.
        let failed: Result<Secret, String> = Session::new()
            .token(|| async { Err("refused".to_string()) })
            .await;
        assert_eq!(failed.unwrap_err(), "refused");
    }
}
