//! The seam where an embedded index stands in for Cognee: it keeps every DataPoint added through
//! memory (sent or queued), and answers `memory.search` and `memory.suggest_integration_path`
//! when Cognee is unconfigured or down. The embedded knowledge index (`src/knowledge/memory.rs`)
//! implements it; the dispatcher hands it over when it is given the index. Without one those
//! tools say that Cognee is unavailable and that no embedded index is configured.

use futures::future::BoxFuture;

use super::datapoint::DataPoint;

/// A document the embedded index found, with its score (higher is better).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredDocument {
    /// The index's id of the document (a DataPoint id where it holds DataPoints).
    pub id: String,
    /// DataPoint kind or the index's own kind (runbook, incident, backlog).
    pub kind: String,
    pub title: String,
    pub text: String,
    pub score: f64,
}

/// An index that can stand in for Cognee's search.
pub trait MemoryFallback: Send + Sync {
    /// The `top_k` best documents for `query`, only of `kinds` when not empty.
    fn search<'a>(
        &'a self,
        query: &'a str,
        kinds: &'a [String],
        top_k: usize,
    ) -> BoxFuture<'a, Result<Vec<ScoredDocument>, String>>;

    /// Keep validated DataPoints (again: the same DataPoint replaces itself).
    fn remember<'a>(&'a self, points: &'a [DataPoint]) -> BoxFuture<'a, Result<(), String>>;
}
