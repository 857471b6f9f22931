//! Event webhooks: events are put in the durable outbox by the code that stores
//! them (the outcome tracker and the tracking-event writer), and [`sender`] posts
//! them to each tenant's webhook URL in batches, signed, retried with backoff
//! until acknowledged. Nothing here runs on the send path: a receiver that is
//! down only grows the outbox.

mod sender;

pub use sender::{WebhookSettings, sign, start};

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use engine::model::{CampaignId, RecipientId, TenantId};
use engine::store::Store;
use serde::Serialize;

use crate::telemetry as m;

/// How long a tenant's "has a webhook" answer is reused: a webhook set with
/// `broadside tenant settings` receives events within this.
const SETTINGS_TTL: Duration = Duration::from_secs(5);

/// One event as posted (inside a JSON array, with the outbox `id` added).
#[derive(Debug, Serialize)]
pub struct WebhookEvent<'a, D: Serialize> {
    pub event: &'a str,
    pub campaign: CampaignId,
    pub recipient: RecipientId,
    pub at: DateTime<Utc>,
    pub detail: D,
}

impl<D: Serialize> WebhookEvent<'_, D> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Queues events for tenants that have a webhook; cheap for those that do not
/// (one settings read per tenant per `SETTINGS_TTL`). Writers queue an event
/// *before* storing it, so a crash in between can repeat a webhook event (at
/// least once) but never lose one.
pub struct Outbox {
    store: Arc<dyn Store>,
    enabled: DashMap<TenantId, (Instant, bool)>,
}

impl Outbox {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            enabled: DashMap::new(),
        }
    }

    async fn has_webhook(&self, tenant: TenantId) -> bool {
        if let Some(entry) = self.enabled.get(&tenant)
            && entry.0.elapsed() < SETTINGS_TTL
        {
            return entry.1;
        }
        match self.store.tenant_settings(tenant).await {
            Ok(settings) => {
                let on = settings.tracking.webhook().is_some();
                self.enabled.insert(tenant, (Instant::now(), on));
                on
            }
            Err(error) => {
                tracing::warn!(%tenant, %error, "reading webhook settings failed");
                false
            }
        }
    }

    /// Queues the events `events` builds (JSON objects) when the tenant has a
    /// webhook; for a tenant without one they are never built (this runs for
    /// every stored outcome). A failed write is logged and counted, not
    /// retried: the events themselves are stored.
    pub async fn enqueue(
        &self,
        tenant: TenantId,
        events: impl FnOnce() -> Vec<String>,
    ) -> Result<(), engine::store::StoreError> {
        if !self.has_webhook(tenant).await {
            return Ok(());
        }
        let events = events();
        if events.is_empty() {
            return Ok(());
        }
        self.store
            .enqueue_webhooks(tenant, &events)
            .await
            .inspect_err(|error| {
                tracing::error!(%tenant, %error, "queueing webhook events failed");
                metrics::counter!(m::STORE_ERRORS, "operation" => "enqueue_webhooks").increment(1);
            })
    }
}
