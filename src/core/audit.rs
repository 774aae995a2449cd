//! Audit records: what the core appends for every decision. Argument fields marked secret in a
//! tool's input schema (`"x-secret": true` or `"writeOnly": true`) are replaced by their hash;
//! a tool may redact further (e.g. Secret data inside a manifest).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::core::principal::Principal;
use crate::store::{AuditEntry, now_ms};

/// `sha256:<hex>` of a value's JSON.
pub fn hash_value(value: &Value) -> String {
    let digest = Sha256::digest(serde_json::to_vec(value).unwrap_or_default());
    format!(
        "sha256:{}",
        digest
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
    let props = input_schema.get("properties").and_then(Value::as_object);
    let secret = |key: &str| {
        props.and_then(|p| p.get(key)).is_some_and(|s| {
            s.get("x-secret") == Some(&Value::Bool(true))
                || s.get("writeOnly") == Some(&Value::Bool(true))
        })
    };
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

/// A short, secret-free summary of a result for the audit trail.
pub fn summarize(result: &Result<Value, crate::core::error::ToolError>) -> String {
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
        assert!(hashed.starts_with("sha256:") && !hashed.contains("hunter2"));
        assert_eq!(
            hashed,
            hash_value(&json!("hunter2")),
            "the same value hashes the same"
        );
    }
}
