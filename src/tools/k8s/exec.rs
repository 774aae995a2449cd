//! `k8s.exec_command`: run one command (argv, no shell unless asked for) in a pod's container
//! over the API server's exec websocket, with a time limit and capped output.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::logs::pick_container;
use super::preview::{ellipsis, shell_line};
use super::rows::str_at;
use super::target::{pod_scope, settle_pod, tool_error};
use crate::adapters::kube::ExecRequest;
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Preview, Risk, Target, TypedTool};

const DEFAULT_TIMEOUT: u64 = 20;
/// Characters of the command line shown in a preview summary (the detail has it all).
const COMMAND_IN_SUMMARY: usize = 200;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecParams {
    /// Pod name.
    pub pod: String,
    /// argv; a shell only via ["sh", "-c", "…"].
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// Namespace (default: the context's).
    pub namespace: Option<String>,
    /// Container; needed when the pod has several.
    pub container: Option<String>,
    /// Seconds it may run (default 20).
    #[schemars(range(min = 1, max = 300))]
    pub timeout_seconds: Option<u64>,
    /// Only check the pod and container.
    #[serde(default)]
    pub dry_run: bool,
    /// Cluster (default: the default one).
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ExecOutput {
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub command: Vec<String>,
    /// True when the command was not run.
    pub dry_run: bool,
    /// Exit code (absent on a dry run, or when the command could not start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// True when stdout or stderr was longer than 64 KiB and was cut.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Why the command failed to run, as the API server reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct ExecCommand;

impl TypedTool for ExecCommand {
    type Params = ExecParams;
    type Output = ExecOutput;
    const NAME: &'static str = "k8s.exec_command";
    const TOOLSET: &'static str = "k8s";
    const TITLE: &'static str = "Run a command in a container";
    const DESCRIPTION: &'static str = "Run one command in a pod's container, like `kubectl exec`; returns exit code, stdout and stderr (64 KiB each at most).";
    const UNTRUSTED: Option<&'static str> = Some("Command output is untrusted upstream data.");
    const RISK: Risk = Risk::Write;

    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut ExecParams,
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

    async fn call(&self, ctx: &ToolContext, p: ExecParams) -> Result<ExecOutput, ToolError> {
        if p.command.is_empty() || p.command[0].trim().is_empty() {
            return Err(ToolError::invalid_arguments(
                "argument `command`: give at least the program to run",
            ));
        }
        let t = pod_scope(ctx, p.cluster.as_deref(), p.namespace.as_deref()).await?;
        let namespace = t
            .namespace
            .clone()
            .unwrap_or_else(|| t.cluster.default_namespace().to_string());
        let pod = t.get(&p.pod).await?;
        let container = pick_container(&pod, &p.pod, p.container.as_deref())?;
        let phase = str_at(&pod, &["status", "phase"]);
        if phase != "Running" {
            return Err(ToolError::invalid_arguments(format!(
                "pod '{}' is {phase}, not Running: commands run only in running pods",
                p.pod
            )));
        }
        let mut out = ExecOutput {
            cluster: t.cluster.name().to_string(),
            namespace: namespace.clone(),
            pod: p.pod.clone(),
            container: container.clone(),
            command: p.command.clone(),
            dry_run: p.dry_run,
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
            truncated: false,
            error: None,
        };
        if p.dry_run {
            return Ok(out);
        }
        let limit = Duration::from_secs(p.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT).clamp(1, 300));
        let request = ExecRequest {
            container,
            command: p.command.clone(),
            limit,
        };
        let outcome = t.cluster.exec(&namespace, &p.pod, &request).await.map_err(|e| {
            let mut err = tool_error(e);
            if err.kind == crate::core::error::ToolErrorKind::Timeout {
                err.message = format!("the command did not finish within {} s; raise timeout_seconds or run something shorter", limit.as_secs());
            }
            err
        })?;
        out.stdout = outcome.stdout;
        out.stderr = outcome.stderr;
        out.truncated = outcome.truncated;
        out.exit_code = outcome.exit_code;
        out.error = outcome.error;
        Ok(out)
    }
    /// Exec has no dry run: the preview checks the pod and container and names the command.
    async fn preview(
        &self,
        ctx: &ToolContext,
        p: &ExecParams,
    ) -> Result<Option<Preview>, ToolError> {
        if p.command.first().is_none_or(|c| c.trim().is_empty()) {
            return Err(ToolError::invalid_arguments(
                "argument `command`: give at least the program to run",
            ));
        }
        let t = pod_scope(ctx, p.cluster.as_deref(), p.namespace.as_deref()).await?;
        let namespace = t
            .namespace
            .clone()
            .unwrap_or_else(|| t.cluster.default_namespace().to_string());
        let pod = t.get(&p.pod).await?;
        let container = pick_container(&pod, &p.pod, p.container.as_deref())?;
        let line = shell_line(&p.command);
        let mut summary = format!(
            "would run `{}` in pod {namespace}/{}, container {container}",
            ellipsis(&line, COMMAND_IN_SUMMARY),
            p.pod
        );
        let phase = str_at(&pod, &["status", "phase"]);
        if phase != "Running" {
            summary = format!(
                "would fail: pod '{}' is {phase}, not Running: commands run only in running pods",
                p.pod
            );
        } else if p.dry_run {
            summary = format!("dry run only, nothing runs: {summary}");
        }
        Ok(Some(Preview {
            summary,
            diff: None,
            // The pod itself, not its resourceVersion (which moves with every status update):
            // a pod replaced under the same name since approval is another target.
            target_version: Some(pod_identity(&pod)),
            detail: json!({
                "cluster": t.cluster.name(),
                "namespace": namespace,
                "pod": p.pod,
                "container": container,
                "command": p.command,
                "node": str_at(&pod, &["spec", "nodeName"]),
                "phase": phase,
                "timeout_seconds": p.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT).clamp(1, 300),
            }),
        }))
    }

    /// The pod's UID: the approved command runs only in the pod the approvers saw. (Not its
    /// resourceVersion, which changes with every status update: probes, restarts, conditions.)
    async fn target_version(
        &self,
        ctx: &ToolContext,
        p: &ExecParams,
    ) -> Result<Option<String>, ToolError> {
        let t = pod_scope(ctx, p.cluster.as_deref(), p.namespace.as_deref()).await?;
        Ok(t.get_opt(&p.pod).await?.as_ref().map(pod_identity))
    }
}

/// `pod-uid=…`: which pod an exec was approved for.
fn pod_identity(pod: &serde_json::Value) -> String {
    format!("pod-uid={}", str_at(pod, &["metadata", "uid"]))
}
