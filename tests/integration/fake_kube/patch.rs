//! Patch formats: JSON merge patch (RFC 7386), an approximation of strategic merge patch, and
//! JSON patch (RFC 6902). Also the list-key table shared with server-side apply.

use serde_json::{Map, Value};

use super::status::ApiError;

/// Key fields of "associative" lists (list-map keys / strategic merge keys), by field name.
pub fn list_keys(field: &str, sample: Option<&Value>) -> Option<&'static [&'static str]> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => &["name"],
        "volumeMounts" | "volumeDevices" => &["mountPath"],
        "conditions" => &["type"],
        "ownerReferences" => &["uid"],
        "hostAliases" => &["ip"],
        "topologySpreadConstraints" => &["topologyKey", "whenUnsatisfiable"],
        "ports" => {
            if sample.and_then(|s| s.get("containerPort")).is_some() {
                &["containerPort", "protocol"]
            } else {
                &["port", "protocol"]
            }
        }
        _ => return None,
    })
}

/// Primitive lists that strategic merge patch unions instead of replacing.
fn is_merged_primitive_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// The identity of an associative list item: its key fields (only the first key when `first_only`).
pub fn item_identity(item: &Value, keys: &[&str], first_only: bool) -> Map<String, Value> {
    let keys = if first_only { &keys[..1] } else { keys };
    keys.iter()
        .filter_map(|k| item.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect()
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Drops strategic-merge directives from a value being inserted wholesale.
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Strategic merge patch, approximated: maps merge recursively, lists of objects with a known
/// merge key merge item by item, `finalizers` unions, other lists are replaced. Supports the
/// `$patch: replace|delete`, `$retainKeys` and `$deleteFromPrimitiveList/<field>` directives and
/// ignores `$setElementOrder/<field>`.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = strip_directives(patch);
            return;
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        t.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (t.get_mut(field), v) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(_) => strategic_merge(t.entry(k.clone()).or_insert(Value::Null), v),
            Value::Array(items) => {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                merge_list(k, slot, items);
            }
            scalar => {
                t.insert(k.clone(), scalar.clone());
            }
        }
    }
}

fn merge_list(field: &str, slot: &mut Value, items: &[Value]) {
    let keys = list_keys(field, items.first());
    let Value::Array(existing) = slot else {
        *slot = Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        );
        return;
    };
    if let Some(keys) = keys.filter(|_| items.iter().all(Value::is_object)) {
        if items
            .iter()
            .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
        {
            *existing = items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .map(strip_directives)
                .collect();
            return;
        }
        for item in items {
            let id = item_identity(item, keys, true);
            let pos = existing
                .iter()
                .position(|e| item_identity(e, keys, true) == id);
            let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
            match (pos, delete) {
                (Some(i), true) => {
                    existing.remove(i);
                }
                (None, true) => {}
                (Some(i), false) => strategic_merge(&mut existing[i], item),
                (None, false) => existing.push(strip_directives(item)),
            }
        }
    } else if is_merged_primitive_list(field) {
        for item in items {
            if !existing.contains(item) {
                existing.push(item.clone());
            }
        }
    } else {
        *existing = items.iter().map(strip_directives).collect();
    }
}

fn pointer_tokens(path: &str) -> Result<Vec<String>, ApiError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| ApiError::bad_request(format!("invalid JSON pointer {path:?}")))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn parent_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Result<&'a mut Value, ApiError> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::new(
                422,
                "Invalid",
                format!("jsonpatch: path component {t:?} not found"),
            )
        })?;
    }
    Ok(cur)
}

fn json_patch_remove(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let tokens = pointer_tokens(path)?;
    let (last, parents) = tokens
        .split_last()
        .ok_or_else(|| ApiError::bad_request("jsonpatch: cannot remove root"))?;
    let missing = || {
        ApiError::new(
            422,
            "Invalid",
            format!("jsonpatch remove operation does not apply: doc is missing path: {path:?}"),
        )
    };
    match parent_mut(doc, parents)? {
        Value::Object(m) => m.remove(last).ok_or_else(missing),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(missing()),
        },
        _ => Err(missing()),
    }
}

fn json_patch_add(
    doc: &mut Value,
    path: &str,
    value: Value,
    replace: bool,
) -> Result<(), ApiError> {
    let tokens = pointer_tokens(path)?;
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    let missing = || {
        ApiError::new(
            422,
            "Invalid",
            format!("jsonpatch: doc is missing path: {path:?}"),
        )
    };
    match parent_mut(doc, parents)? {
        Value::Object(m) => {
            if replace && !m.contains_key(last) {
                return Err(missing());
            }
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            if last == "-" && !replace {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| missing())?;
                if replace && i < a.len() {
                    a[i] = value;
                } else if !replace && i <= a.len() {
                    a.insert(i, value);
                } else {
                    return Err(missing());
                }
            }
        }
        _ => return Err(missing()),
    }
    Ok(())
}

/// RFC 6902 JSON patch.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), ApiError> {
    let ops = ops
        .as_array()
        .ok_or_else(|| ApiError::bad_request("json patch must be an array of operations"))?;
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        let value = || {
            op.get("value").cloned().ok_or_else(|| {
                ApiError::bad_request(format!("jsonpatch {kind} operation has no value"))
            })
        };
        let from = || {
            op.get("from").and_then(Value::as_str).ok_or_else(|| {
                ApiError::bad_request(format!("jsonpatch {kind} operation has no from"))
            })
        };
        match kind {
            "add" => json_patch_add(doc, path, value()?, false)?,
            "replace" => json_patch_add(doc, path, value()?, true)?,
            "remove" => {
                json_patch_remove(doc, path)?;
            }
            "move" => {
                let v = json_patch_remove(doc, from()?)?;
                json_patch_add(doc, path, v, false)?;
            }
            "copy" => {
                let tokens = pointer_tokens(from()?)?;
                let v = parent_mut(doc, &tokens)?.clone();
                json_patch_add(doc, path, v, false)?;
            }
            "test" => {
                let tokens = pointer_tokens(path)?;
                if *parent_mut(doc, &tokens)? != value()? {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "jsonpatch test operation does not apply: doc is not equal to value at {path:?}"
                        ),
                    ));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unexpected jsonpatch operation {other:?}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut doc = json!({"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}], "tolerations": [{"key": "x"}]}});
        strategic_merge(
            &mut doc,
            &json!({"$setElementOrder/containers": [{"name": "a"}], "spec": {"containers": [{"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}], "tolerations": [{"key": "y"}]}}),
        );
        assert_eq!(
            doc["spec"]["containers"],
            json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}])
        );
        assert_eq!(doc["spec"]["tolerations"], json!([{"key": "y"}]));
        strategic_merge(
            &mut doc,
            &json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
        );
        assert_eq!(doc["spec"]["containers"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn json_patch_ops() {
        let mut doc = json!({"spec": {"replicas": 1, "list": ["a"]}});
        json_patch(
            &mut doc,
            &json!([
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "add", "path": "/spec/list/-", "value": "b"},
                {"op": "add", "path": "/metadata", "value": {"labels": {"a/b": "c"}}},
                {"op": "test", "path": "/metadata/labels/a~1b", "value": "c"},
                {"op": "remove", "path": "/spec/list/0"},
            ]),
        )
        .expect("patch applies");
        assert_eq!(
            doc,
            json!({"spec": {"replicas": 3, "list": ["b"]}, "metadata": {"labels": {"a/b": "c"}}})
        );
        assert!(
            json_patch(
                &mut doc,
                &json!([{"op": "replace", "path": "/nope", "value": 1}])
            )
            .is_err()
        );
    }
}
