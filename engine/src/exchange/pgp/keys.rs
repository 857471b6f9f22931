//! The keys: generating a tenant's key pair and keeping its secret half sealed,
//! and checking a customer's public key before anything is encrypted to it.

use std::time::{Duration, SystemTime};

use pgp::composed::{
    Deserializable, EncryptionCaps, KeyType, SecretKeyParamsBuilder, SignedPublicKey,
    SignedPublicSubKey, SignedSecretKey, SubkeyParamsBuilder,
};
use pgp::crypto::ecc_curve::ECCCurve;
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::packet::SignatureType;
use pgp::types::{CompressionAlgorithm, KeyDetails};
use pgp_rand::OsRng;

use super::PgpError;
use crate::auth::escher::Secret;
use crate::auth::keys::MasterKey;
use crate::model::{TenantId, TenantName};
use crate::store::Store;

/// A fresh key pair for `tenant`: an Ed25519 primary key and a Curve25519
/// encryption subkey, the shape every GnuPG since 2.1 reads and that takes
/// milliseconds to make. The preferences name only what GnuPG 2.2 and this crate
/// both speak (SEIPD v1, AES, ZLIB/ZIP), so senders pick nothing we cannot read.
pub fn generate_secret_key(tenant: &TenantName) -> Result<SignedSecretKey, PgpError> {
    let failed = |e: &dyn std::fmt::Display| PgpError::Encrypt(format!("key generation: {e}"));
    let subkey = SubkeyParamsBuilder::default()
        .key_type(KeyType::ECDH(ECCCurve::Curve25519Legacy))
        .can_encrypt(EncryptionCaps::All)
        .build()
        .map_err(|e| failed(&e))?;
    let params = SecretKeyParamsBuilder::default()
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id(format!("Broadside tenant {tenant}"))
        .preferred_symmetric_algorithms(
            [
                SymmetricKeyAlgorithm::AES256,
                SymmetricKeyAlgorithm::AES192,
                SymmetricKeyAlgorithm::AES128,
            ]
            .into_iter()
            .collect(),
        )
        .preferred_hash_algorithms(
            [HashAlgorithm::Sha256, HashAlgorithm::Sha512]
                .into_iter()
                .collect(),
        )
        .preferred_compression_algorithms(
            [CompressionAlgorithm::ZLIB, CompressionAlgorithm::ZIP]
                .into_iter()
                .collect(),
        )
        .subkeys(vec![subkey])
        .build()
        .map_err(|e| failed(&e))?;
    params.generate(OsRng).map_err(|e| failed(&e))
}

/// Reads and stores tenants' keys; holds the master key that seals them.
#[derive(Debug, Clone)]
pub struct TenantKeys {
    master: MasterKey,
}

impl TenantKeys {
    pub fn new(master: MasterKey) -> Self {
        Self { master }
    }

    /// The tenant's secret key, if it has one.
    pub async fn secret_key(
        &self,
        store: &dyn Store,
        tenant: TenantId,
    ) -> Result<SignedSecretKey, PgpError> {
        let record = store.pgp_keys(tenant).await?;
        let sealed = record.sealed_secret.ok_or(PgpError::NoTenantKey)?;
        let armored = self.master.open(&seal_label(tenant), &sealed)?;
        let (key, _) = SignedSecretKey::from_string(armored.expose())
            .map_err(|e| PgpError::Sealed(format!("the stored key does not parse: {e}")))?;
        Ok(key)
    }

    /// The tenant's public key, generating the pair on first need.
    pub async fn public_key(
        &self,
        store: &dyn Store,
        tenant: TenantId,
        name: &TenantName,
    ) -> Result<TenantPublicKey, PgpError> {
        if let Some(public) = store.pgp_keys(tenant).await?.public_key {
            return TenantPublicKey::new(public, false);
        }
        let secret = generate_secret_key(name)?;
        let armor = |r: pgp::errors::Result<String>| {
            r.map_err(|e| PgpError::Encrypt(format!("armoring the key: {e}")))
        };
        let secret_text = armor(secret.to_armored_string(Default::default()))?;
        let public = armor(SignedPublicKey::from(secret).to_armored_string(Default::default()))?;
        let sealed = self
            .master
            .seal(&seal_label(tenant), &Secret::new(secret_text))?;
        let created = store.init_pgp_key(tenant, &sealed, &public).await?;
        // Lost a race with another process: use the key it stored.
        match created {
            true => TenantPublicKey::new(public, true),
            false => {
                let stored = store.pgp_keys(tenant).await?.public_key;
                TenantPublicKey::new(stored.ok_or(PgpError::NoTenantKey)?, false)
            }
        }
    }

    /// The customer's key exports are encrypted to, if one is set.
    pub async fn customer_key(
        &self,
        store: &dyn Store,
        tenant: TenantId,
    ) -> Result<Option<CustomerKey>, PgpError> {
        match store.pgp_keys(tenant).await?.customer_key {
            Some(text) => CustomerKey::parse(text.as_bytes()).map(Some),
            None => Ok(None),
        }
    }
}

/// A tenant's public key, as customers get it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TenantPublicKey {
    /// ASCII armor, for `gpg --import`.
    pub armored: String,
    /// For the customer to check what they imported.
    pub fingerprint: String,
    /// Whether this request generated the key pair (worth an audit entry).
    #[serde(skip)]
    pub created: bool,
}

impl TenantPublicKey {
    fn new(armored: String, created: bool) -> Result<Self, PgpError> {
        let (key, _) = SignedPublicKey::from_string(&armored)
            .map_err(|e| PgpError::Sealed(format!("the stored public key does not parse: {e}")))?;
        Ok(Self {
            fingerprint: format!("{:X}", key.fingerprint()),
            armored,
            created,
        })
    }
}

/// The associated data of a sealed tenant key: a key copied onto another
/// tenant's row does not open.
fn seal_label(tenant: TenantId) -> String {
    format!("pgp-tenant-{}", tenant.0)
}

/// A customer's public key that has an encryption subkey usable now.
#[derive(Debug, Clone)]
pub struct CustomerKey {
    key: SignedPublicKey,
    /// The subkey messages are encrypted to.
    subkey: SignedPublicSubKey,
}

impl CustomerKey {
    /// Parses an armored or binary public key and picks its encryption subkey;
    /// refuses, with the reason, keys that are broken, revoked, expired or that
    /// cannot encrypt.
    pub fn parse(bytes: &[u8]) -> Result<Self, PgpError> {
        let invalid = |reason: String| PgpError::InvalidKey(reason);
        let (key, _) = SignedPublicKey::from_reader_single(bytes)
            .map_err(|e| invalid(format!("not an OpenPGP public key: {e}")))?;
        key.verify_bindings()
            .map_err(|e| invalid(format!("the key's self-signatures do not verify: {e}")))?;
        let now = SystemTime::now();
        let subkey = key
            .public_subkeys
            .iter()
            .filter(|s| usable_for_encryption(s, now))
            .max_by_key(|s| s.key.created_at())
            .cloned()
            .ok_or_else(|| {
                invalid(format!(
                    "key {:X} has no valid encryption subkey (revoked, expired or sign-only)",
                    key.fingerprint()
                ))
            })?;
        Ok(Self { key, subkey })
    }

    /// The key, armored, as stored.
    pub fn to_armored(&self) -> Result<String, PgpError> {
        self.key
            .to_armored_string(Default::default())
            .map_err(|e| PgpError::InvalidKey(format!("cannot armor the key: {e}")))
    }

    /// The primary key's fingerprint, which the customer can compare with theirs.
    pub fn fingerprint(&self) -> String {
        format!("{:X}", self.key.fingerprint())
    }

    pub(super) fn subkey(&self) -> &SignedPublicSubKey {
        &self.subkey
    }
}

/// A subkey whose newest binding signature allows encryption, that is not
/// revoked, not expired and of an algorithm that can encrypt.
fn usable_for_encryption(subkey: &SignedPublicSubKey, now: SystemTime) -> bool {
    let revoked = subkey
        .signatures
        .iter()
        .any(|s| s.typ() == Some(SignatureType::SubkeyRevocation));
    let binding = subkey
        .signatures
        .iter()
        .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
        .max_by_key(|s| s.created().map(|t| t.as_secs()));
    let Some(binding) = binding else {
        return false;
    };
    let flags = binding.key_flags();
    let created: SystemTime = subkey.key.created_at().into();
    let expired = binding
        .key_expiration_time()
        .filter(|d| d.as_secs() > 0)
        .is_some_and(|d| created + Duration::from(d) <= now);
    !revoked
        && !expired
        && (flags.encrypt_comms() || flags.encrypt_storage())
        && subkey.key.algorithm().can_encrypt()
}
