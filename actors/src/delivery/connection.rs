//! `MtaConnection`: one actor per open SMTP session. It pulls recipients from its
//! `DomainQueue`, has each message rendered on the CPU pool, sends it within the
//! destination's rate, and hands the outcome to the tenant's `TrackingActor`.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use engine::delivery::{ConnectionPermit, DomainLimiter};
use engine::model::RecipientState;
use engine::smtp::{DeliveryError, SmtpSession};
use engine::store::Outcome;

use super::domain_queue::{ConnectionClosed, DomainQueue, NextWork};
use super::outcome::{delivery_outcome, render_failure};
use super::{Delivery, Work};
use crate::telemetry as m;
use crate::tracking::RecordOutcome;

pub(super) struct MtaConnection {
    queue: Addr<DomainQueue>,
    domain: Arc<str>,
    label: String,
    delivery: Arc<Delivery>,
    limiter: Arc<DomainLimiter>,
    /// Held for the actor's life: frees the destination's connection slot on stop.
    permit: Option<ConnectionPermit>,
}

impl MtaConnection {
    pub(super) fn new(
        queue: Addr<DomainQueue>,
        domain: Arc<str>,
        label: String,
        delivery: Arc<Delivery>,
        limiter: Arc<DomainLimiter>,
        permit: ConnectionPermit,
    ) -> Self {
        Self {
            queue,
            domain,
            label,
            delivery,
            limiter,
            permit: Some(permit),
        }
    }
}

impl Actor for MtaConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let session = Session {
            queue: self.queue.clone(),
            domain: Arc::clone(&self.domain),
            label: self.label.clone(),
            delivery: Arc::clone(&self.delivery),
            limiter: Arc::clone(&self.limiter),
            smtp: None,
        };
        ctx.spawn(session.run().into_actor(self).map(|failed, actor, ctx| {
            actor.permit.take();
            actor.queue.do_send(ConnectionClosed { failed });
            ctx.stop();
        }));
    }
}

/// The connection's working state, owned by its loop.
struct Session {
    queue: Addr<DomainQueue>,
    domain: Arc<str>,
    label: String,
    delivery: Arc<Delivery>,
    limiter: Arc<DomainLimiter>,
    smtp: Option<SmtpSession>,
}

impl Session {
    /// Sends until the queue stays empty for the idle timeout, connecting fails, or
    /// the destination's connection limit was lowered. Returns whether it ended
    /// because connecting failed.
    async fn run(mut self) -> bool {
        let mut failed = false;
        while let Ok(Some(work)) = self.queue.send(NextWork).await {
            if work.run.control.is_cancelled() {
                continue; // the guard drops: the recipient stays pending
            }
            let message = match self.render(&work).await {
                Some(Ok(message)) => message,
                Some(Err(reason)) => {
                    let now = self.delivery.clock.now();
                    let outcome = render_failure(work.batch.row(work.row), reason, now);
                    self.store(work, outcome).await;
                    continue;
                }
                None => continue, // the guard drops; the recipient is read again later
            };
            if let Err(err) = self.ensure_connected().await {
                failed = true;
                self.record(work, &Err(err)).await;
                break;
            }
            let result = self.send(&message).await;
            self.record(work, &result).await;
            if self.limiter.over_limit() {
                break;
            }
        }
        if let Some(smtp) = self.smtp.take() {
            metrics::gauge!(m::SMTP_CONNECTIONS, "domain" => self.label.clone()).decrement(1.0);
            smtp.quit().await;
        }
        failed
    }

    /// Renders (and signs) on the CPU pool: the message, or why this row cannot be
    /// rendered; `None` when the pool is unavailable.
    async fn render(&self, work: &Work) -> Option<Result<engine::render::RenderedMessage, String>> {
        let run = Arc::clone(&work.run);
        let batch = Arc::clone(&work.batch);
        let index = work.row;
        let delivery = Arc::clone(&self.delivery);
        let result = self
            .delivery
            .pool
            .run(run.tenant, move || {
                let started = Instant::now();
                let now = delivery.clock.now();
                let result = run.render(batch.row(index), &delivery.dkim, now);
                metrics::histogram!(m::RENDER_SECONDS).record(started.elapsed().as_secs_f64());
                result
            })
            .await;
        match result {
            Ok(rendered) => Some(rendered),
            Err(pool) => {
                tracing::error!(error = %pool, "render pool unavailable");
                None
            }
        }
    }

    async fn ensure_connected(&mut self) -> Result<(), DeliveryError> {
        let max = self.delivery.settings.max_messages_per_connection;
        if let Some(smtp) = &self.smtp
            && smtp.is_usable()
            && smtp.delivered() < max
        {
            return Ok(());
        }
        if let Some(old) = self.smtp.take() {
            metrics::gauge!(m::SMTP_CONNECTIONS, "domain" => self.label.clone()).decrement(1.0);
            old.quit().await;
        }
        let destinations = self.delivery.router.resolve(&self.domain).await?;
        let mut last = DeliveryError::transient(format!("no destination for {}", self.domain));
        for destination in &destinations {
            let options = self.delivery.session_options(&self.domain, destination)?;
            match SmtpSession::connect(destination.addr, &options).await {
                Ok(smtp) => {
                    metrics::gauge!(m::SMTP_CONNECTIONS, "domain" => self.label.clone())
                        .increment(1.0);
                    self.smtp = Some(smtp);
                    return Ok(());
                }
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    async fn send(
        &mut self,
        message: &engine::render::RenderedMessage,
    ) -> Result<engine::smtp::Reply, DeliveryError> {
        let Some(smtp) = self.smtp.as_mut() else {
            return Err(DeliveryError::transient("no session"));
        };
        self.limiter.acquire_send().await;
        let started = Instant::now();
        let timeouts = self.delivery.settings.timeouts;
        let result = smtp
            .deliver(
                &message.envelope_from,
                &message.recipient,
                &message.bytes,
                &timeouts,
            )
            .await;
        metrics::histogram!(m::SMTP_SECONDS, "domain" => self.label.clone())
            .record(started.elapsed().as_secs_f64());
        let verdict = match &result {
            Ok(_) => {
                self.limiter.on_success();
                "delivered"
            }
            Err(err) => {
                if err.is_throttle() {
                    self.limiter.on_throttle();
                    metrics::counter!(m::THROTTLES, "domain" => self.label.clone()).increment(1);
                }
                match err {
                    DeliveryError::Permanent { .. } => "bounced",
                    DeliveryError::Transient { .. } => "deferred",
                }
            }
        };
        metrics::counter!(m::MESSAGES, "domain" => self.label.clone(), "result" => verdict)
            .increment(1);
        result
    }

    async fn record(&self, work: Work, result: &Result<engine::smtp::Reply, DeliveryError>) {
        let now = self.delivery.clock.now();
        let outcome = delivery_outcome(&work.run, work.batch.row(work.row), result, now);
        if let RecipientState::Deferred { until } = outcome.state {
            work.run.retries.schedule(until, outcome.recipient);
        }
        self.store(work, outcome).await;
    }

    /// Hands the outcome to the tracker, waiting if it is behind (backpressure).
    /// The in-flight guard goes with it and is released only once the outcome is
    /// stored: released earlier, the dispatcher could read the recipient as still
    /// pending and send it again.
    async fn store(&self, work: Work, outcome: Outcome) {
        let message = RecordOutcome {
            tenant: work.run.tenant,
            campaign: work.run.campaign,
            outcome,
            guard: Some(work.guard),
        };
        if let Err(err) = work.run.tracking.send(message).await {
            tracing::error!(error = %err, "tracking actor unavailable; outcome not stored");
        }
    }
}
