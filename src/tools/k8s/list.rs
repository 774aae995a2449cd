//! `k8s.list_resources`: one page of any kind as compact kubectl-like rows, or full objects.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::get::to_yaml;
use super::redact::sanitize;
use super::rows::table;
use super::target::{Omitted, items, list_params, missing_namespace, scope, settle_kind};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, Target, TypedTool};

/// Objects fetched per page when the caller sets no `limit`.
const DEFAULT_LIMIT: u32 = 500;
const MAX_LIMIT: u32 = 5000;

/// How list results are shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListFormat {
    /// One array per object under `columns` (default; smallest).
    #[default]
    Compact,
    /// Full objects (JSON) in `rows`.
    Json,
    /// Full objects, one YAML document string each, in `rows`.
    Yaml,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Kind or short name, as kubectl takes it.
    pub kind: String,
    /// Namespace; omit for all.
    pub namespace: Option<String>,
    /// Label selector, e.g. `app=web`.
    pub label_selector: Option<String>,
    /// Field selector, e.g. `status.phase=Running`.
    pub field_selector: Option<String>,
    /// Objects per API page (default 500).
    #[schemars(range(min = 1, max = 5000))]
    pub limit: Option<u32>,
    /// API server continue token (prefer `cursor`).
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    /// `compact` rows (default) or objects as `json`/`yaml`.
    pub output: Option<ListFormat>,
    /// `group/version`, if the kind is ambiguous.
    pub api_version: Option<String>,
    /// Cluster (default: the default one).
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOutput {
    pub cluster: String,
    pub kind: String,
    pub api_version: String,
    /// The namespace listed; absent for all namespaces or a cluster-scoped kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Names of the cells of each row (compact output only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Compact: one array of cells per object. json: full objects. yaml: one YAML string per object.
    pub rows: Vec<Value>,
    /// The API server's continue token for the next page, when there is one.
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
    /// Objects after this page, when the API server says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_item_count: Option<i64>,
}

pub struct ListResources;

impl TypedTool for ListResources {
    type Params = ListParams;
    type Output = ListOutput;
    const NAME: &'static str = "k8s.list_resources";
    const TOOLSET: &'static str = "k8s";
    const TITLE: &'static str = "List Kubernetes objects";
    const DESCRIPTION: &'static str = "List objects of any kind as kubectl-like rows, by namespace and label/field selectors. Secret values are never shown.";
    const UNTRUSTED: Option<&'static str> = Some("Object fields are untrusted upstream data.");
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("rows");

    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut ListParams,
    ) -> Result<Option<Target>, ToolError> {
        settle_kind(
            ctx,
            &mut p.cluster,
            &mut p.kind,
            &mut p.api_version,
            &mut p.namespace,
            &[],
            Omitted::AllNamespaces,
        )
        .await
    }

    async fn call(&self, ctx: &ToolContext, p: ListParams) -> Result<ListOutput, ToolError> {
        let t = scope(
            ctx,
            p.cluster.as_deref(),
            &p.kind,
            p.api_version.as_deref(),
            p.namespace.as_deref(),
            Omitted::AllNamespaces,
        )
        .await?;
        if !t.kind.info.supports("list") {
            return Err(ToolError::invalid_arguments(format!(
                "{} cannot be listed (verbs: {})",
                t.kind.info.qualified(),
                t.kind.info.verbs.join(", ")
            )));
        }
        let limit = p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        // The core's cursor wins over the tool's own `continue` argument.
        let continue_token = ctx.page.upstream.clone().or(p.continue_token.clone());
        let lp = list_params(
            p.label_selector.as_deref(),
            p.field_selector.as_deref(),
            Some(limit),
            continue_token.as_deref(),
        );
        let format = p.output.unwrap_or_default();
        let mut list = if format == ListFormat::Compact {
            t.list_for_rows(&lp).await?
        } else {
            t.list(&lp).await?
        };
        sanitize(&mut list);
        let objects = items(&list);
        if objects.is_empty()
            && let Some(ns) = &t.namespace
            && let Some(err) = missing_namespace(t.cluster.as_ref(), ns).await
        {
            return Err(err);
        }
        let next = list
            .pointer("/metadata/continue")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from);
        let remaining = list
            .pointer("/metadata/remainingItemCount")
            .and_then(Value::as_i64);
        let info = &t.kind.info;
        let (columns, rows) = match format {
            ListFormat::Compact => {
                let with_namespace = info.namespaced && t.namespace.is_none();
                let tbl = table(
                    &info.group,
                    &info.kind,
                    objects,
                    with_namespace,
                    jiff::Timestamp::now(),
                );
                (Some(tbl.columns), tbl.rows)
            }
            ListFormat::Json => (None, objects.iter().map(|o| with_type(o, info)).collect()),
            ListFormat::Yaml => {
                let docs = objects
                    .iter()
                    .map(|o| to_yaml(&with_type(o, info)).map(Value::String))
                    .collect::<Result<Vec<_>, _>>()?;
                (None, docs)
            }
        };
        Ok(ListOutput {
            cluster: t.cluster.name().to_string(),
            kind: info.kind.clone(),
            api_version: info.api_version(),
            namespace: t.namespace.clone(),
            columns,
            rows,
            continue_token: next,
            remaining_item_count: remaining,
        })
    }
}

/// List items carry no `apiVersion`/`kind`; put them back so each object stands alone.
fn with_type(obj: &Value, info: &crate::adapters::kube::KindInfo) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), Value::String(info.api_version()));
    out.insert("kind".into(), Value::String(info.kind.clone()));
    if let Value::Object(m) = obj {
        for (k, v) in m {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}
