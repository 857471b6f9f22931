//! `CompiledCampaign`: everything about a campaign that does not depend on the
//! recipient, prepared once (templates parsed and checked, sender headers built), so
//! that rendering a message is only substitution, MIME assembly and formatting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use handlebars::{Context, Handlebars};
use lettre::address::Envelope;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Body, MessageBuilder, MultiPart, SinglePart};
use lettre::{Address, Message};

use super::definition::{CampaignDefinition, Mailbox};
use super::row::RowView;
use super::template::{TemplateError, TemplateKind, compile_checked};
use super::tracked::{self, RecipientTracking, TrackedBodies};
use crate::model::EmailAddress;
use crate::store::RowRef;
use crate::tracking::TrackingSetup;

/// Lettre folds headers only at spaces; a longer run without one would exceed the
/// 998-octet line limit (RFC 5322 2.1.1), so the subject gets a space there instead.
const MAX_HEADER_WORD: usize = 900;

/// One message, ready for SMTP: `bytes` is exactly what goes after `DATA`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMessage {
    /// `MAIL FROM`: the return path, where bounces go.
    pub envelope_from: String,
    /// `RCPT TO`: the recipient's normalized address.
    pub recipient: String,
    /// The whole message with CRLF line endings, every line at most 998 octets.
    pub bytes: Vec<u8>,
}

/// Why one recipient's message could not be rendered. Each is about this row only;
/// the campaign itself compiled, so the dispatcher marks the recipient failed and
/// carries on.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the row has {found} personalization values, the campaign expects {expected}")]
    ColumnCount { expected: usize, found: usize },
    #[error("rendering the {template} template failed: {message}")]
    Template {
        template: TemplateKind,
        message: String,
    },
    #[error("the recipient address {address:?} is not usable: {message}")]
    Recipient { address: String, message: String },
    #[error("the Message-ID domain {0:?} is not a valid domain")]
    MessageIdDomain(String),
    #[error("assembling the message failed: {0}")]
    Message(#[from] lettre::error::Error),
}

/// A campaign ready to render; shared read-only by all render threads.
pub struct CompiledCampaign {
    /// The import's column names, in row order, as the templates see them.
    columns: Vec<String>,
    /// Subject and text: no escaping, the output is not HTML.
    plain: Handlebars<'static>,
    /// The HTML body: every value HTML-escaped, so data cannot inject markup.
    html: Handlebars<'static>,
    has_text: bool,
    has_html: bool,
    /// From, Reply-To and the extra headers, cloned for every message.
    base: MessageBuilder,
    return_path: Address,
    /// Random per compilation, so Message-IDs stay unique across restarts and nodes
    /// without a random draw per message.
    nonce: u64,
    sequence: AtomicU64,
    /// Set when the runtime compiled the campaign for sending with tracking.
    tracking: Option<(TrackingSetup, TrackedBodies)>,
}

impl std::fmt::Debug for CompiledCampaign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledCampaign")
            .field("columns", &self.columns)
            .field("return_path", &self.return_path)
            .finish_non_exhaustive()
    }
}

impl CompiledCampaign {
    /// Validates the definition and compiles its templates against `columns`,
    /// without tracking (what validation and previews need).
    pub fn compile(
        def: &CampaignDefinition,
        columns: &[String],
    ) -> Result<CompiledCampaign, TemplateError> {
        Self::compile_tracked(def, columns, None)
    }

    /// Like `compile`; with a setup, links are rewritten into click URLs, the open
    /// pixel is added, and messages get List-Unsubscribe and a VERP return path.
    pub fn compile_tracked(
        def: &CampaignDefinition,
        columns: &[String],
        setup: Option<TrackingSetup>,
    ) -> Result<CompiledCampaign, TemplateError> {
        def.validate()?;
        let mut plain = registry(handlebars::no_escape);
        let mut html = registry(handlebars::html_escape);
        let subject = compile_checked(TemplateKind::Subject, &def.subject, columns)?;
        plain.register_template(TemplateKind::Subject.name(), subject);
        // The customer's templates are checked as written, so the `__bs_*` names
        // the rewrite introduces are not available to them.
        for (kind, source) in [
            (TemplateKind::Text, &def.text),
            (TemplateKind::Html, &def.html),
        ] {
            if let Some(source) = source {
                compile_checked(kind, &crlf(source), columns)?;
            }
        }
        let bodies = match &setup {
            Some(_) => tracked::rewrite(def),
            None => TrackedBodies {
                html: def.html.clone(),
                text: def.text.clone(),
                ..TrackedBodies::default()
            },
        };
        let mut known = columns.to_vec();
        known.extend(tracked::variables(&bodies));
        if let Some(source) = &bodies.text {
            let text = compile_checked(TemplateKind::Text, &crlf(source), &known)?;
            plain.register_template(TemplateKind::Text.name(), text);
        }
        if let Some(source) = &bodies.html {
            let template = compile_checked(TemplateKind::Html, &crlf(source), &known)?;
            html.register_template(TemplateKind::Html.name(), template);
        }
        let return_path = lettre_address(&def.return_path()?);
        Ok(CompiledCampaign {
            columns: columns.to_vec(),
            plain,
            html,
            has_text: def.text.is_some(),
            has_html: def.html.is_some(),
            base: base_builder(def, setup.is_some()),
            return_path,
            nonce: uuid::Uuid::new_v4().as_u64_pair().0,
            sequence: AtomicU64::new(0),
            tracking: setup.map(|setup| (setup, bodies)),
        })
    }

    /// The campaign's link table (empty without click tracking).
    pub fn links(&self) -> &[String] {
        self.tracking.as_ref().map_or(&[], |(_, b)| &b.links)
    }

    /// Renders the message for one recipient.
    pub fn render(
        &self,
        row: RowRef<'_>,
        message_id_domain: &str,
        date: DateTime<Utc>,
    ) -> Result<RenderedMessage, RenderError> {
        let found = row.values().len();
        if found != self.columns.len() {
            return Err(RenderError::ColumnCount {
                expected: self.columns.len(),
                found,
            });
        }
        let message_id = self.message_id(message_id_domain)?;
        let tracking = self.tracking.as_ref().map(|(setup, bodies)| {
            RecipientTracking::new(setup, bodies, row.id(), date.timestamp())
        });
        let context = Context::wraps(RowView {
            columns: &self.columns,
            row,
            extra: tracking.as_ref().map_or(&[], |t| &t.values),
        })
        .map_err(|e| template_error(TemplateKind::Subject, &e))?;
        let to = recipient_address(row.email())?;
        let mut builder = self.base.clone();
        let mut return_path = self.return_path.clone();
        if let Some(tracking) = tracking {
            builder = builder
                .raw_header(raw_header("List-Unsubscribe", tracking.list_unsubscribe))
                .raw_header(raw_header(
                    "List-Unsubscribe-Post",
                    "List-Unsubscribe=One-Click".into(),
                ));
            return_path = tracking.return_path;
        }
        let builder = builder
            .to(lettre::message::Mailbox::new(None, to.clone()))
            .subject(header_safe(
                self.render_part(TemplateKind::Subject, &context)?,
            ))
            .date(SystemTime::from(date))
            .message_id(Some(message_id))
            .envelope(Envelope::new(Some(return_path.clone()), vec![to])?);
        let message = self.assemble(builder, &context)?;
        Ok(RenderedMessage {
            envelope_from: return_path.to_string(),
            recipient: row.email().to_owned(),
            bytes: message.formatted(),
        })
    }

    fn assemble(&self, builder: MessageBuilder, context: &Context) -> Result<Message, RenderError> {
        let text = self
            .has_text
            .then(|| self.render_part(TemplateKind::Text, context))
            .transpose()?;
        let html = self
            .has_html
            .then(|| self.render_part(TemplateKind::Html, context))
            .transpose()?;
        // `validate` guarantees at least one part.
        let message = match (text, html) {
            (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(
                part_body(text),
                part_body(html),
            )),
            (Some(text), None) => builder.singlepart(SinglePart::plain(part_body(text))),
            (None, html) => {
                builder.singlepart(SinglePart::html(part_body(html.unwrap_or_default())))
            }
        };
        Ok(message?)
    }

    fn render_part(&self, kind: TemplateKind, context: &Context) -> Result<String, RenderError> {
        let registry = if kind == TemplateKind::Html {
            &self.html
        } else {
            &self.plain
        };
        registry
            .render_with_context(kind.name(), context)
            .map_err(|e| template_error(kind, &e))
    }

    fn message_id(&self, domain: &str) -> Result<String, RenderError> {
        let valid = !domain.is_empty()
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !valid {
            return Err(RenderError::MessageIdDomain(domain.into()));
        }
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        Ok(format!("<{:016x}.{sequence:x}@{domain}>", self.nonce))
    }
}

/// Bodies go out with CRLF line breaks. Lettre converts bare LFs by inserting one
/// byte at a time, which costs a copy of the rest of the body per line; templates
/// converted once here leave it only the line breaks that values bring.
fn crlf(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + source.len() / 32);
    let mut previous = '\0';
    for c in source.chars() {
        if c == '\n' && previous != '\r' {
            out.push('\r');
        }
        out.push(c);
        previous = c;
    }
    out
}

fn registry(escape: fn(&str) -> String) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    // A value missing at render time is a bug, not an empty string in a customer's mail.
    registry.set_strict_mode(true);
    registry.register_escape_fn(escape);
    registry
}

fn raw_header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// From, Reply-To and the extra headers: the same on every message of the campaign.
/// With tracking, Broadside writes List-Unsubscribe itself, so a definition's own
/// is dropped rather than sent twice.
fn base_builder(def: &CampaignDefinition, tracking: bool) -> MessageBuilder {
    let mut builder = Message::builder().from(lettre_mailbox(&def.from));
    if let Some(reply_to) = &def.reply_to {
        builder = builder.reply_to(lettre_mailbox(reply_to));
    }
    for (name, value) in &def.headers {
        if tracking && name.to_ascii_lowercase().starts_with("list-unsubscribe") {
            continue;
        }
        // `validate` checked the name, so this does not fail; skipping is the safe
        // fallback should lettre ever be stricter than our check.
        if let Ok(name) = HeaderName::new_from_ascii(name.clone()) {
            builder = builder.raw_header(HeaderValue::new(name, value.clone()));
        }
    }
    builder
}

/// A part's body. Sent as it is (7bit) when it can be: ASCII without NUL,
/// CRLF line ends (templates are converted once per campaign) and no line over
/// RFC 5322's 998 octets. Lettre would choose quoted-printable for any line of
/// 76 characters or more, which every tracked link makes, and encoding was the
/// biggest item of the engine's own CPU profile. Otherwise our own
/// quoted-printable encoder (one pass, runs copied in bulk), and lettre's
/// base64 for text where that is shorter.
fn part_body(text: String) -> Body {
    if is_seven_bit_crlf(text.as_bytes()) {
        Body::dangerous_pre_encoded(text.into_bytes(), ContentTransferEncoding::SevenBit)
    } else if let Some(encoded) = super::qp::encode_text(text.as_bytes()) {
        Body::dangerous_pre_encoded(encoded, ContentTransferEncoding::QuotedPrintable)
    } else {
        Body::new(text)
    }
}

/// Whether `bytes` is valid 7bit content as it stands (RFC 5322 §2.1.1, RFC
/// 2045 §2.7): one pass, no allocation.
pub(super) fn is_seven_bit_crlf(bytes: &[u8]) -> bool {
    const MAX_LINE: usize = 998;
    if !bytes.is_ascii() || memchr::memchr(0, bytes).is_some() {
        return false;
    }
    let mut line_start = 0;
    for at in memchr::memchr2_iter(b'\r', b'\n', bytes) {
        if bytes[at] == b'\r' {
            if bytes.get(at + 1) != Some(&b'\n') {
                return false;
            }
            if at - line_start > MAX_LINE {
                return false;
            }
        } else {
            if at == 0 || bytes[at - 1] != b'\r' {
                return false;
            }
            line_start = at + 1;
        }
    }
    bytes.len() - line_start <= MAX_LINE
}

fn lettre_mailbox(mailbox: &Mailbox) -> lettre::message::Mailbox {
    lettre::message::Mailbox::new(mailbox.name.clone(), lettre_address(&mailbox.address))
}

/// `EmailAddress` is at least as strict as lettre's check, so no second validation.
fn lettre_address(address: &EmailAddress) -> Address {
    Address::new_dangerous(address.local_part(), address.domain())
}

/// Rows carry addresses the importer validated, but a row is only a string here,
/// so lettre checks it (cheap next to rendering) before it goes into headers.
fn recipient_address(email: &str) -> Result<Address, RenderError> {
    email
        .parse::<Address>()
        .map_err(|e| RenderError::Recipient {
            address: email.into(),
            message: e.to_string(),
        })
}

fn template_error(template: TemplateKind, e: &handlebars::RenderError) -> RenderError {
    RenderError::Template {
        template,
        message: e.to_string(),
    }
}

/// Makes a rendered value safe for a header: line breaks and other control
/// characters become spaces (lettre would encode them, but a subject with a line
/// break is never intended), and runs too long to fold are broken by a space.
pub(crate) fn header_safe(value: String) -> String {
    let needs_work = value.contains(|c: char| c.is_control())
        || value.split(' ').any(|w| w.len() > MAX_HEADER_WORD);
    if !needs_work {
        return value;
    }
    let mut out = String::with_capacity(value.len() + 8);
    let mut run = 0;
    for c in value.chars() {
        let c = if c.is_control() { ' ' } else { c };
        run = if c == ' ' { 0 } else { run + c.len_utf8() };
        if run > MAX_HEADER_WORD {
            out.push(' ');
            run = c.len_utf8();
        }
        out.push(c);
    }
    out
}
