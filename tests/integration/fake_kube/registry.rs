//! The resource types the fake serves (what discovery advertises and the router accepts).

/// One served resource type.
#[derive(Debug)]
pub struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// `(subresource, verbs)`
    pub subresources: &'static [(&'static str, &'static [&'static str])],
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const NS_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const RW: &[&str] = &["get", "patch", "update"];
const STATUS: (&str, &[&str]) = ("status", RW);
const SCALE: (&str, &[&str]) = ("scale", RW);

macro_rules! rt {
    ($group:expr, $plural:expr, $singular:expr, $kind:expr, $ns:expr, $short:expr, $cat:expr, $verbs:expr, $sub:expr) => {
        ResourceType {
            group: $group,
            version: "v1",
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            verbs: $verbs,
            subresources: $sub,
        }
    };
}

pub static RESOURCES: &[ResourceType] = &[
    rt!(
        "",
        "pods",
        "pod",
        "Pod",
        true,
        &["po"],
        &["all"],
        ALL_VERBS,
        &[STATUS, ("log", &["get"]), ("exec", &["create", "get"]),]
    ),
    rt!(
        "",
        "services",
        "service",
        "Service",
        true,
        &["svc"],
        &["all"],
        NS_VERBS,
        &[STATUS]
    ),
    rt!(
        "",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        &[],
        ALL_VERBS,
        &[]
    ),
    rt!(
        "",
        "secrets",
        "secret",
        "Secret",
        true,
        &[],
        &[],
        ALL_VERBS,
        &[]
    ),
    rt!(
        "",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        &[],
        NS_VERBS,
        &[STATUS, ("finalize", &["update"]),]
    ),
    rt!(
        "",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        &[],
        ALL_VERBS,
        &[]
    ),
    rt!(
        "",
        "nodes",
        "node",
        "Node",
        false,
        &["no"],
        &[],
        ALL_VERBS,
        &[STATUS]
    ),
    rt!(
        "",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        &[],
        ALL_VERBS,
        &[]
    ),
    rt!(
        "apps",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        &["all"],
        ALL_VERBS,
        &[STATUS, SCALE]
    ),
    rt!(
        "apps",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        &["sts"],
        &["all"],
        ALL_VERBS,
        &[STATUS, SCALE]
    ),
    rt!(
        "apps",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        &["ds"],
        &["all"],
        ALL_VERBS,
        &[STATUS]
    ),
    rt!(
        "apps",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        &["rs"],
        &["all"],
        ALL_VERBS,
        &[STATUS, SCALE]
    ),
    // Create-only: `access_review` answers it (every request is allowed).
    rt!(
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        false,
        &[],
        &[],
        &["create"],
        &[]
    ),
    rt!(
        "example.com",
        "widgets",
        "widget",
        "Widget",
        true,
        &["wd"],
        &["example"],
        ALL_VERBS,
        &[STATUS]
    ),
];

/// Groups other than core, in discovery order.
pub const GROUPS: &[&str] = &["apps", "authorization.k8s.io", "example.com"];

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods`, `deployments.apps` — the form used in error messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.iter().any(|(s, _)| *s == sub)
    }

    /// Built-in types omit `apiVersion`/`kind` on list items; custom resources keep them.
    pub fn is_builtin(&self) -> bool {
        matches!(self.group, "" | "apps" | "authorization.k8s.io")
    }

    /// Kinds whose `metadata.generation` tracks spec changes.
    pub fn has_generation(&self) -> bool {
        matches!(self.group, "apps" | "example.com")
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks a type up by `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

pub fn in_group(group: &str) -> impl Iterator<Item = &'static ResourceType> {
    RESOURCES.iter().filter(move |r| r.group == group)
}
