//! What every k8s tool does first: pick the cluster, resolve the kind, settle the namespace,
//! and word failures so the model can fix its call ("namespace 'prod' not found; namespaces:
//! a, b"). Also the get/list helpers the read tools share. Kubernetes is reached only through
//! the adapter's [`KubeOps`]; no tool builds a URL or a kube-rs request.

use std::sync::Arc;

use serde_json::Value;

use crate::adapters::kube::paths::NAMESPACES;
use crate::adapters::kube::{KubeError, KubeOps, ListQuery, ResolvedKind};
use crate::core::context::ToolContext;
use crate::core::error::{ToolError, ToolErrorKind};

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
pub struct Target {
    pub cluster: Cluster,
    pub kind: ResolvedKind,
    /// `None`: cluster-scoped kind, or all namespaces.
    pub namespace: Option<String>,
}

/// Settle cluster, kind and namespace. A namespace given for a cluster-scoped kind is ignored,
/// as kubectl does.
pub async fn target(
    ctx: &ToolContext,
    cluster_name: Option<&str>,
    kind: &str,
    api_version: Option<&str>,
    namespace: Option<&str>,
    omitted: Omitted,
) -> Result<Target, ToolError> {
    let cluster = cluster(ctx, cluster_name).await?;
    let kind = cluster
        .resolve(kind, api_version)
        .await
        .map_err(tool_error)?;
    let namespace = if !kind.namespaced() {
        None
    } else {
        match namespace.map(str::trim).filter(|n| !n.is_empty()) {
            Some(ns) => Some(ns.to_string()),
            None if omitted == Omitted::AllNamespaces => None,
            None => Some(cluster.default_namespace().to_string()),
        }
    };
    Ok(Target {
        cluster,
        kind,
        namespace,
    })
}

impl Target {
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

    /// One page of the collection, read only for compact rows (see `prune`): parsed from the
    /// text the API server sent, keeping only what rows read.
    pub async fn list_for_rows(&self, query: &ListQuery) -> Result<Value, ToolError> {
        let text = self
            .cluster
            .list_text(self.kind.info.resource(), self.namespace.as_deref(), query)
            .await
            .map_err(tool_error)?;
        super::prune::parse_list_for_rows(&text).map_err(|e| {
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
