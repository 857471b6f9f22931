//! The tracking endpoints' write path: hits go into a bounded channel and one task
//! writes them in batches (one transaction per campaign per batch), so a request
//! never waits for the store and a burst of opens costs a few transactions.
//! Stored events go to the tenant's webhook outbox when it has a webhook.
//! Unsubscribes, complaints and hard bounces that name a bad address (events of
//! the inbound listener) also put the address on the tenant's suppression list.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use engine::inbound::status_suppresses;
use engine::model::{CampaignId, RecipientId, TenantId};
use engine::store::{Store, SuppressionReason, TrackingEvent, TrackingKind};
use tokio::sync::mpsc;

use crate::telemetry as m;
use crate::webhooks::{Outbox, WebhookEvent};

/// One hit on a tracking endpoint, for the writer.
#[derive(Debug, Clone)]
pub struct Hit {
    pub tenant: TenantId,
    pub campaign: CampaignId,
    pub event: TrackingEvent,
}

/// Starts the writer on the current runtime; returns the channel's sending side.
pub fn start_writer(
    store: Arc<dyn Store>,
    buffer: usize,
    batch_size: usize,
    flush_interval: Duration,
) -> mpsc::Sender<Hit> {
    let (tx, rx) = mpsc::channel(buffer.max(1));
    let outbox = Outbox::new(Arc::clone(&store));
    tokio::spawn(write_loop(
        store,
        outbox,
        rx,
        batch_size.max(1),
        flush_interval,
    ));
    tx
}

async fn write_loop(
    store: Arc<dyn Store>,
    outbox: Outbox,
    mut rx: mpsc::Receiver<Hit>,
    batch_size: usize,
    flush_interval: Duration,
) {
    let mut batch = Vec::with_capacity(batch_size);
    loop {
        if rx.recv_many(&mut batch, batch_size).await == 0 {
            return; // every sender is gone: the server stopped
        }
        // Gather for up to the flush interval, so light traffic is batched too.
        let deadline = tokio::time::Instant::now() + flush_interval;
        while batch.len() < batch_size {
            let more = batch_size - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, more)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        write_batch(store.as_ref(), &outbox, std::mem::take(&mut batch)).await;
    }
}

async fn write_batch(store: &dyn Store, outbox: &Outbox, batch: Vec<Hit>) {
    let mut by_campaign: HashMap<(TenantId, CampaignId), Vec<TrackingEvent>> = HashMap::new();
    for hit in batch {
        by_campaign
            .entry((hit.tenant, hit.campaign))
            .or_default()
            .push(hit.event);
    }
    for ((tenant, campaign), events) in by_campaign {
        // Queued before the events are stored, so that a stored event always has
        // its webhook event (a crash in between repeats one, never loses one).
        let queued = || {
            events
                .iter()
                .map(|e| {
                    WebhookEvent {
                        event: e.kind.as_str(),
                        campaign,
                        recipient: e.recipient,
                        at: e.at,
                        detail: &e.detail,
                    }
                    .to_json()
                })
                .collect()
        };
        // A failure is logged and counted by the outbox; the events are still
        // stored and, above all, unsubscribes and complaints still suppress.
        let _ = outbox.enqueue(tenant, queued).await;
        if let Err(error) = store
            .record_tracking_events(tenant, campaign, &events)
            .await
        {
            // A dropped campaign's events have nowhere to go; other errors are
            // logged and counted (tracking data is not worth blocking on).
            tracing::warn!(%tenant, %campaign, %error, "storing tracking events failed");
            metrics::counter!(m::STORE_ERRORS, "operation" => "record_tracking_events")
                .increment(1);
        }
        let suppressed: Vec<(RecipientId, SuppressionReason)> = events
            .iter()
            .filter_map(|e| suppression_reason(e).map(|r| (e.recipient, r)))
            .collect();
        if !suppressed.is_empty() {
            suppress(store, tenant, campaign, &suppressed).await;
        }
    }
}

/// Why an event puts its recipient on the suppression list, if it does.
fn suppression_reason(event: &TrackingEvent) -> Option<SuppressionReason> {
    match event.kind {
        TrackingKind::Unsubscribed => Some(SuppressionReason::Unsubscribed),
        TrackingKind::Complained => Some(SuppressionReason::Complaint),
        TrackingKind::Bounced => {
            let hard = event.detail.class.as_deref() == Some("hard");
            let status = event.detail.status.as_deref().unwrap_or_default();
            (hard && status_suppresses(status)).then_some(SuppressionReason::HardBounce)
        }
        TrackingKind::Opened | TrackingKind::Clicked => None,
    }
}

/// Unsubscribes, complaints and bounces are rare next to opens and clicks, so
/// one lookup each is fine.
async fn suppress(
    store: &dyn Store,
    tenant: TenantId,
    campaign: CampaignId,
    ids: &[(RecipientId, SuppressionReason)],
) {
    let mut entries = Vec::with_capacity(ids.len());
    for (id, reason) in ids {
        let found = store
            .recipients(tenant, campaign, RecipientId(id.0 - 1), 1)
            .await;
        match found {
            Ok(rows) => {
                if let Some(row) = rows.into_iter().find(|r| r.id == *id) {
                    entries.push((row.email.as_str().to_owned(), *reason));
                }
            }
            Err(error) => tracing::warn!(%tenant, %campaign, %error, "suppression lookup failed"),
        }
    }
    if let Err(error) = store.suppress(tenant, &entries).await {
        tracing::error!(%tenant, %error, "adding to the suppression list failed");
    }
}
