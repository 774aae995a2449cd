//! OpenAI-compatible embeddings (`POST {url}/embeddings`, `{model, input: [..]}` →
//! `{data: [{index, embedding}]}`), for the knowledge index's vectors. Through the upstream
//! kit: timeouts, retries (embedding is idempotent), breaker, credentials.

use serde_json::{Value, json};

use super::http::{CallError, Endpoint, Health, Retry, Upstream};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbedError {
    /// No answer (down, timeout, breaker open, 5xx after retries).
    #[error("the embeddings endpoint is unavailable: {0}")]
    Unavailable(String),
    /// An answer that is not what the API promises (4xx, wrong shape, wrong count).
    #[error("the embeddings endpoint answered wrongly: {0}")]
    BadAnswer(String),
}

/// What the knowledge index needs: one vector per text, in order.
pub trait Embed: Send + Sync {
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> futures::future::BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>>;
    /// Breaker and last results, for `/readyz`.
    fn health(&self) -> Option<Health> {
        None
    }
}

pub struct Embeddings {
    url: String,
    model: String,
    upstream: Upstream,
}

impl Embeddings {
    pub fn new(endpoint: &Endpoint, model: &str) -> Result<Self, String> {
        let upstream = Upstream::new(
            "embeddings",
            "the embeddings endpoint",
            &endpoint.settings,
            endpoint.auth.clone(),
        )
        .map_err(|e| format!("knowledge.embeddings: {e}"))?;
        Ok(Self {
            url: format!("{}/embeddings", endpoint.url.trim_end_matches('/')),
            model: model.to_string(),
            upstream,
        })
    }

    async fn request(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = json!({"model": self.model, "input": texts});
        let reply = self
            .upstream
            .send(Retry::Read, || {
                Ok(self.upstream.http().post(&self.url).json(&body))
            })
            .await
            .map_err(|e| match e {
                CallError::CircuitOpen(_) => EmbedError::Unavailable(e.to_string()),
                CallError::Failed(m) | CallError::RateLimited { message: m, .. } => {
                    EmbedError::Unavailable(m)
                }
            })?;
        if !reply.status.is_success() {
            return Err(EmbedError::BadAnswer(format!(
                "HTTP {}: {}",
                reply.status.as_u16(),
                reply.text().chars().take(300).collect::<String>()
            )));
        }
        parse(&reply.body, texts.len())
    }
}

impl Embed for Embeddings {
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> futures::future::BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(self.request(texts))
    }

    fn health(&self) -> Option<Health> {
        Some(self.upstream.guard().health())
    }
}

/// The vectors of an answer, ordered by `index`; refused unless there is one per input.
fn parse(body: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| EmbedError::BadAnswer(format!("body is not JSON ({e})")))?;
    let Some(data) = doc.get("data").and_then(Value::as_array) else {
        return Err(EmbedError::BadAnswer("no `data` array".into()));
    };
    let mut out: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (pos, item) in data.iter().enumerate() {
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .map_or(pos, |i| i as usize);
        let vector: Option<Vec<f32>> = item.get("embedding").and_then(Value::as_array).map(|v| {
            v.iter()
                .filter_map(Value::as_f64)
                .map(|x| x as f32)
                .collect()
        });
        match (out.get_mut(index), vector) {
            (Some(slot), Some(v)) if !v.is_empty() => *slot = Some(v),
            _ => {
                return Err(EmbedError::BadAnswer(format!(
                    "data[{pos}]: no embedding for input {index} of {expected}"
                )));
            }
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| EmbedError::BadAnswer(format!("no embedding for input {i}"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_come_back_in_input_order_and_a_missing_one_is_refused() {
        let body = br#"{"data":[{"index":1,"embedding":[0.5,1]},{"index":0,"embedding":[1,0]}]}"#;
        assert_eq!(
            parse(body, 2).expect("two"),
            vec![vec![1.0, 0.0], vec![0.5, 1.0]]
        );
        let short = br#"{"data":[{"index":0,"embedding":[1,0]}]}"#;
        assert_eq!(
            parse(short, 2),
            Err(EmbedError::BadAnswer("no embedding for input 1".into()))
        );
    }
}
