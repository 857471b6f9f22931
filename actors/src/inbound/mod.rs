//! The inbound SMTP listener for the bounce domain: asynchronous bounces and spam
//! complaints sent to VERP addresses become `bounced` / `complained` events of the
//! recipient, through the same batched writer as opens and clicks. Small and
//! bounded on purpose: a connection limit, a message size limit, per-read
//! timeouts, and only recipients whose signed token verifies are accepted.

mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use engine::config::Config;
use engine::store::Store;
use engine::tracking::TokenKey;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::tracking_events::Hit;

/// What every session needs.
pub(crate) struct Shared {
    pub(crate) key: Arc<TokenKey>,
    pub(crate) store: Arc<dyn Store>,
    /// Into the batched tracking-event writer; sessions wait for room, so a slow
    /// store slows the senders of bounces (who retry), never grows memory.
    pub(crate) events: mpsc::Sender<Hit>,
    /// Name in the greeting and EHLO reply.
    pub(crate) hostname: String,
    pub(crate) max_message_size: usize,
    pub(crate) timeout: Duration,
}

/// A running listener; dropping it does not stop it, `stop` does.
pub struct InboundServer {
    /// The bound address (port 0 resolved), for logs and tests.
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl InboundServer {
    /// Stops accepting; sessions under way finish on their own (bounded by the
    /// timeouts).
    pub fn stop(&self) {
        self.accept.abort();
    }
}

/// Binds `[tracking] inbound_listen` and serves it on the current runtime;
/// `None` when the setting is empty (off).
pub async fn start(
    config: &Config,
    store: Arc<dyn Store>,
    key: Arc<TokenKey>,
    events: mpsc::Sender<Hit>,
) -> anyhow::Result<Option<InboundServer>> {
    let t = &config.tracking;
    if t.inbound_listen.trim().is_empty() {
        return Ok(None);
    }
    let listener = TcpListener::bind(t.inbound_listen.trim())
        .await
        .with_context(|| format!("binding tracking.inbound_listen = {:?}", t.inbound_listen))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        key,
        store,
        events,
        hostname: config.send.ehlo_name.clone(),
        max_message_size: usize::try_from(t.inbound_max_message_size.bytes()).unwrap_or(usize::MAX),
        timeout: t.inbound_timeout.as_std(),
    });
    let slots = Arc::new(Semaphore::new(t.inbound_max_connections.max(1)));
    let accept = tokio::spawn(accept_loop(listener, shared, slots));
    Ok(Some(InboundServer { addr, accept }))
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, slots: Arc<Semaphore>) {
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, say: back off instead of spinning.
                tracing::warn!(%error, "inbound SMTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            metrics::counter!(crate::telemetry::INBOUND_REFUSED, "reason" => "busy").increment(1);
            tokio::spawn(async move {
                let busy = b"421 4.3.2 Too many connections, try again later\r\n";
                let _ = stream.write_all(busy).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if let Err(error) = session::serve(stream, &shared).await {
                tracing::debug!(%peer, %error, "inbound SMTP session ended with an error");
            }
            drop(slot);
        });
    }
}
