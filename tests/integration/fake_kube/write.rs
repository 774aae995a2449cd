//! Writes: create, update, patch (merge, strategic, JSON patch, server-side apply), including
//! the status and scale subresources and `dryRun=All`.

use axum::body::Bytes;
use serde_json::{Value, json};

use super::apply::{server_side_apply, track_update};
use super::delete::delete_now;
use super::handlers::{Target, typed};
use super::lifecycle;
use super::patch::{json_patch, merge_patch, strategic_merge};
use super::registry::ResourceType;
use super::status::{ApiError, ApiResult, json_response};
use super::store::{Inner, meta_str, now_rfc3339};
use super::{Req, Shared};

fn parse_body(req: &Req) -> Result<Value, ApiError> {
    parse_bytes(&req.body, &req.content_type)
}

fn parse_bytes(body: &Bytes, content_type: &str) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type:?})"
            ),
        ));
    }
    let v: Value = if content_type.contains("yaml") {
        serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))?
    };
    if !v.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    Ok(v)
}

fn field_manager(req: &Req) -> String {
    if let Some(m) = req.params.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let ua = req.user_agent.split('/').next().unwrap_or("");
    if ua.is_empty() {
        "unknown".into()
    } else {
        ua.to_string()
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn validate_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::invalid(
            rt,
            name,
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    }
    let label_only = matches!(rt.kind, "Namespace" | "Service");
    let ok = if label_only {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    };
    if !ok {
        let what = if label_only {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        };
        return Err(ApiError::invalid(
            rt,
            name,
            "metadata.name",
            &format!("Invalid value: \"{name}\": {what}"),
        ));
    }
    Ok(())
}

/// Rejects bodies whose well-known fields have the wrong JSON type (what the real server fails
/// to decode), so later code can index into them safely.
fn check_shape(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let bad = |field: &str, want: &str| {
        Err(ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: json: cannot unmarshal {field} into a {want}",
            kind = rt.kind,
            v = rt.version
        )))
    };
    let Some(top) = obj.as_object() else {
        return bad("the body", "object");
    };
    for field in ["metadata", "spec", "status", "data"] {
        if top
            .get(field)
            .is_some_and(|v| !v.is_object() && !v.is_null())
        {
            return bad(field, "object");
        }
    }
    let meta = top.get("metadata");
    for field in ["labels", "annotations"] {
        let value = meta.and_then(|m| m.get(field)).filter(|v| !v.is_null());
        if value.is_some_and(|m| {
            !m.as_object()
                .is_some_and(|m| m.values().all(Value::is_string))
        }) {
            return bad(&format!("metadata.{field}"), "map of strings");
        }
    }
    for field in ["ownerReferences", "finalizers", "managedFields"] {
        if meta
            .and_then(|m| m.get(field))
            .is_some_and(|v| !v.is_array() && !v.is_null())
        {
            return bad(&format!("metadata.{field}"), "list");
        }
    }
    for (ptr, field) in [
        ("/spec/ports", "spec.ports"),
        ("/spec/containers", "spec.containers"),
        (
            "/spec/template/spec/containers",
            "spec.template.spec.containers",
        ),
    ] {
        if obj
            .pointer(ptr)
            .is_some_and(|v| !v.as_array().is_some_and(|a| a.iter().all(Value::is_object)))
        {
            return bad(field, "list of objects");
        }
    }
    Ok(())
}

/// Checks `apiVersion`/`kind` of a request body against the URL's resource type.
fn check_type(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or(rt.kind);
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .map_or_else(|| rt.api_version(), str::to_string);
    if kind != rt.kind || api_version != rt.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({}), or kind {kind} is not {}",
            rt.api_version(),
            rt.kind
        )));
    }
    Ok(())
}

/// Puts the URL namespace on the object, rejecting a mismatching one.
fn set_namespace(t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    if !t.rt.namespaced {
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("namespace");
        }
        return Ok(());
    }
    let body_ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !body_ns.is_empty() && body_ns != t.ns() {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    obj["metadata"]["namespace"] = json!(t.ns());
    Ok(())
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// Fills server-set metadata on a new object: uid, creationTimestamp, generation.
pub fn stamp_new(rt: &ResourceType, obj: &mut Value) {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    let m = &mut obj["metadata"];
    if m.get("uid")
        .is_none_or(|u| u.as_str().is_none_or(str::is_empty))
    {
        m["uid"] = json!(uuid::Uuid::new_v4().to_string());
    }
    if m.get("creationTimestamp").is_none_or(Value::is_null) {
        m["creationTimestamp"] = json!(now_rfc3339());
    }
    if rt.has_generation() && m.get("generation").is_none() {
        m["generation"] = json!(1);
    }
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
}

/// Validates and stores a brand-new object (POST and apply-create); returns it as stored.
fn create_object(
    inner: &mut Inner,
    t: &Target,
    mut obj: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    set_namespace(t, &mut obj)?;
    if meta_str(&obj, "name").is_empty() {
        let prefix = meta_str(&obj, "generateName").to_string();
        if !prefix.is_empty() {
            obj["metadata"]["name"] = json!(format!("{prefix}{}", random_suffix()));
        }
    }
    let name = meta_str(&obj, "name").to_string();
    validate_name(t.rt, &name)?;
    if t.rt.namespaced && !inner.namespace_exists(t.ns()) {
        return Err(ApiError::namespace_not_found(t.ns()));
    }
    if inner.get(t.rt, t.ns(), &name).is_some() {
        return Err(ApiError::already_exists(t.rt, &name));
    }
    if let Some(m) = obj["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
            "selfLink",
        ] {
            m.remove(k);
        }
    }
    stamp_new(t.rt, &mut obj);
    lifecycle::on_create(inner, t.rt, &mut obj);
    if dry_run {
        return Ok(obj);
    }
    Ok(inner.put(t.rt, obj))
}

pub fn create(shared: &Shared, t: &Target, req: &Req) -> ApiResult {
    if t.rt.namespaced && t.ns.is_none() {
        return Err(ApiError::method_not_allowed());
    }
    let mut obj = parse_body(req)?;
    check_type(t.rt, &obj)?;
    check_shape(t.rt, &obj)?;
    track_update(None, &mut obj, &field_manager(req), &t.rt.api_version());
    let mut inner = shared.lock();
    let stored = create_object(&mut inner, t, obj, req.params.dry_run())?;
    Ok(json_response(201, &typed(t.rt, &stored)))
}

/// Finishes an update of `old` into `new`: keeps identity, bumps generation on spec changes,
/// completes deletion when the last finalizer goes, and stores unless `dry_run`.
fn commit_update(
    inner: &mut Inner,
    rt: &'static ResourceType,
    old: &Value,
    mut new: Value,
    dry_run: bool,
) -> Value {
    for k in [
        "uid",
        "creationTimestamp",
        "name",
        "namespace",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old["metadata"].get(k) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
    if rt.has_generation() {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let changed = old.get("spec") != new.get("spec");
        new["metadata"]["generation"] = json!(if changed { g + 1 } else { g });
    }
    new["apiVersion"] = json!(rt.api_version());
    new["kind"] = json!(rt.kind);
    lifecycle::on_update(rt, old, &mut new);
    if dry_run {
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        return new;
    }
    let finalizers_gone = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if new.pointer("/metadata/deletionTimestamp").is_some() && finalizers_gone {
        let (ns, name) = (
            meta_str(&new, "namespace").to_string(),
            meta_str(&new, "name").to_string(),
        );
        inner.put(rt, new.clone());
        delete_now(inner, rt, &ns, &name, "Background");
        return new;
    }
    inner.put(rt, new)
}

/// The old object with the request's main-resource changes applied: status is owned by the
/// status subresource for types that have one.
fn keep_status(rt: &ResourceType, old: &Value, new: &mut Value) {
    if rt.has_subresource("status") {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
}

fn check_rv(t: &Target, old: &Value, new: &Value) -> Result<(), ApiError> {
    let want = meta_str(new, "resourceVersion");
    if !want.is_empty() && want != meta_str(old, "resourceVersion") {
        return Err(ApiError::conflict(
            t.rt,
            t.name(),
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    Ok(())
}

pub fn update(shared: &Shared, t: &Target, req: &Req) -> ApiResult {
    let body = parse_body(req)?;
    let mut inner = shared.lock();
    let old = inner
        .get(t.rt, t.ns(), t.name())
        .cloned()
        .ok_or_else(|| ApiError::not_found(t.rt, t.name()))?;
    let new = match t.sub.as_deref() {
        Some("scale") => {
            check_rv(t, &old, &body)?;
            let mut new = old.clone();
            new["spec"]["replicas"] = body.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
            new
        }
        sub => {
            check_type(t.rt, &body)?;
            check_shape(t.rt, &body)?;
            let body_name = meta_str(&body, "name");
            if body_name != t.name() {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({})",
                    t.name()
                )));
            }
            let mut body = body;
            set_namespace(t, &mut body)?;
            check_rv(t, &old, &body)?;
            if sub == Some("status") {
                let mut new = old.clone();
                new["status"] = body.get("status").cloned().unwrap_or(json!({}));
                new
            } else {
                keep_status(t.rt, &old, &mut body);
                body
            }
        }
    };
    let mut new = new;
    track_update(
        Some(&old),
        &mut new,
        &field_manager(req),
        &t.rt.api_version(),
    );
    let stored = commit_update(&mut inner, t.rt, &old, new, req.params.dry_run());
    let body = if t.sub.as_deref() == Some("scale") {
        scale_of(&stored)
    } else {
        typed(t.rt, &stored)
    };
    Ok(json_response(200, &body))
}

/// The `autoscaling/v1` Scale view of a workload.
pub fn scale_of(o: &Value) -> Value {
    let selector = o
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta_str(o, "name"), "namespace": meta_str(o, "namespace"), "uid": meta_str(o, "uid"),
            "resourceVersion": meta_str(o, "resourceVersion"), "creationTimestamp": o.pointer("/metadata/creationTimestamp"),
        },
        "spec": {"replicas": o.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": o.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
    })
}

fn apply_patch_to(doc: &mut Value, req: &Req, custom: bool) -> Result<(), ApiError> {
    let ct = req.content_type.split(';').next().unwrap_or("").trim();
    match ct {
        "application/merge-patch+json" => merge_patch(doc, &parse_body(req)?),
        "application/strategic-merge-patch+json" if custom => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        "application/strategic-merge-patch+json" => strategic_merge(doc, &parse_body(req)?),
        "application/json-patch+json" => {
            let ops: Value = serde_json::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
            json_patch(doc, &ops)?;
        }
        other => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
                ),
            ));
        }
    }
    Ok(())
}

pub fn patch(shared: &Shared, t: &Target, req: &Req) -> ApiResult {
    if req.content_type.starts_with("application/apply-patch") {
        return apply(shared, t, req);
    }
    let mut inner = shared.lock();
    let old = inner
        .get(t.rt, t.ns(), t.name())
        .cloned()
        .ok_or_else(|| ApiError::not_found(t.rt, t.name()))?;
    let new = match t.sub.as_deref() {
        Some("scale") => {
            let mut scale = scale_of(&old);
            apply_patch_to(&mut scale, req, false)?;
            let mut new = old.clone();
            new["spec"]["replicas"] = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
            new
        }
        Some("status") => {
            let mut patched = old.clone();
            apply_patch_to(&mut patched, req, !t.rt.is_builtin())?;
            check_shape(t.rt, &patched)?;
            let mut new = old.clone();
            new["status"] = patched.get("status").cloned().unwrap_or(json!({}));
            new
        }
        _ => {
            let mut new = old.clone();
            apply_patch_to(&mut new, req, !t.rt.is_builtin())?;
            check_shape(t.rt, &new)?;
            check_rv(t, &old, &new)?;
            keep_status(t.rt, &old, &mut new);
            new
        }
    };
    check_shape(t.rt, &new)?;
    let mut new = new;
    track_update(
        Some(&old),
        &mut new,
        &field_manager(req),
        &t.rt.api_version(),
    );
    let stored = commit_update(&mut inner, t.rt, &old, new, req.params.dry_run());
    let body = if t.sub.as_deref() == Some("scale") {
        scale_of(&stored)
    } else {
        typed(t.rt, &stored)
    };
    Ok(json_response(200, &body))
}

/// Server-side apply (`application/apply-patch+yaml`): create if missing, else merge.
fn apply(shared: &Shared, t: &Target, req: &Req) -> ApiResult {
    let manager = req.params.get("fieldManager").filter(|m| !m.is_empty()).ok_or_else(|| {
        ApiError::new(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        )
    })?;
    let force = req.params.flag("force");
    let dry_run = req.params.dry_run();
    let applied = parse_bytes(&req.body, "application/yaml")?;
    if applied.get("apiVersion").is_none() || applied.get("kind").is_none() {
        return Err(ApiError::bad_request(
            "apiVersion and kind must be set in an apply configuration",
        ));
    }
    check_type(t.rt, &applied)?;
    check_shape(t.rt, &applied)?;
    let applied_name = meta_str(&applied, "name");
    if !applied_name.is_empty() && applied_name != t.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({applied_name}) does not match the name on the URL ({})",
            t.name()
        )));
    }
    let mut applied = applied;
    if t.rt.namespaced {
        set_namespace(t, &mut applied)?;
    }
    let mut inner = shared.lock();
    let api_version = t.rt.api_version();
    match inner.get(t.rt, t.ns(), t.name()).cloned() {
        None => {
            if t.sub.is_some() {
                return Err(ApiError::not_found(t.rt, t.name()));
            }
            let mut obj = server_side_apply(None, &applied, manager, force, &api_version)?;
            obj["metadata"]["name"] = json!(t.name());
            let stored = create_object(&mut inner, t, obj, dry_run)?;
            Ok(json_response(201, &typed(t.rt, &stored)))
        }
        Some(old) => {
            let mut new = server_side_apply(Some(&old), &applied, manager, force, &api_version)?;
            if t.sub.as_deref() == Some("status") {
                let mut n = old.clone();
                n["status"] = new.get("status").cloned().unwrap_or(json!({}));
                new = n;
            } else {
                keep_status(t.rt, &old, &mut new);
            }
            let stored = commit_update(&mut inner, t.rt, &old, new, dry_run);
            Ok(json_response(200, &typed(t.rt, &stored)))
        }
    }
}
