//! Jira Cloud REST v3 as a [`TicketProvider`]: create an issue (summary, ADF description,
//! labels, priority from the severity), read and search it (`POST /rest/api/3/search/jql`),
//! comment, and move it through a transition looked up by name (ids differ per workflow).
//! Credentials: Basic `email:api_token` (each a credential, so a `secret_ref`), or the kit's
//! `auth` block. Errors carry Jira's own words (`{errorMessages, errors}`).

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::http::config::{EndpointFields, RawCredential};
use super::http::{Credential, Endpoint, Health, Reply, Retry, Upstream};
use super::pager::error_words;
use super::ticket::{NewTicket, Ticket, TicketError, TicketProvider};

crate::raw_endpoint! {
    /// Jira Cloud (`ticketing.jira`).
    pub struct RawJira {
        /// The same as `url` (the seed's spelling).
        pub base_url: Option<String>,
        /// A secret in OpenBao with fields `email` and `api_token` (the seed's spelling of
        /// `email: {secret_ref: P#email}`, `api_token: {secret_ref: P#api_token}`).
        pub secret_ref: Option<String>,
        /// The project new issues go to (e.g. `SRE`).
        pub project_key: Option<String>,
        /// Issue type of new issues. Default `Incident`.
        pub issue_type: Option<String>,
        /// The account's email (Basic auth user).
        pub email: Option<RawCredential>,
        /// The account's API token (Basic auth password).
        pub api_token: Option<RawCredential>,
        /// Jira priority name per severity (default critical → Highest, high → High,
        /// medium → Medium, low → Low, info → Lowest).
        pub priorities: Option<BTreeMap<String, String>>,
    }
}

#[derive(Debug, Clone)]
pub struct JiraConfig {
    pub endpoint: Endpoint,
    pub project_key: String,
    pub issue_type: String,
    /// Basic credentials (`None` when the kit's `auth` block is used instead).
    pub basic: Option<(Credential, Credential)>,
    pub priorities: BTreeMap<String, String>,
}

/// Resolve `key` (e.g. `ticketing.jira`); `None` when its `url` is unset.
pub fn resolve(key: &str, raw: &RawJira, problems: &mut Vec<String>) -> Option<JiraConfig> {
    let fields: EndpointFields<'_> = raw.endpoint_fields();
    if raw.url.is_some() && raw.base_url.is_some() {
        problems.push(format!("{key}: give url or base_url, not both"));
    }
    let url = raw.url.as_deref().or(raw.base_url.as_deref());
    let endpoint = super::http::config::resolve(key, url, fields, problems)?;
    let by_ref = |field: &str| {
        raw.secret_ref.as_ref().map(|r| {
            RawCredential::Source(super::http::config::RawCredentialSource {
                secret_ref: Some(format!("{}#{field}", r.split('#').next().unwrap_or(r))),
                ..Default::default()
            })
        })
    };
    if raw.secret_ref.is_some() && (raw.email.is_some() || raw.api_token.is_some()) {
        problems.push(format!(
            "{key}: give secret_ref (a secret with email and api_token) or email and api_token, not both"
        ));
    }
    let (email, api_token) = match &raw.secret_ref {
        Some(_) => (by_ref("email"), by_ref("api_token")),
        None => (raw.email.clone(), raw.api_token.clone()),
    };
    let project_key = match raw.project_key.as_deref().map(str::trim) {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => {
            problems.push(format!(
                "{key}.project_key: not set; name the Jira project new issues go to, e.g. SRE"
            ));
            String::new()
        }
    };
    let basic = match (&email, &api_token, raw.auth.is_some()) {
        (Some(e), Some(t), false) => {
            let email = e.resolve(&format!("{key}.email"), problems);
            let token = t.resolve(&format!("{key}.api_token"), problems);
            email.zip(token)
        }
        (None, None, true) => None,
        (None, None, false) => {
            problems.push(format!(
                "{key}: no credentials; set email and api_token (Jira Cloud Basic auth), or auth"
            ));
            None
        }
        _ => {
            problems.push(format!(
                "{key}: give email with api_token, or auth, not a mix"
            ));
            None
        }
    };
    let mut priorities: BTreeMap<String, String> = [
        ("critical", "Highest"),
        ("high", "High"),
        ("medium", "Medium"),
        ("low", "Low"),
        ("info", "Lowest"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    priorities.extend(raw.priorities.clone().unwrap_or_default());
    Some(JiraConfig {
        endpoint,
        project_key,
        issue_type: raw.issue_type.clone().unwrap_or_else(|| "Incident".into()),
        basic,
        priorities,
    })
}

pub struct Jira {
    config: JiraConfig,
    upstream: Upstream,
}

impl Jira {
    pub fn new(config: JiraConfig) -> Result<Self, String> {
        let upstream = Upstream::new(
            "jira",
            "Jira",
            &config.endpoint.settings,
            config.endpoint.auth.clone(),
        )
        .map_err(|e| format!("ticketing.jira: {e}"))?;
        if let Some((email, token)) = &config.basic {
            email.bind();
            token.bind();
        }
        Ok(Self { config, upstream })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/rest/api/3/{path}", self.config.endpoint.url)
    }

    /// One request: `body` as JSON when given; Basic credentials read now.
    async fn call(
        &self,
        retry: Retry,
        method: reqwest::Method,
        url: String,
        body: Option<Value>,
    ) -> Result<Reply, TicketError> {
        let basic = match &self.config.basic {
            Some((email, token)) => {
                let read = |c: &Credential| {
                    let c = c.clone();
                    async move {
                        c.current()
                            .await
                            .map_err(|e| TicketError::Unavailable(format!("Jira credentials: {e}")))
                    }
                };
                Some((read(email).await?, read(token).await?))
            }
            None => None,
        };
        self.upstream
            .send(retry, || {
                let mut request = self
                    .upstream
                    .http()
                    .request(method.clone(), &url)
                    .header("accept", "application/json");
                if let Some((email, token)) = &basic {
                    request = request.basic_auth(email.expose(), Some(token.expose()));
                }
                if let Some(body) = &body {
                    request = request.json(body);
                }
                Ok(request)
            })
            .await
            .map_err(TicketError::from)
    }

    /// The answer's JSON, or the error its status says.
    fn check(reply: Reply, what: &str) -> Result<Value, TicketError> {
        let status = reply.status.as_u16();
        if reply.status.is_success() {
            if reply.body.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&reply.body).map_err(|e| {
                TicketError::Unavailable(format!("Jira answered {what} with no JSON ({e})"))
            });
        }
        let words = format!(
            "Jira refused {what} (HTTP {status}): {}",
            error_words(&reply.body)
        );
        Err(match status {
            404 => TicketError::NotFound(words),
            401 | 403 => TicketError::Forbidden(words),
            _ => TicketError::Invalid(words),
        })
    }

    fn ticket(&self, issue: &Value) -> Ticket {
        let fields = &issue["fields"];
        let key = issue["key"].as_str().unwrap_or_default().to_string();
        Ticket {
            url: Some(format!("{}/browse/{key}", self.config.endpoint.url)),
            key,
            summary: fields["summary"].as_str().unwrap_or_default().to_string(),
            status: fields["status"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            priority: fields["priority"]["name"].as_str().map(str::to_string),
            labels: fields["labels"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    async fn create_issue(&self, t: &NewTicket) -> Result<Ticket, TicketError> {
        let mut fields = json!({
            "project": {"key": self.config.project_key},
            "issuetype": {"name": self.config.issue_type},
            "summary": t.summary,
            "description": adf(&t.description),
            "labels": t.labels,
        });
        if let Some(priority) = self.config.priorities.get(&t.severity) {
            fields["priority"] = json!({"name": priority});
        }
        // Not repeated on a lost answer: a second POST would be a second issue.
        let reply = self
            .call(
                Retry::Write,
                reqwest::Method::POST,
                self.url("issue"),
                Some(json!({"fields": fields})),
            )
            .await?;
        let created = Self::check(reply, "creating an issue")?;
        let key = created["key"].as_str().unwrap_or_default().to_string();
        if key.is_empty() {
            return Err(TicketError::Unavailable(
                "Jira created an issue but its answer has no `key`".into(),
            ));
        }
        Ok(Ticket {
            url: Some(format!("{}/browse/{key}", self.config.endpoint.url)),
            key,
            summary: t.summary.clone(),
            status: "Open".into(),
            priority: self.config.priorities.get(&t.severity).cloned(),
            labels: t.labels.clone(),
        })
    }

    async fn get_issue(&self, key: &str) -> Result<Ticket, TicketError> {
        let url = format!(
            "{}?fields=summary,status,priority,labels",
            self.url(&format!("issue/{}", segment(key)))
        );
        let reply = self
            .call(Retry::Read, reqwest::Method::GET, url, None)
            .await?;
        Ok(self.ticket(&Self::check(reply, &format!("reading {key}"))?))
    }

    async fn search_issues(&self, jql: &str, limit: u32) -> Result<Vec<Ticket>, TicketError> {
        let body = json!({
            "jql": jql,
            "maxResults": limit.clamp(1, 100),
            "fields": ["summary", "status", "priority", "labels"],
        });
        // A search changes nothing: safe to repeat.
        let reply = self
            .call(
                Retry::Read,
                reqwest::Method::POST,
                self.url("search/jql"),
                Some(body),
            )
            .await?;
        let doc = Self::check(reply, "the search")?;
        Ok(doc["issues"]
            .as_array()
            .map(|issues| issues.iter().map(|i| self.ticket(i)).collect())
            .unwrap_or_default())
    }

    async fn add_comment(&self, key: &str, text: &str) -> Result<(), TicketError> {
        let reply = self
            .call(
                Retry::Write,
                reqwest::Method::POST,
                self.url(&format!("issue/{}/comment", segment(key))),
                Some(json!({"body": adf(text)})),
            )
            .await?;
        Self::check(reply, &format!("a comment on {key}")).map(|_| ())
    }

    async fn move_issue(&self, key: &str, name: &str) -> Result<String, TicketError> {
        let path = self.url(&format!("issue/{}/transitions", segment(key)));
        let reply = self
            .call(Retry::Read, reqwest::Method::GET, path.clone(), None)
            .await?;
        let doc = Self::check(reply, &format!("the transitions of {key}"))?;
        let transitions = doc["transitions"].as_array().cloned().unwrap_or_default();
        let wanted = name.to_lowercase();
        let found = transitions.iter().find(|t| {
            t["name"].as_str().map(str::to_lowercase).as_deref() == Some(wanted.as_str())
                || t["to"]["name"].as_str().map(str::to_lowercase).as_deref()
                    == Some(wanted.as_str())
        });
        let Some(transition) = found else {
            // Already there (a redelivered fact, a human was quicker): nothing to do.
            let current = self.get_issue(key).await?;
            if current.status.to_lowercase() == wanted {
                return Ok(current.status);
            }
            let names: Vec<&str> = transitions
                .iter()
                .filter_map(|t| t["name"].as_str())
                .collect();
            return Err(TicketError::Invalid(format!(
                "{key} (status {}) has no transition `{name}`; available: {}",
                current.status,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        };
        let id = transition["id"].as_str().unwrap_or_default().to_string();
        let to = transition["to"]["name"]
            .as_str()
            .unwrap_or(name)
            .to_string();
        let reply = self
            .call(
                Retry::Write,
                reqwest::Method::POST,
                path,
                Some(json!({"transition": {"id": id}})),
            )
            .await?;
        Self::check(reply, &format!("transition `{name}` of {key}"))?;
        Ok(to)
    }
}

impl TicketProvider for Jira {
    fn name(&self) -> &'static str {
        "jira"
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
        Box::pin(async move {
            let jql = format!(
                "project = \"{}\" AND labels = \"{}\" ORDER BY created ASC",
                self.config.project_key.replace('"', ""),
                label.replace('"', "")
            );
            Ok(self.search_issues(&jql, 1).await?.into_iter().next())
        })
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
        self.upstream.guard().health()
    }
}

/// An issue key (`SRE-12`) or id (`10042`) as one path segment; anything else is refused
/// before it reaches a URL.
fn segment(key: &str) -> String {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        key.to_string()
    } else {
        "-invalid-key-".to_string()
    }
}

/// Plain text as an Atlassian Document: one paragraph per blank-line-separated block.
pub fn adf(text: &str) -> Value {
    let paragraphs: Vec<Value> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| json!({"type": "paragraph", "content": [{"type": "text", "text": p}]}))
        .collect();
    json!({"type": "doc", "version": 1, "content": paragraphs})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_becomes_adf_paragraphs() {
        let doc = adf("first\n\nsecond line");
        assert_eq!(doc["type"], "doc");
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["content"].as_array().map(Vec::len), Some(2));
        assert_eq!(doc["content"][1]["content"][0]["text"], "second line");
    }

    #[test]
    fn jira_error_bodies_are_read_in_its_words() {
        let body = br#"{"errorMessages":["Issue does not exist"],"errors":{"priority":"invalid"}}"#;
        assert_eq!(error_words(body), "Issue does not exist; priority: invalid");
    }
}
