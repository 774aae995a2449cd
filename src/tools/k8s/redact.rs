//! What no k8s tool may hand to a model: Secret values (`data`, `stringData`, and the
//! last-applied annotation that copies them), and the `managedFields` noise. Every object or
//! list a k8s tool returns goes through [`sanitize`] first.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

/// kubectl's copy of the applied manifest; on a Secret it holds the values.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Strip `managedFields` and redact Secrets in an object, a typed list (`SecretList`, whose
/// items carry no `kind`) or a generic `List`, at any depth of nested lists.
pub fn sanitize(value: &mut Value) {
    sanitize_as(value, None);
}

/// Same as [`sanitize`] for an object known to be of `kind` even if it does not say so
/// (items of a typed list response).
pub fn sanitize_as(value: &mut Value, implied_kind: Option<&str>) {
    let Value::Object(obj) = value else { return };
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| implied_kind.map(str::to_string));
    if let Some(Value::Array(items)) = obj.get_mut("items") {
        // `SecretList` → items are Secrets; `List` → each item names its own kind.
        let item_kind = kind
            .as_deref()
            .and_then(|k| k.strip_suffix("List"))
            .filter(|k| !k.is_empty());
        for item in items.iter_mut() {
            sanitize_as(item, item_kind);
        }
    }
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.remove("managedFields");
    }
    if kind.as_deref() == Some("Secret") {
        redact_secret(obj);
    }
}

/// Whether an object is a Secret (by its own `kind`).
pub fn is_secret(value: &Value) -> bool {
    value.get("kind").and_then(Value::as_str) == Some("Secret")
}

/// Replace `data`/`stringData` by `data_keys: [{name, bytes}]` and drop the last-applied copy.
fn redact_secret(obj: &mut Map<String, Value>) {
    let mut keys: Vec<(String, Option<usize>)> = Vec::new();
    if let Some(Value::Object(data)) = obj.remove("data") {
        for (name, v) in data {
            let bytes = v
                .as_str()
                .and_then(|s| STANDARD.decode(s).ok())
                .map(|d| d.len());
            keys.push((name, bytes));
        }
    }
    if let Some(Value::Object(data)) = obj.remove("stringData") {
        // The API server writes stringData over data: its value is the one that counts.
        for (name, v) in data {
            let bytes = v.as_str().map(str::len);
            match keys.iter_mut().find(|(k, _)| k == &name) {
                Some(entry) => entry.1 = bytes,
                None => keys.push((name, bytes)),
            }
        }
    }
    keys.sort();
    if !keys.is_empty() {
        let list: Vec<Value> = keys
            .into_iter()
            .map(|(name, bytes)| json!({"name": name, "bytes": bytes}))
            .collect();
        obj.insert("data_keys".into(), Value::Array(list));
    }
    if let Some(Value::Object(meta)) = obj.get_mut("metadata")
        && let Some(Value::Object(annotations)) = meta.get_mut("annotations")
    {
        annotations.remove(LAST_APPLIED);
    }
}

/// Key names and sizes of a Secret's or ConfigMap's `data` (for describe).
pub fn data_keys(obj: &Value) -> Vec<Value> {
    let mut out: Vec<(String, Option<usize>)> = Vec::new();
    let secret = is_secret(obj);
    for field in ["data", "stringData", "binaryData"] {
        if let Some(Value::Object(data)) = obj.get(field) {
            for (name, v) in data {
                let base64 = field == "binaryData" || (secret && field == "data");
                let bytes = v.as_str().and_then(|s| {
                    if base64 {
                        STANDARD.decode(s).ok().map(|d| d.len())
                    } else {
                        Some(s.len())
                    }
                });
                out.push((name.clone(), bytes));
            }
        }
    }
    out.sort();
    out.into_iter()
        .map(|(name, bytes)| json!({"name": name, "bytes": bytes}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "prod", "managedFields": [{"manager": "kubectl"}],
                "annotations": {LAST_APPLIED: "{\"data\":{\"password\":\"aHVudGVyMg==\"}}", "team": "payments"}},
            "type": "Opaque",
            "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="},
            "stringData": {"token": "s3cr3t-token"}
        })
    }

    fn assert_no_secret_values(v: &Value) {
        let text = v.to_string();
        for needle in [
            "aHVudGVyMg==",
            "YWRtaW4=",
            "s3cr3t-token",
            "hunter2",
            "managedFields",
            LAST_APPLIED,
        ] {
            assert!(!text.contains(needle), "{needle} leaked: {text}");
        }
    }

    #[test]
    fn a_secret_keeps_key_names_and_sizes_only() {
        let mut s = secret();
        sanitize(&mut s);
        assert_no_secret_values(&s);
        assert_eq!(
            s["data_keys"],
            json!([{"name": "password", "bytes": 7}, {"name": "token", "bytes": 12}, {"name": "user", "bytes": 5}])
        );
        assert_eq!(s["metadata"]["annotations"]["team"], "payments");
        assert_eq!(s["type"], "Opaque");
    }

    #[test]
    fn typed_secret_lists_are_redacted_although_items_carry_no_kind() {
        let mut item = secret();
        if let Value::Object(m) = &mut item {
            m.remove("kind");
            m.remove("apiVersion");
        }
        let mut list = json!({"kind": "SecretList", "apiVersion": "v1", "items": [item]});
        sanitize(&mut list);
        assert_no_secret_values(&list);
        assert_eq!(list["items"][0]["data_keys"][0]["name"], "password");
    }

    #[test]
    fn generic_and_nested_lists_are_redacted() {
        let mut list = json!({"kind": "List", "apiVersion": "v1", "items": [
            {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c", "managedFields": []}, "data": {"k": "visible"}},
            secret(),
            {"kind": "List", "items": [secret()]}
        ]});
        sanitize(&mut list);
        assert_no_secret_values(&list);
        assert_eq!(list["items"][0]["data"]["k"], "visible");
        assert!(list["items"][2]["items"][0]["data_keys"].is_array());
    }

    #[test]
    fn other_kinds_only_lose_managed_fields() {
        let mut cm = json!({"kind": "ConfigMap", "metadata": {"name": "c", "managedFields": [1],
            "annotations": {LAST_APPLIED: "{}"}}, "data": {"a": "b"}});
        sanitize(&mut cm);
        assert!(cm["metadata"].get("managedFields").is_none());
        assert_eq!(cm["metadata"]["annotations"][LAST_APPLIED], "{}");
        assert_eq!(cm["data"]["a"], "b");
    }

    #[test]
    fn data_keys_of_secrets_and_config_maps() {
        assert_eq!(
            data_keys(&secret())[0],
            json!({"name": "password", "bytes": 7})
        );
        let cm = json!({"kind": "ConfigMap", "data": {"app.yaml": "abc"}, "binaryData": {"bin": "AAEC"}});
        assert_eq!(
            data_keys(&cm),
            vec![
                json!({"name": "app.yaml", "bytes": 3}),
                json!({"name": "bin", "bytes": 3})
            ]
        );
    }
}
