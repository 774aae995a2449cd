//! PKI: issue a certificate from a role (`POST /v1/{mount}/issue/{role}`). The private key is
//! a `Secret`; OpenBao does not keep it.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::OpenBao;
use super::api::Purpose;
use super::error::OpenBaoError;
use super::path::single_segment;
use crate::adapters::http::{Retry, Secret};

/// What to put in the certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertRequest {
    pub common_name: String,
    /// DNS names (and email addresses) besides the common name.
    pub alt_names: Vec<String>,
    pub ip_sans: Vec<String>,
    /// `None`: the role's default. OpenBao caps it at the role's `max_ttl`.
    pub ttl: Option<Duration>,
}

/// An issued certificate (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub certificate: String,
    pub issuing_ca: String,
    pub ca_chain: Vec<String>,
    pub private_key: Secret,
    pub private_key_type: String,
    pub serial_number: String,
    /// Unix seconds.
    pub expiration: i64,
    /// OpenBao's warnings (e.g. the TTL was capped at the role's max_ttl).
    pub warnings: Vec<String>,
}

impl OpenBao {
    /// Issue a certificate from PKI role `role` of the configured mount.
    pub async fn pki_issue(
        &self,
        role: &str,
        request: &CertRequest,
    ) -> Result<IssuedCert, OpenBaoError> {
        let mount = self
            .inner
            .pki_mount
            .as_deref()
            .ok_or(OpenBaoError::PkiNotConfigured)?;
        let role = single_segment("PKI role", role)?;
        let api_path = format!("{mount}/issue/{role}");
        let what = format!("PKI role `{role}` ({mount})");
        let mut body = json!({
            "common_name": request.common_name,
            "format": "pem",
        });
        if !request.alt_names.is_empty() {
            body["alt_names"] = json!(request.alt_names.join(","));
        }
        if !request.ip_sans.is_empty() {
            body["ip_sans"] = json!(request.ip_sans.join(","));
        }
        if let Some(ttl) = request.ttl {
            body["ttl"] = json!(format!("{}s", ttl.as_secs().max(1)));
        }
        let v = self
            .call(
                Retry::Write,
                Method::POST,
                &api_path,
                &[],
                Some(&body),
                &Purpose {
                    action: "issue a certificate from",
                    what: &what,
                    api_path: &api_path,
                },
            )
            .await?;
        let d = &v["data"];
        let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
        let certificate = text("certificate");
        let key = text("private_key");
        if certificate.is_empty() || key.is_empty() {
            return Err(OpenBaoError::BadAnswer(format!(
                "the certificate issued from {what} came without a certificate or private key"
            )));
        }
        let strings =
            |v: &Value| serde_json::from_value::<Vec<String>>(v.clone()).unwrap_or_default();
        Ok(IssuedCert {
            certificate,
            issuing_ca: text("issuing_ca"),
            ca_chain: strings(&d["ca_chain"]),
            private_key: Secret::new(key),
            private_key_type: text("private_key_type"),
            serial_number: text("serial_number"),
            expiration: d["expiration"].as_i64().unwrap_or(0),
            warnings: strings(&v["warnings"]),
        })
    }
}
