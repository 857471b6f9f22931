//! OpenPGP for the file exchange: each tenant's own key pair (imports arrive
//! encrypted to it), the customer's public key (exports leave encrypted to it),
//! and the two streams — a decrypting reader that feeds the CSV parser and an
//! encrypting writer that wraps an export file — so that plaintext never touches
//! the disk and a file is never held whole in memory.

mod export_filter;
mod keys;
mod stream;

#[cfg(test)]
mod import_tests;
#[cfg(test)]
mod tests;

pub use export_filter::PgpExportFilter;
pub use keys::{CustomerKey, TenantKeys, TenantPublicKey, generate_secret_key};
pub use stream::{EncryptingWriter, PlainReader, decrypting_reader, encrypting_writer};

use crate::auth::keys::KeyError;
use crate::store::StoreError;

/// File names that mark an encrypted upload.
pub const ENCRYPTED_SUFFIXES: [&str; 3] = [".pgp", ".gpg", ".asc"];

/// Whether `file` is to be decrypted before import.
pub fn is_encrypted_name(file: &str) -> bool {
    ENCRYPTED_SUFFIXES.iter().any(|s| file.ends_with(s))
}

/// The name without its encryption suffix: `list.csv.gpg` → `list.csv`.
pub fn plain_name(file: &str) -> &str {
    ENCRYPTED_SUFFIXES
        .iter()
        .find_map(|s| file.strip_suffix(s))
        .unwrap_or(file)
}

#[derive(Debug, thiserror::Error)]
pub enum PgpError {
    /// The tenant has no key pair yet, so nothing can have been encrypted to it.
    #[error("the tenant has no PGP key yet (`broadside pgp init --tenant <name>` creates one)")]
    NoTenantKey,
    /// The stored secret key does not open with this master key, or is damaged.
    #[error("the tenant's PGP key cannot be opened: {0}")]
    Sealed(String),
    /// A key given to us is unusable; the reason says why.
    #[error("{0}")]
    InvalidKey(String),
    /// A file that cannot be decrypted: not OpenPGP, not for this key, damaged.
    #[error("cannot decrypt: {0}")]
    Decrypt(String),
    #[error("cannot encrypt: {0}")]
    Encrypt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<KeyError> for PgpError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::Unseal(_) => {
                PgpError::Sealed("it was sealed under a different master key or was altered".into())
            }
            e => PgpError::Sealed(e.to_string()),
        }
    }
}
