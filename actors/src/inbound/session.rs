//! One inbound SMTP session (RFC 5321 subset: EHLO/HELO, MAIL, RCPT, DATA, RSET,
//! NOOP, QUIT). Every read has a timeout and a length limit; a message over the
//! size limit is read to its end and discarded, then refused with 552.

use chrono::Utc;
use engine::inbound::{Report, parse, verp_recipient};
use engine::store::{TrackingDetail, TrackingEvent, TrackingKind};
use engine::tracking::Token;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::Shared;
use crate::telemetry as m;
use crate::tracking_events::Hit;

/// Longest command line (RFC 5321 says 512 with the CRLF; some clients add
/// parameters).
const MAX_COMMAND: usize = 2048;
/// Message lines are read in chunks of at most this, so one endless line cannot
/// grow memory past the size limit.
const MAX_CHUNK: usize = 64 * 1024;
/// Recipients per message: a DSN goes to one VERP address.
const MAX_RECIPIENTS: usize = 100;
/// Unknown or out-of-order commands before the session is closed.
const MAX_ERRORS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("the client was silent for too long")]
    Timeout,
    #[error("the client closed the connection")]
    Closed,
}

/// Where a session is in the mail transaction.
#[derive(Default)]
struct Transaction {
    greeted: bool,
    mail: bool,
    recipients: Vec<Token>,
}

pub(crate) async fn serve(stream: TcpStream, shared: &Shared) -> Result<(), SessionError> {
    let (read, write) = stream.into_split();
    let mut session = Session {
        reader: BufReader::new(read),
        writer: write,
        shared,
    };
    session.run().await
}

struct Session<'a, R, W> {
    reader: BufReader<R>,
    writer: W,
    shared: &'a Shared,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Session<'_, R, W> {
    async fn run(&mut self) -> Result<(), SessionError> {
        let greeting = format!("220 {} Broadside ESMTP\r\n", self.shared.hostname);
        self.reply(&greeting).await?;
        let mut tx = Transaction::default();
        let mut errors = 0;
        loop {
            let Some(line) = self.command().await? else {
                self.reply("500 5.5.2 Line too long\r\n").await?;
                errors += 1;
                continue;
            };
            let (verb, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            let ok = match verb.to_ascii_uppercase().as_str() {
                "EHLO" => self.ehlo(&mut tx, arg).await?,
                "HELO" => {
                    tx = Transaction {
                        greeted: true,
                        ..Transaction::default()
                    };
                    let hello = format!("250 {}\r\n", self.shared.hostname);
                    self.reply(&hello).await?;
                    true
                }
                "MAIL" => self.mail(&mut tx, arg).await?,
                "RCPT" => self.rcpt(&mut tx, arg).await?,
                "DATA" => self.data(&mut tx).await?,
                "RSET" => {
                    tx = Transaction {
                        greeted: tx.greeted,
                        ..Transaction::default()
                    };
                    self.reply("250 2.0.0 Ok\r\n").await?;
                    true
                }
                "NOOP" => {
                    self.reply("250 2.0.0 Ok\r\n").await?;
                    true
                }
                "QUIT" => {
                    self.reply("221 2.0.0 Bye\r\n").await?;
                    return Ok(());
                }
                _ => {
                    self.reply("502 5.5.2 Command not recognized\r\n").await?;
                    false
                }
            };
            if !ok {
                errors += 1;
                if errors >= MAX_ERRORS {
                    self.reply("421 4.7.0 Too many errors, closing\r\n").await?;
                    return Ok(());
                }
            }
        }
    }

    async fn ehlo(&mut self, tx: &mut Transaction, arg: &str) -> Result<bool, SessionError> {
        if arg.trim().is_empty() {
            self.reply("501 5.5.4 EHLO needs a domain\r\n").await?;
            return Ok(false);
        }
        *tx = Transaction {
            greeted: true,
            ..Transaction::default()
        };
        let reply = format!(
            "250-{}\r\n250-SIZE {}\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n",
            self.shared.hostname, self.shared.max_message_size
        );
        self.reply(&reply).await?;
        Ok(true)
    }

    async fn mail(&mut self, tx: &mut Transaction, arg: &str) -> Result<bool, SessionError> {
        if !tx.greeted {
            self.reply("503 5.5.1 Say EHLO first\r\n").await?;
            return Ok(false);
        }
        if tx.mail {
            self.reply("503 5.5.1 Sender already given\r\n").await?;
            return Ok(false);
        }
        let Some(rest) = strip_prefix_ci(arg, "FROM:") else {
            self.reply("501 5.5.4 Syntax: MAIL FROM:<address>\r\n")
                .await?;
            return Ok(false);
        };
        let size = rest
            .split_whitespace()
            .skip(1)
            .find_map(|p| strip_prefix_ci(p, "SIZE=").and_then(|n| n.parse::<usize>().ok()));
        if size.is_some_and(|n| n > self.shared.max_message_size) {
            self.reply("552 5.3.4 Message too big\r\n").await?;
            return Ok(false);
        }
        tx.mail = true;
        tx.recipients.clear();
        self.reply("250 2.1.0 Ok\r\n").await?;
        Ok(true)
    }

    async fn rcpt(&mut self, tx: &mut Transaction, arg: &str) -> Result<bool, SessionError> {
        if !tx.mail {
            self.reply("503 5.5.1 MAIL first\r\n").await?;
            return Ok(false);
        }
        let Some(rest) = strip_prefix_ci(arg, "TO:") else {
            self.reply("501 5.5.4 Syntax: RCPT TO:<address>\r\n")
                .await?;
            return Ok(false);
        };
        if tx.recipients.len() >= MAX_RECIPIENTS {
            self.reply("452 4.5.3 Too many recipients\r\n").await?;
            return Ok(false);
        }
        let address = rest.split_whitespace().next().unwrap_or_default();
        match self.known_recipient(address).await {
            Some(token) => {
                tx.recipients.push(token);
                self.reply("250 2.1.5 Ok\r\n").await?;
                Ok(true)
            }
            None => {
                metrics::counter!(m::INBOUND_REFUSED, "reason" => "unknown_recipient").increment(1);
                self.reply("550 5.1.1 No such recipient here\r\n").await?;
                Ok(false)
            }
        }
    }

    /// A VERP address whose token verifies and whose campaign exists (its data
    /// may since have been dropped; the events write then fails and is counted).
    async fn known_recipient(&self, address: &str) -> Option<Token> {
        let token = verp_recipient(&self.shared.key, address)?;
        match self
            .shared
            .store
            .campaign(token.tenant, token.campaign)
            .await
        {
            Ok(Some(_)) => Some(token),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, "inbound SMTP: campaign lookup failed");
                None
            }
        }
    }

    async fn data(&mut self, tx: &mut Transaction) -> Result<bool, SessionError> {
        if tx.recipients.is_empty() {
            self.reply("503 5.5.1 RCPT first\r\n").await?;
            return Ok(false);
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>\r\n")
            .await?;
        let message = self.message().await?;
        let recipients = std::mem::take(&mut tx.recipients);
        tx.mail = false;
        let Some(message) = message else {
            metrics::counter!(m::INBOUND_REFUSED, "reason" => "too_big").increment(1);
            self.reply("552 5.3.4 Message too big\r\n").await?;
            return Ok(true);
        };
        let report = parse(&message);
        let (kind_label, event) = event_of(&report);
        metrics::counter!(m::INBOUND_MESSAGES, "kind" => kind_label).increment(1);
        if let Some((kind, detail)) = event {
            let at = Utc::now();
            for token in recipients {
                let hit = Hit {
                    tenant: token.tenant,
                    campaign: token.campaign,
                    event: TrackingEvent {
                        recipient: token.recipient,
                        kind,
                        detail: detail.clone(),
                        at,
                    },
                };
                if self.shared.events.send(hit).await.is_err() {
                    // The writer is gone (shutting down): let the sender retry.
                    self.reply("451 4.3.0 Try again later\r\n").await?;
                    return Ok(true);
                }
            }
        }
        self.reply("250 2.0.0 Ok\r\n").await?;
        Ok(true)
    }

    /// The message up to the lone dot, dot-unstuffed; `None` when it was over
    /// the size limit (read to the end all the same, to stay in sync).
    async fn message(&mut self) -> Result<Option<Vec<u8>>, SessionError> {
        let limit = self.shared.max_message_size;
        let mut message = Vec::new();
        let mut too_big = false;
        let mut at_line_start = true;
        let mut chunk = Vec::with_capacity(1024);
        loop {
            chunk.clear();
            self.read_line(MAX_CHUNK, &mut chunk).await?;
            let mut line: &[u8] = &chunk;
            if at_line_start {
                if line == b".\r\n" || line == b".\n" {
                    return Ok((!too_big).then_some(message));
                }
                if line.first() == Some(&b'.') {
                    line = &line[1..];
                }
            }
            at_line_start = chunk.ends_with(b"\n");
            if message.len() + line.len() > limit {
                too_big = true;
                message = Vec::new();
            }
            if !too_big {
                message.extend_from_slice(line);
            }
        }
    }

    /// The next command line without its line ending; `None` for an overlong
    /// line (the rest of which is skipped).
    async fn command(&mut self) -> Result<Option<String>, SessionError> {
        let mut line = Vec::with_capacity(128);
        self.read_line(MAX_COMMAND, &mut line).await?;
        if !line.ends_with(b"\n") {
            self.skip_line().await?;
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line);
        Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
    }

    async fn skip_line(&mut self) -> Result<(), SessionError> {
        let mut rest = Vec::new();
        loop {
            rest.clear();
            self.read_line(MAX_COMMAND, &mut rest).await?;
            if rest.ends_with(b"\n") {
                return Ok(());
            }
        }
    }

    /// Reads up to and including the next LF, at most `limit` bytes; an error
    /// at end of input or after the timeout.
    async fn read_line(&mut self, limit: usize, buf: &mut Vec<u8>) -> Result<(), SessionError> {
        let mut bounded = (&mut self.reader).take(limit as u64);
        let n = tokio::time::timeout(self.shared.timeout, bounded.read_until(b'\n', buf))
            .await
            .map_err(|_| SessionError::Timeout)??;
        if n == 0 {
            return Err(SessionError::Closed);
        }
        Ok(())
    }

    async fn reply(&mut self, text: &str) -> Result<(), SessionError> {
        let write = self.writer.write_all(text.as_bytes());
        tokio::time::timeout(self.shared.timeout, write)
            .await
            .map_err(|_| SessionError::Timeout)??;
        Ok(())
    }
}

/// The metric label and the event a report becomes (none for `Other`).
fn event_of(report: &Report) -> (&'static str, Option<(TrackingKind, TrackingDetail)>) {
    match report {
        Report::Bounce(bounce) => {
            let detail = TrackingDetail {
                status: Some(bounce.status.clone()),
                class: Some(bounce.class.as_str().to_owned()),
                diagnostic: bounce.diagnostic.clone(),
                ..TrackingDetail::default()
            };
            let label = match bounce.class {
                engine::inbound::BounceClass::Hard => "hard_bounce",
                engine::inbound::BounceClass::Soft => "soft_bounce",
            };
            (label, Some((TrackingKind::Bounced, detail)))
        }
        Report::Complaint(complaint) => {
            let detail = TrackingDetail {
                feedback_type: Some(complaint.feedback_type.clone()),
                user_agent: complaint.user_agent.clone(),
                ..TrackingDetail::default()
            };
            ("complaint", Some((TrackingKind::Complained, detail)))
        }
        Report::Other => ("other", None),
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text[prefix.len()..].trim_start())
}
