//! The `knowledge` config section: where the embedded index lives, which files feed it, and the
//! optional embeddings endpoint with the weights of the hybrid score. `config.rs` embeds the raw
//! block and calls [`resolve`] with the shared problem list; the checks live here.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::http::Endpoint;
use crate::adapters::http::config::{RawDuration, resolve as endpoint};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKnowledge {
    /// Markdown runbooks (`*.md`, sub-directories too), split into sections by heading.
    pub runbooks_dir: Option<PathBuf>,
    /// Backlog items, one JSON object a line (`id`, `title`, `body`, `tags`, `links`, …).
    pub backlog_file: Option<PathBuf>,
    /// Past incidents, one JSON object a line (same fields as backlog items).
    pub incidents_file: Option<PathBuf>,
    /// The index database (SQLite with FTS5). Default: `knowledge.db` next to a SQLite store
    /// file, in memory otherwise (rebuilt from the files on start).
    pub path: Option<PathBuf>,
    /// How often files are checked for changes (default `5s`).
    pub poll_interval: Option<RawDuration>,
    /// An OpenAI-compatible `/v1/embeddings` endpoint; unset: full text only.
    pub embeddings: Option<RawEmbeddings>,
    /// JetStream subjects whose messages feed the index (backlog item changes, incident
    /// facts, health checks, alerts), read by every replica from where it stopped.
    pub topics: Option<RawTopics>,
    /// Weight of the normalized BM25 score in the hybrid score (default 0.5).
    pub bm25_weight: Option<f64>,
    /// Weight of the cosine similarity in the hybrid score (default 0.5).
    pub vector_weight: Option<f64>,
}

crate::raw_endpoint! {
    /// The embeddings endpoint: `url` is the API base (`…/v1`), a key goes in `auth.bearer_token`.
    pub struct RawEmbeddings {
        /// Model name sent with every request.
        pub model: Option<String>,
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTopics {
    /// NATS server URL(s), comma-separated, e.g. nats://nats.messaging:4222.
    pub url: Option<String>,
    /// Subjects to read, each from the stream that holds it (found by subject, never created),
    /// e.g. `transformation.domain.facts.v1` (backlog item changes), `sre.domain.facts.v1`
    /// (incidents, health checks, alerts), `sre.domain.intents.v1`. Wildcards allowed.
    pub subjects: Option<Vec<String>>,
    /// NATS credentials file (`.creds`).
    pub credentials_file: Option<PathBuf>,
    /// Time limit of connect and JetStream requests. Default 10s.
    pub timeout: Option<RawDuration>,
}

/// The validated `knowledge` block (present only when the section is configured).
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeConfig {
    pub runbooks_dir: Option<PathBuf>,
    pub backlog_file: Option<PathBuf>,
    pub incidents_file: Option<PathBuf>,
    /// `None`: in memory.
    pub path: Option<PathBuf>,
    pub poll_interval: Duration,
    pub embeddings: Option<EmbeddingsConfig>,
    pub topics: Option<TopicsConfig>,
    pub bm25_weight: f64,
    pub vector_weight: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicsConfig {
    pub url: String,
    pub subjects: Vec<String>,
    pub credentials_file: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingsConfig {
    pub endpoint: Endpoint,
    pub model: String,
}

impl KnowledgeConfig {
    /// Full text only, everything in memory, no files (tests, the bench).
    pub fn in_memory() -> Self {
        Self {
            runbooks_dir: None,
            backlog_file: None,
            incidents_file: None,
            path: None,
            poll_interval: Duration::from_secs(5),
            embeddings: None,
            topics: None,
            bm25_weight: 0.5,
            vector_weight: 0.5,
        }
    }
}

/// Validate the `knowledge` block; `store_url` places the default index file. `None` when the
/// section is absent (no index, the `knowledge` toolset not offered by default).
pub fn resolve(
    raw: Option<RawKnowledge>,
    store_url: &str,
    problems: &mut Vec<String>,
) -> Option<KnowledgeConfig> {
    let raw = raw?;
    let mut config = KnowledgeConfig::in_memory();
    config.path = raw.path.or_else(|| beside_store(store_url));
    if let Some(dir) = raw.runbooks_dir {
        if !dir.is_dir() {
            problems.push(format!(
                "knowledge.runbooks_dir: `{}` is not a directory; name the directory holding the runbook Markdown files",
                dir.display()
            ));
        }
        config.runbooks_dir = Some(dir);
    }
    config.backlog_file = raw.backlog_file;
    config.incidents_file = raw.incidents_file;
    if let Some(every) = raw.poll_interval.and_then(|d| {
        d.resolve_within(
            "knowledge.poll_interval",
            Duration::from_millis(50),
            Duration::from_secs(3600),
            problems,
        )
    }) {
        config.poll_interval = every;
    }
    if let Some(t) = raw.topics {
        config.topics = topics(t, problems);
    }
    for (key, value, slot) in [
        ("bm25_weight", raw.bm25_weight, &mut config.bm25_weight),
        (
            "vector_weight",
            raw.vector_weight,
            &mut config.vector_weight,
        ),
    ] {
        match value {
            Some(w) if !(0.0..=1.0).contains(&w) || w.is_nan() => problems.push(format!(
                "knowledge.{key}: {w} is out of range; expected a number from 0 to 1"
            )),
            Some(w) => *slot = w,
            None => {}
        }
    }
    if config.bm25_weight + config.vector_weight <= 0.0 {
        problems.push(
            "knowledge: bm25_weight and vector_weight are both 0; give at least one a weight above 0"
                .into(),
        );
    }
    if let Some(e) = raw.embeddings {
        let model = e.model.clone().filter(|m| !m.trim().is_empty());
        if model.is_none() {
            problems.push(
                "knowledge.embeddings.model: missing; name the embedding model, e.g. text-embedding-3-small"
                    .into(),
            );
        }
        match endpoint(
            "knowledge.embeddings",
            e.url.as_deref(),
            e.endpoint_fields(),
            problems,
        ) {
            Some(endpoint) => {
                config.embeddings = model.map(|model| EmbeddingsConfig { endpoint, model });
            }
            None => problems.push(
                "knowledge.embeddings.url: missing; the API base of an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1"
                    .into(),
            ),
        }
    }
    Some(config)
}

fn topics(raw: RawTopics, problems: &mut Vec<String>) -> Option<TopicsConfig> {
    let before = problems.len();
    let url = raw.url.filter(|u| !u.trim().is_empty());
    if url.is_none() {
        problems.push(
            "knowledge.topics.url: missing; the NATS server, e.g. nats://nats.messaging:4222"
                .into(),
        );
    }
    let subjects = raw.subjects.unwrap_or_default();
    if subjects.is_empty() {
        problems.push(
            "knowledge.topics.subjects: empty; name the subjects to read, e.g. [transformation.domain.facts.v1, sre.domain.facts.v1]"
                .into(),
        );
    }
    for s in &subjects {
        if !crate::adapters::nats::valid_subject(s, true) {
            problems.push(format!(
                "knowledge.topics.subjects: `{s}` is not a NATS subject (dot-separated tokens, `*` or a last `>`), e.g. sre.domain.facts.v1"
            ));
        }
    }
    if let Some(path) = &raw.credentials_file
        && !path.is_file()
    {
        problems.push(format!(
            "knowledge.topics.credentials_file: file `{}` does not exist",
            path.display()
        ));
    }
    let timeout = raw
        .timeout
        .and_then(|d| {
            d.resolve_within(
                "knowledge.topics.timeout",
                Duration::from_millis(100),
                Duration::from_secs(300),
                problems,
            )
        })
        .unwrap_or(Duration::from_secs(10));
    (problems.len() == before).then(|| TopicsConfig {
        url: url.unwrap_or_default(),
        subjects,
        credentials_file: raw.credentials_file,
        timeout,
    })
}

/// `knowledge.db` in the directory of a SQLite store file; none for memory or PostgreSQL.
fn beside_store(store_url: &str) -> Option<PathBuf> {
    let path = store_url.strip_prefix("sqlite://")?;
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.starts_with(":memory:") {
        return None;
    }
    let file = PathBuf::from(path);
    Some(match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("knowledge.db"),
        _ => PathBuf::from("knowledge.db"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_section_is_no_index_and_defaults_sit_beside_the_store() {
        let mut problems = Vec::new();
        assert!(resolve(None, "sqlite://toolgate.db", &mut problems).is_none());
        let c = resolve(
            Some(RawKnowledge::default()),
            "sqlite:///var/lib/tg/toolgate.db",
            &mut problems,
        )
        .expect("configured");
        assert_eq!(c.path, Some(PathBuf::from("/var/lib/tg/knowledge.db")));
        let c = resolve(
            Some(RawKnowledge::default()),
            "postgres://db/t",
            &mut problems,
        )
        .expect("configured");
        assert_eq!(c.path, None);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn every_problem_names_its_key() {
        let mut problems = Vec::new();
        resolve(
            Some(RawKnowledge {
                bm25_weight: Some(1.5),
                vector_weight: Some(-0.1),
                embeddings: Some(RawEmbeddings::default()),
                ..RawKnowledge::default()
            }),
            "sqlite::memory:",
            &mut problems,
        );
        assert_eq!(
            problems,
            [
                "knowledge.bm25_weight: 1.5 is out of range; expected a number from 0 to 1",
                "knowledge.vector_weight: -0.1 is out of range; expected a number from 0 to 1",
                "knowledge.embeddings.model: missing; name the embedding model, e.g. text-embedding-3-small",
                "knowledge.embeddings.url: missing; the API base of an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1",
            ]
        );
    }
}
