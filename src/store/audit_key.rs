//! The key of the audit chain's MAC: bytes handed in by the caller (from `audit.hmac_key`), or,
//! for a SQLite file without one, a key generated once into a file beside the database. It owns
//! that file and nothing else; the key's bytes never reach a log line, an error or `Debug`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::StoreError;

/// Shortest key accepted: HMAC-SHA256 gains nothing from more than 64 bytes, and a short key
/// could be guessed offline from the stored MACs.
pub const MIN_KEY_BYTES: usize = 32;

/// Appended to the SQLite file's name for the embedded default key (`toolgate.db.audit-key`).
pub const KEY_FILE_SUFFIX: &str = ".audit-key";

/// Bytes of the generated key (written as 64 hex characters).
const GENERATED_BYTES: usize = 32;

/// The MAC key of the audit chain.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditKey(Vec<u8>);

impl AuditKey {
    /// A key given by the operator; refused (naming no value) when shorter than
    /// [`MIN_KEY_BYTES`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<AuditKey, StoreError> {
        let bytes = bytes.into();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(StoreError::AuditKey(format!(
                "the audit key has {} bytes; it needs at least {MIN_KEY_BYTES} (e.g. the output of `openssl rand -hex 32`)",
                bytes.len()
            )));
        }
        Ok(AuditKey(bytes))
    }

    /// A random key held only in memory (a `sqlite::memory:` store, whose chain dies with it).
    pub(crate) fn ephemeral() -> Result<AuditKey, StoreError> {
        Ok(AuditKey(random_hex()?.into_bytes()))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(***)")
    }
}

/// The embedded default key file of the SQLite database at `db`.
pub fn key_file_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push(KEY_FILE_SUFFIX);
    PathBuf::from(name)
}

/// Reads the key file (its trimmed text is the key, as `audit.hmac_key: {file: …}` would read
/// it). `Ok(None)` when it does not exist. Refused when others may read or write it.
pub(crate) fn read_key_file(path: &Path) -> Result<Option<AuditKey>, StoreError> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::AuditKey(format!(
                "cannot read the audit key file {shown}: {}",
                e.kind()
            )));
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::AuditKey(format!(
                "the audit key file {shown} has mode {mode:03o}; others must not read it: chmod 600 {shown}"
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(path).map_err(|e| {
        StoreError::AuditKey(format!(
            "cannot read the audit key file {shown}: {}",
            e.kind()
        ))
    })?;
    AuditKey::new(text.trim().as_bytes().to_vec())
        .map(Some)
        .map_err(|e| StoreError::AuditKey(format!("{shown}: {e}")))
}

/// Creates the key file with a new random key, readable by this user only. Fails when the file
/// appeared meanwhile (another process made it; the caller reads that one).
pub(crate) fn create_key_file(path: &Path) -> Result<AuditKey, StoreError> {
    let hex = random_hex()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let failed = |e: std::io::Error| {
        StoreError::AuditKey(format!(
            "cannot create the audit key file {}: {e}",
            path.display()
        ))
    };
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(format!("{hex}\n").as_bytes())
        .map_err(failed)?;
    file.sync_all().map_err(failed)?;
    Ok(AuditKey(hex.into_bytes()))
}

fn random_hex() -> Result<String, StoreError> {
    let mut bytes = [0u8; GENERATED_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::AuditKey(format!("no randomness for the audit key: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_refused_without_echoing_them() {
        let err = AuditKey::new(b"hunter2".to_vec()).expect_err("too short");
        let text = err.to_string();
        assert!(
            text.contains("7 bytes") && text.contains("at least 32"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        let key = AuditKey::new(vec![b'k'; 32]).expect("long enough");
        assert_eq!(format!("{key:?}"), "AuditKey(***)");
    }

    #[test]
    fn the_key_file_is_created_once_private_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = key_file_of(&dir.path().join("toolgate.db"));
        assert!(path.ends_with("toolgate.db.audit-key"));
        assert!(read_key_file(&path).expect("read").is_none());
        let made = create_key_file(&path).expect("create");
        assert_eq!(read_key_file(&path).expect("read"), Some(made));
        assert!(create_key_file(&path).is_err(), "never overwritten");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let err = read_key_file(&path).expect_err("readable by others");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }
}
