//! The server side: authenticating a signed request or a pre-signed GET URL and
//! telling which key signed it.

use chrono::{DateTime, NaiveDateTime, Utc};
use subtle::ConstantTimeEq;

use super::canonical::{
    LONG_DATE, Request, SHORT_DATE, UNSIGNED_PAYLOAD, canonical_request_hashed,
    canonical_request_with, signature, split_url, string_to_sign_with,
};
use super::config::{EscherConfig, HashAlgo, Secret};
use super::encoding::{form_decode, hex, query_pairs};
use super::error::EscherError;

/// What a request claims about its signature, from the auth and date headers or
/// from the pre-signed URL's query parameters.
#[derive(Debug)]
struct Claim {
    hash: HashAlgo,
    key_id: String,
    credential_day: String,
    scope: String,
    signed_headers: Vec<String>,
    signature: String,
    date: DateTime<Utc>,
    /// Zero for header signatures: they are valid only within the clock skew.
    expires_secs: u64,
}

/// Authenticates `request` at `now` and returns the key id that signed it.
/// `key_lookup` maps a key id to its secret. Checks run in the order ESCHER.md
/// gives, so clients see the same error other Escher servers would report.
pub fn authenticate<F>(
    config: &EscherConfig,
    request: &Request<'_>,
    key_lookup: F,
    mandatory_signed_headers: &[&str],
    now: DateTime<Utc>,
) -> Result<String, EscherError>
where
    F: Fn(&str) -> Option<Secret>,
{
    verify(
        config,
        request,
        None,
        key_lookup,
        mandatory_signed_headers,
        now,
    )
}

/// Like [`authenticate`] for a body that was hashed as it streamed in:
/// `body_digest` is the digest, with the algorithm [`claimed_key`] reported, of
/// the whole body; `request.body` is ignored. Pre-signed URLs (GET, no body) are
/// verified as usual.
pub fn authenticate_prehashed<F>(
    config: &EscherConfig,
    request: &Request<'_>,
    body_digest: &[u8],
    key_lookup: F,
    mandatory_signed_headers: &[&str],
    now: DateTime<Utc>,
) -> Result<String, EscherError>
where
    F: Fn(&str) -> Option<Secret>,
{
    verify(
        config,
        request,
        Some(body_digest),
        key_lookup,
        mandatory_signed_headers,
        now,
    )
}

/// Who a request says signed it, and with which hash; nothing is verified yet.
/// Servers use it to fetch the key's secret (asynchronously) before calling
/// [`authenticate`], and to pick the hasher of a streamed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedKey {
    pub key_id: String,
    pub hash: HashAlgo,
}

/// Parses the auth header (or the pre-signed query) far enough to name the key.
/// Fails with the error `authenticate` would report for the same request.
pub fn claimed_key(
    config: &EscherConfig,
    request: &Request<'_>,
) -> Result<ClaimedKey, EscherError> {
    request.validate()?;
    let claim = if is_presigned(config, request) {
        claim_from_query(config, request)?
    } else {
        claim_from_headers(config, request)?
    };
    Ok(ClaimedKey {
        key_id: claim.key_id,
        hash: claim.hash,
    })
}

fn verify<F>(
    config: &EscherConfig,
    request: &Request<'_>,
    body_digest: Option<&[u8]>,
    key_lookup: F,
    mandatory_signed_headers: &[&str],
    now: DateTime<Utc>,
) -> Result<String, EscherError>
where
    F: Fn(&str) -> Option<Secret>,
{
    request.validate()?;
    let presigned = is_presigned(config, request);
    let claim = if presigned {
        claim_from_query(config, request)?
    } else {
        claim_from_headers(config, request)?
    };
    check_signed_headers(config, &claim, presigned, mandatory_signed_headers)?;
    if claim.scope != config.credential_scope {
        return Err(EscherError::InvalidScope);
    }
    if claim.credential_day != claim.date.format(SHORT_DATE).to_string() {
        return Err(EscherError::DateMismatch);
    }
    check_time_window(config, &claim, now)?;
    let secret = key_lookup(&claim.key_id).ok_or(EscherError::InvalidKey)?;

    let stripped;
    let signed_request = if presigned {
        stripped = strip_query_param(request.url, &config.query_param("Signature"));
        Request {
            url: &stripped,
            body: UNSIGNED_PAYLOAD,
            ..*request
        }
    } else {
        *request
    };
    let canonical = match body_digest {
        Some(digest) if !presigned => {
            canonical_request_hashed(&signed_request, &claim.signed_headers, &hex(digest))
        }
        _ => canonical_request_with(claim.hash, &signed_request, &claim.signed_headers),
    };
    let to_sign = string_to_sign_with(config, claim.hash, &canonical, claim.date);
    let expected = signature(config, claim.hash, &secret, claim.date, &to_sign);
    // Constant time, so response timing does not reveal how much of a forged
    // signature was right.
    if bool::from(expected.as_bytes().ct_eq(claim.signature.as_bytes())) {
        Ok(claim.key_id)
    } else {
        Err(EscherError::SignatureMismatch)
    }
}

/// Pre-signed URLs are GET requests carrying `X-<vendor>-Signature`.
fn is_presigned(config: &EscherConfig, request: &Request<'_>) -> bool {
    let name = config.query_param("Signature");
    request.method.eq_ignore_ascii_case("GET")
        && query_pairs(split_url(request.url).1)
            .iter()
            .any(|(k, _)| k.as_slice() == name.as_bytes())
}

fn claim_from_headers(config: &EscherConfig, request: &Request<'_>) -> Result<Claim, EscherError> {
    let auth = request
        .header(&config.auth_header_name)
        .ok_or_else(|| missing(&config.auth_header_name))?;
    let (algorithm, rest) = auth
        .split_once(' ')
        .ok_or(EscherError::UnparsableAuthHeader)?;
    let hash = parse_algorithm(config, algorithm)?;
    let rest = rest
        .strip_prefix("Credential=")
        .ok_or(EscherError::UnparsableAuthHeader)?;
    let (credential, rest) = rest
        .split_once(", SignedHeaders=")
        .ok_or(EscherError::UnparsableAuthHeader)?;
    let (signed, sig) = rest
        .split_once(", Signature=")
        .ok_or(EscherError::UnparsableAuthHeader)?;
    let (key_id, credential_day, scope) = parse_credential(credential)?;
    let signed_headers = parse_signed_headers(signed)?;
    let signature = parse_signature(sig)?;

    let date = request
        .header(&config.date_header_name)
        .ok_or_else(|| missing(&config.date_header_name))?;
    let date = parse_date(date)?;
    if request.header("host").is_none() {
        return Err(missing("host"));
    }
    Ok(Claim {
        hash,
        key_id,
        credential_day,
        scope,
        signed_headers,
        signature,
        date,
        expires_secs: 0,
    })
}

fn claim_from_query(config: &EscherConfig, request: &Request<'_>) -> Result<Claim, EscherError> {
    let pairs = query_pairs(split_url(request.url).1);
    let param = |suffix: &str| -> Result<String, EscherError> {
        let name = config.query_param(suffix);
        pairs
            .iter()
            .find(|(k, _)| k.as_slice() == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .ok_or(EscherError::UnparsableAuthHeader)
    };
    let hash = parse_algorithm(config, &param("Algorithm")?)?;
    let (key_id, credential_day, scope) = parse_credential(&param("Credentials")?)?;
    let date = parse_date(&param("Date")?)?;
    let expires_secs = param("Expires")?
        .parse::<u64>()
        .map_err(|_| EscherError::UnparsableAuthHeader)?;
    let signed_headers = parse_signed_headers(&param("SignedHeaders")?)?;
    let signature = parse_signature(&param("Signature")?)?;
    if request.header("host").is_none() {
        return Err(missing("host"));
    }
    Ok(Claim {
        hash,
        key_id,
        credential_day,
        scope,
        signed_headers,
        signature,
        date,
        expires_secs,
    })
}

fn missing(header: &str) -> EscherError {
    EscherError::HeaderMissing(header.to_ascii_lowercase())
}

/// `<prefix>-HMAC-SHA<digits>`; a well-formed name with another hash is a
/// distinct error so clients learn what to change.
fn parse_algorithm(config: &EscherConfig, algorithm: &str) -> Result<HashAlgo, EscherError> {
    let hash = algorithm
        .strip_prefix(config.algo_prefix.as_str())
        .and_then(|rest| rest.strip_prefix("-HMAC-"))
        .ok_or(EscherError::UnparsableAuthHeader)?;
    let digits = hash
        .strip_prefix("SHA")
        .ok_or(EscherError::UnparsableAuthHeader)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EscherError::UnparsableAuthHeader);
    }
    hash.parse()
}

/// `<key id>/<YYYYMMDD>/<scope>`; the scope may hold `/` and even spaces.
fn parse_credential(credential: &str) -> Result<(String, String, String), EscherError> {
    let (key_id, rest) = credential
        .split_once('/')
        .ok_or(EscherError::UnparsableAuthHeader)?;
    let (day, scope) = rest
        .split_once('/')
        .ok_or(EscherError::UnparsableAuthHeader)?;
    let day_ok = day.len() == 8 && day.bytes().all(|b| b.is_ascii_digit());
    if key_id.is_empty() || !day_ok || scope.is_empty() {
        return Err(EscherError::UnparsableAuthHeader);
    }
    Ok((key_id.to_owned(), day.to_owned(), scope.to_owned()))
}

fn parse_signed_headers(list: &str) -> Result<Vec<String>, EscherError> {
    let names: Vec<String> = list.split(';').map(str::to_owned).collect();
    if names
        .iter()
        .any(|n| n.is_empty() || n.contains(char::is_whitespace))
    {
        return Err(EscherError::UnparsableAuthHeader);
    }
    Ok(names)
}

fn parse_signature(sig: &str) -> Result<String, EscherError> {
    if sig.is_empty() || !sig.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(EscherError::UnparsableAuthHeader);
    }
    Ok(sig.to_owned())
}

/// Accepts `YYYYMMDDTHHMMSSZ` and the HTTP date format. The weekday of an HTTP
/// date is ignored rather than checked: Escher clients in other languages sign
/// whatever text they were given, and the test cases carry wrong weekdays.
fn parse_date(value: &str) -> Result<DateTime<Utc>, EscherError> {
    let value = value.trim();
    if let Ok(date) = NaiveDateTime::parse_from_str(value, LONG_DATE) {
        return Ok(date.and_utc());
    }
    let without_weekday = value.split_once(", ").map_or(value, |(_, rest)| rest);
    NaiveDateTime::parse_from_str(without_weekday, "%d %b %Y %H:%M:%S GMT")
        .map(|date| date.and_utc())
        .or_else(|_| DateTime::parse_from_rfc2822(value).map(|date| date.with_timezone(&Utc)))
        .map_err(|_| EscherError::UnparsableDateHeader)
}

/// `host` and (for header signatures) the date header are always required, on
/// top of the caller's mandatory headers.
fn check_signed_headers(
    config: &EscherConfig,
    claim: &Claim,
    presigned: bool,
    mandatory: &[&str],
) -> Result<(), EscherError> {
    let date_header = (!presigned).then_some(config.date_header_name.as_str());
    let required = ["host"]
        .into_iter()
        .chain(date_header)
        .chain(mandatory.iter().copied());
    for name in required {
        if !claim
            .signed_headers
            .iter()
            .any(|s| s.eq_ignore_ascii_case(name))
        {
            return Err(EscherError::HeaderNotSigned(name.to_ascii_lowercase()));
        }
    }
    Ok(())
}

/// Valid from `date − skew` up to, not including, `date + expires + skew`.
fn check_time_window(
    config: &EscherConfig,
    claim: &Claim,
    now: DateTime<Utc>,
) -> Result<(), EscherError> {
    let skew = i64::try_from(config.clock_skew.as_millis()).unwrap_or(i64::MAX);
    let expires = i64::try_from(claim.expires_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let date = claim.date.timestamp_millis();
    let now = now.timestamp_millis();
    if date.saturating_sub(skew) <= now && now < date.saturating_add(expires).saturating_add(skew) {
        Ok(())
    } else {
        Err(EscherError::OutOfTimeRange)
    }
}

/// The URL without the signature parameter, which cannot sign itself.
fn strip_query_param(url: &str, name: &str) -> String {
    let (path, query) = split_url(url);
    let kept: Vec<&str> = query
        .split('&')
        .filter(|part| {
            let key = part.split_once('=').map_or(*part, |(k, _)| k);
            form_decode(key) != name.as_bytes()
        })
        .collect();
    format!("{path}?{}", kept.join("&"))
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
