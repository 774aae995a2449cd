//! Transit: HMAC of values (their fingerprints) and encrypt/decrypt with a context (values
//! sealed while a call waits for approval), with toolgate's transit key. Batched: one request
//! for all values of a call. Plaintexts go out base64-encoded in the body, never in a URL or a
//! message; the key never leaves OpenBao.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::Method;
use serde_json::{Value, json};

use super::OpenBao;
use super::api::Purpose;
use super::config::TransitKey;
use super::error::OpenBaoError;
use crate::adapters::http::{Retry, Secret};

/// An HMAC-SHA256 under toolgate's transit key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mac {
    /// The key version that made it (rotating the key changes fingerprints).
    pub key_version: u64,
    pub bytes: Vec<u8>,
}

impl OpenBao {
    fn transit(&self) -> Result<&TransitKey, OpenBaoError> {
        self.inner
            .transit
            .as_ref()
            .ok_or(OpenBaoError::TransitNotConfigured)
    }

    /// `POST {mount}/{op}/{key}[/{suffix}]` with `batch_input`; the `batch_results` in order.
    async fn transit_batch(
        &self,
        op: &'static str,
        suffix: &str,
        items: Vec<Value>,
    ) -> Result<Vec<Value>, OpenBaoError> {
        let t = self.transit()?;
        let count = items.len();
        if count == 0 {
            return Ok(Vec::new());
        }
        let api_path = format!("{}/{op}/{}{suffix}", t.mount, t.key);
        let what = format!("transit key `{}` ({})", t.key, t.mount);
        let action = match op {
            "hmac" => "compute an HMAC with",
            "encrypt" => "encrypt with",
            _ => "decrypt with",
        };
        let v = self
            .call(
                Retry::Write,
                Method::POST,
                &api_path,
                &[],
                Some(&json!({"batch_input": items})),
                &Purpose {
                    action,
                    what: &what,
                    api_path: &api_path,
                },
            )
            .await?;
        let results = v["data"]["batch_results"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if results.len() != count {
            return Err(OpenBaoError::BadAnswer(format!(
                "asked to {action} {what} for {count} values, got {} results",
                results.len()
            )));
        }
        if let Some(e) = results
            .iter()
            .find_map(|r| r["error"].as_str().filter(|e| !e.is_empty()))
        {
            return Err(OpenBaoError::Rejected {
                action,
                what,
                status: 400,
                message: e.chars().take(300).collect(),
            });
        }
        Ok(results)
    }

    /// HMAC-SHA256 of each input under toolgate's transit key.
    pub async fn transit_hmac(&self, inputs: &[&[u8]]) -> Result<Vec<Mac>, OpenBaoError> {
        let items = inputs
            .iter()
            .map(|i| json!({"input": B64.encode(i)}))
            .collect();
        let results = self.transit_batch("hmac", "/sha2-256", items).await?;
        results
            .iter()
            .map(|r| {
                parse_wrapped(r["hmac"].as_str().unwrap_or_default())
                    .map(|(key_version, bytes)| Mac { key_version, bytes })
                    .ok_or_else(|| {
                        OpenBaoError::BadAnswer("an HMAC that is not vault:vN:<base64>".into())
                    })
            })
            .collect()
    }

    /// Encrypt each value bound to `context` (a derived key: decrypting needs the same
    /// context). The ciphertexts (`vault:vN:…`), in order.
    pub async fn transit_encrypt(
        &self,
        values: &[&Secret],
        context: &str,
    ) -> Result<Vec<String>, OpenBaoError> {
        let context = B64.encode(context);
        let items = values
            .iter()
            .map(|v| json!({"plaintext": B64.encode(v.expose()), "context": context}))
            .collect();
        let results = self.transit_batch("encrypt", "", items).await?;
        results
            .iter()
            .map(|r| {
                r["ciphertext"]
                    .as_str()
                    .filter(|c| c.starts_with("vault:v"))
                    .map(str::to_string)
                    .ok_or_else(|| {
                        OpenBaoError::BadAnswer("an encryption without ciphertext".into())
                    })
            })
            .collect()
    }

    /// Decrypt ciphertexts made by [`OpenBao::transit_encrypt`] with the same `context`.
    pub async fn transit_decrypt(
        &self,
        ciphertexts: &[&str],
        context: &str,
    ) -> Result<Vec<Secret>, OpenBaoError> {
        let context = B64.encode(context);
        let items = ciphertexts
            .iter()
            .map(|c| json!({"ciphertext": c, "context": context}))
            .collect();
        let results = self.transit_batch("decrypt", "", items).await?;
        results
            .iter()
            .map(|r| {
                r["plaintext"]
                    .as_str()
                    .and_then(|p| B64.decode(p).ok())
                    .and_then(|b| String::from_utf8(b).ok())
                    .map(Secret::new)
                    .ok_or_else(|| {
                        OpenBaoError::BadAnswer("a decryption without UTF-8 plaintext".into())
                    })
            })
            .collect()
    }
}

/// `vault:v3:<base64>` → (3, bytes).
fn parse_wrapped(text: &str) -> Option<(u64, Vec<u8>)> {
    let rest = text.strip_prefix("vault:v")?;
    let (version, data) = rest.split_once(':')?;
    Some((version.parse().ok()?, B64.decode(data).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_values_carry_their_key_version() {
        assert_eq!(parse_wrapped("vault:v2:AAEC"), Some((2, vec![0, 1, 2])));
        assert_eq!(parse_wrapped("vault:vx:AAEC"), None);
        assert_eq!(parse_wrapped("AAEC"), None);
    }
}
