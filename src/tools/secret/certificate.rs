//! `secret.generate_certificate` (risk `write`, approval): issue a certificate from an OpenBao
//! PKI role and write it, with its private key, into a `kubernetes.io/tls` Secret through the
//! kube adapter (server-side apply, like the other k8s writes). The key goes from OpenBao to
//! the API server only: never to the model, the approval or the audit.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::openbao;
use crate::adapters::openbao::CertRequest;
use crate::adapters::openbao::path::single_segment;
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Preview, Risk, Target, TypedTool};
use crate::tools::k8s::target::{Coords, Omitted, Scope, settle, tool_error};
use crate::tools::obs::time::parse_duration;

/// Secrets: core `v1`.
const SECRETS: (&str, Option<&str>) = ("secrets", Some("v1"));
const TLS_TYPE: &str = "kubernetes.io/tls";

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateParams {
    /// The PKI role to issue from (e.g. `web`).
    pub role: String,
    /// The certificate's common name (e.g. `api.example.test`).
    pub common_name: String,
    /// More DNS names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alt_names: Vec<String>,
    /// IP addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_sans: Vec<String>,
    /// Lifetime, e.g. `72h` (default: the role's; capped at its max_ttl).
    pub ttl: Option<String>,
    /// Namespace of the TLS Secret to write.
    pub namespace: String,
    /// Name of the TLS Secret (created, or replaced when it exists).
    pub name: String,
    /// Cluster (default: the default one).
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CertificateOutput {
    pub cluster: String,
    /// The Secret written, `namespace/name`.
    pub secret: String,
    pub serial_number: String,
    /// notAfter (RFC 3339).
    pub expires: String,
    pub common_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alt_names: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ip_sans: Vec<String>,
    /// SHA-256 of the certificate (DER), as `openssl x509 -fingerprint -sha256` shows it.
    pub certificate_sha256: String,
    /// SHA-256 (DER) of each certificate of the issuing chain.
    pub chain_sha256: Vec<String>,
    /// OpenBao's warnings (e.g. the TTL was capped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub struct GenerateCertificate;

impl TypedTool for GenerateCertificate {
    type Params = CertificateParams;
    type Output = CertificateOutput;
    const NAME: &'static str = "secret.generate_certificate";
    const TOOLSET: &'static str = "secret";
    const TITLE: &'static str = "Issue a TLS certificate into a Secret";
    const DESCRIPTION: &'static str = "Issue a certificate from an OpenBao PKI role and write it with its private key into a kubernetes.io/tls Secret (namespace, name). The key never appears in the answer; the answer has the serial number, expiry, SANs and SHA-256 fingerprints.";
    const RISK: Risk = Risk::Write;

    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut CertificateParams,
    ) -> Result<Option<Target>, ToolError> {
        let role = single_segment("PKI role", &p.role)
            .map_err(crate::adapters::openbao::OpenBaoError::from)?;
        let mount = openbao(ctx)?
            .pki_mount()
            .ok_or(crate::adapters::openbao::OpenBaoError::PkiNotConfigured)?
            .to_string();
        if p.common_name.trim().is_empty() {
            return Err(ToolError::invalid_arguments(
                "secret.generate_certificate: `common_name` is empty; give the certificate's main DNS name, e.g. api.example.test",
            ));
        }
        if let Some(ttl) = &p.ttl {
            parse_duration("ttl", ttl)?;
        }
        let (_, mut target) = secret_scope(ctx, p).await?;
        target.mount = Some(mount);
        target.path = Some(format!("issue/{role}"));
        Ok(Some(target))
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        p: CertificateParams,
    ) -> Result<CertificateOutput, ToolError> {
        let bao = openbao(ctx)?;
        let mut coords = (p.cluster.clone(), Some(p.namespace.clone()));
        let scope = scope_of(ctx, &mut coords, &p.name).await?;
        let ttl = p
            .ttl
            .as_deref()
            .map(|t| parse_duration("ttl", t))
            .transpose()?;
        let cert = bao
            .pki_issue(
                &p.role,
                &CertRequest {
                    common_name: p.common_name.clone(),
                    alt_names: p.alt_names.clone(),
                    ip_sans: p.ip_sans.clone(),
                    ttl,
                },
            )
            .await?;
        let chain = cert.ca_chain.join("\n");
        let doc = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": p.name,
                "namespace": p.namespace,
                "annotations": {
                    "toolgate.io/pki-role": p.role,
                    "toolgate.io/serial-number": cert.serial_number,
                },
            },
            "type": TLS_TYPE,
            "data": {
                "tls.crt": B64.encode(format!("{}\n{chain}\n", cert.certificate.trim_end())),
                "tls.key": B64.encode(cert.private_key.expose()),
                "ca.crt": B64.encode(&cert.issuing_ca),
            },
        });
        // The API server's answer holds the key: only whether it succeeded is kept.
        scope
            .cluster
            .apply(
                scope.kind.info.resource(),
                scope.namespace.as_deref(),
                &p.name,
                &doc,
                false,
            )
            .await
            .map_err(tool_error)?;
        Ok(CertificateOutput {
            cluster: scope.cluster.name().to_string(),
            secret: format!("{}/{}", p.namespace, p.name),
            serial_number: cert.serial_number,
            expires: jiff::Timestamp::from_second(cert.expiration)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            common_name: p.common_name,
            alt_names: p.alt_names,
            ip_sans: p.ip_sans,
            certificate_sha256: der_sha256(&cert.certificate)
                .into_iter()
                .next()
                .unwrap_or_default(),
            chain_sha256: der_sha256(&chain),
            warnings: cert.warnings,
        })
    }

    async fn preview(
        &self,
        ctx: &ToolContext,
        p: &CertificateParams,
    ) -> Result<Option<Preview>, ToolError> {
        let mut coords = (p.cluster.clone(), Some(p.namespace.clone()));
        let scope = scope_of(ctx, &mut coords, &p.name).await?;
        let existing = scope.get_opt(&p.name).await?;
        let action = match &existing {
            None => "create".to_string(),
            Some(s) if s["type"] == TLS_TYPE => "replace".to_string(),
            Some(s) => format!(
                "fail on (it exists with type {}, and a Secret's type cannot change)",
                s["type"].as_str().unwrap_or("Opaque")
            ),
        };
        let mut names = vec![p.common_name.clone()];
        names.extend(p.alt_names.iter().cloned());
        names.extend(p.ip_sans.iter().cloned());
        Ok(Some(Preview {
            summary: format!(
                "would issue a certificate from PKI role {} for {} (TTL {}) and {action} TLS Secret {}/{} in cluster {}",
                p.role,
                names.join(", "),
                p.ttl.as_deref().unwrap_or("the role's default"),
                p.namespace,
                p.name,
                scope.cluster.name()
            ),
            diff: None,
            target_version: None,
            detail: json!({
                "role": p.role, "common_name": p.common_name, "alt_names": p.alt_names,
                "ip_sans": p.ip_sans, "ttl": p.ttl, "cluster": scope.cluster.name(),
                "namespace": p.namespace, "name": p.name, "exists": existing.is_some(),
            }),
        }))
    }
}

/// Settle cluster, namespace and the Secret's name as the k8s tools do.
async fn secret_scope(
    ctx: &ToolContext,
    p: &mut CertificateParams,
) -> Result<(Scope, Target), ToolError> {
    let mut namespace = Some(p.namespace.clone());
    let coords = Coords {
        cluster: &mut p.cluster,
        kind: None,
        api_version: None,
        namespace: &mut namespace,
    };
    let settled = settle(
        ctx,
        coords,
        SECRETS,
        &[("name", &p.name)],
        Omitted::DefaultNamespace,
    )
    .await?;
    Ok(settled)
}

async fn scope_of(
    ctx: &ToolContext,
    coords: &mut (Option<String>, Option<String>),
    name: &str,
) -> Result<Scope, ToolError> {
    let c = Coords {
        cluster: &mut coords.0,
        kind: None,
        api_version: None,
        namespace: &mut coords.1,
    };
    Ok(settle(
        ctx,
        c,
        SECRETS,
        &[("name", name)],
        Omitted::DefaultNamespace,
    )
    .await?
    .0)
}

/// `AB:CD:…` SHA-256 of each certificate (DER) in `pem`.
fn der_sha256(pem: &str) -> Vec<String> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .flatten()
        .map(|der| {
            Sha256::digest(der.as_ref())
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .collect()
}
