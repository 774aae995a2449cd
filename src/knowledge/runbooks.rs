//! Runbook Markdown split into sections: one document per heading (its text up to the next
//! heading), id `FILE#anchor` with GitHub's anchor rules (lower case, punctuation dropped,
//! spaces to `-`, `-1`, `-2` for repeats). Headings inside fenced code are text. The title
//! carries the file's top heading ("Postgres › Replication lag") so a section is found by it.

use std::collections::HashMap;

use super::document::{Document, Kind};

/// The sections of one file; `rel` is its path under the runbooks directory (`/`-separated).
pub fn sections(rel: &str, text: &str, modified_ms: i64) -> Vec<Document> {
    struct Open {
        level: usize,
        heading: String,
        anchor: String,
        body: Vec<String>,
    }
    let mut used: HashMap<String, usize> = HashMap::new();
    let mut top: Option<String> = None;
    let mut out = Vec::new();
    let mut current: Option<Open> = None;
    let mut preamble: Vec<String> = Vec::new();
    let mut fence: Option<&str> = None;
    let close = |open: Open, top: &Option<String>, out: &mut Vec<Document>| {
        let title = match top {
            Some(t) if open.level > 1 && *t != open.heading => format!("{t} › {}", open.heading),
            _ => open.heading.clone(),
        };
        let body = open.body.join("\n").trim().to_string();
        out.push(Document {
            id: format!("{rel}#{}", open.anchor),
            kind: Kind::Runbook,
            title,
            body,
            tags: tags_of(rel),
            source: format!("{rel}#{}", open.anchor),
            status: None,
            links: Vec::new(),
            created_ms: modified_ms,
            updated_ms: modified_ms,
        });
    };
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(f) = fence {
            if trimmed.starts_with(f) {
                fence = None;
            }
        } else if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = Some(&trimmed[..3]);
        } else if let Some((level, heading)) = heading(line) {
            if let Some(open) = current.take() {
                close(open, &top, &mut out);
            }
            if level == 1 && top.is_none() {
                top = Some(heading.clone());
            }
            let base = anchor(&heading);
            let n = used.entry(base.clone()).or_insert(0);
            let anchor = if *n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            *n += 1;
            current = Some(Open {
                level,
                heading,
                anchor,
                body: Vec::new(),
            });
            continue;
        }
        match &mut current {
            Some(open) => open.body.push(line.to_string()),
            None => preamble.push(line.to_string()),
        }
    }
    if let Some(open) = current.take() {
        close(open, &top, &mut out);
    }
    // Text before the first heading belongs to the file as a whole.
    let preamble = preamble.join("\n").trim().to_string();
    if !preamble.is_empty() {
        out.insert(
            0,
            Document {
                id: rel.to_string(),
                kind: Kind::Runbook,
                title: rel.to_string(),
                body: preamble,
                tags: tags_of(rel),
                source: rel.to_string(),
                status: None,
                links: Vec::new(),
                created_ms: modified_ms,
                updated_ms: modified_ms,
            },
        );
    }
    // A heading with nothing under it (a parent of sub-sections) is no answer on its own.
    out.retain(|d| !d.body.is_empty());
    out
}

/// `## Heading ##` → (2, "Heading"); ATX headings only (what runbooks use).
fn heading(line: &str) -> Option<(usize, String)> {
    let t = line.trim_start();
    if line.len() - t.len() > 3 {
        return None;
    }
    let level = t.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &t[level..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    let text = rest.trim().trim_end_matches('#').trim().to_string();
    (!text.is_empty()).then_some((level, text))
}

/// GitHub's heading anchor.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The file's name words as tags (`postgres-replication.md` → postgres, replication).
fn tags_of(rel: &str) -> Vec<String> {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let stem = name.strip_suffix(".md").unwrap_or(name);
    stem.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_follow_headings_with_github_anchors() {
        let text = "Intro line.\n# Postgres\n## Replication lag!\nCheck `pg_stat_replication`.\n```sh\n# not a heading\n```\n## Replication lag!\nAgain.\n### Empty\n";
        let docs = sections("db/postgres.md", text, 7);
        let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "db/postgres.md",
                "db/postgres.md#replication-lag",
                "db/postgres.md#replication-lag-1"
            ]
        );
        assert_eq!(docs[1].title, "Postgres › Replication lag!");
        assert!(docs[1].body.contains("# not a heading"));
        assert_eq!(docs[1].tags, ["postgres"]);
    }
}
