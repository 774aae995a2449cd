//! `GET .../pods/{name}/log`: stored lines filtered by container, previous, sinceSeconds,
//! sinceTime, tailLines, timestamps and limitBytes.

use axum::http::header;
use axum::response::IntoResponse;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::registry::by_plural;
use super::status::{ApiError, ApiResult};
use super::{Params, Shared};

fn names(pod: &Value, field: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// Picks the container a log or exec request is for, with kube-apiserver's 400s
/// (`validateContainer` in `pkg/registry/core/pod/strategy.go`): without a container, a pod's
/// only container; for several, every container is named — init, then regular, then
/// ephemeral, as Go prints a `[]string` (`[a b c]`).
pub fn resolve_container(
    pod: &Value,
    pod_name: &str,
    requested: Option<&str>,
) -> Result<String, ApiError> {
    let containers = names(pod, "containers");
    let init = names(pod, "initContainers");
    let ephemeral = names(pod, "ephemeralContainers");
    match requested.filter(|c| !c.is_empty()) {
        Some(c)
            if containers
                .iter()
                .chain(&init)
                .chain(&ephemeral)
                .any(|x| x == c) =>
        {
            Ok(c.to_string())
        }
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {pod_name}"
        ))),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None if containers.is_empty() => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}"
        ))),
        None => {
            let all: Vec<&str> = init
                .iter()
                .chain(&containers)
                .chain(&ephemeral)
                .map(String::as_str)
                .collect();
            Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                all.join(" ")
            )))
        }
    }
}

pub fn logs(shared: &Shared, ns: &str, name: &str, params: &Params) -> ApiResult {
    let inner = shared.lock();
    let rt = by_plural("", "v1", "pods").ok_or_else(ApiError::no_route)?;
    let pod = inner
        .get(rt, ns, name)
        .ok_or_else(|| ApiError::not_found(rt, name))?;
    let container = resolve_container(pod, name, params.get("container"))?;
    let previous = params.flag("previous");
    let key = (
        ns.to_string(),
        name.to_string(),
        container.clone(),
        previous,
    );
    let lines = match inner.logs.get(&key) {
        Some(l) => std::sync::Arc::clone(l),
        None if previous => {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            )));
        }
        None => std::sync::Arc::from([]),
    };
    drop(inner);

    let int = |k: &str| -> Result<Option<i64>, ApiError> {
        params
            .get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid {k} {v:?}")))
            })
            .transpose()
    };
    let mut since: Option<Timestamp> = None;
    if let Some(s) = int("sinceSeconds")? {
        if s < 1 {
            return Err(ApiError::new(
                422,
                "Invalid",
                "PodLogOptions \"\" is invalid: sinceSeconds: Invalid value: must be greater than 0",
            ));
        }
        since = Timestamp::now()
            .checked_sub(SignedDuration::from_secs(s))
            .ok();
    }
    if let Some(t) = params.get("sinceTime") {
        since = Some(
            t.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid sinceTime {t:?}")))?,
        );
    }
    let mut selected: Vec<&(Timestamp, String)> = lines
        .iter()
        .filter(|(ts, _)| since.is_none_or(|s| *ts >= s))
        .collect();
    if let Some(n) = int("tailLines")? {
        let n = usize::try_from(n.max(0)).unwrap_or(0);
        let skip = selected.len().saturating_sub(n);
        selected.drain(..skip);
    }
    let timestamps = params.flag("timestamps");
    let mut out = String::new();
    for (ts, line) in selected {
        if timestamps {
            out.push_str(&format!("{} ", ts));
        }
        out.push_str(line);
        out.push('\n');
    }
    let mut bytes = out.into_bytes();
    if let Some(limit) = int("limitBytes")? {
        if limit < 1 {
            return Err(ApiError::new(
                422,
                "Invalid",
                "PodLogOptions \"\" is invalid: limitBytes: Invalid value: must be greater than 0",
            ));
        }
        bytes.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain")], bytes).into_response())
}
