//! Delivery: per-domain queues feeding SMTP connection actors, and the state shared
//! by every tenant (routing, destination limits, the CPU pool, session options).

mod connection;
mod domain_queue;
mod outcome;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use engine::clock::Clock;
use engine::delivery::{Destination, DestinationLimits, Router};
use engine::dkim::DkimKeys;
use engine::smtp::{DeliveryError, SessionOptions, Timeouts, TlsMode};
use engine::store::RecipientBatch;

pub use domain_queue::{DomainQueue, Enqueue, QueueDirectory};

use crate::cpu_pool::CpuPool;
use crate::in_flight::InFlight;
use crate::run::CampaignRun;
use crate::telemetry::DomainLabels;

/// One recipient on its way: a row of a batch read by the dispatcher, the campaign
/// it belongs to, and its in-flight slot.
pub struct Work {
    pub run: Arc<CampaignRun>,
    pub batch: Arc<RecipientBatch>,
    pub row: usize,
    pub guard: InFlight,
}

/// Delivery settings, from the configuration.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub ehlo_name: String,
    pub tls: TlsMode,
    pub timeouts: Timeouts,
    /// A session is closed (QUIT) after this many messages and a new one opened.
    pub max_messages_per_connection: u32,
    /// An idle session is closed after this long.
    pub idle_timeout: Duration,
    /// Recipients waiting per domain queue; past it the dispatcher moves on.
    pub queue_capacity: usize,
    /// Recipient domains whose mail must travel over verified TLS, whatever MX
    /// they resolve to.
    pub tls_required_domains: std::collections::HashSet<String>,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            ehlo_name: "localhost".to_owned(),
            tls: TlsMode::Opportunistic,
            timeouts: Timeouts::default(),
            max_messages_per_connection: 1000,
            idle_timeout: Duration::from_secs(5),
            queue_capacity: 256,
            tls_required_domains: std::collections::HashSet::new(),
        }
    }
}

/// What every delivery actor shares, across tenants.
pub struct Delivery {
    pub settings: DeliverySettings,
    pub router: Router,
    pub limits: DestinationLimits,
    pub pool: CpuPool,
    pub dkim: DkimKeys,
    pub labels: DomainLabels,
    pub clock: Arc<dyn Clock>,
    /// Session options per (host, TLS mode): building TLS parameters is costly.
    sessions: DashMap<(String, TlsModeKey), SessionOptions>,
}

type TlsModeKey = u8;

fn tls_key(mode: TlsMode) -> TlsModeKey {
    match mode {
        TlsMode::Disabled => 0,
        TlsMode::Opportunistic => 1,
        TlsMode::Required => 2,
    }
}

impl Delivery {
    pub fn new(
        settings: DeliverySettings,
        router: Router,
        limits: DestinationLimits,
        pool: CpuPool,
        dkim: DkimKeys,
        labels: DomainLabels,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(Self {
            settings,
            router,
            limits,
            pool,
            dkim,
            labels,
            clock,
            sessions: DashMap::new(),
        })
    }

    /// Session options for a destination, built once and then cloned. A route's
    /// TLS mode wins; then a domain that requires TLS; then the default.
    fn session_options(
        &self,
        domain: &str,
        destination: &Destination,
    ) -> Result<SessionOptions, DeliveryError> {
        let mode = destination.tls.unwrap_or_else(|| {
            if self.settings.tls_required_domains.contains(domain) {
                TlsMode::Required
            } else {
                self.settings.tls
            }
        });
        let key = (destination.host.clone(), tls_key(mode));
        if let Some(found) = self.sessions.get(&key) {
            return Ok(found.value().clone());
        }
        let options = SessionOptions::new(
            &self.settings.ehlo_name,
            &destination.host,
            mode,
            self.settings.timeouts,
        )?;
        self.sessions.insert(key, options.clone());
        Ok(options)
    }
}
