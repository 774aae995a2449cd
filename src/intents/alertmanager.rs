//! Alertmanager webhook payloads (version "4"): validation with a reason naming the field, and
//! translation of each alert into `IngestAlertRequested` (plus `CreateIncidentRequested` when
//! auto-create is on and the severity is high enough). No I/O here.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::config::{AutoCreateIncident, Severity};
use super::{Envelope, IntentType, Signal};

pub const SOURCE: &str = "toolgate/alertmanager";

/// Why a payload was refused (answered 400; Alertmanager logs the body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Alert {
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: jiff::Timestamp,
    /// None for Alertmanager's zero time (`0001-01-01T00:00:00Z`, a firing alert).
    pub ends_at: Option<jiff::Timestamp>,
    pub generator_url: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub struct Notification {
    pub receiver: String,
    pub status: AlertStatus,
    pub group_key: String,
    pub external_url: String,
    pub truncated_alerts: u64,
    pub alerts: Vec<Alert>,
}

/// Parses and validates a webhook body.
pub fn parse(body: &[u8]) -> Result<Notification, PayloadError> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| PayloadError(format!("body is not JSON: {e}")))?;
    let Value::Object(doc) = doc else {
        return Err(PayloadError(
            "body must be a JSON object (Alertmanager webhook payload version \"4\")".into(),
        ));
    };
    match doc.get("version") {
        Some(Value::String(v)) if v == "4" => {}
        Some(other) => {
            return Err(PayloadError(format!(
                "version: {other} is not supported; expected \"4\" (Alertmanager webhook payload version 4)"
            )));
        }
        None => {
            return Err(PayloadError(
                "version: missing; expected \"4\" (Alertmanager webhook payload version 4)".into(),
            ));
        }
    }
    let receiver = string(&doc, "receiver", "receiver")?;
    let status = status(&doc, "status")?;
    let group_key = string(&doc, "groupKey", "groupKey")?;
    let external_url = optional_string(&doc, "externalURL", "externalURL")?;
    let truncated_alerts = match doc.get("truncatedAlerts") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_u64().ok_or_else(|| {
            PayloadError("truncatedAlerts: must be a non-negative integer".into())
        })?,
    };
    let Some(list) = doc.get("alerts") else {
        return Err(PayloadError(
            "alerts: missing; expected an array of alerts".into(),
        ));
    };
    let Value::Array(list) = list else {
        return Err(PayloadError("alerts: must be an array of alerts".into()));
    };
    let mut alerts = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        let at = format!("alerts[{i}]");
        let Value::Object(raw) = raw else {
            return Err(PayloadError(format!("{at}: must be an object")));
        };
        let fingerprint = string(raw, "fingerprint", &format!("{at}.fingerprint"))?;
        if fingerprint.is_empty() {
            return Err(PayloadError(format!(
                "{at}.fingerprint: empty; Alertmanager sends the alert's label hash"
            )));
        }
        let ends_at = timestamp(raw, "endsAt", &format!("{at}.endsAt"))?;
        alerts.push(Alert {
            status: self::status(raw, &format!("{at}.status"))?,
            labels: string_map(raw, "labels", &format!("{at}.labels"))?,
            annotations: string_map(raw, "annotations", &format!("{at}.annotations"))?,
            starts_at: timestamp(raw, "startsAt", &format!("{at}.startsAt"))?,
            // Go's zero time marks "no end yet".
            ends_at: (ends_at.as_second() > -62_135_596_800).then_some(ends_at),
            generator_url: optional_string(raw, "generatorURL", &format!("{at}.generatorURL"))?,
            fingerprint,
        });
    }
    Ok(Notification {
        receiver,
        status,
        group_key,
        external_url,
        truncated_alerts,
        alerts,
    })
}

fn string(obj: &Map<String, Value>, key: &str, at: &str) -> Result<String, PayloadError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(PayloadError(format!("{at}: must be a string"))),
        None => Err(PayloadError(format!("{at}: missing"))),
    }
}

fn optional_string(obj: &Map<String, Value>, key: &str, at: &str) -> Result<String, PayloadError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Ok(String::new()),
        Some(_) => Err(PayloadError(format!("{at}: must be a string"))),
    }
}

fn status(obj: &Map<String, Value>, at: &str) -> Result<AlertStatus, PayloadError> {
    match obj.get("status") {
        Some(Value::String(s)) if s == "firing" => Ok(AlertStatus::Firing),
        Some(Value::String(s)) if s == "resolved" => Ok(AlertStatus::Resolved),
        Some(other) => Err(PayloadError(format!(
            "{at}: {other} is not a status; expected \"firing\" or \"resolved\""
        ))),
        None => Err(PayloadError(format!(
            "{at}: missing; expected \"firing\" or \"resolved\""
        ))),
    }
}

fn timestamp(
    obj: &Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<jiff::Timestamp, PayloadError> {
    let text = string(obj, key, at)?;
    text.parse::<jiff::Timestamp>().map_err(|_| {
        PayloadError(format!(
            "{at}: `{text}` is not an RFC 3339 time, e.g. 2026-11-23T16:39:30Z"
        ))
    })
}

fn string_map(
    obj: &Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<BTreeMap<String, String>, PayloadError> {
    match obj.get(key) {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(PayloadError(format!("{at}.{k}: must be a string"))),
            })
            .collect(),
        Some(_) => Err(PayloadError(format!(
            "{at}: must be an object of string values"
        ))),
        None => Err(PayloadError(format!("{at}: missing"))),
    }
}

/// fingerprint + startsAt + status: the same alert redelivered has the same key; its
/// resolution (or a new firing episode) has another.
pub fn idempotency_key(alert: &Alert) -> String {
    format!(
        "alertmanager:{}:{}:{}",
        alert.fingerprint,
        alert.starts_at,
        alert.status.as_str()
    )
}

/// The signals of one notification: one per alert, each with its intents.
pub fn signals(n: &Notification, auto: &AutoCreateIncident, now: jiff::Timestamp) -> Vec<Signal> {
    n.alerts
        .iter()
        .map(|alert| {
            let key = idempotency_key(alert);
            let correlation = format!("alert:{}", alert.fingerprint);
            let mut intents = vec![Envelope::new(
                IntentType::IngestAlertRequested,
                key.clone(),
                SOURCE,
                correlation.clone(),
                now,
                json!({
                    "fingerprint": alert.fingerprint,
                    "status": alert.status.as_str(),
                    "labels": alert.labels,
                    "annotations": alert.annotations,
                    "startsAt": alert.starts_at.to_string(),
                    "endsAt": alert.ends_at.map(|t| t.to_string()),
                    "generatorURL": alert.generator_url,
                    "receiver": n.receiver,
                    "groupKey": n.group_key,
                    "externalURL": n.external_url,
                }),
            )];
            let severity = alert
                .labels
                .get("severity")
                .and_then(|s| Severity::parse(s));
            if auto.enabled
                && alert.status == AlertStatus::Firing
                && severity.is_some_and(|s| s >= auto.min_severity)
            {
                let title = alert
                    .annotations
                    .get("summary")
                    .or_else(|| alert.labels.get("alertname"))
                    .cloned()
                    .unwrap_or_else(|| alert.fingerprint.clone());
                intents.push(Envelope::new(
                    IntentType::CreateIncidentRequested,
                    format!(
                        "alertmanager:{}:{}:incident",
                        alert.fingerprint, alert.starts_at
                    ),
                    SOURCE,
                    correlation,
                    now,
                    json!({
                        "title": title,
                        "severity": severity.map(Severity::as_str),
                        "alert_idempotency_key": key,
                        "fingerprint": alert.fingerprint,
                        "labels": alert.labels,
                        "annotations": alert.annotations,
                        "startsAt": alert.starts_at.to_string(),
                        "generatorURL": alert.generator_url,
                    }),
                ));
            }
            Signal {
                dedup_key: key,
                intents,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRING: &str =
        include_str!("../../tests/fixtures/alertmanager/alertmanager_webhook.json");
    const RESOLVED: &str =
        include_str!("../../tests/fixtures/alertmanager/alertmanager_webhook_resolved.json");

    fn auto(enabled: bool, min: Severity) -> AutoCreateIncident {
        AutoCreateIncident {
            enabled,
            min_severity: min,
        }
    }

    #[test]
    fn fixtures_parse_and_keys_differ_by_status() {
        let firing = parse(FIRING.as_bytes()).expect("firing fixture");
        let resolved = parse(RESOLVED.as_bytes()).expect("resolved fixture");
        assert_eq!(firing.alerts[0].ends_at, None);
        assert!(resolved.alerts[0].ends_at.is_some());
        assert_eq!(
            idempotency_key(&firing.alerts[0]),
            "alertmanager:32c16fb6eca3387b:2026-11-23T16:39:30Z:firing"
        );
        assert_ne!(
            idempotency_key(&firing.alerts[0]),
            idempotency_key(&resolved.alerts[0])
        );
    }

    #[test]
    fn incidents_only_for_firing_alerts_at_or_above_the_threshold() {
        let firing = parse(FIRING.as_bytes()).expect("firing");
        let resolved = parse(RESOLVED.as_bytes()).expect("resolved");
        let now = jiff::Timestamp::UNIX_EPOCH;
        let s = signals(&firing, &auto(true, Severity::High), now);
        let kinds: Vec<&str> = s[0].intents.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["IngestAlertRequested", "CreateIncidentRequested"]);
        assert_eq!(s[0].intents[1].payload["severity"], "critical");
        assert_eq!(s[0].intents[0].payload["endsAt"], Value::Null);
        assert_eq!(s[0].intents[0].payload["groupKey"], firing.group_key);
        assert_eq!(
            signals(&firing, &auto(false, Severity::Info), now)[0]
                .intents
                .len(),
            1
        );
        assert_eq!(
            signals(&resolved, &auto(true, Severity::Info), now)[0]
                .intents
                .len(),
            1
        );
        let mut warning = firing.clone();
        warning.alerts[0]
            .labels
            .insert("severity".into(), "warning".into());
        assert_eq!(
            signals(&warning, &auto(true, Severity::High), now)[0]
                .intents
                .len(),
            1
        );
        assert_eq!(
            signals(&warning, &auto(true, Severity::Warning), now)[0]
                .intents
                .len(),
            2
        );
    }

    #[test]
    fn bad_payloads_name_the_field() {
        let cases = [
            ("{", "body is not JSON"),
            ("[]", "must be a JSON object"),
            (r#"{"version":"3"}"#, "version: \"3\" is not supported"),
            (
                &FIRING.replace(
                    "\"fingerprint\": \"32c16fb6eca3387b\"",
                    "\"fingerprint\": 7",
                ),
                "alerts[0].fingerprint: must be a string",
            ),
            (
                &FIRING.replace(
                    "\"startsAt\": \"2026-11-23T16:39:30Z\"",
                    "\"startsAt\": \"yesterday\"",
                ),
                "alerts[0].startsAt: `yesterday` is not an RFC 3339 time",
            ),
            (
                &FIRING.replace("\"groupKey\"", "\"groupKeyX\""),
                "groupKey: missing",
            ),
            (
                &FIRING.replace(
                    "\"status\": \"firing\",\n      \"labels\"",
                    "\"status\": \"burning\",\n      \"labels\"",
                ),
                "alerts[0].status: \"burning\" is not a status",
            ),
        ];
        for (body, want) in cases {
            let err = parse(body.as_bytes()).expect_err(want);
            assert!(err.0.contains(want), "{} does not contain {want}", err.0);
        }
    }
}
