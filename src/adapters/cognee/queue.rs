//! The durable queue of adds made while Cognee was down, as the memory adapter needs it. The
//! store keeps the rows (`memory_queue`); the app wires the store in behind this trait, so the
//! adapter imports no store. Rows are replayed oldest first and marked done only after Cognee
//! accepted them: a crash in between sends the same documents again, which Cognee's
//! content-hash dedup makes harmless.

use futures::future::BoxFuture;

use super::datapoint::Document;

/// One queued add: the dataset and the documents of one `memory.add_datapoints` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedAdd {
    /// Order of arrival; replay goes by it.
    pub seq: i64,
    pub dataset: String,
    pub documents: Vec<Document>,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// How much waits, for `memory.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct QueueCounts {
    /// Adds waiting for Cognee.
    pub pending: i64,
    /// Adds replayed since they were queued (kept until retention prunes them).
    pub replayed: i64,
    /// Why the last replay attempt of the oldest pending add failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Where queued adds are kept. Errors are the store's message.
pub trait AddQueue: Send + Sync {
    /// Append one add; returns its seq.
    fn enqueue<'a>(
        &'a self,
        dataset: &'a str,
        documents: &'a [Document],
    ) -> BoxFuture<'a, Result<i64, String>>;
    /// The oldest pending adds, in order.
    fn pending(&self, limit: i64) -> BoxFuture<'_, Result<Vec<QueuedAdd>, String>>;
    /// Cognee accepted this add.
    fn mark_done(&self, seq: i64) -> BoxFuture<'_, Result<(), String>>;
    /// A replay attempt failed; keep the reason (never a credential).
    fn record_failure<'a>(&'a self, seq: i64, error: &'a str) -> BoxFuture<'a, Result<(), String>>;
    fn counts(&self) -> BoxFuture<'_, Result<QueueCounts, String>>;
}
