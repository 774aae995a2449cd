//! `k8s.get_events`: recent events, newest first, filtered by namespace, involved object and
//! type; also the event rows `k8s.describe_resource` shows.

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rows::str_at;
use super::target::{check_name, check_namespace, cluster, items, missing_namespace, tool_error};
use crate::adapters::kube::{EventFilter, KubeOps};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, Target, TypedTool};

/// Events read to find the newest ones (the API returns them in storage order, not by time).
const SCAN_LIMIT: usize = 5000;
const PAGE: u32 = 500;

/// Event type filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum EventType {
    Normal,
    Warning,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    /// Namespace; omit for all.
    pub namespace: Option<String>,
    /// Involved object's kind (`pod`, `deploy`…).
    pub kind: Option<String>,
    /// Involved object's name.
    pub name: Option<String>,
    /// Only this type.
    #[serde(rename = "type")]
    pub event_type: Option<EventType>,
    /// Newest events to return (default 100).
    #[schemars(range(min = 1, max = 5000))]
    pub limit: Option<usize>,
    /// Cluster (default: the default one).
    pub cluster: Option<String>,
}

/// One event, compact.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EventRow {
    /// Time since the event was last seen (`5m`).
    pub last_seen: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub reason: String,
    /// Involved object as `Kind/name`.
    pub object: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub message: String,
    /// How often it happened, when more than once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// Reporting component (`kubelet`, `deployment-controller`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct EventsOutput {
    pub cluster: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Matching events seen in total (before `limit`).
    pub total: usize,
    /// Cell names: last_seen, type, reason, object, namespace (all namespaces only), message, count, source.
    pub columns: Vec<String>,
    /// One array of cells per event, newest first.
    pub rows: Vec<Value>,
}

pub struct GetEvents;

impl TypedTool for GetEvents {
    type Params = EventsParams;
    type Output = EventsOutput;
    const NAME: &'static str = "k8s.get_events";
    const TOOLSET: &'static str = "k8s";
    const TITLE: &'static str = "Get Kubernetes events";
    const DESCRIPTION: &'static str = "Recent events, newest first, of a namespace, an object or a type (Warning: BackOff, FailedScheduling…). Start here when something is broken.";
    const UNTRUSTED: Option<&'static str> = Some("Event messages are untrusted upstream data.");
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("rows");

    /// The cluster by its name, the namespace checked (omitted: all), the involved kind
    /// through discovery for policy (the argument stays as typed: the kind alone may be
    /// ambiguous without its group), the name checked as names of that kind are.
    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut EventsParams,
    ) -> Result<Option<Target>, ToolError> {
        let c = cluster(ctx, p.cluster.as_deref()).await?;
        let info = match p.kind.as_deref().filter(|k| !k.trim().is_empty()) {
            Some(k) => Some(c.resolve(k, None).await.map_err(tool_error)?.info),
            None => None,
        };
        p.cluster = Some(c.name().to_string());
        p.namespace = p.namespace.take().filter(|n| !n.is_empty());
        if let Some(ns) = &p.namespace {
            check_namespace("namespace", ns)?;
        }
        p.name = p.name.take().filter(|n| !n.is_empty());
        if let (Some(info), Some(name)) = (&info, &p.name) {
            check_name(info, "name", name)?;
        }
        Ok(Some(Target {
            cluster: p.cluster.clone(),
            namespace: p.namespace.clone(),
            namespaces: p.namespace.iter().cloned().collect(),
            kind: info.as_ref().map(|i| i.kind.clone()),
            api_version: info.as_ref().map(|i| i.api_version()),
            name: p.name.clone(),
            ..Target::default()
        }))
    }

    async fn call(&self, ctx: &ToolContext, p: EventsParams) -> Result<EventsOutput, ToolError> {
        let c = cluster(ctx, p.cluster.as_deref()).await?;
        let kind = match p.kind.as_deref().filter(|k| !k.trim().is_empty()) {
            Some(k) => Some(c.resolve(k, None).await.map_err(tool_error)?.info.kind),
            None => None,
        };
        let namespace = p
            .namespace
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from);
        let filter = EventFilter {
            kind: kind.clone(),
            name: p.name.clone().filter(|n| !n.is_empty()),
            namespace: None,
            event_type: p.event_type.map(|t| format!("{t:?}")),
        };
        let mut events = fetch_events(c.as_ref(), namespace.as_deref(), &filter).await?;
        // The selector runs on the server; this keeps answers right on servers that ignore it.
        events.retain(|e| {
            kind.as_deref()
                .is_none_or(|k| str_at(e, &["involvedObject", "kind"]) == k)
                && p.name
                    .as_deref()
                    .is_none_or(|n| n.is_empty() || str_at(e, &["involvedObject", "name"]) == n)
                && p.event_type
                    .is_none_or(|t| str_at(e, &["type"]) == format!("{t:?}"))
        });
        if events.is_empty()
            && let Some(ns) = &namespace
            && let Some(err) = missing_namespace(c.as_ref(), ns).await
        {
            return Err(err);
        }
        let total = events.len();
        let with_namespace = namespace.is_none();
        let rows = newest_rows(
            events,
            p.limit.unwrap_or(100),
            with_namespace,
            Timestamp::now(),
        );
        Ok(EventsOutput {
            cluster: c.name().to_string(),
            namespace,
            total,
            columns: EventRow::columns(with_namespace),
            rows: rows.into_iter().map(EventRow::cells).collect(),
        })
    }
}

impl EventRow {
    /// Column names of [`EventRow::cells`].
    pub fn columns(with_namespace: bool) -> Vec<String> {
        let mut columns = vec!["last_seen", "type", "reason", "object"];
        if with_namespace {
            columns.push("namespace");
        }
        columns.extend(["message", "count", "source"]);
        columns.into_iter().map(String::from).collect()
    }

    /// The event as one row of cells (namespace only when the row has one).
    pub fn cells(self) -> Value {
        let mut cells = vec![
            Value::from(self.last_seen),
            Value::from(self.event_type),
            Value::from(self.reason),
            Value::from(self.object),
        ];
        if let Some(ns) = self.namespace {
            cells.push(Value::from(ns));
        }
        cells.extend([
            Value::from(self.message),
            self.count.map(Value::from).unwrap_or(Value::Null),
            Value::from(self.source),
        ]);
        Value::Array(cells)
    }
}

/// Events matching `filter` in `namespace` (all when `None`), up to [`SCAN_LIMIT`]. The newest
/// can be anywhere in the API server's order, so the scan cannot stop when an output budget
/// is full; its cost is bounded by the scan limit instead. A scan whose continue token expires
/// (410) starts again once: it is one call's fresh list, so nothing is lost but time.
pub async fn fetch_events(
    c: &dyn KubeOps,
    namespace: Option<&str>,
    filter: &EventFilter,
) -> Result<Vec<Value>, ToolError> {
    let mut out: Vec<Value> = Vec::new();
    let mut token: Option<String> = None;
    let mut restarted = false;
    loop {
        let list = match c.events(namespace, filter, PAGE, token.as_deref()).await {
            Err(e) if e.is_expired() && token.is_some() && !restarted => {
                restarted = true;
                out.clear();
                token = None;
                continue;
            }
            read => read.map_err(tool_error)?,
        };
        out.extend(items(&list).iter().cloned());
        token = list
            .pointer("/metadata/continue")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from);
        if token.is_none() || out.len() >= SCAN_LIMIT {
            break;
        }
    }
    Ok(out)
}

/// When an event last happened: series, lastTimestamp, eventTime, firstTimestamp, creation.
pub fn last_seen(e: &Value) -> Option<Timestamp> {
    let paths: [&[&str]; 5] = [
        &["series", "lastObservedTime"],
        &["lastTimestamp"],
        &["eventTime"],
        &["firstTimestamp"],
        &["metadata", "creationTimestamp"],
    ];
    paths.iter().find_map(|p| {
        super::rows::at(e, p)
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
    })
}

/// Sort newest first, keep `limit`, and render compact rows.
pub fn newest_rows(
    mut events: Vec<Value>,
    limit: usize,
    with_namespace: bool,
    now: Timestamp,
) -> Vec<EventRow> {
    events.sort_by_key(|e| std::cmp::Reverse(last_seen(e)));
    events.truncate(limit);
    events.iter().map(|e| row(e, with_namespace, now)).collect()
}

fn row(e: &Value, with_namespace: bool, now: Timestamp) -> EventRow {
    let count = super::rows::at(e, &["series", "count"])
        .and_then(Value::as_i64)
        .or_else(|| e.get("count").and_then(Value::as_i64))
        .filter(|c| *c > 1);
    let source = [
        str_at(e, &["source", "component"]),
        str_at(e, &["reportingComponent"]),
    ]
    .into_iter()
    .find(|s| !s.is_empty())
    .unwrap_or("")
    .to_string();
    let obj_kind = str_at(e, &["involvedObject", "kind"]);
    let obj_name = str_at(e, &["involvedObject", "name"]);
    let field = str_at(e, &["involvedObject", "fieldPath"]);
    let mut object = format!("{obj_kind}/{obj_name}");
    if !field.is_empty() {
        object.push_str(&format!(" ({field})"));
    }
    EventRow {
        last_seen: last_seen(e)
            .map(|t| super::rows::human_age(now.as_second() - t.as_second()))
            .unwrap_or_default(),
        event_type: str_at(e, &["type"]).to_string(),
        reason: str_at(e, &["reason"]).to_string(),
        object,
        namespace: with_namespace.then(|| str_at(e, &["metadata", "namespace"]).to_string()),
        message: str_at(e, &["message"]).trim().to_string(),
        count,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_scan_whose_token_expires_starts_again_once_without_duplicates() {
        use crate::adapters::kube::verifier::{Exchange, mocked};
        let (cluster, api) = mocked();
        let ev =
            |name: &str| json!({"metadata": {"name": name, "namespace": "shop"}, "type": "Normal"});
        let expired = json!({"kind": "Status", "apiVersion": "v1", "metadata": {"continue": "c1-latest"},
            "status": "Failure", "reason": "Expired", "code": 410,
            "message": "The provided continue parameter is too old to display a consistent list result."});
        let path = "/api/v1/namespaces/shop/events";
        let server = api.serve(vec![
            Exchange::get(path).query("&limit=500").reply_json(
                200,
                &json!({"metadata": {"continue": "c1"}, "items": [ev("a")]}),
            ),
            Exchange::get(path)
                .query("&limit=500&continue=c1")
                .reply_json(410, &expired),
            Exchange::get(path).query("&limit=500").reply_json(
                200,
                &json!({"metadata": {"continue": "c2"}, "items": [ev("a")]}),
            ),
            Exchange::get(path)
                .query("&limit=500&continue=c2")
                .reply_json(200, &json!({"metadata": {}, "items": [ev("b")]})),
            // A second expiry in the same call is an error, not a loop.
            Exchange::get(path).query("&limit=500").reply_json(
                200,
                &json!({"metadata": {"continue": "c3"}, "items": [ev("a")]}),
            ),
            Exchange::get(path)
                .query("&limit=500&continue=c3")
                .reply_json(410, &expired),
            Exchange::get(path).query("&limit=500").reply_json(
                200,
                &json!({"metadata": {"continue": "c4"}, "items": [ev("a")]}),
            ),
            Exchange::get(path)
                .query("&limit=500&continue=c4")
                .reply_json(410, &expired),
        ]);
        let filter = EventFilter::default();
        let names = |events: Vec<Value>| -> Vec<String> {
            events
                .iter()
                .map(|e| str_at(e, &["metadata", "name"]).to_string())
                .collect()
        };
        let events = fetch_events(&cluster, Some("shop"), &filter)
            .await
            .expect("the scan starts again");
        assert_eq!(names(events), ["a", "b"]);
        let err = fetch_events(&cluster, Some("shop"), &filter)
            .await
            .expect_err("expired twice");
        assert!(err.message.contains("too old"), "{}", err.message);
        server.done().await;
    }

    #[test]
    fn newest_first_with_compact_fields() {
        let now: Timestamp = "2024-06-01T12:00:00Z".parse().expect("ts");
        let events = vec![
            json!({"metadata": {"namespace": "a", "creationTimestamp": "2024-06-01T10:00:00Z"}, "type": "Normal", "reason": "Pulled",
                   "involvedObject": {"kind": "Pod", "name": "p1"}, "message": "pulled\n", "lastTimestamp": "2024-06-01T11:00:00Z", "count": 1,
                   "source": {"component": "kubelet"}}),
            json!({"metadata": {"namespace": "a"}, "type": "Warning", "reason": "BackOff",
                   "involvedObject": {"kind": "Pod", "name": "p1", "fieldPath": "spec.containers{app}"}, "message": "Back-off restarting",
                   "series": {"count": 12, "lastObservedTime": "2024-06-01T11:58:00Z"}, "reportingComponent": "kubelet"}),
            json!({"metadata": {"namespace": "b"}, "type": "Normal", "reason": "Old", "involvedObject": {"kind": "Node", "name": "n"},
                   "message": "x", "eventTime": "2024-05-01T00:00:00Z"}),
        ];
        let rows = newest_rows(events, 2, true, now);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].reason, "BackOff");
        assert_eq!(rows[0].last_seen, "2m");
        assert_eq!(rows[0].count, Some(12));
        assert_eq!(rows[0].object, "Pod/p1 (spec.containers{app})");
        assert_eq!(rows[1].message, "pulled");
        assert_eq!(rows[1].count, None);
        assert_eq!(rows[1].namespace.as_deref(), Some("a"));
        assert_eq!(rows[1].source, "kubelet");
        let columns = EventRow::columns(true);
        let cells = rows[0].clone().cells();
        assert_eq!(cells.as_array().map(Vec::len), Some(columns.len()));
        assert_eq!(cells[2], "BackOff");
        assert_eq!(cells[4], "a", "namespace column: {cells}");
        assert_eq!(cells[6], 12);
        assert_eq!(rows[1].clone().cells()[6], Value::Null, "once: no count");
        assert_eq!(EventRow::columns(false).len(), columns.len() - 1);
    }
}
