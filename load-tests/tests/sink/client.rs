//! A raw SMTP client for the sink's tests: writes exactly the bytes a test
//! asks for, so pipelining and odd splits can be exercised.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One SMTP reply: the code and the text of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

pub struct Client {
    stream: BufReader<Box<dyn Io>>,
    pub greeting: Reply,
}

impl Client {
    /// Connects and reads the greeting.
    pub async fn connect(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect to the sink");
        tcp.set_nodelay(true).expect("nodelay");
        let mut stream = BufReader::new(Box::new(tcp) as Box<dyn Io>);
        let greeting = read_reply(&mut stream).await.expect("greeting");
        Client { stream, greeting }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        let io = self.stream.get_mut();
        io.write_all(bytes).await.expect("write");
        io.flush().await.expect("flush");
    }

    /// The next reply, or `None` if the server closed the connection.
    pub async fn reply(&mut self) -> Option<Reply> {
        read_reply(&mut self.stream).await
    }

    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await.expect("a reply")
    }

    pub async fn ehlo(&mut self) -> Reply {
        let reply = self.cmd("EHLO client.test").await;
        assert_eq!(reply.code, 250, "{reply:?}");
        reply
    }

    /// STARTTLS, trusting exactly `certificate`.
    pub async fn starttls(self, certificate: CertificateDer<'static>) -> Client {
        let mut this = self;
        assert_eq!(this.cmd("STARTTLS").await.code, 220);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                certificate,
                provider,
            }))
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from("localhost").expect("name");
        let tls = connector
            .connect(name, this.stream.into_inner())
            .await
            .expect("TLS handshake");
        Client {
            stream: BufReader::new(Box::new(tls) as Box<dyn Io>),
            greeting: this.greeting,
        }
    }

    /// MAIL, RCPT..., DATA and the stuffed body in one write, as a pipelining
    /// client does; returns every reply in order.
    pub async fn send_pipelined(&mut self, from: &str, rcpts: &[&str], body: &[u8]) -> Vec<Reply> {
        let mut out = format!("MAIL FROM:<{from}>\r\n").into_bytes();
        for rcpt in rcpts {
            out.extend_from_slice(format!("RCPT TO:<{rcpt}>\r\n").as_bytes());
        }
        out.extend_from_slice(b"DATA\r\n");
        self.send(&out).await;
        let mut replies = Vec::new();
        for _ in 0..rcpts.len() + 2 {
            replies.push(self.reply().await.expect("reply"));
        }
        if replies.last().is_some_and(|r| r.code == 354) {
            self.send(&wire_body(body)).await;
            replies.push(self.reply().await.expect("reply after data"));
        }
        replies
    }

    /// One message, command by command; returns the final reply (the first
    /// failing one if the transaction did not get to the body).
    pub async fn deliver(&mut self, from: &str, rcpts: &[&str], body: &[u8]) -> Reply {
        let reply = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        if reply.code != 250 {
            return reply;
        }
        for rcpt in rcpts {
            let reply = self.cmd(&format!("RCPT TO:<{rcpt}>")).await;
            if reply.code != 250 {
                self.cmd("RSET").await;
                return reply;
            }
        }
        let reply = self.cmd("DATA").await;
        if reply.code != 354 {
            return reply;
        }
        self.send(&wire_body(body)).await;
        self.reply().await.expect("reply after data")
    }
}

/// The body as sent after DATA: stuffed, ending in CRLF, then the terminator.
pub fn wire_body(body: &[u8]) -> Vec<u8> {
    let mut data = broadside_load_tests::sink::dot_stuff(body);
    if !data.ends_with(b"\r\n") {
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    data
}

async fn read_reply(stream: &mut BufReader<Box<dyn Io>>) -> Option<Reply> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        match stream.read_line(&mut line).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let line = line.trim_end();
        assert!(line.len() >= 3, "short reply line {line:?}");
        let code: u16 = line[..3].parse().expect("reply code");
        lines.push(line.get(4..).unwrap_or("").to_owned());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Some(Reply { code, lines });
        }
    }
}

/// Accepts exactly one certificate, but still checks the handshake
/// signatures, so the test exercises real TLS rather than a disabled check.
#[derive(Debug)]
struct Pinned {
    certificate: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.certificate.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the sink's certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
