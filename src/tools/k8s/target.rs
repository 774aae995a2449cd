//! What every k8s tool does first: pick the cluster, resolve the kind, settle the namespace,
//! and word failures so the model can fix its call ("namespace 'prod' not found; namespaces:
//! a, b"). Also the get/list helpers the read tools share. Kubernetes is reached only through
//! the adapter's [`KubeOps`]; no tool builds a URL or a kube-rs request.

use std::sync::Arc;

use serde_json::Value;

use crate::adapters::kube::discovery::KindInfo;
use crate::adapters::kube::paths::NAMESPACES;
use crate::adapters::kube::{KubeError, KubeOps, ListQuery, ResolvedKind};
use crate::core::context::ToolContext;
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::tool::Target;

/// One cluster as the tools hold it.
pub type Cluster = Arc<dyn KubeOps>;

/// Map an adapter error to the error class the core reports.
pub fn tool_error(e: KubeError) -> ToolError {
    let kind = match &e {
        KubeError::UnknownCluster { .. } | KubeError::KindNotFound { .. } => {
            ToolErrorKind::NotFound
        }
        KubeError::AmbiguousKind { .. } | KubeError::InvalidSegment { .. } => {
            ToolErrorKind::InvalidArguments
        }
        KubeError::Api { code, .. } => match code {
            404 => ToolErrorKind::NotFound,
            401 | 403 => ToolErrorKind::Forbidden,
            400 | 405 | 409 | 410 | 415 | 422 => ToolErrorKind::InvalidArguments,
            _ => ToolErrorKind::Upstream,
        },
        KubeError::Timeout { .. } => ToolErrorKind::Timeout,
        KubeError::Config { .. } | KubeError::Unreachable { .. } | KubeError::Other { .. } => {
            ToolErrorKind::Upstream
        }
    };
    ToolError::new(kind, e.to_string())
}

/// The cluster a call names, or the default one.
pub async fn cluster(ctx: &ToolContext, name: Option<&str>) -> Result<Cluster, ToolError> {
    let cluster = ctx.adapters.kube.cluster(name).await.map_err(tool_error)?;
    Ok(Arc::new(cluster))
}

/// Whether an omitted namespace means the context's namespace or all namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Omitted {
    DefaultNamespace,
    AllNamespaces,
}

/// A resolved kind in a namespace (or cluster-wide) of one cluster.
#[derive(Clone)]
pub struct Scope {
    pub cluster: Cluster,
    pub kind: ResolvedKind,
    /// `None`: cluster-scoped kind, or all namespaces.
    pub namespace: Option<String>,
}

/// The scope a call acts in: cluster, kind and namespace settled. A namespace given for a
/// cluster-scoped kind is ignored,
/// as kubectl does.
pub async fn scope(
    ctx: &ToolContext,
    cluster_name: Option<&str>,
    kind: &str,
    api_version: Option<&str>,
    namespace: Option<&str>,
    omitted: Omitted,
) -> Result<Scope, ToolError> {
    let cluster = cluster(ctx, cluster_name).await?;
    let kind = cluster
        .resolve(kind, api_version)
        .await
        .map_err(tool_error)?;
    let namespace = if !kind.namespaced() {
        None
    } else {
        match namespace.filter(|n| !n.is_empty()) {
            Some(ns) => {
                check_namespace("namespace", ns)?;
                Some(ns.to_string())
            }
            None if omitted == Omitted::AllNamespaces => None,
            None => Some(cluster.default_namespace().to_string()),
        }
    };
    Ok(Scope {
        cluster,
        kind,
        namespace,
    })
}

/// The coordinates a k8s call names, as fields of its params: [`settle`] rewrites them to what
/// the call will touch.
pub struct Coords<'p> {
    pub cluster: &'p mut Option<String>,
    /// `None` for tools that always act on one kind (pods for logs and exec: see [`POD`]).
    pub kind: Option<&'p mut String>,
    /// `None` for tools whose params have no api_version (the kind is then pinned by its name).
    pub api_version: Option<&'p mut Option<String>>,
    pub namespace: &'p mut Option<String>,
}

/// The kind of tools without a kind argument: pods, in the core group.
pub const POD: (&str, Option<&str>) = ("pods", Some("v1"));

/// Settle a call's coordinates before policy judges it: the cluster by its configured name,
/// the kind as the API server names it (`Deployment`, with `apps/v1` when the params can hold
/// it), the namespace the call will use (the argument, else the context's default, else none
/// for all namespaces; always none for cluster-scoped kinds), and each of `names` checked as
/// the API server checks names of that kind. `fixed` is the kind of tools without a kind
/// argument. Returns the resolved target and the policy's view of it (named by the first of
/// `names`).
pub async fn settle(
    ctx: &ToolContext,
    coords: Coords<'_>,
    fixed: (&str, Option<&str>),
    names: &[(&str, &str)],
    omitted: Omitted,
) -> Result<(Scope, Target), ToolError> {
    let (kind_arg, api_version) = match (&coords.kind, &coords.api_version) {
        (Some(kind), av) => (
            kind.to_string(),
            av.as_ref().and_then(|a| a.as_deref()).map(str::to_string),
        ),
        (None, _) => (fixed.0.to_string(), fixed.1.map(str::to_string)),
    };
    let t = scope(
        ctx,
        coords.cluster.as_deref(),
        &kind_arg,
        api_version.as_deref(),
        coords.namespace.as_deref(),
        omitted,
    )
    .await?;
    for (field, name) in names {
        check_name(&t.kind.info, field, name)?;
    }
    *coords.cluster = Some(t.cluster.name().to_string());
    if let Some(kind) = coords.kind {
        *kind = t.kind.info.kind.clone();
    }
    if let Some(av) = coords.api_version {
        *av = Some(t.kind.info.api_version());
    }
    *coords.namespace = t.namespace.clone();
    let call = t.call_target(names.first().map(|(_, n)| (*n).to_string()));
    Ok((t, call))
}

/// [`settle`] for tools whose params name the kind (`kind`, `api_version`): the policy's view
/// of the settled call.
pub async fn settle_kind(
    ctx: &ToolContext,
    cluster: &mut Option<String>,
    kind: &mut String,
    api_version: &mut Option<String>,
    namespace: &mut Option<String>,
    names: &[(&str, &str)],
    omitted: Omitted,
) -> Result<Option<Target>, ToolError> {
    let coords = Coords {
        cluster,
        kind: Some(kind),
        api_version: Some(api_version),
        namespace,
    };
    let (_, target) = settle(ctx, coords, POD, names, omitted).await?;
    Ok(Some(target))
}

/// The scope of the tools on pods (logs, exec): the pods of `namespace`, or of the context's.
pub async fn pod_scope(
    ctx: &ToolContext,
    cluster: Option<&str>,
    namespace: Option<&str>,
) -> Result<Scope, ToolError> {
    scope(
        ctx,
        cluster,
        POD.0,
        POD.1,
        namespace,
        Omitted::DefaultNamespace,
    )
    .await
}

/// [`settle`] for the tools on one pod and, optionally, one of its containers (logs, exec).
pub async fn settle_pod(
    ctx: &ToolContext,
    cluster: &mut Option<String>,
    namespace: &mut Option<String>,
    pod: &str,
    container: Option<&str>,
) -> Result<Option<Target>, ToolError> {
    if let Some(c) = container {
        check_container("container", c)?;
    }
    let coords = Coords {
        cluster,
        kind: None,
        api_version: None,
        namespace,
    };
    let (_, target) = settle(ctx, coords, POD, &[("pod", pod)], Omitted::DefaultNamespace).await?;
    Ok(Some(target))
}

impl Scope {
    /// What policy sees of a call on this target.
    pub fn call_target(&self, name: Option<String>) -> Target {
        Target {
            cluster: Some(self.cluster.name().to_string()),
            namespace: self.namespace.clone(),
            namespaces: self.namespace.iter().cloned().collect(),
            kind: Some(self.kind.info.kind.clone()),
            api_version: Some(self.kind.info.api_version()),
            name,
            ..Target::default()
        }
    }

    /// `deployment 'web' in namespace 'shop'` (for messages).
    pub fn describe(&self, name: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{} '{name}' in namespace '{ns}'", self.kind.info.singular),
            None => format!("{} '{name}'", self.kind.info.singular),
        }
    }

    async fn get_raw(&self, name: &str) -> Result<Value, KubeError> {
        self.cluster
            .get(self.kind.info.resource(), self.namespace.as_deref(), name)
            .await
    }

    /// One object as raw JSON, or a not-found error that says what exists instead.
    pub async fn get(&self, name: &str) -> Result<Value, ToolError> {
        match self.get_raw(name).await {
            Ok(v) => Ok(v),
            Err(e) if e.is_not_found() => Err(self.not_found(name).await),
            Err(e) => Err(tool_error(e)),
        }
    }

    /// One object, or `None` when it does not exist.
    pub async fn get_opt(&self, name: &str) -> Result<Option<Value>, ToolError> {
        match self.get_raw(name).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(tool_error(e)),
        }
    }

    /// One page of the collection, whole. `None`: the query's continue token expired (410:
    /// the API server compacted the snapshot the list was read from), so the list must start
    /// again.
    pub async fn list_page(&self, query: &ListQuery) -> Result<Option<Value>, ToolError> {
        let (resource, namespace) = (self.kind.info.resource(), self.namespace.as_deref());
        unless_expired(self.cluster.list(resource, namespace, query).await, query)
    }

    /// One page of the collection as the text the API server sent, to be read for compact
    /// rows only ([`super::view::parse_page`]); `None` as for [`Self::list_page`].
    pub async fn list_page_text(&self, query: &ListQuery) -> Result<Option<String>, ToolError> {
        let (resource, namespace) = (self.kind.info.resource(), self.namespace.as_deref());
        unless_expired(
            self.cluster.list_text(resource, namespace, query).await,
            query,
        )
    }

    /// Reads a page's text for rows; text that is not a JSON list is the API server's fault.
    pub fn parse_page<'t>(&self, text: &'t str) -> Result<super::view::Page<'t>, ToolError> {
        super::view::parse_page(text).map_err(|e| {
            ToolError::upstream(format!(
                "cluster `{}`: the API server sent a list that is not valid JSON: {e}",
                self.cluster.name()
            ))
        })
    }

    /// One page of the collection as a raw JSON list.
    pub async fn list(&self, query: &ListQuery) -> Result<Value, ToolError> {
        self.cluster
            .list(self.kind.info.resource(), self.namespace.as_deref(), query)
            .await
            .map_err(tool_error)
    }

    /// Why `name` was not found: a missing namespace (with the ones that exist), or close names.
    pub async fn not_found(&self, name: &str) -> ToolError {
        if let Some(ns) = &self.namespace
            && let Some(err) = missing_namespace(self.cluster.as_ref(), ns).await
        {
            return err;
        }
        let mut msg = format!("{} not found", self.describe(name));
        if let Ok(list) = self.list(&ListQuery::default().limit(500)).await {
            let names: Vec<String> = items(&list)
                .iter()
                .filter_map(|i| {
                    i.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .collect();
            let mut close: Vec<(usize, &String)> = names
                .iter()
                .map(|n| (strsim::levenshtein(n, name), n))
                .filter(|(d, n)| *d <= 3 || n.starts_with(name) || name.starts_with(n.as_str()))
                .collect();
            close.sort();
            let plural = &self.kind.info.plural;
            let place = self
                .namespace
                .as_ref()
                .map(|ns| format!(" in namespace '{ns}'"))
                .unwrap_or_default();
            if !close.is_empty() {
                let list: Vec<&str> = close.iter().take(3).map(|(_, n)| n.as_str()).collect();
                msg.push_str(&format!("; did you mean {}?", list.join(", ")));
            } else if names.is_empty() {
                msg.push_str(&format!("; there are no {plural}{place}"));
            } else if names.len() <= 15 {
                msg.push_str(&format!("; {plural}{place}: {}", names.join(", ")));
            } else {
                msg.push_str(&format!(
                    "; list them with k8s.list_resources (there are {}+)",
                    names.len()
                ));
            }
        }
        ToolError::not_found(msg)
    }
}

/// A namespace as the API server accepts one: a DNS-1123 label.
pub fn check_namespace(field: &str, ns: &str) -> Result<(), ToolError> {
    if is_dns1123_label(ns) {
        Ok(())
    } else {
        Err(invalid_name(field, ns, LABEL_RULE, "prod"))
    }
}

/// A name of `kind` as the API server validates it: namespaces are DNS-1123 labels, services
/// RFC 1035 labels, RBAC objects path segments (`system:node` is valid), everything else a
/// DNS-1123 subdomain.
pub fn check_name(kind: &KindInfo, field: &str, name: &str) -> Result<(), ToolError> {
    let (ok, rule, example) = match (kind.group.as_str(), kind.kind.as_str()) {
        ("", "Namespace") => (is_dns1123_label(name), LABEL_RULE, "shop"),
        ("", "Service") => (is_dns1035_label(name), DNS1035_RULE, "web"),
        ("rbac.authorization.k8s.io", _) => (
            !matches!(name, "" | "." | "..") && !name.contains(['/', '%']) && !has_control(name),
            PATH_SEGMENT_RULE,
            "system:node",
        ),
        _ => (is_dns1123_subdomain(name), SUBDOMAIN_RULE, "web-7d4b9"),
    };
    if ok {
        Ok(())
    } else {
        Err(invalid_name(field, name, rule, example))
    }
}

/// A name that must be a DNS-1123 subdomain (an ArgoCD application's, like any object's).
pub fn check_subdomain(field: &str, name: &str, example: &str) -> Result<(), ToolError> {
    if is_dns1123_subdomain(name) {
        Ok(())
    } else {
        Err(invalid_name(field, name, SUBDOMAIN_RULE, example))
    }
}

/// A container name: a DNS-1123 label.
pub fn check_container(field: &str, name: &str) -> Result<(), ToolError> {
    if is_dns1123_label(name) {
        Ok(())
    } else {
        Err(invalid_name(field, name, LABEL_RULE, "app"))
    }
}

const LABEL_RULE: &str = "a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit";
const DNS1035_RULE: &str = "an RFC 1035 label: at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit";
const SUBDOMAIN_RULE: &str = "a DNS-1123 subdomain: at most 253 characters of lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit";
const PATH_SEGMENT_RULE: &str =
    "a name without '/' or '%' or control characters, and not '.' or '..'";

fn invalid_name(field: &str, value: &str, rule: &str, example: &str) -> ToolError {
    ToolError::invalid_arguments(format!(
        "argument `{field}`: {} is not a valid name; expected {rule} (e.g. `{example}`)",
        serde_json::Value::from(value)
    ))
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn is_label_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 bytes.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|&c| is_label_char(c))
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 bytes.
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// Labels joined by `.`, at most 253 bytes.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// `Some(error)` when namespace `ns` does not exist, listing the namespaces that do.
pub async fn missing_namespace(cluster: &dyn KubeOps, ns: &str) -> Option<ToolError> {
    match cluster.get(NAMESPACES, None, ns).await {
        Err(e) if e.is_not_found() => {
            let names = match cluster
                .list(NAMESPACES, None, &ListQuery::default().limit(200))
                .await
            {
                Ok(list) => items(&list)
                    .iter()
                    .filter_map(|i| {
                        i.pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .map(String::from)
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                Err(_) => String::from("(cannot list them)"),
            };
            Some(ToolError::not_found(format!(
                "namespace '{ns}' not found; namespaces: {names}"
            )))
        }
        _ => None,
    }
}

/// `items` of a list response (empty when absent).
/// A page read with `query`, or `None` when its continue token expired.
fn unless_expired<T>(
    page: Result<T, KubeError>,
    query: &ListQuery,
) -> Result<Option<T>, ToolError> {
    match page {
        Ok(page) => Ok(Some(page)),
        Err(e) if e.is_expired() && query.continue_token.is_some() => Ok(None),
        Err(e) => Err(tool_error(e)),
    }
}

pub fn items(list: &Value) -> &[Value] {
    list.get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Build a list query from optional tool arguments.
pub fn list_params(
    label_selector: Option<&str>,
    field_selector: Option<&str>,
    limit: Option<u32>,
    continue_token: Option<&str>,
) -> ListQuery {
    let mut lp = ListQuery::default();
    if let Some(l) = label_selector.filter(|s| !s.trim().is_empty()) {
        lp = lp.labels(l);
    }
    if let Some(f) = field_selector.filter(|s| !s.trim().is_empty()) {
        lp = lp.fields(f);
    }
    if let Some(n) = limit {
        lp = lp.limit(n);
    }
    if let Some(c) = continue_token.filter(|s| !s.is_empty()) {
        lp = lp.continue_token(c);
    }
    lp
}

#[cfg(test)]
mod name_tests {
    use super::*;

    fn kind(group: &str, kind: &str) -> KindInfo {
        KindInfo {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: format!("{}s", kind.to_lowercase()),
            singular: kind.to_lowercase(),
            short_names: vec![],
            namespaced: true,
            verbs: vec![],
            preferred: true,
        }
    }

    #[test]
    fn names_follow_the_api_servers_rule_for_their_kind() {
        let pod = kind("", "Pod");
        let longest = [
            &"a".repeat(63)[..],
            &"b".repeat(63),
            &"c".repeat(63),
            &"d".repeat(61),
        ]
        .join(".");
        for ok in ["web", "web-1", "a.b.c", "0abc", &longest] {
            assert!(check_name(&pod, "name", ok).is_ok(), "{ok} should pass");
        }
        for bad in [
            "",
            " web",
            "web ",
            "Web",
            "a/b",
            "a?b",
            "..",
            ".",
            "-a",
            "a-",
            "a..b",
            "a_b",
            "a%2Fb",
            "a\nb",
            &"a".repeat(64),
            &format!("{longest}d"),
        ] {
            let e = check_name(&pod, "name", bad).unwrap_err();
            assert_eq!(e.kind, ToolErrorKind::InvalidArguments, "{bad}");
            assert!(e.message.contains("argument `name`"), "{}", e.message);
        }
        let ns = kind("", "Namespace");
        assert!(check_name(&ns, "name", "prod").is_ok());
        assert!(check_name(&ns, "name", "prod.eu").is_err());
        let svc = kind("", "Service");
        assert!(check_name(&svc, "name", "web").is_ok());
        assert!(check_name(&svc, "name", "1web").is_err());
        let role = kind("rbac.authorization.k8s.io", "ClusterRole");
        assert!(check_name(&role, "name", "system:controller:x").is_ok());
        assert!(check_name(&role, "name", "a/b").is_err());
        assert!(check_name(&role, "name", "..").is_err());
    }

    #[test]
    fn namespaces_are_labels() {
        assert!(check_namespace("namespace", "kube-system").is_ok());
        for bad in [
            " prod",
            "prod ",
            "prod/x",
            "prod?x",
            "a.b",
            "PROD",
            &"a".repeat(64),
        ] {
            let e = check_namespace("namespace", bad).unwrap_err();
            assert!(e.message.contains("argument `namespace`"), "{}", e.message);
            assert!(e.message.contains("DNS-1123 label"), "{}", e.message);
        }
    }
}
