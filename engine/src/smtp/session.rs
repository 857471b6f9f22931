//! `SmtpSession`: one open SMTP session with a receiving server, reused for many
//! messages. A refused MAIL or RCPT is followed by RSET and the session carries
//! on: one unknown recipient must not cost a reconnect.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::client::Connection;
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
    /// The rustls configuration and the name the certificate must carry; built
    /// once per destination, since a root store is costly to build.
    tls_config: Option<(Arc<ClientConfig>, ServerName<'static>)>,
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
        let setup = |reason: String| {
            DeliveryError::transient(format!("TLS setup for {server_name}: {reason}"))
        };
        let tls_config = match tls {
            TlsMode::Disabled => None,
            TlsMode::Opportunistic | TlsMode::Required => {
                let name = ServerName::try_from(server_name.to_owned())
                    .map_err(|e| setup(e.to_string()))?;
                let config = client_config(tls).map_err(|e| setup(e.to_string()))?;
                Some((Arc::new(config), name))
            }
        };
        Ok(Self {
            ehlo_name: ehlo_name.to_owned(),
            tls,
            tls_config,
            timeouts,
        })
    }
}

/// Required: the web PKI's roots, with the host name checked. Opportunistic:
/// any certificate (encryption against passive listeners, as most MTAs do
/// towards MX hosts), but the handshake's signatures are still verified.
fn client_config(mode: TlsMode) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = if mode == TlsMode::Required {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    Ok(config)
}

/// Accepts whatever certificate the server shows; opportunistic TLS only.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An open session. Not `Sync`: one task owns it.
pub struct SmtpSession {
    conn: Connection,
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
        match (options.tls, &options.tls_config) {
            (TlsMode::Disabled, _) | (_, None) => Ok(session),
            (TlsMode::Required, Some(tls)) => session.upgrade(tls, options).await,
            (TlsMode::Opportunistic, Some(tls)) => {
                if !session.conn.extensions().starttls {
                    return Ok(session);
                }
                match session.upgrade(tls, options).await {
                    Ok(session) => Ok(session),
                    // The handshake failed: the server accepts plaintext, so deliver
                    // rather than defer forever.
                    Err(_) => Self::open(addr, options).await,
                }
            }
        }
    }

    async fn open(addr: SocketAddr, options: &SessionOptions) -> Result<Self, DeliveryError> {
        let t = options.timeouts;
        let tcp = match tokio::time::timeout(t.connect, tokio::net::TcpStream::connect(addr)).await
        {
            Err(_) => {
                let reason = format!("connect to {addr}: no connection within {:?}", t.connect);
                return Err(DeliveryError::transient(reason));
            }
            Ok(Err(err)) => {
                return Err(DeliveryError::transient(format!(
                    "connect to {addr}: {err}"
                )));
            }
            Ok(Ok(tcp)) => tcp,
        };
        // Each command and each message goes out in one write and then waits for
        // the reply; Nagle's algorithm would only hold the last segment back.
        tcp.set_nodelay(true)
            .map_err(|e| DeliveryError::transient(format!("connect to {addr}: {e}")))?;
        let conn = timed(
            t.greeting,
            "greeting",
            Connection::open(tcp, &options.ehlo_name),
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
        (config, server_name): &(Arc<ClientConfig>, ServerName<'static>),
        options: &SessionOptions,
    ) -> Result<Self, DeliveryError> {
        if !self.conn.extensions().starttls {
            return Err(DeliveryError::transient(
                "STARTTLS is required but the server does not offer it",
            ));
        }
        timed(
            options.timeouts.greeting,
            "STARTTLS",
            self.conn
                .starttls(config.clone(), server_name.clone(), &options.ehlo_name),
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
        !self.broken && !self.conn.is_broken()
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
        let eight_bit = !message.is_ascii() && self.conn.extensions().eight_bit_mime;
        let body = if eight_bit { " BODY=8BITMIME" } else { "" };
        if self.conn.extensions().pipelining {
            self.pipelined(from, to, body, timeouts).await?;
        } else {
            let mail = format!("MAIL FROM:<{from}>{body}\r\n");
            self.step(timeouts.mail, "MAIL", &mail).await?;
            let rcpt = format!("RCPT TO:<{to}>\r\n");
            self.step(timeouts.rcpt, "RCPT", &rcpt).await?;
            self.step(timeouts.data_init, "DATA", "DATA\r\n").await?;
        }
        let result = timed(timeouts.data_end, "message data", self.conn.data(message)).await;
        match result {
            Ok(reply) => {
                self.delivered += 1;
                Ok(reply)
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
        command: &str,
    ) -> Result<(), DeliveryError> {
        match timed(limit, what, self.conn.command(command, what)).await {
            Ok(_) => Ok(()),
            Err(err) => {
                let err = self.note_failure(err);
                if self.is_usable() {
                    let reset = timed(limit, "RSET", self.conn.command("RSET\r\n", "RSET")).await;
                    if reset.is_err() {
                        self.broken = true;
                    }
                }
                Err(err)
            }
        }
    }

    /// MAIL, RCPT and DATA in one write, put together in the connection's
    /// output buffer, then their three replies in order (RFC 2920): one round
    /// trip where there were three. The first negative
    /// reply is the result; a DATA accepted after a refused MAIL or RCPT gets
    /// an empty message ended at once, then the transaction is reset.
    async fn pipelined(
        &mut self,
        from: &str,
        to: &str,
        body: &str,
        timeouts: &Timeouts,
    ) -> Result<(), DeliveryError> {
        let commands = [
            "MAIL FROM:<",
            from,
            ">",
            body,
            "\r\nRCPT TO:<",
            to,
            ">\r\nDATA\r\n",
        ];
        if let Err(err) = timed(timeouts.mail, "MAIL", self.conn.write(&commands, "MAIL")).await {
            return Err(self.note_failure(err));
        }
        let mut first_error = None;
        let mut data_accepted = false;
        for (what, limit) in [
            ("MAIL", timeouts.mail),
            ("RCPT", timeouts.rcpt),
            ("DATA", timeouts.data_init),
        ] {
            match timed(limit, what, self.conn.reply(what)).await {
                Ok(_) => data_accepted = what == "DATA",
                Err(err) => {
                    // No reply at all (closed, timed out, garbled): the rest will
                    // not come either.
                    let lost = err.reply().is_none();
                    first_error.get_or_insert(err);
                    if lost {
                        self.broken = true;
                        break;
                    }
                }
            }
        }
        let Some(err) = first_error else {
            return Ok(());
        };
        let err = self.note_failure(err);
        if data_accepted && self.is_usable() {
            let ended = timed(timeouts.data_end, "message data", self.conn.data(b"")).await;
            if ended.as_ref().is_err_and(|e| e.reply().is_none()) {
                self.broken = true;
            }
        }
        if self.is_usable() {
            let reset = timed(timeouts.mail, "RSET", self.conn.command("RSET\r\n", "RSET")).await;
            if reset.is_err() {
                self.broken = true;
            }
        }
        Err(err)
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

/// Bounds a step in time; running out of time is a transient failure.
async fn timed<T>(
    limit: Duration,
    what: &'static str,
    future: impl Future<Output = Result<T, DeliveryError>>,
) -> Result<T, DeliveryError> {
    match tokio::time::timeout(limit, future).await {
        Err(_) => Err(DeliveryError::transient(format!(
            "{what}: no reply within {limit:?}"
        ))),
        Ok(result) => result,
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;

    /// A scripted server: each step reads `reads` command lines, checks them,
    /// and only then writes its replies. A client that waited for the MAIL
    /// reply before sending RCPT would stall on the second step.
    async fn scripted(steps: Vec<(Vec<&'static str>, &'static str)>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            write
                .write_all(b"220 scripted ESMTP\r\n")
                .await
                .expect("greet");
            for (expected, replies) in steps {
                for want in expected {
                    let got = lines.next_line().await.expect("read").expect("a line");
                    assert_eq!(got, want);
                }
                write.write_all(replies.as_bytes()).await.expect("reply");
            }
        });
        addr
    }

    fn options() -> SessionOptions {
        SessionOptions::new(
            "client.test",
            "server.test",
            TlsMode::Disabled,
            Timeouts::default(),
        )
        .expect("options")
    }

    const EHLO: &str = "250-scripted\r\n250-PIPELINING\r\n250 8BITMIME\r\n";

    async fn within<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .expect("the client stalled: it did not pipeline")
    }

    #[tokio::test]
    async fn mail_rcpt_and_data_go_out_together_when_the_server_pipelines() {
        let addr = scripted(vec![
            (vec!["EHLO client.test"], EHLO),
            (
                vec!["MAIL FROM:<b@s.example>", "RCPT TO:<a@r.example>", "DATA"],
                "250 ok\r\n250 ok\r\n354 go\r\n",
            ),
            (vec!["Hi", "..dot", "."], "250 2.0.0 queued\r\n"),
        ])
        .await;
        let mut session = within(SmtpSession::connect(addr, &options()))
            .await
            .expect("connects");
        let reply = within(session.deliver(
            "b@s.example",
            "a@r.example",
            b"Hi\r\n.dot\r\n",
            &Timeouts::default(),
        ))
        .await
        .expect("delivered");
        assert_eq!(reply.code, 250);
        assert_eq!(session.delivered(), 1);
    }

    /// RFC 2920: a server may still say 354 after refusing the only recipient;
    /// the client ends that empty message at once and resets.
    #[tokio::test]
    async fn a_refused_recipient_is_the_result_and_an_accepted_data_is_ended_empty() {
        let addr = scripted(vec![
            (vec!["EHLO client.test"], EHLO),
            (
                vec![
                    "MAIL FROM:<b@s.example>",
                    "RCPT TO:<gone@r.example>",
                    "DATA",
                ],
                "250 ok\r\n550 5.1.1 no such user\r\n354 go\r\n",
            ),
            (vec!["."], "554 5.5.1 no valid recipients\r\n"),
            (vec!["RSET"], "250 ok\r\n"),
            (
                vec!["MAIL FROM:<b@s.example>", "RCPT TO:<a@r.example>", "DATA"],
                "250 ok\r\n250 ok\r\n354 go\r\n",
            ),
            (vec!["Hi", "."], "250 ok\r\n"),
        ])
        .await;
        let timeouts = Timeouts::default();
        let mut session = within(SmtpSession::connect(addr, &options()))
            .await
            .expect("connects");
        let refused =
            within(session.deliver("b@s.example", "gone@r.example", b"Hi\r\n", &timeouts)).await;
        match refused {
            Err(DeliveryError::Permanent {
                reply: Some(reply), ..
            }) => assert_eq!(
                (reply.code, reply.text.as_str()),
                (550, "5.1.1 no such user")
            ),
            other => panic!("expected the RCPT's 550, got {other:?}"),
        }
        assert!(session.is_usable());
        let next =
            within(session.deliver("b@s.example", "a@r.example", b"Hi\r\n", &timeouts)).await;
        assert_eq!(next.expect("delivered").code, 250);
    }

    #[tokio::test]
    async fn a_421_to_mail_ends_the_session_and_is_the_result() {
        let addr = scripted(vec![
            (vec!["EHLO client.test"], EHLO),
            (
                vec!["MAIL FROM:<b@s.example>", "RCPT TO:<a@r.example>", "DATA"],
                "421 4.7.0 too many messages\r\n",
            ),
        ])
        .await;
        let mut session = within(SmtpSession::connect(addr, &options()))
            .await
            .expect("connects");
        let result = within(session.deliver(
            "b@s.example",
            "a@r.example",
            b"Hi\r\n",
            &Timeouts::default(),
        ))
        .await;
        let err = result.expect_err("refused");
        assert_eq!(err.reply().map(|r| r.code), Some(421), "{err:?}");
        assert!(!session.is_usable());
    }
}
