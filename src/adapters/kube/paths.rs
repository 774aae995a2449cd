//! Request paths of the Kubernetes API. Owns the one rule every URL the adapter sends follows:
//! each path segment (group, version, plural, namespace, name, subresource) is percent-encoded,
//! and a segment that is empty, `.` or `..` is refused, so no caller-supplied name can reach
//! another resource (`x/proxy/y`, `a?b`, `..`). Queries are left to kube-core's builders.
//! Must not send requests: that is `ops`.

use super::KubeError;
use super::discovery::KindInfo;

/// A resource type at one group version: what the path of a collection is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    /// API group; empty for the core group.
    pub group: &'a str,
    pub version: &'a str,
    /// Plural resource name used in URLs, e.g. `deployments`.
    pub plural: &'a str,
}

impl<'a> Resource<'a> {
    /// A resource of the core group at `v1`.
    pub const fn core(plural: &'a str) -> Self {
        Resource {
            group: "",
            version: "v1",
            plural,
        }
    }
}

/// Namespaces (core `v1`).
pub const NAMESPACES: Resource<'static> = Resource::core("namespaces");
/// Events of the core group (what `kubectl get events` reads).
pub const EVENTS: Resource<'static> = Resource::core("events");
/// Pods (core `v1`).
pub const PODS: Resource<'static> = Resource::core("pods");

impl KindInfo {
    /// The resource this kind is served as, for building its paths.
    pub fn resource(&self) -> Resource<'_> {
        Resource {
            group: &self.group,
            version: &self.version,
            plural: &self.plural,
        }
    }
}

/// One path segment, percent-encoded: everything but RFC 3986 unreserved characters and
/// `:`/`@` (legal in a segment and common in RBAC names such as `system:node`) becomes `%XX`.
/// `what` names the segment in the error (`name`, `namespace`, …).
///
/// Hand-written rather than taken from `percent-encoding` (only a transitive dependency here):
/// an explicit allow-list of a few bytes is the whole rule.
pub fn segment(what: &str, value: &str) -> Result<String, KubeError> {
    if matches!(value, "" | "." | "..") {
        return Err(KubeError::InvalidSegment {
            what: what.to_string(),
            value: value.to_string(),
        });
    }
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'@') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    Ok(out)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// `/api/v1` or `/apis/apps/v1`.
pub fn group_version(group: &str, version: &str) -> Result<String, KubeError> {
    let version = segment("version", version)?;
    if group.is_empty() {
        Ok(format!("/api/{version}"))
    } else {
        Ok(format!("/apis/{}/{version}", segment("group", group)?))
    }
}

/// The collection of `resource` in `namespace` (or cluster-wide / in all namespaces), e.g.
/// `/apis/apps/v1/namespaces/shop/deployments`.
pub fn collection(resource: Resource<'_>, namespace: Option<&str>) -> Result<String, KubeError> {
    let base = group_version(resource.group, resource.version)?;
    let plural = segment("resource", resource.plural)?;
    match namespace {
        Some(ns) => Ok(format!(
            "{base}/namespaces/{}/{plural}",
            segment("namespace", ns)?
        )),
        None => Ok(format!("{base}/{plural}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded_so_the_path_keeps_its_shape() {
        let cases = [
            ("web-1", "web-1"),
            ("system:node@x", "system:node@x"),
            ("x/proxy/y", "x%2Fproxy%2Fy"),
            ("a?b", "a%3Fb"),
            ("a#b", "a%23b"),
            ("50%", "50%25"),
            ("a b", "a%20b"),
            ("..x", "..x"),
            ("a\\b", "a%5Cb"),
            ("a;b=c&d", "a%3Bb%3Dc%26d"),
            ("é", "%C3%A9"),
            ("a\nb", "a%0Ab"),
        ];
        for (raw, want) in cases {
            assert_eq!(segment("name", raw).expect(raw), want, "{raw}");
        }
    }

    #[test]
    fn empty_and_dot_segments_are_refused_with_what_they_are() {
        for bad in ["", ".", ".."] {
            let err = segment("namespace", bad).expect_err(bad);
            assert!(matches!(err, KubeError::InvalidSegment { .. }), "{err:?}");
        }
        assert_eq!(
            segment("name", "..").expect_err("..").to_string(),
            "name '..' cannot be used: Kubernetes names are never empty, '.' or '..'"
        );
    }

    #[test]
    fn collections_of_core_and_group_resources() {
        assert_eq!(
            collection(PODS, Some("shop")).expect("ok"),
            "/api/v1/namespaces/shop/pods"
        );
        assert_eq!(
            collection(NAMESPACES, None).expect("ok"),
            "/api/v1/namespaces"
        );
        let deploy = Resource {
            group: "apps",
            version: "v1",
            plural: "deployments",
        };
        assert_eq!(
            collection(deploy, None).expect("ok"),
            "/apis/apps/v1/deployments"
        );
        assert_eq!(
            collection(deploy, Some("a/b")).expect("ok"),
            "/apis/apps/v1/namespaces/a%2Fb/deployments"
        );
        assert!(collection(deploy, Some("..")).is_err());
    }
}
