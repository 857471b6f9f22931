//! `import_csv` into the real stores: what a customer's file does to a campaign, seen
//! through the store (rows, counters, the campaign, the recorded import), the errors
//! report and the progress callbacks. Every check here runs on SQLite and on
//! PostgreSQL; `failures` holds the ones that need a particular backend to break.

mod failures;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use engine::import::{ImportError, ImportOptions, ImportOutcome, ImportProgress, import_csv};
use engine::model::{CampaignId, CampaignName, RecipientId, TenantId, TenantName};
use engine::store::pg::PgStore;
use engine::store::sqlite::SqliteStore;
use engine::store::{ImportSummary, Store, StoreError};
use tempfile::TempDir;

use crate::support::pg::{TestDatabase, test_database};

/// A migrated real store, cleaned up on drop (temporary directory, test database).
enum Backend {
    Sqlite { store: SqliteStore, dir: TempDir },
    Postgres { store: PgStore, db: TestDatabase },
}

impl Backend {
    async fn sqlite() -> Option<Backend> {
        let dir = TempDir::new().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Duration::from_secs(5)).expect("open");
        store.migrate().await.expect("migrate");
        Some(Backend::Sqlite { store, dir })
    }

    /// `None` when there is no server and `BROADSIDE_REQUIRE_PG` is not `1`.
    async fn postgres() -> Option<Backend> {
        let db = test_database().await?;
        let store = PgStore::connect(&db.url, 2, Duration::from_secs(5))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        Some(Backend::Postgres { store, db })
    }

    fn store(&self) -> &dyn Store {
        match self {
            Backend::Sqlite { store, .. } => store,
            Backend::Postgres { store, .. } => store,
        }
    }

    /// What `commit` recorded about each import of the campaign, read behind the
    /// store's back: the `Store` trait has no call for it.
    async fn imports(&self, tenant: TenantId, campaign: CampaignId) -> Vec<ImportSummary> {
        let summary = |source, rows_loaded, rows_rejected| ImportSummary {
            source,
            rows_loaded,
            rows_rejected,
        };
        match self {
            Backend::Sqlite { dir, .. } => {
                let file = dir.path().join(format!("tenants/{}.db", tenant.0));
                let conn = rusqlite::Connection::open(file).expect("open the tenant file");
                let mut stmt = conn
                    .prepare(
                        "SELECT source, rows_loaded, rows_rejected FROM imports
                         WHERE campaign_id = ?1 ORDER BY id",
                    )
                    .expect("prepare");
                stmt.query_map([campaign.0], |r| {
                    Ok(summary(r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows")
            }
            Backend::Postgres { db, .. } => {
                let query = format!(
                    "SELECT source, rows_loaded, rows_rejected FROM t_{}.imports
                     WHERE campaign_id = $1 ORDER BY id",
                    tenant.0
                );
                let rows = client(&db.url)
                    .await
                    .query(&query, &[&campaign.0])
                    .await
                    .expect("query");
                rows.iter()
                    .map(|r| summary(r.get(0), r.get(1), r.get(2)))
                    .collect()
            }
        }
    }
}

/// A plain connection to the test database, beside the store's pool.
async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// A tenant with one draft campaign.
async fn draft_campaign(store: &dyn Store) -> (TenantId, CampaignId) {
    let tenant = store
        .create_tenant(&TenantName::parse("acme").expect("tenant name"))
        .await
        .expect("tenant");
    let campaign = store
        .create_campaign(tenant.id, &CampaignName::parse("spring").expect("name"))
        .await
        .expect("campaign");
    (tenant.id, campaign.id)
}

/// A file of `rows` valid rows, `email,name`.
fn generated(rows: usize) -> Vec<u8> {
    let mut bytes = b"email,name\n".to_vec();
    for i in 0..rows {
        bytes.extend_from_slice(format!("user{i}@example.com,Name {i}\n").as_bytes());
    }
    bytes
}

/// One import and everything it left outside the store.
struct Run {
    result: Result<ImportOutcome, ImportError>,
    progress: Vec<ImportProgress>,
    report: PathBuf,
    /// Holds the report until the test is done with it.
    _dir: TempDir,
}

async fn run(
    store: &dyn Store,
    (tenant, campaign): (TenantId, CampaignId),
    source: impl Read + Send + 'static,
    batch_rows: usize,
) -> Run {
    let dir = TempDir::new().expect("tempdir");
    let report = dir.path().join("list.errors.csv");
    let options = ImportOptions {
        batch_rows,
        ..ImportOptions::default()
    };
    let progress = Mutex::new(Vec::new());
    let on_progress = |p: ImportProgress| progress.lock().expect("lock").push(p);
    let result = import_csv(
        store,
        tenant,
        campaign,
        source,
        "list.csv",
        &report,
        &options,
        &on_progress,
    )
    .await;
    Run {
        result,
        progress: progress.into_inner().expect("lock"),
        report,
        _dir: dir,
    }
}

fn read_report(path: &Path) -> String {
    std::fs::read_to_string(path).expect("the report")
}

/// The campaign is as it was before any import: no rows, no columns, no counts and
/// no recorded import.
async fn assert_nothing_visible(backend: &Backend, (tenant, campaign): (TenantId, CampaignId)) {
    let store = backend.store();
    let found = store
        .campaign(tenant, campaign)
        .await
        .expect("lookup")
        .expect("exists");
    assert!(!found.imported, "the campaign is marked imported");
    assert!(found.columns.is_empty(), "columns {:?}", found.columns);
    let counters = store.counters(tenant, campaign).await.expect("counters");
    assert_eq!(counters.total(), 0, "{counters:?}");
    let rows = store.recipients(tenant, campaign, RecipientId(0), 10).await;
    assert!(matches!(rows, Err(StoreError::NotImported(_))), "{rows:?}");
    assert_eq!(backend.imports(tenant, campaign).await, []);
}

/// Generates one `#[tokio::test]` per check for a backend, in a module named after it.
macro_rules! pipeline_tests {
    ($backend:ident) => {
        pipeline_tests!(@each $backend;
            a_clean_file_is_loaded_in_batches_with_dense_ids_and_committed,
            a_few_bad_rows_are_reported_and_the_rest_committed,
            a_file_over_the_invalid_share_is_rejected_and_nothing_committed,
            a_header_error_loads_nothing_and_is_reported_with_the_file_name,
            an_encoding_error_after_many_batches_leaves_nothing_of_what_was_written,
        );
    };
    (@each $backend:ident; $($name:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(backend) = super::Backend::$backend().await else { return };
                    super::$name(&backend).await;
                }
            )*
        }
    };
}

pipeline_tests!(sqlite);
pipeline_tests!(postgres);

async fn a_clean_file_is_loaded_in_batches_with_dense_ids_and_committed(backend: &Backend) {
    let store = backend.store();
    let (tenant, campaign) = draft_campaign(store).await;

    let run = run(store, (tenant, campaign), io::Cursor::new(generated(10)), 4).await;

    let outcome = run.result.expect("imported");
    assert!(outcome.accepted);
    assert_eq!(
        (outcome.loaded, outcome.rejected, outcome.total_rows),
        (10, 0, 10)
    );
    assert_eq!(outcome.columns, ["name"]);
    assert_eq!(outcome.report, None);
    assert!(!run.report.exists());
    let rows = store
        .recipients(tenant, campaign, RecipientId(0), 100)
        .await
        .expect("rows");
    let ids: Vec<i64> = rows.iter().map(|r| r.id.0).collect();
    assert_eq!(ids, (1..=10).collect::<Vec<_>>());
    assert_eq!(rows[9].email.as_str(), "user9@example.com");
    assert_eq!(rows[9].values, ["Name 9"]);
    let found = store
        .campaign(tenant, campaign)
        .await
        .expect("lookup")
        .expect("exists");
    assert!(found.imported);
    assert_eq!(found.columns, ["name"]);
    let counters = store.counters(tenant, campaign).await.expect("counters");
    assert_eq!((counters.pending, counters.total()), (10, 10));
    assert_eq!(
        backend.imports(tenant, campaign).await,
        [ImportSummary {
            source: "list.csv".into(),
            rows_loaded: 10,
            rows_rejected: 0,
        }]
    );
    // Progress is reported once per batch the store has taken: three batches of 4.
    let rows_read: Vec<u64> = run.progress.iter().map(|p| p.rows_read).collect();
    assert_eq!(rows_read, [4, 8, 10]);
    assert!(
        run.progress
            .windows(2)
            .all(|w| w[0].bytes_read < w[1].bytes_read)
    );
}

async fn a_few_bad_rows_are_reported_and_the_rest_committed(backend: &Backend) {
    let store = backend.store();
    let (tenant, campaign) = draft_campaign(store).await;
    let mut text = String::from("email,name\n");
    for i in 0..19 {
        text.push_str(&format!("u{i}@example.com,N{i}\n"));
    }
    text.push_str("broken,X\n");

    let run = run(store, (tenant, campaign), io::Cursor::new(text), 8).await;

    let outcome = run.result.expect("imported");
    assert!(outcome.accepted);
    assert_eq!((outcome.loaded, outcome.rejected), (19, 1));
    assert_eq!(outcome.report.as_deref(), Some(run.report.as_path()));
    assert_eq!(
        read_report(&run.report),
        "line,column,reason,email\n21,email,the address has no '@',broken\n"
    );
    let rows = store
        .recipients(tenant, campaign, RecipientId(0), 100)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 19);
    assert_eq!(rows[18].email.as_str(), "u18@example.com");
    let counters = store.counters(tenant, campaign).await.expect("counters");
    assert_eq!(counters.pending, 19);
    assert_eq!(
        backend.imports(tenant, campaign).await,
        [ImportSummary {
            source: "list.csv".into(),
            rows_loaded: 19,
            rows_rejected: 1,
        }]
    );
}

async fn a_file_over_the_invalid_share_is_rejected_and_nothing_committed(backend: &Backend) {
    let store = backend.store();
    let campaign = draft_campaign(store).await;
    let text = "email,name\na@example.com,A\nb@example.com,B\nnope,C\nb@example.com,D\n";

    let run = run(store, campaign, io::Cursor::new(text), 1).await;

    let outcome = run.result.expect("read to the end");
    assert!(!outcome.accepted);
    assert_eq!(
        (outcome.loaded, outcome.rejected, outcome.total_rows),
        (0, 2, 4)
    );
    assert_nothing_visible(backend, campaign).await;
    assert_eq!(
        read_report(&run.report),
        "line,column,reason,email\n\
         4,email,the address has no '@',nope\n\
         5,email,duplicate of line 3,b@example.com\n\
         ,,the file is rejected: 2 of 4 data rows are invalid; at most 10% may be,\n"
    );
}

async fn a_header_error_loads_nothing_and_is_reported_with_the_file_name(backend: &Backend) {
    let store = backend.store();
    let campaign = draft_campaign(store).await;

    let run = run(store, campaign, io::Cursor::new("name\nAnn\n"), 4).await;

    let error = run.result.expect_err("refused");
    assert_eq!(
        error.to_string(),
        "list.csv: line 1: no column is named \"email\"; the columns found are: \"name\""
    );
    assert_nothing_visible(backend, campaign).await;
    assert_eq!(
        read_report(&run.report),
        "line,column,reason,email\n\
         1,,\"no column is named \"\"email\"\"; the columns found are: \"\"name\"\"\",\n"
    );
}

async fn an_encoding_error_after_many_batches_leaves_nothing_of_what_was_written(
    backend: &Backend,
) {
    let store = backend.store();
    let campaign = draft_campaign(store).await;
    let mut bytes = generated(1000);
    bytes.extend_from_slice(b"last@example.com,Jos\xE9\n");

    let run = run(store, campaign, io::Cursor::new(bytes), 64).await;

    let error = run.result.expect_err("refused");
    assert_eq!(
        error.to_string(),
        "list.csv: line 1002, column 2: not valid UTF-8 (byte 0xE9); the file looks like \
         Latin-1 or Windows-1252 — save it as UTF-8"
    );
    // Progress follows each batch the store took, so batches were written before
    // the error; none of them may show.
    assert!(run.progress.len() > 1, "{:?}", run.progress);
    assert_nothing_visible(backend, campaign).await;
}
