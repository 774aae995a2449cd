//! GitHub Issues as a [`TicketProvider`]: tickets are issues of one repository, keyed
//! `owner/name#N` (`#N` and `N` are accepted too). Create opens an issue with the labels (the
//! incident's label finds it again after a crash); transitions close it as `completed`
//! (`resolved`, `closed`, `done`; resolving comments first) or `not_planned`, or reopen it;
//! closing a closed issue changes nothing. GitHub has no priorities: the severity travels as
//! a label. Rate limits come back as [`TicketError::RateLimited`] with the wait GitHub named.

use futures::future::BoxFuture;

use super::config::GitHubTicketsConfig;
use super::issues::{CloseReason, Issue};
use super::{GitHub, GitHubError};
use crate::adapters::http::Health;
use crate::adapters::ticket::{NewTicket, Ticket, TicketError, TicketProvider};

/// What GitHub asks when it names no reset time.
const DEFAULT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

pub struct GitHubIssues {
    client: GitHub,
    owner: String,
    repo: String,
}

/// What a transition name asks of an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Close { reason: CloseReason, comment: bool },
    Reopen,
}

fn target(name: &str) -> Option<Target> {
    let n = name
        .trim()
        .to_ascii_lowercase()
        .replace([' ', '-', '\''], "_");
    Some(match n.as_str() {
        "resolve" | "resolved" => Target::Close {
            reason: CloseReason::Completed,
            comment: true,
        },
        "close" | "closed" | "done" | "complete" | "completed" => Target::Close {
            reason: CloseReason::Completed,
            comment: false,
        },
        "not_planned" | "wont_do" | "won_t_do" | "cancel" | "cancelled" | "canceled" => {
            Target::Close {
                reason: CloseReason::NotPlanned,
                comment: false,
            }
        }
        "reopen" | "reopened" | "open" => Target::Reopen,
        _ => return None,
    })
}

fn status(issue: &Issue) -> String {
    match (&*issue.state, issue.state_reason.as_deref()) {
        ("closed", Some(reason)) => format!("closed ({reason})"),
        (state, _) => state.to_string(),
    }
}

impl From<GitHubError> for TicketError {
    fn from(e: GitHubError) -> Self {
        let message = e.to_string();
        match e {
            GitHubError::NotFound(_) | GitHubError::Gone { .. } => TicketError::NotFound(message),
            GitHubError::Unauthorized { .. } => TicketError::Forbidden(message),
            GitHubError::RateLimited { wait, .. } => TicketError::RateLimited {
                message,
                retry_after: wait.unwrap_or(DEFAULT_WAIT),
            },
            GitHubError::Rejected { .. } => TicketError::Invalid(message),
            GitHubError::Unavailable(_) | GitHubError::BadAnswer(_) => {
                TicketError::Unavailable(message)
            }
        }
    }
}

impl GitHubIssues {
    pub fn new(config: &GitHubTicketsConfig) -> Result<Self, String> {
        Ok(Self {
            client: GitHub::named(
                &config.github,
                "github_issues",
                "GitHub Issues",
                "ticketing.github",
            )?,
            owner: config.owner.clone(),
            repo: config.repo.clone(),
        })
    }

    fn ticket(&self, issue: &Issue, summary: Option<&str>) -> Ticket {
        Ticket {
            key: format!("{}/{}#{}", self.owner, self.repo, issue.number),
            summary: summary.map_or_else(|| issue.title.clone(), str::to_string),
            status: status(issue),
            priority: None,
            labels: issue.labels.clone(),
            url: (!issue.html_url.is_empty()).then(|| issue.html_url.clone()),
        }
    }

    /// The issue number of `key` (`owner/name#N`, `#N` or `N`) in this provider's repository.
    fn number(&self, key: &str) -> Result<u64, TicketError> {
        let key = key.trim();
        let (repo, number) = match key.rsplit_once('#') {
            Some((repo, n)) => (Some(repo), n),
            None => (None, key),
        };
        let here = format!("{}/{}", self.owner, self.repo);
        if let Some(repo) = repo.filter(|r| !r.is_empty())
            && !repo.eq_ignore_ascii_case(&here)
        {
            return Err(TicketError::Invalid(format!(
                "ticket `{key}` is in {repo}; this GitHub Issues provider files in {here}"
            )));
        }
        number
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                TicketError::Invalid(format!(
                    "`{key}` is not a GitHub issue key; write {here}#123, #123 or 123"
                ))
            })
    }

    async fn create_issue(&self, t: &NewTicket) -> Result<Ticket, TicketError> {
        let issue = self
            .client
            .create_issue(
                &self.owner,
                &self.repo,
                &t.summary,
                &t.description,
                &t.labels,
            )
            .await?;
        if issue.number == 0 {
            return Err(TicketError::Unavailable(
                "GitHub opened an issue but its answer has no `number`".into(),
            ));
        }
        Ok(self.ticket(&issue, Some(&t.summary)))
    }

    async fn get_issue(&self, key: &str) -> Result<Ticket, TicketError> {
        let n = self.number(key)?;
        let issue = self.client.issue(&self.owner, &self.repo, n).await?;
        Ok(self.ticket(&issue, None))
    }

    async fn search_issues(&self, query: &str, limit: u32) -> Result<Vec<Ticket>, TicketError> {
        let q = format!(
            "repo:{}/{} is:issue {}",
            self.owner,
            self.repo,
            query.trim()
        );
        let found = self.client.search_issues(&q, limit).await?;
        Ok(found.iter().map(|i| self.ticket(i, None)).collect())
    }

    async fn labelled(&self, label: &str) -> Result<Option<Ticket>, TicketError> {
        let found = self
            .client
            .issues_labelled(&self.owner, &self.repo, label, 1)
            .await?;
        Ok(found.first().map(|i| self.ticket(i, None)))
    }

    async fn add_comment(&self, key: &str, text: &str) -> Result<(), TicketError> {
        let n = self.number(key)?;
        Ok(self
            .client
            .comment_issue(&self.owner, &self.repo, n, text)
            .await?)
    }

    async fn move_issue(&self, key: &str, name: &str) -> Result<String, TicketError> {
        let n = self.number(key)?;
        let Some(target) = target(name) else {
            return Err(TicketError::Invalid(format!(
                "GitHub Issues has no transition `{name}`; use resolved or closed (close as completed), not_planned, or reopen"
            )));
        };
        let issue = self.client.issue(&self.owner, &self.repo, n).await?;
        let wanted_open = target == Target::Reopen;
        if (issue.state == "open") == wanted_open {
            return Ok(status(&issue));
        }
        let close = match target {
            Target::Close { reason, comment } => {
                if comment {
                    self.client
                        .comment_issue(
                            &self.owner,
                            &self.repo,
                            n,
                            &format!(
                                "toolgate: {name}; closing the issue as {}.",
                                reason.as_str()
                            ),
                        )
                        .await?;
                }
                Some(reason)
            }
            Target::Reopen => None,
        };
        let issue = self
            .client
            .set_issue_state(&self.owner, &self.repo, n, close)
            .await?;
        Ok(status(&issue))
    }
}

impl TicketProvider for GitHubIssues {
    fn name(&self) -> &'static str {
        "github"
    }

    fn create<'a>(&'a self, ticket: &'a NewTicket) -> BoxFuture<'a, Result<Ticket, TicketError>> {
        Box::pin(self.create_issue(ticket))
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Ticket, TicketError>> {
        Box::pin(self.get_issue(key))
    }

    fn search<'a>(
        &'a self,
        query: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Ticket>, TicketError>> {
        Box::pin(self.search_issues(query, limit))
    }

    fn find_labelled<'a>(
        &'a self,
        label: &'a str,
    ) -> BoxFuture<'a, Result<Option<Ticket>, TicketError>> {
        Box::pin(self.labelled(label))
    }

    fn comment<'a>(
        &'a self,
        key: &'a str,
        text: &'a str,
    ) -> BoxFuture<'a, Result<(), TicketError>> {
        Box::pin(self.add_comment(key, text))
    }

    fn transition<'a>(
        &'a self,
        key: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<String, TicketError>> {
        Box::pin(self.move_issue(key, name))
    }

    fn health(&self) -> Health {
        self.client.health()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_names_map_to_close_reasons_or_reopen() {
        assert_eq!(
            target("Resolved"),
            Some(Target::Close {
                reason: CloseReason::Completed,
                comment: true
            })
        );
        assert_eq!(
            target("Closed"),
            Some(Target::Close {
                reason: CloseReason::Completed,
                comment: false
            })
        );
        assert_eq!(
            target("Won't do"),
            Some(Target::Close {
                reason: CloseReason::NotPlanned,
                comment: false
            })
        );
        assert_eq!(target("reopen"), Some(Target::Reopen));
        assert_eq!(target("In Progress"), None);
    }

    #[test]
    fn rate_limits_keep_their_wait_and_other_errors_their_kind() {
        let limited = TicketError::from(GitHubError::RateLimited {
            status: 403,
            resets: "it resets at 2026-01-01T00:00:00Z (x-ratelimit-reset)".into(),
            wait: Some(std::time::Duration::from_secs(42)),
        });
        assert_eq!(
            limited.retry_after(),
            Some(std::time::Duration::from_secs(42))
        );
        assert!(limited.is_transient());
        assert!(
            limited.to_string().contains("x-ratelimit-reset"),
            "{limited}"
        );
        let gone = TicketError::from(GitHubError::Gone {
            what: "issue o/r#3".into(),
            message: "This issue was deleted".into(),
        });
        assert!(matches!(gone, TicketError::NotFound(_)), "{gone:?}");
        let invalid = TicketError::from(GitHubError::Rejected {
            status: 422,
            message: "Validation Failed (title: missing_field)".into(),
        });
        assert!(matches!(invalid, TicketError::Invalid(_)));
    }
}
