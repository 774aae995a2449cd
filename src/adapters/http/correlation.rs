//! The correlation id of outbound requests: the tool call's request id travels as a tokio
//! task-local from the core to every upstream request made on its behalf, and goes out as
//! `x-request-id` plus a W3C `traceparent` (trace id derived from it, a new span id per
//! request). Failure log lines carry it too. Work started outside a call gets a fresh id.

use http::HeaderValue;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Run `fut` with `id` as the correlation id of every outbound request it makes.
pub async fn scope<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// The current correlation id, or a fresh one outside any call.
pub fn current() -> String {
    REQUEST_ID
        .try_with(|id| id.clone())
        .unwrap_or_else(|_| uuid::Uuid::new_v4().to_string())
}

/// `traceparent` for one request of the call `id`: version 00, the trace id (the id's hex
/// digits when it is a UUID, else a hash of it), a fresh span id, sampled.
pub fn traceparent(id: &str) -> String {
    let hex: String = id.chars().filter(char::is_ascii_hexdigit).collect();
    let trace = if hex.len() == 32 && hex.chars().any(|c| c != '0') {
        hex.to_ascii_lowercase()
    } else {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(id.as_bytes());
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    };
    let span = getrandom::u64().unwrap_or(1).max(1);
    format!("00-{trace}-{span:016x}-01")
}

/// The two headers for one outbound request of the current call.
pub fn headers() -> [(http::HeaderName, HeaderValue); 2] {
    let id = current();
    let safe = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    let parent = HeaderValue::from_str(&traceparent(&id)).unwrap_or_else(|_| {
        HeaderValue::from_static("00-00000000000000000000000000000001-0000000000000001-01")
    });
    [
        (http::HeaderName::from_static("x-request-id"), safe),
        (http::HeaderName::from_static("traceparent"), parent),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_call_id_reaches_requests_made_inside_its_scope() {
        let id = "6f1c2a4e-3b5d-4c7e-9f8a-0b1c2d3e4f50".to_string();
        let [(_, rid), (_, tp)] = scope(id.clone(), async { headers() }).await;
        assert_eq!(rid, id.as_str());
        let tp = tp.to_str().expect("ascii");
        assert!(
            tp.starts_with("00-6f1c2a4e3b5d4c7e9f8a0b1c2d3e4f50-"),
            "{tp}"
        );
        assert!(tp.ends_with("-01"));
        assert_eq!(tp.len(), 55);
        // Outside a call: a fresh id each time.
        assert_ne!(current(), current());
    }

    #[test]
    fn ids_that_are_not_uuids_still_give_a_valid_trace_id() {
        let tp = traceparent("req 42 \u{e9}");
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[1].len(), 32);
        assert!(parts[1].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(parts[2].len(), 16);
        assert_ne!(traceparent("a"), traceparent("b"));
    }
}
