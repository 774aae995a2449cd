//! `memory.cognify` (start building Cognee's graph of the memory dataset; answers the run id,
//! and with `wait` polls until it ends or the deadline passes) and `memory.status` (the
//! dataset's cognify status and the queue of adds waiting for Cognee).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::cognee::QueueCounts;
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Preview, Risk, Target, TypedTool};

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CognifyParams {
    /// Poll until the run ends (at most memory.cognee.cognify_deadline). Default false.
    pub wait: Option<bool>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CognifyOutput {
    pub pipeline_run_id: String,
    pub dataset: String,
    pub dataset_id: String,
    /// Cognee's answer to the start (PipelineRunStarted, …).
    pub run_status: String,
    /// The dataset's status when polling stopped (DATASET_PROCESSING_COMPLETED, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Polling reached the deadline before the run ended; check memory.status later.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_seconds: Option<f64>,
}

fn dataset_target() -> Target {
    Target {
        kind: Some("Dataset".into()),
        ..Target::default()
    }
}

pub struct Cognify;

impl TypedTool for Cognify {
    type Params = CognifyParams;
    type Output = CognifyOutput;
    const NAME: &'static str = "memory.cognify";
    const TOOLSET: &'static str = "memory";
    const TITLE: &'static str = "Cognify the memory dataset";
    const DESCRIPTION: &'static str = "Start Cognee's knowledge-graph build of the memory dataset; answers the run id. wait=true polls until it ends or the configured deadline passes.";
    const RISK: Risk = Risk::Write;

    fn target(&self, _p: &CognifyParams) -> Option<Target> {
        Some(dataset_target())
    }

    async fn preview(
        &self,
        ctx: &ToolContext,
        _p: &CognifyParams,
    ) -> Result<Option<Preview>, ToolError> {
        Ok(Some(Preview {
            summary: format!(
                "would start cognify of Cognee dataset {} (LLM and embedding calls on Cognee's side)",
                ctx.adapters.memory.dataset()
            ),
            ..Preview::default()
        }))
    }

    async fn call(&self, ctx: &ToolContext, p: CognifyParams) -> Result<CognifyOutput, ToolError> {
        let memory = &ctx.adapters.memory;
        let wait = p.wait.unwrap_or(false);
        let state = memory.cognify(wait, None).await?;
        if state.status.as_deref() == Some("DATASET_PROCESSING_ERRORED") {
            return Err(ToolError::upstream(format!(
                "Cognee's cognify run {} of dataset {} errored (DATASET_PROCESSING_ERRORED); Cognee's log says why (often its LLM or embedding endpoint)",
                state.run.pipeline_run_id,
                memory.dataset()
            )));
        }
        Ok(CognifyOutput {
            pipeline_run_id: state.run.pipeline_run_id,
            dataset: memory.dataset().to_string(),
            dataset_id: state.run.dataset_id,
            run_status: state.run.status,
            status: state.status,
            timed_out: state.timed_out,
            waited_seconds: wait.then(|| round_ms(state.waited)),
        })
    }
}

fn round_ms(d: Duration) -> f64 {
    (d.as_millis() as f64) / 1000.0
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// An empty `properties`, which clients (OpenAI's) require on an object schema.
#[schemars(extend("properties" = {}))]
pub struct StatusParams {}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusOutput {
    pub dataset: String,
    /// Absent when Cognee has no such dataset yet (nothing was added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_id: Option<String>,
    /// The cognify status (DATASET_PROCESSING_STARTED, …_COMPLETED, …_ERRORED).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `ok`, or why Cognee did not answer.
    pub cognee: String,
    /// Adds waiting for Cognee in the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueCounts>,
}

pub struct Status;

impl TypedTool for Status {
    type Params = StatusParams;
    type Output = StatusOutput;
    const NAME: &'static str = "memory.status";
    const TOOLSET: &'static str = "memory";
    const TITLE: &'static str = "Memory dataset status";
    const DESCRIPTION: &'static str =
        "Cognify status of the memory dataset, and how many adds wait in the queue for Cognee.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;

    fn target(&self, _p: &StatusParams) -> Option<Target> {
        Some(dataset_target())
    }

    async fn call(&self, ctx: &ToolContext, _p: StatusParams) -> Result<StatusOutput, ToolError> {
        let memory = &ctx.adapters.memory;
        let queue = memory.queue_counts().await?;
        let (dataset_id, status, cognee) = match memory.status().await {
            Ok(Some((id, status))) => (Some(id), status, "ok".to_string()),
            Ok(None) => (None, None, "ok".to_string()),
            // Down: the queue is still worth seeing.
            Err(e) if e.is_unavailable() && memory.configured() => (None, None, e.to_string()),
            Err(e) => return Err(e.into()),
        };
        Ok(StatusOutput {
            dataset: memory.dataset().to_string(),
            dataset_id,
            status,
            cognee,
            queue,
        })
    }
}
