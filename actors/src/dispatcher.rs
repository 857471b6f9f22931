//! `CampaignDispatcher`: one per running campaign. Reads due recipients in key
//! order and in batches, and hands each to its domain's queue. A recipient whose
//! domain queue is full is skipped and read again on the next pass, so a slow
//! domain never holds up the others; the in-flight window bounds everything the
//! campaign has between the store and a stored outcome.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use engine::model::{RecipientId, RecipientState};
use engine::store::{CampaignStatus, Outcome, RecipientBatch, Store, StoreError};

use crate::delivery::{Enqueue, QueueDirectory, Work};
use crate::run::CampaignRun;
use crate::tracking::{Flush, RecordOutcome};

#[derive(Debug, Clone, Copy)]
pub struct DispatchSettings {
    /// Recipients read per store query.
    pub batch_size: u32,
    /// How often to look again when nothing is due (deferred recipients, or all in
    /// flight).
    pub poll_interval: Duration,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// How a dispatcher ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchEnd {
    /// Every recipient is final.
    Completed,
    Cancelled,
}

/// Sent to the supervisor when a dispatcher ends on its own.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DispatcherEnded {
    pub run: Arc<CampaignRun>,
    pub end: DispatchEnd,
}

pub struct CampaignDispatcher {
    run: Arc<CampaignRun>,
    store: Arc<dyn Store>,
    queues: QueueDirectory,
    settings: DispatchSettings,
    notify: Recipient<DispatcherEnded>,
}

impl CampaignDispatcher {
    pub fn new(
        run: Arc<CampaignRun>,
        store: Arc<dyn Store>,
        queues: QueueDirectory,
        settings: DispatchSettings,
        notify: Recipient<DispatcherEnded>,
    ) -> Self {
        Self {
            run,
            store,
            queues,
            settings,
            notify,
        }
    }
}

impl Actor for CampaignDispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let work = dispatch(
            Arc::clone(&self.run),
            Arc::clone(&self.store),
            self.queues.clone(),
            self.settings,
        );
        ctx.spawn(work.into_actor(self).map(|end, actor, ctx| {
            actor.notify.do_send(DispatcherEnded {
                run: Arc::clone(&actor.run),
                end,
            });
            ctx.stop();
        }));
    }
}

/// The dispatch loop; runs until the campaign completes or is cancelled.
async fn dispatch(
    run: Arc<CampaignRun>,
    store: Arc<dyn Store>,
    queues: QueueDirectory,
    settings: DispatchSettings,
) -> DispatchEnd {
    let mut cursor = RecipientId(0);
    let mut dispatched_this_pass = 0usize;
    let clock = queues.clock();
    loop {
        if run.control.is_cancelled() {
            return DispatchEnd::Cancelled;
        }
        if run.control.is_paused() {
            run.control.wait_while_paused().await;
            cursor = RecipientId(0);
            continue;
        }
        // Retries that fell due go first, wherever the pass stands.
        match serve_due_retries(&run, store.as_ref(), &queues, settings).await {
            Ok(taken) => dispatched_this_pass += taken,
            Err(err) => {
                tracing::warn!(campaign = %run.campaign, error = %err, "reading due retries failed; retrying");
                tokio::time::sleep(settings.poll_interval).await;
                continue;
            }
        }
        // Before the read, so that no row in the batch can be one whose outcome
        // was stored after it was read (see `InFlightSet::snapshot`).
        let busy = run.in_flight.snapshot();
        let now = clock.now();
        let read = store
            .due_recipients(run.tenant, run.campaign, cursor, now, settings.batch_size)
            .await;
        let batch = match read {
            Ok(batch) => batch,
            Err(err) => {
                tracing::warn!(campaign = %run.campaign, error = %err, "reading due recipients failed; retrying");
                tokio::time::sleep(settings.poll_interval).await;
                continue;
            }
        };
        if batch.is_empty() {
            let whole_pass_idle = cursor == RecipientId(0) || dispatched_this_pass == 0;
            if whole_pass_idle {
                if run.in_flight.is_empty() && is_complete(&run, store.as_ref()).await {
                    return DispatchEnd::Completed;
                }
                tokio::time::sleep(settings.poll_interval).await;
            }
            cursor = RecipientId(0);
            dispatched_this_pass = 0;
            continue;
        }
        let last = batch.row(batch.len() - 1).id();
        match send_batch(&run, store.as_ref(), &queues, batch, busy, now).await {
            Ok(taken) => {
                cursor = last;
                dispatched_this_pass += taken;
            }
            Err(err) => {
                tracing::warn!(campaign = %run.campaign, error = %err, "reading the suppression list failed; retrying");
                tokio::time::sleep(settings.poll_interval).await;
                continue;
            }
        }
    }
}

/// Hands out the recipients of `run.retries` that are due now, read back from
/// the store (so a row already final, or no longer due, is left alone); one
/// still in flight (its deferral not stored yet) is looked at again a poll
/// interval later. Returns how many were taken; on a store error everything
/// taken from the schedule goes back.
async fn serve_due_retries(
    run: &Arc<CampaignRun>,
    store: &dyn Store,
    queues: &QueueDirectory,
    settings: DispatchSettings,
) -> Result<usize, StoreError> {
    let now = queues.clock().now();
    let due = run.retries.take_due(now, settings.batch_size as usize);
    if due.is_empty() {
        return Ok(0);
    }
    let busy = run.in_flight.snapshot();
    let later = now
        + chrono::Duration::from_std(settings.poll_interval).unwrap_or(chrono::Duration::zero());
    let put_back = |error: StoreError| {
        for id in &due {
            run.retries.schedule(now, *id);
        }
        error
    };
    let batch = store
        .due_recipients_among(run.tenant, run.campaign, &due, now)
        .await
        .map_err(put_back)?;
    if batch.is_empty() {
        return Ok(0);
    }
    let in_flight: Vec<RecipientId> = due.iter().filter(|id| busy.contains(id)).copied().collect();
    let taken = send_batch(run, store, queues, batch, busy, now)
        .await
        .map_err(put_back)?;
    for id in in_flight {
        run.retries.schedule(later, id);
    }
    Ok(taken)
}

/// Marks the batch's suppressed rows and hands out the rest, except those in
/// `busy`; returns how many were taken. A failed suppression lookup sends
/// nothing: sending to a suppressed address is worse than sending later.
async fn send_batch(
    run: &Arc<CampaignRun>,
    store: &dyn Store,
    queues: &QueueDirectory,
    batch: RecipientBatch,
    mut busy: HashSet<RecipientId>,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let suppressed = suppress(run, store, &batch, &busy, now).await?;
    busy.extend(suppressed);
    Ok(hand_out(run, queues, Arc::new(batch), &busy).await)
}

/// Marks the batch's rows on the tenant's suppression list `Suppressed` (through
/// the tracker, like any outcome) instead of sending; one store call per batch.
/// Returns their ids, for `hand_out` to skip.
async fn suppress(
    run: &Arc<CampaignRun>,
    store: &dyn Store,
    batch: &RecipientBatch,
    busy: &HashSet<RecipientId>,
    now: DateTime<Utc>,
) -> Result<Vec<RecipientId>, StoreError> {
    let emails: Vec<String> = (0..batch.len())
        .map(|i| batch.row(i).email().to_owned())
        .collect();
    let listed = store.suppressed_among(run.tenant, &emails).await?;
    let mut ids = Vec::new();
    for index in 0..batch.len() {
        let row = batch.row(index);
        if !listed.contains(row.email()) || busy.contains(&row.id()) {
            continue;
        }
        ids.push(row.id());
        let Some(guard) = run.in_flight.enter(row.id()).await else {
            continue;
        };
        let outcome = Outcome {
            recipient: row.id(),
            state: RecipientState::Suppressed,
            attempted: false,
            detail: Some("on the suppression list".to_owned()),
            at: now,
        };
        let _ = run
            .tracking
            .send(RecordOutcome {
                tenant: run.tenant,
                campaign: run.campaign,
                outcome,
                guard: Some(guard),
            })
            .await;
    }
    Ok(ids)
}

/// Hands a batch's rows to their domain queues, except those that were in flight
/// when it was read (`busy`); returns how many were taken.
async fn hand_out(
    run: &Arc<CampaignRun>,
    queues: &QueueDirectory,
    batch: Arc<engine::store::RecipientBatch>,
    busy: &HashSet<RecipientId>,
) -> usize {
    let mut taken = 0;
    for index in 0..batch.len() {
        if run.control.is_paused() || run.control.is_cancelled() {
            break;
        }
        let row = batch.row(index);
        if busy.contains(&row.id()) {
            continue;
        }
        let Some(guard) = run.in_flight.enter(row.id()).await else {
            continue;
        };
        let work = Work {
            run: Arc::clone(run),
            batch: Arc::clone(&batch),
            row: index,
            guard,
        };
        // A full queue, or one that just stopped, hands the row back: it stays
        // pending and is read again on the next pass.
        if let Ok(Ok(())) = queues.get(row.domain()).send(Enqueue(work)).await {
            taken += 1;
        }
    }
    taken
}

/// Completed when no recipient is pending or deferred any more. The tracker is
/// flushed first so the counters include every outcome handed to it.
async fn is_complete(run: &CampaignRun, store: &dyn Store) -> bool {
    let _ = run.tracking.send(Flush).await;
    match store.counters(run.tenant, run.campaign).await {
        Ok(c) => c.pending == 0 && c.deferred == 0,
        Err(_) => false,
    }
}

/// Marks the campaign's final status in the store.
pub async fn store_end(store: &dyn Store, run: &CampaignRun, end: DispatchEnd) {
    let status = match end {
        DispatchEnd::Completed => CampaignStatus::Completed,
        DispatchEnd::Cancelled => return, // already stored by whoever cancelled
    };
    if let Err(err) = store
        .set_campaign_status(run.tenant, run.campaign, status)
        .await
    {
        tracing::error!(campaign = %run.campaign, error = %err, "storing the campaign status failed");
    }
}
