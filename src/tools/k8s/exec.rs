//! `k8s.exec_command`: run one command (argv, no shell unless asked for) in a pod's container
//! over the API server's exec websocket, with a time limit and capped output.

use std::time::Duration;

use ::kube::api::{Api, AttachParams};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::logs::pick_container;
use super::preview::{ellipsis, shell_line};
use super::rows::str_at;
use super::target::{Omitted, target, tool_error};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Preview, Risk, TypedTool};

/// Bytes kept of each of stdout and stderr; the rest is read and dropped.
const OUTPUT_CAP: usize = 64 * 1024;
const DEFAULT_TIMEOUT: u64 = 20;
/// Characters of the command line shown in a preview summary (the detail has it all).
const COMMAND_IN_SUMMARY: usize = 200;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecParams {
    /// Pod name.
    pub pod: String,
    /// Command and arguments, e.g. ["cat", "/etc/resolv.conf"]; no shell unless you pass ["sh", "-c", "…"].
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// Namespace; default: the cluster context's namespace.
    pub namespace: Option<String>,
    /// Container; required when the pod has several (the error lists them).
    pub container: Option<String>,
    /// Seconds the command may run (default 20, at most 300; the server's tool timeout also applies).
    #[schemars(range(min = 1, max = 300))]
    pub timeout_seconds: Option<u64>,
    /// Check that the pod and container exist and run, without running the command.
    #[serde(default)]
    pub dry_run: bool,
    /// Configured cluster name; default: the default cluster.
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
    const TITLE: &'static str = "Run a command in a container";
    const DESCRIPTION: &'static str = "Run one command inside a running pod's container, like `kubectl exec POD -- CMD…`, and return its exit code, stdout and stderr (64 KiB each at most). Pass argv as a list; use [\"sh\", \"-c\", \"…\"] only when you need a shell.";
    const RISK: Risk = Risk::Write;

    async fn call(&self, ctx: &ToolContext, p: ExecParams) -> Result<ExecOutput, ToolError> {
        if p.command.is_empty() || p.command[0].trim().is_empty() {
            return Err(ToolError::invalid_arguments(
                "argument `command`: give at least the program to run",
            ));
        }
        let t = target(
            ctx,
            p.cluster.as_deref(),
            "pods",
            Some("v1"),
            p.namespace.as_deref(),
            Omitted::DefaultNamespace,
        )
        .await?;
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
        let api: Api<Pod> = Api::namespaced(t.cluster.client(), &namespace);
        let ap = AttachParams::default()
            .container(container)
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let run = async {
            let mut process = api.exec(&p.pod, p.command.clone(), &ap).await?;
            let status = process.take_status();
            let (stdout, stderr) =
                tokio::join!(read_capped(process.stdout()), read_capped(process.stderr()));
            let status = match status {
                Some(s) => s.await,
                None => None,
            };
            let _ = process.join().await;
            Ok::<_, ::kube::Error>((
                stdout.map_err(::kube::Error::ReadEvents)?,
                stderr.map_err(::kube::Error::ReadEvents)?,
                status,
            ))
        };
        let ((stdout, cut_out), (stderr, cut_err), status) = t.cluster.run_for(limit, run).await.map_err(|e| {
            let mut err = tool_error(e);
            if err.kind == crate::core::error::ToolErrorKind::Timeout {
                err.message = format!("the command did not finish within {} s; raise timeout_seconds or run something shorter", limit.as_secs());
            }
            err
        })?;
        out.stdout = stdout;
        out.stderr = stderr;
        out.truncated = cut_out || cut_err;
        let (code, error) = exit_code(status.as_ref());
        out.exit_code = code;
        out.error = error;
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
        let t = target(
            ctx,
            p.cluster.as_deref(),
            "pods",
            Some("v1"),
            p.namespace.as_deref(),
            Omitted::DefaultNamespace,
        )
        .await?;
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
            // No target check: a pod's resourceVersion moves with every status update.
            target_version: None,
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

    /// Always `None`: a pod's resourceVersion changes with every status update (probes,
    /// restarts, conditions), so comparing it would refuse most approved execs for no reason.
    /// The command runs against whatever pod has the name when it is approved.
    async fn target_version(
        &self,
        _ctx: &ToolContext,
        _p: &ExecParams,
    ) -> Result<Option<String>, ToolError> {
        Ok(None)
    }
}

/// Read a stream to its end, keeping the first [`OUTPUT_CAP`] bytes.
async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>) -> std::io::Result<(String, bool)> {
    let Some(mut reader) = reader else {
        return Ok((String::new(), false));
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut truncated = false;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let room = OUTPUT_CAP.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        truncated |= n > room;
    }
    Ok((String::from_utf8_lossy(&kept).into_owned(), truncated))
}

/// Exit code from the exec status channel: Success → 0, NonZeroExitCode → its cause; a failure
/// without an exit code (command not found…) → its message.
pub fn exit_code(status: Option<&Status>) -> (Option<i32>, Option<String>) {
    let Some(s) = status else {
        return (None, Some("the API server sent no exit status".into()));
    };
    if s.status.as_deref() == Some("Success") {
        return (Some(0), None);
    }
    let code = s
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.trim().parse::<i32>().ok());
    match code {
        Some(c) => (Some(c), None),
        None => (
            None,
            Some(
                s.message
                    .clone()
                    .unwrap_or_else(|| "the command failed to run".into()),
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    #[test]
    fn exit_codes_come_from_the_status_channel() {
        let ok = Status {
            status: Some("Success".into()),
            ..Status::default()
        };
        assert_eq!(exit_code(Some(&ok)), (Some(0), None));
        let failed = Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some("3".into()),
                    field: None,
                }]),
                ..StatusDetails::default()
            }),
            ..Status::default()
        };
        assert_eq!(exit_code(Some(&failed)), (Some(3), None));
        let broken = Status {
            status: Some("Failure".into()),
            message: Some("executable file not found".into()),
            ..Status::default()
        };
        assert_eq!(
            exit_code(Some(&broken)),
            (None, Some("executable file not found".into()))
        );
    }

    #[tokio::test]
    async fn output_is_capped_but_drained() {
        let data = vec![b'x'; OUTPUT_CAP + 10];
        let (text, cut) = read_capped(Some(&data[..])).await.expect("read");
        assert_eq!(text.len(), OUTPUT_CAP);
        assert!(cut);
        let (text, cut) = read_capped(Some(&b"hi"[..])).await.expect("read");
        assert_eq!((text.as_str(), cut), ("hi", false));
    }
}
