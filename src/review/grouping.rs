//! Review steps. From PR-QUEST's plan when it answered (its steps point at hunks by
//! `path#hN`), else toolgate's own grouping: files by top directory and file type, at most six
//! steps (PR-QUEST's limit), the riskiest first. Also builds the diff index PR-QUEST's
//! `/api/group` takes.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::diff::DiffFile;
use super::risk::{Finding, Level};
use crate::adapters::prquest::{DiffFileEntry, DiffHunkRef, DiffIndex, ReviewPlan};

/// One review step: what to look at and which hunks it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    pub step_id: String,
    pub title: String,
    pub description: String,
    pub objective: String,
    /// high | medium | low
    pub priority: String,
    /// Hunk ids (`path#hN`) this step covers.
    pub hunks: Vec<String>,
    #[serde(default)]
    pub notes_suggested: Vec<String>,
    #[serde(default)]
    pub badges: Vec<String>,
}

/// PR-QUEST's diff index of `files` (binary files and files without hunks are left out: its
/// schema wants at least one hunk per file).
pub fn diff_index(files: &[DiffFile]) -> DiffIndex {
    DiffIndex {
        diff_index_version: 1,
        files: files
            .iter()
            .filter(|f| !f.hunks.is_empty())
            .map(|f| DiffFileEntry {
                file_id: f.path.clone(),
                status: f.status.to_string(),
                language: f.language().map(str::to_string),
                hunks: f
                    .hunks
                    .iter()
                    .enumerate()
                    .map(|(i, h)| DiffHunkRef {
                        hunk_id: f.hunk_id(i),
                        old_start: h.old_start,
                        new_start: h.new_start,
                        header: h.header.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The steps of PR-QUEST's plan.
pub fn from_plan(plan: &ReviewPlan) -> Vec<Step> {
    plan.steps
        .iter()
        .map(|s| Step {
            step_id: s.step_id.clone(),
            title: s.title.clone(),
            description: s.description.clone(),
            objective: s.objective.clone(),
            priority: s.priority.clone(),
            hunks: s
                .diff_refs
                .iter()
                .flat_map(|r| r.hunk_ids.iter().cloned())
                .collect(),
            notes_suggested: s.notes_suggested.clone(),
            badges: s.badges.clone(),
        })
        .collect()
}

fn kind_of(file: &DiffFile) -> &'static str {
    let p = file.path.to_ascii_lowercase();
    let name = p.rsplit('/').next().unwrap_or(&p);
    if p.contains("test") || p.contains("spec/") {
        "tests"
    } else if name.ends_with(".md") || p.starts_with("docs/") {
        "documentation"
    } else if name.ends_with(".yaml")
        || name.ends_with(".yml")
        || name.ends_with(".json")
        || name.ends_with(".toml")
        || name.starts_with("dockerfile")
        || name.starts_with("containerfile")
    {
        "configuration"
    } else if name.ends_with(".proto") {
        "API definitions"
    } else {
        "code"
    }
}

fn top_dir(path: &str) -> &str {
    path.split_once('/').map(|(d, _)| d).unwrap_or("(root)")
}

/// toolgate's own grouping (no LLM): by file type, then top directory; groups with findings
/// first, at most six steps (the rest merge into the last).
pub fn fallback(files: &[DiffFile], findings: &[Finding]) -> Vec<Step> {
    let mut groups: BTreeMap<(&str, &str), Vec<&DiffFile>> = BTreeMap::new();
    for f in files.iter().filter(|f| !f.hunks.is_empty()) {
        groups
            .entry((kind_of(f), top_dir(&f.path)))
            .or_default()
            .push(f);
    }
    let worst = |members: &[&DiffFile]| {
        findings
            .iter()
            .filter(|x| members.iter().any(|m| m.path == x.file))
            .map(|x| x.severity)
            .max()
            .unwrap_or(Level::None)
    };
    let mut list: Vec<((&str, &str), Vec<&DiffFile>, Level)> = groups
        .into_iter()
        .map(|(k, v)| {
            let w = worst(&v);
            (k, v, w)
        })
        .collect();
    list.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    while list.len() > 6 {
        if let Some((_, files, level)) = list.pop()
            && let Some(last) = list.last_mut()
        {
            last.1.extend(files);
            last.2 = last.2.max(level);
            last.0 = ("other changes", "several directories");
        }
    }
    list.into_iter()
        .enumerate()
        .map(|(i, ((kind, dir), members, level))| {
            let lines: usize = members
                .iter()
                .map(|f| f.hunks.iter().map(|h| h.lines.len()).sum::<usize>())
                .sum();
            let names: Vec<&str> = members.iter().map(|f| f.path.as_str()).collect();
            Step {
                step_id: format!("step-{}", i + 1),
                title: format!("Review {kind} in {dir}"),
                description: format!(
                    "{} file(s), {lines} diff line(s): {}",
                    members.len(),
                    names.join(", ")
                ),
                objective: match level {
                    Level::Critical | Level::Moderate => {
                        "Check the flagged risks first, then the rest of the change".into()
                    }
                    _ => format!("Confirm the {kind} changes are correct and complete"),
                },
                priority: match level {
                    Level::Critical => "high",
                    Level::Moderate => "medium",
                    _ if kind == "code" => "medium",
                    _ => "low",
                }
                .into(),
                hunks: members
                    .iter()
                    .flat_map(|f| (0..f.hunks.len()).map(|h| f.hunk_id(h)))
                    .collect(),
                notes_suggested: Vec::new(),
                badges: if level >= Level::Moderate {
                    vec!["risk".into()]
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::diff::parse;

    #[test]
    fn fallback_groups_by_type_and_directory_riskiest_first() {
        let mut diff = String::new();
        for (path, body) in [
            ("src/a.rs", "+fn a() {}"),
            ("src/b.rs", "+fn b() {}"),
            ("deploy/app.yaml", "+  privileged: true"),
            ("docs/x.md", "+text"),
        ] {
            diff.push_str(&format!("diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -1,0 +1,1 @@\n{body}\n"));
        }
        let files = parse(&diff);
        let findings = crate::review::risk::scan(&files);
        let steps = fallback(&files, &findings);
        let titles: Vec<&str> = steps.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(
            titles,
            vec![
                "Review configuration in deploy",
                "Review code in src",
                "Review documentation in docs"
            ]
        );
        assert_eq!(steps[0].priority, "high");
        assert_eq!(steps[1].hunks, vec!["src/a.rs#h0", "src/b.rs#h0"]);
        let index = diff_index(&files);
        assert_eq!(index.files.len(), 4);
        assert_eq!(index.files[0].language.as_deref(), Some("rust"));
    }
}
