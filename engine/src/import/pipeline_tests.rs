//! Tests of `import_csv` against a store that keeps what it is given in memory:
//! batching, commit and abort on every path, the report, progress.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{ImportError, ImportOptions, ImportOutcome, ImportProgress, import_csv};
use crate::model::{CampaignId, CampaignName, EmailAddress, RecipientId, TenantId, TenantName};
use crate::store::{
    Campaign, CampaignCounters, CampaignStatus, Event, ImportSummary, ImportWriter, Outcome,
    Recipient, RecipientBatch, RecordReport, Store, StoreError, StoreResult, Tenant,
};

/// What the importer did to the store.
#[derive(Debug, Default)]
struct Seen {
    columns: Option<Vec<String>>,
    /// (id, email, values) of every row written, in order.
    rows: Vec<(i64, String, Vec<String>)>,
    writes: usize,
    committed: Option<ImportSummary>,
    aborted: bool,
}

/// A store whose only working call is `begin_import`; `fail_write` makes the n-th
/// write (1-based) fail.
#[derive(Default)]
struct MemoryStore {
    seen: Arc<Mutex<Seen>>,
    fail_write: Option<usize>,
}

struct MemoryWriter {
    seen: Arc<Mutex<Seen>>,
    fail_write: Option<usize>,
}

#[async_trait]
impl ImportWriter for MemoryWriter {
    async fn write(&mut self, batch: &RecipientBatch) -> StoreResult<()> {
        let mut seen = self.seen.lock().expect("lock");
        seen.writes += 1;
        if Some(seen.writes) == self.fail_write {
            return Err(StoreError::Unavailable("connection reset".into()));
        }
        for row in batch.rows() {
            let values = row.values().map(str::to_owned).collect();
            seen.rows.push((row.id().0, row.email().to_owned(), values));
        }
        Ok(())
    }

    async fn commit(self: Box<Self>, summary: &ImportSummary) -> StoreResult<()> {
        self.seen.lock().expect("lock").committed = Some(summary.clone());
        Ok(())
    }

    async fn abort(self: Box<Self>) -> StoreResult<()> {
        self.seen.lock().expect("lock").aborted = true;
        Ok(())
    }
}

const UNUSED: &str = "not used by the importer";

#[async_trait]
impl Store for MemoryStore {
    async fn begin_import(
        &self,
        _: TenantId,
        _: CampaignId,
        columns: &[String],
    ) -> StoreResult<Box<dyn ImportWriter>> {
        self.seen.lock().expect("lock").columns = Some(columns.to_vec());
        Ok(Box::new(MemoryWriter {
            seen: self.seen.clone(),
            fail_write: self.fail_write,
        }))
    }

    async fn migrate(&self) -> StoreResult<Vec<String>> {
        unreachable!("{UNUSED}")
    }
    async fn create_tenant(&self, _: &TenantName) -> StoreResult<Tenant> {
        unreachable!("{UNUSED}")
    }
    async fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        unreachable!("{UNUSED}")
    }
    async fn tenant(&self, _: &TenantName) -> StoreResult<Option<Tenant>> {
        unreachable!("{UNUSED}")
    }
    async fn create_campaign(&self, _: TenantId, _: &CampaignName) -> StoreResult<Campaign> {
        unreachable!("{UNUSED}")
    }
    async fn campaign(&self, _: TenantId, _: CampaignId) -> StoreResult<Option<Campaign>> {
        unreachable!("{UNUSED}")
    }
    async fn campaign_by_name(
        &self,
        _: TenantId,
        _: &CampaignName,
    ) -> StoreResult<Option<Campaign>> {
        unreachable!("{UNUSED}")
    }
    async fn campaigns(&self, _: TenantId) -> StoreResult<Vec<Campaign>> {
        unreachable!("{UNUSED}")
    }
    async fn set_campaign_status(
        &self,
        _: TenantId,
        _: CampaignId,
        _: CampaignStatus,
    ) -> StoreResult<()> {
        unreachable!("{UNUSED}")
    }
    async fn set_campaign_definition(
        &self,
        _: TenantId,
        _: CampaignId,
        _: &str,
    ) -> StoreResult<()> {
        unreachable!("{UNUSED}")
    }
    async fn recipients(
        &self,
        _: TenantId,
        _: CampaignId,
        _: RecipientId,
        _: u32,
    ) -> StoreResult<Vec<Recipient>> {
        unreachable!("{UNUSED}")
    }
    async fn due_recipients(
        &self,
        _: TenantId,
        _: CampaignId,
        _: RecipientId,
        _: DateTime<Utc>,
        _: u32,
    ) -> StoreResult<RecipientBatch> {
        unreachable!("{UNUSED}")
    }
    async fn recipient_by_email(
        &self,
        _: TenantId,
        _: CampaignId,
        _: &EmailAddress,
    ) -> StoreResult<Option<Recipient>> {
        unreachable!("{UNUSED}")
    }
    async fn events(&self, _: TenantId, _: CampaignId, _: RecipientId) -> StoreResult<Vec<Event>> {
        unreachable!("{UNUSED}")
    }
    async fn record_outcomes(
        &self,
        _: TenantId,
        _: CampaignId,
        _: &[Outcome],
    ) -> StoreResult<RecordReport> {
        unreachable!("{UNUSED}")
    }
    async fn counters(&self, _: TenantId, _: CampaignId) -> StoreResult<CampaignCounters> {
        unreachable!("{UNUSED}")
    }
    async fn drop_campaign_data(&self, _: TenantId, _: CampaignId) -> StoreResult<()> {
        unreachable!("{UNUSED}")
    }
}

/// A file of `rows` valid rows, `email,name`, generated as it is read so big files
/// cost no memory.
fn generated(rows: usize) -> impl Read + Send + 'static {
    let body = (0..rows).flat_map(|i| format!("user{i}@example.com,Name {i}\n").into_bytes());
    let bytes: Vec<u8> = b"email,name\n".iter().copied().chain(body).collect();
    io::Cursor::new(bytes)
}

struct Run {
    result: Result<ImportOutcome, ImportError>,
    seen: Arc<Mutex<Seen>>,
    progress: Vec<ImportProgress>,
    report: PathBuf,
    _dir: tempfile::TempDir,
}

async fn run(store: MemoryStore, source: impl Read + Send + 'static, batch_rows: usize) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("list.errors.csv");
    let options = ImportOptions {
        batch_rows,
        ..ImportOptions::default()
    };
    let progress = Mutex::new(Vec::new());
    let on_progress = |p: ImportProgress| progress.lock().expect("lock").push(p);
    let seen = store.seen.clone();
    let result = import_csv(
        &store,
        TenantId(1),
        CampaignId(2),
        source,
        "list.csv",
        &report,
        &options,
        &on_progress,
    )
    .await;
    Run {
        result,
        seen,
        progress: progress.into_inner().expect("lock"),
        report,
        _dir: dir,
    }
}

#[tokio::test]
async fn a_clean_file_is_loaded_in_batches_with_dense_ids_and_committed() {
    let run = run(MemoryStore::default(), generated(10), 4).await;

    let outcome = run.result.expect("imported");
    assert!(outcome.accepted);
    assert_eq!(
        (outcome.loaded, outcome.rejected, outcome.total_rows),
        (10, 0, 10)
    );
    assert_eq!(outcome.columns, ["name"]);
    assert_eq!(outcome.report, None);
    assert!(!run.report.exists());
    let seen = run.seen.lock().expect("lock");
    assert_eq!(seen.writes, 3);
    let ids: Vec<i64> = seen.rows.iter().map(|r| r.0).collect();
    assert_eq!(ids, (1..=10).collect::<Vec<_>>());
    assert_eq!(seen.rows[9].1, "user9@example.com");
    assert_eq!(seen.rows[9].2, ["Name 9"]);
    assert_eq!(
        seen.committed,
        Some(ImportSummary {
            source: "list.csv".into(),
            rows_loaded: 10,
            rows_rejected: 0,
        })
    );
    assert!(!seen.aborted);
    let rows: Vec<u64> = run.progress.iter().map(|p| p.rows_read).collect();
    assert_eq!(rows, [4, 8, 10]);
    assert!(
        run.progress
            .windows(2)
            .all(|w| w[0].bytes_read < w[1].bytes_read)
    );
}

#[tokio::test]
async fn a_few_bad_rows_are_reported_and_the_rest_committed() {
    let mut text = String::from("email,name\n");
    for i in 0..19 {
        text.push_str(&format!("u{i}@example.com,N{i}\n"));
    }
    text.push_str("broken,X\n");
    let run = run(MemoryStore::default(), io::Cursor::new(text), 8).await;

    let outcome = run.result.expect("imported");
    assert!(outcome.accepted);
    assert_eq!((outcome.loaded, outcome.rejected), (19, 1));
    assert_eq!(outcome.report.as_deref(), Some(run.report.as_path()));
    let report = std::fs::read_to_string(&run.report).expect("report");
    assert_eq!(
        report,
        "line,column,reason,email\n21,email,the address has no '@',broken\n"
    );
    assert!(run.seen.lock().expect("lock").committed.is_some());
}

#[tokio::test]
async fn a_file_over_the_invalid_share_is_rejected_and_nothing_committed() {
    let text = "email,name\na@example.com,A\nb@example.com,B\nnope,C\nb@example.com,D\n";
    let run = run(MemoryStore::default(), io::Cursor::new(text), 1).await;

    let outcome = run.result.expect("read to the end");
    assert!(!outcome.accepted);
    assert_eq!(
        (outcome.loaded, outcome.rejected, outcome.total_rows),
        (0, 2, 4)
    );
    let seen = run.seen.lock().expect("lock");
    assert!(seen.aborted && seen.committed.is_none());
    let report = std::fs::read_to_string(&run.report).expect("report");
    assert_eq!(
        report,
        "line,column,reason,email\n\
         4,email,the address has no '@',nope\n\
         5,email,duplicate of line 3,b@example.com\n\
         ,,the file is rejected: 2 of 4 data rows are invalid; at most 10% may be,\n"
    );
}

#[tokio::test]
async fn a_header_error_loads_nothing_and_is_reported_with_the_file_name() {
    let run = run(MemoryStore::default(), io::Cursor::new("name\nAnn\n"), 4).await;

    let error = run.result.expect_err("refused");
    assert_eq!(
        error.to_string(),
        "list.csv: line 1: no column is named \"email\"; the columns found are: \"name\""
    );
    assert!(run.seen.lock().expect("lock").columns.is_none());
    let report = std::fs::read_to_string(&run.report).expect("report");
    assert_eq!(
        report,
        "line,column,reason,email\n\
         1,,\"no column is named \"\"email\"\"; the columns found are: \"\"name\"\"\",\n"
    );
}

#[tokio::test]
async fn an_encoding_error_after_many_batches_aborts_everything_written() {
    let mut bytes = Vec::new();
    generated(1000).read_to_end(&mut bytes).expect("read");
    bytes.extend_from_slice(b"last@example.com,Jos\xE9\n");
    let run = run(MemoryStore::default(), io::Cursor::new(bytes), 64).await;

    let error = run.result.expect_err("refused");
    assert_eq!(
        error.to_string(),
        "list.csv: line 1002, column 2: not valid UTF-8 (byte 0xE9); the file looks like \
         Latin-1 or Windows-1252 — save it as UTF-8"
    );
    let seen = run.seen.lock().expect("lock");
    assert!(seen.writes > 1, "batches were streamed before the error");
    assert!(seen.aborted && seen.committed.is_none());
}

#[tokio::test]
async fn a_store_failure_aborts_stops_the_parser_and_leaves_no_report() {
    let store = MemoryStore {
        fail_write: Some(2),
        ..MemoryStore::default()
    };
    let mut bytes = Vec::new();
    generated(50_000).read_to_end(&mut bytes).expect("read");
    bytes.extend_from_slice(b"bad,row\n");
    let run = run(store, io::Cursor::new(bytes), 16).await;

    assert!(matches!(
        run.result,
        Err(ImportError::Store(StoreError::Unavailable(_)))
    ));
    let seen = run.seen.lock().expect("lock");
    assert_eq!(seen.writes, 2, "nothing is written after the failure");
    assert!(seen.aborted && seen.committed.is_none());
    assert!(!run.report.exists());
}

/// A source that panics part-way, standing in for a bug in the parse thread.
struct PanicsAfter(io::Cursor<Vec<u8>>, usize);

impl Read for PanicsAfter {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        assert!(self.0.position() < self.1 as u64, "the source blew up");
        let n = buf.len().min(512);
        self.0.read(&mut buf[..n])
    }
}

#[tokio::test]
async fn a_panic_in_the_parse_thread_is_an_error_not_a_hang() {
    let mut bytes = Vec::new();
    generated(5000).read_to_end(&mut bytes).expect("read");
    let run = run(
        MemoryStore::default(),
        PanicsAfter(io::Cursor::new(bytes), 80_000),
        8,
    )
    .await;

    assert!(matches!(run.result, Err(ImportError::Interrupted(_))));
    let seen = run.seen.lock().expect("lock");
    assert!(seen.aborted && seen.committed.is_none());
}
