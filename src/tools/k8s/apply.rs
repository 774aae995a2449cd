//! `k8s.apply_manifest`: server-side apply (field manager `toolgate`, force) of one or more
//! YAML documents. Every document is checked and resolved before anything is applied.

use ::kube::api::{Api, DynamicObject, Patch, PatchParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::redact::sanitize;
use super::rows::str_at;
use super::target::{Target, cluster, missing_namespace, tool_error};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, TypedTool};

pub const FIELD_MANAGER: &str = "toolgate";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyParams {
    /// One or more YAML (or JSON) documents separated by `---`; each needs apiVersion, kind and metadata.name. `kind: List` is expanded.
    pub manifest: String,
    /// Namespace for namespaced objects that set none; default: the cluster context's namespace.
    pub namespace: Option<String>,
    /// Validate and compute the result on the server without persisting anything (dryRun=All).
    #[serde(default)]
    pub dry_run: bool,
    /// Configured cluster name; default: the default cluster.
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Applied {
    pub kind: String,
    pub api_version: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `created`, `configured` or `unchanged` (with dry_run: what would happen), or `failed`.
    pub action: String,
    /// Why this document failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The object as the API server returned it (Secrets: key names and sizes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ApplyOutput {
    pub cluster: String,
    /// True when nothing was persisted.
    pub dry_run: bool,
    /// Documents that failed (the others were applied).
    pub failed: usize,
    pub results: Vec<Applied>,
}

pub struct ApplyManifest;

impl TypedTool for ApplyManifest {
    type Params = ApplyParams;
    type Output = ApplyOutput;
    const NAME: &'static str = "k8s.apply_manifest";
    const TITLE: &'static str = "Apply Kubernetes manifests";
    const DESCRIPTION: &'static str = "Create or update objects from YAML with server-side apply (field manager toolgate, conflicts forced), like `kubectl apply --server-side --force-conflicts`; several documents may be separated by `---`. Run with dry_run=true first to see what would change.";
    const RISK: Risk = Risk::Write;
    const IDEMPOTENT: bool = true;

    async fn call(&self, ctx: &ToolContext, p: ApplyParams) -> Result<ApplyOutput, ToolError> {
        let docs = parse_documents(&p.manifest)?;
        if docs.is_empty() {
            return Err(ToolError::invalid_arguments(
                "argument `manifest`: no documents found",
            ));
        }
        let c = cluster(ctx, p.cluster.as_deref()).await?;
        let default_ns = p
            .namespace
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| c.default_namespace().to_string());

        // Resolve everything first: a typo in document 3 must not leave documents 1–2 applied.
        let mut planned: Vec<(Target, String, Value)> = Vec::new();
        for (i, mut doc) in docs.into_iter().enumerate() {
            let label = doc_label(i, &doc);
            let api_version = str_at(&doc, &["apiVersion"]).to_string();
            let kind = str_at(&doc, &["kind"]).to_string();
            let name = str_at(&doc, &["metadata", "name"]).to_string();
            if api_version.is_empty() || kind.is_empty() || name.is_empty() {
                return Err(ToolError::invalid_arguments(format!(
                    "{label}: apiVersion, kind and metadata.name are required"
                )));
            }
            let resolved = c.resolve(&kind, Some(&api_version)).await.map_err(|e| {
                let mut err = tool_error(e);
                err.message = format!("{label}: {}", err.message);
                err
            })?;
            // Apply needs the exact Kind; accept `deployment` or `deploy` and send `Deployment`.
            doc["kind"] = Value::String(resolved.info.kind.clone());
            let namespace = if resolved.namespaced() {
                let own = str_at(&doc, &["metadata", "namespace"]).to_string();
                if let Some(asked) = p.namespace.as_deref().filter(|n| !n.trim().is_empty())
                    && !own.is_empty()
                    && own != asked
                {
                    return Err(ToolError::invalid_arguments(format!(
                        "{label}: its namespace '{own}' does not match the `namespace` argument '{asked}'"
                    )));
                }
                let ns = if own.is_empty() {
                    default_ns.clone()
                } else {
                    own
                };
                doc["metadata"]["namespace"] = Value::String(ns.clone());
                Some(ns)
            } else {
                // Cluster-scoped objects have no namespace; a stray one would be refused.
                if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("namespace");
                }
                None
            };
            planned.push((
                Target {
                    cluster: c.clone(),
                    kind: resolved,
                    namespace,
                },
                name,
                doc,
            ));
        }

        let mut results = Vec::new();
        let mut first_error: Option<ToolError> = None;
        for (t, name, doc) in planned {
            let (applied, error) = apply_one(&t, &name, doc, p.dry_run).await;
            if first_error.is_none() {
                first_error = error;
            }
            results.push(applied);
        }
        let failed = results.iter().filter(|r| r.error.is_some()).count();
        if failed == results.len()
            && let Some(e) = first_error
        {
            // Nothing happened: a plain error is clearer than a list of failures.
            return Err(e);
        }
        Ok(ApplyOutput {
            cluster: c.name().to_string(),
            dry_run: p.dry_run,
            failed,
            results,
        })
    }
}

/// Apply one document; on failure the result carries the message and the error is returned too.
async fn apply_one(
    t: &Target,
    name: &str,
    doc: Value,
    dry_run: bool,
) -> (Applied, Option<ToolError>) {
    let mut out = Applied {
        kind: t.kind.info.kind.clone(),
        api_version: t.kind.info.api_version(),
        name: name.to_string(),
        namespace: t.namespace.clone(),
        action: "failed".into(),
        error: None,
        object: None,
    };
    let before = match t.get_opt(name).await {
        Ok(b) => b,
        Err(e) => {
            out.error = Some(e.message.clone());
            return (out, Some(e));
        }
    };
    let api: Api<DynamicObject> = match &t.namespace {
        Some(ns) => Api::namespaced_with(t.cluster.client(), ns, &t.kind.resource),
        None => Api::all_with(t.cluster.client(), &t.kind.resource),
    };
    let mut pp = PatchParams::apply(FIELD_MANAGER).force();
    if dry_run {
        pp = pp.dry_run();
    }
    match t
        .cluster
        .write(api.patch(name, &pp, &Patch::Apply(&doc)))
        .await
    {
        Ok(obj) => {
            let mut after = serde_json::to_value(&obj).unwrap_or(Value::Null);
            let rv = |v: &Value| str_at(v, &["metadata", "resourceVersion"]).to_string();
            out.action = match &before {
                None => "created",
                // A no-op apply keeps the resourceVersion on a real API server; compare content too.
                // A dry run never changes the resourceVersion, so only content counts there.
                Some(b) if (!dry_run && rv(b) == rv(&after)) || same_content(b, &after) => {
                    "unchanged"
                }
                Some(_) => "configured",
            }
            .into();
            sanitize(&mut after);
            out.object = Some(after);
        }
        Err(e) => {
            let missing_ns = match (&t.namespace, e.is_not_found()) {
                (Some(ns), true) => missing_namespace(&t.cluster, ns).await,
                _ => None,
            };
            let mut err = missing_ns.unwrap_or_else(|| tool_error(e));
            err.message = format!("{}: {}", t.describe(name), err.message);
            out.error = Some(err.message.clone());
            return (out, Some(err));
        }
    }
    (out, None)
}

/// Whether a dry-run result differs from the stored object in anything but bookkeeping.
fn same_content(before: &Value, after: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in ["managedFields", "resourceVersion", "generation"] {
                m.remove(k);
            }
        }
        v
    };
    strip(before) == strip(after)
}

fn doc_label(index: usize, doc: &Value) -> String {
    let kind = str_at(doc, &["kind"]);
    let name = str_at(doc, &["metadata", "name"]);
    if kind.is_empty() && name.is_empty() {
        format!("document {}", index + 1)
    } else {
        format!("document {} ({kind}/{name})", index + 1)
    }
}

/// A manifest with every Secret's values replaced by key names and sizes, for showing the
/// arguments of an apply call to a human (approval previews, audit) without the values.
pub fn redact_manifest(manifest: &str) -> Result<String, ToolError> {
    let mut out = Vec::new();
    for mut doc in parse_documents(manifest)? {
        sanitize(&mut doc);
        out.push(
            serde_yaml::to_string(&doc)
                .map_err(|e| ToolError::internal(format!("cannot render YAML: {e}")))?,
        );
    }
    Ok(out.join("---\n"))
}

/// YAML (or JSON) documents of a manifest; empty documents skipped, `kind: List` expanded.
/// Parse errors name the document, never echo its content (it may hold Secret values).
pub fn parse_documents(manifest: &str) -> Result<Vec<Value>, ToolError> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(manifest).enumerate() {
        let doc: Value = Value::deserialize(de).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
                .unwrap_or_default();
            ToolError::invalid_arguments(format!(
                "argument `manifest`: document {} is not valid YAML{at}",
                i + 1
            ))
        })?;
        match doc {
            Value::Null => {}
            Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                if let Some(Value::Array(items)) = m.get("items") {
                    docs.extend(items.iter().cloned());
                }
            }
            Value::Object(_) => docs.push(doc),
            _ => {
                return Err(ToolError::invalid_arguments(format!(
                    "argument `manifest`: document {} is not a mapping (an object with apiVersion, kind, metadata)",
                    i + 1
                )));
            }
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_split_and_lists_expanded() {
        let docs = parse_documents(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# only a comment\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n- {apiVersion: v1, kind: Secret, metadata: {name: c}}\n",
        )
        .expect("valid");
        let names: Vec<&str> = docs
            .iter()
            .map(|d| str_at(d, &["metadata", "name"]))
            .collect();
        assert_eq!(names, vec!["a", "b", "c"]);
        assert_eq!(
            parse_documents(
                "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"j\"}}"
            )
            .expect("json")
            .len(),
            1
        );
    }

    #[test]
    fn manifests_shown_to_humans_carry_no_secret_values() {
        let text = redact_manifest(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {token: sk_live_123}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n",
        )
        .expect("valid");
        assert!(!text.contains("sk_live_123"), "{text}");
        assert!(
            text.contains("name: token") && text.contains("bytes: 11") && text.contains("a: b"),
            "{text}"
        );
    }

    #[test]
    fn parse_errors_do_not_echo_content() {
        let err =
            parse_documents("apiVersion: v1\nkind: Secret\nstringData:\n  password: [hunter2\n")
                .expect_err("bad yaml");
        assert!(
            err.message
                .starts_with("argument `manifest`: document 1 is not valid YAML"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("hunter2"), "{}", err.message);
        let err = parse_documents("- a\n- b\n").expect_err("not a mapping");
        assert!(err.message.contains("not a mapping"), "{}", err.message);
    }
}
