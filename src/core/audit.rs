//! Audit records: what the core appends for every decision, and every write of them (the
//! dispatcher, the approval gate and the invoke path append only through this module).
//! Argument fields marked secret in a tool's input schema (`"x-secret": true` or
//! `"writeOnly": true`) are replaced by their hash; a tool may redact further (e.g. Secret data
//! inside a manifest). The values of those fields are also cut out of results and error
//! messages, so a tool echoing one never leaks it. It must not decide anything.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::core::dispatch::Dispatcher;
use crate::core::error::ToolError;
use crate::core::principal::Principal;
use crate::core::registry::Entry;
use crate::store::{ApprovalRecord, AuditEntry, now_ms};

/// Transport label of calls run by the approval engine itself.
pub const APPROVAL_TRANSPORT: &str = "approval";

/// The key of [`hash_value`]: the store's redaction key once a gate is built on it, else (no
/// gate yet, e.g. a unit test) a random key of this process. Never unkeyed.
static REDACTION_KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();

/// Keys [`hash_value`] with the store's redaction key (the first call wins; one process serves
/// one store).
pub fn install_redaction_key(key: [u8; 32]) {
    let _ = REDACTION_KEY.set(key);
}

fn redaction_key() -> &'static [u8; 32] {
    REDACTION_KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        // Without randomness the digest is still keyed, by a constant: a warning, not a panic.
        if getrandom::fill(&mut key).is_err() {
            tracing::warn!("no randomness for the redaction key; install the store's key");
        }
        key
    })
}

/// `hmac-sha256:<hex>` of a value's JSON, keyed by the redaction key: the digest that stands in
/// for a secret value. Equal values give equal digests; a guess cannot be checked without the key.
pub fn hash_value(value: &Value) -> String {
    use hmac::Mac;
    let mut mac = match hmac::Hmac::<Sha256>::new_from_slice(redaction_key()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length.
        Err(_) => return "hmac-sha256:unavailable".into(),
    };
    mac.update(&serde_json::to_vec(value).unwrap_or_default());
    format!(
        "hmac-sha256:{}",
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// SHA-256 (hex) of the canonical arguments (serde_json maps are key-sorted).
pub fn args_sha256(args: &Value) -> String {
    let digest = Sha256::digest(serde_json::to_vec(args).unwrap_or_default());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Replace the values of secret-marked top-level properties by their hash.
pub fn redact_by_schema(args: &Value, input_schema: &Map<String, Value>) -> Value {
    let Value::Object(map) = args else {
        return args.clone();
    };
    let secret = |key: &str| is_secret(input_schema, key);
    Value::Object(
        map.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if secret(k) {
                        Value::String(hash_value(v))
                    } else {
                        v.clone()
                    },
                )
            })
            .collect(),
    )
}

/// Secret values shorter than this are not searched for in results (they would match by chance).
const MIN_SECRET_LEN: usize = 4;

fn is_secret(input_schema: &Map<String, Value>, key: &str) -> bool {
    input_schema
        .get("properties")
        .and_then(Value::as_object)
        .and_then(|p| p.get(key))
        .is_some_and(|s| {
            s.get("x-secret") == Some(&Value::Bool(true))
                || s.get("writeOnly") == Some(&Value::Bool(true))
        })
}

/// The string values of the secret-marked top-level arguments, to be cut out of results.
pub fn secret_values(args: &Value, input_schema: &Map<String, Value>) -> Vec<String> {
    let Value::Object(map) = args else {
        return Vec::new();
    };
    map.iter()
        .filter(|(k, _)| is_secret(input_schema, k))
        .filter_map(|(_, v)| v.as_str())
        .filter(|s| s.len() >= MIN_SECRET_LEN)
        .map(str::to_string)
        .collect()
}

/// Replace every occurrence of a secret value inside `text` by its hash.
pub fn redact_text(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), &hash_value(&Value::String(secret.clone())));
        }
    }
    out
}

/// `value` with every occurrence of a secret value in its strings (keys too) replaced by its
/// hash; the shape and types stay as they were.
pub fn redact_secret_values(value: Value, secrets: &[String]) -> Value {
    if secrets.is_empty() {
        return value;
    }
    match value {
        Value::String(s) => Value::String(redact_text(&s, secrets)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| redact_secret_values(v, secrets))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (redact_text(&k, secrets), redact_secret_values(v, secrets)))
                .collect(),
        ),
        other => other,
    }
}

/// Arguments as they may be shown and audited.
pub fn redact_args(entry: &Entry, args: &Value) -> Value {
    entry
        .tool
        .redact_args(&redact_by_schema(args, &entry.input_schema))
}

/// Builder for one audit entry.
pub struct Record<'a> {
    pub principal: &'a Principal,
    pub transport: &'a str,
    pub tool: &'a str,
    /// Already redacted.
    pub args: Value,
    pub decision: &'a str,
    pub rule: Option<String>,
    pub approval_id: Option<String>,
    pub result_summary: Option<String>,
    pub trace_id: Option<String>,
}

impl Record<'_> {
    pub fn entry(self) -> AuditEntry {
        AuditEntry {
            at_ms: now_ms(),
            principal_sub: self.principal.sub.clone(),
            principal_name: self.principal.name.clone(),
            transport: self.transport.to_string(),
            tool: self.tool.to_string(),
            args: self.args,
            decision: self.decision.to_string(),
            rule: self.rule,
            approval_id: self.approval_id,
            result_summary: self.result_summary,
            trace_id: self.trace_id,
        }
    }
}

impl Dispatcher {
    /// Append an audit record, synced to disk; a failure here fails the caller (fail closed).
    pub(crate) async fn audit(&self, record: Record<'_>) -> Result<(), ToolError> {
        self.audit_as(record, false).await
    }

    /// Append the record of a read that ran (it changed nothing): committed before the answer,
    /// synced to disk as `store.read_audit_durability` says (see `store::Durability`).
    pub(crate) async fn audit_read(&self, record: Record<'_>) -> Result<(), ToolError> {
        self.audit_as(record, true).await
    }

    async fn audit_as(&self, record: Record<'_>, read: bool) -> Result<(), ToolError> {
        let store = &self.gate().store;
        let mut entry = record.entry();
        // After redaction (the record's args are redacted), so the summary holds no secret.
        entry.args = cap_args(entry.args, self.gate().audit_max_args_bytes);
        let appended = if read {
            store.append_read_audit(&entry).await
        } else {
            store.append_audit(&entry).await
        };
        appended.map(|_| ()).map_err(|e| {
            tracing::error!(error = %e, "audit write failed; refusing the call");
            ToolError::internal(format!(
                "the audit log could not be written, so nothing was done: {e}"
            ))
        })
    }

    /// Record a request refused before it reached a tool (bad token, missing permission, identity
    /// provider down). Nothing of the token is kept. The request is refused whatever happens
    /// here, so a failed write is only logged.
    pub async fn audit_refusal(
        &self,
        transport: &str,
        who: Option<&Principal>,
        decision: &str,
        reason: &str,
    ) {
        let anonymous = Principal::new("anonymous", "anonymous", Vec::new());
        let principal = who.unwrap_or(&anonymous);
        let record = Record {
            principal,
            transport,
            tool: "-",
            args: Value::Null,
            decision,
            rule: None,
            approval_id: None,
            result_summary: Some(reason.to_string()),
            trace_id: None,
        };
        if let Err(e) = self.audit(record).await {
            tracing::error!(error = %e.message, "could not audit a refused request");
        }
    }

    /// The stored arguments of a request as they may be shown and audited.
    pub(crate) fn redacted(&self, rec: &ApprovalRecord) -> Value {
        match self.registry().get(&rec.tool) {
            Ok(entry) => redact_args(entry, &rec.args),
            Err(_) => hash_value(&rec.args).into(),
        }
    }

    /// Record a step of an approval request taken by toolgate itself (expiry, recovery,
    /// refusal at execution).
    pub(crate) async fn audit_approval_by_system(
        &self,
        rec: &ApprovalRecord,
        decision: &str,
        summary: Option<String>,
    ) -> Result<(), ToolError> {
        let system = Principal::new("toolgate", "toolgate", Vec::new());
        self.audit_approval(rec, &system, decision, summary).await
    }

    /// Record a step of an approval request taken by `principal`.
    pub(crate) async fn audit_approval(
        &self,
        rec: &ApprovalRecord,
        principal: &Principal,
        decision: &str,
        summary: Option<String>,
    ) -> Result<(), ToolError> {
        self.audit(Record {
            principal,
            transport: APPROVAL_TRANSPORT,
            tool: &rec.tool,
            args: self.redacted(rec),
            decision,
            rule: Some(rec.rule.clone()),
            approval_id: Some(rec.id.clone()),
            result_summary: summary,
            trace_id: None,
        })
        .await
    }
}

/// Longest prefix of the arguments' JSON kept in a summary.
const SUMMARY_HEAD_BYTES: usize = 1024;
/// Longest key name listed in a summary.
const SUMMARY_KEY_CHARS: usize = 64;

/// Already-redacted arguments as the audit keeps them: unchanged up to `max_bytes` of JSON;
/// larger ones become `{"_audit_summary": {…}}` holding the SHA-256 of the whole (the same
/// digest as an approval's `args_sha256` when nothing was redacted), its size, the top-level
/// keys with the size of each value (or the item count of an array), and the first bytes of
/// the JSON. The summary stays within `max_bytes` (key list cut short, counted in
/// `keys_omitted`). The approval row keeps the full arguments; only the audit copy is capped.
pub fn cap_args(args: Value, max_bytes: usize) -> Value {
    let text = serde_json::to_string(&args).unwrap_or_default();
    if text.len() <= max_bytes {
        return args;
    }
    let head_len = (0..=SUMMARY_HEAD_BYTES.min(max_bytes / 4).min(text.len()))
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    let mut summary = Map::new();
    summary.insert(
        "reason".into(),
        Value::String("arguments larger than audit.max_args_bytes".into()),
    );
    summary.insert("sha256".into(), Value::String(args_sha256(&args)));
    summary.insert("bytes".into(), Value::from(text.len()));
    summary.insert("max_args_bytes".into(), Value::from(max_bytes));
    summary.insert("head".into(), Value::String(text[..head_len].to_string()));
    let wrap = |summary: &Map<String, Value>| {
        let mut outer = Map::new();
        outer.insert("_audit_summary".into(), Value::Object(summary.clone()));
        Value::Object(outer)
    };
    match &args {
        Value::Object(map) => {
            let mut keys = Map::new();
            let mut omitted = 0_usize;
            let mut used = serde_json::to_string(&wrap(&summary))
                .map(|t| t.len())
                .unwrap_or(0)
                + 64;
            for (k, v) in map {
                let name: String = k.chars().take(SUMMARY_KEY_CHARS).collect();
                let size = serde_json::to_string(v).map(|t| t.len()).unwrap_or(0);
                // `"name":size,` with the name as JSON escapes it.
                let cost = serde_json::to_string(&name).map(|t| t.len()).unwrap_or(0) + 22;
                if used + cost > max_bytes {
                    omitted += 1;
                    continue;
                }
                used += cost;
                keys.insert(name, Value::from(size));
            }
            summary.insert("keys".into(), Value::Object(keys));
            if omitted > 0 {
                summary.insert("keys_omitted".into(), Value::from(omitted));
            }
        }
        Value::Array(items) => {
            summary.insert("items".into(), Value::from(items.len()));
        }
        _ => {}
    }
    wrap(&summary)
}

/// A short, secret-free summary of a result for the audit trail.
pub fn summarize(result: &Result<Value, ToolError>) -> String {
    match result {
        Ok(Value::Object(map)) => {
            let mut parts: Vec<String> = Vec::new();
            for key in [
                "status",
                "exit_code",
                "kind",
                "name",
                "count",
                "total",
                "truncated",
            ] {
                if let Some(v) = map.get(key).filter(|v| !v.is_null()) {
                    parts.push(format!("{key}={}", compact(v)));
                }
            }
            for (key, v) in map {
                if let Value::Array(items) = v {
                    parts.push(format!("{key}: {} items", items.len()));
                }
            }
            if parts.is_empty() {
                "ok".to_string()
            } else {
                format!("ok: {}", parts.join(", "))
            }
        }
        Ok(_) => "ok".to_string(),
        Err(e) => {
            let mut message = e.message.clone();
            if message.len() > 300 {
                let cut = (0..=300)
                    .rev()
                    .find(|i| message.is_char_boundary(*i))
                    .unwrap_or(0);
                message.truncate(cut);
                message.push('…');
            }
            format!("error ({:?}): {message}", e.kind)
        }
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.chars().take(80).collect(),
        other => other.to_string().chars().take(80).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_marked_fields_are_hashed() {
        let schema = json!({"properties": {"password": {"type": "string", "x-secret": true}, "user": {"type": "string"}}});
        let schema = schema.as_object().cloned().unwrap_or_default();
        let out = redact_by_schema(&json!({"password": "hunter2", "user": "bob"}), &schema);
        assert_eq!(out["user"], "bob");
        let hashed = out["password"].as_str().unwrap_or_default();
        assert!(hashed.starts_with("hmac-sha256:") && !hashed.contains("hunter2"));
        assert_eq!(
            hashed,
            hash_value(&json!("hunter2")),
            "the same value hashes the same"
        );
    }

    #[test]
    fn a_secret_digest_cannot_be_checked_by_hashing_a_guess() {
        let plain: String = Sha256::digest(b"\"hunter2\"")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let shown = hash_value(&json!("hunter2"));
        assert!(!shown.contains(&plain), "{shown} is the unkeyed digest");
        assert_ne!(shown, hash_value(&json!("hunter3")));
    }

    #[test]
    fn large_arguments_are_audited_as_a_summary_within_the_cap() {
        let small = json!({"namespace": "shop", "name": "web"});
        assert_eq!(
            cap_args(small.clone(), 1024),
            small,
            "small ones are kept whole"
        );
        let manifest = "x".repeat(200_000);
        let big = json!({"namespace": "shop", "manifest": manifest, "note": "é".repeat(600)});
        let out = cap_args(big.clone(), 4096);
        let text = out.to_string();
        assert!(text.len() <= 4096, "{} bytes", text.len());
        let s = &out["_audit_summary"];
        assert_eq!(
            s["sha256"],
            json!(args_sha256(&big)),
            "the digest of the whole"
        );
        let full = serde_json::to_string(&big).unwrap_or_default();
        assert_eq!(s["bytes"], json!(full.len()));
        assert_eq!(s["max_args_bytes"], 4096);
        assert_eq!(s["keys"]["manifest"], json!(200_002));
        assert_eq!(s["keys"]["namespace"], json!(6));
        let head = s["head"].as_str().unwrap_or_default();
        assert!(!head.is_empty() && full.starts_with(head), "{head}");
        // Many keys: the list is cut to fit and says how many it left out.
        let many: Map<String, Value> = (0..2_000)
            .map(|i| {
                (
                    format!("key-{i:04}-{}", "k".repeat(80)),
                    json!("v".repeat(100)),
                )
            })
            .collect();
        let out = cap_args(Value::Object(many), 2048);
        assert!(out.to_string().len() <= 2048, "{}", out.to_string().len());
        let omitted = out["_audit_summary"]["keys_omitted"].as_u64().unwrap_or(0);
        assert!(omitted > 1_900, "{omitted}");
        let arr = cap_args(json!(vec!["y".repeat(100); 100]), 1024);
        assert_eq!(arr["_audit_summary"]["items"], 100);
    }

    #[test]
    fn secret_values_are_cut_out_of_results_keeping_their_shape() {
        let schema = json!({"properties": {"token": {"type": "string", "writeOnly": true}, "short": {"type": "string", "x-secret": true}, "user": {"type": "string"}}});
        let schema = schema.as_object().cloned().unwrap_or_default();
        let secrets = secret_values(
            &json!({"token": "s3cr3t-value", "short": "ab", "user": "bob"}),
            &schema,
        );
        assert_eq!(
            secrets,
            vec!["s3cr3t-value".to_string()],
            "only long-enough secret fields"
        );
        let out = redact_secret_values(
            json!({"echo": "set s3cr3t-value for bob", "n": 3, "list": ["s3cr3t-value"]}),
            &secrets,
        );
        let text = out.to_string();
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert_eq!(out["n"], 3);
        assert_eq!(
            out["list"][0],
            json!(hash_value(&json!("s3cr3t-value"))),
            "replaced by the same hash the audit shows"
        );
        assert!(
            out["echo"]
                .as_str()
                .unwrap_or_default()
                .ends_with(" for bob")
        );
    }
}
