//! Server-side apply and `metadata.managedFields` bookkeeping, approximated: field ownership is
//! tracked per manager as a set of paths (serialised as `FieldsV1`), apply merges maps and
//! associative lists, removes fields the manager stopped applying (unless someone else owns
//! them) and reports conflicts with other managers unless `force` is set.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::patch::{item_identity, list_keys};
use super::status::ApiError;
use super::store::now_rfc3339;

type Path = Vec<String>;
type FieldSet = BTreeSet<Path>;

const SKIP_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// The field paths set in `obj` (excluding identity, server-owned metadata and status).
fn field_set(obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let Value::Object(m) = obj else { return out };
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                for (mk, mv) in v.as_object().into_iter().flatten() {
                    if !SKIP_META.contains(&mk.as_str()) {
                        walk(mk, mv, vec!["f:metadata".to_string()], &mut out);
                    }
                }
            }
            _ => walk(k, v, Vec::new(), &mut out),
        }
    }
    out
}

fn walk(field: &str, v: &Value, mut path: Path, out: &mut FieldSet) {
    path.push(format!("f:{field}"));
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                walk(k, c, path.clone(), out);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            match list_keys(field, items.first()) {
                Some(keys) => {
                    for item in items {
                        let mut p = path.clone();
                        p.push(format!(
                            "k:{}",
                            Value::Object(item_identity(item, keys, false))
                        ));
                        out.insert(p.clone());
                        for (k, c) in item.as_object().into_iter().flatten() {
                            walk(k, c, p.clone(), out);
                        }
                    }
                }
                None => {
                    out.insert(path);
                }
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

fn is_element(p: &Path) -> bool {
    p.last().is_some_and(|s| s.starts_with("k:"))
}

fn matches_identity(item: &Value, id: &Map<String, Value>) -> bool {
    id.iter().all(|(k, v)| item.get(k) == Some(v))
}

fn step<'a>(cur: &'a Value, seg: &str) -> Option<&'a Value> {
    if let Some(f) = seg.strip_prefix("f:") {
        return cur.get(f);
    }
    let id: Map<String, Value> = serde_json::from_str(seg.strip_prefix("k:")?).ok()?;
    cur.as_array()?.iter().find(|i| matches_identity(i, &id))
}

fn get_path<'a>(obj: &'a Value, p: &Path) -> Option<&'a Value> {
    p.iter().try_fold(obj, |cur, seg| step(cur, seg))
}

fn remove_path(obj: &mut Value, p: &Path) {
    let Some((last, parents)) = p.split_last() else {
        return;
    };
    let mut cur = obj;
    for seg in parents {
        let next = if let Some(f) = seg.strip_prefix("f:") {
            cur.get_mut(f)
        } else {
            let id: Option<Map<String, Value>> = seg
                .strip_prefix("k:")
                .and_then(|s| serde_json::from_str(s).ok());
            match (cur, id) {
                (Value::Array(a), Some(id)) => a.iter_mut().find(|i| matches_identity(i, &id)),
                _ => None,
            }
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Value::Object(m) = cur {
            m.remove(f);
        }
    } else if let (Value::Array(a), Some(id)) = (
        cur,
        last.strip_prefix("k:")
            .and_then(|s| serde_json::from_str::<Map<String, Value>>(s).ok()),
    ) {
        a.retain(|i| !matches_identity(i, &id));
    }
}

fn insert_path(node: &mut Map<String, Value>, segs: &[String], element: bool) {
    match segs.split_first() {
        None if element => {
            node.insert(".".into(), json!({}));
        }
        None => {}
        Some((first, rest)) => {
            if let Value::Object(m) = node.entry(first.clone()).or_insert_with(|| json!({})) {
                insert_path(m, rest, element);
            }
        }
    }
}

fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for p in set {
        insert_path(&mut root, p, is_element(p));
    }
    Value::Object(root)
}

fn from_fields_v1(v: &Value, path: &mut Path, out: &mut FieldSet) {
    let Some(m) = v.as_object() else { return };
    for (k, child) in m {
        if k == "." {
            out.insert(path.clone());
            continue;
        }
        path.push(k.clone());
        if child.as_object().is_some_and(Map::is_empty) {
            out.insert(path.clone());
        } else {
            from_fields_v1(child, path, out);
        }
        path.pop();
    }
}

struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    set: FieldSet,
}

fn parse_managed(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut set = FieldSet::new();
            if let Some(f) = e.get("fieldsV1") {
                from_fields_v1(f, &mut Vec::new(), &mut set);
            }
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                set,
            }
        })
        .collect()
}

fn write_managed(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.set),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

fn entry_mut<'a>(
    entries: &'a mut Vec<Entry>,
    manager: &str,
    operation: &str,
    api_version: &str,
) -> &'a mut Entry {
    let pos = entries
        .iter()
        .position(|e| e.manager == manager && e.operation == operation && e.subresource.is_none());
    let i = pos.unwrap_or_else(|| {
        entries.push(Entry {
            manager: manager.to_string(),
            operation: operation.to_string(),
            api_version: api_version.to_string(),
            time: String::new(),
            subresource: None,
            set: FieldSet::new(),
        });
        entries.len() - 1
    });
    &mut entries[i]
}

/// Renders a path the way apply conflict messages do: `.spec.containers[name="app"].image`.
fn display_path(p: &Path) -> String {
    p.iter()
        .map(|seg| match seg.strip_prefix("f:") {
            Some(f) => format!(".{f}"),
            None => {
                let id: Map<String, Value> = seg
                    .strip_prefix("k:")
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default();
                let inner: Vec<String> = id.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", inner.join(","))
            }
        })
        .collect()
}

fn apply_merge(base: &mut Value, applied: &Value) {
    let (Value::Object(b), Value::Object(a)) = (&mut *base, applied) else {
        *base = applied.clone();
        return;
    };
    for (k, v) in a {
        if v.is_null() {
            b.remove(k);
            continue;
        }
        let Some(slot) = b.get_mut(k) else {
            b.insert(k.clone(), v.clone());
            continue;
        };
        let keys = v.as_array().and_then(|items| list_keys(k, items.first()));
        match (slot, v, keys) {
            (Value::Array(existing), Value::Array(items), Some(keys))
                if items.iter().all(Value::is_object) =>
            {
                for item in items {
                    let id = item_identity(item, keys, false);
                    match existing.iter_mut().find(|e| matches_identity(e, &id)) {
                        Some(e) => apply_merge(e, item),
                        None => existing.push(item.clone()),
                    }
                }
            }
            (slot @ Value::Object(_), Value::Object(_), _) => apply_merge(slot, v),
            (slot, v, _) => *slot = v.clone(),
        }
    }
}

/// Server-side apply of `applied` onto `current` (or onto nothing, creating) by `manager`.
pub fn server_side_apply(
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
) -> Result<Value, ApiError> {
    let applied_set = field_set(applied);
    let base = current.cloned().unwrap_or_else(|| json!({}));
    let mut entries = parse_managed(&base);
    let is_self = |e: &Entry| e.manager == manager && e.operation == "Apply";

    let mut conflicts: Vec<(String, Path)> = Vec::new();
    for e in entries.iter().filter(|e| !is_self(e)) {
        for p in applied_set
            .iter()
            .filter(|p| !is_element(p) && e.set.contains(*p))
        {
            if get_path(&base, p) != get_path(applied, p) {
                conflicts.push((e.manager.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|(m, p)| {
                    json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {api_version}"), "field": display_path(p)})
                })
                .collect();
            let lines: Vec<String> = conflicts
                .iter()
                .map(|(m, p)| format!("- {m}: {}", display_path(p)))
                .collect();
            let msg = format!(
                "Apply failed with {} conflict{}: conflict with {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                lines.join("\n")
            );
            return Err(ApiError::new(409, "Conflict", msg).with_details(json!({"causes": causes})));
        }
        for e in entries
            .iter_mut()
            .filter(|e| !(e.manager == manager && e.operation == "Apply"))
        {
            for (m, p) in &conflicts {
                if &e.manager == m {
                    e.set.remove(p);
                }
            }
        }
    }

    let mut merged = base;
    apply_merge(&mut merged, applied);

    let previous = entries
        .iter()
        .find(|e| is_self(e))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let removed: Vec<&Path> = previous.difference(&applied_set).collect();
    for p in removed.into_iter().rev() {
        let owned_elsewhere = entries
            .iter()
            .filter(|e| !is_self(e))
            .any(|e| e.set.iter().any(|q| q.starts_with(p)));
        if !owned_elsewhere {
            remove_path(&mut merged, p);
        }
    }
    let e = entry_mut(&mut entries, manager, "Apply", api_version);
    e.set = applied_set;
    e.time = now_rfc3339();
    e.api_version = api_version.to_string();
    write_managed(&mut merged, &entries);
    Ok(merged)
}

/// Records a non-apply write (create, update, patch) by `manager`: it takes ownership of the
/// fields it set or changed, and nobody keeps ownership of fields that no longer exist.
pub fn track_update(old: Option<&Value>, new: &mut Value, manager: &str, api_version: &str) {
    let new_set = field_set(new);
    let mut entries = old.map(parse_managed).unwrap_or_default();
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| match old {
            None => true,
            Some(o) if is_element(p) => get_path(o, p).is_none(),
            Some(o) => get_path(o, p) != get_path(new, p),
        })
        .cloned()
        .collect();
    for e in entries.iter_mut() {
        e.set.retain(|p| new_set.contains(p));
        if !(e.manager == manager && e.operation == "Update") {
            e.set.retain(|p| !changed.contains(p));
        }
    }
    if !changed.is_empty() {
        let e = entry_mut(&mut entries, manager, "Update", api_version);
        e.set.extend(changed);
        e.time = now_rfc3339();
    }
    write_managed(new, &entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "labels": {"app": "d"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
        })
    }

    #[test]
    fn apply_creates_then_merges_and_records_manager() {
        let first = server_side_apply(None, &deploy(1, "a:1"), "kubectl", false, "apps/v1")
            .expect("create");
        assert_eq!(first["spec"]["replicas"], 1);
        let mf = &first["metadata"]["managedFields"][0];
        assert_eq!(mf["manager"], "kubectl");
        assert_eq!(mf["operation"], "Apply");
        assert!(mf["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]["."].is_object());

        let mut second_cfg = deploy(2, "a:2");
        second_cfg["metadata"]["labels"] = json!({});
        let second = server_side_apply(Some(&first), &second_cfg, "kubectl", false, "apps/v1")
            .expect("update");
        assert_eq!(second["spec"]["replicas"], 2);
        assert_eq!(
            second["spec"]["template"]["spec"]["containers"][0]["image"],
            "a:2"
        );
        assert!(
            second["metadata"]["labels"].get("app").is_none(),
            "fields no longer applied are removed"
        );
    }

    #[test]
    fn apply_conflicts_with_other_managers_unless_forced() {
        let mut obj = server_side_apply(None, &deploy(1, "a:1"), "kubectl", false, "apps/v1")
            .expect("create");
        let old = obj.clone();
        obj["spec"]["replicas"] = json!(5);
        track_update(Some(&old), &mut obj, "hpa", "apps/v1");
        let err = server_side_apply(Some(&obj), &deploy(1, "a:1"), "kubectl", false, "apps/v1")
            .expect_err("conflict");
        assert_eq!(err.code, 409);
        assert!(err.message.contains("hpa"), "{}", err.message);
        assert!(err.message.contains(".spec.replicas"), "{}", err.message);
        let forced = server_side_apply(Some(&obj), &deploy(1, "a:1"), "kubectl", true, "apps/v1")
            .expect("forced");
        assert_eq!(forced["spec"]["replicas"], 1);
    }
}
