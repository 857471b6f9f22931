//! `CampaignRun`: what every actor working on one running campaign shares — the
//! compiled templates, the signing domain, the retry policy, the tenant's tracker,
//! the in-flight window and the pause/cancel switches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::Addr;
use chrono::{DateTime, Utc};
use engine::dkim::DkimKeys;
use engine::model::{CampaignId, TenantId};
use engine::render::{CompiledCampaign, RenderedMessage};
use engine::smtp::RetryPolicy;
use engine::store::RowRef;
use tokio::sync::Notify;

use crate::in_flight::InFlightSet;
use crate::retry_schedule::RetrySchedule;
use crate::tracking::TrackingActor;

pub struct CampaignRun {
    pub tenant: TenantId,
    pub campaign: CampaignId,
    pub compiled: CompiledCampaign,
    /// The From domain, whose DKIM key signs the campaign's messages.
    pub signing_domain: String,
    pub message_id_domain: String,
    pub retry: RetryPolicy,
    pub tracking: Addr<TrackingActor>,
    pub in_flight: Arc<InFlightSet>,
    /// Deferred recipients by due time, served before the pass goes on.
    pub retries: RetrySchedule,
    pub control: RunControl,
}

impl CampaignRun {
    /// Renders and, when a key exists for the From domain, signs one message. Runs
    /// on a CPU pool thread.
    pub fn render(
        &self,
        row: RowRef<'_>,
        dkim: &DkimKeys,
        now: DateTime<Utc>,
    ) -> Result<RenderedMessage, String> {
        let mut message = self
            .compiled
            .render(row, &self.message_id_domain, now)
            .map_err(|e| format!("rendering failed: {e}"))?;
        if let Some(signer) = dkim.for_domain(&self.signing_domain) {
            message.bytes = signer
                .sign(&message.bytes)
                .map_err(|e| format!("DKIM signing failed: {e}"))?;
        }
        Ok(message)
    }
}

/// Pause and cancel, visible to the dispatcher loop and to connections.
#[derive(Debug, Default)]
pub struct RunControl {
    paused: AtomicBool,
    cancelled: AtomicBool,
    changed: Notify,
}

impl RunControl {
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    pub fn set_paused(&self, paused: bool) {
        if self.paused.swap(paused, Ordering::AcqRel) != paused {
            self.changed.notify_waiters();
        }
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Waits until the campaign is resumed or cancelled.
    pub async fn wait_while_paused(&self) {
        while self.is_paused() && !self.is_cancelled() {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !self.is_paused() || self.is_cancelled() {
                return;
            }
            changed.await;
        }
    }
}
