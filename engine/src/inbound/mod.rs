//! Mail that comes back to a VERP return path (`b-<token>@<bounce domain>`):
//! which recipient it is about (the signed token in the address) and what it says
//! (a delivery status notification or a spam complaint, see [`report`]).

pub mod report;

pub use report::{Bounce, BounceClass, Complaint, Report, parse, status_suppresses};

use crate::tracking::{Token, TokenKey, TokenKind};

/// The local part prefix of VERP return paths, as the renderer writes them.
pub const VERP_PREFIX: &str = "b-";

/// The recipient a VERP address stands for, if `address` is one whose token
/// verifies under `key`; `None` for anything else (a forged or foreign address,
/// or a token of another kind).
pub fn verp_recipient(key: &TokenKey, address: &str) -> Option<Token> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, domain) = address.rsplit_once('@')?;
    if domain.is_empty() || local.len() <= VERP_PREFIX.len() {
        return None;
    }
    let (prefix, token) = local.split_at_checked(VERP_PREFIX.len())?;
    if !prefix.eq_ignore_ascii_case(VERP_PREFIX) {
        return None;
    }
    key.decode_mail(&token.to_ascii_lowercase())
        .filter(|t| t.kind == TokenKind::Bounce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CampaignId, RecipientId, TenantId};

    fn key() -> TokenKey {
        TokenKey::new(&[9u8; 32]).expect("key")
    }

    fn token(kind: TokenKind) -> Token {
        Token {
            kind,
            tenant: TenantId(2),
            campaign: CampaignId(7),
            recipient: RecipientId(41),
            link: 0,
            issued: 1_790_000_000,
            url: None,
        }
    }

    #[test]
    fn a_verp_address_names_its_recipient_whatever_the_case_of_the_local_part() {
        let address = format!(
            "b-{}@Bounces.Acme.Example",
            key().encode_mail(&token(TokenKind::Bounce))
        );
        assert_eq!(
            verp_recipient(&key(), &address),
            Some(token(TokenKind::Bounce))
        );
        assert_eq!(
            verp_recipient(&key(), &format!("<{}>", address.to_uppercase())),
            Some(token(TokenKind::Bounce))
        );
    }

    #[test]
    fn forged_foreign_and_wrong_kind_addresses_name_nobody() {
        let other = TokenKey::new(&[1u8; 32]).expect("key");
        let foreign = format!(
            "b-{}@x.example",
            other.encode_mail(&token(TokenKind::Bounce))
        );
        let open = format!("b-{}@x.example", key().encode_mail(&token(TokenKind::Open)));
        for address in [
            foreign.as_str(),
            open.as_str(),
            "postmaster@x.example",
            "b-@x.example",
            "b-00ff@x.example",
            "b-zz@x.example",
            "",
        ] {
            assert_eq!(verp_recipient(&key(), address), None, "{address}");
        }
    }
}
