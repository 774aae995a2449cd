//! `/version`, legacy and aggregated discovery, and a minimal OpenAPI v3 index.

use axum::response::Response;
use serde_json::{Value, json};

use super::registry::{GROUPS, RESOURCES, ResourceType, in_group};
use super::status::{ApiError, ApiResult, json_response, typed_response};

pub fn version() -> Response {
    json_response(
        200,
        &json!({
            "major": "1",
            "minor": "32",
            "gitVersion": "v1.32.4",
            "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
            "gitTreeState": "clean",
            "buildDate": "2025-04-22T16:02:27Z",
            "goVersion": "go1.23.6",
            "compiler": "gc",
            "platform": "linux/amd64",
        }),
    )
}

/// The aggregated discovery version the client accepts, if any (`v2` preferred).
fn aggregated_version(accept: &str) -> Option<&'static str> {
    let offered = |v: &str| {
        accept.split(',').any(|m| {
            let params: Vec<&str> = m.split(';').map(str::trim).collect();
            params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"as=APIGroupDiscoveryList")
                && params.contains(&format!("v={v}").as_str())
        })
    };
    if offered("v2") {
        Some("v2")
    } else if offered("v2beta1") {
        Some("v2beta1")
    } else {
        None
    }
}

fn aggregated(version: &str, groups: &[&str]) -> Response {
    let items: Vec<Value> = groups
        .iter()
        .map(|g| {
            let resources: Vec<Value> = in_group(g).map(resource_discovery).collect();
            let mut item = json!({
                "metadata": {"creationTimestamp": null},
                "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}],
            });
            if !g.is_empty() {
                item["metadata"]["name"] = json!(g);
            }
            item
        })
        .collect();
    let body = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    });
    let ct = format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList");
    typed_response(200, &ct, &body)
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn resource_discovery(rt: &ResourceType) -> Value {
    let subresources: Vec<Value> = rt
        .subresources
        .iter()
        .map(|(name, verbs)| {
            let kind = match *name {
                "scale" => gvk("autoscaling", "v1", "Scale"),
                "log" | "exec" => gvk(
                    "",
                    "v1",
                    if *name == "exec" {
                        "PodExecOptions"
                    } else {
                        "Pod"
                    },
                ),
                _ => gvk(rt.group, rt.version, rt.kind),
            };
            json!({"subresource": name, "responseKind": kind, "verbs": verbs})
        })
        .collect();
    let mut r = json!({
        "resource": rt.plural,
        "responseKind": gvk(rt.group, rt.version, rt.kind),
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": rt.verbs,
    });
    if !rt.short_names.is_empty() {
        r["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        r["categories"] = json!(rt.categories);
    }
    if !subresources.is_empty() {
        r["subresources"] = json!(subresources);
    }
    r
}

/// `GET /api`
pub fn core_versions(accept: &str) -> Response {
    if let Some(v) = aggregated_version(accept) {
        return aggregated(v, &[""]);
    }
    json_response(
        200,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
        }),
    )
}

fn api_group(name: &str) -> Value {
    let gv = json!({"groupVersion": format!("{name}/v1"), "version": "v1"});
    json!({"name": name, "versions": [gv], "preferredVersion": gv})
}

/// `GET /apis`
pub fn groups(accept: &str) -> Response {
    if let Some(v) = aggregated_version(accept) {
        return aggregated(v, GROUPS);
    }
    let groups: Vec<Value> = GROUPS.iter().map(|g| api_group(g)).collect();
    json_response(
        200,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

/// `GET /apis/{group}`
pub fn group(name: &str) -> ApiResult {
    if !GROUPS.contains(&name) {
        return Err(ApiError::no_route());
    }
    let mut g = api_group(name);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Ok(json_response(200, &g))
}

/// `GET /api/v1`, `GET /apis/{group}/{version}` — an `APIResourceList`.
pub fn resource_list(group: &str, version: &str) -> ApiResult {
    if version != "v1" || !(group.is_empty() || GROUPS.contains(&group)) {
        return Err(ApiError::no_route());
    }
    let mut resources = Vec::new();
    for rt in in_group(group) {
        let mut r = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": rt.verbs,
        });
        if !rt.short_names.is_empty() {
            r["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            r["categories"] = json!(rt.categories);
        }
        resources.push(r);
        for (sub, verbs) in rt.subresources {
            let kind = match *sub {
                "scale" => "Scale",
                "exec" => "PodExecOptions",
                _ => rt.kind,
            };
            let mut s = json!({
                "name": format!("{}/{sub}", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if *sub == "scale" {
                s["group"] = json!("autoscaling");
                s["version"] = json!("v1");
            }
            resources.push(s);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(json_response(
        200,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    ))
}

fn openapi_path(group: &str) -> String {
    if group.is_empty() {
        "api/v1".to_string()
    } else {
        format!("apis/{group}/v1")
    }
}

/// `GET /openapi/v3` — the index of per-group-version documents.
pub fn openapi_v3_index() -> Response {
    let mut paths = serde_json::Map::new();
    for g in std::iter::once(&"").chain(GROUPS) {
        let p = openapi_path(g);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=FAKE")}),
        );
    }
    json_response(200, &json!({"paths": paths}))
}

/// `GET /openapi/v3/{api/v1 | apis/g/v1}` — just enough for kubectl's query-parameter checks:
/// every resource has a PATCH operation tagged with its GVK that accepts `fieldValidation` and
/// `dryRun`. There are no schemas, so clients fall back to schemaless handling.
pub fn openapi_v3_doc(path: &str) -> ApiResult {
    let group = RESOURCES
        .iter()
        .map(|r| r.group)
        .find(|g| openapi_path(g) == path)
        .ok_or_else(ApiError::no_route)?;
    let mut paths = serde_json::Map::new();
    for rt in RESOURCES.iter().filter(|r| r.group == group) {
        let base = format!("/{}", openapi_path(group));
        let p = if rt.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", rt.plural)
        } else {
            format!("{base}/{}/{{name}}", rt.plural)
        };
        let params: Vec<Value> = ["dryRun", "fieldManager", "fieldValidation", "force"]
            .iter()
            .map(|n| json!({"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
            .collect();
        let op = json!({
            "operationId": format!("patch{}", rt.kind),
            "parameters": params,
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk(rt.group, rt.version, rt.kind),
        });
        paths.insert(p, json!({"patch": op}));
    }
    Ok(json_response(
        200,
        &json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.4"}, "paths": paths, "components": {"schemas": {}}}),
    ))
}
