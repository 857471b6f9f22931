//! What a message sent back to a VERP address says: a bounce (RFC 3464 delivery
//! status notification, or the human-readable text of the MTAs that send none,
//! such as Exim's and older Gmail's), a spam complaint (RFC 5965 ARF), or nothing
//! Broadside acts on (auto-replies, "delivered" notices).
//!
//! The recipient is never taken from the report: the signed VERP token decides it,
//! so a report cannot name someone else's address.

use mail_parser::{Message, MessageParser, MimeHeaders};

/// Longest diagnostic kept with an event.
const MAX_DIAGNOSTIC: usize = 300;

/// Whether a bounce is final (5.x.x) or transient (4.x.x, or a "delayed" notice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceClass {
    Hard,
    Soft,
}

impl BounceClass {
    pub fn as_str(self) -> &'static str {
        match self {
            BounceClass::Hard => "hard",
            BounceClass::Soft => "soft",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    /// The enhanced status code (RFC 3463), e.g. `5.1.1`; `5.0.0`/`4.0.0` when
    /// only a basic SMTP code or the wording told the class.
    pub status: String,
    pub class: BounceClass,
    /// The remote server's reply or the report's diagnostic, whitespace folded.
    pub diagnostic: Option<String>,
}

impl Bounce {
    /// Hard bounces put the address on the suppression list, except when the
    /// status says the refusal was about this message rather than the address:
    /// mail system limits (5.3.x, e.g. too big), content (5.6.x) and policy or
    /// security (5.7.x, e.g. blocked as spam).
    pub fn suppresses(&self) -> bool {
        self.class == BounceClass::Hard && status_suppresses(&self.status)
    }
}

/// Whether a permanent status names a bad address rather than a refused message
/// (see [`Bounce::suppresses`]); also applied to stored bounce events.
pub fn status_suppresses(status: &str) -> bool {
    status.starts_with('5') && !matches!(status.split('.').nth(1), Some("3" | "6" | "7"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complaint {
    /// The ARF `Feedback-Type` (`abuse`, `fraud`, `virus`, `other`, …).
    pub feedback_type: String,
    /// The ARF `User-Agent`: which feedback loop sent it.
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Bounce(Bounce),
    Complaint(Complaint),
    /// Not a bounce or complaint: accepted and counted, nothing recorded.
    Other,
}

/// Reads a message as received (headers and body).
pub fn parse(raw: &[u8]) -> Report {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Report::Other;
    };
    if let Some(complaint) = complaint(&message) {
        return Report::Complaint(complaint);
    }
    for part in &message.parts {
        if (part.is_content_type("message", "delivery-status")
            || part.is_content_type("message", "global-delivery-status"))
            && let Some(bounce) = delivery_status(&String::from_utf8_lossy(part.contents()))
        {
            return Report::Bounce(bounce);
        }
    }
    if looks_like_bounce(&message) {
        let text: String = message
            .text_bodies()
            .filter_map(|p| p.text_contents())
            .collect::<Vec<_>>()
            .join("\n");
        return Report::Bounce(from_text(&text));
    }
    Report::Other
}

/// RFC 5965: the `message/feedback-report` part of a `multipart/report`.
fn complaint(message: &Message<'_>) -> Option<Complaint> {
    let part = message
        .parts
        .iter()
        .find(|p| p.is_content_type("message", "feedback-report"))?;
    let text = String::from_utf8_lossy(part.contents());
    let blocks = field_blocks(&text);
    let fields = blocks.first()?;
    Some(Complaint {
        feedback_type: field(fields, "feedback-type")
            .map(|v| v.to_ascii_lowercase())
            .unwrap_or_else(|| "abuse".to_owned()),
        user_agent: field(fields, "user-agent").map(|v| clip(&v)),
    })
}

/// RFC 3464: a per-message block, then one block per recipient. The first failed
/// recipient wins; a report of delays only is a soft bounce; a report of
/// deliveries only is no bounce.
fn delivery_status(text: &str) -> Option<Bounce> {
    let blocks = field_blocks(text);
    let recipients = blocks.iter().skip(1);
    let mut delayed = None;
    for fields in recipients {
        let action = field(fields, "action")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let status = field(fields, "status").and_then(|s| enhanced_status(&s));
        let diagnostic = field(fields, "diagnostic-code").map(|d| {
            // "smtp; 550 5.1.1 ..." → "550 5.1.1 ..."
            let d = d.split_once(';').map_or(d.as_str(), |(_, rest)| rest);
            clip(d)
        });
        match action.as_str() {
            "failed" => {
                let status = status
                    .or_else(|| diagnostic.as_deref().and_then(status_in_text))
                    .unwrap_or_else(|| "5.0.0".to_owned());
                let class = class_of(&status);
                return Some(Bounce {
                    status,
                    class,
                    diagnostic,
                });
            }
            "delayed" if delayed.is_none() => {
                delayed = Some(Bounce {
                    status: status.unwrap_or_else(|| "4.0.0".to_owned()),
                    class: BounceClass::Soft,
                    diagnostic,
                });
            }
            _ => {}
        }
    }
    delayed
}

/// Bounces without a delivery-status part still say who sent them and why.
fn looks_like_bounce(message: &Message<'_>) -> bool {
    if message.header_raw("X-Failed-Recipients").is_some() {
        return true;
    }
    let from_daemon = message
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .and_then(|a| a.split('@').next())
        .is_some_and(|local| {
            local.eq_ignore_ascii_case("mailer-daemon") || local.eq_ignore_ascii_case("postmaster")
        });
    let subject = message.subject().unwrap_or_default().to_ascii_lowercase();
    const SUBJECTS: [&str; 8] = [
        "undeliver",
        "delivery status notification",
        "delivery failed",
        "delivery failure",
        "returned mail",
        "failure notice",
        "could not be delivered",
        "delayed",
    ];
    from_daemon || SUBJECTS.iter().any(|s| subject.contains(s))
}

/// The first reply code in the explanation, before the returned copy of the
/// original message (which could contain anything).
fn from_text(text: &str) -> Bounce {
    const COPY_MARKERS: [&str; 3] = [
        "------ This is a copy of the message",
        "----- Original message -----",
        "Original message headers:",
    ];
    let cut = COPY_MARKERS
        .iter()
        .filter_map(|m| text.find(m))
        .min()
        .unwrap_or(text.len());
    let text = &text[..cut];
    match find_status(text) {
        Some((status, at)) => Bounce {
            class: class_of(&status),
            status,
            diagnostic: reply_at(text, at),
        },
        None => {
            let lower = text.to_ascii_lowercase();
            let transient = ["temporary", "delayed", "will keep trying", "will retry"]
                .iter()
                .any(|w| lower.contains(w));
            let status = if transient { "4.0.0" } else { "5.0.0" };
            Bounce {
                class: class_of(status),
                status: status.to_owned(),
                diagnostic: None,
            }
        }
    }
}

/// The reply a code at `at` belongs to: from the basic reply code before it (if
/// on the same line) to the end of its paragraph.
fn reply_at(text: &str, at: usize) -> Option<String> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let start = text[line_start..at]
        .rfind(|c: char| !(c.is_ascii_digit() || c == ' ' || c == '-'))
        .map_or(line_start, |i| line_start + i + 1);
    let end = text[at..].find("\n\n").map_or(text.len(), |i| at + i);
    Some(clip(&text[start..end])).filter(|d| !d.is_empty())
}

fn class_of(status: &str) -> BounceClass {
    if status.starts_with('5') {
        BounceClass::Hard
    } else {
        BounceClass::Soft
    }
}

/// An enhanced status code (`class.subject.detail`, RFC 3463) at the start of
/// `value`.
fn enhanced_status(value: &str) -> Option<String> {
    let code = value.split_whitespace().next()?;
    is_enhanced(code).then(|| code.to_owned())
}

fn is_enhanced(code: &str) -> bool {
    let mut parts = code.split('.');
    let class_ok = matches!(parts.next(), Some("2" | "4" | "5"));
    let rest: Vec<&str> = parts.collect();
    class_ok
        && rest.len() == 2
        && rest
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The first 4.x.x or 5.x.x enhanced code in free text, or else the class of the
/// first basic 4xx/5xx reply code (`5.0.0`, `4.0.0`).
fn status_in_text(text: &str) -> Option<String> {
    find_status(text).map(|(status, _)| status)
}

/// [`status_in_text`] with the byte offset of the code it was read from.
fn find_status(text: &str) -> Option<(String, usize)> {
    let words = || {
        text.split(|c: char| {
            c.is_whitespace() || matches!(c, '-' | '(' | ')' | ',' | ';' | ':' | '\'' | '"')
        })
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| !w.is_empty())
        .map(|w| (w, w.as_ptr() as usize - text.as_ptr() as usize))
    };
    if let Some((code, at)) = words().find(|(w, _)| is_enhanced(w) && !w.starts_with('2')) {
        return Some((code.to_owned(), at));
    }
    words()
        .find(|(w, _)| {
            w.len() == 3
                && matches!(w.as_bytes()[0], b'4' | b'5')
                && w.bytes().all(|b| b.is_ascii_digit())
        })
        .map(|(w, at)| (format!("{}.0.0", &w[..1]), at))
}

/// Header-style fields (with folded continuation lines) in blank-line separated
/// blocks, names lowercased.
fn field_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut block: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = block.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

fn field(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
}

/// Whitespace folded to single spaces, at most `MAX_DIAGNOSTIC` characters.
fn clip(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_DIAGNOSTIC)
        .collect()
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
