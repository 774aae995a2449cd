//! Issues: create (`POST /repos/{o}/{r}/issues` with title, body, labels), read
//! (`GET …/issues/{n}`), comment (`POST …/issues/{n}/comments`), close with a `state_reason`
//! or reopen (`PATCH …/issues/{n}`), the issues carrying a label (`GET …/issues?labels=`,
//! state all — the list API, consistent at once, unlike the search index), and search
//! (`GET /search/issues?q=`). Pull requests, which the issues API also lists, are left out.

use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::{GitHub, GitHubError, JSON_MEDIA_TYPE, json};

/// What toolgate reads of an issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    /// `open` or `closed`.
    pub state: String,
    /// `completed`, `not_planned`, `reopened`, or none.
    pub state_reason: Option<String>,
    pub labels: Vec<String>,
    pub html_url: String,
}

/// How an issue is closed (`state_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Completed,
    NotPlanned,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Completed => "completed",
            CloseReason::NotPlanned => "not_planned",
        }
    }
}

fn issue(v: &Value, fallback_number: u64) -> Issue {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Issue {
        number: v
            .get("number")
            .and_then(Value::as_u64)
            .unwrap_or(fallback_number),
        title: text("title").unwrap_or_default(),
        state: text("state").unwrap_or_default(),
        state_reason: text("state_reason"),
        labels: v
            .get("labels")
            .and_then(Value::as_array)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|l| {
                        // Objects (`{name, color}`) in answers; plain strings are accepted too.
                        l.get("name")
                            .and_then(Value::as_str)
                            .or_else(|| l.as_str())
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        html_url: text("html_url").unwrap_or_default(),
    }
}

/// An issue list (an array, or search's `{items}`) without the pull requests in it.
fn issues_of(v: &Value, what: &str) -> Result<Vec<Issue>, GitHubError> {
    let items = v
        .as_array()
        .or_else(|| v.get("items").and_then(Value::as_array))
        .ok_or_else(|| GitHubError::BadAnswer(format!("{what} is not a list of issues")))?;
    Ok(items
        .iter()
        .filter(|i| i.get("pull_request").is_none())
        .map(|i| issue(i, 0))
        .collect())
}

/// A query value for a URL (labels and search terms hold spaces, colons, quotes).
fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl GitHub {
    /// Opens an issue. Sent once: a lost answer must not become a second issue (the caller
    /// finds it again by its label).
    pub async fn create_issue(
        &self,
        owner: &str,
        repo: &str,
        title: &str,
        body: &str,
        labels: &[String],
    ) -> Result<Issue, GitHubError> {
        let what = format!("repository {owner}/{repo}");
        let reply = self
            .request(
                Method::POST,
                &format!("/repos/{owner}/{repo}/issues"),
                JSON_MEDIA_TYPE,
                Some(&json!({"title": title, "body": body, "labels": labels})),
                &what,
            )
            .await?;
        Ok(issue(&json(&reply)?, 0))
    }

    pub async fn issue(&self, owner: &str, repo: &str, number: u64) -> Result<Issue, GitHubError> {
        let what = format!("issue {owner}/{repo}#{number}");
        let v = self
            .get_json(&format!("/repos/{owner}/{repo}/issues/{number}"), &what)
            .await?;
        if v.get("pull_request").is_some() {
            return Err(GitHubError::NotFound(format!(
                "{what} as an issue (it is a pull request)"
            )));
        }
        Ok(issue(&v, number))
    }

    /// A comment on the issue. Sent once.
    pub async fn comment_issue(
        &self,
        owner: &str,
        repo: &str,
        number: u64,
        body: &str,
    ) -> Result<(), GitHubError> {
        let what = format!("issue {owner}/{repo}#{number}");
        self.request(
            Method::POST,
            &format!("/repos/{owner}/{repo}/issues/{number}/comments"),
            JSON_MEDIA_TYPE,
            Some(&json!({ "body": body })),
            &what,
        )
        .await?;
        Ok(())
    }

    /// Closes the issue with `reason`, or reopens it (`None`). Setting the state it already
    /// has changes nothing, so this is retried like a read.
    pub async fn set_issue_state(
        &self,
        owner: &str,
        repo: &str,
        number: u64,
        close: Option<CloseReason>,
    ) -> Result<Issue, GitHubError> {
        let what = format!("issue {owner}/{repo}#{number}");
        let body = match close {
            Some(reason) => json!({"state": "closed", "state_reason": reason.as_str()}),
            None => json!({"state": "open", "state_reason": "reopened"}),
        };
        let reply = self
            .request(
                Method::PATCH,
                &format!("/repos/{owner}/{repo}/issues/{number}"),
                JSON_MEDIA_TYPE,
                Some(&body),
                &what,
            )
            .await?;
        Ok(issue(&json(&reply)?, number))
    }

    /// Issues (open or closed) carrying `label`, newest first, at most `limit` (≤ 100).
    pub async fn issues_labelled(
        &self,
        owner: &str,
        repo: &str,
        label: &str,
        limit: u32,
    ) -> Result<Vec<Issue>, GitHubError> {
        let what = format!("repository {owner}/{repo}");
        let v = self
            .get_json(
                &format!(
                    "/repos/{owner}/{repo}/issues?labels={}&state=all&per_page={}",
                    encode(label),
                    limit.clamp(1, 100)
                ),
                &what,
            )
            .await?;
        issues_of(&v, &format!("the issues of {what}"))
    }

    /// Issues matching GitHub's search syntax `query`, at most `limit` (≤ 100).
    pub async fn search_issues(&self, query: &str, limit: u32) -> Result<Vec<Issue>, GitHubError> {
        let v = self
            .get_json(
                &format!(
                    "/search/issues?q={}&per_page={}",
                    encode(query),
                    limit.clamp(1, 100)
                ),
                "issue search",
            )
            .await?;
        issues_of(&v, "the search answer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_lists_leave_pull_requests_out_and_read_label_objects() {
        let list = json!([
            {"number": 7, "title": "Checkout down", "state": "closed", "state_reason": "completed",
             "labels": [{"name": "incident-7", "color": "ff0000"}], "html_url": "https://github.com/o/r/issues/7"},
            {"number": 8, "title": "A pull", "state": "open", "labels": [], "pull_request": {"url": "x"}}
        ]);
        let issues = issues_of(&list, "x").expect("issues");
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].labels, ["incident-7"]);
        assert_eq!(issues[0].state_reason.as_deref(), Some("completed"));
        let search =
            json!({"total_count": 1, "incomplete_results": false, "items": [list[0].clone()]});
        assert_eq!(issues_of(&search, "x").expect("items")[0].number, 7);
        assert!(issues_of(&json!({"message": "x"}), "the answer").is_err());
        assert_eq!(encode("incident-a b:\"c\""), "incident-a+b%3A%22c%22");
    }
}
