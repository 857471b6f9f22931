//! The server side: authenticating a signed request or a pre-signed GET URL and
//! telling which key signed it.

use chrono::{DateTime, NaiveDateTime, Utc};
use subtle::ConstantTimeEq;

use super::canonical::{
    LONG_DATE, Request, SHORT_DATE, UNSIGNED_PAYLOAD, canonical_request_with, signature, split_url,
    string_to_sign_with,
};
use super::config::{EscherConfig, HashAlgo, Secret};
use super::encoding::{form_decode, query_pairs};
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
    let canonical = canonical_request_with(claim.hash, &signed_request, &claim.signed_headers);
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
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::escher::sign::{presign_url, sign_request};

    const KEY: &str = "tenant-key";

    fn secret() -> Secret {
        Secret::new("very_secure")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test input is valid")
            .with_timezone(&Utc)
    }

    fn lookup(key: &str) -> Option<Secret> {
        (key == KEY).then(secret)
    }

    /// Headers of a POST signed at `when` with Broadside's config.
    fn signed_headers(when: DateTime<Utc>) -> Vec<(String, String)> {
        let mut headers = vec![("Host".to_owned(), "api.example.com".to_owned())];
        let request = Request {
            method: "POST",
            url: "/v1/campaigns?x=1",
            headers: &headers,
            body: b"{}",
        };
        let added = sign_request(
            &EscherConfig::default(),
            KEY,
            &secret(),
            &request,
            &["host"],
            when,
        )
        .expect("test input is valid");
        headers.extend(added);
        headers
    }

    fn verify(
        headers: &[(String, String)],
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<String, EscherError> {
        let request = Request {
            method: "POST",
            url: "/v1/campaigns?x=1",
            headers,
            body,
        };
        authenticate(&EscherConfig::default(), &request, lookup, &[], now)
    }

    /// Replaces the value of `name` (case-insensitive), or removes it on `None`.
    fn with(
        headers: &[(String, String)],
        name: &str,
        value: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut out: Vec<_> = headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
            .cloned()
            .collect();
        if let Some(v) = value {
            out.push((name.to_owned(), v.to_owned()));
        }
        out
    }

    fn auth_of(headers: &[(String, String)]) -> String {
        headers
            .iter()
            .find(|(n, _)| n == "X-EMS-Auth")
            .expect("test input is valid")
            .1
            .clone()
    }

    const NOW: &str = "2024-03-01T12:00:00Z";

    #[test]
    fn a_request_signed_by_sign_request_authenticates_as_its_key() {
        let headers = signed_headers(at(NOW));
        assert_eq!(verify(&headers, b"{}", at(NOW)), Ok(KEY.to_owned()));
    }

    #[test]
    fn a_tampered_body_does_not_match_the_signature() {
        let headers = signed_headers(at(NOW));
        let err = verify(&headers, b"{\"evil\":1}", at(NOW)).expect_err("must be refused");
        assert_eq!(err.to_string(), "The signatures do not match");
    }

    #[test]
    fn errors_name_the_configured_headers_in_lower_case() {
        let headers = with(&signed_headers(at(NOW)), "X-EMS-Date", None);
        let err = verify(&headers, b"{}", at(NOW)).expect_err("must be refused");
        assert_eq!(err.to_string(), "The x-ems-date header is missing");
    }

    #[test]
    fn a_missing_auth_header_is_reported_before_a_missing_date_header() {
        let headers = with(
            &with(&signed_headers(at(NOW)), "X-EMS-Auth", None),
            "X-EMS-Date",
            None,
        );
        assert_eq!(
            verify(&headers, b"{}", at(NOW)),
            Err(EscherError::HeaderMissing("x-ems-auth".into()))
        );
    }

    #[test]
    fn an_unsigned_date_header_is_reported_before_a_wrong_scope() {
        let headers = signed_headers(at(NOW));
        let auth = auth_of(&headers)
            .replace("host;x-ems-date", "host")
            .replace("eu/broadside", "us/other");
        let headers = with(&headers, "X-EMS-Auth", Some(&auth));
        assert_eq!(
            verify(&headers, b"{}", at(NOW)),
            Err(EscherError::HeaderNotSigned("x-ems-date".into()))
        );
    }

    #[test]
    fn a_wrong_scope_is_reported_before_a_credential_date_mismatch() {
        let headers = signed_headers(at(NOW));
        let auth = auth_of(&headers).replace("/20240301/eu/broadside", "/20240302/us/broadside");
        let headers = with(&headers, "X-EMS-Auth", Some(&auth));
        assert_eq!(
            verify(&headers, b"{}", at(NOW)),
            Err(EscherError::InvalidScope)
        );
    }

    #[test]
    fn a_credential_date_mismatch_is_reported_before_the_time_window() {
        let headers = signed_headers(at(NOW));
        let auth = auth_of(&headers).replace("/20240301/", "/20240302/");
        let headers = with(&headers, "X-EMS-Auth", Some(&auth));
        let next_week = at("2024-03-08T12:00:00Z");
        assert_eq!(
            verify(&headers, b"{}", next_week),
            Err(EscherError::DateMismatch)
        );
    }

    #[test]
    fn a_stale_request_is_reported_before_an_unknown_key() {
        let headers = signed_headers(at(NOW));
        let auth = auth_of(&headers).replace(KEY, "unknown");
        let headers = with(&headers, "X-EMS-Auth", Some(&auth));
        let later = at("2024-03-01T12:05:01Z");
        assert_eq!(
            verify(&headers, b"{}", later),
            Err(EscherError::OutOfTimeRange)
        );
        assert_eq!(
            verify(&headers, b"{}", at(NOW)),
            Err(EscherError::InvalidKey)
        );
    }

    #[test]
    fn the_clock_skew_is_allowed_either_way() {
        let headers = signed_headers(at(NOW));
        assert!(verify(&headers, b"{}", at("2024-03-01T11:55:00Z")).is_ok());
        assert!(verify(&headers, b"{}", at("2024-03-01T12:04:59Z")).is_ok());
        assert_eq!(
            verify(&headers, b"{}", at("2024-03-01T12:05:00Z")),
            Err(EscherError::OutOfTimeRange)
        );
    }

    #[test]
    fn an_unknown_key_is_reported_before_a_wrong_signature() {
        let headers = signed_headers(at(NOW));
        let auth = auth_of(&headers).replace(KEY, "unknown");
        let headers = with(&headers, "X-EMS-Auth", Some(&auth));
        assert_eq!(
            verify(&headers, b"tampered", at(NOW)),
            Err(EscherError::InvalidKey)
        );
    }

    #[test]
    fn a_mandatory_header_must_be_signed() {
        let headers = with(&signed_headers(at(NOW)), "X-Tenant", Some("acme"));
        let request = Request {
            method: "POST",
            url: "/v1/campaigns?x=1",
            headers: &headers,
            body: b"{}",
        };
        let result = authenticate(
            &EscherConfig::default(),
            &request,
            lookup,
            &["X-Tenant"],
            at(NOW),
        );
        assert_eq!(result, Err(EscherError::HeaderNotSigned("x-tenant".into())));
    }

    #[test]
    fn a_pre_signed_url_authenticates_until_it_expires() {
        let config = EscherConfig::default();
        let url = presign_url(
            &config,
            KEY,
            &secret(),
            "https://a.com:8443/f?id=7#top",
            Duration::from_secs(60),
            at(NOW),
        )
        .expect("test input is valid");
        let path = url
            .trim_start_matches("https://a.com:8443")
            .trim_end_matches("#top");
        let headers = [("Host".to_owned(), "a.com:8443".to_owned())];
        let request = Request {
            method: "GET",
            url: path,
            headers: &headers,
            body: b"",
        };
        let check = |now| authenticate(&config, &request, lookup, &[], at(now));
        assert_eq!(check("2024-03-01T12:05:59Z"), Ok(KEY.to_owned()));
        assert_eq!(
            check("2024-03-01T12:06:00Z"),
            Err(EscherError::OutOfTimeRange)
        );
        let tampered = path.replace("id=7", "id=8");
        let request = Request {
            url: &tampered,
            ..request
        };
        let result = authenticate(&config, &request, lookup, &[], at(NOW));
        assert_eq!(result, Err(EscherError::SignatureMismatch));
    }

    #[test]
    fn http_dates_are_parsed_ignoring_a_wrong_weekday() {
        assert_eq!(
            parse_date("Mon, 09 Sep 2011 23:36:00 GMT"),
            Ok(at("2011-09-09T23:36:00Z"))
        );
        assert_eq!(
            parse_date("20110909T233600Z"),
            Ok(at("2011-09-09T23:36:00Z"))
        );
        assert_eq!(
            parse_date("yesterday"),
            Err(EscherError::UnparsableDateHeader)
        );
    }
}
