//! Secret references (`secret_ref: "platform/grafana-api-key#key"`) as the upstream kit's
//! credentials: [`References`] is the kit's `SecretRefProvider` over this adapter's KV v2 read
//! (`app::adapters` installs it). Each reference caches its value, reads it again once
//! `openbao.refresh` has passed (KV v2 values have no lease) and at once when an upstream
//! refused it (at most every few seconds), and keeps the last good value while OpenBao cannot
//! be read. A value never reaches a log line, an error or `describe()`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::OpenBao;
use super::path::{self, KvPath};
use crate::adapters::http::{Secret, SecretError, SecretRefProvider, SecretRefSpec, SecretSource};

/// Two re-reads forced by refused credentials are at least this far apart (an upstream that
/// refuses every value must not turn each call into an OpenBao read).
const MIN_FORCED_INTERVAL: Duration = Duration::from_secs(5);

/// After a failed read, the last value serves this long (at most `refresh`) before the next
/// try, so an OpenBao that hangs does not hold every request for its timeout.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// The field read when a reference names none and the secret has several.
pub const DEFAULT_FIELD: &str = "value";

/// Where `text` (a reference's path, before `#`) lives: under the mount its first segments name
/// when that is one of `mounts`, else under the first of `mounts` (`platform/grafana-api-key`
/// → `secret/platform/grafana-api-key`). Checked by the one path parser.
pub fn ref_path(text: &str, mounts: &[String]) -> Result<KvPath, String> {
    let names_mount = mounts
        .iter()
        .any(|m| text == m.as_str() || text.starts_with(&format!("{m}/")));
    let full = match (names_mount, mounts.first()) {
        (false, Some(default)) => format!("{default}/{text}"),
        _ => text.to_string(),
    };
    let path = path::parse(&full, mounts).map_err(|e| e.to_string())?;
    if path.is_root() {
        return Err(format!(
            "`{text}` names only the mount {}; name a secret under it, e.g. {}/platform/grafana-api-key",
            path.mount(),
            path.mount()
        ));
    }
    Ok(path)
}

/// The kit's provider of secret references, over one OpenBao.
pub struct References {
    bao: OpenBao,
    refresh: Duration,
}

impl References {
    pub fn new(bao: OpenBao, refresh: Duration) -> Self {
        Self { bao, refresh }
    }
}

impl SecretRefProvider for References {
    fn source(&self, spec: &SecretRefSpec) -> Result<Arc<dyn SecretSource>, String> {
        let path = ref_path(&spec.path, self.bao.kv_mounts())?;
        Ok(Arc::new(Reference {
            bao: self.bao.clone(),
            refresh: self.refresh,
            credential: spec.credential.clone(),
            path,
            key: spec.key.clone(),
            state: tokio::sync::Mutex::new(State::default()),
        }))
    }
}

/// One reference's cached value.
struct Reference {
    bao: OpenBao,
    refresh: Duration,
    /// The config key of the credential, for messages.
    credential: String,
    path: KvPath,
    key: Option<String>,
    /// Held by the one caller that reads OpenBao (others wait and take its value).
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    value: Option<Secret>,
    /// When the value is to be read again (`None`: now).
    next_read: Option<Instant>,
    forced_at: Option<Instant>,
}

impl Reference {
    /// Read the value from OpenBao into `state`; an error names the credential and the reference.
    async fn read(&self, state: &mut State) -> Result<Secret, SecretError> {
        let fail = |why: String| {
            SecretError::Source(format!("{} ({}): {why}", self.credential, self.describe()))
        };
        let secret = self
            .bao
            .kv_read(&self.path, None)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let value = pick(&self.path, self.key.as_deref(), &secret.data).map_err(fail)?;
        state.value = Some(value.clone());
        state.next_read = Some(Instant::now() + self.refresh);
        Ok(value)
    }
}

/// The field `key` (else the only one, else `value`) of a secret's `data`, trimmed.
fn pick(
    path: &KvPath,
    key: Option<&str>,
    data: &BTreeMap<String, Secret>,
) -> Result<Secret, String> {
    let fields = || data.keys().cloned().collect::<Vec<_>>().join(", ");
    let value = match key {
        Some(k) => data.get(k).ok_or_else(|| {
            if data.is_empty() {
                format!("{path} holds no fields (is its current version deleted?)")
            } else {
                format!("{path} has no field `{k}`; its fields: {}", fields())
            }
        })?,
        None if data.len() == 1 => data.values().next().ok_or("no field")?,
        None => data.get(DEFAULT_FIELD).ok_or_else(|| {
            if data.is_empty() {
                format!("{path} holds no fields (is its current version deleted?)")
            } else {
                format!(
                    "{path} has the fields {}; name one after `#`, e.g. {path}#{}",
                    fields(),
                    data.keys()
                        .next()
                        .map(String::as_str)
                        .unwrap_or(DEFAULT_FIELD)
                )
            }
        })?,
    };
    let trimmed = value.expose().trim();
    if trimmed.is_empty() {
        return Err(format!("the field read from {path} is empty"));
    }
    Ok(Secret::new(trimmed))
}

impl SecretSource for Reference {
    fn current(&self) -> BoxFuture<'_, Result<Secret, SecretError>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            if let (Some(value), Some(at)) = (&state.value, state.next_read)
                && Instant::now() < at
            {
                return Ok(value.clone());
            }
            match self.read(&mut state).await {
                Ok(value) => Ok(value),
                // OpenBao down or the field gone mid-rotation: the last good value serves on.
                Err(e) => match state.value.clone() {
                    Some(value) => {
                        tracing::warn!(credential = %self.credential, source = %self.describe(), error = %e, "cannot read the secret reference again; using the last value read");
                        state.next_read =
                            Some(Instant::now() + RETRY_AFTER_FAILURE.min(self.refresh));
                        Ok(value)
                    }
                    None => Err(e),
                },
            }
        })
    }

    fn describe(&self) -> String {
        match &self.key {
            Some(k) => format!("openbao {}#{k}", self.path),
            None => format!("openbao {}", self.path),
        }
    }

    fn refresh(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            if state
                .forced_at
                .is_some_and(|at| at.elapsed() < MIN_FORCED_INTERVAL)
            {
                return false;
            }
            state.forced_at = Some(Instant::now());
            let before = state.value.clone();
            match self.read(&mut state).await {
                Ok(value) => {
                    let changed = before.as_ref() != Some(&value);
                    tracing::info!(credential = %self.credential, source = %self.describe(), changed, "an upstream refused the credential; read it again");
                    changed
                }
                Err(e) => {
                    tracing::warn!(credential = %self.credential, error = %e, "an upstream refused the credential and it cannot be read again");
                    false
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts() -> Vec<String> {
        vec!["secret".into(), "kv/team-a".into()]
    }

    #[test]
    fn a_reference_takes_its_mount_from_its_first_segments_or_the_first_mount() {
        let p = ref_path("platform/grafana-api-key", &mounts()).expect("default mount");
        assert_eq!(
            (p.mount(), p.path()),
            ("secret", "platform/grafana-api-key")
        );
        let p = ref_path("kv/team-a/db", &mounts()).expect("named mount");
        assert_eq!((p.mount(), p.path()), ("kv/team-a", "db"));
        let e = ref_path("secret", &mounts()).expect_err("the mount alone");
        assert!(e.contains("names only the mount secret"), "{e}");
        let e = ref_path("platform/../x", &mounts()).expect_err("dot-dot");
        assert!(e.contains("`..` segment"), "{e}");
    }

    #[test]
    fn the_field_is_the_one_named_else_the_only_one_else_value() {
        let path = ref_path("platform/x", &mounts()).expect("path");
        let data = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Secret::new(*v)))
                .collect::<BTreeMap<_, _>>()
        };
        let one = data(&[("api_key", "s3cr3t\n")]);
        assert_eq!(pick(&path, None, &one).expect("only").expose(), "s3cr3t");
        let two = data(&[("user", "u"), ("value", "v4lue")]);
        assert_eq!(pick(&path, None, &two).expect("value").expose(), "v4lue");
        assert_eq!(
            pick(&path, Some("user"), &two).expect("named").expose(),
            "u"
        );
        let e = pick(&path, Some("password"), &two).expect_err("missing");
        assert_eq!(
            e,
            "secret/platform/x has no field `password`; its fields: user, value"
        );
        let e = pick(&path, None, &data(&[("a", "1"), ("b", "2")])).expect_err("ambiguous");
        assert_eq!(
            e,
            "secret/platform/x has the fields a, b; name one after `#`, e.g. secret/platform/x#a"
        );
        let e = pick(&path, None, &data(&[("a", " ")])).expect_err("blank");
        assert_eq!(e, "the field read from secret/platform/x is empty");
    }
}
