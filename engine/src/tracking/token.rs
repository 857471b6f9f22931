//! Tracking tokens: compact, URL-safe, HMAC-SHA256-signed bindings of (tenant,
//! campaign, recipient, link index, kind), plus the URL itself for links whose URL
//! is only known per recipient. Verification is constant-time; a token that does not
//! verify is indistinguishable from one that never existed.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::model::{CampaignId, RecipientId, TenantId};

/// 96 bits: forging needs ~2^96 online guesses, each one an HTTP request.
const TAG_LEN: usize = 12;
/// Bumped if the layout changes, so old links fail closed instead of misparsing.
const VERSION: u8 = 1;
/// Where a generated secret lives when `[tracking] secret` is unset.
pub const SECRET_FILE: &str = "tracking.key";

/// What a token stands for; part of the signed bytes, so an open token cannot be
/// replayed as an unsubscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TokenKind {
    Open = 1,
    Click = 2,
    Unsubscribe = 3,
    /// The VERP return path; asynchronous bounces come back to it.
    Bounce = 4,
}

impl TokenKind {
    fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => TokenKind::Open,
            2 => TokenKind::Click,
            3 => TokenKind::Unsubscribe,
            4 => TokenKind::Bounce,
            _ => return None,
        })
    }
}

/// The claims of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub tenant: TenantId,
    pub campaign: CampaignId,
    pub recipient: RecipientId,
    /// Index into the campaign's link table (clicks only; 0 otherwise).
    pub link: u32,
    /// When the message was rendered (unix seconds): a click this soon after is a
    /// link scanner's, which the endpoint can tell without a store lookup.
    pub issued: i64,
    /// The URL of a link rendered per recipient; covered by the tag, so it cannot
    /// be changed to point elsewhere.
    pub url: Option<String>,
}

/// The key that signs and verifies tokens.
#[derive(Clone)]
pub struct TokenKey(Hmac<Sha256>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

/// Why the tracking secret could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TokenKeyError {
    #[error("the tracking secret must be at least 32 bytes")]
    TooShort,
    #[error("the tracking key file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

impl TokenKey {
    pub fn new(secret: &[u8]) -> Result<Self, TokenKeyError> {
        if secret.len() < 32 {
            return Err(TokenKeyError::TooShort);
        }
        // HMAC accepts keys of any length, so this cannot fail.
        #[allow(clippy::expect_used)]
        let mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        Ok(Self(mac))
    }

    /// The configured secret, or one generated once into `<data_dir>/tracking.key`:
    /// tokens in sent mail must keep verifying across restarts.
    pub fn configured_or_file(configured: &str, data_dir: &Path) -> Result<Self, TokenKeyError> {
        if !configured.trim().is_empty() {
            return Self::new(configured.trim().as_bytes());
        }
        let path = data_dir.join(SECRET_FILE);
        let file_error = |source| TokenKeyError::File {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => return Self::new(text.trim().as_bytes()),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_error(e)),
            Err(_) => {}
        }
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        std::fs::create_dir_all(data_dir).map_err(file_error)?;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, secret.as_bytes()));
        match created {
            Ok(()) => Self::new(secret.as_bytes()),
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::new(
                std::fs::read_to_string(&path)
                    .map_err(file_error)?
                    .trim()
                    .as_bytes(),
            ),
            Err(e) => Err(file_error(e)),
        }
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.0.clone();
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    fn seal(&self, token: &Token) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(24);
        bytes.push(VERSION);
        bytes.push(token.kind as u8);
        for value in [token.tenant.0, token.campaign.0, token.recipient.0] {
            put_varint(&mut bytes, value as u64);
        }
        put_varint(&mut bytes, u64::from(token.link));
        put_varint(&mut bytes, token.issued.max(0) as u64);
        if let Some(url) = &token.url {
            bytes.extend_from_slice(url.as_bytes());
        }
        let tag = self.tag(&bytes);
        bytes.extend_from_slice(&tag);
        bytes
    }

    /// The token as a URL path segment (base64url).
    pub fn encode(&self, token: &Token) -> String {
        URL_SAFE_NO_PAD.encode(self.seal(token))
    }

    /// The token for a mail address local part: lowercase hex, because MTAs may
    /// change the case of local parts.
    pub fn encode_mail(&self, token: &Token) -> String {
        let bytes = self.seal(token);
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// Verifies a URL token; `None` for anything malformed or forged.
    pub fn decode(&self, text: &str) -> Option<Token> {
        // Longer than any real token: refuse before decoding attacker input.
        if text.len() > 4096 {
            return None;
        }
        self.open(&URL_SAFE_NO_PAD.decode(text).ok()?)
    }

    /// Verifies a hex token from a mail address.
    pub fn decode_mail(&self, text: &str) -> Option<Token> {
        if !text.len().is_multiple_of(2) || text.len() > 4096 {
            return None;
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        self.open(&bytes)
    }

    fn open(&self, bytes: &[u8]) -> Option<Token> {
        let split = bytes.len().checked_sub(TAG_LEN)?;
        let (payload, tag) = bytes.split_at(split);
        if !bool::from(self.tag(payload).ct_eq(tag)) {
            return None;
        }
        let (&version, rest) = payload.split_first()?;
        let (&kind, mut rest) = rest.split_first()?;
        if version != VERSION {
            return None;
        }
        let kind = TokenKind::from_u8(kind)?;
        let mut ids = [0i64; 3];
        for id in &mut ids {
            *id = i64::try_from(take_varint(&mut rest)?).ok()?;
        }
        let link = u32::try_from(take_varint(&mut rest)?).ok()?;
        let issued = i64::try_from(take_varint(&mut rest)?).ok()?;
        let url = (!rest.is_empty())
            .then(|| String::from_utf8(rest.to_vec()).ok())
            .flatten();
        if !rest.is_empty() && url.is_none() {
            return None;
        }
        Some(Token {
            kind,
            tenant: TenantId(ids[0]),
            campaign: CampaignId(ids[1]),
            recipient: RecipientId(ids[2]),
            link,
            issued,
            url,
        })
    }
}

/// LEB128: ids are small, so most take one to three bytes instead of eight.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(&[7u8; 32]).expect("key")
    }

    fn click(campaign: i64, link: u32) -> Token {
        Token {
            kind: TokenKind::Click,
            tenant: TenantId(3),
            campaign: CampaignId(campaign),
            recipient: RecipientId(123_456),
            link,
            issued: 1_790_000_000,
            url: None,
        }
    }

    #[test]
    fn a_token_round_trips_and_is_compact() {
        let token = click(42, 5);
        let text = key().encode(&token);
        assert!(text.len() <= 48, "{text}");
        assert_eq!(key().decode(&text), Some(token));
    }

    #[test]
    fn flipping_any_bit_makes_the_token_invalid() {
        let bytes = key().seal(&click(42, 5));
        for i in 0..bytes.len() * 8 {
            let mut forged = bytes.clone();
            forged[i / 8] ^= 1 << (i % 8);
            assert_eq!(key().open(&forged), None, "bit {i}");
        }
    }

    #[test]
    fn a_token_of_another_key_or_kind_does_not_verify() {
        let other = TokenKey::new(&[8u8; 32]).expect("key");
        assert_eq!(key().decode(&other.encode(&click(42, 5))), None);
        assert_eq!(key().decode(""), None);
        assert_eq!(key().decode("!!!"), None);
    }

    #[test]
    fn a_url_in_the_token_is_covered_by_the_tag() {
        let mut token = click(42, 0);
        token.url = Some("https://shop.example/u/1".into());
        let mut bytes = key().seal(&token);
        assert_eq!(key().open(&bytes), Some(token));
        let at = bytes.len() - TAG_LEN - 1;
        bytes[at] = b'2';
        assert_eq!(key().open(&bytes), None);
    }

    #[test]
    fn mail_tokens_are_lowercase_hex_and_round_trip() {
        let mut token = click(42, 0);
        token.kind = TokenKind::Bounce;
        let text = key().encode_mail(&token);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        );
        assert!(text.len() + 2 <= 64, "fits a local part");
        assert_eq!(key().decode_mail(&text), Some(token));
        assert_eq!(
            key().decode_mail(&text.to_uppercase()),
            key().decode_mail(&text)
        );
    }

    #[test]
    fn a_generated_secret_is_kept_in_the_data_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = TokenKey::configured_or_file("", dir.path()).expect("created");
        let second = TokenKey::configured_or_file("", dir.path()).expect("read");
        assert_eq!(
            second.decode(&first.encode(&click(1, 1))),
            Some(click(1, 1))
        );
    }
}
