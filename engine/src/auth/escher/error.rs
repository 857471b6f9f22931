//! Why a request could not be signed or authenticated. The texts are the ones the
//! Escher test cases and other Escher libraries use, so clients see familiar errors.

use thiserror::Error;

/// Every way signing or verification can refuse a request. Header names inside
/// are lower case, as in the reference implementations' messages.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EscherError {
    /// The method is not an HTTP method, so there is nothing sane to canonicalize.
    #[error("The request method is invalid")]
    InvalidMethod,
    /// Requests carry the path and query as sent; an absolute URL means the
    /// caller handed us the wrong thing and the host would not be signed.
    #[error("The request url shouldn't contains http or https")]
    AbsoluteUrl,
    /// `presign_url` needs `scheme://host/path` to know the host it signs.
    #[error("The URL to pre-sign must be absolute")]
    NotAbsoluteUrl,
    /// A header the scheme needs (auth, date or host) is absent.
    #[error("The {0} header is missing")]
    HeaderMissing(String),
    /// The auth header (or the pre-signed query parameters) is malformed.
    #[error("Could not parse auth header")]
    UnparsableAuthHeader,
    /// The date header is neither RFC 1123 nor `YYYYMMDDTHHMMSSZ`.
    #[error("Could not parse date header")]
    UnparsableDateHeader,
    /// The algorithm names a hash other than SHA256 or SHA512.
    #[error("Only SHA256 and SHA512 hash algorithms are allowed")]
    UnsupportedHash,
    /// A header that must be covered by the signature is not.
    #[error("The {0} header is not signed")]
    HeaderNotSigned(String),
    /// The credential was issued for another service or region.
    #[error("The credential scope is invalid")]
    InvalidScope,
    /// The credential's day differs from the request date's day.
    #[error("The credential date does not match with the request date")]
    DateMismatch,
    /// The request is too old, from the future, or its pre-signed URL expired.
    #[error("The request date is not within the accepted time range")]
    OutOfTimeRange,
    /// The key id is unknown (or, when signing, no key or secret was given).
    #[error("Invalid Escher key")]
    InvalidKey,
    /// The request was altered or signed with another secret.
    #[error("The signatures do not match")]
    SignatureMismatch,
}

impl EscherError {
    /// A stable machine-readable code for the JSON error body of the HTTP layer.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidMethod => "invalid_method",
            Self::AbsoluteUrl | Self::NotAbsoluteUrl => "invalid_url",
            Self::HeaderMissing(_) => "header_missing",
            Self::UnparsableAuthHeader => "unparsable_auth_header",
            Self::UnparsableDateHeader => "unparsable_date_header",
            Self::UnsupportedHash => "unsupported_hash",
            Self::HeaderNotSigned(_) => "header_not_signed",
            Self::InvalidScope => "invalid_scope",
            Self::DateMismatch => "date_mismatch",
            Self::OutOfTimeRange => "out_of_time_range",
            Self::InvalidKey => "invalid_key",
            Self::SignatureMismatch => "signature_mismatch",
        }
    }
}
