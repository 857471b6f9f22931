//! `Worker`: the one thread that owns a SQLite connection. Every access to a database
//! file is a job run on its worker, so async callers never block the runtime and
//! SQLite only ever sees one writer per file.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::convert::db_error;
use crate::store::{StoreError, StoreResult};

/// A unit of work for a worker thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Jobs that may wait for a worker before callers wait too: enough to keep the thread
/// busy between wake-ups, small enough that a stalled file pushes back quickly.
const QUEUE_DEPTH: usize = 64;

/// A cloneable handle to a worker thread; the thread ends when the last handle is
/// dropped and the queued jobs have run.
#[derive(Clone)]
pub(super) struct Worker {
    /// Bounded, so callers wait (asynchronously) when the file cannot keep up.
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// Starts a thread that opens `path` and runs `init` on the connection before any
    /// job. Resolves once `init` has run, with its result; on failure the thread is gone.
    pub(super) async fn start<T, I>(name: String, path: PathBuf, init: I) -> StoreResult<(Self, T)>
    where
        T: Send + 'static,
        I: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let (jobs, queue) = mpsc::channel::<Job>(QUEUE_DEPTH);
        let (ready, started) = oneshot::channel();
        std::thread::Builder::new().name(name).spawn(move || {
            let opened = Connection::open(&path).map_err(db_error);
            let mut conn = match opened {
                Ok(conn) => conn,
                Err(err) => {
                    let _ = ready.send(Err(err));
                    return;
                }
            };
            match init(&mut conn) {
                Ok(value) => {
                    if ready.send(Ok(value)).is_ok() {
                        run(conn, queue);
                    }
                }
                Err(err) => {
                    let _ = ready.send(Err(err));
                }
            }
        })?;
        let value = started.await.map_err(|_| gone())??;
        Ok((Self { jobs }, value))
    }

    /// Hands an open connection to a new worker thread. For start-up code that may
    /// block briefly; `start` is the non-blocking way.
    pub(super) fn spawn(name: String, conn: Connection) -> StoreResult<Self> {
        let (jobs, queue) = mpsc::channel::<Job>(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || run(conn, queue))?;
        Ok(Self { jobs })
    }

    /// Runs `job` on the worker's connection and returns its result.
    pub(super) async fn call<R, F>(&self, job: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<R> + Send + 'static,
    {
        self.submit(job).await?.wait().await
    }

    /// Queues `job` and returns once it is queued, not run: the caller can prepare
    /// the next piece of work meanwhile and collect the result later.
    pub(super) async fn submit<R, F>(&self, job: F) -> StoreResult<Pending<R>>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // The caller may have gone away (a cancelled request); the work is done
            // either way, so a closed reply channel is not an error.
            let _ = reply.send(job(conn));
        });
        self.jobs.send(job).await.map_err(|_| gone())?;
        Ok(Pending(answer))
    }

    /// Queues `job` without waiting, from synchronous code such as `Drop`. If the
    /// queue is full, a short-lived thread waits for room, so the job is never lost.
    pub(super) fn spawn_detached<F>(&self, job: F)
    where
        F: FnOnce(&mut Connection) + Send + 'static,
    {
        match self.jobs.try_send(Box::new(job)) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(job)) => {
                let jobs = self.jobs.clone();
                // A plain thread, not a task: `Drop` may run outside any runtime.
                let spawned = std::thread::Builder::new()
                    .name("sqlite-detached".into())
                    .spawn(move || drop(jobs.blocking_send(job)));
                if let Err(err) = spawned {
                    tracing::error!(%err, "could not queue a clean-up job for a database");
                }
            }
        }
    }
}

/// The result of a submitted job, to collect with `wait`.
pub(super) struct Pending<R>(oneshot::Receiver<StoreResult<R>>);

impl<R> Pending<R> {
    pub(super) async fn wait(self) -> StoreResult<R> {
        self.0.await.map_err(|_| gone())?
    }
}

/// The worker loop. A panicking job must not take the file down with it (every later
/// call would fail), and must not leave a transaction open that later jobs would
/// silently run inside, so the loop survives the panic and rolls back.
fn run(mut conn: Connection, mut queue: mpsc::Receiver<Job>) {
    while let Some(job) = queue.blocking_recv() {
        if catch_unwind(AssertUnwindSafe(|| job(&mut conn))).is_err() {
            tracing::error!("a database job panicked; its transaction is rolled back");
        }
        if !conn.is_autocommit()
            && let Err(err) = conn.execute_batch("ROLLBACK")
        {
            tracing::error!(%err, "could not roll back a transaction left open by a job");
        }
    }
}

fn gone() -> StoreError {
    StoreError::Unavailable("the database thread has stopped".into())
}
