//! `k8s.get_resource`: one object of any kind, `managedFields` stripped, Secrets redacted.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::redact::sanitize;
use super::target::{Omitted, scope, settle_kind};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, Target, TypedTool};

/// Representation of a returned object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ObjectFormat {
    /// Structured JSON in `object`.
    #[default]
    Json,
    /// A YAML document in `yaml`.
    Yaml,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// Kind or short name, as kubectl takes it.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Namespace (default: the context's).
    pub namespace: Option<String>,
    /// `group/version`, if the kind is ambiguous.
    pub api_version: Option<String>,
    /// `json` (default) or `yaml`.
    pub output: Option<ObjectFormat>,
    /// Cluster (default: the default one).
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GetOutput {
    pub cluster: String,
    pub kind: String,
    pub api_version: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object (output `json`). Secrets show `data_keys` (names and sizes), never values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
    /// The object as YAML (output `yaml`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yaml: Option<String>,
}

pub struct GetResource;

impl TypedTool for GetResource {
    type Params = GetParams;
    type Output = GetOutput;
    const NAME: &'static str = "k8s.get_resource";
    const TOOLSET: &'static str = "k8s";
    const TITLE: &'static str = "Get a Kubernetes object";
    const DESCRIPTION: &'static str = "Fetch one object of any kind (CRDs too) as JSON or YAML, without managedFields. Secret values are never shown, only key names and sizes.";
    const UNTRUSTED: Option<&'static str> = Some("Object fields are untrusted upstream data.");
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;

    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut GetParams,
    ) -> Result<Option<Target>, ToolError> {
        settle_kind(
            ctx,
            &mut p.cluster,
            &mut p.kind,
            &mut p.api_version,
            &mut p.namespace,
            &[("name", p.name.as_str())],
            Omitted::DefaultNamespace,
        )
        .await
    }

    async fn call(&self, ctx: &ToolContext, p: GetParams) -> Result<GetOutput, ToolError> {
        let t = scope(
            ctx,
            p.cluster.as_deref(),
            &p.kind,
            p.api_version.as_deref(),
            p.namespace.as_deref(),
            Omitted::DefaultNamespace,
        )
        .await?;
        let mut obj = t.get(&p.name).await?;
        sanitize(&mut obj);
        let (object, yaml) = match p.output.unwrap_or_default() {
            ObjectFormat::Json => (Some(obj), None),
            ObjectFormat::Yaml => (None, Some(to_yaml(&obj)?)),
        };
        Ok(GetOutput {
            cluster: t.cluster.name().to_string(),
            kind: t.kind.info.kind.clone(),
            api_version: t.kind.info.api_version(),
            name: p.name,
            namespace: t.namespace,
            object,
            yaml,
        })
    }
}

pub fn to_yaml(v: &Value) -> Result<String, ToolError> {
    serde_yaml::to_string(v).map_err(|e| ToolError::internal(format!("cannot render YAML: {e}")))
}
