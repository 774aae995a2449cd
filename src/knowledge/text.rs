//! The full-text projection of the index: a tantivy index of every document's title, body and
//! tags, ranked by BM25 with block-max WAND (top-k without scoring every match). Derived from
//! the SQLite documents (`index.rs`, the one source of truth), kept in step by every sync (one
//! commit per sync), and rebuilt from them when it is missing, of another schema version, or
//! behind (its commit carries the SQLite write generation it reflects). On disk it is a
//! directory beside the index file (`<path>.tantivy`); with an in-memory index it is in RAM.
//!
//! Scoring: the query's words (stemmed like the text) OR-ed over one field holding the title
//! four times, the body once and each tag twice — the weights of the FTS5 index this replaced,
//! which multiplied each column's term frequency by its weight within one BM25 (IDF over the
//! whole document, saturation over the weighted sum; tantivy's per-field scores would add a
//! title match's full BM25 four times instead). One term scorer per word also keeps block-max
//! WAND simple. The kind and the exact tags only filter (they add nothing to the score).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tantivy::query::{BooleanQuery, EnableScoring, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer,
    Stemmer, TextAnalyzer,
};
use tantivy::{
    BitSet, DocId, DocSet, IndexReader, IndexWriter, ReloadPolicy, Score, TERMINATED,
    TantivyDocument, Term,
};

use super::KnowledgeError;
use super::document::Kind;

/// Bumped whenever the fields or their analysis change: an index of another version is
/// rebuilt.
pub const SCHEMA_VERSION: u32 = 1;
/// How many times the title, the body and each tag are in the text field (their weights).
const TITLE_WEIGHT: usize = 4;
const BODY_WEIGHT: usize = 1;
const TAGS_WEIGHT: usize = 2;
/// Longest snippet, in characters.
const SNIPPET_CHARS: usize = 160;
/// The indexing memory (one thread).
const WRITER_BYTES: usize = 48_000_000;
const STEMMED: &str = "toolgate_en_stem";
const EXACT: &str = "toolgate_lower_raw";

/// What the index of one document is made of.
#[derive(Debug, Clone)]
pub struct TextDoc {
    pub rowid: i64,
    pub kind: Kind,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
}

/// One change to the projection.
#[derive(Debug, Clone)]
pub enum Op {
    Remove(i64),
    Add(TextDoc),
}

/// A full-text request: searchable words (already lower case, stop words dropped), the kinds
/// that may match (empty = any) and tags of which a match must carry one (empty = any).
#[derive(Debug, Clone, Default)]
pub struct TextQuery {
    pub words: Vec<String>,
    pub kinds: Vec<Kind>,
    pub tags: Vec<String>,
}

#[derive(Clone, Copy)]
struct Fields {
    rowid: Field,
    kind: Field,
    text: Field,
    tag: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    // Frequencies without positions: BM25 needs no more (there are no phrase queries).
    let stemmed = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(STEMMED)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let exact = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(EXACT)
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let fields = Fields {
        rowid: b.add_i64_field("rowid", INDEXED | FAST),
        kind: b.add_u64_field("kind", FAST),
        text: b.add_text_field("text", stemmed),
        tag: b.add_text_field("tag", exact),
    };
    (b.build(), fields)
}

fn kind_code(kind: Kind) -> u64 {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u64
}

/// What a commit of the projection says it reflects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stamp {
    schema: u32,
    generation: i64,
}

pub struct TextIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    fields: Fields,
    analyzer: TextAnalyzer,
    /// The generation the last commit reflects (`None`: never committed by this version).
    generation: Mutex<Option<i64>>,
    dir: Option<PathBuf>,
}

fn err(dir: &Option<PathBuf>, e: impl std::fmt::Display) -> KnowledgeError {
    KnowledgeError::Db(match dir {
        Some(d) => format!("full-text index at {}: {e}", d.display()),
        None => format!("in-memory full-text index: {e}"),
    })
}

fn stemmed_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// Where the projection of the index file `path` lives.
pub fn dir_beside(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tantivy");
    PathBuf::from(name)
}

impl TextIndex {
    /// Opens the projection in `dir` (created when missing; replaced when it is of another
    /// schema version), or a new one in RAM. Blocking.
    pub fn open(dir: Option<&Path>) -> Result<TextIndex, KnowledgeError> {
        let (schema, fields) = schema();
        let owned = dir.map(Path::to_path_buf);
        let (index, stamp) = match dir {
            None => (tantivy::Index::create_in_ram(schema), None),
            Some(d) => open_dir(d, schema).map_err(|e| err(&owned, e))?,
        };
        index.tokenizers().register(STEMMED, stemmed_analyzer());
        index.tokenizers().register(
            EXACT,
            TextAnalyzer::builder(RawTokenizer::default())
                .filter(LowerCaser)
                .build(),
        );
        let writer = index
            .writer_with_num_threads(1, WRITER_BYTES)
            .map_err(|e| match e {
                tantivy::TantivyError::LockFailure(..) => err(
                    &owned,
                    "it is in use by another process (two toolgates with the same knowledge.path?)",
                ),
                e => err(&owned, e),
            })?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| err(&owned, e))?;
        Ok(TextIndex {
            reader,
            writer: Mutex::new(writer),
            fields,
            analyzer: stemmed_analyzer(),
            generation: Mutex::new(stamp.map(|s| s.generation)),
            dir: owned,
        })
    }

    /// The SQLite write generation the projection reflects (`None` when it must be rebuilt).
    pub fn generation(&self) -> Option<i64> {
        self.generation.lock().ok().and_then(|g| *g)
    }

    /// Applies `ops` and commits them as reflecting `generation`; on failure nothing of them
    /// stays. Blocking.
    pub fn apply(&self, ops: Vec<Op>, generation: i64) -> Result<(), KnowledgeError> {
        self.write(false, ops, Some(generation))
    }

    /// Drops every document (the start of a rebuild); committed with the next `apply`/`add`.
    /// Blocking.
    pub fn clear(&self) -> Result<(), KnowledgeError> {
        self.write(true, Vec::new(), None)
    }

    /// Adds documents without committing (a rebuild's batches). Blocking.
    pub fn add(&self, docs: Vec<TextDoc>) -> Result<(), KnowledgeError> {
        self.write(false, docs.into_iter().map(Op::Add).collect(), None)
    }

    fn write(&self, clear: bool, ops: Vec<Op>, commit: Option<i64>) -> Result<(), KnowledgeError> {
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| err(&self.dir, "a writer panicked"))?;
        let result = (|| -> tantivy::Result<()> {
            if clear {
                writer.delete_all_documents()?;
            }
            let f = &self.fields;
            for op in ops {
                match op {
                    Op::Remove(rowid) => {
                        writer.delete_term(Term::from_field_i64(f.rowid, rowid));
                    }
                    Op::Add(doc) => {
                        // An update is a removal and an addition (the rowid is kept).
                        writer.delete_term(Term::from_field_i64(f.rowid, doc.rowid));
                        let mut d = TantivyDocument::new();
                        d.add_i64(f.rowid, doc.rowid);
                        d.add_u64(f.kind, kind_code(doc.kind));
                        for _ in 0..TITLE_WEIGHT {
                            d.add_text(f.text, &doc.title);
                        }
                        for _ in 0..BODY_WEIGHT {
                            d.add_text(f.text, &doc.body);
                        }
                        for tag in &doc.tags {
                            for _ in 0..TAGS_WEIGHT {
                                d.add_text(f.text, tag);
                            }
                            d.add_text(f.tag, tag);
                        }
                        writer.add_document(d)?;
                    }
                }
            }
            if let Some(generation) = commit {
                let stamp = serde_json::to_string(&Stamp {
                    schema: SCHEMA_VERSION,
                    generation,
                })
                .map_err(|e| tantivy::TantivyError::InternalError(e.to_string()))?;
                let mut prepared = writer.prepare_commit()?;
                prepared.set_payload(&stamp);
                prepared.commit()?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                if let Some(generation) = commit {
                    if let Ok(mut g) = self.generation.lock() {
                        *g = Some(generation);
                    }
                    self.reader.reload().map_err(|e| err(&self.dir, e))?;
                }
                Ok(())
            }
            Err(e) => {
                // Nothing half-applied stays: back to the last commit.
                if let Err(r) = writer.rollback() {
                    tracing::warn!(error = %r, "knowledge: rolling the full-text index back failed");
                }
                Err(err(&self.dir, e))
            }
        }
    }

    /// The words of `text` as the index holds them (stemmed).
    fn tokens(&self, text: &str) -> Vec<String> {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(token) = stream.next() {
            out.push(token.text.clone());
        }
        out
    }

    /// The scoring query: every stemmed word once, OR-ed.
    fn query(&self, q: &TextQuery) -> BooleanQuery {
        let mut stems: Vec<String> = Vec::new();
        for word in &q.words {
            for t in self.tokens(word) {
                if !stems.contains(&t) {
                    stems.push(t);
                }
            }
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = stems
            .iter()
            .map(|stem| {
                let term = TermQuery::new(
                    Term::from_field_text(self.fields.text, stem),
                    IndexRecordOption::WithFreqs,
                );
                (Occur::Should, Box::new(term) as Box<dyn Query>)
            })
            .collect();
        BooleanQuery::new(clauses)
    }

    /// The `k` best matches, best first: (rowid, BM25 score). Only documents of the asked kinds
    /// carrying one of the asked tags compete; block-max WAND skips those that cannot make the
    /// cut, with the threshold carried from segment to segment.
    pub fn search(&self, q: &TextQuery, k: usize) -> Result<Vec<(i64, f64)>, KnowledgeError> {
        let query = self.query(q);
        if k == 0 || query.clauses().is_empty() {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let weight = query
            .weight(EnableScoring::enabled_from_searcher(&searcher))
            .map_err(|e| err(&self.dir, e))?;
        let kinds: u64 = q.kinds.iter().map(|k| 1u64 << kind_code(*k)).sum();
        let any_kind = q.kinds.is_empty() || q.kinds.len() >= Kind::ALL.len();
        let tags: Vec<String> = q.tags.iter().map(|t| t.to_lowercase()).collect();
        let mut top: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(k + 1);
        let mut threshold = Score::MIN;
        for segment in searcher.segment_readers() {
            let fast = segment.fast_fields();
            let rowids = fast.i64("rowid").map_err(|e| err(&self.dir, e))?;
            let kind_column = fast.u64("kind").map_err(|e| err(&self.dir, e))?;
            let tagged = if tags.is_empty() {
                None
            } else {
                let set = self.tagged(segment, &tags).map_err(|e| err(&self.dir, e))?;
                match set {
                    Some(s) => Some(s),
                    None => continue,
                }
            };
            let alive = segment.alive_bitset();
            weight
                .for_each_pruning(threshold, segment, &mut |doc, score| {
                    let wanted = alive.is_none_or(|a| a.is_alive(doc))
                        && (any_kind
                            || kind_column
                                .first(doc)
                                .is_some_and(|c| kinds & (1u64 << c) != 0))
                        && tagged.as_ref().is_none_or(|t| t.contains(doc));
                    if wanted && let Some(rowid) = rowids.first(doc) {
                        top.push(Reverse(Scored { score, rowid }));
                        if top.len() > k {
                            top.pop();
                        }
                        if top.len() == k
                            && let Some(Reverse(worst)) = top.peek()
                        {
                            threshold = worst.score;
                        }
                    }
                    threshold
                })
                .map_err(|e| err(&self.dir, e))?;
        }
        let mut out: Vec<(i64, f64)> = top
            .into_iter()
            .map(|Reverse(s)| (s.rowid, f64::from(s.score)))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// The documents of `segment` carrying one of `tags` (lower case); `None` when none does.
    fn tagged(
        &self,
        segment: &tantivy::SegmentReader,
        tags: &[String],
    ) -> tantivy::Result<Option<BitSet>> {
        let inverted = segment.inverted_index(self.fields.tag)?;
        let mut set = BitSet::with_max_value(segment.max_doc().max(1));
        let mut any = false;
        for tag in tags {
            let term = Term::from_field_text(self.fields.tag, tag);
            if let Some(mut postings) = inverted.read_postings(&term, IndexRecordOption::Basic)? {
                let mut doc: DocId = postings.doc();
                while doc != TERMINATED {
                    set.insert(doc);
                    any = true;
                    doc = postings.advance();
                }
            }
        }
        Ok(any.then_some(set))
    }

    /// What makes the snippets of `q`'s matches (`None` when the query has no words).
    pub fn snippets(&self, q: &TextQuery) -> Result<Snippets, KnowledgeError> {
        let query = self.query(q);
        let searcher = self.reader.searcher();
        // The query's terms as the text field holds them, found in the body given.
        let mut generator = SnippetGenerator::create(&searcher, &query, self.fields.text)
            .map_err(|e| err(&self.dir, e))?;
        generator.set_max_num_chars(SNIPPET_CHARS);
        Ok(Snippets(generator))
    }
}

/// Makes the snippet of a matched body.
pub struct Snippets(SnippetGenerator);

impl Snippets {
    /// The part of `body` around the query's words, `…` marking what was cut; `None` when no
    /// word of the query is in it.
    pub fn of(&self, body: &str) -> Option<String> {
        let snippet = self.0.snippet(body);
        if snippet.highlighted().is_empty() {
            return None;
        }
        let range = snippet.fragment_range();
        let (head, tail) = match (body.get(..range.start), body.get(range.end..)) {
            (Some(h), Some(t)) => (h, t),
            _ => return Some(snippet.fragment().to_string()),
        };
        // `…` where words were cut; punctuation next to the fragment is kept instead.
        let mut out = String::new();
        if head.chars().any(char::is_alphanumeric) {
            out.push('…');
        } else {
            out.push_str(head.trim_start());
        }
        out.push_str(snippet.fragment());
        if tail.chars().any(char::is_alphanumeric) {
            out.push('…');
        } else {
            out.push_str(tail.trim_end());
        }
        Some(out)
    }
}

#[derive(Debug, Clone, Copy)]
struct Scored {
    score: Score,
    rowid: i64,
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    /// Higher score is greater; at equal scores the lower rowid is greater (it wins).
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.rowid.cmp(&self.rowid))
    }
}

/// Opens the projection in `dir`, or makes a new one: a directory without an index is used as
/// it is only when empty; an index of another schema version (or none stamped) is replaced.
fn open_dir(dir: &Path, schema: Schema) -> Result<(tantivy::Index, Option<Stamp>), String> {
    let exists = dir.exists();
    if exists {
        let has_meta = dir.join("meta.json").exists();
        if has_meta {
            let opened = tantivy::Index::open_in_dir(dir).map_err(|e| e.to_string());
            let stamp = opened.as_ref().ok().and_then(|index| {
                index
                    .load_metas()
                    .ok()
                    .and_then(|m| m.payload)
                    .and_then(|p| serde_json::from_str::<Stamp>(&p).ok())
            });
            match (opened, stamp) {
                (Ok(index), Some(s)) if s.schema == SCHEMA_VERSION && index.schema() == schema => {
                    return Ok((index, Some(s)));
                }
                (_, found) => {
                    tracing::info!(
                        dir = %dir.display(),
                        found = ?found,
                        expected = SCHEMA_VERSION,
                        "knowledge: the full-text index is of another version; rebuilding it"
                    );
                    std::fs::remove_dir_all(dir)
                        .map_err(|e| format!("cannot remove the old index: {e}"))?;
                }
            }
        } else if std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read the directory: {e}"))?
            .next()
            .is_some()
        {
            return Err(
                "the directory exists and holds something else than a full-text index; move it away"
                    .into(),
            );
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the directory: {e}"))?;
    let index = tantivy::Index::create_in_dir(dir, schema).map_err(|e| e.to_string())?;
    Ok((index, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(rowid: i64, kind: Kind, title: &str, body: &str, tags: &[&str]) -> TextDoc {
        TextDoc {
            rowid,
            kind,
            title: title.into(),
            body: body.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    /// Several segments (one commit each) of documents sharing a small vocabulary.
    fn corpus() -> TextIndex {
        let text = TextIndex::open(None).expect("open");
        let words = [
            "latency",
            "errors",
            "restart",
            "disk",
            "memory",
            "postgres",
            "nats",
            "dns",
            "certificate",
            "rollback",
        ];
        let kinds = [
            Kind::Incident,
            Kind::Runbook,
            Kind::Backlog,
            Kind::DataPoint,
        ];
        let mut rowid = 0;
        for batch in 0..4 {
            let mut ops = Vec::new();
            for n in 0..250usize {
                rowid += 1;
                let a = words[n % words.len()];
                let b = words[(n / 3 + batch) % words.len()];
                let c = words[(n * 7 + 1) % words.len()];
                ops.push(Op::Add(doc(
                    rowid,
                    kinds[n % kinds.len()],
                    &format!("{a} after {b}"),
                    &format!("{b} {c} seen on the service; {a} then {c} {c}"),
                    &[if n % 5 == 0 { "Payments" } else { "search" }],
                )));
            }
            text.apply(ops, batch as i64 + 1).expect("apply");
        }
        text
    }

    fn query(words: &[&str], kinds: &[Kind], tags: &[&str]) -> TextQuery {
        TextQuery {
            words: words.iter().map(|w| w.to_string()).collect(),
            kinds: kinds.to_vec(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn pruned_top_k_is_the_head_of_the_full_ranking_with_filters() {
        let text = corpus();
        for q in [
            query(&["restarting", "postgres", "errors"], &[], &[]),
            query(&["latency", "dns", "rollback"], &[Kind::Incident], &[]),
            query(
                &["memory", "disk"],
                &[Kind::Runbook, Kind::Backlog],
                &["payments"],
            ),
            query(&["certificate"], &[Kind::DataPoint], &["SEARCH"]),
        ] {
            let all = text.search(&q, 10_000).expect("search");
            assert!(all.len() > 10, "{q:?} matched {}", all.len());
            for k in [1, 3, 5, 10] {
                let top = text.search(&q, k).expect("search");
                let scores = |v: &[(i64, f64)]| v.iter().map(|(_, s)| *s).collect::<Vec<_>>();
                assert_eq!(scores(&top), scores(&all[..k]), "{q:?} k={k}");
            }
        }
        // The filters hold: every match of a kind-and-tag query is of that kind and tag.
        let q = query(&["memory"], &[Kind::Runbook], &["payments"]);
        for (rowid, _) in text.search(&q, 10_000).expect("search") {
            let n = ((rowid - 1) % 250) as usize;
            assert_eq!(n % 4, 1, "rowid {rowid} is not a runbook");
            assert_eq!(n % 5, 0, "rowid {rowid} is not tagged payments");
        }
    }

    #[test]
    fn the_title_weighs_more_than_the_body_and_words_are_stemmed() {
        let text = TextIndex::open(None).expect("open");
        text.apply(
            vec![
                Op::Add(doc(
                    1,
                    Kind::Runbook,
                    "Pod restarts",
                    "Look at the events.",
                    &[],
                )),
                Op::Add(doc(
                    2,
                    Kind::Runbook,
                    "Events",
                    "A pod restarted once.",
                    &[],
                )),
                Op::Add(doc(3, Kind::Runbook, "Disk full", "Nothing about it.", &[])),
            ],
            1,
        )
        .expect("apply");
        let hits = text
            .search(&query(&["restarting"], &[], &[]), 5)
            .expect("search");
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [1, 2]);
        // Removed and updated documents follow at the next commit.
        text.apply(
            vec![
                Op::Remove(1),
                Op::Add(doc(
                    3,
                    Kind::Runbook,
                    "Disk full",
                    "Restart the writer.",
                    &[],
                )),
            ],
            2,
        )
        .expect("apply");
        let hits = text
            .search(&query(&["restart"], &[], &[]), 5)
            .expect("search");
        let mut ids: Vec<i64> = hits.iter().map(|h| h.0).collect();
        ids.sort();
        assert_eq!(ids, [2, 3]);
        assert_eq!(text.generation(), Some(2));
        let snippet = text
            .snippets(&query(&["restart"], &[], &[]))
            .expect("snippets")
            .of("Restart the writer.");
        assert_eq!(snippet.as_deref(), Some("Restart the writer."));
    }
}
