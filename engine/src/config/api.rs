//! The `[api]` section: the HTTP API's listener, TLS, body limits, Escher
//! settings and the master key that seals API secrets.

use std::path::PathBuf;

use serde::{Deserialize, Serialize, Serializer};

use super::secret::{REDACTED, Secret};
use super::units::{ByteSize, Duration};
use crate::auth::escher::EscherConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address of the HTTP API; loopback by default so a fresh install is not
    /// reachable from the network before TLS is configured.
    pub listen: String,
    /// PEM certificate chain; with `tls_key`, the API speaks HTTPS only.
    #[serde(with = "super::empty_path_is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(with = "super::empty_path_is_none")]
    pub tls_key: Option<PathBuf>,
    /// Largest JSON body: requests are read whole (the signature covers them),
    /// so this bounds the memory one request can take.
    pub max_body: ByteSize,
    /// Largest recipient CSV upload; uploads stream, so this bounds disk and
    /// time, not memory.
    pub max_upload: ByteSize,
    /// Tolerated clock difference of signed requests, either way.
    pub clock_skew: Duration,
    /// The Escher credential scope clients sign for; binds signatures to this
    /// service.
    pub credential_scope: String,
    /// Base64 of 32 bytes sealing API secrets (AES-256-GCM). Empty: a key is
    /// generated into `<data_dir>/master.key` on first use, fine for a trial,
    /// not for production (the key then sits beside what it protects).
    #[serde(serialize_with = "serialize_optional_secret")]
    pub master_key: Secret<String>,
    /// How long an opened API secret is reused before the store is asked again;
    /// a key revoked by another process stops working within this time.
    pub key_cache_ttl: Duration,
    /// How long shutdown waits for requests in flight before closing them.
    pub shutdown_timeout: Duration,
    /// Most rejected rows an upload response lists; the full report stays on disk.
    pub report_rows: usize,
    /// Recipients per second one tenant may submit through `POST /v1/messages`
    /// (a token bucket per tenant); past it the API answers 429 with
    /// `Retry-After`, so upstream systems slow down instead of timing out.
    /// 0 turns the limit off.
    pub submit_rate: u32,
    /// Recipients a tenant may submit at once above the steady rate (the bucket's
    /// size); a batch larger than this waits for a full bucket.
    pub submit_burst: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            tls_cert: None,
            tls_key: None,
            max_body: ByteSize::kib(1024),
            max_upload: ByteSize::kib(1024 * 1024),
            clock_skew: Duration::from_secs(300),
            credential_scope: EscherConfig::default().credential_scope,
            master_key: Secret::new(String::new()),
            key_cache_ttl: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            report_rows: 100,
            submit_rate: 50_000,
            submit_burst: 100_000,
        }
    }
}

impl ApiConfig {
    /// Broadside's Escher settings with the configured scope and skew.
    pub fn escher(&self) -> EscherConfig {
        EscherConfig {
            credential_scope: self.credential_scope.clone(),
            clock_skew: self.clock_skew.as_std(),
            ..EscherConfig::default()
        }
    }
}

/// An unset secret shows as "" (so the documented file and the defaults agree);
/// a set one as `<redacted>`.
pub(super) fn serialize_optional_secret<S: Serializer>(
    secret: &Secret<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    if secret.expose().is_empty() {
        serializer.serialize_str("")
    } else {
        serializer.serialize_str(REDACTED)
    }
}
