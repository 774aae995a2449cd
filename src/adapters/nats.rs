//! One way to open a NATS connection and its JetStream context, for everything of toolgate's
//! that speaks JetStream: the intents publisher, the incident facts consumer and the knowledge
//! index's topics. Each names itself to the server, bounds connect and JetStream requests by
//! its timeout and may log in with a credentials file (`.creds`: user JWT and NKey seed); what
//! differs (the publisher's bounded reconnects) is added through `extra`. Errors are one line,
//! `nats: …`, naming the file or the step that failed. The consumers (facts, knowledge topics)
//! run their connections under [`supervise`] and notice a lost server with [`lost`].

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;

use super::http::{Guard, Outcome};

/// Where and how to connect.
pub struct Connect<'a> {
    /// Shown by the server (`nats server report connections`).
    pub name: &'a str,
    /// Server URL(s), comma-separated.
    pub url: &'a str,
    pub credentials_file: Option<&'a Path>,
    /// Connect timeout, and the JetStream request timeout.
    pub timeout: Duration,
}

/// Connects and returns the client with its JetStream context.
pub async fn connect(
    c: &Connect<'_>,
    extra: impl FnOnce(async_nats::ConnectOptions) -> async_nats::ConnectOptions,
) -> Result<(async_nats::Client, jetstream::Context), String> {
    let mut options = extra(
        async_nats::ConnectOptions::new()
            .name(c.name)
            .connection_timeout(c.timeout),
    );
    if let Some(path) = c.credentials_file {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| format!("nats: credentials file {}: {e}", path.display()))?;
    }
    let client = options
        .connect(c.url)
        .await
        .map_err(|e| format!("nats: connect: {e}"))?;
    let mut js = jetstream::new(client.clone());
    js.set_timeout(c.timeout);
    Ok((client, js))
}

/// Runs `session` (one connection's life) until `shutdown`, and again each time it ends: the
/// end goes through `guard` (a failure counts against the breaker and shows on `/readyz`),
/// then a wait of 200 ms doubling to 30 s (back to 200 ms after a clean end). `what` names
/// the reader in the log.
pub async fn supervise<F, Fut>(
    guard: &Guard,
    what: &str,
    shutdown: &CancellationToken,
    mut session: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        let permit = guard.admit();
        let result = session().await;
        if let Ok(permit) = permit {
            let outcome = if result.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Connect
            };
            guard.finish(permit, outcome, result.as_ref().err().map(String::as_str));
        }
        match result {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => tracing::warn!(error = %e, "{what} lost JetStream; reconnecting"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Resolves when `client` has been disconnected for longer than `grace` (async-nats
/// reconnects on its own meanwhile, and a subscription waits silently): a consumer selects
/// on it to notice a lost server, report it, and connect anew. Returns the reason.
pub async fn lost(client: &async_nats::Client, grace: Duration) -> String {
    let mut down_since: Option<std::time::Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if client.connection_state() == async_nats::connection::State::Connected {
            down_since = None;
            continue;
        }
        let since = *down_since.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() >= grace {
            return format!("nats: disconnected for over {grace:?}");
        }
    }
}

/// Whether `subject` is one NATS accepts to publish or filter on: dot-separated tokens, none
/// empty, no white space; `*` and `>` (the last token only) when `wildcards`.
pub fn valid_subject(subject: &str, wildcards: bool) -> bool {
    let tokens: Vec<&str> = subject.split('.').collect();
    !subject.is_empty()
        && tokens.iter().enumerate().all(|(i, t)| {
            !t.is_empty()
                && !t.chars().any(char::is_whitespace)
                && match *t {
                    "*" => wildcards,
                    ">" => wildcards && i + 1 == tokens.len(),
                    _ => !t.contains(['*', '>']),
                }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_tokens_with_wildcards_only_where_allowed() {
        assert!(valid_subject("sre.domain.facts.v1", false));
        assert!(valid_subject("transformation.domain.>", true));
        assert!(valid_subject("a.*.c", true));
        for bad in ["", "a..b", "a. b", ".a", "a.", "a.>.b", "a.b*"] {
            assert!(!valid_subject(bad, true), "{bad:?}");
        }
        assert!(!valid_subject("a.*", false));
        assert!(!valid_subject("a.>", false));
    }
}
