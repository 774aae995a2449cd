//! The seam where an embedded index answers `memory.search` and
//! `memory.suggest_integration_path` when Cognee is unconfigured or down. Nothing implements it
//! yet: the embedded knowledge index (`src/knowledge/`) is wired in here once it exists
//! (`Memory::set_fallback`). Until then those tools say that Cognee is unavailable and that no
//! embedded index is configured.

use futures::future::BoxFuture;

/// A document the embedded index found, with its score (higher is better).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredDocument {
    /// The index's id of the document (a DataPoint id where it holds DataPoints).
    pub id: String,
    /// DataPoint kind or the index's own kind (runbook, incident, pattern).
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
}
