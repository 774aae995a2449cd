//! `memory.add_datapoints`: validate every DataPoint, then add them to Cognee as one document
//! each (or queue them in the store while Cognee is down). A bad item refuses the whole batch.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::cognee::AddOutcome;
use crate::adapters::cognee::datapoint::{DataPointInput, validate};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Preview, Risk, Target, TypedTool};

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddParams {
    /// 1 to 100 DataPoints.
    #[schemars(length(min = 1, max = 100))]
    pub datapoints: Vec<DataPointInput>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AddedPoint {
    pub id: String,
    pub kind: String,
    pub key: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AddOutput {
    /// `added` (Cognee accepted them), `queued` (kept; sent in order when Cognee is back) or
    /// `indexed` (no Cognee configured: in the embedded index only).
    pub status: &'static str,
    pub dataset: String,
    pub count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_seq: Option<i64>,
    /// Why they were queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub datapoints: Vec<AddedPoint>,
}

pub struct AddDatapoints;

fn checked(p: &AddParams) -> Result<Vec<crate::adapters::cognee::datapoint::DataPoint>, ToolError> {
    validate(&p.datapoints).map_err(|problems| {
        ToolError::invalid_arguments(format!("nothing was added: {}", problems.join("; ")))
    })
}

impl TypedTool for AddDatapoints {
    type Params = AddParams;
    type Output = AddOutput;
    const NAME: &'static str = "memory.add_datapoints";
    const TOOLSET: &'static str = "memory";
    const TITLE: &'static str = "Add DataPoints to memory";
    const DESCRIPTION: &'static str = "Add domains, integrations, reviews or incidents to Cognee memory. Ids are stable per kind+key, so re-adding is harmless. All are checked first; one bad item adds nothing. While Cognee is down they are queued and sent later in order.";
    const RISK: Risk = Risk::Write;
    const IDEMPOTENT: bool = true;

    fn target(&self, _p: &AddParams) -> Option<Target> {
        Some(Target {
            kind: Some("DataPoint".into()),
            ..Target::default()
        })
    }

    async fn preview(
        &self,
        ctx: &ToolContext,
        p: &AddParams,
    ) -> Result<Option<Preview>, ToolError> {
        let points = checked(p)?;
        let names: Vec<String> = points
            .iter()
            .map(|d| format!("{} {}", d.kind, d.key))
            .collect();
        Ok(Some(Preview {
            summary: format!(
                "would add {} DataPoint(s) to Cognee dataset {}: {}",
                points.len(),
                ctx.adapters.memory.dataset(),
                names.join(", ")
            ),
            ..Preview::default()
        }))
    }

    async fn call(&self, ctx: &ToolContext, p: AddParams) -> Result<AddOutput, ToolError> {
        let points = checked(&p)?;
        let memory = &ctx.adapters.memory;
        let outcome = memory.add(&points).await?;
        let datapoints = points
            .into_iter()
            .map(|d| AddedPoint {
                id: d.id,
                kind: d.kind,
                key: d.key,
            })
            .collect::<Vec<_>>();
        let mut out = AddOutput {
            status: "added",
            dataset: memory.dataset().to_string(),
            count: datapoints.len(),
            pipeline_run_id: None,
            queue_seq: None,
            reason: None,
            datapoints,
        };
        match outcome {
            AddOutcome::Added(run) => out.pipeline_run_id = Some(run.pipeline_run_id),
            AddOutcome::Queued { seq, reason } => {
                out.status = "queued";
                out.queue_seq = Some(seq);
                out.reason = Some(reason);
            }
            AddOutcome::Indexed => {
                out.status = "indexed";
                out.reason = Some(
                    "Cognee is not configured; kept in the embedded knowledge index only".into(),
                );
            }
        }
        Ok(out)
    }
}
