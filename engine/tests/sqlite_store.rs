//! The SQLite store: the conformance suite, plus what only a file-based store has to
//! show (persistence across reopening, clean-up after a crash, no trace of dropped data
//! in the files, imports that do not block the tenant's other writes).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use engine::model::{CampaignName, RecipientId, RecipientState, StateCode, TenantId, TenantName};
use engine::store::sqlite::SqliteStore;
use engine::store::{ImportSummary, Outcome, RecipientBatch, Store, StoreError};
use tempfile::TempDir;

use crate::conformance::conformance_tests;

/// A migrated store in its own temporary directory, removed on drop.
struct Harness {
    store: SqliteStore,
    dir: TempDir,
}

impl AsRef<dyn Store> for Harness {
    fn as_ref(&self) -> &(dyn Store + 'static) {
        &self.store
    }
}

async fn harness() -> Option<Harness> {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    store.migrate().await.unwrap();
    Some(Harness { store, dir })
}

fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open(dir, Duration::from_secs(5)).unwrap()
}

conformance_tests!(harness());

fn batch(from: i64, to: i64, marker: &str) -> RecipientBatch {
    let mut batch = RecipientBatch::new(1);
    for i in from..=to {
        let email = format!("{marker}{i}@example.com");
        batch.push(RecipientId(i), &email, [format!("name{i}").as_str()]);
    }
    batch
}

fn summary(rows: i64) -> ImportSummary {
    ImportSummary {
        source: "list.csv".into(),
        rows_loaded: rows,
        rows_rejected: 0,
    }
}

fn delivered(id: i64) -> Outcome {
    Outcome {
        recipient: RecipientId(id),
        state: RecipientState::Delivered,
        attempted: true,
        detail: Some("250 ok".into()),
        at: Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap(),
    }
}

/// A tenant with one campaign holding `rows` imported recipients named `<marker><i>@…`.
async fn seeded(
    store: &SqliteStore,
    rows: i64,
    marker: &str,
) -> (TenantId, engine::model::CampaignId) {
    let tenant = store
        .create_tenant(&TenantName::parse("acme").unwrap())
        .await
        .unwrap();
    let campaign = store
        .create_campaign(tenant.id, &CampaignName::parse("spring").unwrap())
        .await
        .unwrap();
    let mut writer = store
        .begin_import(tenant.id, campaign.id, &["name".into()])
        .await
        .unwrap();
    writer.write(&batch(1, rows, marker)).await.unwrap();
    writer.commit(&summary(rows)).await.unwrap();
    (tenant.id, campaign.id)
}

/// Tables in a tenant file, read behind the store's back.
fn tables(dir: &Path, tenant: TenantId) -> Vec<String> {
    let conn = rusqlite::Connection::open(dir.join(format!("tenants/{}.db", tenant.0))).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    stmt.query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn everything_survives_reopening_the_store() {
    let dir = TempDir::new().unwrap();
    let (tenant, campaign) = {
        let store = open(dir.path());
        store.migrate().await.unwrap();
        let (tenant, campaign) = seeded(&store, 5, "r").await;
        store
            .record_outcomes(tenant, campaign, &[delivered(2)])
            .await
            .unwrap();
        (tenant, campaign)
    };

    let store = open(dir.path());
    assert!(store.migrate().await.unwrap().is_empty());
    let tenants = store.tenants().await.unwrap();
    assert_eq!(tenants.len(), 1);
    let found = store.campaign(tenant, campaign).await.unwrap().unwrap();
    assert!(found.imported);
    assert_eq!(found.columns, ["name"]);
    let rows = store
        .recipients(tenant, campaign, RecipientId(0), 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[1].state, RecipientState::Delivered);
    assert_eq!(store.counters(tenant, campaign).await.unwrap().delivered, 1);
}

#[tokio::test]
async fn migrate_reports_what_it_applied_and_tenant_files_are_migrated_on_creation() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    assert_eq!(
        store.migrate().await.unwrap(),
        [
            "global/0001_init",
            "global/0002_api_keys",
            "global/0003_exchange_accounts",
            "global/0004_idempotency",
            "global/0005_suppressions",
            "global/0006_audit_settings",
            "global/0007_retention",
            "global/0008_pgp_keys",
            "global/0009_webhook_outbox",
            "global/0010_users_sessions",
        ]
    );
    let tenant = store
        .create_tenant(&TenantName::parse("acme").unwrap())
        .await
        .unwrap();
    assert!(
        dir.path()
            .join(format!("tenants/{}.db", tenant.id))
            .exists()
    );
    assert!(store.migrate().await.unwrap().is_empty());
    assert!(tables(dir.path(), tenant.id).contains(&"campaigns".to_owned()));
}

#[tokio::test]
async fn the_send_pipeline_migration_upgrades_existing_tenants_and_their_imports() {
    let dir = TempDir::new().unwrap();
    let (tenant, campaign) = {
        let store = open(dir.path());
        store.migrate().await.unwrap();
        seeded(&store, 3, "r").await
    };
    // Back to how a tenant imported before the migration looked.
    let conn = rusqlite::Connection::open(dir.path().join(format!("tenants/{tenant}.db"))).unwrap();
    conn.execute_batch(&format!(
        "ALTER TABLE campaigns DROP COLUMN definition;
         ALTER TABLE campaigns DROP COLUMN launched_at;
         ALTER TABLE c{campaign}_recipients DROP COLUMN first_attempt_at;
         DELETE FROM schema_migrations WHERE name = '0002_send_pipeline';"
    ))
    .unwrap();
    drop(conn);

    let store = open(dir.path());
    let applied = store.migrate().await.unwrap();

    assert_eq!(applied, [format!("tenant/{tenant}/0002_send_pipeline")]);
    assert!(store.migrate().await.unwrap().is_empty());
    let at = delivered(1).at;
    let deferred = Outcome {
        state: RecipientState::Deferred { until: at },
        ..delivered(1)
    };
    store
        .record_outcomes(tenant, campaign, &[deferred])
        .await
        .unwrap();
    let due = store
        .due_recipients(tenant, campaign, RecipientId(0), at, 10)
        .await
        .unwrap();
    assert_eq!(due.row(0).first_attempt(), Some(at));
}

#[tokio::test]
async fn an_unknown_tenant_is_refused_and_gets_no_file() {
    let Harness { store, dir } = harness().await.unwrap();
    let result = store.campaigns(TenantId(42)).await;
    assert!(
        matches!(result, Err(StoreError::UnknownTenant(TenantId(42)))),
        "{result:?}"
    );
    assert!(!dir.path().join("tenants/42.db").exists());
}

#[tokio::test]
async fn an_open_import_does_not_hold_back_the_tenants_other_writes() {
    let Harness { store, dir } = harness().await.unwrap();
    let (tenant, running) = seeded(&store, 3, "r").await;
    let draft = store
        .create_campaign(tenant, &CampaignName::parse("next").unwrap())
        .await
        .unwrap();
    let mut writer = store
        .begin_import(tenant, draft.id, &["name".into()])
        .await
        .unwrap();
    writer.write(&batch(1, 100, "n")).await.unwrap();

    // While the import is open, another campaign's outcomes commit and stay committed
    // when the import is thrown away.
    let report = store
        .record_outcomes(tenant, running, &[delivered(1)])
        .await
        .unwrap();
    assert_eq!(report.applied, 1);
    writer.abort().await.unwrap();

    drop(store);
    let store = open(dir.path());
    assert_eq!(store.counters(tenant, running).await.unwrap().delivered, 1);
    assert!(
        !store
            .campaign(tenant, draft.id)
            .await
            .unwrap()
            .unwrap()
            .imported
    );
}

#[tokio::test]
async fn a_crash_mid_import_leaves_nothing_once_the_store_is_reopened() {
    let dir = TempDir::new().unwrap();
    let (tenant, campaign) = {
        let store = open(dir.path());
        store.migrate().await.unwrap();
        let tenant = store
            .create_tenant(&TenantName::parse("acme").unwrap())
            .await
            .unwrap();
        let campaign = store
            .create_campaign(tenant.id, &CampaignName::parse("spring").unwrap())
            .await
            .unwrap();
        let mut writer = store
            .begin_import(tenant.id, campaign.id, &["name".into()])
            .await
            .unwrap();
        writer.write(&batch(1, 50, "r")).await.unwrap();
        // No commit, no abort, no Drop: what a killed process leaves behind.
        std::mem::forget(writer);
        (tenant.id, campaign.id)
    };
    assert!(
        tables(dir.path(), tenant)
            .iter()
            .any(|t| t.contains("_import"))
    );

    let store = open(dir.path());
    store.migrate().await.unwrap();
    let found = store.campaign(tenant, campaign).await.unwrap().unwrap();
    assert!(!found.imported);
    assert_eq!(
        tables(dir.path(), tenant),
        [
            "campaigns",
            "export_watermarks",
            "imports",
            "schema_migrations"
        ]
    );
}

#[tokio::test]
async fn a_dropped_writer_leaves_no_staging_table() {
    let Harness { store, dir } = harness().await.unwrap();
    let tenant = store
        .create_tenant(&TenantName::parse("acme").unwrap())
        .await
        .unwrap()
        .id;
    let campaign = store
        .create_campaign(tenant, &CampaignName::parse("spring").unwrap())
        .await
        .unwrap()
        .id;
    let mut writer = store
        .begin_import(tenant, campaign, &["name".into()])
        .await
        .unwrap();
    writer.write(&batch(1, 10, "r")).await.unwrap();
    drop(writer);
    // Any later call runs after the queued clean-up, on the same worker.
    store.campaigns(tenant).await.unwrap();
    assert_eq!(
        tables(dir.path(), tenant),
        [
            "campaigns",
            "export_watermarks",
            "imports",
            "schema_migrations"
        ]
    );
}

#[tokio::test]
async fn dropped_campaign_data_leaves_no_address_in_the_files() {
    let Harness { store, dir } = harness().await.unwrap();
    let marker = "pii-marker-7f3a";
    let (tenant, campaign) = seeded(&store, 2000, marker).await;
    store
        .record_outcomes(tenant, campaign, &[delivered(1)])
        .await
        .unwrap();
    let file = dir.path().join(format!("tenants/{}.db", tenant.0));
    let holds_marker = |path: &Path| {
        std::fs::read(path)
            .map(|bytes| bytes.windows(marker.len()).any(|w| w == marker.as_bytes()))
            .unwrap_or(false)
    };
    let wal = file.with_extension("db-wal");
    assert!(
        holds_marker(&file) || holds_marker(&wal),
        "the test must see the data first"
    );

    store.drop_campaign_data(tenant, campaign).await.unwrap();

    assert!(!holds_marker(&file), "addresses left in the database file");
    assert!(!holds_marker(&wal), "addresses left in the WAL");
    assert_eq!(
        store.counters(tenant, campaign).await.unwrap().total(),
        2000
    );
}

#[tokio::test]
async fn one_batch_may_move_a_recipient_twice() {
    let Harness { store, dir: _dir } = harness().await.unwrap();
    let (tenant, campaign) = seeded(&store, 2, "r").await;
    let deferred = Outcome {
        state: RecipientState::Deferred {
            until: Utc.with_ymd_and_hms(2026, 11, 1, 13, 0, 0).unwrap(),
        },
        ..delivered(1)
    };
    let report = store
        .record_outcomes(tenant, campaign, &[deferred, delivered(1)])
        .await
        .unwrap();
    assert_eq!((report.applied, report.ignored), (2, 0));
    let c = store.counters(tenant, campaign).await.unwrap();
    assert_eq!((c.pending, c.deferred, c.delivered), (1, 0, 1));
    let kinds: Vec<_> = store
        .events(tenant, campaign, RecipientId(1))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [StateCode::Deferred, StateCode::Delivered]);
}

#[tokio::test]
async fn an_import_cannot_commit_into_a_campaign_launched_meanwhile() {
    // A first import, so that the campaign can be launched while the second loads.
    let Harness { store, dir } = harness().await.unwrap();
    let (tenant, campaign) = seeded(&store, 5, "old").await;
    let mut writer = store
        .begin_import(tenant, campaign, &["name".into()])
        .await
        .unwrap();
    writer.write(&batch(1, 10, "new")).await.unwrap();
    store
        .set_campaign_status(tenant, campaign, engine::store::CampaignStatus::Running)
        .await
        .unwrap();
    let result = writer.commit(&summary(10)).await;
    assert!(
        matches!(result, Err(StoreError::WrongStatus { .. })),
        "{result:?}"
    );
    let rows = store
        .recipients(tenant, campaign, RecipientId(0), 100)
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows[0].email.as_str().starts_with("old"));
    let events = format!("c{campaign}_events");
    let recipients = format!("c{campaign}_recipients");
    assert_eq!(
        tables(dir.path(), tenant),
        [
            events.as_str(),
            recipients.as_str(),
            "campaigns",
            "export_watermarks",
            "imports",
            "schema_migrations"
        ]
    );
}

#[tokio::test]
async fn a_failed_batch_is_reported_by_the_next_call_and_nothing_is_committed() {
    let Harness { store, dir } = harness().await.unwrap();
    let tenant = store
        .create_tenant(&TenantName::parse("acme").unwrap())
        .await
        .unwrap()
        .id;
    let campaign = store
        .create_campaign(tenant, &CampaignName::parse("spring").unwrap())
        .await
        .unwrap()
        .id;
    let mut writer = store
        .begin_import(tenant, campaign, &["name".into()])
        .await
        .unwrap();
    writer.write(&batch(1, 10, "r")).await.unwrap();
    let duplicate = writer.write(&batch(5, 6, "r")).await;
    let result = match duplicate {
        Ok(()) => writer.commit(&summary(12)).await,
        Err(err) => Err(err),
    };
    let code = match result {
        Err(StoreError::Database { code, .. }) => code,
        other => panic!("expected a database error, got {other:?}"),
    };
    assert_eq!(code.as_deref(), Some("SQLITE_CONSTRAINT_PRIMARYKEY"));
    assert!(
        !store
            .campaign(tenant, campaign)
            .await
            .unwrap()
            .unwrap()
            .imported
    );
    store.campaigns(tenant).await.unwrap();
    assert_eq!(
        tables(dir.path(), tenant),
        [
            "campaigns",
            "export_watermarks",
            "imports",
            "schema_migrations"
        ]
    );
}

#[tokio::test]
async fn the_audit_log_refuses_updates_and_deletes_behind_the_stores_back() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    store.migrate().await.unwrap();
    let at = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    store
        .append_audit(&engine::store::AuditRecord::new(
            None,
            "cli",
            "tenant.create",
            at,
        ))
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("broadside.db")).unwrap();
    for statement in [
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
    ] {
        let err = conn.execute(statement, []).unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
    let count: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit_log WHERE actor = 'cli'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(count, 1);
}
