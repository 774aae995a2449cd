//! Credentials and where they come from. A `Secret` never prints; a `Credential` is a handle to
//! a `SecretSource` that yields the current value when a request is built: an inline config
//! value, an environment variable, or a file re-read when its modification time changes (a
//! mounted Kubernetes Secret rotates in place), or a secret reference (`secret_ref`) the kit
//! holds as a [`SecretRefSpec`] and binds, on first use, to the source the installed
//! [`SecretRefProvider`] makes of it (OpenBao's KV v2, installed by `app::adapters`: the kit
//! does not know OpenBao). Values never reach a log line, an error or `Debug` output: only
//! `describe()` does.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::SystemTime;

use futures::future::BoxFuture;

/// A secret string that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a credential has no value now. Names the source, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set or empty")]
    EnvMissing(String),
    #[error("cannot read secret file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("secret file {0} is empty")]
    FileEmpty(String),
    #[error("{0}")]
    Source(String),
}

/// Something that yields a credential's current value.
pub trait SecretSource: Send + Sync {
    /// The value now; sources cache and re-read as their backing store says it changed.
    fn current(&self) -> BoxFuture<'_, Result<Secret, SecretError>>;
    /// Where the value comes from (`file /run/secrets/token`, `env GRAFANA_TOKEN`), for
    /// messages and `Debug`. Never the value.
    fn describe(&self) -> String;
    /// The value when it was given inline in the config (so two configs compare equal).
    fn inline_value(&self) -> Option<&Secret> {
        None
    }
    /// The upstream refused the value (401/403): read it again from the backing store now.
    /// `true` when the value changed (the request is worth sending again). Sources that cannot
    /// change on demand answer `false`.
    fn refresh(&self) -> BoxFuture<'_, bool> {
        Box::pin(async { false })
    }
    /// Take the source this credential will read from now, when it is chosen at first use
    /// otherwise (a secret reference binds to the provider installed now).
    fn bind(&self) {}
}

/// A secret reference as config writes it (`secret_ref: "platform/grafana-api-key#key"`),
/// held by the kit until a [`SecretRefProvider`] turns it into a source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRefSpec {
    /// The config key of the credential (`observability.grafana.auth.bearer_token`), which
    /// errors name.
    pub credential: String,
    /// `mount/path` or `path` as written, before `#`.
    pub path: String,
    /// The field after `#`, when given.
    pub key: Option<String>,
}

impl SecretRefSpec {
    /// `path#key` as config writes it; a problem says what is wrong (never a value: a
    /// reference is a name).
    pub fn parse(credential: &str, text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (path, key) = match text.split_once('#') {
            Some((path, key)) => (path, Some(key)),
            None => (text, None),
        };
        if path.is_empty() {
            return Err(format!(
                "`{text}` names no secret; write path#key, e.g. platform/grafana-api-key#value"
            ));
        }
        if let Some(key) = key
            && (key.is_empty() || key.contains('#') || key.chars().any(char::is_control))
        {
            return Err(format!(
                "`{text}`: the field after `#` must be one non-empty name, e.g. platform/grafana-api-key#value"
            ));
        }
        Ok(Self {
            credential: credential.to_string(),
            path: path.to_string(),
            key: key.map(str::to_string),
        })
    }

    /// `path#key` (or `path`), as written.
    pub fn as_written(&self) -> String {
        match &self.key {
            Some(k) => format!("{}#{k}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Turns a [`SecretRefSpec`] into the source of its current value (no I/O: the value is read
/// on first use). An error says why the reference cannot be resolved (an unknown mount).
pub trait SecretRefProvider: Send + Sync {
    fn source(&self, spec: &SecretRefSpec) -> Result<Arc<dyn SecretSource>, String>;
}

static REF_PROVIDER: RwLock<Option<Arc<dyn SecretRefProvider>>> = RwLock::new(None);

/// Install the provider of secret references for this process. The last one installed serves
/// references bound from then on (each toolgate built installs its OpenBao's; references
/// already bound keep their source).
pub fn install_secret_ref_provider(provider: Arc<dyn SecretRefProvider>) {
    *REF_PROVIDER.write().unwrap_or_else(|e| e.into_inner()) = Some(provider);
}

/// A credential of an upstream: cheap to clone, prints only where it comes from.
#[derive(Clone)]
pub struct Credential(Arc<dyn SecretSource>);

impl Credential {
    pub fn from_source(source: Arc<dyn SecretSource>) -> Self {
        Self(source)
    }

    /// A value given inline in the config (or a test).
    pub fn inline(value: impl Into<String>) -> Self {
        Self(Arc::new(Inline(Secret::new(value))))
    }

    /// The variable `name`, read once now: a process's environment does not change.
    pub fn env(name: &str) -> Result<Self, SecretError> {
        match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(Self(Arc::new(Env {
                name: name.to_string(),
                value: Secret::new(v),
            }))),
            _ => Err(SecretError::EnvMissing(name.to_string())),
        }
    }

    /// The file at `path` (surrounding whitespace trimmed), re-read whenever its modification
    /// time changes. Read once now so a missing file is a start-up error.
    pub fn file(path: impl Into<PathBuf>) -> Result<Self, SecretError> {
        let source = FileSecret::new(path.into())?;
        Ok(Self(Arc::new(source)))
    }

    /// A secret reference, bound to the installed provider's source on first use.
    pub fn secret_ref(spec: SecretRefSpec) -> Self {
        Self(Arc::new(Reference {
            spec,
            bound: OnceLock::new(),
        }))
    }

    pub async fn current(&self) -> Result<Secret, SecretError> {
        self.0.current().await
    }

    /// The upstream refused the value: read it again; `true` when it changed.
    pub async fn refresh(&self) -> bool {
        self.0.refresh().await
    }

    /// Bind a secret reference to the provider installed now (an upstream's credentials are
    /// bound when it is built, so each toolgate's upstreams read through its own OpenBao).
    pub fn bind(&self) {
        self.0.bind();
    }

    pub fn describe(&self) -> String {
        self.0.describe()
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({})", self.describe())
    }
}

/// Credentials are equal when they come from the same place (and, inline, hold the same value).
impl PartialEq for Credential {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || match (self.0.inline_value(), other.0.inline_value()) {
                (Some(a), Some(b)) => a == b,
                (None, None) => self.describe() == other.describe(),
                _ => false,
            }
    }
}

impl Eq for Credential {}

struct Inline(Secret);

impl SecretSource for Inline {
    fn current(&self) -> BoxFuture<'_, Result<Secret, SecretError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }

    fn describe(&self) -> String {
        "inline value".to_string()
    }

    fn inline_value(&self) -> Option<&Secret> {
        Some(&self.0)
    }
}

/// A secret reference: the spec until the first use binds it to the provider's source.
struct Reference {
    spec: SecretRefSpec,
    bound: OnceLock<Arc<dyn SecretSource>>,
}

impl Reference {
    fn source(&self) -> Result<&Arc<dyn SecretSource>, SecretError> {
        if let Some(source) = self.bound.get() {
            return Ok(source);
        }
        let provider = REF_PROVIDER
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(provider) = provider else {
            return Err(SecretError::Source(format!(
                "{} ({}): secret references resolve through OpenBao, and no openbao section is configured",
                self.spec.credential,
                self.describe()
            )));
        };
        let source = provider
            .source(&self.spec)
            .map_err(|e| SecretError::Source(format!("{}: {e}", self.spec.credential)))?;
        // Two first uses at once: one binding wins, both use it.
        Ok(self.bound.get_or_init(|| source))
    }
}

impl SecretSource for Reference {
    fn current(&self) -> BoxFuture<'_, Result<Secret, SecretError>> {
        Box::pin(async move { self.source()?.current().await })
    }

    fn describe(&self) -> String {
        match self.bound.get() {
            Some(source) => source.describe(),
            None => format!("openbao {}", self.spec.as_written()),
        }
    }

    fn bind(&self) {
        // Without a provider (or with a reference it refuses) the error shows at first use.
        let _ = self.source();
    }

    fn refresh(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            match self.source() {
                Ok(source) => source.refresh().await,
                Err(_) => false,
            }
        })
    }
}

struct Env {
    name: String,
    value: Secret,
}

impl SecretSource for Env {
    fn current(&self) -> BoxFuture<'_, Result<Secret, SecretError>> {
        Box::pin(async move { Ok(self.value.clone()) })
    }

    fn describe(&self) -> String {
        format!("env {}", self.name)
    }
}

struct FileSecret {
    path: PathBuf,
    cached: Mutex<(Option<SystemTime>, Secret)>,
}

impl FileSecret {
    fn new(path: PathBuf) -> Result<Self, SecretError> {
        let (mtime, value) = read_file(&path)?;
        Ok(Self {
            path,
            cached: Mutex::new((mtime, value)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<SystemTime>, Secret)> {
        // The cache holds no invariant a panic could break.
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn read_file(path: &Path) -> Result<(Option<SystemTime>, Secret), SecretError> {
    let shown = path.display().to_string();
    let mtime = std::fs::metadata(path)
        .map_err(|e| SecretError::File {
            path: shown.clone(),
            reason: e.kind().to_string(),
        })?
        .modified()
        .ok();
    let text = std::fs::read_to_string(path).map_err(|e| SecretError::File {
        path: shown.clone(),
        reason: e.kind().to_string(),
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(SecretError::FileEmpty(shown));
    }
    Ok((mtime, Secret::new(value)))
}

impl SecretSource for FileSecret {
    fn current(&self) -> BoxFuture<'_, Result<Secret, SecretError>> {
        Box::pin(async move {
            let now = std::fs::metadata(&self.path)
                .ok()
                .and_then(|m| m.modified().ok());
            {
                let cached = self.lock();
                if now.is_some() && now == cached.0 {
                    return Ok(cached.1.clone());
                }
            }
            // Changed (or unreadable for a moment during a rotation): read again; keep the
            // last good value when the new one cannot be read.
            match read_file(&self.path) {
                Ok((mtime, value)) => {
                    *self.lock() = (mtime, value.clone());
                    Ok(value)
                }
                Err(e) => {
                    tracing::warn!(source = %self.describe(), error = %e, "secret file unreadable; using the last value read");
                    Ok(self.lock().1.clone())
                }
            }
        })
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_credential_follows_the_file_and_never_prints_its_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "first-value\n").expect("write");
        let c = Credential::file(&path).expect("readable");
        assert_eq!(c.current().await.expect("value").expose(), "first-value");
        // A rotation writes a new file (new mtime); the next request sees the new value.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "second-value").expect("rewrite");
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        f.set_modified(later).expect("mtime");
        assert_eq!(c.current().await.expect("value").expose(), "second-value");
        // Removed mid-rotation: the last good value is kept rather than failing requests.
        std::fs::remove_file(&path).expect("rm");
        assert_eq!(c.current().await.expect("value").expose(), "second-value");
        let shown = format!("{c:?} {}", c.describe());
        assert!(
            !shown.contains("first") && !shown.contains("second"),
            "{shown}"
        );
        assert!(shown.contains("file "), "{shown}");
    }

    #[test]
    fn missing_sources_are_start_up_errors_that_name_the_source() {
        let e = Credential::file("/nonexistent/toolgate/token").expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/toolgate/token"), "{e}");
        let e = Credential::env("TOOLGATE_TEST_SURELY_UNSET_VAR").expect_err("unset");
        assert_eq!(
            e.to_string(),
            "environment variable TOOLGATE_TEST_SURELY_UNSET_VAR is not set or empty"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        assert!(matches!(
            Credential::file(&empty),
            Err(SecretError::FileEmpty(_))
        ));
    }

    #[test]
    fn inline_credentials_compare_by_value_without_showing_it() {
        let a = Credential::inline("s3cr3t");
        assert_eq!(a, Credential::inline("s3cr3t"));
        assert_ne!(a, Credential::inline("other"));
        assert!(!format!("{a:?}").contains("s3cr3t"));
    }
}
