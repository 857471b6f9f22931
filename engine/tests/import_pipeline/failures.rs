//! Imports that break part-way for reasons outside the file: the database connection
//! killed mid-COPY (PostgreSQL, where a second connection can do it) and a parse
//! thread that panics (SQLite; the store plays no part in it).

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use engine::import::ImportError;
use engine::model::RecipientId;
use engine::store::StoreError;

use super::{Backend, assert_nothing_visible, client, draft_campaign, generated, run};

/// A file whose first part is read at once and whose rest is held back until the
/// test opens the gate (or drops it), so the import can be caught mid-COPY for as
/// long as the test needs. Counts the bytes it hands out.
struct Gated {
    head: io::Cursor<Vec<u8>>,
    gate: Option<mpsc::Receiver<()>>,
    tail: io::Cursor<Vec<u8>>,
    served: Arc<AtomicU64>,
}

impl Read for Gated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = self.head.read(buf)?;
        if n == 0 {
            if let Some(gate) = self.gate.take() {
                // A dropped sender opens the gate too: a failing test must not hang.
                let _ = gate.recv();
            }
            n = self.tail.read(buf)?;
        }
        self.served.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Polls `check` every 20 ms until it yields a value or `limit` has passed.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the import's COPY to show in `pg_stat_activity`, kills its backend, and
/// waits until the backend is gone, so that the import's next write meets a closed
/// connection.
async fn terminate_the_copy(url: &str) {
    let admin = &client(url).await;
    let copying = "SELECT pid FROM pg_stat_activity
                   WHERE datname = current_database() AND pid <> pg_backend_pid()
                     AND query ILIKE 'COPY%'";
    let pid: i32 = eventually(
        "the import's COPY runs",
        Duration::from_secs(10),
        || async {
            let rows = admin.query(copying, &[]).await.expect("pg_stat_activity");
            rows.first().map(|r| r.get(0))
        },
    )
    .await;
    let killed: bool = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .expect("pg_terminate_backend")
        .get(0);
    assert!(killed, "backend {pid} was not terminated");
    let alive = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1";
    eventually(
        "the backend has exited",
        Duration::from_secs(10),
        || async {
            let rows: i64 = admin.query_one(alive, &[&pid]).await.expect("q").get(0);
            (rows == 0).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_aborts_stops_the_parser_and_leaves_no_report() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let Backend::Postgres { db, .. } = &backend else {
        unreachable!("a PostgreSQL backend")
    };
    let store = backend.store();
    let campaign = draft_campaign(store).await;
    // The bad row early makes the report exist before the failure, so its absence
    // afterwards is the importer's doing.
    let mut head = generated(50);
    head.extend_from_slice(b"bad,row\n");
    let tail: Vec<u8> = (50..50_000)
        .flat_map(|i| format!("user{i}@example.com,Name {i}\n").into_bytes())
        .collect();
    let total = (head.len() + tail.len()) as u64;
    let (open, gate) = mpsc::channel();
    let served = Arc::new(AtomicU64::new(0));
    let source = Gated {
        head: io::Cursor::new(head),
        gate: Some(gate),
        tail: io::Cursor::new(tail),
        served: served.clone(),
    };

    let (run, ()) = tokio::join!(run(store, campaign, source, 16), async {
        terminate_the_copy(&db.url).await;
        open.send(()).expect("the source is still waiting");
    });

    assert!(
        matches!(
            run.result,
            Err(ImportError::Store(StoreError::Unavailable(_)))
        ),
        "{:?}",
        run.result
    );
    let served = served.load(Ordering::Relaxed);
    assert!(served < total, "the parser read all {total} bytes");
    assert!(!run.report.exists(), "a partial report was left behind");
    assert_nothing_visible(&backend, campaign).await;

    let again = super::run(store, campaign, io::Cursor::new(generated(10)), 4).await;
    let outcome = again.result.expect("the retry imports");
    assert_eq!((outcome.loaded, outcome.rejected), (10, 0));
    let (tenant, campaign) = campaign;
    let rows = store
        .recipients(tenant, campaign, RecipientId(0), 100)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 10);
}

/// A source that panics part-way, standing in for a bug in the parse thread.
struct PanicsAfter(io::Cursor<Vec<u8>>, u64);

impl Read for PanicsAfter {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        assert!(self.0.position() < self.1, "the source blew up");
        let n = buf.len().min(512);
        self.0.read(&mut buf[..n])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_parse_thread_is_an_error_not_a_hang() {
    let backend = Backend::sqlite().await.expect("SQLite is always here");
    let store = backend.store();
    let campaign = draft_campaign(store).await;
    let source = PanicsAfter(io::Cursor::new(generated(5000)), 80_000);

    let run = run(store, campaign, source, 8).await;

    assert!(
        matches!(run.result, Err(ImportError::Interrupted(_))),
        "{:?}",
        run.result
    );
    assert_nothing_visible(&backend, campaign).await;
}
