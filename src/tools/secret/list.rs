//! `secret.list`: the keys under a KV v2 path with each secret's version metadata; never values.

use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{openbao, settle_path};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, Target, TypedTool};

/// Metadata reads in flight at once.
const PARALLEL: usize = 8;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// `mount` or `mount/folder`, e.g. `secret/platform` (no `..`, `//`, `%`).
    pub path: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOutput {
    /// The path listed, as resolved (`mount/folder`).
    pub path: String,
    /// Folders (ending in `/`) and secrets under it.
    pub entries: Vec<Entry>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Entry {
    /// Key under the path; folders end in `/`.
    pub name: String,
    /// Current version (secrets only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// How many versions are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versions: Option<usize>,
    /// When the current version was written (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// The current version is deleted or destroyed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

pub struct SecretList;

impl TypedTool for SecretList {
    type Params = ListParams;
    type Output = ListOutput;
    const NAME: &'static str = "secret.list";
    const TOOLSET: &'static str = "secret";
    const TITLE: &'static str = "List secrets";
    const DESCRIPTION: &'static str = "List the keys under an OpenBao KV v2 path (`mount/folder`) with each secret's current version, version count and update time. Never returns values.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("entries");

    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut ListParams,
    ) -> Result<Option<Target>, ToolError> {
        let (_, target) = settle_path(ctx, &mut p.path, false)?;
        Ok(Some(target))
    }

    async fn call(&self, ctx: &ToolContext, p: ListParams) -> Result<ListOutput, ToolError> {
        let bao = openbao(ctx)?;
        let base = bao.parse_path(&p.path)?;
        let keys = bao.kv_list(&base).await?;
        let base = &base;
        let entries = futures::stream::iter(keys)
            .map(|name| async move {
                if name.ends_with('/') {
                    return Ok(Entry {
                        name,
                        version: None,
                        versions: None,
                        updated: None,
                        deleted: false,
                    });
                }
                let child = bao.parse_path(&format!("{base}/{name}"))?;
                let meta = bao.kv_metadata(&child).await?;
                let current = meta.versions.get(&meta.current_version);
                Ok::<Entry, ToolError>(Entry {
                    version: Some(meta.current_version),
                    versions: Some(meta.versions.len()),
                    updated: Some(meta.updated_time),
                    deleted: current.is_some_and(|v| v.destroyed || v.deletion_time.is_some()),
                    name,
                })
            })
            .buffered(PARALLEL)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ListOutput {
            path: base.to_string(),
            entries,
        })
    }
}
