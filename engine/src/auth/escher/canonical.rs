//! The canonical request, the string to sign and the signature: the part of Escher
//! the signer and the verifier share, so both derive the same bytes.

use chrono::{DateTime, Utc};

use super::config::{EscherConfig, HashAlgo, Secret};
use super::encoding::{canonical_query, hex, normalize_header_value, normalize_path};
use super::error::EscherError;

/// `YYYYMMDDTHHMMSSZ`: the request time in the string to sign and in headers.
pub(crate) const LONG_DATE: &str = "%Y%m%dT%H%M%SZ";
/// `YYYYMMDD`: the credential's day.
pub(crate) const SHORT_DATE: &str = "%Y%m%d";

/// Stands in for the body of a pre-signed URL, whose body nobody can know.
pub(crate) const UNSIGNED_PAYLOAD: &[u8] = b"UNSIGNED-PAYLOAD";

/// Methods Escher accepts; anything else is rejected before canonicalization.
const METHODS: [&str; 9] = [
    "OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "PATCH", "CONNECT",
];

/// An HTTP request as the signature sees it, independent of any web framework.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Any case; canonicalized to upper case.
    pub method: &'a str,
    /// Path and query exactly as sent on the request line, never an absolute URL.
    pub url: &'a str,
    /// All headers in arrival order; duplicates are allowed and joined.
    pub headers: &'a [(String, String)],
    /// The raw body bytes, before any parsing, because the hash covers them.
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The first value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The method and URL checks both signing and verification start with.
    pub(crate) fn validate(&self) -> Result<(), EscherError> {
        let method = self.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(EscherError::InvalidMethod);
        }
        let url = self.url.to_ascii_lowercase();
        if url.starts_with("http://") || url.starts_with("https://") {
            return Err(EscherError::AbsoluteUrl);
        }
        Ok(())
    }
}

/// Splits `path?query` at the first `?`. A `#` is not special here: servers never
/// receive fragments, so one on the request line is part of the query.
pub(crate) fn split_url(url: &str) -> (&str, &str) {
    url.split_once('?').unwrap_or((url, ""))
}

/// Lower-cases, sorts and de-duplicates header names, as the `SignedHeaders`
/// list and the header lines both need.
pub(crate) fn normalize_header_names<S: AsRef<str>>(names: &[S]) -> Vec<String> {
    let mut names: Vec<String> = names
        .iter()
        .map(|n| n.as_ref().trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The canonical request over the given signed headers (any case, any order),
/// with `config.hash` for the body hash.
pub fn canonical_request<S: AsRef<str>>(
    config: &EscherConfig,
    request: &Request<'_>,
    signed_headers: &[S],
) -> String {
    canonical_request_with(config.hash, request, signed_headers)
}

pub(crate) fn canonical_request_with<S: AsRef<str>>(
    hash: HashAlgo,
    request: &Request<'_>,
    signed_headers: &[S],
) -> String {
    canonical_request_hashed(request, signed_headers, &hex(&hash.digest(request.body)))
}

/// The canonical request with the body hash given as lower-case hex, for bodies
/// hashed while they stream (see `authenticate_prehashed`); `request.body` is
/// ignored.
pub(crate) fn canonical_request_hashed<S: AsRef<str>>(
    request: &Request<'_>,
    signed_headers: &[S],
    body_hash_hex: &str,
) -> String {
    let names = normalize_header_names(signed_headers);
    let (path, query) = split_url(request.url);
    let mut lines = vec![
        request.method.to_ascii_uppercase(),
        normalize_path(path),
        canonical_query(query, None),
    ];
    lines.extend(header_lines(request, &names));
    lines.push(String::new());
    lines.push(names.join(";"));
    lines.push(body_hash_hex.to_owned());
    lines.join("\n")
}

/// `name:value` for each signed header present, duplicates joined with `,` in
/// arrival order; `names` is sorted, so the lines are too.
fn header_lines(request: &Request<'_>, names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter_map(|name| {
            let values: Vec<String> = request
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| normalize_header_value(v))
                .collect();
            (!values.is_empty()).then(|| format!("{name}:{}", values.join(",")))
        })
        .collect()
}

/// `<algorithm>\n<long date>\n<short date>/<scope>\n<hex hash of canonical request>`.
pub fn string_to_sign(
    config: &EscherConfig,
    canonical_request: &str,
    date: DateTime<Utc>,
) -> String {
    string_to_sign_with(config, config.hash, canonical_request, date)
}

pub(crate) fn string_to_sign_with(
    config: &EscherConfig,
    hash: HashAlgo,
    canonical_request: &str,
    date: DateTime<Utc>,
) -> String {
    format!(
        "{}\n{}\n{}/{}\n{}",
        config.algorithm_for(hash),
        date.format(LONG_DATE),
        date.format(SHORT_DATE),
        config.credential_scope,
        hex(&hash.digest(canonical_request.as_bytes())),
    )
}

/// Hex HMAC of the string to sign under the key derived from the secret, the
/// day and each scope part, so a leaked derived key is useless elsewhere.
pub(crate) fn signature(
    config: &EscherConfig,
    hash: HashAlgo,
    secret: &Secret,
    date: DateTime<Utc>,
    string_to_sign: &str,
) -> String {
    let day = date.format(SHORT_DATE).to_string();
    let initial = format!("{}{}", config.vendor_key, secret.expose());
    let mut key = hash.hmac(initial.as_bytes(), day.as_bytes());
    for part in config.credential_scope.split('/') {
        key = hash.hmac(&key, part.as_bytes());
    }
    hex(&hash.hmac(&key, string_to_sign.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> Vec<(String, String)> {
        vec![
            ("Host".to_owned(), "example.com".to_owned()),
            ("X-Dup".to_owned(), "a".to_owned()),
            ("x-dup".to_owned(), " b  c ".to_owned()),
            ("Unsigned".to_owned(), "nope".to_owned()),
        ]
    }

    #[test]
    fn only_signed_headers_appear_and_duplicates_are_joined_in_order() {
        let headers = headers();
        let request = Request {
            method: "get",
            url: "/a/./b?z=1&a=2",
            headers: &headers,
            body: b"",
        };
        let canonical = canonical_request(&EscherConfig::default(), &request, &["X-DUP", "host"]);
        let expected = "GET\n/a/b\na=2&z=1\nhost:example.com\nx-dup:a,b c\n\nhost;x-dup\n\
                        e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(canonical, expected);
    }

    #[test]
    fn lower_case_methods_are_valid_and_unknown_ones_are_not() {
        let request = Request {
            method: "patch",
            url: "/",
            headers: &[],
            body: b"",
        };
        assert_eq!(request.validate(), Ok(()));
        let request = Request {
            method: "INVALID",
            ..request
        };
        assert_eq!(request.validate(), Err(EscherError::InvalidMethod));
    }

    #[test]
    fn absolute_urls_are_refused() {
        let request = Request {
            method: "GET",
            url: "HTTPS://x/",
            headers: &[],
            body: b"",
        };
        assert_eq!(request.validate(), Err(EscherError::AbsoluteUrl));
    }
}
