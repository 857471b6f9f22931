//! The client side: signing a request with headers and pre-signing a GET URL.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::canonical::{
    LONG_DATE, Request, SHORT_DATE, UNSIGNED_PAYLOAD, canonical_request, canonical_request_hashed,
    normalize_header_names, signature, string_to_sign,
};
use super::config::{EscherConfig, Secret};
use super::encoding::{hex, percent_encode};
use super::error::EscherError;

/// The header names a request will be signed over: the caller's choice plus
/// `host` and the date header, which verification always demands, limited to
/// headers the request has (an absent header cannot be signed).
pub fn signed_header_names<S: AsRef<str>>(
    config: &EscherConfig,
    request: &Request<'_>,
    headers_to_sign: &[S],
) -> Vec<String> {
    let mut names: Vec<&str> = headers_to_sign.iter().map(AsRef::as_ref).collect();
    names.push("host");
    names.push(&config.date_header_name);
    normalize_header_names(&names)
        .into_iter()
        .filter(|name| request.header(name).is_some())
        .collect()
}

/// Signs `request` at `now` and returns the headers to add to it, in order: the
/// date header when the request has none, then the auth header.
pub fn sign_request<S: AsRef<str>>(
    config: &EscherConfig,
    key_id: &str,
    secret: &Secret,
    request: &Request<'_>,
    headers_to_sign: &[S],
    now: DateTime<Utc>,
) -> Result<Vec<(String, String)>, EscherError> {
    sign(config, key_id, secret, request, None, headers_to_sign, now)
}

/// Like [`sign_request`] for a body known only by its digest (`config.hash`),
/// e.g. a file streamed to the server; `request.body` is ignored.
pub fn sign_request_prehashed<S: AsRef<str>>(
    config: &EscherConfig,
    key_id: &str,
    secret: &Secret,
    request: &Request<'_>,
    body_digest: &[u8],
    headers_to_sign: &[S],
    now: DateTime<Utc>,
) -> Result<Vec<(String, String)>, EscherError> {
    let digest = Some(body_digest);
    sign(
        config,
        key_id,
        secret,
        request,
        digest,
        headers_to_sign,
        now,
    )
}

fn sign<S: AsRef<str>>(
    config: &EscherConfig,
    key_id: &str,
    secret: &Secret,
    request: &Request<'_>,
    body_digest: Option<&[u8]>,
    headers_to_sign: &[S],
    now: DateTime<Utc>,
) -> Result<Vec<(String, String)>, EscherError> {
    request.validate()?;
    check_credentials(key_id, secret)?;
    if request.header("host").is_none() {
        return Err(EscherError::HeaderMissing("host".to_owned()));
    }
    let mut added = Vec::with_capacity(2);
    if request.header(&config.date_header_name).is_none() {
        added.push((
            config.date_header_name.clone(),
            date_header_value(config, now),
        ));
    }
    // The date header we add is signed too, so canonicalize the request with it.
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .chain(added.iter())
        .cloned()
        .collect();
    let with_date = Request {
        headers: &headers,
        ..*request
    };
    let signed = signed_header_names(config, &with_date, headers_to_sign);
    let canonical = match body_digest {
        Some(digest) => canonical_request_hashed(&with_date, &signed, &hex(digest)),
        None => canonical_request(config, &with_date, &signed),
    };
    let to_sign = string_to_sign(config, &canonical, now);
    let sig = signature(config, config.hash, secret, now, &to_sign);
    let auth = format!(
        "{} Credential={}, SignedHeaders={}, Signature={sig}",
        config.algorithm(),
        credential(config, key_id, now),
        signed.join(";"),
    );
    added.push((config.auth_header_name.clone(), auth));
    Ok(added)
}

/// Signs a GET URL (`scheme://host[:port]/path?query#fragment`) so that it is
/// valid from `now` for `expires`. The fragment is kept but not signed, since
/// browsers never send it.
pub fn presign_url(
    config: &EscherConfig,
    key_id: &str,
    secret: &Secret,
    url: &str,
    expires: Duration,
    now: DateTime<Utc>,
) -> Result<String, EscherError> {
    check_credentials(key_id, secret)?;
    let (base, fragment) = match url.find('#') {
        Some(at) => url.split_at(at),
        None => (url, ""),
    };
    let (origin, host, path_and_query) = split_absolute(base)?;
    let separator = if path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    let params = [
        ("Algorithm", config.algorithm()),
        ("Credentials", credential(config, key_id, now)),
        ("Date", now.format(LONG_DATE).to_string()),
        ("Expires", expires.as_secs().to_string()),
        ("SignedHeaders", "host".to_owned()),
    ];
    let params: Vec<String> = params
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                config.query_param(name),
                percent_encode(value.as_bytes())
            )
        })
        .collect();
    let signed_url = format!("{path_and_query}{separator}{}", params.join("&"));

    let headers = [("host".to_owned(), host.to_owned())];
    let request = Request {
        method: "GET",
        url: &signed_url,
        headers: &headers,
        body: UNSIGNED_PAYLOAD,
    };
    let canonical = canonical_request(config, &request, &["host"]);
    let to_sign = string_to_sign(config, &canonical, now);
    let sig = signature(config, config.hash, secret, now, &to_sign);
    Ok(format!(
        "{origin}{signed_url}&{}={sig}{fragment}",
        config.query_param("Signature")
    ))
}

/// Splits `scheme://authority/path?query` into `scheme://authority`, the
/// authority (port kept: the Host header carries it too) and `/path?query`.
fn split_absolute(url: &str) -> Result<(&str, &str, String), EscherError> {
    let scheme_end = url.find("://").ok_or(EscherError::NotAbsoluteUrl)? + 3;
    let rest = &url[scheme_end..];
    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = &rest[..host_end];
    if host.is_empty() {
        return Err(EscherError::NotAbsoluteUrl);
    }
    let path_and_query = &rest[host_end..];
    let path_and_query = if path_and_query.starts_with('/') {
        path_and_query.to_owned()
    } else {
        format!("/{path_and_query}")
    };
    Ok((&url[..scheme_end + host_end], host, path_and_query))
}

/// Refuses to sign with an empty key id or secret: that is a configuration
/// mistake, and the result could never be verified.
fn check_credentials(key_id: &str, secret: &Secret) -> Result<(), EscherError> {
    if key_id.is_empty() || secret.expose().is_empty() {
        return Err(EscherError::InvalidKey);
    }
    Ok(())
}

fn credential(config: &EscherConfig, key_id: &str, now: DateTime<Utc>) -> String {
    format!(
        "{key_id}/{}/{}",
        now.format(SHORT_DATE),
        config.credential_scope
    )
}

/// A plain `Date` header gets the HTTP date format; custom date headers the
/// compact `YYYYMMDDTHHMMSSZ`, as other Escher clients send them.
fn date_header_value(config: &EscherConfig, now: DateTime<Utc>) -> String {
    if config.date_header_name.eq_ignore_ascii_case("date") {
        now.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
    } else {
        now.format(LONG_DATE).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absolute_url_is_split_keeping_the_port() {
        let (origin, host, rest) =
            split_absolute("https://a.com:8443?x=1").expect("test input is valid");
        assert_eq!(
            (origin, host, rest.as_str()),
            ("https://a.com:8443", "a.com:8443", "/?x=1")
        );
    }

    #[test]
    fn a_relative_url_cannot_be_pre_signed() {
        assert_eq!(
            split_absolute("/path").expect_err("must be refused"),
            EscherError::NotAbsoluteUrl
        );
    }

    #[test]
    fn signing_without_a_secret_is_refused() {
        let headers = [("Host".to_owned(), "a.com".to_owned())];
        let request = Request {
            method: "GET",
            url: "/",
            headers: &headers,
            body: b"",
        };
        let result = sign_request(
            &EscherConfig::default(),
            "key",
            &Secret::new(""),
            &request,
            &[""; 0],
            Utc::now(),
        );
        assert_eq!(result, Err(EscherError::InvalidKey));
    }
}
