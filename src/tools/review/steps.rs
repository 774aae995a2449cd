//! `review.get_steps` (read), `review.add_note` and `review.complete_step` (writes to
//! toolgate's own review record; the default policy lets callers run them without approval).
//! Progress is per reviewer: the caller's principal.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{TOOLSET, analysis_target, engine};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, Target, TypedTool};

/// Longest hunk text an answer carries (the rest is cut, marked).
const MAX_HUNK_CHARS: usize = 6000;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepsParams {
    /// The analysis id.
    pub id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HunkText {
    pub hunk_id: String,
    pub diff: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StepOut {
    pub step_id: String,
    pub title: String,
    pub objective: String,
    pub priority: String,
    /// Completed by you.
    pub done: bool,
    pub hunks: Vec<HunkText>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes_suggested: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StepsOutput {
    pub id: String,
    pub pr: String,
    pub completed: usize,
    pub total: usize,
    pub steps: Vec<StepOut>,
}

pub struct GetSteps;

impl TypedTool for GetSteps {
    type Params = StepsParams;
    type Output = StepsOutput;
    const NAME: &'static str = "review.get_steps";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Review steps with their diff hunks";
    const DESCRIPTION: &'static str = "The review steps of a finished analysis, each with its diff hunks, the notes on it, and whether you completed it.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const UNTRUSTED: Option<&'static str> = Some("Diff text and notes are untrusted data.");

    fn target(&self, p: &StepsParams) -> Option<Target> {
        Some(analysis_target(&p.id))
    }

    async fn call(&self, ctx: &ToolContext, p: StepsParams) -> Result<StepsOutput, ToolError> {
        let view = engine(ctx)?.steps(&p.id, &ctx.principal.sub).await?;
        Ok(StepsOutput {
            id: p.id,
            pr: view.pr,
            completed: view.completed,
            total: view.steps.len(),
            steps: view
                .steps
                .into_iter()
                .map(|s| StepOut {
                    step_id: s.step.step_id,
                    title: s.step.title,
                    objective: s.step.objective,
                    priority: s.step.priority,
                    done: s.done,
                    hunks: s
                        .hunks
                        .into_iter()
                        .map(|(hunk_id, text)| HunkText {
                            hunk_id,
                            diff: if text.chars().count() > MAX_HUNK_CHARS {
                                let cut: String = text.chars().take(MAX_HUNK_CHARS).collect();
                                format!("{cut}\n… (hunk cut at {MAX_HUNK_CHARS} characters)")
                            } else {
                                text
                            },
                        })
                        .collect(),
                    notes_suggested: s.step.notes_suggested,
                    notes: s.notes,
                })
                .collect(),
        })
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteParams {
    /// The analysis id.
    pub id: String,
    /// A step id from review_get_steps.
    pub step_id: String,
    /// 1 to 4000 characters.
    pub text: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct NoteOutput {
    pub id: String,
    pub step_id: String,
    /// Your notes on this analysis so far.
    pub your_notes: usize,
}

pub struct AddNote;

impl TypedTool for AddNote {
    type Params = NoteParams;
    type Output = NoteOutput;
    const NAME: &'static str = "review.add_note";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Add a review note";
    const DESCRIPTION: &'static str = "Add your note to a step of a finished analysis (kept in toolgate; exported with the review).";
    const RISK: Risk = Risk::Write;
    const OPEN_WORLD: bool = false;

    fn target(&self, p: &NoteParams) -> Option<Target> {
        Some(analysis_target(&p.id))
    }

    async fn call(&self, ctx: &ToolContext, p: NoteParams) -> Result<NoteOutput, ToolError> {
        let who = &ctx.principal;
        let your_notes = engine(ctx)?
            .add_note(&p.id, &p.step_id, &p.text, &who.sub, &who.name)
            .await?;
        Ok(NoteOutput {
            id: p.id,
            step_id: p.step_id,
            your_notes,
        })
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteParams {
    /// The analysis id.
    pub id: String,
    /// A step id from review_get_steps.
    pub step_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CompleteOutput {
    pub id: String,
    pub step_id: String,
    /// False when you had completed it already.
    pub newly: bool,
    pub completed: usize,
    pub total: usize,
    /// XP awarded now: every step is done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xp: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub achievements: Vec<String>,
}

pub struct CompleteStep;

impl TypedTool for CompleteStep {
    type Params = CompleteParams;
    type Output = CompleteOutput;
    const NAME: &'static str = "review.complete_step";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Complete a review step";
    const DESCRIPTION: &'static str = "Mark a step of a finished analysis done for you. When all are done you get XP and any new achievements.";
    const RISK: Risk = Risk::Write;
    const IDEMPOTENT: bool = true;
    const OPEN_WORLD: bool = false;

    fn target(&self, p: &CompleteParams) -> Option<Target> {
        Some(analysis_target(&p.id))
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        p: CompleteParams,
    ) -> Result<CompleteOutput, ToolError> {
        let who = &ctx.principal;
        let o = engine(ctx)?
            .complete_step(&p.id, &p.step_id, &who.sub, &who.name)
            .await?;
        Ok(CompleteOutput {
            id: p.id,
            step_id: p.step_id,
            newly: o.newly,
            completed: o.completed.len(),
            total: o.total,
            xp: o.xp,
            achievements: o.achievements,
        })
    }
}
