//! `k8s.apply_manifest`: server-side apply (field manager `toolgate`, force) of one or more
//! YAML documents. Every document is checked and resolved before anything is applied.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::preview::{
    cap_diff, changed_lines, ellipsis, for_diff, looks_like_secret, mark_secret_changes,
    object_key, object_label, scrub, secret_values, to_yaml, unified_diff,
};
use super::redact::sanitize;
use super::rows::str_at;
use super::target::{
    Cluster, Scope, check_name, check_namespace, cluster, missing_namespace, tool_error,
};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Preview, Risk, Target, TypedTool};

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyParams {
    /// YAML or JSON documents, separated by `---`.
    pub manifest: String,
    /// Namespace of objects that set none (default: the context's).
    pub namespace: Option<String>,
    /// Server-side dry run only.
    #[serde(default)]
    pub dry_run: bool,
    /// Cluster (default: the default one).
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
    const TOOLSET: &'static str = "k8s";
    const TITLE: &'static str = "Apply Kubernetes manifests";
    const DESCRIPTION: &'static str = "Create or update objects by server-side apply, like `kubectl apply --server-side --force-conflicts`. Try dry_run first.";
    const RISK: Risk = Risk::Write;
    const IDEMPOTENT: bool = true;

    async fn call(&self, ctx: &ToolContext, p: ApplyParams) -> Result<ApplyOutput, ToolError> {
        let (c, planned) = plan(ctx, &p).await?;
        let mut results = Vec::new();
        let mut first_error: Option<ToolError> = None;
        for Planned {
            target: t,
            name,
            doc,
        } in planned
        {
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

    /// Every document resolved as it will be applied (its kind through discovery, its
    /// namespace: its own, the argument, or the cluster's default; none when cluster-scoped)
    /// and every name checked. Policy sees every namespace touched in `namespaces`, and
    /// `namespace`, `kind` and `name` when they are the same for all documents.
    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut ApplyParams,
    ) -> Result<Option<Target>, ToolError> {
        p.namespace = p.namespace.take().filter(|n| !n.is_empty());
        if let Some(ns) = &p.namespace {
            check_namespace("namespace", ns)?;
        }
        let (c, planned) = plan(ctx, p).await?;
        for (i, pl) in planned.iter().enumerate() {
            check_name(&pl.target.kind.info, "metadata.name", &pl.name).map_err(|mut e| {
                e.message = format!("{}: {}", doc_label(i, &pl.doc), e.message);
                e
            })?;
        }
        p.cluster = Some(c.name().to_string());
        let mut namespaces: Vec<String> = planned
            .iter()
            .filter_map(|pl| pl.target.namespace.clone())
            .collect();
        namespaces.sort_unstable();
        namespaces.dedup();
        let same = |f: &dyn Fn(&Planned) -> String| {
            let first = planned.first().map(f)?;
            planned.iter().all(|pl| f(pl) == first).then_some(first)
        };
        let all_namespaced = planned.iter().all(|pl| pl.target.namespace.is_some());
        Ok(Some(Target {
            cluster: p.cluster.clone(),
            namespace: match namespaces.as_slice() {
                [one] if all_namespaced => Some(one.clone()),
                _ => None,
            },
            namespaces,
            kind: same(&|pl| pl.target.kind.info.kind.clone()),
            api_version: same(&|pl| pl.target.kind.info.api_version()),
            name: same(&|pl| pl.name.clone()),
            ..Target::default()
        }))
    }

    /// The manifest with every Secret's values replaced by key names and sizes; unchanged when
    /// it holds no Secret; a placeholder when it cannot be parsed (it may hold values).
    fn redact_args(&self, args: &Value) -> Option<Value> {
        let manifest = args.get("manifest")?.as_str()?;
        let redacted = match parse_documents(manifest) {
            Ok(docs) if !docs.iter().any(looks_like_secret) => return None,
            Ok(_) => redact_manifest(manifest).unwrap_or_else(|_| UNREADABLE_MANIFEST.into()),
            Err(_) => UNREADABLE_MANIFEST.into(),
        };
        let mut out = args.clone();
        out["manifest"] = Value::String(redacted);
        Some(out)
    }

    /// Server-side apply of every document with dryRun=All, and a diff of each live object
    /// (nothing when it does not exist yet) against the result, Secrets redacted.
    async fn preview(
        &self,
        ctx: &ToolContext,
        p: &ApplyParams,
    ) -> Result<Option<Preview>, ToolError> {
        let (c, planned) = plan(ctx, p).await?;
        let mut secrets: Vec<String> = secret_values(planned.iter().map(|pl| &pl.doc));
        let mut phrases = Vec::new();
        let mut documents = Vec::new();
        let mut diffs = Vec::new();
        let mut versions = Vec::new();
        let mut first_error: Option<ToolError> = None;
        let mut failed = 0usize;
        for pl in &planned {
            let t = &pl.target;
            let ns = t.namespace.as_deref();
            let key = object_key(&t.kind.info.singular, ns, &pl.name);
            let label = object_label(&t.kind.info.singular, ns, &pl.name);
            let live = t.get_opt(&pl.name).await?;
            versions.push(version_entry(&key, live.as_ref()));
            let mut entry = json!({
                "key": key, "kind": t.kind.info.kind, "api_version": t.kind.info.api_version(),
                "name": pl.name, "namespace": ns,
            });
            match patch_doc(t, &pl.name, pl.doc.clone(), true).await {
                Ok(after) => {
                    let before_view = live.as_ref().map(for_diff).unwrap_or(Value::Null);
                    let mut after_view = for_diff(&after);
                    mark_secret_changes(&mut after_view, live.as_ref(), &after);
                    let diff = unified_diff(
                        &to_yaml(&before_view)?,
                        &to_yaml(&after_view)?,
                        &format!("live: {key}"),
                        &format!("after apply: {key}"),
                    );
                    let lines = diff.as_deref().map(changed_lines).unwrap_or(0);
                    let action = match (&live, &diff) {
                        (None, _) => {
                            phrases.push(format!("would create {label}"));
                            "create"
                        }
                        (Some(_), Some(_)) => {
                            phrases.push(format!(
                                "would change {label} ({lines} line{})",
                                if lines == 1 { "" } else { "s" }
                            ));
                            "change"
                        }
                        (Some(_), None) => {
                            phrases.push(format!("{label} unchanged"));
                            "unchanged"
                        }
                    };
                    entry["action"] = json!(action);
                    entry["changed_lines"] = json!(lines);
                    diffs.extend(diff);
                }
                Err(mut e) => {
                    // An API error may quote the document, values included.
                    secrets.extend(secret_values(live.iter()));
                    e.message = scrub(&e.message, &secrets);
                    failed += 1;
                    phrases.push(format!("{label} would fail: {}", ellipsis(&e.message, 200)));
                    entry["action"] = json!("fail");
                    entry["error"] = json!(e.message);
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
            documents.push(entry);
        }
        if failed == planned.len()
            && let Some(e) = first_error
        {
            // The call would change nothing: tell the agent now instead of queueing it.
            return Err(e);
        }
        let mut summary = summarize(&phrases);
        if p.dry_run {
            summary = format!("dry run only, nothing is stored: {summary}");
        }
        let diff = (!diffs.is_empty()).then(|| cap_diff(diffs.concat()));
        Ok(Some(Preview {
            summary,
            diff,
            target_version: Some(versions.join(",")),
            detail: json!({"cluster": c.name(), "failed": failed, "documents": documents}),
        }))
    }

    /// `kind/namespace/name=resourceVersion` of every document's live object (`absent` when
    /// it does not exist), in document order: any change, creation or deletion shows.
    async fn target_version(
        &self,
        ctx: &ToolContext,
        p: &ApplyParams,
    ) -> Result<Option<String>, ToolError> {
        let (_, planned) = plan(ctx, p).await?;
        let mut versions = Vec::new();
        for pl in &planned {
            let t = &pl.target;
            let key = object_key(&t.kind.info.singular, t.namespace.as_deref(), &pl.name);
            let live = t.get_opt(&pl.name).await?;
            versions.push(version_entry(&key, live.as_ref()));
        }
        Ok(Some(versions.join(",")))
    }
}

/// Shown instead of a manifest that cannot be parsed (it may hold Secret values).
const UNREADABLE_MANIFEST: &str =
    "(manifest not shown: it is not valid YAML and may hold Secret values)";
/// Documents named one by one in a preview summary; the rest are counted.
const SUMMARY_DOCUMENTS: usize = 8;

fn version_entry(key: &str, live: Option<&Value>) -> String {
    match live {
        Some(obj) => format!("{key}={}", str_at(obj, &["metadata", "resourceVersion"])),
        None => format!("{key}=absent"),
    }
}

fn summarize(phrases: &[String]) -> String {
    let mut out = phrases
        .iter()
        .take(SUMMARY_DOCUMENTS)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if phrases.len() > SUMMARY_DOCUMENTS {
        out.push_str(&format!(
            "; … and {} more documents",
            phrases.len() - SUMMARY_DOCUMENTS
        ));
    }
    out
}

/// One document ready to apply: its resolved kind and namespace, name, and the document with
/// the exact Kind and namespace set.
struct Planned {
    target: Scope,
    name: String,
    doc: Value,
}

/// Parse and resolve every document first: a typo in document 3 must not leave documents 1–2
/// applied.
async fn plan(ctx: &ToolContext, p: &ApplyParams) -> Result<(Cluster, Vec<Planned>), ToolError> {
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
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| c.default_namespace().to_string());

    let mut planned = Vec::new();
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
            if let Some(asked) = p.namespace.as_deref().filter(|n| !n.is_empty())
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
        planned.push(Planned {
            target: Scope {
                cluster: c.clone(),
                kind: resolved,
                namespace,
            },
            name,
            doc,
        });
    }
    Ok((c, planned))
}

/// Apply one document; on failure the result carries the message and the error is returned too.
async fn apply_one(
    t: &Scope,
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
    let outcome = match t.get_opt(name).await {
        Ok(before) => patch_doc(t, name, doc, dry_run)
            .await
            .map(|after| (before, after)),
        Err(e) => Err(e),
    };
    match outcome {
        Ok((before, mut after)) => {
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
            (out, None)
        }
        Err(e) => {
            out.error = Some(e.message.clone());
            (out, Some(e))
        }
    }
}

/// Server-side apply of one document (optionally dryRun=All): the object as the API server
/// returned it, unredacted. Errors name the object.
async fn patch_doc(t: &Scope, name: &str, doc: Value, dry_run: bool) -> Result<Value, ToolError> {
    match t
        .cluster
        .apply(
            t.kind.info.resource(),
            t.namespace.as_deref(),
            name,
            &doc,
            dry_run,
        )
        .await
    {
        Ok(obj) => Ok(obj),
        Err(e) => {
            let missing_ns = match (&t.namespace, e.is_not_found()) {
                (Some(ns), true) => missing_namespace(t.cluster.as_ref(), ns).await,
                _ => None,
            };
            let mut err = missing_ns.unwrap_or_else(|| tool_error(e));
            err.message = format!("{}: {}", t.describe(name), err.message);
            Err(err)
        }
    }
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
        // `kind: secret` is applied as a Secret too; `sanitize` knows only the exact Kind.
        if looks_like_secret(&doc) {
            doc["kind"] = Value::String("Secret".into());
        }
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
