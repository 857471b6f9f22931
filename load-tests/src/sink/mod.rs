//! The SMTP test sink: an ESMTP server on loopback that accepts, records and,
//! when scripted to, mistreats what Broadside delivers. Tests, the demo and
//! the load tests all start it through [`start`].
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use broadside_load_tests::sink::{self, SinkConfig};
//! let sink = sink::start(SinkConfig::default()).await?;
//! // ... deliver to sink.addr ...
//! let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
//! assert!(sink.recorder.wait_for_messages(1, deadline).await);
//! sink.shutdown().await;
//! # Ok(()) }
//! ```

mod command;
mod conn;
mod data;
mod faults;
mod record;
mod session;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use data::dot_stuff;
pub use faults::{FaultAction, FaultRule, Stage, share_point};
pub use record::{MessageRecord, RcptTally, Recorder, SinkStats};

use faults::Faults;
use tls::TlsMaterial;

/// How long [`SinkHandle::shutdown`] lets sessions finish before it drops them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The sink's settings; every key has a default, so a scenario file names only
/// what it changes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    /// Where to listen; port 0 picks a free port (see [`SinkHandle::addr`]).
    pub bind: SocketAddr,
    /// Name in the greeting and EHLO reply, and in the self-signed certificate.
    pub hostname: String,
    /// Largest body accepted, advertised as `SIZE`; larger ones get 552 5.3.4.
    pub max_message_size: u64,
    /// Offer STARTTLS (the engine's opportunistic TLS path is then exercised).
    pub starttls: bool,
    /// Offer PIPELINING (RFC 2920); off, clients wait for each reply.
    pub pipelining: bool,
    /// PEM certificate chain instead of a generated self-signed certificate.
    pub tls_cert_pem: Option<PathBuf>,
    /// PEM private key for `tls_cert_pem`.
    pub tls_key_pem: Option<PathBuf>,
    /// Keep each body in memory ([`MessageRecord::bytes`]) for content checks.
    /// Off by default: a digest is enough to compare and costs no memory.
    pub keep_bytes: bool,
    /// Write accepted messages as `.eml` files here (the demo's samples).
    pub eml_dir: Option<PathBuf>,
    /// At most this many `.eml` files, so a load run cannot fill the disk.
    pub eml_limit: usize,
    /// Message records kept in memory; counts go on past it.
    pub record_limit: usize,
    /// Delay before each batch of replies on every connection, in ms.
    pub reply_delay_ms: u64,
    /// Share of recipients (by a stable hash) that get 451 at RCPT on their
    /// first attempt only, so that retries succeed.
    pub tempfail_share: f64,
    /// Share of recipients (disjoint from `tempfail_share`) that always get
    /// 550 5.1.1 at RCPT.
    pub permfail_share: f64,
    /// Scripted faults, evaluated in order; the first that changes a reply wins.
    pub faults: Vec<FaultRule>,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            hostname: "sink.broadside.test".to_owned(),
            max_message_size: 10 * 1024 * 1024,
            starttls: true,
            pipelining: true,
            tls_cert_pem: None,
            tls_key_pem: None,
            keep_bytes: false,
            eml_dir: None,
            eml_limit: 100,
            record_limit: 100_000,
            reply_delay_ms: 0,
            tempfail_share: 0.0,
            permfail_share: 0.0,
            faults: Vec::new(),
        }
    }
}

impl SinkConfig {
    /// Parses a TOML scenario (all keys optional).
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        toml::from_str(text).context("invalid sink configuration")
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in {}", path.display()))
    }
}

/// What every session reads, built once from the config.
pub(crate) struct Shared {
    hostname: String,
    pipelining: bool,
    max_message_size: u64,
    keep_bytes: bool,
    eml_dir: Option<PathBuf>,
    eml_limit: usize,
    /// `.eml` slots taken so far (reserved before writing).
    eml_taken: AtomicUsize,
    tls: Option<TlsMaterial>,
    faults: Faults,
    recorder: Arc<Recorder>,
}

impl Shared {
    fn new(config: &SinkConfig) -> anyhow::Result<Self> {
        let tls = match (config.starttls, &config.tls_cert_pem, &config.tls_key_pem) {
            (false, _, _) => None,
            (true, Some(cert), Some(key)) => Some(TlsMaterial::from_pem(cert, key)?),
            (true, None, None) => Some(TlsMaterial::self_signed(&config.hostname)?),
            (true, _, _) => anyhow::bail!("tls_cert_pem and tls_key_pem go together"),
        };
        if let Some(dir) = &config.eml_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(Shared {
            hostname: config.hostname.clone(),
            pipelining: config.pipelining,
            max_message_size: config.max_message_size,
            keep_bytes: config.keep_bytes,
            eml_dir: config.eml_dir.clone(),
            eml_limit: config.eml_limit,
            eml_taken: AtomicUsize::new(0),
            tls,
            faults: Faults::compile(
                &config.faults,
                config.permfail_share,
                config.tempfail_share,
                Duration::from_millis(config.reply_delay_ms),
            )?,
            recorder: Arc::new(Recorder::new(config.record_limit)),
        })
    }

    /// Whether another `.eml` file may still be written (bodies are then kept
    /// while reading).
    fn eml_wanted(&self) -> bool {
        self.eml_dir.is_some() && self.eml_taken.load(Ordering::Relaxed) < self.eml_limit
    }

    /// Reserves an `.eml` slot and builds the file: the body behind the
    /// envelope headers a local delivery agent would add.
    fn eml_file(&self, from: &str, rcpts: &[String], body: &[u8]) -> Option<(PathBuf, Vec<u8>)> {
        let dir = self.eml_dir.as_ref()?;
        if self.eml_taken.fetch_add(1, Ordering::Relaxed) >= self.eml_limit {
            return None;
        }
        let mut content = format!("Return-Path: <{from}>\r\n").into_bytes();
        for rcpt in rcpts {
            content.extend_from_slice(format!("Delivered-To: {rcpt}\r\n").as_bytes());
        }
        content.extend_from_slice(body);
        Some((dir.clone(), content))
    }
}

/// A running sink. Dropping it stops the sink too (without waiting).
pub struct SinkHandle {
    /// The bound address (the real port when the config asked for port 0).
    pub addr: SocketAddr,
    /// Everything the sink recorded, live.
    pub recorder: Arc<Recorder>,
    /// The STARTTLS certificate, so clients can pin it; `None` without STARTTLS.
    pub certificate: Option<CertificateDer<'static>>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SinkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkHandle")
            .field("addr", &self.addr)
            .field("stats", &self.recorder.stats())
            .finish_non_exhaustive()
    }
}

impl SinkHandle {
    /// Stops accepting, tells idle sessions `421` and waits (up to a grace
    /// period) for sessions in a transaction to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Binds and starts the sink on the current tokio runtime (any flavour; it
/// only uses `tokio::spawn`).
pub async fn start(config: SinkConfig) -> anyhow::Result<SinkHandle> {
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding the sink to {}", config.bind))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(&config)?);
    let (tx, rx) = watch::channel(false);
    let recorder = Arc::clone(&shared.recorder);
    let certificate = shared.tls.as_ref().map(|t| t.certificate.clone());
    let task = tokio::spawn(run(listener, shared, rx));
    Ok(SinkHandle {
        addr,
        recorder,
        certificate,
        shutdown: tx,
        task: Some(task),
    })
}

/// Accepts until `shutdown` fires, then drains the sessions.
async fn run(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    sessions.spawn(session::serve(tcp, Arc::clone(&shared), shutdown.clone()));
                }
                // Out of descriptors or an aborted handshake: wait a moment
                // rather than spin on the error.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while sessions.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        sessions.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_scenario_file_parses_and_compiles() {
        let config = SinkConfig::from_toml(include_str!("../../sink-faults.example.toml"))
            .expect("the example parses");
        assert_eq!(config.faults.len(), 6);
        let faults = Faults::compile(
            &config.faults,
            config.permfail_share,
            config.tempfail_share,
            Duration::ZERO,
        );
        assert!(faults.is_ok(), "{faults:?}");
    }

    #[test]
    fn unknown_keys_in_a_scenario_are_rejected() {
        assert!(SinkConfig::from_toml("tempfail = 0.1").is_err());
    }
}
