//! The one parser of secret paths: `mount/path` as tools, policies and secret references write
//! it, resolved against the configured KV mounts into a [`KvPath`]. Refuses what could reach
//! another path than the one written or judged: `.` and `..` segments, doubled, leading or
//! trailing slashes, percent-encoding, backslashes, control characters, `?` and `#`, over-long
//! paths, and mounts not in `openbao.kv_mounts`. The adapter percent-encodes each segment
//! again when it builds a URL, so a `KvPath` names exactly one API path.

use std::fmt;

/// Longest accepted `mount/path`, in bytes.
pub const MAX_PATH_BYTES: usize = 512;

/// A resolved KV v2 location: a configured mount and a path under it (`""`: the mount's root,
/// which only listing accepts).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KvPath {
    mount: String,
    path: String,
}

impl KvPath {
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// Under the mount, without slashes at either end; empty for the mount itself.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether this is the mount itself (nothing under it named).
    pub fn is_root(&self) -> bool {
        self.path.is_empty()
    }

    /// The segments of the path under the mount.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path.split('/').filter(|s| !s.is_empty())
    }
}

/// `mount/path`, as written.
impl fmt::Display for KvPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.mount)
        } else {
            write!(f, "{}/{}", self.mount, self.path)
        }
    }
}

/// Why a secret path was refused; the message says what is wrong and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret path `{shown}`: {reason}")]
pub struct PathError {
    /// The path as given, cut and with control characters escaped (safe to print).
    pub shown: String,
    pub reason: String,
}

/// Resolve `text` (`mount/path`, e.g. `secret/platform/grafana`) against `mounts`, the
/// configured KV v2 mounts (the longest mount that prefixes the path wins: `kv/team-a` before
/// `kv`). `secret` alone is the mount's root.
pub fn parse(text: &str, mounts: &[String]) -> Result<KvPath, PathError> {
    let fail = |reason: String| PathError {
        shown: shown(text),
        reason,
    };
    if text.is_empty() {
        return Err(fail(format!(
            "empty; write mount/path, e.g. {}/platform/grafana",
            example_mount(mounts)
        )));
    }
    if text.len() > MAX_PATH_BYTES {
        return Err(fail(format!(
            "{} bytes long; at most {MAX_PATH_BYTES} are accepted",
            text.len()
        )));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(fail(format!(
            "contains the control character {c:?}; write the path in plain text"
        )));
    }
    if text.contains('\\') {
        return Err(fail(
            "contains a backslash; segments are separated by `/`".into(),
        ));
    }
    if text.contains('%') {
        return Err(fail(
            "contains `%`: percent-encoding is not accepted; write the path unencoded (`a/b`, not `a%2Fb`)"
                .into(),
        ));
    }
    if let Some(c) = text.chars().find(|c| matches!(c, '?' | '#')) {
        return Err(fail(format!(
            "contains `{c}`; a secret path has no query or fragment (a field of a secret reference goes after `#` in secret_ref, not in a path)"
        )));
    }
    if text.starts_with('/') {
        return Err(fail(format!(
            "starts with `/`; write it without, e.g. `{}`",
            text.trim_start_matches('/')
        )));
    }
    if text.ends_with('/') {
        return Err(fail(format!(
            "ends with `/`; write it without, e.g. `{}` (listing takes the same form)",
            text.trim_end_matches('/')
        )));
    }
    if text.contains("//") {
        return Err(fail(
            "contains `//` (an empty segment); separate segments by one `/`".into(),
        ));
    }
    if let Some(s) = text.split('/').find(|s| *s == "." || *s == "..") {
        return Err(fail(format!(
            "contains a `{s}` segment; name the path directly, without `.` or `..`"
        )));
    }
    if let Some(s) = text.split('/').find(|s| s.trim() != *s) {
        return Err(fail(format!(
            "the segment `{s}` starts or ends with whitespace; remove it"
        )));
    }
    let mount = mounts
        .iter()
        .filter(|m| text == m.as_str() || text.starts_with(&format!("{m}/")))
        .max_by_key(|m| m.len());
    let Some(mount) = mount else {
        let first = text.split('/').next().unwrap_or_default();
        return Err(fail(format!(
            "mount `{first}` is not one toolgate may use; the configured KV mounts (openbao.kv_mounts) are {}",
            mounts.join(", ")
        )));
    };
    let path = text[mount.len()..].trim_start_matches('/').to_string();
    Ok(KvPath {
        mount: mount.clone(),
        path,
    })
}

/// A single name, such as a PKI role: one segment, nothing `parse` would refuse.
pub fn single_segment(what: &str, text: &str) -> Result<String, PathError> {
    let ok = !text.is_empty()
        && text.len() <= 128
        && text != "."
        && text != ".."
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(text.to_string())
    } else {
        Err(PathError {
            shown: shown(text),
            reason: format!(
                "not a {what} name; use letters, digits, `-`, `_`, `.` (one segment, at most 128 bytes)"
            ),
        })
    }
}

fn example_mount(mounts: &[String]) -> &str {
    mounts.first().map(String::as_str).unwrap_or("secret")
}

/// The first 80 characters, control characters escaped.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(80).collect();
    let escaped: String = cut.escape_debug().collect();
    if text.chars().count() > 80 {
        format!("{escaped}…")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts() -> Vec<String> {
        vec!["secret".into(), "kv".into(), "kv/team-a".into()]
    }

    #[test]
    fn good_paths_resolve_to_the_longest_configured_mount() {
        let p = parse("secret/platform/grafana", &mounts()).expect("valid");
        assert_eq!((p.mount(), p.path()), ("secret", "platform/grafana"));
        assert_eq!(p.to_string(), "secret/platform/grafana");
        let p = parse("kv/team-a/db", &mounts()).expect("valid");
        assert_eq!((p.mount(), p.path()), ("kv/team-a", "db"));
        let p = parse("kv/team-b/db", &mounts()).expect("valid");
        assert_eq!((p.mount(), p.path()), ("kv", "team-b/db"));
        let p = parse("secret", &mounts()).expect("the mount's root");
        assert!(p.is_root());
        assert_eq!(p.segments().count(), 0);
        // A mount name that only prefixes a segment is not that mount.
        let e = parse("secrets/x", &mounts()).expect_err("not configured");
        assert!(
            e.reason
                .contains("mount `secrets` is not one toolgate may use"),
            "{e}"
        );
    }

    #[test]
    fn tricks_are_refused_with_what_is_wrong_and_what_is_right() {
        let long = format!("secret/{}", "a".repeat(MAX_PATH_BYTES));
        let cases: &[(&str, &str)] = &[
            ("", "empty; write mount/path, e.g. secret/platform/grafana"),
            ("secret/../other", "contains a `..` segment"),
            ("secret/./x", "contains a `.` segment"),
            ("secret/a/..", "contains a `..` segment"),
            ("secret//x", "contains `//`"),
            (
                "/secret/x",
                "starts with `/`; write it without, e.g. `secret/x`",
            ),
            (
                "secret/x/",
                "ends with `/`; write it without, e.g. `secret/x`",
            ),
            ("secret/%2e%2e/x", "percent-encoding is not accepted"),
            ("secret/a%2Fb", "percent-encoding is not accepted"),
            ("secret/a\\..\\b", "contains a backslash"),
            ("secret/a\nb", "control character '\\n'"),
            ("secret/a\u{0}b", "control character"),
            ("secret/a?version=1", "contains `?`"),
            ("secret/a#key", "contains `#`"),
            ("secret/ a", "starts or ends with whitespace"),
            (&long, "bytes long; at most 512"),
            (
                "sys/policies/acl/x",
                "mount `sys` is not one toolgate may use; the configured KV mounts (openbao.kv_mounts) are secret, kv, kv/team-a",
            ),
            ("cubbyhole/x", "mount `cubbyhole` is not one"),
        ];
        for (path, expected) in cases {
            let e = parse(path, &mounts()).expect_err(path);
            let text = e.to_string();
            assert!(text.contains(expected), "{path:?}: {text}");
            assert!(text.starts_with("secret path `"), "{text}");
            assert!(
                !text.contains('\n'),
                "control characters are escaped: {text}"
            );
        }
        assert!(single_segment("PKI role", "web-server").is_ok());
        for bad in ["", "..", "a/b", "a%2f", "a b"] {
            assert!(single_segment("PKI role", bad).is_err(), "{bad:?}");
        }
    }
}
