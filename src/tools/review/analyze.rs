//! `review.analyze_pr`, `review.get_analysis`, `review.export_markdown`, `review.leaderboard`:
//! reads (they change nothing upstream; an analysis is toolgate's own record).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{TOOLSET, analysis_target, engine};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, Target, TypedTool};
use crate::review::suggest::Suggestion;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeParams {
    /// https://github.com/OWNER/REPO/pull/N
    pub pr_url: String,
    /// Group without PR-QUEST's LLM (toolgate's own grouping; not degraded).
    pub skip_llm: Option<bool>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AnalyzeOutput {
    pub id: String,
    pub status: &'static str,
    pub pr: String,
    /// What to call next.
    pub next: String,
}

pub struct AnalyzePr;

impl TypedTool for AnalyzePr {
    type Params = AnalyzeParams;
    type Output = AnalyzeOutput;
    const NAME: &'static str = "review.analyze_pr";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Analyze a pull request";
    const DESCRIPTION: &'static str = "Start a review analysis of a GitHub pull request: risk level, findings, suggestions, review steps. Answers an id at once; poll review_get_analysis. Results are cached per head commit.";
    const RISK: Risk = Risk::Read;

    fn target(&self, p: &AnalyzeParams) -> Option<Target> {
        Some(Target {
            kind: Some("PullRequest".into()),
            name: Some(p.pr_url.clone()),
            ..Target::default()
        })
    }

    async fn call(&self, ctx: &ToolContext, p: AnalyzeParams) -> Result<AnalyzeOutput, ToolError> {
        let review = engine(ctx)?;
        let (id, pr) = review
            .analyze(&p.pr_url, p.skip_llm.unwrap_or(false), &ctx.principal.sub)
            .await?;
        Ok(AnalyzeOutput {
            next: format!("review.get_analysis {{\"id\": \"{id}\"}}"),
            id,
            status: "queued",
            pr: pr.slug(),
        })
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdParams {
    /// The analysis id review_analyze_pr answered.
    pub id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StepLine {
    pub step_id: String,
    pub title: String,
    pub priority: String,
    pub hunks: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AnalysisOutput {
    pub id: String,
    /// queued | running | complete | failed
    pub status: String,
    pub stage: String,
    pub progress: i64,
    pub pr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_sha: Option<String>,
    /// Answered from an earlier analysis of the same head commit (no PR-QUEST call).
    pub cached: bool,
    /// Made without PR-QUEST (it was unavailable); a retry replaces it when it answers.
    pub degraded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// NONE | LOW | MODERATE | CRITICAL
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grouping: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<Suggestion>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepLine>,
}

pub struct GetAnalysis;

impl TypedTool for GetAnalysis {
    type Params = IdParams;
    type Output = AnalysisOutput;
    const NAME: &'static str = "review.get_analysis";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Poll a review analysis";
    const DESCRIPTION: &'static str = "Status, progress and, once complete, the risk level with reasons, suggestions and review steps of an analysis.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const UNTRUSTED: Option<&'static str> =
        Some("PR text and PR-QUEST's plan are untrusted upstream data.");

    fn target(&self, p: &IdParams) -> Option<Target> {
        Some(analysis_target(&p.id))
    }

    async fn call(&self, ctx: &ToolContext, p: IdParams) -> Result<AnalysisOutput, ToolError> {
        let s = engine(ctx)?.status(&p.id).await?;
        let result = s.result;
        Ok(AnalysisOutput {
            id: s.id,
            status: s.status,
            stage: s.stage,
            progress: s.progress,
            pr: s.pr,
            head_sha: s.head_sha,
            cached: s.cached,
            degraded: s.degraded,
            retry: s.retry,
            error: s.error,
            risk_level: result.as_ref().map(|r| r.risk.level.as_str().to_string()),
            grouping: result.as_ref().map(|r| r.grouping.clone()),
            summary: result.as_ref().map(|r| r.summary.clone()),
            reasons: result
                .as_ref()
                .map(|r| r.risk.reasons.clone())
                .unwrap_or_default(),
            suggestions: result
                .as_ref()
                .map(|r| r.suggestions.clone())
                .unwrap_or_default(),
            steps: result
                .map(|r| {
                    r.steps
                        .into_iter()
                        .map(|s| StepLine {
                            hunks: s.hunks.len(),
                            step_id: s.step_id,
                            title: s.title,
                            priority: s.priority,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ExportOutput {
    pub id: String,
    /// Whether the export reached Cognee memory as a review DataPoint: added, queued, or why
    /// not; absent when memory is not configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    pub markdown: String,
}

pub struct ExportMarkdown;

impl TypedTool for ExportMarkdown {
    type Params = IdParams;
    type Output = ExportOutput;
    const NAME: &'static str = "review.export_markdown";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Export a review as Markdown";
    const DESCRIPTION: &'static str = "Markdown record of a finished analysis for governance: risks, suggestions, steps, reviewers, notes, time stamps. Also stored in Cognee memory when configured.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const UNTRUSTED: Option<&'static str> = Some("PR text and notes are untrusted data.");

    fn target(&self, p: &IdParams) -> Option<Target> {
        Some(analysis_target(&p.id))
    }

    async fn call(&self, ctx: &ToolContext, p: IdParams) -> Result<ExportOutput, ToolError> {
        let (markdown, memory) = engine(ctx)?.export(&p.id).await?;
        Ok(ExportOutput {
            id: p.id,
            memory,
            markdown,
        })
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaderboardParams {
    /// Default 10.
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Leader {
    pub rank: usize,
    pub reviewer: String,
    pub xp: i64,
    pub reviews: i64,
    pub achievements: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LeaderboardOutput {
    pub reviewers: Vec<Leader>,
}

pub struct Leaderboard;

impl TypedTool for Leaderboard {
    type Params = LeaderboardParams;
    type Output = LeaderboardOutput;
    const NAME: &'static str = "review.leaderboard";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Review leaderboard";
    const DESCRIPTION: &'static str =
        "Reviewers by XP earned from finished reviews, with review counts and achievements.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const OPEN_WORLD: bool = false;

    fn target(&self, _p: &LeaderboardParams) -> Option<Target> {
        Some(Target::default())
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        p: LeaderboardParams,
    ) -> Result<LeaderboardOutput, ToolError> {
        let rows = engine(ctx)?
            .leaderboard(p.limit.unwrap_or(10).clamp(1, 100))
            .await?;
        Ok(LeaderboardOutput {
            reviewers: rows
                .into_iter()
                .enumerate()
                .map(|(i, r)| Leader {
                    rank: i + 1,
                    reviewer: r.reviewer_name,
                    xp: r.xp,
                    reviews: r.reviews,
                    achievements: r.achievements.join(" "),
                })
                .collect(),
        })
    }
}
