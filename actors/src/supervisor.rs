//! The supervision tree: `Root` keeps one `TenantSupervisor` per tenant; each
//! supervisor keeps its tenant's tracker, domain queues and one dispatcher per
//! running campaign. Both reconcile with the store on an interval: the store is
//! the source of truth for campaign status, so a launch from the command line, the
//! API or another node, a restart after a crash, and a dispatcher that died all
//! converge the same way.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use dashmap::DashMap;
use engine::model::{CampaignId, TenantId};
use engine::render::{CampaignDefinition, CompiledCampaign};
use engine::smtp::RetryPolicy;
use engine::store::{Campaign, CampaignStatus, Store};
use engine::tracking::{TenantTracking, TokenKey, TrackingSetup};

use crate::delivery::{Delivery, QueueDirectory};
use crate::dispatcher::{CampaignDispatcher, DispatchSettings, DispatcherEnded, store_end};
use crate::in_flight::InFlightSet;
use crate::retry_schedule::RetrySchedule;
use crate::run::{CampaignRun, RunControl};

/// Deferred recipients one run keeps by due time (`RetrySchedule`); about 24
/// bytes each. Beyond it the pass over the campaign finds them.
const RETRY_SCHEDULE_CAPACITY: usize = 100_000;
use crate::telemetry as m;
use crate::tracking::{Flush, TrackingActor, TrackingSettings};

/// Engine-wide settings for the supervision tree.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub dispatch: DispatchSettings,
    pub tracking: TrackingSettings,
    /// Recipients per campaign between dispatch and a stored outcome; also the
    /// most messages a crash can cause to be sent twice.
    pub max_in_flight: usize,
    pub retry: RetryPolicy,
    /// The domain part of generated Message-IDs.
    pub message_id_domain: String,
    /// How often the tree compares itself with the store.
    pub reconcile_interval: Duration,
    /// Tracking for every campaign; `None` sends messages without it.
    pub tokens: Option<TrackingTokens>,
}

/// What campaigns are compiled with for tracking (from `[tracking]`).
#[derive(Debug, Clone)]
pub struct TrackingTokens {
    pub key: Arc<TokenKey>,
    pub domain: String,
    /// Empty: each campaign's envelope domain.
    pub bounce_domain: String,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            dispatch: DispatchSettings::default(),
            tracking: TrackingSettings::default(),
            max_in_flight: 2000,
            retry: RetryPolicy::default(),
            message_id_domain: "localhost".to_owned(),
            reconcile_interval: Duration::from_secs(1),
            tokens: None,
        }
    }
}

/// Compare with the store now instead of at the next tick.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconcile;

/// Brings one campaign in line with the store now: what a batch submit asks
/// after its launch, without re-reading every campaign of every tenant (which,
/// with a batch per request, grows with every request).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReconcileCampaign {
    pub tenant: TenantId,
    pub campaign: CampaignId,
}

/// Stop dispatching and store every buffered outcome (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

pub struct Root {
    store: Arc<dyn Store>,
    delivery: Arc<Delivery>,
    settings: Arc<EngineSettings>,
    tenants: Arc<DashMap<TenantId, Addr<TenantSupervisor>>>,
}

impl Root {
    pub fn new(store: Arc<dyn Store>, delivery: Arc<Delivery>, settings: EngineSettings) -> Self {
        Self {
            store,
            delivery,
            settings: Arc::new(settings),
            tenants: Arc::new(DashMap::new()),
        }
    }

    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        let store = Arc::clone(&self.store);
        let read = async move { store.tenants().await };
        ctx.spawn(read.into_actor(self).map(|result, root, _| {
            let tenants = match result {
                Ok(tenants) => tenants,
                Err(err) => {
                    tracing::warn!(error = %err, "listing tenants failed");
                    return;
                }
            };
            for tenant in tenants {
                // A supervisor started here reconciles when it starts.
                if let (addr, false) = root.supervisor(tenant.id) {
                    addr.do_send(Reconcile);
                }
            }
        }));
    }

    /// The tenant's supervisor, started if there is none (or it died); `true`
    /// when it was started by this call.
    fn supervisor(&self, tenant: TenantId) -> (Addr<TenantSupervisor>, bool) {
        let running = self.tenants.get(&tenant).map(|a| a.clone());
        match running {
            Some(addr) if addr.connected() => (addr, false),
            _ => {
                let (store, delivery, settings) = (
                    Arc::clone(&self.store),
                    Arc::clone(&self.delivery),
                    Arc::clone(&self.settings),
                );
                let addr = actix::Supervisor::start(move |_| {
                    TenantSupervisor::new(tenant, store, delivery, settings)
                });
                self.tenants.insert(tenant, addr.clone());
                (addr, true)
            }
        }
    }
}

impl Actor for Root {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.reconcile(ctx);
        ctx.run_interval(self.settings.reconcile_interval, |root, ctx| {
            root.reconcile(ctx)
        });
    }
}

impl Handler<Reconcile> for Root {
    type Result = ();

    fn handle(&mut self, _: Reconcile, ctx: &mut Self::Context) {
        self.reconcile(ctx);
    }
}

impl Handler<ReconcileCampaign> for Root {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: ReconcileCampaign, _: &mut Self::Context) -> Self::Result {
        let (supervisor, _) = self.supervisor(msg.tenant);
        Box::pin(async move {
            let _ = supervisor.send(msg).await;
        })
    }
}

impl Handler<Drain> for Root {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        let supervisors: Vec<_> = self.tenants.iter().map(|e| e.value().clone()).collect();
        Box::pin(async move {
            for supervisor in supervisors {
                let _ = supervisor.send(Drain).await;
            }
        })
    }
}

pub struct TenantSupervisor {
    tenant: TenantId,
    store: Arc<dyn Store>,
    settings: Arc<EngineSettings>,
    queues: QueueDirectory,
    tracking: Option<Addr<TrackingActor>>,
    running: HashMap<CampaignId, (Arc<CampaignRun>, Addr<CampaignDispatcher>)>,
    /// Campaigns that could not start (bad definition), logged once.
    broken: HashSet<CampaignId>,
    /// The tenant's own tracking and bounce domains (tenant settings), read at
    /// every reconcile; campaigns are compiled with them when they start.
    domains: TenantTracking,
}

impl TenantSupervisor {
    fn new(
        tenant: TenantId,
        store: Arc<dyn Store>,
        delivery: Arc<Delivery>,
        settings: Arc<EngineSettings>,
    ) -> Self {
        Self {
            tenant,
            queues: QueueDirectory::new(tenant, delivery),
            store,
            settings,
            tracking: None,
            running: HashMap::new(),
            broken: HashSet::new(),
            domains: TenantTracking::default(),
        }
    }

    fn tracking(&mut self) -> Addr<TrackingActor> {
        match &self.tracking {
            Some(addr) if addr.connected() => addr.clone(),
            _ => {
                let addr = TrackingActor::new(
                    self.tenant,
                    Arc::clone(&self.store),
                    self.settings.tracking,
                )
                .start();
                self.tracking = Some(addr.clone());
                addr
            }
        }
    }

    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        let (store, tenant) = (Arc::clone(&self.store), self.tenant);
        // Only running and paused campaigns, plus the ones this supervisor runs
        // (to see them end): ended campaigns and batches pile up by the thousand.
        let running: Vec<CampaignId> = self.running.keys().copied().collect();
        // The settings are read with the campaigns, so a campaign starts with the
        // tenant's current tracking domains.
        let read = async move {
            let campaigns = store.active_campaigns(tenant, &running).await?;
            let settings = store.tenant_settings(tenant).await?;
            Ok::<_, engine::store::StoreError>((campaigns, settings))
        };
        ctx.spawn(read.into_actor(self).map(|result, supervisor, ctx| match result {
            Ok((campaigns, settings)) => {
                supervisor.domains = settings.tracking;
                for campaign in campaigns {
                    supervisor.apply(campaign, ctx);
                }
                let tenant = supervisor.tenant.to_string();
                metrics::gauge!(m::RUNNING_CAMPAIGNS, "tenant" => tenant.clone())
                    .set(supervisor.running.len() as f64);
                let in_flight: usize = supervisor.running.values().map(|(run, _)| run.in_flight.len()).sum();
                metrics::gauge!(m::IN_FLIGHT, "tenant" => tenant).set(in_flight as f64);
            }
            Err(err) => tracing::warn!(tenant = %supervisor.tenant, error = %err, "listing campaigns failed"),
        }));
    }

    /// Brings one campaign's actors in line with its stored status.
    fn apply(&mut self, campaign: Campaign, ctx: &mut Context<Self>) {
        let id = campaign.id;
        if let Some((run, dispatcher)) = self.running.get(&id) {
            match campaign.status {
                CampaignStatus::Running if dispatcher.connected() => run.control.set_paused(false),
                CampaignStatus::Paused => run.control.set_paused(true),
                CampaignStatus::Running => {
                    // The dispatcher died: start a new one over the same run.
                    let run = Arc::clone(run);
                    self.start_dispatcher(run, ctx);
                }
                CampaignStatus::Cancelled | CampaignStatus::Completed | CampaignStatus::Draft => {
                    run.control.cancel();
                    self.running.remove(&id);
                }
            }
            return;
        }
        if campaign.status != CampaignStatus::Running {
            // Paused to fix the definition, say: try again on the next launch.
            self.broken.remove(&id);
            return;
        }
        if !self.broken.contains(&id) {
            match self.prepare(&campaign) {
                Ok(run) => self.start_dispatcher(run, ctx),
                Err(reason) => {
                    tracing::error!(campaign = %id, %reason, "cannot start campaign");
                    self.broken.insert(id);
                }
            }
        }
    }

    fn prepare(&mut self, campaign: &Campaign) -> Result<Arc<CampaignRun>, String> {
        let text = campaign
            .definition
            .as_deref()
            .ok_or("the campaign has no definition")?;
        let definition: CampaignDefinition = serde_json::from_str(text)
            .map_err(|e| format!("the stored definition is unreadable: {e}"))?;
        let domains = &self.domains;
        let setup = self.settings.tokens.as_ref().map(|t| TrackingSetup {
            key: Arc::clone(&t.key),
            tenant: self.tenant,
            campaign: campaign.id,
            domain: domains.domain.clone().unwrap_or_else(|| t.domain.clone()),
            bounce_domain: match &domains.bounce_domain {
                Some(tenant_domain) => tenant_domain.clone(),
                None if t.bounce_domain.is_empty() => definition.envelope_domain.clone(),
                None => t.bounce_domain.clone(),
            },
        });
        let compiled = CompiledCampaign::compile_tracked(&definition, &campaign.columns, setup)
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(CampaignRun {
            tenant: self.tenant,
            campaign: campaign.id,
            compiled,
            signing_domain: definition.from.address.domain().to_owned(),
            message_id_domain: self.settings.message_id_domain.clone(),
            retry: self.settings.retry,
            tracking: self.tracking(),
            in_flight: InFlightSet::new(self.settings.max_in_flight),
            retries: RetrySchedule::new(RETRY_SCHEDULE_CAPACITY),
            control: RunControl::default(),
        }))
    }

    fn start_dispatcher(&mut self, run: Arc<CampaignRun>, ctx: &mut Context<Self>) {
        let dispatcher = CampaignDispatcher::new(
            Arc::clone(&run),
            Arc::clone(&self.store),
            self.queues.clone(),
            self.settings.dispatch,
            ctx.address().recipient(),
        )
        .start();
        tracing::info!(tenant = %self.tenant, campaign = %run.campaign, "campaign dispatching");
        self.running.insert(run.campaign, (run, dispatcher));
    }
}

impl Actor for TenantSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.tracking();
        self.reconcile(ctx);
    }
}

impl actix::Supervised for TenantSupervisor {
    fn restarting(&mut self, _: &mut Self::Context) {
        tracing::warn!(tenant = %self.tenant, "tenant supervisor restarting");
    }
}

impl Handler<Reconcile> for TenantSupervisor {
    type Result = ();

    fn handle(&mut self, _: Reconcile, ctx: &mut Self::Context) {
        self.reconcile(ctx);
    }
}

impl Handler<ReconcileCampaign> for TenantSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ReconcileCampaign, ctx: &mut Self::Context) {
        let (store, tenant) = (Arc::clone(&self.store), self.tenant);
        let read = async move { store.campaign(tenant, msg.campaign).await };
        ctx.spawn(read.into_actor(self).map(|result, supervisor, ctx| match result {
            Ok(Some(campaign)) => supervisor.apply(campaign, ctx),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(tenant = %supervisor.tenant, error = %err, "reading a campaign failed");
            }
        }));
    }
}

impl Handler<DispatcherEnded> for TenantSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: DispatcherEnded, _: &mut Self::Context) -> Self::Result {
        let campaign = msg.run.campaign;
        let store = Arc::clone(&self.store);
        Box::pin(
            async move { store_end(store.as_ref(), &msg.run, msg.end).await }
                .into_actor(self)
                .map(move |_, supervisor, _| {
                    tracing::info!(tenant = %supervisor.tenant, %campaign, "campaign dispatch ended");
                    supervisor.running.remove(&campaign);
                }),
        )
    }
}

impl Handler<Drain> for TenantSupervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        for (run, _) in self.running.values() {
            run.control.set_paused(true);
        }
        let tracking = self.tracking.clone();
        Box::pin(async move {
            if let Some(tracking) = tracking {
                let _ = tracking.send(Flush).await;
            }
        })
    }
}
