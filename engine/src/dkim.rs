//! DKIM signing (RFC 6376, RFC 8463): keys are loaded once per sending domain, and
//! each rendered message gets a `DKIM-Signature` header, relaxed/relaxed, signed
//! with aws-lc-rs through mail-auth.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mail_auth::common::crypto::{DkimKey as KeyPair, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, Done};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::Deserialize;

/// Headers covered by the signature. A header absent from a message is still
/// listed: that signs its absence, so nobody can add a Reply-To later without
/// breaking the signature (RFC 6376 5.4).
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Reply-To",
    // RFC 8058 §4: one-click unsubscribe is honoured only when both are signed.
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// Why a key could not be loaded or a message signed. Never includes key material.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("cannot read the DKIM key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the DKIM key for {domain} is not a PEM private key: {reason}")]
    Pem { domain: String, reason: String },
    #[error(
        "the DKIM key for {domain} is not an RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8) key: {reason}"
    )]
    UnsupportedKey { domain: String, reason: String },
    #[error("two DKIM keys are configured for {0}")]
    DuplicateDomain(String),
    #[error("signing for {domain} failed: {reason}")]
    Sign { domain: String, reason: String },
}

/// One configured key, as written in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DkimKeyEntry {
    /// The `d=` domain; messages whose From is in this domain are signed with it.
    pub domain: String,
    /// The `s=` selector: the public key is at `<selector>._domainkey.<domain>`.
    pub selector: String,
    pub private_key_file: PathBuf,
}

/// A private key with the domain and selector it signs for.
pub struct DkimKey {
    domain: String,
    selector: String,
    key: KeyPair,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key itself stays out of logs.
        f.debug_struct("DkimKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl DkimKey {
    /// Parses an RSA key (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`) or an
    /// Ed25519 key (PKCS#8) from PEM.
    pub fn from_pem(domain: &str, selector: &str, pem: &[u8]) -> Result<Self, DkimError> {
        let domain = domain.to_ascii_lowercase();
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| DkimError::Pem {
            domain: domain.clone(),
            reason: e.to_string(),
        })?;
        let key = match der {
            PrivateKeyDer::Pkcs8(pkcs8) => pkcs8_key(pkcs8),
            other => RsaKey::<Sha256>::from_key_der(other)
                .map(KeyPair::Rsa)
                .map_err(|e| e.to_string()),
        }
        .map_err(|reason| DkimError::UnsupportedKey {
            domain: domain.clone(),
            reason,
        })?;
        Ok(Self {
            domain,
            selector: selector.to_owned(),
            key,
        })
    }

    pub fn from_entry(entry: &DkimKeyEntry) -> Result<Self, DkimError> {
        let pem = read(&entry.private_key_file)?;
        Self::from_pem(&entry.domain, &entry.selector, &pem)
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn selector(&self) -> &str {
        &self.selector
    }
}

/// PKCS#8 holds either algorithm; the OID decides, so try RSA first (the common
/// case) and then Ed25519.
fn pkcs8_key(pkcs8: PrivatePkcs8KeyDer<'_>) -> Result<KeyPair, String> {
    let der = pkcs8.secret_pkcs8_der();
    match RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(der.into())) {
        Ok(rsa) => Ok(KeyPair::Rsa(rsa)),
        Err(rsa_error) => Ed25519Key::from_pkcs8_maybe_unchecked_der(der)
            .map(KeyPair::Ed25519)
            .map_err(|ed_error| format!("as RSA: {rsa_error}; as Ed25519: {ed_error}")),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, DkimError> {
    std::fs::read(path).map_err(|source| DkimError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Signs messages for one domain. Built once; `sign` takes `&self`, so render
/// threads share one signer.
pub struct DkimSigner {
    domain: String,
    inner: mail_auth::dkim::DkimSigner<KeyPair, Done>,
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSigner")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl DkimSigner {
    pub fn new(key: DkimKey) -> Self {
        let inner = mail_auth::dkim::DkimSigner::from_key(key.key)
            .domain(key.domain.clone())
            .selector(key.selector)
            .headers(SIGNED_HEADERS.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Self {
            domain: key.domain,
            inner,
        }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Returns `message` with a `DKIM-Signature` header prepended. The message must
    /// be final: any later change to a signed header or the body breaks the signature.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        let signature = self.inner.sign(message).map_err(|e| DkimError::Sign {
            domain: self.domain.clone(),
            reason: e.to_string(),
        })?;
        let header = signature.to_header();
        let mut signed = Vec::with_capacity(header.len() + message.len());
        signed.extend_from_slice(header.as_bytes());
        signed.extend_from_slice(message);
        Ok(signed)
    }
}

/// The signers of all sending domains, looked up by the From domain.
#[derive(Debug, Default)]
pub struct DkimKeys {
    by_domain: HashMap<String, DkimSigner>,
}

impl DkimKeys {
    /// Loads every configured key; one bad key fails start-up rather than sending
    /// unsigned mail for that domain.
    pub fn load(entries: &[DkimKeyEntry]) -> Result<Self, DkimError> {
        let mut keys = Self::default();
        for entry in entries {
            keys.insert(DkimSigner::new(DkimKey::from_entry(entry)?))?;
        }
        Ok(keys)
    }

    pub fn insert(&mut self, signer: DkimSigner) -> Result<(), DkimError> {
        let domain = signer.domain().to_owned();
        if self.by_domain.contains_key(&domain) {
            return Err(DkimError::DuplicateDomain(domain));
        }
        self.by_domain.insert(domain, signer);
        Ok(())
    }

    /// The signer for `domain` (case-insensitive), if one is configured.
    pub fn for_domain(&self, domain: &str) -> Option<&DkimSigner> {
        if domain.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_domain.get(&domain.to_ascii_lowercase())
        } else {
            self.by_domain.get(domain)
        }
    }

    pub fn len(&self) -> usize {
        self.by_domain.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }
}

#[cfg(test)]
#[path = "dkim_tests.rs"]
mod tests;
