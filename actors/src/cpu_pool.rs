//! The CPU pool: a fixed set of threads (one per core by default) that run the
//! CPU-heavy work of sending (rendering, MIME, DKIM) for every tenant, so N tenants
//! never mean N × cores threads and I/O actors never block their arbiter.
//!
//! Bounded and fair: a global async semaphore bounds the jobs queued in the
//! (bounded) crossbeam channel, so a submitter waits instead of blocking a thread
//! or growing a queue; a per-tenant semaphore caps the share of the queue one
//! tenant can hold, so a tenant with a huge campaign cannot starve the others.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{Receiver, Sender, bounded};
use dashmap::DashMap;
use engine::model::TenantId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A job and the queue slots it holds until a thread takes it.
struct Queued {
    job: Job,
    global: OwnedSemaphorePermit,
    tenant: OwnedSemaphorePermit,
}

/// Handle to the pool; cheap to clone.
#[derive(Clone)]
pub struct CpuPool {
    inner: Arc<Inner>,
}

struct Inner {
    sender: Sender<Queued>,
    global: Arc<Semaphore>,
    per_tenant: usize,
    tenants: DashMap<TenantId, Arc<Semaphore>>,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for CpuPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuPool")
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

/// The pool was shut down, or a job panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the CPU pool could not run the job (shut down, or the job panicked)")]
pub struct PoolError;

impl CpuPool {
    /// Starts `threads` threads (0 = one per available core) with room for
    /// `queue` waiting jobs, of which one tenant may hold `per_tenant`.
    pub fn start(threads: usize, queue: usize, per_tenant: usize) -> Self {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            threads
        };
        let queue = queue.max(1);
        let (sender, receiver) = bounded::<Queued>(queue);
        let handles = (0..threads)
            .map(|i| {
                let receiver: Receiver<Queued> = receiver.clone();
                std::thread::Builder::new()
                    .name(format!("broadside-cpu-{i}"))
                    .spawn(move || {
                        // Ends when every sender is gone (the pool was dropped).
                        while let Ok(queued) = receiver.recv() {
                            let Queued {
                                job,
                                global,
                                tenant,
                            } = queued;
                            // Taken off the queue: free its slots before running.
                            drop((global, tenant));
                            // A panicking job drops its reply (the caller gets
                            // PoolError); the thread lives on for the next job.
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                    })
                    .expect("spawning a CPU pool thread at start-up")
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                sender,
                global: Arc::new(Semaphore::new(queue)),
                per_tenant: per_tenant.clamp(1, queue),
                tenants: DashMap::new(),
                threads: std::sync::Mutex::new(handles),
            }),
        }
    }

    /// Jobs waiting for a thread.
    pub fn queued(&self) -> usize {
        self.inner.sender.len()
    }

    /// Runs `work` on a pool thread and returns its result; waits (asynchronously)
    /// while the queue or this tenant's share of it is full.
    pub async fn run<R, F>(&self, tenant: TenantId, work: F) -> Result<R, PoolError>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let tenant_slots = self.tenant_semaphore(tenant);
        let tenant_permit = tenant_slots.acquire_owned().await.map_err(|_| PoolError)?;
        let global_permit = Arc::clone(&self.inner.global)
            .acquire_owned()
            .await
            .map_err(|_| PoolError)?;
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(work());
        });
        let queued = Queued {
            job,
            global: global_permit,
            tenant: tenant_permit,
        };
        // The global permit guarantees a free slot, so this never blocks.
        self.inner.sender.try_send(queued).map_err(|_| PoolError)?;
        metrics::gauge!(crate::telemetry::CPU_QUEUE_DEPTH).set(self.queued() as f64);
        result.await.map_err(|_| PoolError)
    }

    fn tenant_semaphore(&self, tenant: TenantId) -> Arc<Semaphore> {
        if let Some(found) = self.inner.tenants.get(&tenant) {
            return Arc::clone(found.value());
        }
        let per_tenant = self.inner.per_tenant;
        Arc::clone(
            self.inner
                .tenants
                .entry(tenant)
                .or_insert_with(|| Arc::new(Semaphore::new(per_tenant)))
                .value(),
        )
    }

    /// Stops the threads once queued jobs are done; later `run` calls fail.
    pub fn shutdown(&self) {
        self.inner.global.close();
        for semaphore in self.inner.tenants.iter() {
            semaphore.close();
        }
        let handles = std::mem::take(
            &mut *self
                .inner
                .threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        // Threads end when the channel is empty and every sender is dropped; this
        // handle still holds one, so only detach them here.
        drop(handles);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn jobs_run_off_the_async_thread_and_return_their_result() {
        let pool = CpuPool::start(2, 8, 4);
        let caller = std::thread::current().id();
        let (value, thread) = pool
            .run(TenantId(1), move || (21 * 2, std::thread::current().id()))
            .await
            .expect("runs");
        assert_eq!(value, 42);
        assert_ne!(thread, caller);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_not_a_hang() {
        let pool = CpuPool::start(1, 4, 4);
        let result = pool.run(TenantId(1), || -> u32 { panic!("boom") }).await;
        assert_eq!(result, Err(PoolError));
        // The only thread survived the panic and runs the next job.
        assert_eq!(pool.run(TenantId(1), || 7).await, Ok(7));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_tenant_cannot_hold_more_than_its_share_of_the_queue() {
        // One thread, blocked; tenant 1 floods, tenant 2 must still get a slot.
        let pool = CpuPool::start(1, 4, 2);
        let gate = Arc::new(std::sync::Barrier::new(2));
        let started = Arc::new(AtomicUsize::new(0));
        let blocker = {
            let (pool, gate) = (pool.clone(), Arc::clone(&gate));
            tokio::spawn(async move {
                pool.run(TenantId(1), move || {
                    gate.wait();
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut flood = Vec::new();
        for _ in 0..5 {
            let (pool, started) = (pool.clone(), Arc::clone(&started));
            flood.push(tokio::spawn(async move {
                pool.run(TenantId(1), move || {
                    started.fetch_add(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.queued(), 2, "tenant 1 holds only its share");
        let other = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(TenantId(2), || 2).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.queued(), 3, "tenant 2 got a slot while tenant 1 waits");
        gate.wait();
        assert_eq!(other.await.expect("join"), Ok(2));
        blocker.await.expect("join").expect("ran");
        for job in flood {
            job.await.expect("join").expect("ran");
        }
        assert_eq!(started.load(Ordering::SeqCst), 5);
    }
}
