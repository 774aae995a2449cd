//! A deterministic stand-in for an OpenAI-compatible embeddings server (`POST /v1/embeddings`):
//! each text becomes a hashed bag of its words and of their first five letters (a crude stem),
//! 256 dimensions. It is a stub for tests and the bench, not a semantic model: texts are
//! similar only as far as they share words. In-process axum on 127.0.0.1:0.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

pub const DIMENSIONS: usize = 256;

pub struct FakeEmbeddings {
    /// Base URL to configure (`http://127.0.0.1:PORT/v1`).
    pub url: String,
    pub addr: SocketAddr,
    /// Texts embedded so far.
    pub texts: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl FakeEmbeddings {
    pub async fn start() -> FakeEmbeddings {
        let texts = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/v1/embeddings", post(embeddings))
            .with_state(texts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the embeddings stub");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeEmbeddings {
            url: format!("http://{addr}/v1"),
            addr,
            texts,
            _task: task,
        }
    }
}

impl Drop for FakeEmbeddings {
    fn drop(&mut self) {
        self._task.abort();
    }
}

async fn embeddings(
    State(count): State<Arc<AtomicUsize>>,
    Json(body): Json<Value>,
) -> (axum::http::StatusCode, Json<Value>) {
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                Json(
                    json!({"error": {"message": "input must be a string or an array of strings"}}),
                ),
            );
        }
    };
    count.fetch_add(inputs.len(), Ordering::SeqCst);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": embed(text)}))
        .collect();
    (
        axum::http::StatusCode::OK,
        Json(json!({"object": "list", "data": data, "model": body["model"]})),
    )
}

/// FNV-1a.
fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn embed(text: &str) -> Vec<f32> {
    let mut v = vec![0.0_f32; DIMENSIONS];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
    {
        let word = word.to_lowercase();
        let stem: String = word.chars().take(5).collect();
        for (feature, weight) in [(word.as_str(), 1.0_f32), (stem.as_str(), 0.5)] {
            let h = hash(feature);
            let sign = if h & (1 << 63) == 0 { 1.0 } else { -1.0 };
            v[(h % DIMENSIONS as u64) as usize] += sign * weight;
        }
    }
    v
}
