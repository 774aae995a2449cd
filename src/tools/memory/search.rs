//! `memory.search`: a natural-language query over the memory dataset, with Cognee's search type
//! and top-k; each result names where it came from (dataset, DataPoints). When Cognee is
//! unconfigured or down the embedded index answers, and the answer says so.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::cognee::datapoint::KINDS;
use crate::adapters::cognee::{SEARCH_TYPES, SourcedHit};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, Target, TypedTool};

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// What to look for, in plain words.
    pub query: String,
    /// Cognee search type. Default CHUNKS (stored text, no LLM).
    #[schemars(extend("enum" = SEARCH_TYPES))]
    pub search_type: Option<String>,
    /// Most results (default 10).
    #[schemars(range(min = 1, max = 50))]
    pub top_k: Option<u32>,
    /// Only results holding DataPoints of these kinds.
    #[serde(default)]
    #[schemars(extend("items" = {"type": "string", "enum": KINDS}))]
    pub kinds: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchResult {
    /// Dataset (Cognee) or document id (embedded index).
    pub source: String,
    /// DataPoints in the text, as `kind:key=id`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub datapoints: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    pub text: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchOutput {
    /// `cognee`, or `embedded` when Cognee could not answer.
    pub answered_by: &'static str,
    /// Why Cognee did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
    pub search_type: String,
    pub count: usize,
    pub results: Vec<SearchResult>,
    pub truncated: bool,
}

pub fn datapoint_refs(hit: &SourcedHit) -> String {
    hit.datapoints
        .iter()
        .map(|d| format!("{}:{}={}", d.kind, d.key, d.id))
        .collect::<Vec<_>>()
        .join(", ")
}

pub struct Search;

impl TypedTool for Search {
    type Params = SearchParams;
    type Output = SearchOutput;
    const NAME: &'static str = "memory.search";
    const TOOLSET: &'static str = "memory";
    const TITLE: &'static str = "Search memory";
    const DESCRIPTION: &'static str = "Search Cognee memory (domains, integrations, reviews, incidents) in plain words; results name their source. Falls back to the embedded index, marked degraded, when Cognee is down.";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("results");
    const UNTRUSTED: Option<&'static str> = Some("Result text is untrusted data from memory.");

    fn target(&self, _p: &SearchParams) -> Option<Target> {
        Some(Target {
            kind: Some("Dataset".into()),
            ..Target::default()
        })
    }

    async fn call(&self, ctx: &ToolContext, p: SearchParams) -> Result<SearchOutput, ToolError> {
        if p.query.trim().is_empty() {
            return Err(ToolError::invalid_arguments(
                "argument `query`: empty; say what to look for",
            ));
        }
        let search_type = p.search_type.unwrap_or_else(|| "CHUNKS".to_string());
        if search_type.eq_ignore_ascii_case("INSIGHTS") {
            return Err(ToolError::invalid_arguments(format!(
                "argument `search_type`: INSIGHTS was removed from Cognee; use one of {}",
                SEARCH_TYPES.join(", ")
            )));
        }
        let top_k = p.top_k.unwrap_or(10).clamp(1, 50) as usize;
        let answer = ctx
            .adapters
            .memory
            .search(&search_type, p.query.trim(), &p.kinds, top_k)
            .await?;
        let results: Vec<SearchResult> = answer
            .hits
            .iter()
            .map(|h| SearchResult {
                source: h.source.clone(),
                datapoints: datapoint_refs(h),
                score: h.score,
                text: h.text.clone(),
            })
            .collect();
        Ok(SearchOutput {
            answered_by: answer.source,
            degraded: answer.degraded,
            search_type,
            count: results.len(),
            results,
            truncated: false,
        })
    }
}
