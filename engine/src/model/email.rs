//! `EmailAddress`: a practical RFC 5321/5322 mailbox (`local@domain`), parsed once at
//! the edge. Internationalized domains are stored in punycode, and no address can hold
//! CR, LF, NUL or any other control character, so no address can ever inject a header.

use std::fmt;

use serde::{Deserialize, Serialize};

/// RFC 5321 4.5.3.1: 64 octets of local part, 255 of domain, and a forward-path of
/// 256 octets including the angle brackets, so 254 for the address itself.
const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 253;
const MAX_ADDRESS: usize = 254;
const MAX_LABEL: usize = 63;

/// A validated address: `local@domain`, the domain in lower-case ASCII (punycode).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress {
    text: String,
    /// Byte offset of the `@`, so local part and domain are slices, not copies.
    at: usize,
}

/// Why an address was refused; the message is shown to the people who sent the data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("the address is empty")]
    Empty,
    #[error("the address contains a control character (CR, LF, NUL, tab or similar)")]
    ControlCharacter,
    #[error("the address contains a space")]
    Whitespace,
    #[error("the address has no '@'")]
    MissingAt,
    #[error("the local part (before '@') is empty")]
    EmptyLocal,
    #[error("the local part is longer than 64 octets")]
    LocalTooLong,
    #[error("the local part contains {0:?}, which is not allowed unquoted")]
    LocalCharacter(char),
    #[error("the local part has a leading, trailing or doubled '.'")]
    LocalDots,
    #[error("the local part has non-ASCII characters, which need SMTPUTF8")]
    LocalNotAscii,
    #[error("the quoted local part is malformed")]
    BadQuotedLocal,
    #[error("the domain (after '@') is empty")]
    EmptyDomain,
    #[error("the domain is not a valid internationalized domain name")]
    BadIdn,
    #[error("the domain must have at least two labels (like example.com)")]
    SingleLabelDomain,
    #[error("the domain has an empty label")]
    EmptyLabel,
    #[error("a domain label is longer than 63 octets")]
    LabelTooLong,
    #[error("the domain contains {0:?}; only letters, digits and '-' are allowed")]
    DomainCharacter(char),
    #[error("a domain label starts or ends with '-'")]
    LabelHyphen,
    #[error("the top-level domain is all digits")]
    NumericTld,
    #[error("address literals ([1.2.3.4]) are not accepted")]
    AddressLiteral,
    #[error("the domain is longer than 253 octets")]
    DomainTooLong,
    #[error("the address is longer than 254 octets")]
    TooLong,
}

/// RFC 5322 `atext`.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

impl EmailAddress {
    /// Parses and normalizes an address. Surrounding whitespace is not trimmed here;
    /// callers at the edge decide that.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        if input.is_empty() {
            return Err(AddressError::Empty);
        }
        if input.chars().any(char::is_control) {
            return Err(AddressError::ControlCharacter);
        }
        let at = input.rfind('@').ok_or(AddressError::MissingAt)?;
        let (local, domain) = (&input[..at], &input[at + 1..]);
        check_local(local)?;
        let domain = normalize_domain(domain)?;
        let mut text = String::with_capacity(local.len() + 1 + domain.len());
        text.push_str(local);
        text.push('@');
        text.push_str(&domain);
        if text.len() > MAX_ADDRESS {
            return Err(AddressError::TooLong);
        }
        Ok(Self {
            text,
            at: local.len(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn local_part(&self) -> &str {
        &self.text[..self.at]
    }

    /// The domain, lower-case ASCII (punycode for internationalized names).
    pub fn domain(&self) -> &str {
        &self.text[self.at + 1..]
    }

    /// The key under which two addresses count as the same recipient. Local parts
    /// are case-sensitive in theory and never in practice; mailing `Ann@x` and
    /// `ann@x` twice is the mistake customers ask us to prevent.
    pub fn dedup_key(&self) -> String {
        self.text.to_ascii_lowercase()
    }

    pub fn into_string(self) -> String {
        self.text
    }
}

fn check_local(local: &str) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(AddressError::EmptyLocal);
    }
    if local.len() > MAX_LOCAL {
        return Err(AddressError::LocalTooLong);
    }
    if !local.is_ascii() {
        return Err(AddressError::LocalNotAscii);
    }
    let bytes = local.as_bytes();
    if bytes[0] == b'"' {
        return check_quoted_local(bytes);
    }
    if let Some(&b) = bytes.iter().find(|&&b| b != b'.' && !is_atext(b)) {
        return Err(if b == b' ' {
            AddressError::Whitespace
        } else {
            AddressError::LocalCharacter(char::from(b))
        });
    }
    if bytes[0] == b'.' || bytes[bytes.len() - 1] == b'.' || local.contains("..") {
        return Err(AddressError::LocalDots);
    }
    Ok(())
}

/// RFC 5321 `Quoted-string`: printable ASCII and space, with `\` escaping one
/// printable character. Control characters were refused before.
fn check_quoted_local(bytes: &[u8]) -> Result<(), AddressError> {
    if bytes.len() < 2 || bytes[bytes.len() - 1] != b'"' {
        return Err(AddressError::BadQuotedLocal);
    }
    let inner = &bytes[1..bytes.len() - 1];
    let mut i = 0;
    while i < inner.len() {
        match inner[i] {
            b'\\' if i + 1 < inner.len() => i += 2,
            b'\\' | b'"' => return Err(AddressError::BadQuotedLocal),
            _ => i += 1,
        }
    }
    Ok(())
}

fn normalize_domain(domain: &str) -> Result<String, AddressError> {
    if domain.is_empty() {
        return Err(AddressError::EmptyDomain);
    }
    if domain.starts_with('[') {
        return Err(AddressError::AddressLiteral);
    }
    if let Some(c) = domain.chars().find(|c| c.is_whitespace()) {
        return Err(if c == ' ' {
            AddressError::Whitespace
        } else {
            AddressError::ControlCharacter
        });
    }
    let ascii = if domain.is_ascii() {
        domain.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(domain).map_err(|_| AddressError::BadIdn)?
    };
    check_ascii_domain(&ascii)?;
    Ok(ascii)
}

fn check_ascii_domain(domain: &str) -> Result<(), AddressError> {
    if domain.len() > MAX_DOMAIN {
        return Err(AddressError::DomainTooLong);
    }
    let mut labels = 0;
    let mut last = "";
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(AddressError::EmptyLabel);
        }
        if label.len() > MAX_LABEL {
            return Err(AddressError::LabelTooLong);
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(AddressError::DomainCharacter(c));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(AddressError::LabelHyphen);
        }
        labels += 1;
        last = label;
    }
    if labels < 2 {
        return Err(AddressError::SingleLabelDomain);
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddressError::NumericTld);
    }
    Ok(())
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({:?})", self.text)
    }
}

impl std::str::FromStr for EmailAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, AddressError> {
        Self::parse(s)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = AddressError;
    fn try_from(value: String) -> Result<Self, AddressError> {
        Self::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> String {
        value.text
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ordinary_addresses_are_accepted_and_domains_lower_cased() {
        let a = EmailAddress::parse("Ann.Lee+news@Example.COM").expect("valid");
        assert_eq!(a.as_str(), "Ann.Lee+news@example.com");
        assert_eq!(a.local_part(), "Ann.Lee+news");
        assert_eq!(a.domain(), "example.com");
        assert_eq!(a.dedup_key(), "ann.lee+news@example.com");
    }

    #[test]
    fn internationalized_domains_become_punycode() {
        let a = EmailAddress::parse("jörg@bücher.de").err();
        assert_eq!(a, Some(AddressError::LocalNotAscii));
        let a = EmailAddress::parse("joerg@Bücher.de").expect("valid");
        assert_eq!(a.domain(), "xn--bcher-kva.de");
        let a = EmailAddress::parse("info@例え.テスト").expect("valid");
        assert!(a.domain().is_ascii() && a.domain().starts_with("xn--"));
    }

    #[test]
    fn quoted_local_parts_are_accepted_when_well_formed() {
        assert!(EmailAddress::parse(r#""john doe"@example.com"#).is_ok());
        assert!(EmailAddress::parse(r#""a\"b"@example.com"#).is_ok());
        assert_eq!(
            EmailAddress::parse(r#""a"b"@example.com"#),
            Err(AddressError::BadQuotedLocal)
        );
    }

    #[test]
    fn malformed_addresses_get_a_precise_reason() {
        use AddressError::*;
        let cases: &[(&str, AddressError)] = &[
            ("", Empty),
            ("ann", MissingAt),
            ("@example.com", EmptyLocal),
            ("ann@", EmptyDomain),
            ("ann@localhost", SingleLabelDomain),
            ("ann@example..com", EmptyLabel),
            ("ann@-example.com", LabelHyphen),
            ("ann@exa_mple.com", DomainCharacter('_')),
            ("ann@example.123", NumericTld),
            ("ann@[192.0.2.1]", AddressLiteral),
            (".ann@example.com", LocalDots),
            ("an..n@example.com", LocalDots),
            ("an n@example.com", Whitespace),
            ("an(n@example.com", LocalCharacter('(')),
            ("ann\r\nBcc: x@evil.com@example.com", ControlCharacter),
            ("ann@example.com\n", ControlCharacter),
            ("ann\0@example.com", ControlCharacter),
        ];
        for (input, expected) in cases {
            assert_eq!(
                EmailAddress::parse(input).as_ref(),
                Err(expected),
                "{input:?}"
            );
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(EmailAddress::parse(&long_local), Err(LocalTooLong));
        let long_label = format!("a@{}.com", "b".repeat(64));
        assert_eq!(EmailAddress::parse(&long_label), Err(LabelTooLong));
        let long = format!(
            "{}@{}.{}.{}.com",
            "a".repeat(64),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(60)
        );
        assert_eq!(EmailAddress::parse(&long), Err(TooLong));
    }

    fn atext() -> impl Strategy<Value = String> {
        "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}"
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
    }

    proptest! {
        #[test]
        fn valid_dot_atoms_parse_and_round_trip(
            words in prop::collection::vec(atext(), 1..3),
            labels in prop::collection::vec(label(), 1..4),
            tld in "[a-z]{2,6}",
        ) {
            let input = format!("{}@{}.{}", words.join("."), labels.join("."), tld);
            prop_assume!(input.len() <= MAX_ADDRESS && words.join(".").len() <= MAX_LOCAL);
            let parsed = EmailAddress::parse(&input).expect("valid by construction");
            prop_assert_eq!(parsed.as_str(), input.as_str());
            let again = EmailAddress::parse(parsed.as_str()).expect("normal form parses");
            prop_assert_eq!(again, parsed);
        }

        #[test]
        fn no_accepted_address_contains_a_control_character(input in "\\PC{0,40}|.{0,40}") {
            if let Ok(a) = EmailAddress::parse(&input) {
                prop_assert!(!a.as_str().chars().any(char::is_control));
                prop_assert!(a.as_str().len() <= MAX_ADDRESS);
                prop_assert!(a.domain().is_ascii());
                prop_assert_eq!(a.domain(), a.domain().to_ascii_lowercase());
            }
        }

        #[test]
        fn injecting_a_line_break_anywhere_is_refused(
            local in atext(), pos in 0usize..30, brk in prop::sample::select(vec!["\r", "\n", "\r\n", "\0"])
        ) {
            let mut input = format!("{local}@example.com");
            let pos = pos.min(input.len());
            input.insert_str(pos, brk);
            prop_assert_eq!(EmailAddress::parse(&input), Err(AddressError::ControlCharacter));
        }
    }
}
