//! Alerts toolgate receives (the `IngestAlertRequested` intents of the Alertmanager webhook and
//! the Kubernetes watch, or `AlertIngested` facts) as
//! incident documents: one per firing episode (`alert:<fingerprint>:<startsAt>`), updated in
//! place when the episode resolves.

use serde_json::Value;

use super::document::{Document, Kind};

/// The document of an alert's payload (`IngestAlertRequested`, `AlertIngested`); `None`
/// without a fingerprint.
pub fn from_payload(payload: &Value) -> Option<Document> {
    let text = |key: &str| payload.get(key).and_then(Value::as_str).unwrap_or_default();
    let map = |key: &str| -> Vec<(String, String)> {
        payload
            .get(key)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let fingerprint = text("fingerprint");
    let starts_at = text("startsAt");
    if fingerprint.is_empty() {
        return None;
    }
    let labels = map("labels");
    let annotations = map("annotations");
    let label = |name: &str| {
        labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let annotation = |name: &str| {
        annotations
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let alertname = label("alertname").unwrap_or(fingerprint);
    let title = match annotation("summary") {
        Some(summary) => format!("{alertname}: {summary}"),
        None => alertname.to_string(),
    };
    let mut body = Vec::new();
    for (k, v) in &annotations {
        if k != "summary" {
            body.push(format!("{k}: {v}"));
        }
    }
    body.push(
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    let mut tags: Vec<String> = [
        "alertname",
        "severity",
        "namespace",
        "service",
        "job",
        "team",
    ]
    .iter()
    .filter_map(|k| label(k).map(str::to_string))
    .collect();
    tags.push("alert".into());
    let ms = |t: &str| {
        t.parse::<jiff::Timestamp>()
            .map(|t| t.as_millisecond())
            .unwrap_or_default()
    };
    let status = text("status");
    let ends = text("endsAt");
    Some(Document {
        id: format!("alert:{fingerprint}:{starts_at}"),
        kind: Kind::Incident,
        title,
        body: body.join("\n"),
        tags,
        source: text("generatorURL").to_string(),
        status: Some(status.to_string()),
        links: Vec::new(),
        created_ms: ms(starts_at),
        updated_ms: if status == "resolved" && !ends.is_empty() {
            ms(ends)
        } else {
            ms(starts_at)
        },
    })
}
