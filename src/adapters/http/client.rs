//! Building outbound HTTP clients: rustls with the process-wide crypto provider (installed
//! here, once), extra CA certificates, a client certificate, connect and total timeouts, no
//! redirects (they would carry credentials elsewhere). The only place a `reqwest::Client` is
//! built.

use std::path::PathBuf;
use std::time::Duration;

/// Install ring as the process-wide TLS crypto provider (kube and reqwest both use rustls;
/// ring needs no C toolchain beyond cc). Idempotent.
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// TLS options of one upstream (config `tls:`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM CA certificates trusted in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) and its key, for mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

/// A client with `connect` and `total` timeouts and the upstream's TLS options.
pub fn build(
    connect: Duration,
    total: Duration,
    tls: &TlsSettings,
) -> Result<reqwest::Client, String> {
    init_crypto();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(connect.min(total))
        .timeout(total)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("toolgate/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &tls.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("CA file {} is not PEM certificates: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "CA file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ));
        }
        builder = builder.tls_certs_merge(certs);
    }
    match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => {
            let mut pem = std::fs::read(cert)
                .map_err(|e| format!("cannot read client certificate {}: {e}", cert.display()))?;
            pem.push(b'\n');
            pem.extend(
                std::fs::read(key)
                    .map_err(|e| format!("cannot read client key {}: {e}", key.display()))?,
            );
            // The error names the files, never their contents.
            let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
                format!(
                    "client certificate {} and key {} are not a PEM certificate with its private key",
                    cert.display(),
                    key.display()
                )
            })?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => {
            return Err(
                "tls: a client certificate needs both client_cert_file and client_key_file".into(),
            );
        }
    }
    if tls.insecure_skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_files_are_checked_and_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("ca.pem");
        std::fs::write(&bad, "not a certificate").expect("write");
        let t = Duration::from_secs(1);
        let err = build(
            t,
            t,
            &TlsSettings {
                ca_file: Some(bad.clone()),
                ..TlsSettings::default()
            },
        )
        .expect_err("no PEM");
        assert!(err.contains(&bad.display().to_string()), "{err}");
        let err = build(
            t,
            t,
            &TlsSettings {
                client_cert_file: Some(bad.clone()),
                ..TlsSettings::default()
            },
        )
        .expect_err("half a client certificate");
        assert!(err.contains("client_key_file"), "{err}");
        let err = build(
            t,
            t,
            &TlsSettings {
                client_cert_file: Some(bad.clone()),
                client_key_file: Some(bad.clone()),
                ..TlsSettings::default()
            },
        )
        .expect_err("not a key pair");
        assert!(err.contains("not a PEM certificate"), "{err}");
        assert!(build(t, t, &TlsSettings::default()).is_ok());
    }
}
