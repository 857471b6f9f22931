//! SMTP replies and what they mean for a message: delivered (2xx), deferred (4xx and
//! connection trouble) or bounced (5xx). The full reply text and the enhanced status
//! code (RFC 3463) are kept, because customers ask why a message bounced.

use std::fmt;

/// An enhanced status code `class.subject.detail`, e.g. 5.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One SMTP reply: the code and its text (lines joined by a space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<EnhancedCode>,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyClass {
    Positive,
    Transient,
    Permanent,
}

impl Reply {
    /// Builds a reply from its code and text, reading an enhanced code at the start
    /// of the text when present.
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        let text = text.into();
        let enhanced = text.split_whitespace().next().and_then(parse_enhanced);
        Self {
            code,
            enhanced,
            text,
        }
    }

    pub fn class(&self) -> ReplyClass {
        match self.code {
            200..=399 => ReplyClass::Positive,
            400..=499 => ReplyClass::Transient,
            _ => ReplyClass::Permanent,
        }
    }

    /// 421 (closing the channel) or an enhanced 4.7.x (policy, rate) asks us to slow
    /// down towards this destination, not only to retry this message.
    pub fn is_throttle(&self) -> bool {
        self.code == 421
            || self
                .enhanced
                .is_some_and(|e| e.class == 4 && e.subject == 7)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

fn parse_enhanced(word: &str) -> Option<EnhancedCode> {
    let mut parts = word.split('.');
    let class = parts.next()?.parse().ok()?;
    let subject = parts.next()?.parse().ok()?;
    let detail = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !matches!(class, 2 | 4 | 5) {
        return None;
    }
    Some(EnhancedCode {
        class,
        subject,
        detail,
    })
}

/// Why a message was not delivered; the variant decides what happens next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Try again later: a 4xx reply, a timeout, a refused or broken connection.
    #[error("temporary failure: {reason}")]
    Transient {
        reason: String,
        reply: Option<Reply>,
        /// The destination asked us to slow down (421, 4.7.x).
        throttle: bool,
    },
    /// Never retry: a 5xx reply, or a destination that accepts no mail (null MX).
    #[error("permanent failure: {reason}")]
    Permanent {
        reason: String,
        reply: Option<Reply>,
    },
}

impl DeliveryError {
    pub fn transient(reason: impl Into<String>) -> Self {
        DeliveryError::Transient {
            reason: reason.into(),
            reply: None,
            throttle: false,
        }
    }

    /// Classifies a negative reply.
    pub fn from_reply(reply: Reply) -> Self {
        match reply.class() {
            ReplyClass::Permanent => DeliveryError::Permanent {
                reason: reply.to_string(),
                reply: Some(reply),
            },
            _ => DeliveryError::Transient {
                reason: reply.to_string(),
                throttle: reply.is_throttle(),
                reply: Some(reply),
            },
        }
    }

    pub fn is_throttle(&self) -> bool {
        matches!(self, DeliveryError::Transient { throttle: true, .. })
    }

    pub fn reply(&self) -> Option<&Reply> {
        match self {
            DeliveryError::Transient { reply, .. } | DeliveryError::Permanent { reply, .. } => {
                reply.as_ref()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_classified_by_their_first_digit() {
        assert_eq!(Reply::new(250, "2.0.0 ok").class(), ReplyClass::Positive);
        assert_eq!(
            Reply::new(451, "4.3.0 later").class(),
            ReplyClass::Transient
        );
        assert_eq!(
            Reply::new(550, "5.1.1 unknown").class(),
            ReplyClass::Permanent
        );
    }

    #[test]
    fn enhanced_codes_are_read_from_the_start_of_the_text() {
        let reply = Reply::new(550, "5.1.1 <ann@example.com>: user unknown");
        assert_eq!(
            reply.enhanced,
            Some(EnhancedCode {
                class: 5,
                subject: 1,
                detail: 1
            })
        );
        assert_eq!(Reply::new(550, "user unknown").enhanced, None);
        assert_eq!(Reply::new(550, "1.2.3 not a class").enhanced, None);
    }

    #[test]
    fn throttling_is_421_or_a_4_7_x_code() {
        assert!(Reply::new(421, "4.7.0 too many connections").is_throttle());
        assert!(Reply::new(451, "4.7.1 rate limited").is_throttle());
        assert!(!Reply::new(451, "4.3.0 try again").is_throttle());
        assert!(!Reply::new(550, "5.7.1 policy").is_throttle());
        assert!(DeliveryError::from_reply(Reply::new(421, "bye")).is_throttle());
    }

    #[test]
    fn a_5xx_reply_is_permanent_and_keeps_the_full_text() {
        let err = DeliveryError::from_reply(Reply::new(550, "5.1.1 no such user here"));
        assert!(matches!(err, DeliveryError::Permanent { .. }));
        assert_eq!(
            err.reply().map(|r| r.text.as_str()),
            Some("5.1.1 no such user here")
        );
    }
}
