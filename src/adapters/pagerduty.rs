//! PagerDuty as a [`Pager`]: Events API v2 (`POST /v2/enqueue`, routing key in the body,
//! `dedup_key` = incident id: trigger, acknowledge, resolve; 202, 400 `{status, message,
//! errors}`, 429) and, when an API token is configured, the REST API for reading
//! (`GET /incidents?incident_key=`, `GET /oncalls`). Events are keyed by the dedup key, so
//! sending one again changes nothing: they are retried like reads.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::http::config::{EndpointFields, RawCredential};
use super::http::{CallError, Credential, Endpoint, Health, HttpAuth, Retry, Upstream};
use super::pager::{
    OnCall, PageError, PageRequest, PageStatus, Pager, error_words, url_with, with_default_url,
};

pub const EVENTS_URL: &str = "https://events.pagerduty.com";
pub const API_URL: &str = "https://api.pagerduty.com";

crate::raw_endpoint! {
    /// PagerDuty (`paging.pagerduty`): `url` is the Events API (default
    /// https://events.pagerduty.com).
    pub struct RawPagerDuty {
        /// The service's Events API v2 integration key.
        pub routing_key: Option<RawCredential>,
        /// The same as a secret reference (the seed's spelling).
        pub routing_key_ref: Option<String>,
        /// REST API base for page.get and page.list_oncall. Default https://api.pagerduty.com.
        pub api_url: Option<String>,
        /// REST API token (read-only is enough); without it page.get and page.list_oncall
        /// are unavailable.
        pub api_token: Option<RawCredential>,
    }
}

#[derive(Debug, Clone)]
pub struct PagerDutyConfig {
    pub events: Endpoint,
    pub routing_key: Credential,
    /// REST API endpoint with its token, when configured.
    pub api: Option<Endpoint>,
}

pub fn resolve(
    key: &str,
    raw: &RawPagerDuty,
    problems: &mut Vec<String>,
) -> Option<PagerDutyConfig> {
    let url = with_default_url(&raw.url, EVENTS_URL);
    let events =
        super::http::config::resolve(key, url.as_deref(), raw.endpoint_fields(), problems)?;
    let by_ref = raw.routing_key_ref.as_ref().map(|r| {
        RawCredential::Source(super::http::config::RawCredentialSource {
            secret_ref: Some(r.clone()),
            ..Default::default()
        })
    });
    if raw.routing_key.is_some() && by_ref.is_some() {
        problems.push(format!(
            "{key}: give routing_key or routing_key_ref, not both"
        ));
    }
    let raw_key = raw.routing_key.clone().or(by_ref);
    let Some(routing_key) = raw_key
        .as_ref()
        .and_then(|k| k.resolve(&format!("{key}.routing_key"), problems))
    else {
        if raw_key.is_none() {
            problems.push(format!(
                "{key}.routing_key: not set; give the Events API v2 integration key (e.g. {{secret_ref: platform/pagerduty-routing-key}})"
            ));
        }
        return None;
    };
    let api = match &raw.api_token {
        Some(token) => token
            .resolve(&format!("{key}.api_token"), problems)
            .and_then(|token| {
                let api_url = raw.api_url.clone().unwrap_or_else(|| API_URL.into());
                let mut api = super::http::config::resolve(
                    &format!("{key}.api_url"),
                    Some(&api_url),
                    EndpointFields {
                        auth: None,
                        ..raw.endpoint_fields()
                    },
                    problems,
                )?;
                api.auth = HttpAuth::Header {
                    name: reqwest::header::AUTHORIZATION,
                    prefix: "Token token=".into(),
                    value: token,
                };
                Some(api)
            }),
        None => None,
    };
    Some(PagerDutyConfig {
        events,
        routing_key,
        api,
    })
}

pub struct PagerDuty {
    events_url: String,
    routing_key: Credential,
    events: Upstream,
    api: Option<(String, Upstream)>,
}

impl PagerDuty {
    pub fn new(config: PagerDutyConfig) -> Result<Self, String> {
        let events = Upstream::new(
            "pagerduty",
            "PagerDuty Events API",
            &config.events.settings,
            config.events.auth.clone(),
        )
        .map_err(|e| format!("paging.pagerduty: {e}"))?;
        config.routing_key.bind();
        let api = match config.api {
            Some(api) => Some((
                api.url.clone(),
                Upstream::new(
                    "pagerduty-api",
                    "PagerDuty REST API",
                    &api.settings,
                    api.auth.clone(),
                )
                .map_err(|e| format!("paging.pagerduty.api_url: {e}"))?,
            )),
            None => None,
        };
        Ok(Self {
            events_url: format!("{}/v2/enqueue", config.events.url),
            routing_key: config.routing_key,
            events,
            api,
        })
    }

    async fn enqueue(
        &self,
        action: &str,
        incident_id: &str,
        payload: Option<Value>,
    ) -> Result<(), PageError> {
        let key = self
            .routing_key
            .current()
            .await
            .map_err(|e| PageError::Unavailable(format!("PagerDuty routing key: {e}")))?;
        let mut body = json!({
            "routing_key": key.expose(),
            "event_action": action,
            "dedup_key": incident_id,
        });
        if let Some(payload) = payload {
            body["payload"] = payload;
        }
        // Keyed by dedup_key: a repeated event changes nothing, so it is retried like a read.
        let reply = self
            .events
            .send(Retry::Read, || {
                Ok(self.events.http().post(&self.events_url).json(&body))
            })
            .await
            .map_err(unavailable)?;
        match reply.status.as_u16() {
            200..=299 => Ok(()),
            400 => Err(PageError::Invalid(format!(
                "PagerDuty refused the {action} event (HTTP 400): {}",
                error_words(&reply.body)
            ))),
            401 | 403 => Err(PageError::Forbidden(format!(
                "PagerDuty refused the routing key (HTTP {})",
                reply.status.as_u16()
            ))),
            404 => Err(PageError::NotFound(format!(
                "PagerDuty: no such integration (HTTP 404): {}",
                error_words(&reply.body)
            ))),
            other => Err(PageError::Invalid(format!(
                "PagerDuty answered the {action} event with HTTP {other}: {}",
                error_words(&reply.body)
            ))),
        }
    }

    fn api(&self, what: &str) -> Result<&(String, Upstream), PageError> {
        self.api.as_ref().ok_or_else(|| {
            PageError::NotConfigured(format!(
                "{what} needs PagerDuty's REST API, but only the Events API (routing key) is configured: set paging.pagerduty.api_token (and api_url if not https://api.pagerduty.com)"
            ))
        })
    }

    async fn rest_get(&self, what: &str, url: reqwest::Url) -> Result<Value, PageError> {
        let (_, upstream) = self.api(what)?;
        let reply = upstream
            .send(Retry::Read, || {
                Ok(upstream
                    .http()
                    .get(url.clone())
                    .header("accept", "application/vnd.pagerduty+json;version=2"))
            })
            .await
            .map_err(unavailable)?;
        let status = reply.status.as_u16();
        if !reply.status.is_success() {
            let words = format!(
                "PagerDuty REST API answered HTTP {status}: {}",
                error_words(&reply.body)
            );
            return Err(match status {
                401 | 403 => PageError::Forbidden(words),
                404 => PageError::NotFound(words),
                _ => PageError::Invalid(words),
            });
        }
        serde_json::from_slice(&reply.body)
            .map_err(|e| PageError::Unavailable(format!("PagerDuty REST API: no JSON ({e})")))
    }

    async fn get_incident(&self, incident_id: &str) -> Result<PageStatus, PageError> {
        let (base, _) = self.api("page.get")?;
        let mut url = url_with(base, &["incidents"]).map_err(PageError::Invalid)?;
        url.query_pairs_mut()
            .append_pair("incident_key", incident_id);
        let doc = self.rest_get("page.get", url).await?;
        let Some(found) = doc["incidents"].as_array().and_then(|i| i.first()) else {
            return Err(PageError::NotFound(format!(
                "PagerDuty has no incident with incident_key `{incident_id}`"
            )));
        };
        Ok(PageStatus {
            incident_id: incident_id.to_string(),
            status: found["status"].as_str().unwrap_or_default().to_string(),
            summary: found["title"].as_str().map(str::to_string),
            url: found["html_url"].as_str().map(str::to_string),
        })
    }

    async fn oncalls(&self) -> Result<Vec<OnCall>, PageError> {
        let (base, _) = self.api("page.list_oncall")?;
        let url = url_with(base, &["oncalls"]).map_err(PageError::Invalid)?;
        let doc = self.rest_get("page.list_oncall", url).await?;
        Ok(doc["oncalls"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|o| OnCall {
                        schedule: o["escalation_policy"]["summary"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        user: o["user"]["summary"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        level: o["escalation_level"].as_u64().unwrap_or(0) as u32,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn unavailable(e: CallError) -> PageError {
    PageError::from(e)
}

/// PagerDuty's severities: critical, error, warning, info.
fn severity(s: &str) -> &'static str {
    match s {
        "critical" => "critical",
        "high" => "error",
        "medium" | "warning" => "warning",
        _ => "info",
    }
}

impl Pager for PagerDuty {
    fn name(&self) -> &'static str {
        "pagerduty"
    }

    fn trigger<'a>(&'a self, page: &'a PageRequest) -> BoxFuture<'a, Result<(), PageError>> {
        let payload = json!({
            "summary": page.summary.chars().take(1024).collect::<String>(),
            "source": page.source,
            "severity": severity(&page.severity),
            "custom_details": page.details,
        });
        Box::pin(self.enqueue("trigger", &page.incident_id, Some(payload)))
    }

    fn acknowledge<'a>(&'a self, incident_id: &'a str) -> BoxFuture<'a, Result<(), PageError>> {
        Box::pin(self.enqueue("acknowledge", incident_id, None))
    }

    fn resolve<'a>(&'a self, incident_id: &'a str) -> BoxFuture<'a, Result<(), PageError>> {
        Box::pin(self.enqueue("resolve", incident_id, None))
    }

    fn get<'a>(&'a self, incident_id: &'a str) -> BoxFuture<'a, Result<PageStatus, PageError>> {
        Box::pin(self.get_incident(incident_id))
    }

    fn list_oncall(&self) -> BoxFuture<'_, Result<Vec<OnCall>, PageError>> {
        Box::pin(self.oncalls())
    }

    fn health(&self) -> Vec<Health> {
        std::iter::once(self.events.guard().health())
            .chain(self.api.as_ref().map(|(_, u)| u.guard().health()))
            .collect()
    }
}
