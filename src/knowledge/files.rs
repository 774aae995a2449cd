//! The file feeds: runbook Markdown under a directory (one feed per file, so a changed file is
//! re-read alone and a deleted one leaves), and JSON Lines files of backlog items or past
//! incidents. Files are checked by modification time and size on every poll.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use super::KnowledgeError;
use super::document::{Document, Kind};

/// Feed names: `runbook:<path under the directory>`, `backlog`, `incidents`.
pub const RUNBOOK_FEED: &str = "runbook:";

/// What a file looked like when last read.
pub type Seen = HashMap<PathBuf, (SystemTime, u64)>;

/// Markdown files under `dir` (sorted), with their path relative to it.
pub fn markdown_files(dir: &Path) -> Result<Vec<(PathBuf, String)>, KnowledgeError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let entries = std::fs::read_dir(&at).map_err(|e| {
            KnowledgeError::Feed(format!(
                "cannot read runbooks directory {}: {e}",
                at.display()
            ))
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "md" || e == "markdown")
                && let Ok(rel) = path.strip_prefix(dir)
            {
                let rel = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((path, rel));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Modification time and size, or `None` when the file is gone.
pub fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

pub fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// One line of a backlog or incidents file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: String,
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    status: Option<String>,
    /// Related ids (incidents, runbook sections, backlog items).
    #[serde(default)]
    links: Vec<String>,
    #[serde(default)]
    source: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
}

/// The fields of a JSON Lines line (and of a backlog item from a topic).
pub const LINE_FIELDS: [&str; 9] = [
    "id",
    "title",
    "body",
    "tags",
    "status",
    "links",
    "source",
    "created_at",
    "updated_at",
];

/// The documents of a JSON Lines file; a bad line is an error naming the file, the line and
/// the field (the whole file is then left as it was indexed).
pub fn jsonl(
    path: &Path,
    text: &str,
    kind: Kind,
    modified_ms: i64,
) -> Result<Vec<Document>, KnowledgeError> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with("//") {
            continue;
        }
        let at = || format!("{} line {}", path.display(), n + 1);
        let value: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| KnowledgeError::Feed(format!("{}: {e}", at())))?;
        let mut doc = item(&value, kind, modified_ms)
            .map_err(|e| KnowledgeError::Feed(format!("{}: {e}", at())))?;
        if doc.source.is_empty() {
            doc.source = format!("{}#{}", file_name(path), doc.id);
        }
        out.push(doc);
    }
    Ok(out)
}

/// One item (a JSON Lines line's object): an error names the field. Without `source` the
/// document's source is empty (the caller names where it comes from); without times it was
/// made at `default_ms`.
pub fn item(value: &serde_json::Value, kind: Kind, default_ms: i64) -> Result<Document, String> {
    let line: Line = serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        if at == "." {
            e.inner().to_string()
        } else {
            format!("`{at}`: {}", e.inner())
        }
    })?;
    if line.id.trim().is_empty() {
        return Err("`id` is empty".into());
    }
    let time = |field: &str, value: &Option<String>| -> Result<Option<i64>, String> {
        value
            .as_deref()
            .map(|t| {
                t.parse::<jiff::Timestamp>()
                    .map(|t| t.as_millisecond())
                    .map_err(|_| {
                        format!(
                            "`{field}` {t:?} is not an RFC 3339 time, e.g. 2026-03-01T10:00:00Z"
                        )
                    })
            })
            .transpose()
    };
    let created = time("created_at", &line.created_at)?.unwrap_or(default_ms);
    let updated = time("updated_at", &line.updated_at)?.unwrap_or(created);
    Ok(Document {
        source: line.source.unwrap_or_default(),
        id: line.id,
        kind,
        title: line.title,
        body: line.body,
        tags: line.tags,
        status: line.status,
        links: line.links,
        created_ms: created,
        updated_ms: updated,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
