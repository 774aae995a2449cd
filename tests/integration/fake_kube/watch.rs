//! `?watch=true`: a chunked stream of `{"type","object"}` lines fed from the store's change feed,
//! as the API server's watch cache serves it: with `allowWatchBookmarks=true`, BOOKMARK events
//! (an object of the watched kind holding only `metadata.resourceVersion`) every bookmark
//! interval; a resourceVersion older than the history (or compacted) is answered 200 with one
//! ERROR event holding a 410 `Expired` Status, then the stream ends (the cacher's error
//! watcher); `FakeKube::drop_watches` ends every open stream as a restarting API server does.

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
    let bookmarks = req.params.flag("allowWatchBookmarks");
    let bookmark_every = shared.bookmark_interval();
    let mut cut = shared.watch_cut.subscribe();
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
                if rv + 1 < oldest || inner.is_compacted(rv) {
                    let oldest = oldest.max(inner.compacted_at());
                    return Ok(expired(format!(
                        "too old resource version: {rv} ({oldest})"
                    )));
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
                &[obj],
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
        // Every event up to this resourceVersion has been sent (or filtered out): what a
        // bookmark may promise.
        let mut sent_rv = current;
        let mut bookmark_tick = tokio::time::interval(bookmark_every);
        bookmark_tick.tick().await;
        loop {
            let ev: WatchEvent = tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = cut.changed() => return,
                _ = bookmark_tick.tick(), if bookmarks => {
                    let object = typed(rt, &json!({"metadata": {"resourceVersion": sent_rv.to_string()}}));
                    let mut line = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": object}))
                        .unwrap_or_default();
                    line.push(b'\n');
                    if tx.send(Bytes::from(line)).await.is_err() {
                        return;
                    }
                    continue;
                }
                ev = rx.recv() => match ev {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            sent_rv = sent_rv.max(ev.rv);
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

/// 200 with one ERROR event carrying a 410 Expired Status, then the end of the stream.
fn expired(message: String) -> axum::response::Response {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Expired", "code": 410,
    });
    let mut line =
        serde_json::to_vec(&json!({"type": "ERROR", "object": status})).unwrap_or_default();
    line.push(b'\n');
    let mut resp = Body::from(line).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}
