//! The Markdown export of a review for governance records: pull request and head, risk level
//! with reasons, findings, suggestions, steps (clusters) with their hunks' files, reviewers with
//! their progress and time stamps, and every note. A pure function of its inputs.

use std::fmt::Write;

use super::AnalysisResult;
use crate::store::{ReviewNoteRow, ReviewerRow};

fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// One line of upstream or reviewer text: no line breaks, no table pipes.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace('|', "\\|")
}

pub fn markdown(
    id: &str,
    r: &AnalysisResult,
    reviewers: &[ReviewerRow],
    notes: &[ReviewNoteRow],
    generated_at_ms: i64,
) -> String {
    let mut m = String::new();
    let pr = &r.pr;
    let _ = writeln!(
        m,
        "# Review of {}/{}#{}: {}\n",
        pr.owner,
        pr.repo,
        pr.number,
        one_line(&pr.title)
    );
    let _ = writeln!(m, "| | |\n|---|---|");
    let _ = writeln!(m, "| Pull request | {} |", pr.url);
    let _ = writeln!(m, "| Head SHA | `{}` |", pr.head_sha);
    let _ = writeln!(m, "| Analysis | `{id}` |");
    let _ = writeln!(
        m,
        "| Grouping | {}{} |",
        r.grouping,
        if r.degraded {
            " (degraded: PR-QUEST unavailable)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        m,
        "| Changes | {} files, +{} −{} |",
        pr.changed_files, pr.additions, pr.deletions
    );
    let _ = writeln!(m, "| Risk level | **{}** |", r.risk.level.as_str());
    let _ = writeln!(m, "| Exported | {} |\n", time(generated_at_ms));
    if !r.summary.is_empty() {
        let _ = writeln!(m, "## Summary\n\n{}\n", r.summary.trim());
    }
    let _ = writeln!(m, "## Risks\n");
    if r.risk.findings.is_empty() {
        let _ = writeln!(m, "No risk found.\n");
    } else {
        let _ = writeln!(
            m,
            "| Severity | Rule | Where | Finding |\n|---|---|---|---|"
        );
        for f in &r.risk.findings {
            let place = match (f.file.is_empty(), f.line) {
                (true, _) => "—".to_string(),
                (false, Some(n)) => format!("`{}:{n}`", f.file),
                (false, None) => format!("`{}`", f.file),
            };
            let _ = writeln!(
                m,
                "| {} | {} | {place} | {} |",
                f.severity.as_str(),
                f.rule,
                one_line(&f.message)
            );
        }
        let _ = writeln!(m);
    }
    if !r.suggestions.is_empty() {
        let _ = writeln!(m, "## Suggestions\n");
        for (i, s) in r.suggestions.iter().enumerate() {
            let _ = writeln!(
                m,
                "{}. **{}** ({}): {}",
                i + 1,
                s.rule,
                s.impact.as_str(),
                s.fix
            );
            if !s.locations.is_empty() {
                let _ = writeln!(m, "   - At: {}", s.locations.join(", "));
            }
            for d in &s.docs {
                let _ = writeln!(m, "   - Docs: {d}");
            }
        }
        let _ = writeln!(m);
    }
    let _ = writeln!(m, "## Review steps\n");
    for s in &r.steps {
        let done_by: Vec<&str> = reviewers
            .iter()
            .filter(|rv| rv.steps.contains(&s.step_id))
            .map(|rv| rv.reviewer_name.as_str())
            .collect();
        let mark = if done_by.is_empty() { " " } else { "x" };
        let _ = writeln!(
            m,
            "- [{mark}] **{}** ({} priority): {}",
            one_line(&s.title),
            s.priority,
            one_line(&s.description)
        );
        let mut files: Vec<&str> = s
            .hunks
            .iter()
            .map(|h| h.rsplit_once('#').map(|(f, _)| f).unwrap_or(h))
            .collect();
        files.dedup();
        if !files.is_empty() {
            let _ = writeln!(m, "  - Files: {}", files.join(", "));
        }
        if !done_by.is_empty() {
            let _ = writeln!(m, "  - Completed by: {}", done_by.join(", "));
        }
    }
    let _ = writeln!(m);
    if !r.acceptance_checks.is_empty() {
        let _ = writeln!(m, "## Acceptance checks\n");
        for c in &r.acceptance_checks {
            let _ = writeln!(m, "- {}", one_line(c));
        }
        let _ = writeln!(m);
    }
    let _ = writeln!(m, "## Reviewers\n");
    if reviewers.is_empty() {
        let _ = writeln!(m, "Nobody has reviewed it yet.\n");
    } else {
        let _ = writeln!(
            m,
            "| Reviewer | Started | Finished | Steps | XP |\n|---|---|---|---|---|"
        );
        for rv in reviewers {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {}/{} | {} |",
                one_line(&rv.reviewer_name),
                time(rv.started_at_ms),
                rv.completed_at_ms.map(time).unwrap_or_else(|| "—".into()),
                rv.steps.len(),
                r.steps.len(),
                rv.xp
            );
        }
        let _ = writeln!(m);
    }
    let _ = writeln!(m, "## Notes\n");
    if notes.is_empty() {
        let _ = writeln!(m, "No notes.");
    }
    for n in notes {
        let _ = writeln!(
            m,
            "- {} — {} on `{}`: {}",
            time(n.at_ms),
            one_line(&n.reviewer_name),
            n.step_id,
            one_line(&n.text)
        );
    }
    m
}
