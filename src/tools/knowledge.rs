//! knowledge.* tools: search the embedded index (`src/knowledge/`) for patterns (backlog items
//! and what matched them), similar incidents and runbook sections. Read-only, no upstream but
//! the optional embeddings endpoint; answers carry indexed text, so they are marked untrusted.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::context::ToolContext;
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::tool::{Risk, Target, Tool, TypedTool, typed};
use crate::knowledge::{Hit, Kind, Knowledge, KnowledgeError, SearchAnswer, SearchRequest};

pub fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        typed(SearchPatterns),
        typed(SimilarIncidents),
        typed(SearchRunbooks),
    ]
}

const TOOLSET: &str = "knowledge";
const UNTRUSTED: &str = "Titles and excerpts are untrusted indexed text.";
const DEFAULT_LIMIT: u32 = 5;

fn index(ctx: &ToolContext) -> Result<&Arc<Knowledge>, ToolError> {
    ctx.knowledge.as_ref().ok_or_else(|| {
        ToolError::new(
            ToolErrorKind::Upstream,
            "the knowledge index is not configured: add a `knowledge:` section (runbooks_dir, backlog_file, incidents_file)",
        )
    })
}

/// Runs a search; request problems name the tool's argument.
async fn search(
    ctx: &ToolContext,
    argument: &str,
    text: String,
    kinds: Vec<Kind>,
    tags: Vec<String>,
    limit: Option<u32>,
) -> Result<SearchAnswer, ToolError> {
    let knowledge = index(ctx)?;
    let request = SearchRequest {
        text,
        kinds,
        tags,
        limit: limit.unwrap_or(DEFAULT_LIMIT) as usize,
    };
    knowledge.search(&request).await.map_err(|e| match e {
        KnowledgeError::Query(m) if m.starts_with("`limit`") => {
            ToolError::invalid_arguments(format!("argument {m}"))
        }
        KnowledgeError::Query(m) => {
            ToolError::invalid_arguments(format!("argument `{argument}`: {m}"))
        }
        other => ToolError::internal(other.to_string()),
    })
}

/// Scores as shown: three decimals.
fn round(score: f64) -> f64 {
    (score * 1000.0).round() / 1000.0
}

fn rfc3339(ms: i64) -> Option<String> {
    (ms > 0)
        .then(|| jiff::Timestamp::from_millisecond(ms).ok())
        .flatten()
        .map(|t| t.to_string())
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Pattern {
    pub id: String,
    /// runbook, incident or backlog.
    pub kind: Kind,
    pub title: String,
    /// In [0, 1]; see `mode`.
    pub score: f64,
    /// Backlog items this match is or is linked with.
    pub backlog_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    pub source: String,
    pub excerpt: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PatternsOutput {
    /// `full_text` (BM25) or `hybrid` (BM25 + vectors).
    pub mode: crate::knowledge::Mode,
    /// Why vectors were not used although configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
    pub count: usize,
    pub matches: Vec<Pattern>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatternsParams {
    /// What is seen: errors, symptoms, services.
    pub symptoms: String,
    /// Only matches with one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Most matches (default 5).
    #[schemars(range(min = 1, max = 50))]
    pub limit: Option<u32>,
}

pub struct SearchPatterns;

impl TypedTool for SearchPatterns {
    type Params = PatternsParams;
    type Output = PatternsOutput;
    const NAME: &'static str = "knowledge.search_patterns";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Search known problem patterns";
    const DESCRIPTION: &'static str = "Match symptoms against runbooks, past incidents and backlog items; scored matches with the backlog item ids they point to.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const OPEN_WORLD: bool = false;
    const BUDGET_FIELD: Option<&'static str> = Some("matches");
    const UNTRUSTED: Option<&'static str> = Some(UNTRUSTED);

    fn target(&self, _p: &PatternsParams) -> Option<Target> {
        Some(Target::default())
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        p: PatternsParams,
    ) -> Result<PatternsOutput, ToolError> {
        let answer = search(ctx, "symptoms", p.symptoms, Vec::new(), p.tags, p.limit).await?;
        let matches: Vec<Pattern> = answer
            .hits
            .into_iter()
            .map(|h: Hit| Pattern {
                id: h.doc.id,
                kind: h.doc.kind,
                title: h.doc.title,
                score: round(h.score),
                backlog_ids: h.backlog_ids,
                status: h.doc.status,
                source: h.doc.source,
                excerpt: h.snippet,
            })
            .collect();
        Ok(PatternsOutput {
            mode: answer.mode,
            degraded: answer.degraded,
            count: matches.len(),
            matches,
        })
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Incident {
    pub id: String,
    pub title: String,
    pub score: f64,
    /// e.g. resolved, firing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    pub backlog_ids: Vec<String>,
    pub source: String,
    pub excerpt: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct IncidentsOutput {
    pub mode: crate::knowledge::Mode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
    pub count: usize,
    pub incidents: Vec<Incident>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentsParams {
    /// What is happening now.
    pub description: String,
    /// Most incidents (default 5).
    #[schemars(range(min = 1, max = 50))]
    pub limit: Option<u32>,
}

pub struct SimilarIncidents;

impl TypedTool for SimilarIncidents {
    type Params = IncidentsParams;
    type Output = IncidentsOutput;
    const NAME: &'static str = "knowledge.similar_incidents";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Find similar past incidents";
    const DESCRIPTION: &'static str = "Past incidents and received alerts most like a description, scored, with linked backlog ids.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const OPEN_WORLD: bool = false;
    const BUDGET_FIELD: Option<&'static str> = Some("incidents");
    const UNTRUSTED: Option<&'static str> = Some(UNTRUSTED);

    fn target(&self, _p: &IncidentsParams) -> Option<Target> {
        Some(Target::default())
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        p: IncidentsParams,
    ) -> Result<IncidentsOutput, ToolError> {
        let answer = search(
            ctx,
            "description",
            p.description,
            vec![Kind::Incident],
            Vec::new(),
            p.limit,
        )
        .await?;
        let incidents: Vec<Incident> = answer
            .hits
            .into_iter()
            .map(|h| Incident {
                started: rfc3339(h.doc.created_ms),
                id: h.doc.id,
                title: h.doc.title,
                score: round(h.score),
                status: h.doc.status,
                backlog_ids: h.backlog_ids,
                source: h.doc.source,
                excerpt: h.snippet,
            })
            .collect();
        Ok(IncidentsOutput {
            mode: answer.mode,
            degraded: answer.degraded,
            count: incidents.len(),
            incidents,
        })
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Section {
    /// `file#anchor`.
    pub id: String,
    pub heading: String,
    pub file: String,
    pub anchor: String,
    pub score: f64,
    pub excerpt: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RunbooksOutput {
    pub mode: crate::knowledge::Mode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
    pub count: usize,
    pub sections: Vec<Section>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunbooksParams {
    /// What to do or fix.
    pub query: String,
    /// Most sections (default 5).
    #[schemars(range(min = 1, max = 50))]
    pub limit: Option<u32>,
}

pub struct SearchRunbooks;

impl TypedTool for SearchRunbooks {
    type Params = RunbooksParams;
    type Output = RunbooksOutput;
    const NAME: &'static str = "knowledge.search_runbooks";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Search runbooks";
    const DESCRIPTION: &'static str =
        "Runbook sections matching a question, scored, with heading and file anchor.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const OPEN_WORLD: bool = false;
    const BUDGET_FIELD: Option<&'static str> = Some("sections");
    const UNTRUSTED: Option<&'static str> = Some(UNTRUSTED);

    fn target(&self, _p: &RunbooksParams) -> Option<Target> {
        Some(Target::default())
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        p: RunbooksParams,
    ) -> Result<RunbooksOutput, ToolError> {
        let answer = search(
            ctx,
            "query",
            p.query,
            vec![Kind::Runbook],
            Vec::new(),
            p.limit,
        )
        .await?;
        let sections: Vec<Section> = answer
            .hits
            .into_iter()
            .map(|h| {
                let (file, anchor) = match h.doc.source.split_once('#') {
                    Some((f, a)) => (f.to_string(), a.to_string()),
                    None => (h.doc.source.clone(), String::new()),
                };
                Section {
                    id: h.doc.id,
                    heading: h.doc.title,
                    file,
                    anchor,
                    score: round(h.score),
                    excerpt: h.snippet,
                }
            })
            .collect();
        Ok(RunbooksOutput {
            mode: answer.mode,
            degraded: answer.degraded,
            count: sections.len(),
            sections,
        })
    }
}
