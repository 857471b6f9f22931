//! One SMTP session: reads pipelined commands from a buffered reader, queues
//! the replies and writes them in one batch when the client has nothing more
//! in flight, records each accepted message.

use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::Shared;
use super::command::{self, Command};
use super::conn::Conn;
use super::data::DataDecoder;
use super::faults::{ConnectionFaults, Stage, Verdict};
use super::record::MessageRecord;

/// Longest command line accepted, CRLF included. RFC 5321 asks for 512;
/// more leaves room for long addresses plus ESMTP parameters.
const MAX_COMMAND_LINE: usize = 2048;
/// RFC 5321's minimum a server must accept, and a cap on memory per message.
const MAX_RECIPIENTS: usize = 1000;
/// Read buffer: large enough that a 10 KB message usually arrives in one read.
const READ_BUFFER: usize = 64 * 1024;
/// Replies are written early if a client pipelines this much without pausing.
const MAX_PENDING_OUTPUT: usize = 16 * 1024;

/// What the session does after a command.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// Send what is queued, then close.
    Close,
}

/// How a command line read ended.
enum Line {
    Complete,
    TooLong,
    Eof,
}

/// How a message body read ended.
enum Body {
    Complete {
        size: u64,
        sha256: [u8; 32],
        bytes: Option<Vec<u8>>,
    },
    TooBig,
    /// A `disconnect` fault fired mid-body.
    Disconnect,
}

/// Serves one accepted connection until QUIT, a fault, an error or shutdown.
pub(crate) async fn serve(tcp: TcpStream, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    // Replies are batched by hand; Nagle would only add delayed-ACK stalls.
    let _ = tcp.set_nodelay(true);
    let id = shared.recorder.connection_opened();
    let mut session = Session {
        faults: ConnectionFaults {
            messages: 0,
            delay: shared.faults.base_delay,
        },
        shared,
        reader: BufReader::with_capacity(READ_BUFFER, Conn::Plain(tcp)),
        out: Vec::with_capacity(1024),
        line: Vec::with_capacity(256),
        id,
        tls: false,
        greeted: false,
        mail_from: None,
        size_hint: None,
        rcpts: Vec::new(),
    };
    // Errors here are the client's (resets, EOF mid-body); the session ends
    // either way and nothing half-received is recorded.
    let _ = session.run(shutdown).await;
    let _ = session.reader.get_mut().shutdown().await;
    session.shared.recorder.connection_closed();
}

struct Session {
    shared: Arc<Shared>,
    reader: BufReader<Conn>,
    /// Replies not yet written; flushed when the input runs dry.
    out: Vec<u8>,
    /// The current command line, reused so reading allocates nothing.
    line: Vec<u8>,
    /// Connection id in the recorder.
    id: u64,
    tls: bool,
    /// EHLO/HELO seen since connect or since STARTTLS.
    greeted: bool,
    mail_from: Option<String>,
    /// The client's SIZE= hint, to size the body buffer once.
    size_hint: Option<u64>,
    rcpts: Vec<String>,
    faults: ConnectionFaults,
}

impl Session {
    async fn run(&mut self, mut shutdown: watch::Receiver<bool>) -> io::Result<()> {
        let greeting = format!("{} ESMTP Broadside sink", self.shared.hostname);
        self.reply_plain(220, &greeting);
        loop {
            let line = tokio::select! {
                biased;
                line = self.read_line() => line?,
                _ = shutdown.changed() => {
                    self.reply(421, "4.3.2", "Sink shutting down");
                    return self.flush().await;
                }
            };
            let flow = match line {
                Line::Eof => return Ok(()),
                Line::TooLong => {
                    self.reply(500, "5.5.2", "Line too long");
                    Flow::Continue
                }
                Line::Complete => self.dispatch().await?,
            };
            if flow == Flow::Close {
                return self.flush().await;
            }
        }
    }

    async fn dispatch(&mut self) -> io::Result<Flow> {
        let line = std::mem::take(&mut self.line);
        let text = trim_crlf(&line);
        let flow = match std::str::from_utf8(text) {
            Err(_) => {
                self.reply(500, "5.5.2", "Invalid characters in command");
                Flow::Continue
            }
            Ok(text) => self.command(command::parse(text)).await?,
        };
        self.line = line;
        Ok(flow)
    }

    async fn command(&mut self, command: Command<'_>) -> io::Result<Flow> {
        match command {
            Command::Ehlo(_) => self.ehlo(),
            Command::Helo(_) => {
                self.greeted = true;
                self.reset();
                let shared = Arc::clone(&self.shared);
                self.reply_plain(250, &shared.hostname);
            }
            Command::Mail { from, size } => return Ok(self.mail(from, size)),
            Command::Rcpt(rcpt) => return Ok(self.rcpt(rcpt)),
            Command::Data => return self.data().await,
            Command::Rset => {
                self.reset();
                self.reply(250, "2.0.0", "Ok");
            }
            Command::Noop => self.reply(250, "2.0.0", "Ok"),
            Command::Quit => {
                self.reply(221, "2.0.0", "Bye");
                return Ok(Flow::Close);
            }
            Command::StartTls => self.start_tls().await?,
            Command::Vrfy => self.reply(252, "2.5.0", "Cannot VRFY, but will accept the message"),
            Command::Help => self.reply(214, "2.0.0", "See RFC 5321"),
            Command::Syntax(text) => self.reply(501, "5.5.4", text),
            Command::Unknown => self.reply(500, "5.5.2", "Command not recognized"),
        }
        Ok(Flow::Continue)
    }

    fn ehlo(&mut self) {
        self.greeted = true;
        self.reset();
        let out = &mut self.out;
        out.extend_from_slice(b"250-");
        out.extend_from_slice(self.shared.hostname.as_bytes());
        out.extend_from_slice(b"\r\n");
        if self.shared.pipelining {
            out.extend_from_slice(b"250-PIPELINING\r\n");
        }
        out.extend_from_slice(b"250-8BITMIME\r\n250-SIZE ");
        out.extend_from_slice(self.shared.max_message_size.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        if self.shared.tls.is_some() && !self.tls {
            out.extend_from_slice(b"250-STARTTLS\r\n");
        }
        out.extend_from_slice(b"250 ENHANCEDSTATUSCODES\r\n");
        self.shared.recorder.reply_sent(250);
    }

    fn mail(&mut self, from: &str, size: Option<u64>) -> Flow {
        if !self.greeted {
            self.reply(503, "5.5.1", "Send EHLO first");
        } else if self.mail_from.is_some() {
            self.reply(503, "5.5.1", "Nested MAIL command");
        } else if size.is_some_and(|s| s > self.shared.max_message_size) {
            self.reply(552, "5.3.4", "Message size exceeds fixed limit");
        } else {
            let verdict = self
                .shared
                .faults
                .check(Stage::Mail, from, &[from], &mut self.faults);
            if let Some(flow) = self.apply(verdict) {
                return flow;
            }
            self.mail_from = Some(from.to_owned());
            self.size_hint = size;
            self.reply(250, "2.1.0", "Ok");
        }
        Flow::Continue
    }

    fn rcpt(&mut self, rcpt: &str) -> Flow {
        let Some(from) = self.mail_from.as_deref() else {
            self.reply(503, "5.5.1", "Need MAIL before RCPT");
            return Flow::Continue;
        };
        if self.rcpts.len() >= MAX_RECIPIENTS {
            self.reply(452, "4.5.3", "Too many recipients");
            return Flow::Continue;
        }
        let verdict = self
            .shared
            .faults
            .check(Stage::Rcpt, from, &[rcpt], &mut self.faults);
        let transient = match &verdict {
            Verdict::Reply(r) => (400..500).contains(&r.code),
            Verdict::CloseWith421 => true,
            Verdict::Pass | Verdict::Disconnect { .. } => false,
        };
        if transient {
            self.shared.recorder.rcpt_deferred(rcpt);
        }
        if let Some(flow) = self.apply(verdict) {
            return flow;
        }
        self.rcpts.push(rcpt.to_owned());
        self.reply(250, "2.1.5", "Ok");
        Flow::Continue
    }

    async fn data(&mut self) -> io::Result<Flow> {
        if self.mail_from.is_none() {
            self.reply(503, "5.5.1", "Need MAIL before DATA");
            return Ok(Flow::Continue);
        }
        if self.rcpts.is_empty() {
            self.reply(554, "5.5.1", "No valid recipients");
            return Ok(Flow::Continue);
        }
        let mut disconnect_after = None;
        match self.check_transaction(Stage::Data) {
            Verdict::Disconnect { after_bytes } => disconnect_after = Some(after_bytes),
            verdict => {
                if let Some(flow) = self.apply(verdict) {
                    self.reset();
                    return Ok(flow);
                }
            }
        }
        self.reply(354, "", "End data with <CR><LF>.<CR><LF>");
        let body = self.read_body(disconnect_after).await?;
        let flow = self.finish_message(body).await;
        self.reset();
        Ok(flow)
    }

    async fn finish_message(&mut self, body: Body) -> Flow {
        let (size, sha256, bytes) = match body {
            Body::Disconnect => return Flow::Close,
            Body::TooBig => {
                self.reply(552, "5.3.4", "Message size exceeds fixed limit");
                return Flow::Continue;
            }
            Body::Complete {
                size,
                sha256,
                bytes,
            } => (size, sha256, bytes),
        };
        let verdict = self.check_transaction(Stage::EndOfData);
        if let Some(flow) = self.apply(verdict) {
            return flow;
        }
        let mail_from = self.mail_from.take().unwrap_or_default();
        let rcpt_to = std::mem::take(&mut self.rcpts);
        let eml = bytes
            .as_deref()
            .and_then(|b| self.shared.eml_file(&mail_from, &rcpt_to, b));
        let record = MessageRecord {
            seq: 0,
            connection: self.id,
            mail_from,
            rcpt_to,
            size,
            sha256,
            bytes: bytes.filter(|_| self.shared.keep_bytes),
            tls: self.tls,
            received_at: SystemTime::now(),
        };
        let seq = self.shared.recorder.message_accepted(record);
        self.faults.messages += 1;
        if let Some((dir, content)) = eml {
            write_eml(dir.join(format!("{seq:08}.eml")), content).await;
        }
        self.reply(250, "2.0.0", &format!("Ok: queued as {seq}"));
        Flow::Continue
    }

    fn check_transaction(&mut self, stage: Stage) -> Verdict {
        if !self.shared.faults.any_at(stage) {
            return Verdict::Pass;
        }
        let from = self.mail_from.as_deref().unwrap_or_default();
        let rcpts: Vec<&str> = self.rcpts.iter().map(String::as_str).collect();
        self.shared
            .faults
            .check(stage, from, &rcpts, &mut self.faults)
    }

    /// Turns a fault verdict into replies; `None` means proceed normally.
    fn apply(&mut self, verdict: Verdict) -> Option<Flow> {
        match verdict {
            Verdict::Pass => None,
            Verdict::Reply(r) => {
                self.reply(r.code, &r.enhanced, &r.text);
                Some(Flow::Continue)
            }
            Verdict::CloseWith421 => {
                self.reply(
                    421,
                    "4.7.0",
                    "Too many messages on this connection, closing",
                );
                Some(Flow::Close)
            }
            Verdict::Disconnect { .. } => Some(Flow::Close),
        }
    }

    async fn start_tls(&mut self) -> io::Result<()> {
        let Some(tls) = self.shared.tls.clone() else {
            self.reply(502, "5.5.1", "STARTTLS not available");
            return Ok(());
        };
        if self.tls {
            self.reply(503, "5.5.1", "TLS already active");
            return Ok(());
        }
        self.reply(220, "2.0.0", "Ready to start TLS");
        self.flush().await?;
        // Anything pipelined after STARTTLS was sent in clear text and must
        // not be trusted (RFC 3207 §4.2, the command injection attack).
        let buffered = self.reader.buffer().len();
        self.reader.consume(buffered);
        let Conn::Plain(tcp) = std::mem::replace(self.reader.get_mut(), Conn::Upgrading) else {
            return Err(io::Error::other("STARTTLS on a non-plain socket"));
        };
        let stream = tls.acceptor.accept(tcp).await?;
        *self.reader.get_mut() = Conn::Tls(Box::new(stream));
        self.tls = true;
        self.greeted = false;
        self.reset();
        Ok(())
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.size_hint = None;
        self.rcpts.clear();
    }

    /// Queues a reply with an enhanced status code (empty for none).
    fn reply(&mut self, code: u16, enhanced: &str, text: &str) {
        push_code(&mut self.out, code, b' ');
        if !enhanced.is_empty() {
            self.out.extend_from_slice(enhanced.as_bytes());
            self.out.push(b' ');
        }
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self.shared.recorder.reply_sent(code);
    }

    fn reply_plain(&mut self, code: u16, text: &str) {
        self.reply(code, "", text);
    }

    /// Writes the queued replies, after the connection's delay: one delay
    /// per batch, so pipelined commands share a round trip as on a real link.
    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        if !self.faults.delay.is_zero() {
            tokio::time::sleep(self.faults.delay).await;
        }
        let conn = self.reader.get_mut();
        conn.write_all(&self.out).await?;
        conn.flush().await?;
        self.out.clear();
        Ok(())
    }

    /// Flushes when the client has nothing more buffered (it is waiting for
    /// our replies) or when a long pipeline has queued a lot.
    async fn flush_if_idle(&mut self) -> io::Result<()> {
        if self.reader.buffer().is_empty() || self.out.len() >= MAX_PENDING_OUTPUT {
            self.flush().await?;
        }
        Ok(())
    }

    async fn read_line(&mut self) -> io::Result<Line> {
        self.line.clear();
        let mut too_long = false;
        loop {
            self.flush_if_idle().await?;
            let buf = self.reader.fill_buf().await?;
            if buf.is_empty() {
                return Ok(Line::Eof);
            }
            let (take, done) = match memchr::memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if !too_long && self.line.len() + take > MAX_COMMAND_LINE {
                // Keep reading to the end of the line, but not into memory.
                too_long = true;
                self.line.clear();
            }
            if !too_long {
                self.line.extend_from_slice(&buf[..take]);
            }
            self.reader.consume(take);
            if done {
                return Ok(if too_long {
                    Line::TooLong
                } else {
                    Line::Complete
                });
            }
        }
    }

    async fn read_body(&mut self, disconnect_after: Option<u64>) -> io::Result<Body> {
        let max = self.shared.max_message_size;
        let keep = self.shared.keep_bytes || self.shared.eml_wanted();
        let capacity = self.size_hint.unwrap_or(16 * 1024).min(max) as usize;
        let mut bytes = keep.then(|| Vec::with_capacity(capacity));
        let mut hasher = Sha256::new();
        let mut decoder = DataDecoder::new();
        let (mut size, mut received) = (0u64, 0u64);
        loop {
            self.flush_if_idle().await?;
            let chunk = self.reader.fill_buf().await?;
            if chunk.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let end = decoder.feed(chunk, |segment| {
                size += segment.len() as u64;
                // Past the limit, keep reading to the terminator but stop
                // spending time and memory on the content.
                if size <= max {
                    hasher.update(segment);
                    if let Some(bytes) = bytes.as_mut() {
                        bytes.extend_from_slice(segment);
                    }
                }
            });
            let used = end.unwrap_or(chunk.len());
            self.reader.consume(used);
            received += used as u64;
            if disconnect_after.is_some_and(|after| received >= after) {
                return Ok(Body::Disconnect);
            }
            if end.is_some() {
                break;
            }
        }
        if size > max {
            return Ok(Body::TooBig);
        }
        Ok(Body::Complete {
            size,
            sha256: hasher.finalize().into(),
            bytes,
        })
    }
}

fn push_code(out: &mut Vec<u8>, code: u16, separator: u8) {
    let code = code.min(999);
    out.extend_from_slice(&[
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
        separator,
    ]);
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

async fn write_eml(path: std::path::PathBuf, content: Vec<u8>) {
    if let Err(error) = tokio::fs::write(&path, content).await {
        // The demo reads these; a failure must be visible but must not fail
        // the delivery the sender already completed.
        eprintln!("broadside-sink: cannot write {}: {error}", path.display());
    }
}
