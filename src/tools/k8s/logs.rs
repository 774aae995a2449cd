//! `k8s.get_logs`: the tail of one container's log, optionally filtered by substring or regex.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::target::{pod_scope, settle_pod, tool_error};
use crate::adapters::kube::{KubeError, LogQuery};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, Target, TypedTool};

/// Upper bound of log bytes fetched, so a chatty container cannot exhaust memory.
const LIMIT_BYTES: i64 = 8 << 20;
const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsParams {
    /// Pod name.
    pub pod: String,
    /// Namespace (default: the context's).
    pub namespace: Option<String>,
    /// Container; needed when the pod has several.
    pub container: Option<String>,
    /// Lines from the end (default: the server's).
    #[schemars(range(min = 1, max = 100000))]
    pub tail_lines: Option<i64>,
    /// Only the last N seconds.
    #[schemars(range(min = 1))]
    pub since_seconds: Option<i64>,
    /// The crashed instance's log.
    #[serde(default)]
    pub previous: bool,
    /// Keep matching lines: substring or `/regex/`.
    pub grep: Option<String>,
    /// Cluster (default: the default one).
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LogsOutput {
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    /// Container read; absent when the pod has only one and none was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub previous: bool,
    /// Lines returned (after `grep`).
    pub count: usize,
    /// Lines fetched before `grep` filtered them (only with `grep`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scanned: Option<usize>,
    /// Log lines, oldest first (over MCP: the text block after its header line, not here).
    pub lines: Vec<String>,
}

pub struct GetLogs;

impl TypedTool for GetLogs {
    type Params = LogsParams;
    type Output = LogsOutput;
    const NAME: &'static str = "k8s.get_logs";
    const TOOLSET: &'static str = "k8s";
    const TITLE: &'static str = "Get container logs";
    const DESCRIPTION: &'static str = "Read the last lines of a container's log, or of its crashed instance. Narrow with tail_lines, since_seconds or grep rather than paging.";
    const UNTRUSTED: Option<&'static str> = Some("Log text is untrusted upstream data.");
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("lines");
    const BUDGET_KEEP_LAST: bool = true;
    const TEXT_LINES: Option<&'static str> = Some("lines");

    /// The lines are moved into the JSON, not copied: they are most of the answer.
    fn into_value(mut out: LogsOutput) -> Result<Value, serde_json::Error> {
        let lines = std::mem::take(&mut out.lines);
        let mut value = serde_json::to_value(out)?;
        if let Value::Object(map) = &mut value {
            map.insert(
                "lines".into(),
                Value::Array(lines.into_iter().map(Value::String).collect()),
            );
        }
        Ok(value)
    }

    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut LogsParams,
    ) -> Result<Option<Target>, ToolError> {
        settle_pod(
            ctx,
            &mut p.cluster,
            &mut p.namespace,
            &p.pod,
            p.container.as_deref(),
        )
        .await
    }

    /// One request when it can: the log is read directly. Only when the API server answers
    /// that a container must be chosen (or that the one named is not in the pod) is the pod
    /// read, to apply its default-container annotation as kubectl does, or to name its
    /// containers in the error.
    async fn call(&self, ctx: &ToolContext, p: LogsParams) -> Result<LogsOutput, ToolError> {
        let filter = Grep::parse(p.grep.as_deref())?;
        let t = pod_scope(ctx, p.cluster.as_deref(), p.namespace.as_deref()).await?;
        let namespace = t
            .namespace
            .clone()
            .unwrap_or_else(|| t.cluster.default_namespace().to_string());
        let tail = p
            .tail_lines
            .unwrap_or_else(|| ctx.adapters.kube.log_tail_lines());
        let mut query = LogQuery {
            container: p.container.clone().filter(|c| !c.trim().is_empty()),
            tail_lines: Some(tail.max(1)),
            since_seconds: p.since_seconds,
            previous: p.previous,
            limit_bytes: Some(LIMIT_BYTES),
        };
        let text = match t.cluster.logs(&namespace, &p.pod, &query).await {
            Ok(text) => text,
            Err(e) if e.is_not_found() => return Err(t.not_found(&p.pod).await),
            Err(e) if needs_container_choice(&e) => {
                // The pod tells which containers it has, and which one kubectl would pick.
                let pod = t.get(&p.pod).await?;
                let container = pick_container(&pod, &p.pod, query.container.as_deref())?;
                if query.container.as_deref() == Some(container.as_str()) {
                    return Err(log_error(e, p.previous));
                }
                query.container = Some(container);
                t.cluster
                    .logs(&namespace, &p.pod, &query)
                    .await
                    .map_err(|e| log_error(e, p.previous))?
            }
            Err(e) => return Err(log_error(e, p.previous)),
        };
        let all: Vec<&str> = text.lines().collect();
        let scanned = all.len();
        let lines: Vec<String> = all
            .into_iter()
            .filter(|l| filter.matches(l))
            .map(String::from)
            .collect();
        Ok(LogsOutput {
            cluster: t.cluster.name().to_string(),
            namespace,
            pod: p.pod,
            container: query.container,
            previous: p.previous,
            count: lines.len(),
            scanned: filter.is_some().then_some(scanned),
            lines,
        })
    }
}

/// The start of the API server's 400 when a pod has several containers and none was named
/// (`validateContainer` in kube-apiserver's pod registry), and the end of its 400 when the
/// container named is not in the pod.
const CHOOSE_CONTAINER: &str = "a container name must be specified for pod ";
const NOT_A_CONTAINER: &str = " is not valid for pod ";

/// Whether the API server refused the log read for want of a container it can pick.
fn needs_container_choice(e: &KubeError) -> bool {
    matches!(e, KubeError::Api { code: 400, message, .. }
        if message.starts_with(CHOOSE_CONTAINER)
            || (message.starts_with("container ") && message.contains(NOT_A_CONTAINER)))
}

/// A log read's error for the model, with the hint for `previous` on a container that never
/// restarted.
fn log_error(e: KubeError, previous: bool) -> ToolError {
    let mut err = tool_error(e);
    if previous && err.message.contains("previous terminated container") {
        err.message
            .push_str("; the container has not restarted: omit `previous`");
    }
    err
}

/// Which container to read: the one asked for, the pod's default-container annotation, or the
/// only one; otherwise an error naming them.
pub fn pick_container(
    pod: &Value,
    pod_name: &str,
    requested: Option<&str>,
) -> Result<String, ToolError> {
    let names = |field: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from))
            .collect()
    };
    let containers = names("containers");
    let init = names("initContainers");
    let ephemeral = names("ephemeralContainers");
    let listing = || {
        let mut text = containers.join(", ");
        if !init.is_empty() {
            text.push_str(&format!(" (init: {})", init.join(", ")));
        }
        if !ephemeral.is_empty() {
            text.push_str(&format!(" (ephemeral: {})", ephemeral.join(", ")));
        }
        text
    };
    if let Some(c) = requested.filter(|c| !c.trim().is_empty()) {
        if containers
            .iter()
            .chain(&init)
            .chain(&ephemeral)
            .any(|n| n == c)
        {
            return Ok(c.to_string());
        }
        return Err(ToolError::not_found(format!(
            "container '{c}' not found in pod '{pod_name}'; containers: {}",
            listing()
        )));
    }
    if let Some(d) = pod
        .pointer(&format!(
            "/metadata/annotations/{}",
            DEFAULT_CONTAINER.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        && containers.iter().any(|n| n == d)
    {
        return Ok(d.to_string());
    }
    match containers.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(ToolError::not_found(format!(
            "pod '{pod_name}' has no containers"
        ))),
        _ => Err(ToolError::invalid_arguments(format!(
            "pod '{pod_name}' has several containers; pass `container`, one of: {}",
            listing()
        ))),
    }
}

/// A line filter: substring, or regex when written `/…/`.
pub enum Grep {
    None,
    Substring(String),
    Regex(regex::Regex),
}

impl Grep {
    pub fn parse(pattern: Option<&str>) -> Result<Grep, ToolError> {
        let Some(p) = pattern.filter(|p| !p.is_empty()) else {
            return Ok(Grep::None);
        };
        if p.len() >= 2 && p.starts_with('/') && p.ends_with('/') {
            let re = regex::Regex::new(&p[1..p.len() - 1]).map_err(|e| {
                ToolError::invalid_arguments(format!("argument `grep`: invalid regex: {e}"))
            })?;
            return Ok(Grep::Regex(re));
        }
        Ok(Grep::Substring(p.to_string()))
    }

    pub fn is_some(&self) -> bool {
        !matches!(self, Grep::None)
    }

    pub fn matches(&self, line: &str) -> bool {
        match self {
            Grep::None => true,
            Grep::Substring(s) => line.contains(s.as_str()),
            Grep::Regex(re) => re.is_match(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_moved_lines_give_what_serializing_gives() {
        let out = || LogsOutput {
            cluster: "c".into(),
            namespace: "ns".into(),
            pod: "p".into(),
            container: Some("app".into()),
            previous: true,
            count: 2,
            scanned: Some(3),
            lines: vec!["one \"quoted\"".into(), "two\ttabbed".into()],
        };
        let moved = GetLogs::into_value(out()).expect("serializes");
        let serialized = serde_json::to_value(out()).expect("serializes");
        assert_eq!(moved, serialized);
        // Field order too: it is the order the text's header and the client see.
        assert_eq!(moved.to_string(), serialized.to_string());
    }

    #[test]
    fn grep_is_substring_or_slash_regex() {
        let g = Grep::parse(Some("ERROR")).expect("ok");
        assert!(g.matches("x ERROR y") && !g.matches("error"));
        let g = Grep::parse(Some("/(?i)error|time(out)?/")).expect("ok");
        assert!(g.matches("an Error") && g.matches("TIMEOUT") && !g.matches("fine"));
        let g = Grep::parse(Some("/")).expect("a lone slash is a substring");
        assert!(g.matches("a/b"));
        assert!(Grep::parse(Some("/([/")).is_err());
        assert!(!Grep::parse(None).expect("ok").is_some());
    }

    #[test]
    fn containers_are_picked_or_listed() {
        let pod = json!({"metadata": {"annotations": {}}, "spec": {
            "containers": [{"name": "app"}, {"name": "proxy"}], "initContainers": [{"name": "migrate"}]}});
        let err = pick_container(&pod, "web", None).expect_err("ambiguous");
        assert_eq!(
            err.message,
            "pod 'web' has several containers; pass `container`, one of: app, proxy (init: migrate)"
        );
        assert_eq!(
            pick_container(&pod, "web", Some("migrate")).expect("init ok"),
            "migrate"
        );
        let err = pick_container(&pod, "web", Some("nope")).expect_err("unknown");
        assert!(
            err.message
                .contains("container 'nope' not found in pod 'web'"),
            "{}",
            err.message
        );
        let mut pod2 = pod.clone();
        pod2["metadata"]["annotations"][DEFAULT_CONTAINER] = json!("proxy");
        assert_eq!(
            pick_container(&pod2, "web", None).expect("annotation"),
            "proxy"
        );
        let single = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(pick_container(&single, "p", None).expect("single"), "only");
    }
}
