//! Opsgenie's Alert API as a [`Pager`]: create with `alias` = incident id, acknowledge and
//! close by alias (`?identifierType=alias`), read an alert, list who is on call; `GenieKey`
//! auth. Opsgenie answers 202 and processes requests asynchronously, so an accepted request
//! may still fail at Opsgenie. Its vendor ends the REST API on 2027-04-05: the [`Pager`] trait
//! is where a successor slots in.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::http::config::RawCredential;
use super::http::{Endpoint, Health, HttpAuth, Retry, Upstream};
use super::pager::{
    OnCall, PageError, PageRequest, PageStatus, Pager, error_words, url_with, with_default_url,
};

pub const API_URL: &str = "https://api.opsgenie.com";

crate::raw_endpoint! {
    /// Opsgenie (`paging.opsgenie`): `url` default https://api.opsgenie.com (EU:
    /// https://api.eu.opsgenie.com).
    pub struct RawOpsgenie {
        /// The API integration key, sent as `Authorization: GenieKey …`.
        pub api_key: Option<RawCredential>,
        /// The same as a secret reference (the seed's spelling).
        pub secret_ref: Option<String>,
    }
}

pub fn resolve(key: &str, raw: &RawOpsgenie, problems: &mut Vec<String>) -> Option<Endpoint> {
    let url = with_default_url(&raw.url, API_URL);
    let mut endpoint =
        super::http::config::resolve(key, url.as_deref(), raw.endpoint_fields(), problems)?;
    let credential = match (&raw.api_key, &raw.secret_ref) {
        (Some(k), None) => k.resolve(&format!("{key}.api_key"), problems),
        (None, Some(r)) => RawCredential::Source(super::http::config::RawCredentialSource {
            secret_ref: Some(r.clone()),
            ..Default::default()
        })
        .resolve(key, problems),
        (Some(_), Some(_)) => {
            problems.push(format!("{key}: give api_key or secret_ref, not both"));
            None
        }
        (None, None) => {
            problems.push(format!(
                "{key}.api_key: not set; give the API integration key (e.g. {{secret_ref: platform/opsgenie-key}})"
            ));
            None
        }
    }?;
    endpoint.auth = HttpAuth::Header {
        name: reqwest::header::AUTHORIZATION,
        prefix: "GenieKey ".into(),
        value: credential,
    };
    Some(endpoint)
}

pub struct Opsgenie {
    base: String,
    upstream: Upstream,
}

impl Opsgenie {
    pub fn new(endpoint: Endpoint) -> Result<Self, String> {
        let upstream = Upstream::new("opsgenie", "Opsgenie", &endpoint.settings, endpoint.auth)
            .map_err(|e| format!("paging.opsgenie: {e}"))?;
        Ok(Self {
            base: endpoint.url,
            upstream,
        })
    }

    async fn request(
        &self,
        what: &str,
        method: reqwest::Method,
        segments: &[&str],
        by_alias: bool,
        body: Option<Value>,
    ) -> Result<Value, PageError> {
        let mut url = url_with(&self.base, segments).map_err(PageError::Invalid)?;
        if by_alias {
            url.query_pairs_mut().append_pair("identifierType", "alias");
        }
        // Every request here is keyed by the alias (create dedupes by it; acknowledge and
        // close of a done alert change nothing): retried like reads.
        let reply = self
            .upstream
            .send(Retry::Read, || {
                let mut r = self.upstream.http().request(method.clone(), url.clone());
                if let Some(body) = &body {
                    r = r.json(body);
                }
                Ok(r)
            })
            .await
            .map_err(PageError::from)?;
        let status = reply.status.as_u16();
        if reply.status.is_success() {
            return Ok(serde_json::from_slice(&reply.body).unwrap_or(Value::Null));
        }
        let words = format!(
            "Opsgenie refused {what} (HTTP {status}): {}",
            error_words(&reply.body)
        );
        Err(match status {
            401 | 403 => PageError::Forbidden(words),
            404 => PageError::NotFound(words),
            _ => PageError::Invalid(words),
        })
    }
}

/// Opsgenie priorities P1–P5.
fn priority(severity: &str) -> &'static str {
    match severity {
        "critical" => "P1",
        "high" => "P2",
        "medium" | "warning" => "P3",
        "low" => "P4",
        _ => "P5",
    }
}

impl Pager for Opsgenie {
    fn name(&self) -> &'static str {
        "opsgenie"
    }

    fn trigger<'a>(&'a self, page: &'a PageRequest) -> BoxFuture<'a, Result<(), PageError>> {
        Box::pin(async move {
            let body = json!({
                "message": page.summary.chars().take(130).collect::<String>(),
                "alias": page.incident_id,
                "description": page.summary,
                "priority": priority(&page.severity),
                "tags": ["toolgate", format!("severity:{}", page.severity)],
                "source": page.source,
                "details": page.details,
            });
            self.request(
                "the alert",
                reqwest::Method::POST,
                &["v2", "alerts"],
                false,
                Some(body),
            )
            .await
            .map(|_| ())
        })
    }

    fn acknowledge<'a>(&'a self, incident_id: &'a str) -> BoxFuture<'a, Result<(), PageError>> {
        Box::pin(async move {
            self.request(
                "the acknowledgement",
                reqwest::Method::POST,
                &["v2", "alerts", incident_id, "acknowledge"],
                true,
                Some(json!({"source": "toolgate"})),
            )
            .await
            .map(|_| ())
        })
    }

    fn resolve<'a>(&'a self, incident_id: &'a str) -> BoxFuture<'a, Result<(), PageError>> {
        Box::pin(async move {
            self.request(
                "closing the alert",
                reqwest::Method::POST,
                &["v2", "alerts", incident_id, "close"],
                true,
                Some(json!({"source": "toolgate"})),
            )
            .await
            .map(|_| ())
        })
    }

    fn get<'a>(&'a self, incident_id: &'a str) -> BoxFuture<'a, Result<PageStatus, PageError>> {
        Box::pin(async move {
            let doc = self
                .request(
                    "reading the alert",
                    reqwest::Method::GET,
                    &["v2", "alerts", incident_id],
                    true,
                    None,
                )
                .await?;
            let data = &doc["data"];
            let mut status = data["status"].as_str().unwrap_or_default().to_string();
            if status == "open" && data["acknowledged"].as_bool() == Some(true) {
                status = "acknowledged".into();
            }
            Ok(PageStatus {
                incident_id: incident_id.to_string(),
                status,
                summary: data["message"].as_str().map(str::to_string),
                url: None,
            })
        })
    }

    fn list_oncall(&self) -> BoxFuture<'_, Result<Vec<OnCall>, PageError>> {
        Box::pin(async move {
            let doc = self
                .request(
                    "the on-call list",
                    reqwest::Method::GET,
                    &["v2", "schedules", "on-calls"],
                    false,
                    None,
                )
                .await?;
            let mut out = Vec::new();
            for schedule in doc["data"].as_array().into_iter().flatten() {
                let name = schedule["_parent"]["name"].as_str().unwrap_or_default();
                for p in schedule["onCallParticipants"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    out.push(OnCall {
                        schedule: name.to_string(),
                        user: p["name"].as_str().unwrap_or_default().to_string(),
                        level: 1,
                    });
                }
            }
            Ok(out)
        })
    }

    fn health(&self) -> Vec<Health> {
        vec![self.upstream.guard().health()]
    }
}
