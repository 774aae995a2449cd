//! A unified diff (`git diff` / GitHub's `.diff`) parsed into files, hunks and lines with their
//! line numbers. Tolerant: lines it does not know (index, mode, similarity) are skipped, and a
//! binary file is kept with no hunks.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffFile {
    /// The path after the change (the old path for a deleted file).
    pub path: String,
    /// The path before, when renamed or copied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// added | deleted | modified | renamed | copied (PR-QUEST's statuses).
    pub status: &'static str,
    pub binary: bool,
    pub hunks: Vec<Hunk>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hunk {
    /// `@@ -a,b +c,d @@ context`
    pub header: String,
    pub old_start: u32,
    pub old_lines: u32,
    pub new_start: u32,
    pub new_lines: u32,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    Added,
    Removed,
    Context,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub kind: LineKind,
    /// Line number in the old file (removed and context lines).
    pub old: Option<u32>,
    /// Line number in the new file (added and context lines).
    pub new: Option<u32>,
    pub text: String,
}

impl DiffFile {
    pub fn added(&self) -> impl Iterator<Item = &Line> {
        self.hunks
            .iter()
            .flat_map(|h| h.lines.iter())
            .filter(|l| l.kind == LineKind::Added)
    }

    pub fn removed(&self) -> impl Iterator<Item = &Line> {
        self.hunks
            .iter()
            .flat_map(|h| h.lines.iter())
            .filter(|l| l.kind == LineKind::Removed)
    }

    /// PR-QUEST's hunk id: `path#h<index>`.
    pub fn hunk_id(&self, index: usize) -> String {
        format!("{}#h{index}", self.path)
    }

    /// The file's language by extension (PR-QUEST's `language`), if known.
    pub fn language(&self) -> Option<&'static str> {
        language_of(&self.path)
    }
}

impl Hunk {
    /// The hunk as diff text (header and lines).
    pub fn text(&self) -> String {
        let mut out = String::with_capacity(self.header.len() + self.lines.len() * 40);
        out.push_str(&self.header);
        for l in &self.lines {
            out.push('\n');
            out.push(match l.kind {
                LineKind::Added => '+',
                LineKind::Removed => '-',
                LineKind::Context => ' ',
            });
            out.push_str(&l.text);
        }
        out
    }
}

/// Lines added and removed across every file.
pub fn line_counts(files: &[DiffFile]) -> (u64, u64) {
    let mut added = 0;
    let mut removed = 0;
    for f in files {
        added += f.added().count() as u64;
        removed += f.removed().count() as u64;
    }
    (added, removed)
}

pub fn language_of(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name == "Dockerfile" || name == "Containerfile" {
        return Some("dockerfile");
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    Some(match ext.as_str() {
        "rs" => "rust",
        "go" => "go",
        "py" => "python",
        "ts" | "tsx" => "typescript",
        "js" | "jsx" | "mjs" => "javascript",
        "java" => "java",
        "kt" => "kotlin",
        "rb" => "ruby",
        "c" | "h" => "c",
        "cc" | "cpp" | "hpp" => "cpp",
        "cs" => "csharp",
        "sh" | "bash" => "shell",
        "yaml" | "yml" => "yaml",
        "json" => "json",
        "toml" => "toml",
        "md" => "markdown",
        "proto" => "protobuf",
        "tf" | "hcl" => "hcl",
        "sql" => "sql",
        _ => return None,
    })
}

/// Parse `@@ -a[,b] +c[,d] @@` → (a, b, c, d).
fn hunk_range(header: &str) -> Option<(u32, u32, u32, u32)> {
    let inner = header.strip_prefix("@@ ")?;
    let (ranges, _) = inner.split_once(" @@")?;
    let (old, new) = ranges.split_once(' ')?;
    let pair = |s: &str| -> Option<(u32, u32)> {
        match s.split_once(',') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => Some((s.parse().ok()?, 1)),
        }
    };
    let (a, b) = pair(old.strip_prefix('-')?)?;
    let (c, d) = pair(new.strip_prefix('+')?)?;
    Some((a, b, c, d))
}

/// The path of a `--- a/x` / `+++ b/x` line; `None` for /dev/null.
fn side_path(rest: &str) -> Option<String> {
    let rest = rest.split('\t').next().unwrap_or(rest).trim_end();
    if rest == "/dev/null" {
        return None;
    }
    let rest = rest.trim_matches('"');
    Some(
        rest.strip_prefix("a/")
            .or_else(|| rest.strip_prefix("b/"))
            .unwrap_or(rest)
            .to_string(),
    )
}

/// Parse a unified diff.
pub fn parse(text: &str) -> Vec<DiffFile> {
    let mut files: Vec<DiffFile> = Vec::new();
    // Lines left in the current hunk (old side, new side).
    let mut left = (0u32, 0u32);
    let mut next = (0u32, 0u32);
    for raw in text.lines() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if left != (0, 0)
            && let Some(file) = files.last_mut()
            && let Some(hunk) = file.hunks.last_mut()
        {
            let (kind, body) = match line.as_bytes().first() {
                Some(b'+') => (LineKind::Added, &line[1..]),
                Some(b'-') => (LineKind::Removed, &line[1..]),
                Some(b' ') => (LineKind::Context, &line[1..]),
                None => (LineKind::Context, ""),
                Some(b'\\') => continue, // "\ No newline at end of file"
                _ => {
                    left = (0, 0);
                    (LineKind::Context, "") // falls through to header handling below
                }
            };
            if left != (0, 0) {
                let (old, new) = match kind {
                    LineKind::Added => {
                        left.1 = left.1.saturating_sub(1);
                        next.1 += 1;
                        (None, Some(next.1 - 1))
                    }
                    LineKind::Removed => {
                        left.0 = left.0.saturating_sub(1);
                        next.0 += 1;
                        (Some(next.0 - 1), None)
                    }
                    LineKind::Context => {
                        left = (left.0.saturating_sub(1), left.1.saturating_sub(1));
                        next = (next.0 + 1, next.1 + 1);
                        (Some(next.0 - 1), Some(next.1 - 1))
                    }
                };
                hunk.lines.push(Line {
                    kind,
                    old,
                    new,
                    text: body.to_string(),
                });
                continue;
            }
        }
        if let Some(rest) = line.strip_prefix("diff --git ") {
            // `a/x b/y`; the ---/+++ lines, when present, say it more reliably.
            let path = rest
                .rsplit_once(" b/")
                .map(|(_, b)| b.to_string())
                .unwrap_or_else(|| rest.to_string());
            files.push(DiffFile {
                path,
                old_path: None,
                status: "modified",
                binary: false,
                hunks: Vec::new(),
            });
            left = (0, 0);
            continue;
        }
        let Some(file) = files.last_mut() else {
            continue;
        };
        if line.starts_with("new file mode") {
            file.status = "added";
        } else if line.starts_with("deleted file mode") {
            file.status = "deleted";
        } else if let Some(from) = line.strip_prefix("rename from ") {
            file.status = "renamed";
            file.old_path = Some(from.to_string());
        } else if let Some(to) = line.strip_prefix("rename to ") {
            file.path = to.to_string();
        } else if let Some(from) = line.strip_prefix("copy from ") {
            file.status = "copied";
            file.old_path = Some(from.to_string());
        } else if let Some(to) = line.strip_prefix("copy to ") {
            file.path = to.to_string();
        } else if line.starts_with("Binary files ") || line.starts_with("GIT binary patch") {
            file.binary = true;
        } else if let Some(rest) = line.strip_prefix("--- ") {
            match side_path(rest) {
                None => file.status = "added",
                Some(p) if file.status == "deleted" => file.path = p,
                Some(_) => {}
            }
        } else if let Some(rest) = line.strip_prefix("+++ ") {
            match side_path(rest) {
                None => file.status = "deleted",
                Some(p) => file.path = p,
            }
        } else if line.starts_with("@@ ")
            && let Some((a, b, c, d)) = hunk_range(line)
        {
            file.hunks.push(Hunk {
                header: line.to_string(),
                old_start: a,
                old_lines: b,
                new_start: c,
                new_lines: d,
                lines: Vec::new(),
            });
            left = (b, d);
            next = (a, c);
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str = "diff --git a/src/app.rs b/src/app.rs
index 1111111..2222222 100644
--- a/src/app.rs
+++ b/src/app.rs
@@ -10,4 +10,5 @@ fn main() {
 let a = 1;
-let b = 2;
+let b = 3;
+let c = 4;
 let d = 5;
 let e = 6;
@@ -40 +41 @@
-old
+new
diff --git a/docs/new.md b/docs/new.md
new file mode 100644
--- /dev/null
+++ b/docs/new.md
@@ -0,0 +1,2 @@
+# Title
+text
\\ No newline at end of file
diff --git a/gone.yaml b/gone.yaml
deleted file mode 100644
--- a/gone.yaml
+++ /dev/null
@@ -1,2 +0,0 @@
-kind: NetworkPolicy
-metadata: {}
diff --git a/old/name.go b/new/name.go
similarity index 90%
rename from old/name.go
rename to new/name.go
diff --git a/logo.png b/logo.png
Binary files a/logo.png and b/logo.png differ
";

    #[test]
    fn files_hunks_and_line_numbers() {
        let files = parse(DIFF);
        let summary: Vec<(&str, &str, usize)> = files
            .iter()
            .map(|f| (f.path.as_str(), f.status, f.hunks.len()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("src/app.rs", "modified", 2),
                ("docs/new.md", "added", 1),
                ("gone.yaml", "deleted", 1),
                ("new/name.go", "renamed", 0),
                ("logo.png", "modified", 0),
            ]
        );
        let app = &files[0];
        let added: Vec<(Option<u32>, &str)> =
            app.added().map(|l| (l.new, l.text.as_str())).collect();
        assert_eq!(
            added,
            vec![
                (Some(11), "let b = 3;"),
                (Some(12), "let c = 4;"),
                (Some(41), "new")
            ]
        );
        let removed: Vec<Option<u32>> = app.removed().map(|l| l.old).collect();
        assert_eq!(removed, vec![Some(11), Some(40)]);
        assert_eq!(app.hunks[0].lines.last().map(|l| l.new), Some(Some(14)));
        assert_eq!(
            files[1].added().count(),
            2,
            "the no-newline marker is no line"
        );
        assert_eq!(files[2].removed().count(), 2);
        assert_eq!(files[3].old_path.as_deref(), Some("old/name.go"));
        assert!(files[4].binary);
        assert_eq!(line_counts(&files), (5, 4));
        assert_eq!(app.hunk_id(1), "src/app.rs#h1");
        assert!(app.hunks[1].text().starts_with("@@ -40 +41 @@\n-old\n+new"));
    }
}
