//! STARTTLS material: a self-signed certificate made at start-up (or one read
//! from PEM files) and the rustls acceptor built on the aws-lc-rs provider.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// What a session needs to upgrade, and what tests need to trust it.
#[derive(Clone)]
pub(crate) struct TlsMaterial {
    pub(crate) acceptor: TlsAcceptor,
    /// The end-entity certificate, so a test client can pin it instead of
    /// turning verification off.
    pub(crate) certificate: CertificateDer<'static>,
}

impl TlsMaterial {
    /// A fresh self-signed certificate for `hostname`, `localhost` and the
    /// loopback addresses.
    pub(crate) fn self_signed(hostname: &str) -> anyhow::Result<Self> {
        let names = vec![
            hostname.to_owned(),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let certified = rcgen::generate_simple_self_signed(names)
            .context("generating the sink's self-signed certificate")?;
        let certificate = certified.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        Self::build(vec![certificate], key)
    }

    /// The chain and key from PEM files (the first certificate is the leaf).
    pub(crate) fn from_pem(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let chain = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("opening {}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("reading certificates from {}", cert.display()))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("reading a private key from {}", key.display()))?;
        Self::build(chain, key)
    }

    fn build(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> anyhow::Result<Self> {
        let certificate = chain
            .first()
            .cloned()
            .context("the certificate file holds no certificate")?;
        // An explicit provider rather than the process default: the sink runs
        // inside test processes whose other crates may install a different one.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("choosing TLS versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("the certificate and key do not form a valid pair")?;
        Ok(TlsMaterial {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
        })
    }
}
