//! Unit tests of verification beyond the shared Escher test cases.

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
fn with(headers: &[(String, String)], name: &str, value: Option<&str>) -> Vec<(String, String)> {
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
