//! `secret.read` (risk `sensitive`): a secret's keys, version, created time and the fingerprint
//! of each value. With `reveal: true` the values too — only as a call an approver approved with
//! a stated reason, and never kept: the approved run answers fingerprints (what the approval
//! stores), and the values are read again from OpenBao, at the approved version, each time the
//! requester fetches the result (`approval.status`, MCP tasks) within [`REVEAL_WINDOW`].

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{fingerprints, openbao, settle_path};
use crate::adapters::openbao::KvSecret;
use crate::core::audit::APPROVAL_TRANSPORT;
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Preview, Risk, Target, TypedTool, UNTRUSTED_FIELD};

/// How long after the approved run its requester can fetch the revealed values.
pub const REVEAL_WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    /// The secret, `mount/path` (e.g. `secret/platform/grafana`); no `..`, `//`, `%`.
    pub path: String,
    /// Version to read (default: the current one; a reveal pins it when requested).
    pub version: Option<u64>,
    /// Ask for the values: held for an approver; then fetch them with approval.status.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reveal: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ReadOutput {
    /// The secret, as resolved (`mount/path`).
    pub path: String,
    pub version: u64,
    /// When this version was written (RFC 3339).
    pub created_time: String,
    /// One row per key.
    pub values: Vec<KeyValue>,
    /// How the reveal went (reveal only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reveal: Option<String>,
    /// Until when the requester can fetch the revealed values (RFC 3339; reveal only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revealable_until: Option<String>,
    /// True when `values` hold secret values: never log, store or repeat them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct KeyValue {
    pub key: String,
    /// Truncated HMAC-SHA256 of the value under toolgate's key: equal values, equal fingerprints.
    pub fingerprint: String,
    /// The value (an approved reveal only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

pub struct SecretRead;

impl TypedTool for SecretRead {
    type Params = ReadParams;
    type Output = ReadOutput;
    const NAME: &'static str = "secret.read";
    const TOOLSET: &'static str = "secret";
    const TITLE: &'static str = "Read a secret";
    const DESCRIPTION: &'static str = "Read an OpenBao KV v2 secret: its keys, version, created time and a fingerprint of each value (compare values without seeing them). `reveal: true` asks for the values: it is held for an approver, and once approved the values come with approval.status, marked secret.";
    const RISK: Risk = Risk::Sensitive;
    const IDEMPOTENT: bool = true;

    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut ReadParams,
    ) -> Result<Option<Target>, ToolError> {
        let (path, target) = settle_path(ctx, &mut p.path, true)?;
        // A reveal is approved for one version: the one current when it was asked for.
        if p.reveal && p.version.is_none() {
            p.version = Some(openbao(ctx)?.kv_metadata(&path).await?.current_version);
        }
        Ok(Some(target))
    }

    async fn call(&self, ctx: &ToolContext, p: ReadParams) -> Result<ReadOutput, ToolError> {
        let bao = openbao(ctx)?;
        let path = bao.parse_path(&p.path)?;
        let secret = bao.kv_read(&path, p.version).await?;
        let mut out = answer(
            &p.path,
            &secret,
            &fingerprints(bao, &secret.data).await?,
            false,
        );
        if p.reveal {
            let approval = approved_with_reason(ctx).await?;
            let until = Timestamp::now() + REVEAL_WINDOW;
            out.reveal = Some(format!(
                "{approval}; the values are not kept: the requester gets them with approval.status until {until}"
            ));
            out.revealable_until = Some(until.to_string());
        }
        Ok(out)
    }

    /// Keys and fingerprints of the version to be revealed.
    async fn preview(
        &self,
        ctx: &ToolContext,
        p: &ReadParams,
    ) -> Result<Option<Preview>, ToolError> {
        let bao = openbao(ctx)?;
        let path = bao.parse_path(&p.path)?;
        let secret = bao.kv_read(&path, p.version).await?;
        let prints = fingerprints(bao, &secret.data).await?;
        let keys: Vec<&String> = prints.keys().collect();
        Ok(Some(Preview {
            summary: format!(
                "would reveal the values of {} ({}) of {} version {} to the requester",
                keys.len(),
                keys.iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                p.path,
                secret.metadata.version
            ),
            diff: None,
            target_version: None,
            detail: serde_json::json!({"path": p.path, "version": secret.metadata.version, "fingerprints": prints}),
        }))
    }

    async fn requester_result(
        &self,
        ctx: &ToolContext,
        p: ReadParams,
        stored: &Value,
    ) -> Result<Option<Value>, ToolError> {
        if !p.reveal {
            return Ok(None);
        }
        let Ok(mut approved) = serde_json::from_value::<ReadOutput>(stored.clone()) else {
            return Ok(None);
        };
        let open = approved
            .revealable_until
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_some_and(|until| Timestamp::now() < until);
        if !open {
            approved.reveal = Some(format!(
                "the reveal window ended at {}; call secret.read with reveal again to ask for a new approval",
                approved.revealable_until.as_deref().unwrap_or("(unknown)")
            ));
            return Ok(Some(marked(&approved)));
        }
        let bao = openbao(ctx)?;
        let path = bao.parse_path(&p.path)?;
        let secret = bao.kv_read(&path, Some(approved.version)).await?;
        let prints = fingerprints(bao, &secret.data).await?;
        let was: BTreeMap<&str, &str> = approved
            .values
            .iter()
            .map(|v| (v.key.as_str(), v.fingerprint.as_str()))
            .collect();
        let now: BTreeMap<&str, &str> = prints
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if was != now {
            return Err(ToolError::forbidden(format!(
                "{} version {} no longer holds the values that were approved for reveal (their fingerprints differ); nothing is revealed — ask again",
                p.path, approved.version
            )));
        }
        let mut out = answer(&p.path, &secret, &prints, true);
        out.reveal = approved.reveal;
        out.revealable_until = approved.revealable_until;
        Ok(Some(marked(&out)))
    }
}

/// Keys with fingerprints (and values when `reveal`), in key order.
fn answer(
    path: &str,
    secret: &KvSecret,
    prints: &BTreeMap<String, String>,
    reveal: bool,
) -> ReadOutput {
    ReadOutput {
        path: path.to_string(),
        version: secret.metadata.version,
        created_time: secret.metadata.created_time.clone(),
        values: secret
            .data
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.clone(),
                fingerprint: prints.get(k).cloned().unwrap_or_default(),
                value: reveal.then(|| v.expose().to_string()),
            })
            .collect(),
        reveal: None,
        revealable_until: None,
        secret: reveal,
    }
}

/// The answer as JSON, marked untrusted (its values were written by someone else).
fn marked(out: &ReadOutput) -> Value {
    let mut v = serde_json::to_value(out).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert(UNTRUSTED_FIELD.into(), Value::Bool(true));
    }
    v
}

/// A reveal runs only as an approved call whose approval gave a reason: `approved by NAME
/// (reason: …)`, or why not.
async fn approved_with_reason(ctx: &ToolContext) -> Result<String, ToolError> {
    let refuse = |why: &str| {
        Err(ToolError::forbidden(format!(
            "reveal: true {why}; nothing was revealed. Call secret.read with reveal: true and let an approver approve it with a reason, or leave reveal out to get fingerprints"
        )))
    };
    if ctx.transport != APPROVAL_TRANSPORT {
        return refuse("runs only after an approver approved it");
    }
    let Some(approvals) = &ctx.approvals else {
        return refuse("needs the approval queue");
    };
    let view = approvals.status(&ctx.principal, &ctx.request_id).await?;
    let given = view["decisions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["decision"] == "approve")
        .find_map(|d| {
            let reason = d["reason"]
                .as_str()
                .map(str::trim)
                .filter(|r| !r.is_empty())?;
            Some(format!(
                "approved by {} (reason: {reason})",
                d["approver_name"].as_str().unwrap_or("an approver")
            ))
        });
    match given {
        Some(text) => Ok(text),
        None => refuse("needs an approval with a stated reason and this one has none"),
    }
}
