//! `TrackingActor`: one per tenant; stores delivery outcomes in batches (group
//! commit). Outcomes are buffered and written when a batch fills or the flush
//! interval passes; only then are their in-flight slots released, so a crash loses
//! at most the in-flight window, never a stored outcome.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use engine::model::{CampaignId, StateCode, TenantId};
use engine::store::{Outcome, Store, SuppressionReason};
use tokio::sync::Notify;

use crate::in_flight::InFlight;
use crate::telemetry as m;
use crate::webhooks::{Outbox, WebhookEvent};

/// Record one recipient's outcome; the guard is released once it is stored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordOutcome {
    pub tenant: TenantId,
    pub campaign: CampaignId,
    pub outcome: Outcome,
    pub guard: Option<InFlight>,
}

/// Write everything buffered now and answer when it is stored (pause, shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

#[derive(Debug, Clone, Copy)]
pub struct TrackingSettings {
    /// Outcomes per write.
    pub batch_size: usize,
    /// Longest an outcome waits in the buffer.
    pub flush_interval: Duration,
}

impl Default for TrackingSettings {
    fn default() -> Self {
        Self {
            batch_size: 512,
            flush_interval: Duration::from_millis(50),
        }
    }
}

pub struct TrackingActor {
    tenant: TenantId,
    store: Arc<dyn Store>,
    settings: TrackingSettings,
    buffer: Vec<(CampaignId, Outcome, Option<InFlight>)>,
    flushing: bool,
    /// Woken after every write, for senders waiting on a full buffer.
    flushed: Arc<Notify>,
    /// Where stored deliveries and bounces go when the tenant has a webhook.
    outbox: Arc<Outbox>,
}

impl TrackingActor {
    pub fn new(tenant: TenantId, store: Arc<dyn Store>, settings: TrackingSettings) -> Self {
        let outbox = Arc::new(Outbox::new(Arc::clone(&store)));
        Self {
            tenant,
            store,
            settings,
            buffer: Vec::with_capacity(settings.batch_size),
            flushing: false,
            flushed: Arc::new(Notify::new()),
            outbox,
        }
    }

    /// Starts writing the buffer unless a write is under way.
    fn start_flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.buffer.is_empty() {
            return;
        }
        self.flushing = true;
        let batch = std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(self.settings.batch_size),
        );
        let (store, tenant) = (Arc::clone(&self.store), self.tenant);
        let outbox = Arc::clone(&self.outbox);
        let write = async move {
            let result = write_batch(store.as_ref(), &outbox, tenant, &batch).await;
            (batch, result)
        };
        ctx.spawn(write.into_actor(self).map(|(batch, result), actor, ctx| {
            actor.flushing = false;
            if let Err(err) = result {
                // Keep the outcomes (and their slots) and try again: the bounded
                // in-flight window stops new sends meanwhile.
                tracing::error!(tenant = %actor.tenant, error = %err, "storing outcomes failed; retrying");
                metrics::counter!(m::STORE_ERRORS, "operation" => "record_outcomes").increment(1);
                let mut kept = batch;
                kept.append(&mut actor.buffer);
                actor.buffer = kept;
                ctx.run_later(Duration::from_millis(500), |actor, ctx| actor.start_flush(ctx));
            }
            // On success `batch` drops here, releasing its in-flight slots.
            actor.flushed.notify_waiters();
            if actor.buffer.len() >= actor.settings.batch_size {
                actor.start_flush(ctx);
            }
        }));
    }
}

async fn write_batch(
    store: &dyn Store,
    outbox: &Outbox,
    tenant: TenantId,
    batch: &[(CampaignId, Outcome, Option<InFlight>)],
) -> Result<(), engine::store::StoreError> {
    let mut by_campaign: HashMap<CampaignId, Vec<Outcome>> = HashMap::new();
    for (campaign, outcome, _) in batch {
        by_campaign
            .entry(*campaign)
            .or_default()
            .push(outcome.clone());
    }
    for (campaign, outcomes) in by_campaign {
        // Queued first: a failure here or a crash before the outcomes are stored
        // retries both, so a stored outcome always has its webhook event.
        outbox
            .enqueue(tenant, || webhook_events(campaign, &outcomes))
            .await?;
        let started = std::time::Instant::now();
        let report = store.record_outcomes(tenant, campaign, &outcomes).await?;
        metrics::histogram!(m::STORE_WRITE_SECONDS).record(started.elapsed().as_secs_f64());
        for outcome in &outcomes {
            metrics::counter!(m::OUTCOMES, "outcome" => outcome.state.code().as_str()).increment(1);
        }
        if report.ignored > 0 {
            tracing::debug!(%campaign, ignored = report.ignored, "outcomes for already-final recipients ignored");
        }
        suppress_hard_bounces(store, tenant, campaign, &outcomes).await;
    }
    Ok(())
}

/// Deliveries and bounces as webhook events (deferrals and retries are not
/// news to the customer; the final outcome is).
fn webhook_events(campaign: CampaignId, outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|o| {
            let event = match o.state.code() {
                StateCode::Delivered => "delivered",
                StateCode::Bounced => "bounced",
                _ => return None,
            };
            let detail = serde_json::json!({ "reply": o.detail });
            Some(
                WebhookEvent {
                    event,
                    campaign,
                    recipient: o.recipient,
                    at: o.at,
                    detail,
                }
                .to_json(),
            )
        })
        .collect()
}

/// A permanent failure with an enhanced status 5.1.x (bad mailbox or address,
/// RFC 3463) goes on the suppression list: mailing it again would only hurt the
/// sender's reputation. Other 5xx (policy, content) may pass another time.
/// Bounces are rare, so one recipient lookup each is fine.
async fn suppress_hard_bounces(
    store: &dyn Store,
    tenant: TenantId,
    campaign: CampaignId,
    outcomes: &[Outcome],
) {
    let mut entries = Vec::new();
    for outcome in outcomes {
        let hard = outcome.state.code() == engine::model::StateCode::Bounced
            && outcome
                .detail
                .as_deref()
                .is_some_and(|d| d.starts_with('5') && d.contains(" 5.1."));
        if !hard {
            continue;
        }
        let after = engine::model::RecipientId(outcome.recipient.0 - 1);
        if let Ok(rows) = store.recipients(tenant, campaign, after, 1).await
            && let Some(row) = rows.into_iter().find(|r| r.id == outcome.recipient)
        {
            entries.push((row.email.as_str().to_owned(), SuppressionReason::HardBounce));
        }
    }
    if !entries.is_empty()
        && let Err(error) = store.suppress(tenant, &entries).await
    {
        tracing::error!(%tenant, %error, "adding hard bounces to the suppression list failed");
    }
}

impl Actor for TrackingActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.settings.batch_size);
        ctx.run_interval(self.settings.flush_interval, |actor, ctx| {
            actor.start_flush(ctx)
        });
    }
}

impl Handler<RecordOutcome> for TrackingActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: RecordOutcome, ctx: &mut Self::Context) -> Self::Result {
        debug_assert_eq!(
            msg.tenant, self.tenant,
            "outcomes go to their own tenant's tracker"
        );
        self.buffer.push((msg.campaign, msg.outcome, msg.guard));
        if self.buffer.len() >= self.settings.batch_size {
            self.start_flush(ctx);
        }
        // Over two batches buffered means the store is behind: hold the sender
        // until a write lands (backpressure instead of growth).
        if self.buffer.len() >= 2 * self.settings.batch_size {
            let flushed = Arc::clone(&self.flushed);
            return Box::pin(async move { flushed.notified().await }.into_actor(self));
        }
        Box::pin(actix::fut::ready(()))
    }
}

impl Handler<Flush> for TrackingActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) -> Self::Result {
        if self.buffer.is_empty() && !self.flushing {
            return Box::pin(actix::fut::ready(()));
        }
        self.start_flush(ctx);
        let flushed = Arc::clone(&self.flushed);
        Box::pin(
            async move {
                tokio::time::timeout(Duration::from_secs(30), flushed.notified())
                    .await
                    .ok();
            }
            .into_actor(self)
            .map(|_, actor, ctx| {
                // A write that was already running when Flush arrived did not hold
                // the outcomes buffered since; write those too.
                if !actor.buffer.is_empty() {
                    actor.start_flush(ctx);
                }
            }),
        )
    }
}
