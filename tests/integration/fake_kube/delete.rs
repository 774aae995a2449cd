//! Deletes: propagation (Foreground, Background, Orphan) through ownerReferences, finalizers,
//! namespace cleanup, preconditions, `dryRun=All` and deletecollection.

use serde_json::{Value, json};

use super::handlers::{Target, selectors, typed};
use super::registry::ResourceType;
use super::status::{ApiError, ApiResult, json_response};
use super::store::{Inner, meta_str, now_rfc3339};
use super::{Req, Shared};

/// Keys of objects that list `uid` among their ownerReferences.
fn dependents(inner: &Inner, uid: &str) -> Vec<(&'static ResourceType, String, String)> {
    inner.keys_where(|_, o| {
        o.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| {
                refs.iter()
                    .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
            })
    })
}

fn has_finalizers(o: &Value) -> bool {
    o.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// Marks an object as being deleted (it has finalizers) and stores it.
fn mark_deleting(inner: &mut Inner, rt: &'static ResourceType, mut o: Value) -> Value {
    if o.pointer("/metadata/deletionTimestamp").is_none() {
        o["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        o["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    }
    inner.put(rt, o)
}

/// Removes an object now and garbage-collects what it owns (`Orphan` strips owner references
/// instead); deleting a namespace deletes everything in it.
pub fn delete_now(
    inner: &mut Inner,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    policy: &str,
) -> Option<Value> {
    let obj = inner.remove(rt, ns, name)?;
    let uid = meta_str(&obj, "uid").to_string();
    if rt.kind == "Namespace" {
        for (r, ns, n) in inner.keys_where(|r, o| r.namespaced && meta_str(o, "namespace") == name)
        {
            delete_now(inner, r, &ns, &n, "Background");
        }
        inner.logs.retain(|(lns, ..), _| lns != name);
    }
    for (drt, dns, dname) in dependents(inner, &uid) {
        let Some(dep) = inner.get(drt, &dns, &dname).cloned() else {
            continue;
        };
        if policy == "Orphan" {
            let mut dep = dep;
            if let Some(refs) = dep
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
            }
            inner.put(drt, dep);
        } else if has_finalizers(&dep) {
            mark_deleting(inner, drt, dep);
        } else {
            delete_now(inner, drt, &dns, &dname, policy);
        }
    }
    Some(obj)
}

/// `DeleteOptions` from the body merged with query parameters.
fn delete_options(req: &Req) -> Result<Value, ApiError> {
    let mut opts = if req.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    if !opts.is_object() {
        return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
    }
    if let Some(p) = req.params.get("propagationPolicy") {
        opts["propagationPolicy"] = json!(p);
    }
    if req.params.dry_run() {
        opts["dryRun"] = json!(["All"]);
    }
    if let Some(g) = req
        .params
        .get("gracePeriodSeconds")
        .and_then(|g| g.parse::<i64>().ok())
    {
        opts["gracePeriodSeconds"] = json!(g);
    }
    Ok(opts)
}

fn policy_of(opts: &Value) -> Result<String, ApiError> {
    let policy = match opts.get("propagationPolicy").and_then(Value::as_str) {
        Some(p) => p.to_string(),
        None if opts.get("orphanDependents") == Some(&json!(true)) => "Orphan".into(),
        None => "Background".into(),
    };
    if !matches!(policy.as_str(), "Foreground" | "Background" | "Orphan") {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{policy}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            ),
        ));
    }
    Ok(policy)
}

fn deleted_response(rt: &ResourceType, obj: &Value, policy: &str) -> Value {
    let mut o = typed(rt, obj);
    if o.pointer("/metadata/deletionTimestamp").is_none()
        && (rt.kind == "Pod" || policy == "Foreground" || rt.kind == "Namespace")
    {
        o["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
    }
    match (rt.kind, policy) {
        ("Namespace", _) => {
            o["status"]["phase"] = json!("Terminating");
            o
        }
        ("Pod", _) => {
            o["metadata"]["deletionGracePeriodSeconds"] = json!(30);
            o
        }
        (_, "Foreground") => {
            o["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
            o
        }
        _ if !rt.is_builtin() => o,
        _ => {
            let mut details = json!({"name": meta_str(obj, "name"), "kind": rt.plural, "uid": meta_str(obj, "uid")});
            if !rt.group.is_empty() {
                details["group"] = json!(rt.group);
            }
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
        }
    }
}

pub fn delete(shared: &Shared, t: &Target, req: &Req) -> ApiResult {
    let opts = delete_options(req)?;
    let policy = policy_of(&opts)?;
    let dry_run = opts
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|x| x == "All"));
    let mut inner = shared.lock();
    let obj = inner
        .get(t.rt, t.ns(), t.name())
        .cloned()
        .ok_or_else(|| ApiError::not_found(t.rt, t.name()))?;
    if let Some(pre) = opts.get("preconditions") {
        for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            if let Some(want) = pre.get(field).and_then(Value::as_str)
                && want != meta_str(&obj, field)
            {
                return Err(ApiError::conflict(
                    t.rt,
                    t.name(),
                    &format!(
                        "Precondition failed: {label} in precondition: {want}, {label} in object meta: {}",
                        meta_str(&obj, field)
                    ),
                ));
            }
        }
    }
    if dry_run {
        return Ok(json_response(200, &deleted_response(t.rt, &obj, &policy)));
    }
    if has_finalizers(&obj) {
        let marked = mark_deleting(&mut inner, t.rt, obj);
        return Ok(json_response(200, &typed(t.rt, &marked)));
    }
    let gone = delete_now(&mut inner, t.rt, t.ns(), t.name(), &policy).unwrap_or(obj);
    Ok(json_response(200, &deleted_response(t.rt, &gone, &policy)))
}

pub fn delete_collection(shared: &Shared, t: &Target, req: &Req) -> ApiResult {
    if !t.rt.verbs.contains(&"deletecollection") {
        return Err(ApiError::method_not_allowed());
    }
    let (labels, fields) = selectors(t.rt, req)?;
    let opts = delete_options(req)?;
    let policy = policy_of(&opts)?;
    let dry_run = req.params.dry_run();
    let mut inner = shared.lock();
    let victims: Vec<Value> = inner
        .list(t.rt, t.ns.as_deref())
        .into_iter()
        .filter(|o| labels.matches_object(o) && fields.matches(o))
        .cloned()
        .collect();
    let mut items = Vec::new();
    for o in victims {
        if !dry_run {
            if has_finalizers(&o) {
                mark_deleting(&mut inner, t.rt, o.clone());
            } else {
                delete_now(
                    &mut inner,
                    t.rt,
                    meta_str(&o, "namespace"),
                    meta_str(&o, "name"),
                    &policy,
                );
            }
        }
        items.push(o);
    }
    let rv = inner.current_rv();
    Ok(json_response(
        200,
        &json!({"kind": t.rt.list_kind(), "apiVersion": t.rt.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
    ))
}
