//! Relevance of the index on a labelled query set (`tests/fixtures/knowledge/queries.jsonl`):
//! precision@3 and mean reciprocal rank, for the relevance test and the bench.
//!
//! precision@3 of a query = relevant ids among the top 3 / min(3, number of relevant ids), so
//! a query with one relevant document scores 1 when it is among the top 3; `strict_p3` divides
//! by 3 always. MRR = mean of 1/rank of the first relevant id (0 when none is in the top 10).

use std::path::Path;

use serde::Deserialize;

use super::document::Kind;
use super::{Knowledge, KnowledgeError, SearchRequest};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelledQuery {
    pub query: String,
    /// `search_runbooks`, `similar_incidents` or `search_patterns` (the kinds each searches).
    pub tool: String,
    pub relevant: Vec<String>,
}

impl LabelledQuery {
    pub fn kinds(&self) -> Result<Vec<Kind>, KnowledgeError> {
        match self.tool.as_str() {
            "search_runbooks" => Ok(vec![Kind::Runbook]),
            "similar_incidents" => Ok(vec![Kind::Incident]),
            "search_patterns" => Ok(Vec::new()),
            other => Err(KnowledgeError::Query(format!(
                "tool {other:?}: expected search_runbooks, similar_incidents or search_patterns"
            ))),
        }
    }
}

/// One query's outcome.
#[derive(Debug, Clone)]
pub struct Judged {
    pub query: String,
    pub top: Vec<String>,
    pub p3: f64,
    pub strict_p3: f64,
    pub reciprocal_rank: f64,
    pub degraded: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Figures {
    pub queries: Vec<Judged>,
    pub p3: f64,
    pub strict_p3: f64,
    pub mrr: f64,
}

/// A labelled corpus's layout: `runbooks/`, `backlog.jsonl`, `incidents.jsonl` (and
/// `queries.jsonl`), indexed in memory.
pub fn corpus_config(dir: &Path) -> super::KnowledgeConfig {
    super::KnowledgeConfig {
        runbooks_dir: Some(dir.join("runbooks")),
        backlog_file: Some(dir.join("backlog.jsonl")),
        incidents_file: Some(dir.join("incidents.jsonl")),
        ..super::KnowledgeConfig::in_memory()
    }
}

pub fn load_queries(path: &Path) -> Result<Vec<LabelledQuery>, KnowledgeError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| KnowledgeError::Feed(format!("cannot read {}: {e}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map_err(|e| {
                KnowledgeError::Feed(format!("{} line {}: {e}", path.display(), n + 1))
            })
        })
        .collect()
}

/// Runs every query (top 10) and scores it against its labels.
pub async fn evaluate(
    knowledge: &Knowledge,
    queries: &[LabelledQuery],
) -> Result<Figures, KnowledgeError> {
    let mut judged = Vec::with_capacity(queries.len());
    for q in queries {
        let answer = knowledge
            .search(&SearchRequest {
                text: q.query.clone(),
                kinds: q.kinds()?,
                tags: Vec::new(),
                limit: 10,
            })
            .await?;
        let top: Vec<String> = answer.hits.into_iter().map(|h| h.doc.id).collect();
        let relevant = |id: &String| q.relevant.contains(id);
        let in_top3 = top.iter().take(3).filter(|id| relevant(id)).count() as f64;
        let first = top.iter().position(relevant);
        judged.push(Judged {
            query: q.query.clone(),
            p3: in_top3 / q.relevant.len().clamp(1, 3) as f64,
            strict_p3: in_top3 / 3.0,
            reciprocal_rank: first.map_or(0.0, |r| 1.0 / (r + 1) as f64),
            top,
            degraded: answer.degraded,
        });
    }
    let n = judged.len().max(1) as f64;
    Ok(Figures {
        p3: judged.iter().map(|j| j.p3).sum::<f64>() / n,
        strict_p3: judged.iter().map(|j| j.strict_p3).sum::<f64>() / n,
        mrr: judged.iter().map(|j| j.reciprocal_rank).sum::<f64>() / n,
        queries: judged,
    })
}
