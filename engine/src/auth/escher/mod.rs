//! Escher request signing and verification (HMAC, derived from AWS Signature V4):
//! canonicalization, signing, pre-signed URLs and authentication, as ESCHER.md
//! specifies. Framework-agnostic: the HTTP layer adapts its requests to
//! [`Request`].

mod canonical;
mod config;
mod encoding;
mod error;
mod sign;
mod verify;

pub use canonical::{Request, canonical_request, string_to_sign};
pub use config::{BodyHasher, DEFAULT_PRESIGN_EXPIRY, EscherConfig, HashAlgo, Secret};
pub use error::EscherError;
pub use sign::{presign_url, sign_request, sign_request_prehashed, signed_header_names};
pub use verify::{ClaimedKey, authenticate, authenticate_prehashed, claimed_key};
