//! secret.* tools (toolset `secret`) on the OpenBao adapter: list keys and versions, read
//! fingerprints (values only through an approved reveal), write with check-and-set (values
//! sealed with transit while the call waits for approval), issue a certificate into a
//! Kubernetes TLS Secret. Every path is resolved by the adapter's one parser before policy
//! judges it (`target.mount`, `target.path`). Values never reach logs, errors, approvals or
//! the audit: only their fingerprints (truncated HMAC-SHA256 under toolgate's transit key).
//! Owns the mapping of `OpenBaoError` to `ToolError`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::adapters::http::Secret;
use crate::adapters::openbao::{ErrorClass, KvPath, OpenBao, OpenBaoError};
use crate::core::context::ToolContext;
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::tool::{Target, Tool, typed};

mod certificate;
mod list;
mod read;
mod write;

pub fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        typed(list::SecretList),
        typed(read::SecretRead),
        typed(write::SecretWrite),
        typed(certificate::GenerateCertificate),
    ]
}

impl From<OpenBaoError> for ToolError {
    fn from(e: OpenBaoError) -> Self {
        let kind = match e.class() {
            ErrorClass::InvalidArguments => ToolErrorKind::InvalidArguments,
            ErrorClass::NotFound => ToolErrorKind::NotFound,
            ErrorClass::Forbidden => ToolErrorKind::Forbidden,
            ErrorClass::Upstream => ToolErrorKind::Upstream,
            ErrorClass::RateLimited => ToolErrorKind::Upstream,
        };
        ToolError::new(kind, e.to_string())
    }
}

/// The OpenBao adapter, or the error saying how to configure it.
pub(crate) fn openbao(ctx: &ToolContext) -> Result<&OpenBao, ToolError> {
    ctx.adapters
        .openbao
        .as_deref()
        .ok_or_else(|| OpenBaoError::NotConfigured.into())
}

/// Resolve `path` with the adapter's parser, rewrite it as resolved (`mount/path`), and
/// build what policy judges. `leaf`: the path must name a secret, not only a mount.
pub(crate) fn settle_path(
    ctx: &ToolContext,
    path: &mut String,
    leaf: bool,
) -> Result<(KvPath, Target), ToolError> {
    let resolved = openbao(ctx)?.parse_path(path)?;
    if leaf && resolved.is_root() {
        return Err(ToolError::invalid_arguments(format!(
            "secret path `{resolved}` names only the mount; name a secret under it, e.g. {}/platform/grafana",
            resolved.mount()
        )));
    }
    *path = resolved.to_string();
    let target = path_target(&resolved);
    Ok((resolved, target))
}

/// What policy sees of a KV call.
pub(crate) fn path_target(path: &KvPath) -> Target {
    Target {
        mount: Some(path.mount().to_string()),
        path: Some(path.path().to_string()),
        ..Target::default()
    }
}

/// Bytes of the HMAC kept in a fingerprint (128 bits: no collisions by chance, and the full
/// MAC is never shown).
const FINGERPRINT_BYTES: usize = 16;

/// `hmac-sha256:v1:<32 hex>` of each value, by key: a truncated HMAC-SHA256 under toolgate's
/// transit key (the key never leaves OpenBao, so a fingerprint cannot be brute-forced offline).
pub(crate) async fn fingerprints(
    bao: &OpenBao,
    values: &BTreeMap<String, Secret>,
) -> Result<BTreeMap<String, String>, ToolError> {
    let inputs: Vec<&[u8]> = values.values().map(|v| v.expose().as_bytes()).collect();
    let macs = bao.transit_hmac(&inputs).await?;
    Ok(values
        .keys()
        .zip(macs)
        .map(|(k, mac)| {
            let hex: String = mac
                .bytes
                .iter()
                .take(FINGERPRINT_BYTES)
                .map(|b| format!("{b:02x}"))
                .collect();
            (k.clone(), format!("hmac-sha256:v{}:{hex}", mac.key_version))
        })
        .collect())
}
