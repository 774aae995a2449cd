//! `secret.write` (risk `write`, approval): write or rotate values of a KV v2 secret with
//! check-and-set. The values are sealed when the call is settled, before policy, the approval
//! queue or the audit see it: each is encrypted with toolgate's transit key under a context
//! bound to the secret's mount and path, and the call's arguments keep only the ciphertexts
//! and the fingerprints of the old and new values. The approved run decrypts them (the same
//! context: a ciphertext moved to another path does not decrypt) and writes with `cas`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{fingerprints, openbao, settle_path};
use crate::adapters::http::Secret;
use crate::adapters::openbao::{KvPath, OpenBao, OpenBaoError};
use crate::core::audit::APPROVAL_TRANSPORT;
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Preview, Risk, Target, TypedTool};

/// Longest key name accepted.
const MAX_KEY_BYTES: usize = 128;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteParams {
    /// The secret, `mount/path` (e.g. `secret/platform/grafana`); no `..`, `//`, `%`.
    pub path: String,
    /// Keys and new values (other keys are kept); never echoed or stored.
    #[schemars(extend("writeOnly" = true))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, String>>,
    /// Version the secret must still be at (0: must not exist); default: current.
    pub cas: Option<u64>,
    /// The values sealed by toolgate (transit ciphertexts). Set only by toolgate when it settles the call; a caller cannot send it (not in the schema).
    #[schemars(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<BTreeMap<String, String>>,
    /// Fingerprints of the old and new values, for approvers. Set by toolgate.
    #[schemars(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprints: Option<BTreeMap<String, Change>>,
}

/// One key's change, by fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct Change {
    /// `None`: a new key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    pub new: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WriteOutput {
    /// The secret, as resolved (`mount/path`).
    pub path: String,
    /// The version written.
    pub version: u64,
    pub created_time: String,
    /// The keys written, with the fingerprints of their old and new values.
    pub changes: Vec<ChangeRow>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ChangeRow {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    pub new: String,
}

pub struct SecretWrite;

impl TypedTool for SecretWrite {
    type Params = WriteParams;
    type Output = WriteOutput;
    const NAME: &'static str = "secret.write";
    const TOOLSET: &'static str = "secret";
    const TITLE: &'static str = "Write a secret";
    const DESCRIPTION: &'static str = "Write or rotate values of an OpenBao KV v2 secret with check-and-set; keys not named keep their values. Held for approval: approvers see the path, the keys and fingerprints of old and new values, never the values. The answer never repeats a value.";
    const RISK: Risk = Risk::Write;

    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut WriteParams,
    ) -> Result<Option<Target>, ToolError> {
        let (path, target) = settle_path(ctx, &mut p.path, true)?;
        if p.sealed.is_some() {
            // Only toolgate seals, and only the stored call of an approval comes back sealed.
            if ctx.transport != APPROVAL_TRANSPORT || p.values.is_some() {
                return Err(ToolError::invalid_arguments(
                    "secret.write: `sealed` is toolgate's own field; send the new values in `values`",
                ));
            }
            return Ok(Some(target));
        }
        let values = checked_values(p.values.take())?;
        let bao = openbao(ctx)?;
        let cas = match p.cas {
            Some(cas) => cas,
            None => current_version(bao, &path).await?,
        };
        p.cas = Some(cas);
        let old = if cas == 0 {
            BTreeMap::new()
        } else {
            let current = bao.kv_read(&path, Some(cas)).await?;
            let named: BTreeMap<String, Secret> = current
                .data
                .into_iter()
                .filter(|(k, _)| values.contains_key(k))
                .collect();
            fingerprints(bao, &named).await?
        };
        let new = fingerprints(bao, &values).await?;
        p.fingerprints = Some(
            new.into_iter()
                .map(|(k, new)| {
                    let change = Change {
                        old: old.get(&k).cloned(),
                        new,
                    };
                    (k, change)
                })
                .collect(),
        );
        let plain: Vec<&Secret> = values.values().collect();
        let sealed = bao.transit_encrypt(&plain, &context(&path)).await?;
        p.sealed = Some(values.keys().cloned().zip(sealed).collect());
        Ok(Some(target))
    }

    async fn call(&self, ctx: &ToolContext, p: WriteParams) -> Result<WriteOutput, ToolError> {
        let bao = openbao(ctx)?;
        let path = bao.parse_path(&p.path)?;
        let (Some(sealed), Some(cas)) = (&p.sealed, p.cas) else {
            return Err(ToolError::internal(
                "secret.write ran without sealed values or cas; request it again",
            ));
        };
        let ciphertexts: Vec<&str> = sealed.values().map(String::as_str).collect();
        let values = bao.transit_decrypt(&ciphertexts, &context(&path)).await?;
        let mut data = if cas == 0 {
            BTreeMap::new()
        } else {
            bao.kv_read(&path, Some(cas)).await?.data
        };
        data.extend(sealed.keys().cloned().zip(values));
        let written = bao
            .kv_write(&path, &data, Some(cas))
            .await
            .map_err(|e| match e {
                OpenBaoError::CasMismatch { .. } => ToolError::invalid_arguments(format!(
                    "{e}. Someone wrote {path} after this call was made (it was at version {cas}); nothing was written — read it again (secret.list) and ask for the write again"
                )),
                other => other.into(),
            })?;
        let changes = p
            .fingerprints
            .unwrap_or_default()
            .into_iter()
            .map(|(key, c)| ChangeRow {
                key,
                old: c.old,
                new: c.new,
            })
            .collect();
        Ok(WriteOutput {
            path: path.to_string(),
            version: written.version,
            created_time: written.created_time,
            changes,
        })
    }

    async fn preview(
        &self,
        _ctx: &ToolContext,
        p: &WriteParams,
    ) -> Result<Option<Preview>, ToolError> {
        let changes = p.fingerprints.clone().unwrap_or_default();
        let cas = p.cas.unwrap_or(0);
        let keys: Vec<&str> = changes.keys().map(String::as_str).collect();
        let summary = if cas == 0 {
            format!("would create {} with keys {}", p.path, keys.join(", "))
        } else {
            format!(
                "would write keys {} of {} (at version {cas}; the write fails if it changed)",
                keys.join(", "),
                p.path
            )
        };
        Ok(Some(Preview {
            summary,
            diff: None,
            target_version: None,
            detail: json!({"path": p.path, "cas": cas, "fingerprints": changes}),
        }))
    }
}

/// The transit context a value is sealed under: the secret it may be written to.
fn context(path: &KvPath) -> String {
    format!("toolgate secret.write {}/{}", path.mount(), path.path())
}

/// The current version, 0 when the secret does not exist yet.
async fn current_version(bao: &OpenBao, path: &KvPath) -> Result<u64, ToolError> {
    match bao.kv_metadata(path).await {
        Ok(meta) => Ok(meta.current_version),
        Err(OpenBaoError::NotFound { .. }) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// The values as secrets; refuses none, empty or unprintable keys.
fn checked_values(
    values: Option<BTreeMap<String, String>>,
) -> Result<BTreeMap<String, Secret>, ToolError> {
    let values = values.filter(|v| !v.is_empty()).ok_or_else(|| {
        ToolError::invalid_arguments(
            "secret.write: `values` is missing or empty; send the keys to write and their values, e.g. {\"api_key\": \"…\"}",
        )
    })?;
    for key in values.keys() {
        if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control) {
            return Err(ToolError::invalid_arguments(format!(
                "secret.write: key `{}` is not accepted; use 1 to {MAX_KEY_BYTES} bytes without control characters",
                key.escape_debug()
            )));
        }
    }
    Ok(values
        .into_iter()
        .map(|(k, v)| (k, Secret::new(v)))
        .collect())
}
