//! How a search is made and scored. Full text: the query's words (stop words dropped, stemmed)
//! OR-ed over title, body and tags in the tantivy projection (`text.rs`), ranked by BM25
//! (title ×4, tags ×2, body ×1) with block-max WAND top-k, the kinds and tags asked for only
//! filtering, normalized by the best match of the query (so the best is 1). Hybrid, when vectors are
//! configured: the query's vector against every stored one of the asked kinds (brute force
//! cosine over one contiguous array, `vectors.rs`), and each candidate of either list scored
//! `(bm25_weight·bm25 + vector_weight·max(cosine, 0)) / (bm25_weight + vector_weight)`.
//! When the endpoint fails, full text alone answers and the answer says `degraded`.

use std::collections::HashMap;

use serde::Serialize;

use super::document::{Document, Kind};
use super::text::TextQuery;
use super::{Knowledge, KnowledgeError};

/// Most results one search returns.
pub const MAX_LIMIT: usize = 50;
/// Most words of a query that are searched for.
const MAX_TERMS: usize = 32;

/// Words that say nothing about a problem.
const STOP_WORDS: &[&str] = &[
    "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "been", "before", "being", "but", "by", "can", "did", "do", "does", "doing", "for",
    "from", "get", "gets", "getting", "got", "had", "has", "have", "how", "i", "if", "in", "into",
    "is", "it", "its", "just", "keep", "keeps", "me", "my", "of", "on", "or", "our", "out", "so",
    "some", "still", "than", "that", "the", "their", "them", "then", "there", "these", "they",
    "this", "to", "too", "up", "us", "very", "was", "we", "were", "what", "when", "where", "which",
    "while", "who", "why", "will", "with", "you", "your",
];

#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub text: String,
    /// Kinds to search; empty = runbooks, incidents and backlog items ([`Kind::SRE`]).
    pub kinds: Vec<Kind>,
    /// Only documents carrying at least one of these tags; empty = any.
    pub tags: Vec<String>,
    pub limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    FullText,
    Hybrid,
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub doc: Document,
    /// The combined score in [0, 1].
    pub score: f64,
    /// Normalized BM25 (0 when only the vector found it).
    pub bm25: f64,
    /// Cosine similarity, in hybrid mode.
    pub cosine: Option<f64>,
    /// The matched part of the body.
    pub snippet: String,
    /// Backlog items this match is (or is linked with, either way).
    pub backlog_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SearchAnswer {
    pub hits: Vec<Hit>,
    pub mode: Mode,
    /// Why vectors were configured but not used.
    pub degraded: Option<String>,
}

/// The searchable words of a query, lower case, stop words and repeats dropped.
pub fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let w = word.to_lowercase();
        if w.chars().count() < 2 || STOP_WORDS.contains(&w.as_str()) || out.contains(&w) {
            continue;
        }
        out.push(w);
        if out.len() == MAX_TERMS {
            break;
        }
    }
    out
}

/// `v` scaled to unit length; `None` for an empty or zero vector.
pub fn unit(mut v: Vec<f32>) -> Option<Vec<f32>> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if v.is_empty() || norm == 0.0 || !norm.is_finite() {
        return None;
    }
    for x in &mut v {
        *x /= norm;
    }
    Some(v)
}

/// Whether a document's tags hold one of `wanted`, whole and ignoring case (as the full-text
/// index's tag filter does).
fn tag_match(doc_tags: &[String], wanted: &[String]) -> bool {
    wanted.is_empty()
        || wanted.iter().any(|w| {
            let w = w.to_lowercase();
            doc_tags.iter().any(|t| t.to_lowercase() == w)
        })
}

impl Knowledge {
    /// Scored matches, best first. Errors name what is wrong with the request.
    pub async fn search(&self, req: &SearchRequest) -> Result<SearchAnswer, KnowledgeError> {
        if req.limit == 0 || req.limit > MAX_LIMIT {
            return Err(KnowledgeError::Query(format!(
                "`limit` {} is out of range; expected 1 to {MAX_LIMIT}",
                req.limit
            )));
        }
        if req.text.trim().is_empty() {
            return Err(KnowledgeError::Query(
                "the query is empty; describe the symptoms, service or error in a few words".into(),
            ));
        }
        let words = terms(&req.text);
        if words.is_empty() {
            return Err(KnowledgeError::Query(format!(
                "the query {:?} has no words to search for (only stop words or punctuation); name the symptom, service or error",
                req.text
            )));
        }
        let kinds = if req.kinds.is_empty() {
            Kind::SRE.to_vec()
        } else {
            req.kinds.clone()
        };
        // Full text alone needs the best `limit` (the best match, which normalizes, is among
        // them); hybrid scoring mixes a wider pool of both lists.
        let pool = (req.limit * 4).max(40);
        let query = TextQuery {
            words,
            kinds: kinds.clone(),
            tags: req.tags.clone(),
        };
        let wanted = if self.embedder.is_some() {
            pool
        } else {
            req.limit
        };
        let scored = self.index.text_search(&query, wanted)?;
        let best = scored.iter().map(|(_, s)| *s).fold(0.0_f64, f64::max);
        let bm25: HashMap<i64, f64> = scored.iter().copied().collect();
        let rowids: Vec<i64> = scored.iter().map(|(r, _)| *r).collect();
        let mut found: HashMap<i64, Hit> = HashMap::new();
        for (rowid, doc) in self.index.by_rowid(&rowids).await? {
            // The index filtered by tag already; this keeps a document rewritten meanwhile out.
            if !tag_match(&doc.tags, &req.tags) {
                continue;
            }
            let score = bm25.get(&rowid).copied().unwrap_or(0.0);
            found.insert(
                rowid,
                Hit {
                    doc,
                    score: 0.0,
                    bm25: if best > 0.0 {
                        (score / best).max(0.0)
                    } else {
                        0.0
                    },
                    cosine: None,
                    snippet: String::new(),
                    backlog_ids: Vec::new(),
                },
            );
        }
        let mut mode = Mode::FullText;
        let mut degraded = None;
        if let Some(embedder) = &self.embedder {
            let asked = [req.text.clone()];
            match embedder
                .embed(&asked)
                .await
                .map(|mut v| v.pop().and_then(unit))
            {
                Ok(Some(query)) => {
                    mode = Mode::Hybrid;
                    let near = self.nearest(&query, &kinds, &req.tags, pool);
                    let missing: Vec<i64> = near
                        .iter()
                        .map(|(r, _)| *r)
                        .filter(|r| !found.contains_key(r))
                        .collect();
                    for (rowid, doc) in self.index.by_rowid(&missing).await? {
                        found.insert(
                            rowid,
                            Hit {
                                doc,
                                score: 0.0,
                                bm25: 0.0,
                                cosine: None,
                                snippet: String::new(),
                                backlog_ids: Vec::new(),
                            },
                        );
                    }
                    let cos: HashMap<i64, f64> = near.into_iter().collect();
                    let stored = self.vectors.read().ok();
                    for (rowid, hit) in found.iter_mut() {
                        hit.cosine = Some(match cos.get(rowid) {
                            Some(c) => *c,
                            None => stored
                                .as_ref()
                                .and_then(|s| s.cosine(*rowid, &query))
                                .unwrap_or(0.0),
                        });
                    }
                }
                Ok(None) => {
                    degraded = Some(
                        "the embeddings endpoint gave an empty vector for the query; full text only"
                            .into(),
                    );
                }
                Err(e) => degraded = Some(format!("{e}; full text only")),
            }
        }
        let (wb, wv) = (self.config.bm25_weight, self.config.vector_weight);
        let mut hits: Vec<(i64, Hit)> = found.into_iter().collect();
        for (_, h) in &mut hits {
            h.score = match h.cosine {
                Some(c) if wb + wv > 0.0 => (wb * h.bm25 + wv * c.max(0.0)) / (wb + wv),
                _ => h.bm25,
            };
        }
        hits.sort_by(|(_, a), (_, b)| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.doc.id.cmp(&b.doc.id))
        });
        hits.truncate(req.limit);
        let snippets = if hits.iter().any(|(r, _)| bm25.contains_key(r)) {
            Some(self.index.snippets(&query)?)
        } else {
            None
        };
        let mut out = Vec::with_capacity(hits.len());
        for (rowid, mut h) in hits {
            // Snippets only for what is answered; a match by vector alone shows its beginning.
            let matched = match &snippets {
                Some(s) if bm25.contains_key(&rowid) => s.of(&h.doc.body),
                _ => None,
            };
            h.snippet = matched.unwrap_or_else(|| h.doc.body.chars().take(160).collect());
            h.backlog_ids = if h.doc.kind == Kind::Backlog {
                vec![h.doc.id.clone()]
            } else {
                self.index.backlog_links(&h.doc.id).await?
            };
            out.push(h);
        }
        Ok(SearchAnswer {
            hits: out,
            mode,
            degraded,
        })
    }

    /// The `n` stored vectors closest to `query` among `kinds` and `tags`.
    fn nearest(&self, query: &[f32], kinds: &[Kind], tags: &[String], n: usize) -> Vec<(i64, f64)> {
        let Ok(stored) = self.vectors.read() else {
            return Vec::new();
        };
        stored.nearest(query, kinds, |t| tag_match(t, tags), n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_become_words_without_stop_words_or_repeats() {
        let t = terms("Why is the \"payments\" DB OOMKilled again?? (pg-bouncer) payments");
        assert_eq!(t, ["payments", "db", "oomkilled", "pg", "bouncer"]);
    }

    #[test]
    fn tags_match_whole_ignoring_case() {
        let tags = vec!["Cert-Manager".to_string(), "postgres".to_string()];
        assert!(tag_match(&tags, &["cert-manager".into()]));
        assert!(tag_match(&tags, &[]));
        assert!(!tag_match(&tags, &["cert".into()]));
    }
}
