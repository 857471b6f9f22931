//! `SmtpSession`: one open SMTP session with a receiving server, reused for many
//! messages. Built on lettre's low-level connection rather than its `send`, because
//! `send` closes the session on any negative reply, and one unknown recipient must
//! not cost a reconnect: here a refused MAIL or RCPT is followed by RSET and the
//! session carries on.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::{ClientId, Extension};
use lettre::transport::smtp::response::Response;

use super::reply::{DeliveryError, Reply};

/// How STARTTLS is used towards a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Never (tests and trusted local relays only).
    Disabled,
    /// When offered, without certificate checks (like most MTAs towards MX hosts:
    /// encryption against passive listeners); plaintext when not offered or when
    /// the handshake fails.
    #[default]
    Opportunistic,
    /// Always, with a verified certificate; otherwise the message is deferred.
    Required,
}

impl std::str::FromStr for TlsMode {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "disabled" => Ok(TlsMode::Disabled),
            "opportunistic" => Ok(TlsMode::Opportunistic),
            "required" => Ok(TlsMode::Required),
            _ => Err(r#"expected "disabled", "opportunistic" or "required""#.to_owned()),
        }
    }
}

/// Per-phase time limits, defaults from RFC 5321 section 4.5.3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Waiting for the 220 greeting and the EHLO reply.
    pub greeting: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    /// Waiting for the 354 after DATA.
    pub data_init: Duration,
    /// Sending the body and waiting for the final reply.
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(30),
            greeting: Duration::from_secs(300),
            mail: Duration::from_secs(300),
            rcpt: Duration::from_secs(300),
            data_init: Duration::from_secs(120),
            data_end: Duration::from_secs(600),
        }
    }
}

/// What a session needs to open; built once per destination, cloned per session.
#[derive(Clone)]
pub struct SessionOptions {
    /// The name we announce in EHLO.
    pub ehlo_name: String,
    pub tls: TlsMode,
    /// Built once per destination: lettre builds a fresh root store on every
    /// `build_rustls`, far too costly per connection.
    pub tls_parameters: Option<TlsParameters>,
    pub timeouts: Timeouts,
}

impl std::fmt::Debug for SessionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionOptions")
            .field("ehlo_name", &self.ehlo_name)
            .field("tls", &self.tls)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl SessionOptions {
    /// Options for `server_name` (the MX host name, checked against the certificate
    /// when TLS is required).
    pub fn new(
        ehlo_name: &str,
        server_name: &str,
        tls: TlsMode,
        timeouts: Timeouts,
    ) -> Result<Self, DeliveryError> {
        let tls_parameters = match tls {
            TlsMode::Disabled => None,
            TlsMode::Opportunistic => Some(
                TlsParameters::builder(server_name.to_owned())
                    .dangerous_accept_invalid_certs(true)
                    .dangerous_accept_invalid_hostnames(true)
                    .build_rustls(),
            ),
            TlsMode::Required => {
                Some(TlsParameters::builder(server_name.to_owned()).build_rustls())
            }
        }
        .transpose()
        .map_err(|e| DeliveryError::transient(format!("TLS setup for {server_name}: {e}")))?;
        Ok(Self {
            ehlo_name: ehlo_name.to_owned(),
            tls,
            tls_parameters,
            timeouts,
        })
    }
}

/// An open session. Not `Sync`: one task owns it.
pub struct SmtpSession {
    conn: AsyncSmtpConnection,
    encrypted: bool,
    delivered: u32,
    broken: bool,
}

impl std::fmt::Debug for SmtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSession")
            .field("encrypted", &self.encrypted)
            .field("delivered", &self.delivered)
            .field("broken", &self.broken)
            .finish()
    }
}

impl SmtpSession {
    /// Connects, reads the greeting, says EHLO and upgrades with STARTTLS as the
    /// options say.
    pub async fn connect(
        addr: SocketAddr,
        options: &SessionOptions,
    ) -> Result<Self, DeliveryError> {
        let session = Self::open(addr, options).await?;
        match (options.tls, &options.tls_parameters) {
            (TlsMode::Disabled, _) | (_, None) => Ok(session),
            (TlsMode::Required, Some(params)) => session.upgrade(params, options).await,
            (TlsMode::Opportunistic, Some(params)) => {
                if !session.conn.can_starttls() {
                    return Ok(session);
                }
                match session.upgrade(params, options).await {
                    Ok(session) => Ok(session),
                    // The handshake failed: the server accepts plaintext, so deliver
                    // rather than defer forever.
                    Err(_) => Self::open(addr, options).await,
                }
            }
        }
    }

    async fn open(addr: SocketAddr, options: &SessionOptions) -> Result<Self, DeliveryError> {
        let hello = ClientId::Domain(options.ehlo_name.clone());
        let t = options.timeouts;
        let tcp = match tokio::time::timeout(t.connect, tokio::net::TcpStream::connect(addr)).await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(err)) => return Err(DeliveryError::transient(format!("connect: {err}"))),
            Err(_) => {
                return Err(DeliveryError::transient(format!(
                    "connect: no connection within {:?}",
                    t.connect
                )));
            }
        };
        // lettre writes the body and the final "\r\n.\r\n" separately; with Nagle
        // the second write waits for the server's delayed ACK (40 ms on Linux), which
        // capped every session at about 20 messages a second.
        tcp.set_nodelay(true)
            .map_err(|e| DeliveryError::transient(format!("connect: {e}")))?;
        let conn = timed(
            t.greeting,
            "greeting",
            AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello),
        )
        .await?;
        Ok(Self {
            conn,
            encrypted: false,
            delivered: 0,
            broken: false,
        })
    }

    async fn upgrade(
        mut self,
        params: &TlsParameters,
        options: &SessionOptions,
    ) -> Result<Self, DeliveryError> {
        if !self.conn.can_starttls() {
            return Err(DeliveryError::transient(
                "STARTTLS is required but the server does not offer it",
            ));
        }
        let hello = ClientId::Domain(options.ehlo_name.clone());
        timed(
            options.timeouts.greeting,
            "STARTTLS",
            self.conn.starttls(params.clone(), &hello),
        )
        .await?;
        self.encrypted = true;
        Ok(self)
    }

    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Messages accepted on this session so far.
    pub fn delivered(&self) -> u32 {
        self.delivered
    }

    /// False once the session can no longer be used (network error, timeout, 421).
    pub fn is_usable(&self) -> bool {
        !self.broken && !self.conn.has_broken()
    }

    /// Sends one message to one recipient. On a refused MAIL or RCPT the
    /// transaction is reset and the session stays usable.
    pub async fn deliver(
        &mut self,
        from: &str,
        to: &str,
        message: &[u8],
        timeouts: &Timeouts,
    ) -> Result<Reply, DeliveryError> {
        let mut mail = format!("MAIL FROM:<{from}>");
        if !message.is_ascii()
            && self
                .conn
                .server_info()
                .supports_feature(Extension::EightBitMime)
        {
            mail.push_str(" BODY=8BITMIME");
        }
        mail.push_str("\r\n");
        self.step(timeouts.mail, "MAIL", mail).await?;
        self.step(timeouts.rcpt, "RCPT", format!("RCPT TO:<{to}>\r\n"))
            .await?;
        self.step(timeouts.data_init, "DATA", "DATA\r\n".to_owned())
            .await?;
        // lettre always ends the data with "\r\n.\r\n"; a message that already
        // ends with CRLF would gain an empty line, so that CRLF is left to lettre.
        let body = message.strip_suffix(b"\r\n").unwrap_or(message);
        let result = timed(timeouts.data_end, "message data", self.conn.message(body)).await;
        match result {
            Ok(response) => {
                self.delivered += 1;
                Ok(to_reply(&response))
            }
            Err(err) => Err(self.note_failure(err)),
        }
    }

    /// Says QUIT and closes; errors are irrelevant at that point.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.conn.quit()).await;
    }

    /// Runs one command of the transaction; after a negative reply, resets.
    async fn step(
        &mut self,
        limit: Duration,
        what: &'static str,
        command: String,
    ) -> Result<(), DeliveryError> {
        match timed(limit, what, self.conn.command(command)).await {
            Ok(_) => Ok(()),
            Err(err) => {
                let err = self.note_failure(err);
                if self.is_usable() {
                    let reset = timed(limit, "RSET", self.conn.command("RSET\r\n")).await;
                    if reset.is_err() {
                        self.broken = true;
                    }
                }
                Err(err)
            }
        }
    }

    /// Marks the session broken when the failure leaves its state unknown.
    fn note_failure(&mut self, err: DeliveryError) -> DeliveryError {
        let keeps_session = err.reply().is_some_and(|r| r.code != 421);
        if !keeps_session {
            self.broken = true;
        }
        err
    }
}

/// Bounds a step in time and turns lettre's errors into delivery errors.
async fn timed<T>(
    limit: Duration,
    what: &'static str,
    future: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, DeliveryError> {
    match tokio::time::timeout(limit, future).await {
        Err(_) => Err(DeliveryError::transient(format!(
            "{what}: no reply within {limit:?}"
        ))),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(classify(what, &err)),
    }
}

fn to_reply(response: &Response) -> Reply {
    let code = response.code().to_string().parse().unwrap_or(250);
    Reply::new(code, response.message().collect::<Vec<_>>().join(" "))
}

fn classify(what: &str, err: &lettre::transport::smtp::Error) -> DeliveryError {
    match err.status() {
        Some(code) => {
            let code = code.to_string().parse().unwrap_or(451);
            let text = std::error::Error::source(err)
                .map(ToString::to_string)
                .unwrap_or_default();
            DeliveryError::from_reply(Reply::new(code, text))
        }
        None => DeliveryError::transient(format!("{what}: {err}")),
    }
}
