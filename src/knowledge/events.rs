//! What the streams toolgate sees mean for the index. One message (a fact or intent envelope
//! `{type, version, occurred_at, payload, …}`, or a bare backlog item) becomes a list of
//! [`Event`]s:
//! - alerts (`IngestAlertRequested`, `AlertIngested`): the alert's document ([`super::alerts`]);
//! - the domain's incident facts (`IncidentCreated`, `IncidentAcknowledged`,
//!   `IncidentResolved`, `IncidentClosed`): merged into the incident's document, whose status
//!   only moves forward;
//! - health checks (`RecordHealthCheckRequested`, `HealthCheckRecorded`, from the Kubernetes
//!   watch and the ArgoCD poller): an unhealthy change opens an episode (an incident document),
//!   later changes extend it, a healthy one closes it as `recovered`;
//! - backlog item changes (`BacklogItem…` facts of the Transformation domain, or a bare item
//!   with `id` and `title`): put, or dropped when the type ends in `Deleted` or `Removed`.
//!
//! `CreateIncidentRequested` is not indexed on its own: it repeats its alert (same fingerprint
//! and start), whose document stands for it. Other types change nothing. No I/O here: the
//! merges take the document indexed before and return the new one.

use serde_json::{Map, Value};

use super::document::{Document, Kind};

/// Feed of a backlog item received from a topic (one feed per item, so a deletion removes it).
pub const BACKLOG_ITEM_FEED: &str = "backlog-item:";
/// Feed of an incident from the incident facts.
pub const INCIDENT_FEED: &str = "incident:";
/// Feed of one health subject's episodes.
pub const HEALTH_FEED: &str = "health:";

/// Lines an episode's body keeps (the first change and the latest ones).
const EPISODE_LINES: usize = 20;

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Add or update a document under a feed.
    Put {
        feed: String,
        doc: Document,
    },
    /// Remove every document of a feed.
    Drop {
        feed: String,
    },
    Incident(IncidentFact),
    Health(HealthObservation),
}

/// An incident fact, reduced to what the index keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentFact {
    pub id: String,
    /// `open`, `acknowledged`, `resolved`, `closed`.
    pub stage: &'static str,
    pub title: Option<String>,
    pub description: Option<String>,
    pub severity: Option<String>,
    pub service: Option<String>,
    /// What ended it (`resolution`, `root_cause` of a later fact): what similar incidents need.
    pub resolution: Vec<String>,
    pub at_ms: i64,
}

/// One health change of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthObservation {
    /// `kubernetes:prod:Deployment:shop/api`, `argocd:prod:Application:argocd/shop`.
    pub subject: String,
    /// `Deployment shop/api`.
    pub object: String,
    pub healthy: bool,
    pub status: String,
    pub reason: String,
    pub tags: Vec<String>,
    pub at_ms: i64,
}

const STAGES: [&str; 4] = ["open", "acknowledged", "resolved", "closed"];

/// The events of one message from a topic. `Err` names why the message is unusable.
pub fn from_message(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let Some(object) = value.as_object() else {
        return Err("not a JSON object".into());
    };
    let Some(kind) = object.get("type").and_then(Value::as_str) else {
        // A bare backlog item (the JSON Lines file's shape).
        if object.contains_key("id") && object.contains_key("title") {
            return backlog_put(&value, 0).map(|e| vec![e]);
        }
        return Err(
            "neither an envelope (`type`, `payload`) nor a backlog item (`id`, `title`)".into(),
        );
    };
    match object.get("version") {
        None => {}
        Some(v) if v.as_u64() == Some(1) => {}
        Some(v) => return Err(format!("{kind}: version {v} is unknown; version 1 is read")),
    }
    let occurred = object
        .get("occurred_at")
        .and_then(Value::as_str)
        .map(millis)
        .unwrap_or_default();
    let empty = Value::Object(Map::new());
    let payload = object.get("payload").unwrap_or(&empty);
    from_envelope(kind, payload, occurred)
}

/// The events of one envelope's type and payload (`occurred_ms`: when it was emitted).
pub fn from_envelope(kind: &str, payload: &Value, occurred_ms: i64) -> Result<Vec<Event>, String> {
    let stage = match kind {
        "IngestAlertRequested" | "AlertIngested" => {
            return Ok(super::alerts::from_payload(payload)
                .map(|doc| Event::Put {
                    feed: super::ALERTS_FEED.into(),
                    doc,
                })
                .into_iter()
                .collect());
        }
        "RecordHealthCheckRequested" | "HealthCheckRecorded" => {
            return Ok(health(payload, occurred_ms)
                .map(Event::Health)
                .into_iter()
                .collect());
        }
        "IncidentCreated" => "open",
        "IncidentAcknowledged" => "acknowledged",
        "IncidentResolved" => "resolved",
        "IncidentClosed" => "closed",
        k if k.starts_with("BacklogItem") => {
            if k.ends_with("Deleted") || k.ends_with("Removed") {
                let id = text(payload, "id")
                    .or_else(|| text(payload, "backlog_item_id"))
                    .ok_or_else(|| format!("{k}: payload.id is missing"))?;
                return Ok(vec![Event::Drop {
                    feed: format!("{BACKLOG_ITEM_FEED}{id}"),
                }]);
            }
            return backlog_put(payload, occurred_ms)
                .map(|e| vec![e])
                .map_err(|e| format!("{k}: {e}"));
        }
        _ => return Ok(Vec::new()),
    };
    let id = text(payload, "incident_id")
        .filter(|i| i.len() <= 200)
        .ok_or_else(|| format!("{kind}: payload.incident_id is missing, empty or too long"))?;
    Ok(vec![Event::Incident(IncidentFact {
        id,
        stage,
        title: text(payload, "title").or_else(|| text(payload, "summary")),
        description: text(payload, "description"),
        severity: text(payload, "severity").map(|s| s.to_ascii_lowercase()),
        service: text(payload, "service").or_else(|| text(payload, "cluster")),
        resolution: ["resolution", "root_cause"]
            .iter()
            .filter_map(|k| text(payload, k).map(|v| format!("{}: {v}", k.replace('_', " "))))
            .collect(),
        at_ms: occurred_ms,
    })])
}

/// A backlog item from a topic: the JSON Lines fields (`id`, `title`, `body`, `tags`,
/// `status`, `links`, `source`, `created_at`, `updated_at`); other fields are ignored.
fn backlog_put(item: &Value, occurred_ms: i64) -> Result<Event, String> {
    let known: Map<String, Value> = item
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| super::files::LINE_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let doc = super::files::item(&Value::Object(known), Kind::Backlog, occurred_ms)?;
    let source = if doc.source.is_empty() {
        format!("{BACKLOG_ITEM_FEED}{}", doc.id)
    } else {
        doc.source.clone()
    };
    Ok(Event::Put {
        feed: format!("{BACKLOG_ITEM_FEED}{}", doc.id),
        doc: Document { source, ..doc },
    })
}

fn health(payload: &Value, occurred_ms: i64) -> Option<HealthObservation> {
    let kind = text(payload, "kind")?;
    let name = text(payload, "name")?;
    let namespace = text(payload, "namespace").unwrap_or_default();
    let source = text(payload, "source").unwrap_or_else(|| {
        if kind == "Application" {
            "argocd".into()
        } else {
            "kubernetes".into()
        }
    });
    let place = text(payload, "cluster")
        .or_else(|| text(payload, "environment"))
        .unwrap_or_default();
    let after = payload.get("after").unwrap_or(&Value::Null);
    let argo = after.get("health").and_then(Value::as_str);
    let healthy = payload
        .get("healthy")
        .and_then(Value::as_bool)
        .or_else(|| after.get("healthy").and_then(Value::as_bool))
        .or(match argo {
            Some("Healthy") => Some(true),
            Some("Degraded" | "Missing") => Some(false),
            // Progressing, Suspended, Unknown: not a verdict.
            _ => None,
        })?;
    let status = after
        .get("status")
        .and_then(Value::as_str)
        .or(argo)
        .unwrap_or(if healthy { "Healthy" } else { "Unhealthy" })
        .to_string();
    let reason = text(payload, "reason")
        .or_else(|| text(after, "reason"))
        .unwrap_or_default();
    let at_ms = text(payload, "observed_at")
        .map(|t| millis(&t))
        .filter(|ms| *ms > 0)
        .unwrap_or(occurred_ms);
    let object = if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    };
    let tags = [kind.as_str(), &namespace, &name, &place, &source, "health"]
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| t.to_string())
        .collect();
    Some(HealthObservation {
        subject: format!("{source}:{place}:{kind}:{namespace}/{name}"),
        object,
        healthy,
        status,
        reason,
        tags,
        at_ms,
    })
}

impl IncidentFact {
    pub fn feed(&self) -> String {
        format!("{INCIDENT_FEED}{}", self.id)
    }

    /// The incident's document after this fact, given the one indexed before (from any feed:
    /// an incident of the incidents file is the same incident).
    pub fn document(&self, before: Option<Document>) -> Document {
        let rank = |s: Option<&str>| {
            s.and_then(|s| STAGES.iter().position(|x| *x == s))
                .map_or(-1, |p| p as i64)
        };
        let mut doc = before.unwrap_or_else(|| Document {
            id: self.id.clone(),
            kind: Kind::Incident,
            title: String::new(),
            body: String::new(),
            tags: Vec::new(),
            source: self.feed(),
            status: None,
            links: Vec::new(),
            created_ms: self.at_ms,
            updated_ms: self.at_ms,
        });
        doc.kind = Kind::Incident;
        if let Some(title) = &self.title {
            doc.title = title.clone();
        } else if doc.title.is_empty() {
            doc.title = format!("Incident {}", self.id);
        }
        let mut lines: Vec<String> = doc.body.lines().map(str::to_string).collect();
        if let Some(d) = &self.description
            && !lines.iter().any(|l| l == d)
        {
            lines.insert(0, d.clone());
        }
        for r in &self.resolution {
            if !lines.contains(r) {
                lines.push(r.clone());
            }
        }
        doc.body = lines.join("\n");
        for tag in [self.severity.as_deref(), self.service.as_deref()]
            .into_iter()
            .flatten()
            .chain(["incident"])
        {
            if !doc.tags.iter().any(|t| t == tag) {
                doc.tags.push(tag.to_string());
            }
        }
        // Facts may come again or out of order: the status only moves forward.
        if rank(Some(self.stage)) > rank(doc.status.as_deref()) {
            doc.status = Some(self.stage.to_string());
        }
        if self.stage == "open" && self.at_ms > 0 {
            doc.created_ms = self.at_ms;
        }
        doc.updated_ms = doc.updated_ms.max(self.at_ms);
        doc
    }
}

impl HealthObservation {
    pub fn feed(&self) -> String {
        format!("{HEALTH_FEED}{}", self.subject)
    }

    /// The episode this change writes, given the subject's latest one: an unhealthy change
    /// opens an episode (or extends the open one), a healthy one closes the open episode.
    /// `None`: nothing to write (healthy with no open episode, or the same change again).
    pub fn episode(&self, latest: Option<Document>) -> Option<Document> {
        // A change from before the latest episode's last one: a replay (the in-process tap and
        // the intents topic both deliver the watch's changes), or late.
        if latest.as_ref().is_some_and(|d| {
            self.at_ms < d.updated_ms
                || (self.at_ms == d.updated_ms && d.status.as_deref() == Some("recovered"))
        }) {
            return None;
        }
        let open = latest.filter(|d| d.status.as_deref() != Some("recovered"));
        let change = if self.reason.is_empty() {
            self.status.clone()
        } else {
            format!("{}: {}", self.status, self.reason)
        };
        match (open, self.healthy) {
            (None, false) => Some(Document {
                id: format!("{HEALTH_FEED}{}:{}", self.subject, self.at_ms),
                kind: Kind::Incident,
                title: format!("{} unhealthy: {}", self.object, self.status),
                body: change,
                tags: self.tags.clone(),
                source: self.subject.clone(),
                status: Some(self.status.clone()),
                links: Vec::new(),
                created_ms: self.at_ms,
                updated_ms: self.at_ms,
            }),
            (None, true) => None,
            (Some(mut doc), healthy) => {
                let line = if healthy {
                    format!("recovered: {change}")
                } else {
                    format!("then {change}")
                };
                // No change of status.
                if !healthy && doc.status.as_deref() == Some(self.status.as_str()) {
                    return None;
                }
                let mut lines: Vec<&str> = doc.body.lines().collect();
                lines.push(&line);
                if lines.len() > EPISODE_LINES {
                    lines.drain(1..lines.len() - (EPISODE_LINES - 1));
                }
                doc.body = lines.join("\n");
                doc.status = Some(if healthy {
                    "recovered".to_string()
                } else {
                    self.status.clone()
                });
                doc.updated_ms = self.at_ms;
                Some(doc)
            }
        }
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn millis(t: &str) -> i64 {
    t.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn envelope(kind: &str, payload: Value) -> Vec<u8> {
        json!({"type": kind, "version": 1, "occurred_at": "2026-12-06T10:00:00Z", "payload": payload})
            .to_string()
            .into_bytes()
    }

    fn incident(kind: &str, payload: Value) -> IncidentFact {
        match from_message(&envelope(kind, payload)).as_deref() {
            Ok([Event::Incident(f)]) => f.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn incident_facts_merge_and_the_status_only_moves_forward() {
        let created = incident(
            "IncidentCreated",
            json!({"incident_id": "INC-7", "title": "Checkout latency", "description": "p99 above 2s",
                   "severity": "HIGH", "service": "checkout"}),
        );
        let doc = created.document(None);
        assert_eq!(doc.id, "INC-7");
        assert_eq!(doc.title, "Checkout latency");
        assert_eq!(doc.body, "p99 above 2s");
        assert_eq!(doc.tags, ["high", "checkout", "incident"]);
        assert_eq!(doc.status.as_deref(), Some("open"));
        let resolved = incident(
            "IncidentResolved",
            json!({"incident_id": "INC-7", "resolution": "rolled back payments v2.3"}),
        );
        let doc = resolved.document(Some(doc));
        assert_eq!(doc.title, "Checkout latency");
        assert_eq!(
            doc.body,
            "p99 above 2s\nresolution: rolled back payments v2.3"
        );
        assert_eq!(doc.status.as_deref(), Some("resolved"));
        // A late acknowledgement does not reopen it; the same fact again changes nothing.
        let ack = incident("IncidentAcknowledged", json!({"incident_id": "INC-7"}));
        let again = ack.document(Some(doc.clone()));
        assert_eq!(again.status.as_deref(), Some("resolved"));
        assert_eq!(resolved.document(Some(doc.clone())), doc);
        // A fact before its IncidentCreated still makes a document.
        let lone = ack.document(None);
        assert_eq!(
            (lone.title.as_str(), lone.status.as_deref()),
            ("Incident INC-7", Some("acknowledged"))
        );
    }

    fn observation(healthy: bool, status: &str, at: &str) -> HealthObservation {
        let events = from_envelope(
            "RecordHealthCheckRequested",
            &json!({"source": "kubernetes", "cluster": "prod", "namespace": "shop", "kind": "Deployment",
                    "name": "api", "healthy": healthy, "reason": if healthy { "" } else { "1/3 available" },
                    "after": {"status": status, "healthy": healthy}, "observed_at": at}),
            0,
        )
        .expect("usable");
        match events.as_slice() {
            [Event::Health(h)] => h.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn health_changes_open_extend_and_close_one_episode() {
        let down = observation(false, "ReplicasUnavailable", "2026-12-06T10:00:00Z");
        assert_eq!(down.subject, "kubernetes:prod:Deployment:shop/api");
        let open = down.episode(None).expect("opens");
        assert_eq!(
            open.title,
            "Deployment shop/api unhealthy: ReplicasUnavailable"
        );
        assert_eq!(open.status.as_deref(), Some("ReplicasUnavailable"));
        assert!(open.tags.contains(&"health".to_string()), "{:?}", open.tags);
        // The same change again (a replay) writes nothing.
        assert_eq!(down.episode(Some(open.clone())), None);
        let worse = observation(false, "RolloutStuck", "2026-12-06T10:05:00Z");
        let extended = worse.episode(Some(open.clone())).expect("extends");
        assert_eq!(extended.id, open.id);
        assert_eq!(
            extended.body,
            "ReplicasUnavailable: 1/3 available\nthen RolloutStuck: 1/3 available"
        );
        let up = observation(true, "Available", "2026-12-06T10:09:00Z");
        let closed = up.episode(Some(extended)).expect("closes");
        assert_eq!(closed.status.as_deref(), Some("recovered"));
        assert!(
            closed.body.ends_with("recovered: Available"),
            "{}",
            closed.body
        );
        // Healthy with nothing open: nothing; the opening change again after the recovery (a
        // replay): nothing; unhealthy after recovery: a new episode.
        assert_eq!(up.episode(Some(closed.clone())), None);
        assert_eq!(down.episode(Some(closed.clone())), None);
        assert_eq!(worse.episode(Some(closed.clone())), None);
        assert_eq!(up.episode(None), None);
        let again = observation(false, "ReplicasUnavailable", "2026-12-06T11:00:00Z");
        assert_ne!(again.episode(Some(closed)).expect("new").id, open.id);
    }

    #[test]
    fn argocd_health_reads_the_health_field_and_skips_non_verdicts() {
        let payload = |health: &str| {
            json!({"kind": "Application", "name": "shop", "namespace": "argocd", "environment": "prod",
                   "after": {"health": health, "sync": "Synced"}, "reason": "back-off restarting"})
        };
        match from_envelope("RecordHealthCheckRequested", &payload("Degraded"), 5).as_deref() {
            Ok([Event::Health(h)]) => {
                assert_eq!(h.subject, "argocd:prod:Application:argocd/shop");
                assert!(!h.healthy);
                assert_eq!(h.status, "Degraded");
                assert_eq!(h.at_ms, 5);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            from_envelope("RecordHealthCheckRequested", &payload("Progressing"), 5),
            Ok(Vec::new())
        );
    }

    #[test]
    fn backlog_changes_put_and_drop_and_bad_ones_name_the_field() {
        let put = from_message(&envelope(
            "BacklogItemUpdated",
            json!({"id": "BL-9", "title": "Raise the pool size", "tags": ["postgres"], "owner": "team-db"}),
        ))
        .expect("usable");
        match put.as_slice() {
            [Event::Put { feed, doc }] => {
                assert_eq!(feed, "backlog-item:BL-9");
                assert_eq!(
                    (doc.kind, doc.title.as_str()),
                    (Kind::Backlog, "Raise the pool size")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            from_message(&envelope("BacklogItemDeleted", json!({"id": "BL-9"}))),
            Ok(vec![Event::Drop {
                feed: "backlog-item:BL-9".into()
            }])
        );
        // A bare item, as in the JSON Lines file.
        assert!(matches!(
            from_message(br#"{"id": "BL-1", "title": "t"}"#).as_deref(),
            Ok([Event::Put { .. }])
        ));
        let bad = from_message(&envelope(
            "BacklogItemCreated",
            json!({"id": "BL-2", "title": 5}),
        ))
        .expect_err("refused");
        assert!(
            bad.starts_with("BacklogItemCreated: ") && bad.contains("title"),
            "{bad}"
        );
        let version = from_message(br#"{"type": "IncidentCreated", "version": 2, "payload": {}}"#)
            .expect_err("refused");
        assert!(version.contains("version 2"), "{version}");
        assert_eq!(
            from_message(&envelope("SLIWindowRecorded", json!({}))),
            Ok(Vec::new())
        );
        assert!(from_message(b"[1]").is_err());
    }
}
