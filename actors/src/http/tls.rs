//! HTTPS for the API: a rustls server configuration from the PEM files of
//! `api.tls_cert` and `api.tls_key`.

use std::path::Path;

use anyhow::{Context as _, bail};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// `None` when neither file is configured; half a configuration is an error,
/// because silently serving plain HTTP would be worse.
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
) -> anyhow::Result<Option<ServerConfig>> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => bail!("api.tls_cert and api.tls_key must be set together"),
    };
    let cert_pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let key_pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .with_context(|| format!("{} is not a PEM private key", key.display()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let config = ServerConfig::builder_with_provider(provider.into())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .context("api.tls_cert and api.tls_key do not form a usable pair")?;
    Ok(Some(config))
}
