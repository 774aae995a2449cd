//! Grafana HTTP API: dashboard search (`/api/search`, by title, tag or uid) and annotations
//! (`POST /api/annotations`). Links are built on the configured public URL; Grafana's own
//! `url` field is the dashboard's path (`/d/{uid}/{slug}`).

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::observability::{HttpApi, ObsError};
use crate::config::HttpUpstream;

#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    pub uid: String,
    pub title: String,
    /// Path under Grafana's root, e.g. `/d/abc/service-overview`.
    pub path: String,
    pub tags: Vec<String>,
    pub folder: Option<String>,
}

/// What to search for; all given criteria must match (Grafana ANDs them).
#[derive(Debug, Clone, Default)]
pub struct DashboardQuery {
    pub title: Option<String>,
    pub tags: Vec<String>,
    pub uid: Option<String>,
    pub limit: u32,
}

/// A new annotation (times in epoch milliseconds).
#[derive(Debug, Clone, Default)]
pub struct NewAnnotation {
    pub dashboard_uid: Option<String>,
    pub panel_id: Option<i64>,
    pub time_ms: i64,
    pub time_end_ms: Option<i64>,
    pub tags: Vec<String>,
    pub text: String,
}

/// What the dashboard tools need from Grafana.
pub trait Dashboards: Send + Sync {
    /// The upstream's breaker and last results, for `/readyz` (fakes have none).
    fn health(&self) -> Option<super::http::Health> {
        None
    }

    /// Base URL of links people open.
    fn public_url(&self) -> &str;
    fn search<'a>(
        &'a self,
        q: &'a DashboardQuery,
    ) -> BoxFuture<'a, Result<Vec<Dashboard>, ObsError>>;
    /// Create an annotation (sent once, never retried); returns its id.
    fn annotate<'a>(&'a self, a: &'a NewAnnotation) -> BoxFuture<'a, Result<i64, ObsError>>;
}

impl Dashboards for Grafana {
    fn health(&self) -> Option<super::http::Health> {
        Some(self.api.health())
    }

    fn public_url(&self) -> &str {
        &self.public_url
    }

    fn search<'a>(
        &'a self,
        q: &'a DashboardQuery,
    ) -> BoxFuture<'a, Result<Vec<Dashboard>, ObsError>> {
        Box::pin(Grafana::search(self, q))
    }

    fn annotate<'a>(&'a self, a: &'a NewAnnotation) -> BoxFuture<'a, Result<i64, ObsError>> {
        Box::pin(Grafana::annotate(self, a))
    }
}

pub struct Grafana {
    api: HttpApi,
    public_url: String,
}

impl Grafana {
    pub fn new(config: &HttpUpstream, public_url: String) -> Result<Self, String> {
        Ok(Self {
            api: HttpApi::new("Grafana", config, Vec::new())?,
            public_url: public_url.trim_end_matches('/').to_string(),
        })
    }

    pub async fn search(&self, q: &DashboardQuery) -> Result<Vec<Dashboard>, ObsError> {
        let mut params = vec![
            ("type", "dash-db".to_string()),
            ("limit", q.limit.to_string()),
        ];
        if let Some(t) = &q.title {
            params.push(("query", t.clone()));
        }
        for tag in &q.tags {
            params.push(("tag", tag.clone()));
        }
        if let Some(uid) = &q.uid {
            params.push(("dashboardUIDs", uid.clone()));
        }
        let reply = self.api.get("/api/search", &params).await?;
        if !reply.status.is_success() {
            return Err(self.api.rejected(&reply));
        }
        let body = self.api.json(&reply)?;
        let hits = body
            .as_array()
            .ok_or_else(|| self.api.bad_answer("search answer is not a list"))?;
        Ok(hits
            .iter()
            .filter(|h| h.get("type").and_then(Value::as_str).unwrap_or("dash-db") == "dash-db")
            .map(|h| {
                let uid = h["uid"].as_str().unwrap_or_default().to_string();
                Dashboard {
                    path: h["url"]
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| format!("/d/{uid}")),
                    uid,
                    title: h["title"].as_str().unwrap_or_default().to_string(),
                    tags: h["tags"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default(),
                    folder: h["folderTitle"].as_str().map(String::from),
                }
            })
            .collect())
    }

    /// Create an annotation (sent once, never retried); returns its id.
    pub async fn annotate(&self, a: &NewAnnotation) -> Result<i64, ObsError> {
        let mut body = json!({"time": a.time_ms, "tags": a.tags, "text": a.text});
        if let Some(uid) = &a.dashboard_uid {
            body["dashboardUID"] = json!(uid);
        }
        if let Some(p) = a.panel_id {
            body["panelId"] = json!(p);
        }
        if let Some(end) = a.time_end_ms {
            body["timeEnd"] = json!(end);
        }
        let reply = self.api.post_json_write("/api/annotations", &body).await?;
        if !reply.status.is_success() {
            return Err(self.api.rejected(&reply));
        }
        let answer = self.api.json(&reply)?;
        answer["id"]
            .as_i64()
            .ok_or_else(|| self.api.bad_answer("annotation answer without an `id`"))
    }
}
