//! Test double of the API server for the adapter's unit tests (the ApiServerVerifier pattern of
//! kube-rs's controller example): a `tower_test` mock service behind a real `kube::Client`,
//! and a task that checks each expected request (method, path, query, headers, body) and
//! answers it. An expected request that never comes fails the test after a timeout; one that
//! differs fails it with both sides shown. Test-only; sends nothing anywhere.

use std::time::Duration;

use ::kube::Client;
use ::kube::client::Body;
use http::{Method, Request, Response};
use serde_json::Value;
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle};

use super::Cluster;

/// How long an expected request may take to arrive.
const WAIT: Duration = Duration::from_secs(5);

type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// One request the test expects and the answer it gets.
#[derive(Debug, Clone)]
pub struct Exchange {
    method: Method,
    path: String,
    /// Exact query string as sent (`""` when none).
    query: String,
    headers: Vec<(&'static str, String)>,
    /// The JSON body expected, if any is checked.
    body: Option<Value>,
    status: u16,
    reply: String,
}

impl Exchange {
    pub fn new(method: Method, path: &str) -> Self {
        Exchange {
            method,
            path: path.to_string(),
            query: String::new(),
            headers: Vec::new(),
            body: None,
            status: 200,
            reply: "{}".into(),
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn query(mut self, query: &str) -> Self {
        self.query = query.to_string();
        self
    }

    /// A header the request must carry with exactly this value.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    /// The request body, compared as JSON.
    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn reply(mut self, status: u16, body: impl Into<String>) -> Self {
        self.status = status;
        self.reply = body.into();
        self
    }

    pub fn reply_json(self, status: u16, body: &Value) -> Self {
        self.reply(status, body.to_string())
    }

    fn describe(&self) -> String {
        format!("{} {}?{}", self.method, self.path, self.query)
    }
}

/// A request as the mocked server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub body: Vec<u8>,
}

/// A cluster whose client talks to a mocked API server, and the handle to serve it.
pub fn mocked() -> (Cluster, MockApi) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    (
        Cluster::from_client("mock", client, Duration::from_secs(5)),
        MockApi { handle },
    )
}

pub struct MockApi {
    handle: ApiHandle,
}

impl MockApi {
    /// Answer `exchanges` in this order; the test awaits [`Serving::done`] after its call.
    pub fn serve(self, exchanges: Vec<Exchange>) -> Serving {
        Serving(tokio::spawn(run(self.handle, exchanges, false)))
    }

    /// Answer `exchanges` in whatever order the requests come (concurrent requests).
    pub fn serve_any_order(self, exchanges: Vec<Exchange>) -> Serving {
        Serving(tokio::spawn(run(self.handle, exchanges, true)))
    }

    /// Fails when any request arrives within a short while: for calls that must send nothing.
    pub async fn assert_idle(&mut self) {
        if let Ok(Some((req, _))) =
            tokio::time::timeout(Duration::from_millis(200), self.handle.next_request()).await
        {
            panic!("no request expected, got {} {}", req.method(), req.uri());
        }
    }
}

/// The running verifier.
pub struct Serving(JoinHandle<Vec<Seen>>);

impl Serving {
    /// Every request seen, once all expected ones came; fails the test otherwise.
    pub async fn done(self) -> Vec<Seen> {
        match tokio::time::timeout(WAIT * 2, self.0).await {
            Ok(Ok(seen)) => seen,
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(e)) => panic!("the mocked API server stopped: {e}"),
            Err(_) => panic!("the mocked API server did not finish"),
        }
    }
}

async fn run(mut handle: ApiHandle, mut expected: Vec<Exchange>, any_order: bool) -> Vec<Seen> {
    let mut seen = Vec::new();
    while !expected.is_empty() {
        let waiting: Vec<String> = expected.iter().map(Exchange::describe).collect();
        let Ok(next) = tokio::time::timeout(WAIT, handle.next_request()).await else {
            panic!("expected request(s) never came: {waiting:?}");
        };
        let Some((req, send)) = next else {
            panic!("the client went away; still expected: {waiting:?}");
        };
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or("").to_string();
        let got = format!("{} {path}?{query}", parts.method);
        let index = if any_order {
            expected
                .iter()
                .position(|e| e.method == parts.method && e.path == path && e.query == query)
        } else {
            Some(0).filter(|_| {
                let e = &expected[0];
                e.method == parts.method && e.path == path && e.query == query
            })
        };
        let Some(index) = index else {
            panic!("unexpected request {got}; expected {waiting:?}");
        };
        let exchange = expected.remove(index);
        for (name, value) in &exchange.headers {
            let actual = parts.headers.get(*name).and_then(|v| v.to_str().ok());
            assert_eq!(actual, Some(value.as_str()), "header {name} of {got}");
        }
        let bytes = body
            .collect_bytes()
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        if let Some(want) = &exchange.body {
            let actual: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("body of {got} is not JSON ({e})"));
            assert_eq!(&actual, want, "body of {got}");
        }
        let response = Response::builder()
            .status(exchange.status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(exchange.reply.into_bytes()))
            .unwrap_or_else(|e| panic!("cannot build the answer to {got}: {e}"));
        send.send_response(response);
        seen.push(Seen { path, body: bytes });
    }
    seen
}
