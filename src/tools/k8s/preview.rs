//! Shared pieces of the write tools' approval previews: objects rendered as YAML without the
//! fields that change on every write, unified diffs, metadata-only listing, label selectors,
//! and Secret values scrubbed from API error messages. A preview is shown to humans and
//! stored: it goes through the same redaction as tool output ([`sanitize`]) and never carries
//! a Secret value.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use similar::TextDiff;

use super::redact::{LAST_APPLIED, is_secret, sanitize};
use super::target::Scope;
use crate::adapters::kube::ListQuery;
use crate::core::error::ToolError;

/// Largest diff kept in a preview; longer ones are cut at a line boundary with a note.
pub const DIFF_CAP: usize = 64 * 1024;
/// Longest time spent computing one diff (Myers falls back to a coarser diff after it).
const DIFF_TIMEOUT: Duration = Duration::from_millis(500);
/// Page size and page count of the lists a preview walks (counting pods, finding dependents).
pub const PAGE: u32 = 500;
pub const MAX_PAGES: usize = 20;
/// Secret values shorter than this are not scrubbed from error messages (a 2-byte value
/// would mangle every message).
const MIN_SCRUB_LEN: usize = 4;

/// Metadata that changes on every write (or is server bookkeeping) and says nothing to an
/// approver.
const NOISY_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
];

/// An object as approvers see it in a diff: Secrets redacted (key names and sizes), and no
/// managedFields, resourceVersion, uid, creationTimestamp, generation, status or
/// last-applied annotation.
pub fn for_diff(obj: &Value) -> Value {
    let mut v = obj.clone();
    sanitize(&mut v);
    if let Value::Object(map) = &mut v {
        map.remove("status");
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for k in NOISY_METADATA {
                meta.remove(*k);
            }
            let drop_annotations = match meta.get_mut("annotations") {
                Some(Value::Object(a)) => {
                    a.remove(LAST_APPLIED);
                    a.is_empty()
                }
                _ => false,
            };
            if drop_annotations {
                meta.remove("annotations");
            }
        }
    }
    v
}

/// YAML of a value; the empty string for `null` (an object that does not exist).
pub fn to_yaml(v: &Value) -> Result<String, ToolError> {
    if v.is_null() {
        return Ok(String::new());
    }
    serde_yaml::to_string(v).map_err(|e| ToolError::internal(format!("cannot render YAML: {e}")))
}

/// Unified diff of two texts with three lines of context, `None` when they are equal.
pub fn unified_diff(before: &str, after: &str, old_label: &str, new_label: &str) -> Option<String> {
    if before == after {
        return None;
    }
    let diff = TextDiff::configure()
        .timeout(DIFF_TIMEOUT)
        .diff_lines(before, after);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string();
    if text.trim().is_empty() {
        None
    } else {
        Some(text)
    }
}

/// Lines a unified diff adds or removes (headers not counted).
pub fn changed_lines(diff: &str) -> usize {
    diff.lines()
        .filter(|l| {
            (l.starts_with('+') && !l.starts_with("+++"))
                || (l.starts_with('-') && !l.starts_with("---"))
        })
        .count()
}

/// Cut a diff to [`DIFF_CAP`] bytes at a line boundary, saying so.
pub fn cap_diff(diff: String) -> String {
    if diff.len() <= DIFF_CAP {
        return diff;
    }
    let mut end = DIFF_CAP;
    while !diff.is_char_boundary(end) {
        end -= 1;
    }
    let cut = diff[..end].rfind('\n').map(|i| i + 1).unwrap_or(end);
    let mut out = diff[..cut].to_string();
    out.push_str(&format!(
        "… diff cut at {} KiB of {} KiB\n",
        DIFF_CAP / 1024,
        diff.len().div_ceil(1024)
    ));
    out
}

/// `deployment/shop/web` (namespaced) or `namespace/shop` (cluster-scoped).
pub fn object_key(singular: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{singular}/{ns}/{name}"),
        None => format!("{singular}/{name}"),
    }
}

/// `deployment shop/web` or `namespace shop` (for summaries).
pub fn object_label(singular: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{singular} {ns}/{name}"),
        None => format!("{singular} {name}"),
    }
}

/// `1 pod`, `3 pods`.
pub fn count_of(n: usize, singular: &str, plural: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {plural}")
    }
}

/// A command line as a human would type it: arguments with spaces or shell characters quoted.
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars().all(|c| {
                    c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c) || !c.is_ascii()
                });
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// At most `max` characters of `text`, with `…` when cut.
pub fn ellipsis(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max).collect();
        s.push('…');
        s
    }
}

/// A label selector (`matchLabels` and `matchExpressions`) in the API's query syntax;
/// `None` when it is absent or uses an operator this does not know.
pub fn selector_query(selector: &Value) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(Value::Object(labels)) = selector.get("matchLabels") {
        for (k, v) in labels {
            parts.push(format!("{k}={}", v.as_str()?));
        }
    }
    if let Some(Value::Array(exprs)) = selector.get("matchExpressions") {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str)?;
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|vs| vs.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e.get("operator").and_then(Value::as_str)? {
                "In" => parts.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => return None,
            }
        }
    }
    if selector.is_object() {
        Some(parts.join(","))
    } else {
        None
    }
}

/// Every item of a collection (full objects, or metadata only when `query` says so),
/// following `continue` for at most [`MAX_PAGES`] pages. The flag tells whether more items
/// were left unread.
pub async fn list_all(t: &Scope, query: &ListQuery) -> Result<(Vec<Value>, bool), ToolError> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut page = query.clone().limit(PAGE);
        if let Some(c) = token.take() {
            page.continue_token = Some(c);
        }
        let list = t.list(&page).await?;
        if let Some(Value::Array(page_items)) = list.get("items") {
            items.extend(page_items.iter().cloned());
        }
        token = list
            .pointer("/metadata/continue")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(String::from);
        if token.is_none() {
            return Ok((items, false));
        }
    }
    Ok((items, true))
}

/// Secret values (raw and base64) found in Secret objects, for [`scrub`].
pub fn secret_values<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Vec<String> {
    let mut out = BTreeSet::new();
    for obj in objects {
        if !looks_like_secret(obj) {
            continue;
        }
        for field in ["data", "stringData"] {
            if let Some(Value::Object(data)) = obj.get(field) {
                for v in data.values().filter_map(Value::as_str) {
                    out.insert(v.to_string());
                    if field == "data" {
                        if let Ok(bytes) = STANDARD.decode(v)
                            && let Ok(text) = String::from_utf8(bytes)
                        {
                            out.insert(text);
                        }
                    } else {
                        out.insert(STANDARD.encode(v));
                    }
                }
            }
        }
        if let Some(last) = obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(LAST_APPLIED))
            .and_then(Value::as_str)
            && let Ok(copy) = serde_json::from_str::<Value>(last)
            && copy.is_object()
        {
            let mut copy = copy;
            copy["kind"] = json!("Secret");
            out.extend(secret_values([&copy]));
        }
    }
    out.into_iter()
        .filter(|s| s.trim().len() >= MIN_SCRUB_LEN)
        .collect()
}

/// A Secret by its kind, however a manifest spells it (`Secret`, `secret`, `secrets`).
pub fn looks_like_secret(obj: &Value) -> bool {
    is_secret(obj)
        || obj
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(secret_spelling)
}

/// Whether discovery could resolve `kind` to Secret: any case, spaces around it, plural, and
/// any `.version.group` suffix (` Secret`, `secrets.`, `Secrets.v1.`). Deliberately wider than
/// discovery (a CRD kind `secrets.example.com` counts too): hiding a value is the safe error.
fn secret_spelling(kind: &str) -> bool {
    let kind = kind.trim().to_ascii_lowercase();
    let name = kind.split('.').next().unwrap_or_default().trim();
    matches!(name, "secret" | "secrets")
}

/// `text` with any of `secrets` replaced by `[redacted]`: for API error messages, which may
/// quote what was sent. (Diffs and details are built from redacted objects; scrubbing them too
/// would blank out every coincidental occurrence of a short value such as `admin`.)
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "[redacted]");
        }
    }
    out
}

/// A Secret's values by key (`data` decoded, `stringData` as bytes; `stringData` wins as on
/// the API server).
fn secret_bytes(obj: &Value) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(data)) = obj.get("data") {
        for (k, v) in data {
            let bytes = v
                .as_str()
                .and_then(|s| STANDARD.decode(s).ok())
                .unwrap_or_default();
            out.insert(k.clone(), bytes);
        }
    }
    if let Some(Value::Object(data)) = obj.get("stringData") {
        for (k, v) in data {
            out.insert(
                k.clone(),
                v.as_str().unwrap_or_default().as_bytes().to_vec(),
            );
        }
    }
    out
}

/// In a redacted Secret (`data_keys: [{name, bytes}]`), mark the keys whose value differs
/// between `live` and `after` with `changed: true`, so approvers see that a value changes
/// without seeing it; keys only in `live` are listed as `removed`.
pub fn mark_secret_changes(redacted_after: &mut Value, live: Option<&Value>, after: &Value) {
    let Some(live) = live else { return };
    if !looks_like_secret(after) {
        return;
    }
    let old = secret_bytes(live);
    let new = secret_bytes(after);
    let Value::Object(obj) = redacted_after else {
        return;
    };
    if let Some(Value::Array(keys)) = obj.get_mut("data_keys") {
        for entry in keys.iter_mut() {
            let Some(name) = entry.get("name").and_then(Value::as_str).map(String::from) else {
                continue;
            };
            if old.get(&name) != new.get(&name)
                && let Value::Object(e) = entry
            {
                e.insert("changed".into(), Value::Bool(true));
            }
        }
    }
    let removed: Vec<Value> = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .map(|k| Value::String(k.clone()))
        .collect();
    if !removed.is_empty() {
        obj.insert("removed_keys".into(), Value::Array(removed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_for_diff_lose_bookkeeping_and_secret_values() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "shop", "uid": "u", "resourceVersion": "7",
                "creationTimestamp": "2024-01-01T00:00:00Z", "generation": 2, "managedFields": [],
                "annotations": {LAST_APPLIED: "{\"data\":{\"password\":\"aHVudGVyMg==\"}}"}},
            "data": {"password": "aHVudGVyMg=="},
            "status": {"x": 1}
        });
        let clean = for_diff(&obj);
        let text = to_yaml(&clean).expect("yaml");
        assert!(!text.contains("aHVudGVyMg=="), "{text}");
        for noise in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "status",
            "annotations",
        ] {
            assert!(!text.contains(noise), "{noise} kept: {text}");
        }
        assert!(
            text.contains("name: password") && text.contains("bytes: 7"),
            "{text}"
        );
        assert_eq!(to_yaml(&Value::Null).expect("yaml"), "");
    }

    #[test]
    fn diffs_count_and_cap() {
        let d =
            unified_diff("a: 1\nb: 2\n", "a: 1\nb: 3\n", "live", "after apply").expect("differs");
        assert!(d.starts_with("--- live\n+++ after apply\n"), "{d}");
        assert!(d.contains("-b: 2\n+b: 3\n"), "{d}");
        assert_eq!(changed_lines(&d), 2);
        assert!(unified_diff("x\n", "x\n", "a", "b").is_none());
        let long = "+line of text\n".repeat(DIFF_CAP / 8);
        let cut = cap_diff(long);
        assert!(
            cut.len() < DIFF_CAP + 100 && cut.ends_with("KiB\n"),
            "{}",
            cut.len()
        );
    }

    #[test]
    fn selectors_and_commands_render() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"}]});
        assert_eq!(
            selector_query(&sel).as_deref(),
            Some("app=web,tier in (a,b),!canary")
        );
        assert_eq!(
            selector_query(&json!({"matchExpressions": [{"key": "a", "operator": "Weird"}]})),
            None
        );
        assert_eq!(selector_query(&Value::Null), None);
        let argv: Vec<String> = ["sh", "-c", "cat /x; echo 'hi'"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(shell_line(&argv), r#"sh -c 'cat /x; echo '\''hi'\'''"#);
        assert_eq!(count_of(1, "pod", "pods"), "1 pod");
        assert_eq!(count_of(0, "pod", "pods"), "0 pods");
    }

    #[test]
    fn every_spelling_discovery_reads_as_secret_is_a_secret() {
        for kind in [
            "Secret",
            "secret",
            "SECRETS",
            " Secret",
            "Secret ",
            "Secret.",
            "secrets.",
            "secrets.v1.",
            "Secret.v1.",
            "\tsecret\n",
        ] {
            assert!(looks_like_secret(&json!({"kind": kind})), "{kind:?}");
        }
        for kind in ["ConfigMap", "SecretStore", "sealedsecrets", "", "secretsx"] {
            assert!(!looks_like_secret(&json!({"kind": kind})), "{kind:?}");
        }
    }

    #[test]
    fn secret_values_are_scrubbed_and_changes_marked() {
        let live = json!({"kind": "Secret", "data": {"a": STANDARD.encode("hunter22"), "b": STANDARD.encode("same-value")}});
        let after =
            json!({"kind": "secret", "stringData": {"a": "sk_live_123", "b": "same-value"}});
        let values = secret_values([&live, &after]);
        for v in ["hunter22", "sk_live_123", "same-value"] {
            assert!(values.contains(&v.to_string()), "{values:?}");
        }
        let text = scrub(
            "Secret \"api\" is invalid: bad value sk_live_123 (was hunter22)",
            &values,
        );
        assert_eq!(
            text,
            "Secret \"api\" is invalid: bad value [redacted] (was [redacted])"
        );
        let mut redacted = json!({"kind": "Secret", "data_keys": [{"name": "a", "bytes": 11}, {"name": "b", "bytes": 10}]});
        mark_secret_changes(&mut redacted, Some(&live), &after);
        assert_eq!(redacted["data_keys"][0]["changed"], true);
        assert!(redacted["data_keys"][1].get("changed").is_none());
    }
}
