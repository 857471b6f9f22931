//! `DomainQueue`: one per tenant and recipient domain. Holds a bounded queue of
//! recipients and the `MtaConnection` actors that drain it; connections pull work
//! when they are free, so a slow domain only fills its own queue.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use dashmap::DashMap;
use engine::delivery::DomainLimiter;
use engine::model::TenantId;
use tokio::sync::oneshot;

use super::connection::MtaConnection;
use super::{Delivery, Work};
use crate::telemetry as m;

/// Hand a recipient to the queue; gives it back when the queue is full, so the
/// dispatcher can move on to other domains.
#[derive(Message)]
#[rtype(result = "Result<(), Work>")]
pub struct Enqueue(pub Work);

/// A connection asks for its next recipient; `None` after the idle timeout.
#[derive(Message)]
#[rtype(result = "Option<Work>")]
pub(super) struct NextWork;

/// A connection actor ended; `failed` when it could not connect.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct ConnectionClosed {
    pub failed: bool,
}

/// A queue that has been idle this long stops, freeing its memory.
const IDLE_STOP: Duration = Duration::from_secs(300);
/// After a connection could not connect, wait this long before opening another.
const CONNECT_RETRY: Duration = Duration::from_secs(1);

pub struct DomainQueue {
    tenant: TenantId,
    domain: Arc<str>,
    label: String,
    delivery: Arc<Delivery>,
    limiter: Arc<DomainLimiter>,
    queue: VecDeque<Work>,
    /// Connections waiting for work, oldest first.
    waiters: VecDeque<oneshot::Sender<Work>>,
    connections: usize,
    /// Set while connecting fails, to pace new attempts.
    backing_off: bool,
    idle_since: Option<std::time::Instant>,
}

impl DomainQueue {
    pub fn new(tenant: TenantId, domain: &str, delivery: Arc<Delivery>) -> Self {
        Self {
            tenant,
            label: delivery.labels.label(domain),
            domain: Arc::from(domain),
            limiter: delivery.limits.for_domain(domain),
            delivery,
            queue: VecDeque::new(),
            waiters: VecDeque::new(),
            connections: 0,
            backing_off: false,
            idle_since: None,
        }
    }

    /// Opens connections while there is unserved work and the limits allow.
    fn open_connections(&mut self, ctx: &mut Context<Self>) {
        if self.backing_off {
            return;
        }
        while self.queue.len() > self.waiters.len() {
            let Some(permit) = self.limiter.try_open() else { break };
            let connection = MtaConnection::new(
                ctx.address(),
                Arc::clone(&self.domain),
                self.label.clone(),
                Arc::clone(&self.delivery),
                Arc::clone(&self.limiter),
                permit,
            );
            connection.start();
            self.connections += 1;
        }
    }

    /// Gives `work` to a waiting connection, or returns it.
    fn hand_to_waiter(&mut self, mut work: Work) -> Option<Work> {
        while let Some(waiter) = self.waiters.pop_front() {
            match waiter.send(work) {
                Ok(()) => return None,
                Err(back) => work = back, // that connection timed out meanwhile
            }
        }
        Some(work)
    }

    fn report_depth(&self) {
        metrics::gauge!(m::QUEUE_DEPTH, "domain" => self.label.clone()).set(self.queue.len() as f64);
    }
}

impl Actor for DomainQueue {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        ctx.run_interval(Duration::from_secs(30), |queue, ctx| {
            let idle = queue.queue.is_empty() && queue.connections == 0;
            match (idle, queue.idle_since) {
                (false, _) => queue.idle_since = None,
                (true, None) => queue.idle_since = Some(std::time::Instant::now()),
                (true, Some(since)) if since.elapsed() >= IDLE_STOP => ctx.stop(),
                (true, Some(_)) => {}
            }
        });
    }
}

impl Handler<Enqueue> for DomainQueue {
    type Result = Result<(), Work>;

    fn handle(&mut self, Enqueue(work): Enqueue, ctx: &mut Self::Context) -> Self::Result {
        debug_assert_eq!(work.run.tenant, self.tenant);
        let Some(work) = self.hand_to_waiter(work) else { return Ok(()) };
        if self.queue.len() >= self.delivery.settings.queue_capacity {
            return Err(work);
        }
        self.queue.push_back(work);
        self.open_connections(ctx);
        self.report_depth();
        Ok(())
    }
}

impl Handler<NextWork> for DomainQueue {
    type Result = ResponseFuture<Option<Work>>;

    fn handle(&mut self, _: NextWork, _: &mut Self::Context) -> Self::Result {
        if let Some(work) = self.queue.pop_front() {
            self.report_depth();
            return Box::pin(async move { Some(work) });
        }
        let (sender, receiver) = oneshot::channel();
        self.waiters.push_back(sender);
        let idle = self.delivery.settings.idle_timeout;
        Box::pin(async move { tokio::time::timeout(idle, receiver).await.ok()?.ok() })
    }
}

impl Handler<ConnectionClosed> for DomainQueue {
    type Result = ();

    fn handle(&mut self, msg: ConnectionClosed, ctx: &mut Self::Context) {
        self.connections = self.connections.saturating_sub(1);
        if msg.failed && !self.backing_off {
            self.backing_off = true;
            ctx.run_later(CONNECT_RETRY, |queue, ctx| {
                queue.backing_off = false;
                queue.open_connections(ctx);
            });
            return;
        }
        self.open_connections(ctx);
    }
}

/// The domain queues of one tenant, created on first use. Shared by the tenant's
/// dispatchers; entries whose actor stopped (idle) are replaced.
#[derive(Clone)]
pub struct QueueDirectory {
    tenant: TenantId,
    delivery: Arc<Delivery>,
    queues: Arc<DashMap<String, Addr<DomainQueue>>>,
}

impl QueueDirectory {
    pub fn new(tenant: TenantId, delivery: Arc<Delivery>) -> Self {
        Self {
            tenant,
            delivery,
            queues: Arc::new(DashMap::new()),
        }
    }

    /// The queue for `domain`; must be called from within the actor system.
    pub fn get(&self, domain: &str) -> Addr<DomainQueue> {
        if let Some(found) = self.queues.get(domain)
            && found.connected()
        {
            return found.clone();
        }
        let addr = DomainQueue::new(self.tenant, domain, Arc::clone(&self.delivery)).start();
        self.queues.insert(domain.to_owned(), addr.clone());
        addr
    }
}
