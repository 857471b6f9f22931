//! API keys: generating a key id and secret, and sealing the secret with
//! AES-256-GCM under the installation's master key, so a copy of the database
//! alone does not let anyone sign requests.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::escher::Secret;
use crate::model::TenantName;

/// Bytes of randomness in a secret: 256 bits, the HMAC-SHA256 block's worth.
const SECRET_BYTES: usize = 32;
/// Bytes of randomness in a key id: enough that ids never collide, short enough
/// to read in logs (ids are not secret).
const KEY_ID_RANDOM_BYTES: usize = 8;
/// Name of the generated master key file under the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the master key must be 32 bytes in base64 ({0})")]
    MasterKeyFormat(String),
    #[error("the master key file {path}: {source}")]
    MasterKeyFile {
        path: String,
        source: std::io::Error,
    },
    /// The sealed secret was altered, belongs to another key id, or was sealed
    /// under a different master key.
    #[error("the secret of API key {0} cannot be opened with this master key")]
    Unseal(String),
    #[error("the system random generator failed")]
    Random,
}

/// The key that seals API secrets. `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Parses the configured form: 32 bytes, standard base64.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| KeyError::MasterKeyFormat(e.to_string()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| KeyError::MasterKeyFormat(format!("{} bytes", b.len())))?;
        Ok(Self(bytes))
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self(random()?))
    }

    /// The configured key if there is one (`configured` non-empty); otherwise the
    /// one in `<data_dir>/master.key`, created (mode 0600) on first use. The file
    /// keeps an embedded installation working with no setup, but a key beside the
    /// data it protects protects little, hence the warning.
    pub fn configured_or_file(configured: &str, data_dir: &Path) -> Result<Self, KeyError> {
        if !configured.trim().is_empty() {
            return Self::from_base64(configured);
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        let file_error = |source| KeyError::MasterKeyFile {
            path: path.display().to_string(),
            source,
        };
        tracing::warn!(
            path = %path.display(),
            "no api.master_key configured: using a key file beside the data; \
             production should set BROADSIDE_API__MASTER_KEY"
        );
        match std::fs::read_to_string(&path) {
            Ok(text) => return Self::from_base64(&text),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_error(e)),
            Err(_) => {}
        }
        let key = Self::generate()?;
        std::fs::create_dir_all(data_dir).map_err(file_error)?;
        match write_private(&path, STANDARD.encode(key.0).as_bytes()) {
            Ok(()) => Ok(key),
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::from_base64(&std::fs::read_to_string(&path).map_err(file_error)?)
            }
            Err(e) => Err(file_error(e)),
        }
    }

    fn aead(&self) -> LessSafeKey {
        // Cannot fail: the key has exactly AES-256's length.
        #[allow(clippy::expect_used)]
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("a 32-byte AES key"))
    }

    /// `nonce || ciphertext || tag`. The key id is the associated data, so a
    /// sealed secret copied onto another key's row does not open.
    pub fn seal(&self, key_id: &str, secret: &Secret) -> Result<Vec<u8>, KeyError> {
        let nonce: [u8; NONCE_LEN] = random()?;
        let mut sealed = secret.expose().as_bytes().to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key_id.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| KeyError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, key_id: &str, sealed: &[u8]) -> Result<Secret, KeyError> {
        let unseal = || KeyError::Unseal(key_id.to_owned());
        if sealed.len() < NONCE_LEN {
            return Err(unseal());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unseal())?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(key_id.as_bytes()), &mut buffer)
            .map_err(|_| unseal())?;
        let text = std::str::from_utf8(plain).map_err(|_| unseal())?;
        Ok(Secret::new(text))
    }
}

/// A key as created: the id and the secret, shown to the operator once.
#[derive(Debug)]
pub struct NewApiKey {
    pub key_id: String,
    pub secret: Secret,
}

impl NewApiKey {
    /// `<tenant>_<16 hex digits>` and 32 random bytes in base64url. The tenant in
    /// the id helps operators; authorization never trusts it (the stored row's
    /// tenant does).
    pub fn generate(tenant: &TenantName) -> Result<Self, KeyError> {
        let id: [u8; KEY_ID_RANDOM_BYTES] = random()?;
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let secret: [u8; SECRET_BYTES] = random()?;
        Ok(Self {
            key_id: format!("{tenant}_{hex}"),
            secret: Secret::new(URL_SAFE_NO_PAD.encode(secret)),
        })
    }
}

fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| KeyError::Random)?;
    Ok(bytes)
}

/// Creates `path` readable by its owner only; fails if it exists.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantName {
        TenantName::parse("acme").expect("valid")
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_id_and_master_key() {
        let master = MasterKey::generate().expect("key");
        let key = NewApiKey::generate(&tenant()).expect("key");

        let sealed = master.seal(&key.key_id, &key.secret).expect("seals");

        assert_eq!(
            master.open(&key.key_id, &sealed).expect("opens"),
            key.secret
        );
        assert!(master.open("acme_other", &sealed).is_err());
        let other = MasterKey::generate().expect("key");
        assert!(other.open(&key.key_id, &sealed).is_err());
        let plain = key.secret.expose().as_bytes();
        assert!(!sealed.windows(plain.len()).any(|w| w == plain));
    }

    #[test]
    fn key_ids_name_the_tenant_and_secrets_carry_32_random_bytes() {
        let a = NewApiKey::generate(&tenant()).expect("key");
        let b = NewApiKey::generate(&tenant()).expect("key");

        assert!(a.key_id.starts_with("acme_") && a.key_id.len() == 5 + 16);
        assert_ne!(a.key_id, b.key_id);
        let bytes = URL_SAFE_NO_PAD
            .decode(a.secret.expose())
            .expect("base64url");
        assert_eq!(bytes.len(), 32);
        assert!(!format!("{a:?}").contains(a.secret.expose()));
    }

    #[test]
    fn without_a_configured_key_one_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");

        let first = MasterKey::configured_or_file("", dir.path()).expect("created");
        let second = MasterKey::configured_or_file("", dir.path()).expect("read back");

        assert_eq!(first.0, second.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(MASTER_KEY_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_configured_key_must_be_32_bytes_of_base64() {
        let dir = tempfile::tempdir().expect("tempdir");

        assert!(MasterKey::configured_or_file("c2hvcnQ=", dir.path()).is_err());
        let good = STANDARD.encode([7u8; 32]);
        assert!(MasterKey::configured_or_file(&good, dir.path()).is_ok());
        assert!(!dir.path().join(MASTER_KEY_FILE).exists());
    }
}
