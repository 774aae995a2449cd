//! `?watch=true`: a chunked stream of `{"type","object"}` lines fed from the store's change feed.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::handlers::{Target, selectors, typed};
use super::status::{ApiError, ApiResult};
use super::store::{WatchEvent, meta_str};
use super::table;
use super::{Req, Shared};

pub fn watch(shared: Arc<Shared>, t: &Target, req: &Req) -> ApiResult {
    let (labels, fields) = selectors(t.rt, req)?;
    let timeout = req
        .params
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1800);
    let send_initial = req.params.flag("sendInitialEvents");
    let rv_param = req
        .params
        .get("resourceVersion")
        .filter(|r| !r.is_empty() && *r != "0");
    let as_table = req.accept.contains("as=Table");
    let (rt, ns) = (t.rt, t.ns.clone());

    let (initial, mut rx, current) = {
        let inner = shared.lock();
        let rx = inner.watch_tx.subscribe();
        let initial: Vec<(&'static str, Value)> = match rv_param {
            Some(rv) if !send_initial => {
                let rv: u64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?;
                let oldest = inner.history.front().map_or(inner.current_rv(), |e| e.rv);
                if rv + 1 < oldest {
                    return Err(ApiError::new(
                        410,
                        "Expired",
                        format!("too old resource version: {rv} ({oldest})"),
                    ));
                }
                inner
                    .history
                    .iter()
                    .filter(|e| e.rv > rv && e.group == rt.group && e.plural == rt.plural)
                    .filter(|e| ns.as_deref().is_none_or(|n| n == e.namespace))
                    .map(|e| (e.event_type, e.object.clone()))
                    .collect()
            }
            _ => inner
                .list(rt, ns.as_deref())
                .into_iter()
                .map(|o| ("ADDED", o.clone()))
                .collect(),
        };
        (initial, rx, inner.current_rv())
    };

    let render = move |event_type: &str, obj: &Value| -> Option<Bytes> {
        if !(labels.matches_object(obj) && fields.matches(obj)) {
            return None;
        }
        let object = if as_table {
            table::table(
                rt,
                std::slice::from_ref(obj),
                json!({"resourceVersion": meta_str(obj, "resourceVersion")}),
                "Metadata",
                "v1",
            )
        } else {
            typed(rt, obj)
        };
        let mut line = serde_json::to_vec(&json!({"type": event_type, "object": object})).ok()?;
        line.push(b'\n');
        Some(Bytes::from(line))
    };

    let (tx, body_rx) = mpsc::channel::<Bytes>(64);
    let ns_filter = t.ns.clone();
    tokio::spawn(async move {
        for (ty, obj) in &initial {
            if let Some(b) = render(ty, obj)
                && tx.send(b).await.is_err()
            {
                return;
            }
        }
        if send_initial {
            let mut bookmark = typed(
                rt,
                &json!({"metadata": {"resourceVersion": current.to_string()}}),
            );
            bookmark["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            let mut line = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": bookmark}))
                .unwrap_or_default();
            line.push(b'\n');
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            let ev: WatchEvent = tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                ev = rx.recv() => match ev {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if ev.group != rt.group
                || ev.plural != rt.plural
                || ns_filter.as_deref().is_some_and(|n| n != ev.namespace)
            {
                continue;
            }
            if let Some(b) = render(ev.event_type, &ev.object)
                && tx.send(b).await.is_err()
            {
                return;
            }
        }
    });

    let stream = futures::stream::unfold(body_rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
