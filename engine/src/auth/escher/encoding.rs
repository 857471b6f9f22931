//! Escher's text transformations: its own percent-encoding set, form decoding,
//! path dot-segment removal and header value folding. Kept apart because both the
//! signer and the verifier must produce byte-identical output.

/// Lower-case hex, as Escher writes hashes and signatures.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Whether a byte stays literal: JavaScript's `encodeURIComponent` set minus
/// `'()`, which every Escher implementation inherited from the Node original.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'!' | b'*')
}

/// Percent-encodes everything outside the unreserved set with upper-case hex.
pub(crate) fn percent_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Form-decodes a query component: `+` is a space, `%XX` a byte. A `%` not
/// followed by two hex digits stays literal, as browsers and Node treat it, so
/// malformed input still canonicalizes the same way on both sides.
pub(crate) fn form_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Splits a raw query into form-decoded `(key, value)` pairs; a bare key gets an
/// empty value and empty pieces (`a=1&&b=2`) are dropped.
pub(crate) fn query_pairs(query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((k, v)) => (form_decode(k), form_decode(v)),
            None => (form_decode(part), Vec::new()),
        })
        .collect()
}

/// The canonical query: re-encoded `k=v` strings sorted byte-wise, duplicates
/// kept. `skip_key` drops a parameter (the pre-signed URL's own signature).
pub(crate) fn canonical_query(query: &str, skip_key: Option<&str>) -> String {
    let mut parts: Vec<String> = query_pairs(query)
        .into_iter()
        .filter(|(k, _)| skip_key.is_none_or(|skip| k.as_slice() != skip.as_bytes()))
        .map(|(k, v)| format!("{}={}", percent_encode(&k), percent_encode(&v)))
        .collect();
    parts.sort_unstable();
    parts.join("&")
}

/// Removes `.` and `..` segments and empty segments (`//`) without decoding:
/// `%2F` must stay distinct from `/`. A trailing slash survives, as does one
/// implied by a trailing dot segment (RFC 3986 §5.2.4).
pub(crate) fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if out.is_empty() || trailing {
        out.push('/');
    }
    out
}

/// Trims a header value and folds whitespace runs to one space, except inside
/// double quotes where the spaces are part of the value.
pub(crate) fn normalize_header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut in_quotes = false;
    let mut pending_space = false;
    for c in value.trim().chars() {
        if c.is_whitespace() && !in_quotes {
            pending_space = true;
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        if c == '"' {
            in_quotes = !in_quotes;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }

    #[test]
    fn unreserved_characters_stay_literal() {
        let set = "AZaz09-_.~!*";
        assert_eq!(percent_encode(set.as_bytes()), set);
    }

    #[test]
    fn quotes_parentheses_space_and_slash_are_encoded_upper_case() {
        assert_eq!(percent_encode(b"'() /"), "%27%28%29%20%2F");
        assert_eq!(percent_encode("ሴ".as_bytes()), "%E1%88%B4");
    }

    #[test]
    fn form_decoding_turns_plus_into_space_and_decodes_escapes() {
        assert_eq!(form_decode("a+b%2Bc%41"), b"a b+cA");
    }

    #[test]
    fn a_stray_percent_sign_stays_literal() {
        assert_eq!(form_decode("%^%4"), b"%^%4");
        assert_eq!(percent_encode(&form_decode("%^")), "%25%5E");
    }

    #[test]
    fn query_parameters_are_sorted_as_encoded_strings_keeping_duplicates() {
        assert_eq!(canonical_query("foo=b&foo=a&a", None), "a=&foo=a&foo=b");
    }

    #[test]
    fn the_skipped_query_key_is_left_out() {
        assert_eq!(
            canonical_query("b=1&X-EMS-Signature=ab&a=2", Some("X-EMS-Signature")),
            "a=2&b=1"
        );
    }

    #[test]
    fn dot_segments_and_double_slashes_are_removed() {
        assert_eq!(normalize_path("/foo/bar/../.."), "/");
        assert_eq!(normalize_path("/./foo"), "/foo");
        assert_eq!(normalize_path("//foo//"), "/foo/");
        assert_eq!(normalize_path("/foo/bar/.."), "/foo/");
        assert_eq!(normalize_path(""), "/");
    }

    #[test]
    fn paths_are_not_decoded() {
        assert_eq!(normalize_path("/a%2F..%2Fb/+"), "/a%2F..%2Fb/+");
    }

    #[test]
    fn header_values_are_trimmed_and_folded_outside_quotes() {
        assert_eq!(normalize_header_value("  a   b \t c  "), "a b c");
        assert_eq!(normalize_header_value("x   \"a   b\"   y"), "x \"a   b\" y");
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn form_decoding_undoes_percent_encoding(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
                prop_assert_eq!(form_decode(&percent_encode(&bytes)), bytes);
            }

            #[test]
            fn encoded_text_is_unreserved_or_escapes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
                let encoded = percent_encode(&bytes);
                prop_assert!(encoded.bytes().all(|b| is_unreserved(b) || b == b'%'));
            }

            #[test]
            fn normalized_paths_have_no_empty_or_dot_segments(path in "[/.a%]{0,24}") {
                let normalized = normalize_path(&path);
                prop_assert!(normalized.starts_with('/'));
                let inner = normalized.trim_end_matches('/');
                prop_assert!(inner.split('/').skip(1).all(|s| !s.is_empty() && s != "." && s != ".."));
            }

            #[test]
            fn header_value_folding_is_idempotent(value in "[ \\ta\"]{0,24}") {
                let once = normalize_header_value(&value);
                prop_assert_eq!(normalize_header_value(&once), once.clone());
            }
        }
    }
}
