//! `CampaignDefinition`: what a campaign sends (sender, subject and body templates,
//! extra headers), stored as JSON with the campaign and validated before compiling.

use serde::{Deserialize, Serialize};

use crate::model::{AddressError, EmailAddress};

/// A sender or reply address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    /// Shown by mail clients instead of the address; lettre RFC 2047-encodes it.
    #[serde(default)]
    pub name: Option<String>,
    pub address: EmailAddress,
}

/// A campaign as the customer defines it. Templates are handlebars; the variables
/// they may use are the import's columns plus `email` (see `CompiledCampaign`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignDefinition {
    pub from: Mailbox,
    #[serde(default)]
    pub reply_to: Option<Mailbox>,
    /// Domain of the envelope sender: bounces go to `bounces@<envelope_domain>` (VERP
    /// replaces the local part later), so it must be a domain we receive mail for.
    pub envelope_domain: String,
    /// Subject template, rendered without HTML escaping.
    pub subject: String,
    /// HTML body template, rendered with HTML escaping of every value.
    #[serde(default)]
    pub html: Option<String>,
    /// Plain-text body template, rendered without escaping.
    #[serde(default)]
    pub text: Option<String>,
    /// Extra headers, sent verbatim (not templates) on every message.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Rewrite links into signed click-tracking URLs.
    #[serde(default = "yes")]
    pub track_clicks: bool,
    /// Add the open-tracking pixel to the HTML body.
    #[serde(default = "yes")]
    pub track_opens: bool,
}

fn yes() -> bool {
    true
}

/// Why a definition was refused before its templates were looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error("the campaign has neither an HTML nor a text body")]
    NoBody,
    #[error(
        "the header name {name:?} is not a valid header name (ASCII letters, digits and !#$%&'*+-.^_`|~)"
    )]
    HeaderName { name: String },
    #[error(
        "the header {name:?} is set by Broadside itself (From, To, Subject, Date, Message-ID, MIME-Version, Content-*, ...) and cannot be an extra header"
    )]
    StructuralHeader { name: String },
    #[error(
        "the value of header {name:?} contains a line break or control character, or is longer than {MAX_HEADER_VALUE} octets"
    )]
    HeaderValue { name: String },
    #[error(
        "the display name {name:?} contains a line break or control character, or is longer than {MAX_DISPLAY_NAME} octets"
    )]
    DisplayName { name: String },
    #[error("the envelope domain {domain:?} is not a valid domain: {reason}")]
    EnvelopeDomain {
        domain: String,
        reason: AddressError,
    },
}

/// Lettre folds header lines only at spaces, so a long value without one would
/// break the 998-octet line limit; these bounds keep every line legal.
const MAX_HEADER_VALUE: usize = 900;
const MAX_DISPLAY_NAME: usize = 256;

/// Headers the engine writes itself or that would change who receives the message;
/// letting a definition set them would produce duplicates or silent misdelivery.
const STRUCTURAL_HEADERS: &[&str] = &[
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "dkim-signature",
    "return-path",
];

impl CampaignDefinition {
    /// Checks everything but the templates; `CompiledCampaign::compile` calls it.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        if self.html.is_none() && self.text.is_none() {
            return Err(DefinitionError::NoBody);
        }
        for mailbox in std::iter::once(&self.from).chain(&self.reply_to) {
            if let Some(name) = &mailbox.name
                && (name.len() > MAX_DISPLAY_NAME || name.chars().any(char::is_control))
            {
                return Err(DefinitionError::DisplayName { name: name.clone() });
            }
        }
        self.return_path()?;
        for (name, value) in &self.headers {
            check_extra_header(name, value)?;
        }
        Ok(())
    }

    /// The envelope sender, `bounces@<envelope_domain>`, validated like any address.
    pub fn return_path(&self) -> Result<EmailAddress, DefinitionError> {
        EmailAddress::parse(&format!("bounces@{}", self.envelope_domain)).map_err(|reason| {
            DefinitionError::EnvelopeDomain {
                domain: self.envelope_domain.clone(),
                reason,
            }
        })
    }
}

/// RFC 7230 `tchar`: a strict subset of RFC 5322's field-name characters that every
/// MTA and client handles.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn check_extra_header(name: &str, value: &str) -> Result<(), DefinitionError> {
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(DefinitionError::HeaderName { name: name.into() });
    }
    let lower = name.to_ascii_lowercase();
    if STRUCTURAL_HEADERS.contains(&lower.as_str()) || lower.starts_with("content-") {
        return Err(DefinitionError::StructuralHeader { name: name.into() });
    }
    // Tab is legal in a header value; CR, LF and the other controls are how a value
    // would smuggle in a header of its own.
    if value.len() > MAX_HEADER_VALUE || value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(DefinitionError::HeaderValue { name: name.into() });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn definition() -> CampaignDefinition {
        CampaignDefinition {
            from: Mailbox {
                name: Some("Acme News".into()),
                address: EmailAddress::parse("news@acme.example").expect("valid"),
            },
            reply_to: None,
            envelope_domain: "bounce.acme.example".into(),
            subject: "Hello {{first_name}}".into(),
            html: Some("<p>Hi {{first_name}}</p>".into()),
            text: Some("Hi {{first_name}}".into()),
            headers: vec![("List-Id".into(), "<news.acme.example>".into())],
            track_clicks: true,
            track_opens: true,
        }
    }

    #[test]
    fn a_structural_extra_header_is_refused() {
        for name in ["From", "content-type", "Content-Transfer-Encoding", "BCC"] {
            let mut def = definition();
            def.headers = vec![(name.into(), "x".into())];
            assert_eq!(
                def.validate(),
                Err(DefinitionError::StructuralHeader { name: name.into() })
            );
        }
    }

    #[test]
    fn header_names_and_values_with_forbidden_characters_are_refused() {
        let mut def = definition();
        def.headers = vec![("X Bad".into(), "x".into())];
        assert!(matches!(
            def.validate(),
            Err(DefinitionError::HeaderName { .. })
        ));
        def.headers = vec![("X-Ok".into(), "a\r\nBcc: x@evil.example".into())];
        assert!(matches!(
            def.validate(),
            Err(DefinitionError::HeaderValue { .. })
        ));
    }

    #[test]
    fn a_definition_without_body_or_with_a_bad_envelope_domain_is_refused() {
        let mut def = definition();
        def.html = None;
        def.text = None;
        assert_eq!(def.validate(), Err(DefinitionError::NoBody));
        let mut def = definition();
        def.envelope_domain = "not a domain".into();
        assert!(matches!(
            def.validate(),
            Err(DefinitionError::EnvelopeDomain { .. })
        ));
    }

    #[test]
    fn a_definition_round_trips_through_json() {
        let def = definition();
        let json = serde_json::to_string(&def).expect("serializes");
        let back: CampaignDefinition = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, def);
    }
}
