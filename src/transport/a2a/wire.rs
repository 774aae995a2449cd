//! The two wire forms of A2A objects. Version 1.0 is the protobuf JSON mapping of `a2a.proto`
//! (camelCase fields, `TASK_STATE_*` / `ROLE_*` enum names, parts as `{text}` / `{data}`);
//! version 0.3 is the older JSON schema (`kind` discriminators, `auth-required` state names,
//! parts as `{kind: "text", text}` / `{kind: "data", data}`). Tasks are stored in a neutral form
//! and rendered for the version of each request.

use serde_json::{Map, Value, json};

use crate::core::TaskRecord;

/// Protocol version of one request, from its `A2A-Version` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V03,
}

impl Version {
    /// No header means 0.3 (the spec's rule); `1.0`, `1.0.x`, `0.3`, `0.3.x` are known.
    pub fn from_header(value: Option<&str>) -> Result<Version, String> {
        let Some(raw) = value else {
            return Ok(Version::V03);
        };
        let v = raw.trim();
        let major_minor: Vec<&str> = v.splitn(3, '.').take(2).collect();
        match major_minor.as_slice() {
            ["1", "0"] => Ok(Version::V1),
            ["0", "3"] => Ok(Version::V03),
            _ => Err(v.to_string()),
        }
    }
}

/// Where a task is. Stored by [`TaskState::as_str`]; rendered per version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Submitted,
    Working,
    InputRequired,
    AuthRequired,
    Completed,
    Failed,
    Canceled,
    Rejected,
}

impl TaskState {
    pub const ALL: [TaskState; 8] = [
        TaskState::Submitted,
        TaskState::Working,
        TaskState::InputRequired,
        TaskState::AuthRequired,
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Canceled,
        TaskState::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Submitted => "submitted",
            TaskState::Working => "working",
            TaskState::InputRequired => "input_required",
            TaskState::AuthRequired => "auth_required",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Canceled => "canceled",
            TaskState::Rejected => "rejected",
        }
    }

    pub fn parse_stored(s: &str) -> TaskState {
        TaskState::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .unwrap_or(TaskState::Failed)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Canceled | TaskState::Rejected
        )
    }

    pub fn v1_name(self) -> &'static str {
        match self {
            TaskState::Submitted => "TASK_STATE_SUBMITTED",
            TaskState::Working => "TASK_STATE_WORKING",
            TaskState::InputRequired => "TASK_STATE_INPUT_REQUIRED",
            TaskState::AuthRequired => "TASK_STATE_AUTH_REQUIRED",
            TaskState::Completed => "TASK_STATE_COMPLETED",
            TaskState::Failed => "TASK_STATE_FAILED",
            TaskState::Canceled => "TASK_STATE_CANCELED",
            TaskState::Rejected => "TASK_STATE_REJECTED",
        }
    }

    pub fn v03_name(self) -> &'static str {
        match self {
            TaskState::Submitted => "submitted",
            TaskState::Working => "working",
            TaskState::InputRequired => "input-required",
            TaskState::AuthRequired => "auth-required",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Canceled => "canceled",
            TaskState::Rejected => "rejected",
        }
    }

    /// A state filter as a client sends it (either version's spelling).
    pub fn parse_wire(s: &str) -> Option<TaskState> {
        TaskState::ALL
            .into_iter()
            .find(|t| t.v1_name() == s || t.v03_name() == s || t.as_str() == s)
    }
}

/// A message part in neutral form.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Data(Value),
    /// A file, URL or raw bytes: accepted on the wire, never a tool call.
    Other(&'static str),
}

/// An agent's message, as far as toolgate reads it.
#[derive(Debug, Clone)]
pub struct IncomingMessage {
    pub message_id: String,
    pub context_id: Option<String>,
    pub task_id: Option<String>,
    pub parts: Vec<Part>,
}

impl IncomingMessage {
    /// The neutral JSON kept in the task's history.
    pub fn stored(&self) -> Value {
        json!({
            "messageId": self.message_id,
            "parts": self.parts.iter().map(part_stored).collect::<Vec<_>>(),
        })
    }
}

fn part_stored(part: &Part) -> Value {
    match part {
        Part::Text(t) => json!({"text": t}),
        Part::Data(d) => json!({"data": d}),
        Part::Other(kind) => json!({"other": kind}),
    }
}

/// Reads `params.message` of SendMessage / message/send. The error names what is wrong.
pub fn parse_message(
    params: &Map<String, Value>,
    version: Version,
) -> Result<IncomingMessage, String> {
    let Some(Value::Object(msg)) = params.get("message") else {
        return Err("`message` (an object with messageId, role and parts) is missing".into());
    };
    let text_field = |name: &str| -> Result<Option<String>, String> {
        match msg.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("`message.{name}` must be a string, not {other}")),
        }
    };
    let message_id = text_field("messageId")?.ok_or_else(|| {
        "`message.messageId` is missing; every message needs a unique id".to_string()
    })?;
    let role = msg.get("role").and_then(Value::as_str).unwrap_or_default();
    let user_role = match version {
        Version::V1 => "ROLE_USER",
        Version::V03 => "user",
    };
    if role != user_role {
        return Err(format!(
            "`message.role` must be \"{user_role}\" (a message from the calling agent), not {}",
            msg.get("role")
                .map_or("missing".to_string(), Value::to_string)
        ));
    }
    let Some(Value::Array(raw_parts)) = msg.get("parts") else {
        return Err("`message.parts` (a non-empty array) is missing".into());
    };
    if raw_parts.is_empty() {
        return Err(
            "`message.parts` is empty; send one data part {\"tool\", \"arguments\"}".into(),
        );
    }
    let parts = raw_parts
        .iter()
        .enumerate()
        .map(|(i, p)| parse_part(p, version).map_err(|e| format!("`message.parts[{i}]`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(IncomingMessage {
        message_id,
        context_id: text_field("contextId")?,
        task_id: text_field("taskId")?,
        parts,
    })
}

fn parse_part(p: &Value, version: Version) -> Result<Part, String> {
    let Value::Object(obj) = p else {
        return Err(format!("a part must be an object, not {p}"));
    };
    match version {
        Version::V1 => {
            if let Some(text) = obj.get("text") {
                return text
                    .as_str()
                    .map(|t| Part::Text(t.to_string()))
                    .ok_or_else(|| "`text` must be a string".to_string());
            }
            if let Some(data) = obj.get("data") {
                return Ok(Part::Data(data.clone()));
            }
            if obj.contains_key("url") {
                return Ok(Part::Other("url"));
            }
            if obj.contains_key("raw") {
                return Ok(Part::Other("raw"));
            }
            Err("a part holds one of `text`, `data`, `url` or `raw`".into())
        }
        Version::V03 => match obj.get("kind").and_then(Value::as_str) {
            Some("text") => obj
                .get("text")
                .and_then(Value::as_str)
                .map(|t| Part::Text(t.to_string()))
                .ok_or_else(|| "a text part needs a string `text`".to_string()),
            Some("data") => obj
                .get("data")
                .cloned()
                .map(Part::Data)
                .ok_or_else(|| "a data part needs `data`".to_string()),
            Some("file") => Ok(Part::Other("file")),
            _ => Err("a part needs `kind`: \"text\", \"data\" or \"file\"".into()),
        },
    }
}

/// A tool call read from a message: the first data part (or text part holding JSON) with a
/// string `tool` and an optional `arguments` object.
pub fn tool_call(msg: &IncomingMessage) -> Result<(String, Value), String> {
    let mut problems = Vec::new();
    for part in &msg.parts {
        let candidate = match part {
            Part::Data(d) => d.clone(),
            Part::Text(t) => match serde_json::from_str::<Value>(t.trim()) {
                Ok(v) => v,
                Err(_) => {
                    problems.push("a text part that is not JSON".to_string());
                    continue;
                }
            },
            Part::Other(kind) => {
                problems.push(format!("a {kind} part"));
                continue;
            }
        };
        let Value::Object(obj) = &candidate else {
            problems.push(format!("a data part that is not an object ({candidate})"));
            continue;
        };
        let Some(tool) = obj.get("tool").and_then(Value::as_str) else {
            problems.push("an object without a string `tool`".to_string());
            continue;
        };
        let args = match obj.get("arguments") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(a @ Value::Object(_)) => a.clone(),
            Some(other) => {
                return Err(format!("`arguments` must be an object, not {other}"));
            }
        };
        return Ok((tool.to_string(), args));
    }
    Err(format!(
        "the message holds no tool call (found {})",
        if problems.is_empty() {
            "nothing usable".to_string()
        } else {
            problems.join(", ")
        }
    ))
}

/// The status message of a task (from the agent), in the request's version.
fn status_message(task: &TaskRecord, version: Version) -> Option<Value> {
    let text = task.status.get("text").and_then(Value::as_str)?;
    let mut parts = vec![text_part(text, version)];
    if let Some(data) = task.status.get("data") {
        parts.push(data_part(data, version));
    }
    let id = format!("{}-status-{}", task.id, task.updated_at_ms);
    Some(match version {
        Version::V1 => json!({
            "messageId": id, "taskId": task.id, "contextId": task.context_id,
            "role": "ROLE_AGENT", "parts": parts,
        }),
        Version::V03 => json!({
            "kind": "message", "messageId": id, "taskId": task.id, "contextId": task.context_id,
            "role": "agent", "parts": parts,
        }),
    })
}

fn text_part(text: &str, version: Version) -> Value {
    match version {
        Version::V1 => json!({"text": text}),
        Version::V03 => json!({"kind": "text", "text": text}),
    }
}

/// 0.3 data parts must be objects; other JSON is wrapped as `{"value": …}`.
fn data_part(data: &Value, version: Version) -> Value {
    match version {
        Version::V1 => json!({"data": data, "mediaType": "application/json"}),
        Version::V03 => {
            let data = if data.is_object() {
                data.clone()
            } else {
                json!({"value": data})
            };
            json!({"kind": "data", "data": data})
        }
    }
}

pub fn status(task: &TaskRecord, version: Version) -> Value {
    let state = TaskState::parse_stored(&task.state);
    let mut status = json!({
        "state": match version { Version::V1 => state.v1_name(), Version::V03 => state.v03_name() },
        "timestamp": crate::core::approval::rfc3339(task.updated_at_ms),
    });
    if let Some(message) = status_message(task, version) {
        status["message"] = message;
    }
    status
}

pub fn artifact(task: &TaskRecord, version: Version) -> Option<Value> {
    let result = task.result.as_ref()?;
    Some(json!({
        "artifactId": format!("{}-result", task.id),
        "name": format!("{} result", task.tool),
        "parts": [data_part(result, version)],
    }))
}

fn history_message(task: &TaskRecord, version: Version) -> Value {
    let parts: Vec<Value> = task
        .request
        .get("parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| {
                    if let Some(t) = p.get("text").and_then(Value::as_str) {
                        Some(text_part(t, version))
                    } else {
                        p.get("data").map(|d| data_part(d, version))
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let message_id = task
        .request
        .get("messageId")
        .cloned()
        .unwrap_or(Value::Null);
    match version {
        Version::V1 => json!({
            "messageId": message_id, "taskId": task.id, "contextId": task.context_id,
            "role": "ROLE_USER", "parts": parts,
        }),
        Version::V03 => json!({
            "kind": "message", "messageId": message_id, "taskId": task.id,
            "contextId": task.context_id, "role": "user", "parts": parts,
        }),
    }
}

/// How much of a task to render.
#[derive(Debug, Clone, Copy)]
pub struct Render {
    /// Most recent history messages to include (`None`: all).
    pub history: Option<usize>,
    pub artifacts: bool,
}

impl Default for Render {
    fn default() -> Self {
        Render {
            history: None,
            artifacts: true,
        }
    }
}

pub fn task(task: &TaskRecord, version: Version, render: Render) -> Value {
    let mut out = json!({
        "id": task.id,
        "contextId": task.context_id,
        "status": status(task, version),
    });
    if version == Version::V03 {
        out["kind"] = json!("task");
    }
    if render.artifacts
        && let Some(a) = artifact(task, version)
    {
        out["artifacts"] = json!([a]);
    }
    if render.history != Some(0) {
        out["history"] = json!([history_message(task, version)]);
    }
    let mut metadata = json!({"tool": task.tool});
    if let Some(approval) = &task.approval_id {
        metadata["approvalId"] = json!(approval);
    }
    out["metadata"] = metadata;
    out
}

pub fn status_update(task: &TaskRecord, version: Version) -> Value {
    let terminal = TaskState::parse_stored(&task.state).is_terminal();
    match version {
        Version::V1 => json!({"statusUpdate": {
            "taskId": task.id, "contextId": task.context_id, "status": status(task, version),
        }}),
        Version::V03 => json!({
            "kind": "status-update", "taskId": task.id, "contextId": task.context_id,
            "status": status(task, version), "final": terminal,
        }),
    }
}

pub fn artifact_update(task: &TaskRecord, version: Version) -> Option<Value> {
    let artifact = artifact(task, version)?;
    Some(match version {
        Version::V1 => json!({"artifactUpdate": {
            "taskId": task.id, "contextId": task.context_id, "artifact": artifact,
            "append": false, "lastChunk": true,
        }}),
        Version::V03 => json!({
            "kind": "artifact-update", "taskId": task.id, "contextId": task.context_id,
            "artifact": artifact, "append": false, "lastChunk": true,
        }),
    })
}

/// A task as a stream item: `{task}` in 1.0, the bare task (with `kind`) in 0.3.
pub fn task_event(t: &TaskRecord, version: Version) -> Value {
    let rendered = task(t, version, Render::default());
    match version {
        Version::V1 => json!({"task": rendered}),
        Version::V03 => rendered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(parts: Value, version: Version) -> Result<IncomingMessage, String> {
        let role = if version == Version::V1 {
            "ROLE_USER"
        } else {
            "user"
        };
        let params = json!({"message": {"messageId": "m1", "role": role, "parts": parts}});
        parse_message(params.as_object().expect("object"), version)
    }

    #[test]
    fn versions_come_from_the_header() {
        assert_eq!(Version::from_header(None), Ok(Version::V03));
        assert_eq!(Version::from_header(Some("1.0")), Ok(Version::V1));
        assert_eq!(Version::from_header(Some("1.0.1")), Ok(Version::V1));
        assert_eq!(Version::from_header(Some("0.3")), Ok(Version::V03));
        assert_eq!(Version::from_header(Some("0.3.0")), Ok(Version::V03));
        assert_eq!(Version::from_header(Some("2.0")), Err("2.0".to_string()));
        assert_eq!(Version::from_header(Some("1")), Err("1".to_string()));
    }

    #[test]
    fn tool_calls_come_from_data_parts_or_json_text_in_either_version() {
        let call = json!({"tool": "k8s.list_resources", "arguments": {"kind": "pods"}});
        let v1 = msg(json!([{"data": call}]), Version::V1).expect("v1");
        assert_eq!(
            tool_call(&v1),
            Ok(("k8s.list_resources".to_string(), json!({"kind": "pods"})))
        );
        let v03 = msg(
            json!([{"kind": "text", "text": call.to_string()}]),
            Version::V03,
        )
        .expect("v03");
        assert_eq!(tool_call(&v03), tool_call(&v1));
        let no_args = msg(
            json!([{"text": "{\"tool\": \"approval.status\"}"}]),
            Version::V1,
        )
        .expect("v1");
        assert_eq!(
            tool_call(&no_args),
            Ok(("approval.status".to_string(), json!({})))
        );

        let prose = msg(json!([{"text": "please list pods"}]), Version::V1).expect("v1");
        let err = tool_call(&prose).expect_err("prose is no call");
        assert!(err.contains("text part that is not JSON"), "{err}");
        let bad_args = msg(
            json!([{"data": {"tool": "x", "arguments": [1]}}]),
            Version::V1,
        )
        .expect("v1");
        assert!(
            tool_call(&bad_args)
                .expect_err("array args")
                .contains("`arguments` must be an object")
        );
    }

    #[test]
    fn malformed_messages_are_refused_with_the_reason() {
        let err = msg(json!([{"kind": "file", "file": {"uri": "x"}}]), Version::V1)
            .expect_err("0.3 file part in 1.0");
        assert!(err.contains("parts[0]"), "{err}");
        let err = msg(json!([]), Version::V03).expect_err("empty");
        assert!(err.contains("empty"), "{err}");
        let params =
            json!({"message": {"messageId": "m", "role": "ROLE_AGENT", "parts": [{"text": "x"}]}});
        let err = parse_message(params.as_object().expect("object"), Version::V1)
            .expect_err("agent role");
        assert!(err.contains("ROLE_USER"), "{err}");
        let params = json!({"message": {"role": "ROLE_USER", "parts": [{"text": "x"}]}});
        let err =
            parse_message(params.as_object().expect("object"), Version::V1).expect_err("no id");
        assert!(err.contains("messageId"), "{err}");
    }

    #[test]
    fn tasks_render_in_each_versions_own_shape() {
        let t = TaskRecord {
            id: "t1".into(),
            context_id: "c1".into(),
            owner_sub: "alice".into(),
            owner_name: "Alice".into(),
            tool: "k8s.list_resources".into(),
            state: TaskState::AuthRequired.as_str().into(),
            approval_id: Some("ap-1".into()),
            status: json!({"text": "needs approval", "data": {"approval_id": "ap-1"}}),
            result: Some(json!([1, 2])),
            request: json!({"messageId": "m1", "parts": [{"data": {"tool": "x"}}]}),
            created_at_ms: 0,
            updated_at_ms: 1_000,
        };
        let v1 = task(&t, Version::V1, Render::default());
        assert_eq!(v1["status"]["state"], "TASK_STATE_AUTH_REQUIRED");
        assert_eq!(v1["status"]["message"]["role"], "ROLE_AGENT");
        assert_eq!(
            v1["status"]["message"]["parts"][1]["data"]["approval_id"],
            "ap-1"
        );
        assert_eq!(v1["artifacts"][0]["parts"][0]["data"], json!([1, 2]));
        assert_eq!(v1["history"][0]["role"], "ROLE_USER");
        assert!(v1.get("kind").is_none());
        let v03 = task(
            &t,
            Version::V03,
            Render {
                history: Some(0),
                artifacts: true,
            },
        );
        assert_eq!(v03["kind"], "task");
        assert_eq!(v03["status"]["state"], "auth-required");
        assert_eq!(v03["status"]["message"]["parts"][0]["kind"], "text");
        // 0.3 data parts are objects.
        assert_eq!(
            v03["artifacts"][0]["parts"][0]["data"],
            json!({"value": [1, 2]})
        );
        assert!(v03.get("history").is_none());
        assert_eq!(status_update(&t, Version::V03)["final"], false);
    }
}
