//! Builds the running engine from the configuration: the shared delivery state
//! (routing, limits, CPU pool, DKIM keys) and the supervision tree. `serve`, the
//! demo, the benchmarks and the integration tests all start Broadside here, so
//! they run the same start-up.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use anyhow::Context as _;
use engine::clock::Clock;
use engine::config::Config;
use engine::delivery::{DestinationLimits, DnsMode, LimitSettings, RouteTable, Router};
use engine::dkim::{DkimKeyEntry, DkimKeys};
use engine::model::{CampaignId, TenantId};
use engine::smtp::Timeouts;
use engine::store::Store;
use engine::tracking::TokenKey;

use crate::cpu_pool::CpuPool;
use crate::delivery::{Delivery, DeliverySettings};
use crate::dispatcher::DispatchSettings;
use crate::supervisor::{
    Drain, EngineSettings, Reconcile, ReconcileCampaign, Root, TrackingTokens,
};
use crate::telemetry::DomainLabels;
use crate::tracking::TrackingSettings;

/// A running engine inside an actix system.
#[derive(Clone)]
pub struct Runtime {
    pub root: Addr<Root>,
    pub delivery: Arc<Delivery>,
    pub store: Arc<dyn Store>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// Starts the supervision tree; must be called from within an actix system.
    pub fn start(
        config: &Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let delivery = build_delivery(config, clock)?;
        let mut settings = engine_settings(config);
        settings.tokens = tracking_tokens(config)?;
        let root = Root::new(Arc::clone(&store), Arc::clone(&delivery), settings).start();
        Ok(Self {
            root,
            delivery,
            store,
        })
    }

    /// Makes the tree look at the store now (after a launch, pause, …).
    pub fn reconcile(&self) {
        self.root.do_send(Reconcile);
    }

    /// Starts one just-launched campaign's dispatch now; waits while the
    /// supervisors' mailboxes are full.
    pub async fn launch(&self, tenant: TenantId, campaign: CampaignId) {
        let _ = self.root.send(ReconcileCampaign { tenant, campaign }).await;
    }

    /// Stops dispatching and stores every buffered outcome.
    pub async fn drain(&self) {
        let _ = self.root.send(Drain).await;
        self.delivery.pool.shutdown();
    }
}

/// The token key and domains campaigns are compiled with; `None` when tracking
/// is disabled.
pub fn tracking_tokens(config: &Config) -> anyhow::Result<Option<TrackingTokens>> {
    let tracking = &config.tracking;
    if !tracking.enabled {
        return Ok(None);
    }
    let key = TokenKey::configured_or_file(tracking.secret.expose(), &config.data_dir)
        .context("tracking.secret")?;
    Ok(Some(TrackingTokens {
        key: Arc::new(key),
        domain: tracking.domain.clone(),
        bounce_domain: tracking.bounce_domain.clone(),
    }))
}

pub fn engine_settings(config: &Config) -> EngineSettings {
    let send = &config.send;
    let message_id_domain = if send.message_id_domain.is_empty() {
        send.ehlo_name.clone()
    } else {
        send.message_id_domain.clone()
    };
    EngineSettings {
        dispatch: DispatchSettings {
            batch_size: send.batch_size,
            poll_interval: send.poll_interval.as_std(),
        },
        tracking: TrackingSettings {
            batch_size: send.tracking_batch,
            flush_interval: send.tracking_flush.as_std(),
        },
        max_in_flight: send.max_in_flight,
        retry: send.retry.policy(),
        message_id_domain,
        ..EngineSettings::default()
    }
}

/// The delivery state shared by every tenant.
pub fn build_delivery(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Delivery>> {
    let send = &config.send;
    let routes: Vec<_> = send.routes.iter().map(|r| r.to_route_config()).collect();
    let table = RouteTable::from_config(&routes).context("send.routes")?;
    let dns = match send.dns.as_str() {
        "disabled" => DnsMode::Disabled,
        _ => DnsMode::System,
    };
    let router = Router::new(table, dns).context("setting up DNS (send.dns)")?;
    let rate = |r: f64| if r > 0.0 { r } else { f64::INFINITY };
    let default_limits = LimitSettings {
        max_connections: send.max_connections_per_domain,
        max_rate: rate(send.max_rate_per_domain),
    };
    let overrides: HashMap<_, _> = send
        .domain_limits
        .iter()
        .map(|l| {
            let settings = LimitSettings {
                max_connections: l.max_connections,
                max_rate: rate(l.max_rate),
            };
            (l.domain.to_ascii_lowercase(), settings)
        })
        .collect();
    let keys: Vec<DkimKeyEntry> = send
        .dkim
        .iter()
        .map(|k| DkimKeyEntry {
            domain: k.domain.clone(),
            selector: k.selector.clone(),
            private_key_file: k.private_key_file.clone(),
        })
        .collect();
    let dkim = DkimKeys::load(&keys).context("loading DKIM keys (send.dkim)")?;
    let threads = if send.render_threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        send.render_threads
    };
    let queue = threads * 64;
    let pool = CpuPool::start(threads, queue, (queue / 4).max(1));
    let timeouts = &send.timeouts;
    let settings = DeliverySettings {
        ehlo_name: send.ehlo_name.clone(),
        tls: send
            .tls
            .parse()
            .map_err(anyhow::Error::msg)
            .context("send.tls")?,
        timeouts: Timeouts {
            connect: timeouts.connect.as_std(),
            greeting: timeouts.greeting.as_std(),
            mail: timeouts.mail.as_std(),
            rcpt: timeouts.rcpt.as_std(),
            data_init: timeouts.data_init.as_std(),
            data_end: timeouts.data_end.as_std(),
        },
        max_messages_per_connection: send.max_messages_per_connection,
        idle_timeout: send.idle_timeout.as_std(),
        queue_capacity: send.queue_capacity,
        tls_required_domains: send
            .tls_required_domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
    };
    Ok(Delivery::new(
        settings,
        router,
        DestinationLimits::new(default_limits, overrides),
        pool,
        dkim,
        DomainLabels::new(config.metrics.top_domains.iter().cloned()),
        clock,
    ))
}
