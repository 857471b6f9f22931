//! The settings both sides of an Escher exchange must agree on, and the secret type
//! that keeps API secrets out of logs.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::error::EscherError;

/// How long a pre-signed URL stays valid unless the caller says otherwise.
pub const DEFAULT_PRESIGN_EXPIRY: Duration = Duration::from_secs(86_400);

/// The hash under both the body digest and the HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlgo {
    /// Broadside's choice; what every Escher client supports.
    #[default]
    Sha256,
    /// Accepted because other Escher clients may be configured with it.
    Sha512,
}

impl HashAlgo {
    /// The name as it appears in the algorithm string (`EMS-HMAC-SHA256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// An incremental hasher, for bodies too large to hold in memory.
    pub fn hasher(self) -> BodyHasher {
        match self {
            Self::Sha256 => BodyHasher::Sha256(Sha256::default()),
            Self::Sha512 => BodyHasher::Sha512(Sha512::default()),
        }
    }

    pub(crate) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => hmac_with::<Sha256>(key, data),
            Self::Sha512 => hmac_with::<Sha512>(key, data),
        }
    }
}

fn hmac_with<D>(key: &[u8], data: &[u8]) -> Vec<u8>
where
    D: hmac::EagerHash,
    Hmac<D>: KeyInit + Mac,
{
    // HMAC hashes or pads any key to the block size, so `new_from_slice` cannot
    // fail; `Hmac::new` in the hmac crate relies on the same fact.
    let mut mac =
        <Hmac<D> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

impl FromStr for HashAlgo {
    type Err = EscherError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "SHA256" => Ok(Self::Sha256),
            "SHA512" => Ok(Self::Sha512),
            _ => Err(EscherError::UnsupportedHash),
        }
    }
}

/// Hashes a request body chunk by chunk, so a streamed upload can be verified
/// without buffering it (see `authenticate_prehashed`).
#[derive(Clone)]
pub enum BodyHasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl fmt::Debug for BodyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BodyHasher")
    }
}

impl BodyHasher {
    pub fn update(&mut self, chunk: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(chunk),
            Self::Sha512(h) => h.update(chunk),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// One Escher deployment's constants. Client and server must use the same values,
/// or every signature fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscherConfig {
    /// Starts the algorithm name: `<prefix>-HMAC-SHA256`.
    pub algo_prefix: String,
    /// Prefixed to the secret in key derivation and names the pre-signed URL
    /// parameters (`X-<vendor>-Signature`).
    pub vendor_key: String,
    /// The hash used when signing; verification follows the request's algorithm.
    pub hash: HashAlgo,
    /// Carries the signature; compared case-insensitively.
    pub auth_header_name: String,
    /// Carries the request time that the signature covers.
    pub date_header_name: String,
    /// Binds signatures to this service so they cannot be replayed elsewhere.
    pub credential_scope: String,
    /// Tolerated clock difference between client and server, either way.
    pub clock_skew: Duration,
}

impl Default for EscherConfig {
    /// Broadside's settings (see ESCHER.md).
    fn default() -> Self {
        Self {
            algo_prefix: "EMS".to_owned(),
            vendor_key: "EMS".to_owned(),
            hash: HashAlgo::Sha256,
            auth_header_name: "X-EMS-Auth".to_owned(),
            date_header_name: "X-EMS-Date".to_owned(),
            credential_scope: "eu/broadside/ems_request".to_owned(),
            clock_skew: Duration::from_secs(300),
        }
    }
}

impl EscherConfig {
    /// `EMS-HMAC-SHA256` for the configured hash.
    pub fn algorithm(&self) -> String {
        self.algorithm_for(self.hash)
    }

    pub(crate) fn algorithm_for(&self, hash: HashAlgo) -> String {
        format!("{}-HMAC-{}", self.algo_prefix, hash.name())
    }

    /// Name of a pre-signed URL parameter, e.g. `X-EMS-Signature`.
    pub(crate) fn query_param(&self, suffix: &str) -> String {
        format!("X-{}-{}", self.vendor_key, suffix)
    }
}

/// An API secret. Its `Debug` output is redacted so it cannot leak through logs
/// or error reports.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself; only key derivation should need it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let secret = Secret::new("very_secure");
        assert!(!format!("{secret:?}").contains("very_secure"));
    }

    #[test]
    fn only_sha256_and_sha512_are_accepted() {
        assert_eq!("SHA512".parse::<HashAlgo>(), Ok(HashAlgo::Sha512));
        assert_eq!(
            "SHA999".parse::<HashAlgo>(),
            Err(EscherError::UnsupportedHash)
        );
    }

    #[test]
    fn the_default_config_is_broadsides() {
        assert_eq!(EscherConfig::default().algorithm(), "EMS-HMAC-SHA256");
    }
}
