//! PR-QUEST (Fission-AI/PR-QUEST, a Next.js app): exactly its two routes, on the upstream kit.
//! `GET /api/diff?prUrl=` answers a pull request's unified diff (public github.com only, 1 MiB
//! cap) and `POST /api/group {diffIndex, metadata}` answers an LLM review plan. Errors are
//! `{error}` with 400/404/413/429/502. Analysis, cache, risk and export are toolgate's
//! (`src/review/`). The diff is a read (retried); grouping calls an LLM, so it goes out once
//! (the review engine's durable queue retries it later). Imports only the upstream kit.

pub mod config;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::config::PrQuestConfig;
use crate::adapters::http::{CallError, Health, Reply, Retry, Upstream};

/// Why a PR-QUEST call failed. Every message names PR-QUEST.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrQuestError {
    /// 400: the pull request URL or the grouping request was refused.
    #[error("PR-QUEST refused the request (HTTP 400): {0}")]
    BadRequest(String),
    /// 404: GitHub has no such (public) pull request.
    #[error("PR-QUEST found no such pull request diff (HTTP 404): {0}")]
    NotFound(String),
    /// 413: the diff is over PR-QUEST's 1 MiB cap.
    #[error("PR-QUEST refused the diff as too large (HTTP 413, its cap is 1 MiB): {0}")]
    TooLarge(String),
    /// 429: GitHub's rate limit, as PR-QUEST saw it.
    #[error("PR-QUEST hit GitHub's rate limit (HTTP 429): {0}; try again in a minute")]
    RateLimited(String),
    /// 502: GitHub unreachable, or the LLM grouping failed.
    #[error("PR-QUEST could not finish (HTTP 502): {0}")]
    BadGateway(String),
    /// Unreachable, timing out, other 5xx, or its breaker is open.
    #[error("PR-QUEST is unavailable: {0}")]
    Unavailable(String),
    #[error("PR-QUEST sent an unexpected answer: {0}")]
    BadAnswer(String),
}

impl PrQuestError {
    /// Whether toolgate should fall back to its own grouping (and retry later).
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            PrQuestError::Unavailable(_) | PrQuestError::BadGateway(_)
        )
    }
}

/// `diffIndex` of `POST /api/group` (PR-QUEST's `DiffIndexSchema`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffIndex {
    pub diff_index_version: u32,
    pub files: Vec<DiffFileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffFileEntry {
    pub file_id: String,
    /// added | deleted | modified | renamed | copied
    pub status: String,
    pub language: Option<String>,
    pub hunks: Vec<DiffHunkRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffHunkRef {
    /// `path#h0`, `path#h1`, …
    pub hunk_id: String,
    pub old_start: u32,
    pub new_start: u32,
    pub header: String,
}

/// `metadata` of `POST /api/group`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRequest {
    pub diff_index: DiffIndex,
    pub metadata: GroupMetadata,
}

/// PR-QUEST's `ReviewPlanSchema`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewPlan {
    pub version: u32,
    pub pr_overview: Overview,
    pub steps: Vec<PlanStep>,
    pub end_state: EndState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overview {
    pub title: String,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    pub step_id: String,
    pub title: String,
    pub description: String,
    pub objective: String,
    /// high | medium | low
    pub priority: String,
    pub diff_refs: Vec<DiffRef>,
    #[serde(default)]
    pub notes_suggested: Vec<String>,
    #[serde(default)]
    pub badges: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffRef {
    pub file_id: String,
    pub hunk_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndState {
    #[serde(default)]
    pub acceptance_checks: Vec<String>,
    #[serde(default)]
    pub risk_calls: Vec<String>,
}

pub struct PrQuest {
    base: String,
    upstream: Upstream,
}

impl PrQuest {
    pub fn new(config: &PrQuestConfig) -> Result<Self, String> {
        let upstream = Upstream::new(
            "prquest",
            "PR-QUEST",
            &config.endpoint.settings,
            config.endpoint.auth.clone(),
        )
        .map_err(|e| format!("review.prquest: {e}"))?
        .answering_rate_limits();
        Ok(Self {
            base: config.endpoint.url.clone(),
            upstream,
        })
    }

    pub fn health(&self) -> Health {
        self.upstream.guard().health()
    }

    /// `GET /api/diff?prUrl=`: the pull request's unified diff.
    pub async fn diff(&self, pr_url: &str) -> Result<String, PrQuestError> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/diff", self.base),
            &[("prUrl", pr_url)],
        )
        .map_err(|e| PrQuestError::BadRequest(format!("review.prquest.url: {e}")))?;
        let reply = self
            .upstream
            .send(Retry::Read, || Ok(self.upstream.http().get(url.clone())))
            .await
            .map_err(unavailable)?;
        check(&reply)?;
        Ok(reply.text())
    }

    /// `POST /api/group`: the LLM's review plan for a diff index. Sent once.
    pub async fn group(&self, request: &GroupRequest) -> Result<ReviewPlan, PrQuestError> {
        let url = format!("{}/api/group", self.base);
        let reply = self
            .upstream
            .send(Retry::Write, || {
                Ok(self.upstream.http().post(&url).json(request))
            })
            .await
            .map_err(unavailable)?;
        check(&reply)?;
        serde_json::from_slice(&reply.body)
            .map_err(|e| PrQuestError::BadAnswer(format!("the review plan does not parse: {e}")))
    }
}

fn unavailable(e: CallError) -> PrQuestError {
    match e {
        // The kit names the status: a 502 after every attempt is PR-QUEST's own "could not".
        CallError::Failed(m) if m.contains("HTTP 502") => {
            let body = m
                .split_once("HTTP 502: ")
                .map(|(_, b)| b)
                .unwrap_or_default();
            PrQuestError::BadGateway(match serde_json::from_str::<Value>(body) {
                Ok(v) => v
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or(body)
                    .to_string(),
                Err(_) if body.is_empty() => m.clone(),
                Err(_) => body.to_string(),
            })
        }
        CallError::Failed(m)
        | CallError::CircuitOpen(m)
        | CallError::RateLimited { message: m, .. } => PrQuestError::Unavailable(m),
    }
}

/// Map a non-2xx answer to its error, with PR-QUEST's `{error}` text.
fn check(reply: &Reply) -> Result<(), PrQuestError> {
    if reply.status.is_success() {
        return Ok(());
    }
    let message = error_text(reply);
    Err(match reply.status {
        StatusCode::BAD_REQUEST => PrQuestError::BadRequest(message),
        StatusCode::NOT_FOUND => PrQuestError::NotFound(message),
        StatusCode::PAYLOAD_TOO_LARGE => PrQuestError::TooLarge(message),
        StatusCode::TOO_MANY_REQUESTS => PrQuestError::RateLimited(message),
        StatusCode::BAD_GATEWAY => PrQuestError::BadGateway(message),
        s if s.is_server_error() => {
            PrQuestError::Unavailable(format!("HTTP {}: {message}", s.as_u16()))
        }
        s => PrQuestError::BadAnswer(format!("HTTP {}: {message}", s.as_u16())),
    })
}

/// `{error, detail?}` → `error (detail)`, bounded; the raw first line otherwise.
fn error_text(reply: &Reply) -> String {
    let text = match serde_json::from_slice::<Value>(&reply.body) {
        Ok(v) => match (
            v.get("error").and_then(Value::as_str),
            v.get("detail").and_then(Value::as_str),
        ) {
            (Some(e), Some(d)) => format!("{e} ({d})"),
            (Some(e), None) => e.to_string(),
            _ => reply.text(),
        },
        Err(_) => reply.text(),
    };
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).expect("status"),
            body: body.as_bytes().to_vec(),
            headers: Default::default(),
        }
    }

    #[test]
    fn each_documented_status_has_its_error() {
        let cases = [
            (400, "Enter a GitHub pull request URL.", "HTTP 400"),
            (
                404,
                "Pull request diff not found. Ensure the PR is public.",
                "HTTP 404",
            ),
            (413, "Diff is too large to analyze right now.", "HTTP 413"),
            (429, "GitHub rate limit reached.", "HTTP 429"),
        ];
        for (status, message, needle) in cases {
            let err = check(&reply(status, &format!("{{\"error\":\"{message}\"}}")))
                .expect_err("an error");
            let text = err.to_string();
            assert!(text.contains(needle) && text.contains(message), "{text}");
            assert!(!err.is_outage(), "{status} is not an outage");
        }
        let err = check(&reply(
            502,
            r#"{"error":"LLM grouping failed. Try again later.","detail":"quota"}"#,
        ))
        .expect_err("502");
        assert_eq!(
            err,
            PrQuestError::BadGateway("LLM grouping failed. Try again later. (quota)".into())
        );
        assert!(err.is_outage());
        assert!(check(&reply(200, "diff --git a/x b/x")).is_ok());
    }

    #[test]
    fn the_group_request_has_pr_quests_field_names() {
        let request = GroupRequest {
            diff_index: DiffIndex {
                diff_index_version: 1,
                files: vec![DiffFileEntry {
                    file_id: "src/a.rs".into(),
                    status: "modified".into(),
                    language: Some("rust".into()),
                    hunks: vec![DiffHunkRef {
                        hunk_id: "src/a.rs#h0".into(),
                        old_start: 1,
                        new_start: 1,
                        header: "@@ -1,2 +1,3 @@".into(),
                    }],
                }],
            },
            metadata: GroupMetadata {
                pr_title: Some("t".into()),
                pr_description: None,
            },
        };
        let v = serde_json::to_value(&request).expect("json");
        assert_eq!(v["diffIndex"]["diff_index_version"], 1);
        assert_eq!(
            v["diffIndex"]["files"][0]["hunks"][0]["hunk_id"],
            "src/a.rs#h0"
        );
        assert_eq!(v["metadata"]["prTitle"], "t");
        assert!(v["metadata"].get("prDescription").is_none());
    }
}
