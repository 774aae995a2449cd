//! Pull requests: metadata and head SHA (`GET /repos/{o}/{r}/pulls/{n}`), changed files
//! (`…/files`, paged), the unified diff (the same URL with `Accept: application/vnd.github.diff`)
//! and a comment on the pull request's conversation (`POST /repos/{o}/{r}/issues/{n}/comments`).

use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::{DIFF_MEDIA_TYPE, GitHub, GitHubError, JSON_MEDIA_TYPE, json};

/// What toolgate reads of a pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub state: String,
    pub head_sha: String,
    pub html_url: String,
    pub author: Option<String>,
    pub additions: u64,
    pub deletions: u64,
    pub changed_files: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullFile {
    pub filename: String,
    /// added | removed | modified | renamed | copied | changed | unchanged
    pub status: String,
    pub additions: u64,
    pub deletions: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comment {
    pub id: u64,
    pub html_url: String,
}

/// GitHub answers at most 3,000 files for a pull request (30 pages of 100).
const MAX_FILE_PAGES: u32 = 30;

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn count(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

impl GitHub {
    /// The pull request, with its head SHA.
    pub async fn pull(
        &self,
        owner: &str,
        repo: &str,
        number: u64,
    ) -> Result<PullRequest, GitHubError> {
        let what = format!("pull request {owner}/{repo}#{number}");
        let v = self
            .get_json(&format!("/repos/{owner}/{repo}/pulls/{number}"), &what)
            .await?;
        let head_sha = v
            .pointer("/head/sha")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| GitHubError::BadAnswer(format!("{what} has no head.sha")))?
            .to_string();
        Ok(PullRequest {
            number: v.get("number").and_then(Value::as_u64).unwrap_or(number),
            title: text(&v, "title").unwrap_or_default(),
            body: text(&v, "body"),
            state: text(&v, "state").unwrap_or_default(),
            head_sha,
            html_url: text(&v, "html_url").unwrap_or_default(),
            author: v
                .pointer("/user/login")
                .and_then(Value::as_str)
                .map(str::to_string),
            additions: count(&v, "additions"),
            deletions: count(&v, "deletions"),
            changed_files: count(&v, "changed_files"),
        })
    }

    /// The changed files, every page.
    pub async fn files(
        &self,
        owner: &str,
        repo: &str,
        number: u64,
    ) -> Result<Vec<PullFile>, GitHubError> {
        let what = format!("pull request {owner}/{repo}#{number}");
        let mut out = Vec::new();
        for page in 1..=MAX_FILE_PAGES {
            let v = self
                .get_json(
                    &format!("/repos/{owner}/{repo}/pulls/{number}/files?per_page=100&page={page}"),
                    &what,
                )
                .await?;
            let items = v.as_array().ok_or_else(|| {
                GitHubError::BadAnswer(format!("the files of {what} are not a list"))
            })?;
            out.extend(items.iter().map(|f| PullFile {
                filename: text(f, "filename").unwrap_or_default(),
                status: text(f, "status").unwrap_or_default(),
                additions: count(f, "additions"),
                deletions: count(f, "deletions"),
            }));
            if items.len() < 100 {
                break;
            }
        }
        Ok(out)
    }

    /// The unified diff of the pull request.
    pub async fn diff(&self, owner: &str, repo: &str, number: u64) -> Result<String, GitHubError> {
        let what = format!("pull request {owner}/{repo}#{number}");
        let reply = self
            .request(
                Method::GET,
                &format!("/repos/{owner}/{repo}/pulls/{number}"),
                DIFF_MEDIA_TYPE,
                None,
                &what,
            )
            .await?;
        Ok(reply.text())
    }

    /// A comment on the pull request's conversation. Sent once.
    pub async fn comment(
        &self,
        owner: &str,
        repo: &str,
        number: u64,
        body: &str,
    ) -> Result<Comment, GitHubError> {
        let what = format!("pull request {owner}/{repo}#{number}");
        let reply = self
            .request(
                Method::POST,
                &format!("/repos/{owner}/{repo}/issues/{number}/comments"),
                JSON_MEDIA_TYPE,
                Some(&json!({ "body": body })),
                &what,
            )
            .await?;
        let v = json(&reply)?;
        Ok(Comment {
            id: count(&v, "id"),
            html_url: text(&v, "html_url").unwrap_or_default(),
        })
    }
}
