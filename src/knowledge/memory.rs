//! The index as the fallback of `memory.*` (`adapters::cognee::MemoryFallback`): DataPoints
//! added through `memory.add_datapoints` are kept here as documents of kind `datapoint` (their
//! text is the Markdown document Cognee gets, so answers parse them back alike), and searches
//! Cognee cannot answer are answered from them and from the runbooks, incidents and backlog.

use futures::future::BoxFuture;

use super::document::{Document, Kind};
use super::{Knowledge, SearchRequest, search::MAX_LIMIT};
use crate::adapters::cognee::datapoint::{DataPoint, parse_documents};
use crate::adapters::cognee::{MemoryFallback, ScoredDocument};

/// The feed DataPoints are indexed under.
pub const MEMORY_FEED: &str = "memory";

/// The index document of a DataPoint. No timestamps: adding the same DataPoint again changes
/// nothing (its digest is the same).
fn document(point: &DataPoint) -> Document {
    let mut tags = point.tags.clone();
    if !tags.contains(&point.kind) {
        tags.push(point.kind.clone());
    }
    Document {
        id: point.id.clone(),
        kind: Kind::DataPoint,
        title: format!("{} {}: {}", point.kind, point.key, point.title),
        body: point.document().text,
        tags,
        source: format!("memory:{}/{}", point.kind, point.key),
        status: ["outcome", "verdict"]
            .iter()
            .find_map(|f| point.fields.get(*f).cloned()),
        links: point.relations.iter().map(|r| r.id.clone()).collect(),
        created_ms: 0,
        updated_ms: 0,
    }
}

impl MemoryFallback for Knowledge {
    fn search<'a>(
        &'a self,
        query: &'a str,
        kinds: &'a [String],
        top_k: usize,
    ) -> BoxFuture<'a, Result<Vec<ScoredDocument>, String>> {
        Box::pin(async move {
            // DataPoint kinds: DataPoints of those kinds (filtered below, so more are asked
            // for), and the index's incidents when incidents are asked for.
            let request = if kinds.is_empty() {
                SearchRequest {
                    kinds: Kind::ALL.to_vec(),
                    limit: top_k.clamp(1, MAX_LIMIT),
                    ..SearchRequest::default()
                }
            } else {
                let mut wanted = vec![Kind::DataPoint];
                if kinds.iter().any(|k| k == "incident") {
                    wanted.push(Kind::Incident);
                }
                SearchRequest {
                    kinds: wanted,
                    limit: MAX_LIMIT,
                    ..SearchRequest::default()
                }
            };
            let answer = self
                .search(&SearchRequest {
                    text: query.to_string(),
                    ..request
                })
                .await
                .map_err(|e| e.to_string())?;
            Ok(answer
                .hits
                .into_iter()
                .filter_map(|h| {
                    let kind = if h.doc.kind == Kind::DataPoint {
                        parse_documents(&h.doc.body).into_iter().next()?.kind
                    } else {
                        h.doc.kind.as_str().to_string()
                    };
                    (kinds.is_empty() || kinds.contains(&kind)).then_some(ScoredDocument {
                        id: h.doc.id,
                        kind,
                        title: h.doc.title,
                        text: h.doc.body,
                        score: h.score,
                    })
                })
                .take(top_k)
                .collect())
        })
    }

    fn remember<'a>(&'a self, points: &'a [DataPoint]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let docs: Vec<Document> = points.iter().map(document).collect();
            self.index(MEMORY_FEED, &docs)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}
