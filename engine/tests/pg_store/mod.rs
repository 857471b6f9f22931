//! PostgreSQL store tests, each on a fresh database (see `support::pg`).

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use engine::model::{
    CampaignId, CampaignName, EmailAddress, RecipientId, RecipientState, StateCode, TenantId,
    TenantName,
};
use engine::store::pg::PgStore;
use engine::store::{
    CampaignCounters, CampaignStatus, ImportSummary, Outcome, RecipientBatch, Store, StoreError,
};

use crate::support::pg::{TestDatabase, test_database};

/// A migrated store on a fresh database, or `None` when the test is skipped.
async fn store(pool_size: u32) -> Option<(TestDatabase, PgStore)> {
    let db = test_database().await?;
    let store = PgStore::connect(&db.url, pool_size, Duration::from_secs(5))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    Some((db, store))
}

fn tenant_name(name: &str) -> TenantName {
    TenantName::parse(name).expect("tenant name")
}

fn campaign_name(name: &str) -> CampaignName {
    CampaignName::parse(name).expect("campaign name")
}

fn columns() -> Vec<String> {
    vec!["first_name".into(), "city".into()]
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0)
        .single()
        .expect("time")
}

/// A tenant with one draft campaign.
async fn tenant_and_campaign(store: &PgStore, name: &str) -> (TenantId, CampaignId) {
    let tenant = store
        .create_tenant(&tenant_name(name))
        .await
        .expect("tenant");
    let campaign = store
        .create_campaign(tenant.id, &campaign_name("spring"))
        .await
        .expect("campaign");
    (tenant.id, campaign.id)
}

/// Writes recipients 1..=rows in batches of 1,000 without committing.
async fn write_rows(writer: &mut dyn engine::store::ImportWriter, rows: i64, tag: &str) {
    let mut batch = RecipientBatch::new(2);
    for id in 1..=rows {
        let (name, city) = (format!("{tag}{id}"), format!("city{id}"));
        batch.push(
            RecipientId(id),
            &format!("r{id}@example.com"),
            [name.as_str(), city.as_str()],
        );
        if batch.len() == 1000 || id == rows {
            writer.write(&batch).await.expect("write");
            batch.clear();
        }
    }
}

async fn import(store: &PgStore, tenant: TenantId, campaign: CampaignId, rows: i64, tag: &str) {
    let mut writer = store
        .begin_import(tenant, campaign, &columns())
        .await
        .expect("begin import");
    write_rows(writer.as_mut(), rows, tag).await;
    let summary = ImportSummary {
        source: "list.csv".into(),
        rows_loaded: rows,
        rows_rejected: 0,
    };
    writer.commit(&summary).await.expect("commit");
}

#[tokio::test]
async fn migrations_apply_once_even_when_two_processes_race() {
    let Some(db) = test_database().await else {
        return;
    };
    let connect = || PgStore::connect(&db.url, 2, Duration::from_secs(5));
    let (a, b) = (connect().await.expect("a"), connect().await.expect("b"));
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let mut applied = [ra.expect("migrate a"), rb.expect("migrate b")].concat();
    applied.sort();
    assert_eq!(
        applied,
        vec![
            "0001_global".to_owned(),
            "0002_api_keys".to_owned(),
            "0003_exchange_accounts".to_owned(),
            "0004_idempotency".to_owned(),
            "0005_suppressions".to_owned(),
            "0006_audit_settings".to_owned(),
            "0007_retention".to_owned(),
            "0008_pgp_keys".to_owned(),
            "0009_webhook_outbox".to_owned(),
            "0010_users_sessions".to_owned(),
        ]
    );

    a.create_tenant(&tenant_name("acme")).await.expect("tenant");
    assert_eq!(a.migrate().await.expect("again"), Vec::<String>::new());
}

#[tokio::test]
async fn the_send_pipeline_migration_upgrades_existing_tenants_and_their_imports() {
    let Some((db, store)) = store(2).await else {
        return;
    };
    let (tenant, campaign) = tenant_and_campaign(&store, "acme").await;
    import(&store, tenant, campaign, 3, "r").await;
    // Back to how a tenant imported before the migration looked.
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let connection = tokio::spawn(connection);
    let downgrade = format!(
        "ALTER TABLE t_{tenant}.campaigns DROP COLUMN definition, DROP COLUMN launched_at;
         ALTER TABLE t_{tenant}.c{campaign}_recipients DROP COLUMN first_attempt_at;
         DELETE FROM t_{tenant}.schema_migrations WHERE version = 2;"
    );
    client.batch_execute(&downgrade).await.expect("downgrade");
    drop(client);
    connection.await.expect("join").expect("connection");

    let applied = store.migrate().await.expect("migrate");

    assert_eq!(applied, [format!("t_{tenant}/tenant_0002_send_pipeline")]);
    assert!(store.migrate().await.expect("again").is_empty());
    let until = at(60);
    let deferred = outcome(1, RecipientState::Deferred { until }, 0);
    store
        .record_outcomes(tenant, campaign, &[deferred])
        .await
        .expect("record");
    let due = store
        .due_recipients(tenant, campaign, RecipientId(0), until, 10)
        .await
        .expect("due");
    assert_eq!(due.row(0).first_attempt(), Some(at(0)));
}

#[tokio::test]
async fn tenants_and_campaigns_are_created_found_and_unique() {
    let Some((_db, store)) = store(2).await else {
        return;
    };
    let acme = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("acme");
    let err = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect_err("must fail");
    assert!(
        matches!(err, StoreError::AlreadyExists { what: "tenant", .. }),
        "{err:?}"
    );
    assert_eq!(store.tenants().await.expect("tenants"), vec![acme.clone()]);
    assert_eq!(
        store.tenant(&acme.name).await.expect("tenant"),
        Some(acme.clone())
    );
    assert_eq!(
        store.tenant(&tenant_name("nope")).await.expect("tenant"),
        None
    );

    let spring = store
        .create_campaign(acme.id, &campaign_name("spring"))
        .await
        .expect("campaign");
    assert_eq!(spring.status, CampaignStatus::Draft);
    assert!(!spring.imported && spring.columns.is_empty());
    let err = store
        .create_campaign(acme.id, &campaign_name("spring"))
        .await
        .expect_err("must fail");
    assert!(
        matches!(
            err,
            StoreError::AlreadyExists {
                what: "campaign",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        store.campaign(acme.id, spring.id).await.expect("by id"),
        Some(spring.clone())
    );
    assert_eq!(
        store
            .campaign_by_name(acme.id, &spring.name)
            .await
            .expect("by name"),
        Some(spring.clone())
    );
    // Cancelled, not Running: launching needs an import (see the conformance suite).
    store
        .set_campaign_status(acme.id, spring.id, CampaignStatus::Cancelled)
        .await
        .expect("status");
    let campaigns = store.campaigns(acme.id).await.expect("campaigns");
    assert_eq!(campaigns.len(), 1);
    assert_eq!(campaigns[0].status, CampaignStatus::Cancelled);

    let err = store.campaigns(TenantId(999)).await.expect_err("must fail");
    assert!(
        matches!(err, StoreError::UnknownTenant(TenantId(999))),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_committed_import_is_visible_with_its_rows_and_counters() {
    let Some((_db, store)) = store(2).await else {
        return;
    };
    let (tenant, campaign) = tenant_and_campaign(&store, "acme").await;
    let err = store
        .recipients(tenant, campaign, RecipientId(0), 10)
        .await
        .expect_err("must fail");
    assert!(matches!(err, StoreError::NotImported(_)), "{err:?}");

    import(&store, tenant, campaign, 2500, "ann").await;

    let info = store
        .campaign(tenant, campaign)
        .await
        .expect("get")
        .expect("exists");
    assert!(info.imported);
    assert_eq!(info.columns, columns());
    let counters = store.counters(tenant, campaign).await.expect("counters");
    assert_eq!(
        counters,
        CampaignCounters {
            pending: 2500,
            ..Default::default()
        }
    );
    let first = store
        .recipients(tenant, campaign, RecipientId(0), 2)
        .await
        .expect("recipients");
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].id, RecipientId(1));
    assert_eq!(first[0].email.as_str(), "r1@example.com");
    assert_eq!(first[0].values, vec!["ann1".to_owned(), "city1".to_owned()]);
    assert_eq!(first[0].state, RecipientState::Pending);
    assert_eq!(
        (first[0].attempts, first[0].last_reply.as_deref()),
        (0, None)
    );
    let email = EmailAddress::parse("r2000@example.com").expect("email");
    let found = store
        .recipient_by_email(tenant, campaign, &email)
        .await
        .expect("by email")
        .expect("found");
    assert_eq!(found.id, RecipientId(2000));
}

#[tokio::test]
async fn an_aborted_import_leaves_nothing() {
    let Some((_db, store)) = store(1).await else {
        return;
    };
    let (tenant, campaign) = tenant_and_campaign(&store, "acme").await;
    let mut writer = store
        .begin_import(tenant, campaign, &columns())
        .await
        .expect("begin");
    write_rows(writer.as_mut(), 3000, "x").await;
    writer.abort().await.expect("abort");

    let info = store
        .campaign(tenant, campaign)
        .await
        .expect("get")
        .expect("exists");
    assert!(!info.imported && info.columns.is_empty());
    let err = store
        .due_recipients(tenant, campaign, RecipientId(0), at(0), 10)
        .await
        .expect_err("must fail");
    assert!(matches!(err, StoreError::NotImported(_)), "{err:?}");
}

#[tokio::test]
async fn a_dropped_writer_leaves_nothing_and_the_pool_stays_usable() {
    // One connection: the next call must not inherit the abandoned COPY.
    let Some((_db, store)) = store(1).await else {
        return;
    };
    let (tenant, campaign) = tenant_and_campaign(&store, "acme").await;
    let mut writer = store
        .begin_import(tenant, campaign, &columns())
        .await
        .expect("begin");
    write_rows(writer.as_mut(), 3000, "x").await;
    drop(writer);

    let info = store
        .campaign(tenant, campaign)
        .await
        .expect("get")
        .expect("exists");
    assert!(!info.imported);
    // The campaign row lock is gone with the transaction, and importing works.
    import(&store, tenant, campaign, 10, "y").await;
    let counters = store.counters(tenant, campaign).await.expect("counters");
    assert_eq!(counters.pending, 10);
}

#[tokio::test]
async fn a_second_import_replaces_the_first_and_launched_campaigns_refuse_imports() {
    let Some((_db, store)) = store(2).await else {
        return;
    };
    let (tenant, campaign) = tenant_and_campaign(&store, "acme").await;
    import(&store, tenant, campaign, 50, "old").await;
    import(&store, tenant, campaign, 20, "new").await;
    let all = store
        .recipients(tenant, campaign, RecipientId(0), 100)
        .await
        .expect("recipients");
    assert_eq!(all.len(), 20);
    assert_eq!(all[0].values[0], "new1");
    assert_eq!(
        store.counters(tenant, campaign).await.expect("c").pending,
        20
    );

    store
        .set_campaign_status(tenant, campaign, CampaignStatus::Running)
        .await
        .expect("launch");
    let err = store.begin_import(tenant, campaign, &columns()).await.err();
    assert!(
        matches!(err, Some(StoreError::WrongStatus { .. })),
        "{err:?}"
    );
    let err = store
        .begin_import(tenant, CampaignId(9999), &columns())
        .await
        .err();
    assert!(
        matches!(err, Some(StoreError::UnknownCampaign { .. })),
        "{err:?}"
    );
}

fn outcome(id: i64, state: RecipientState, seconds: i64) -> Outcome {
    Outcome {
        recipient: RecipientId(id),
        state,
        attempted: state.code() != StateCode::Suppressed,
        detail: Some(format!("reply {id}")),
        at: at(seconds),
    }
}

#[tokio::test]
async fn due_recipients_page_by_id_and_skip_deferrals_not_yet_due() {
    let Some((_db, store)) = store(2).await else {
        return;
    };
    let (tenant, campaign) = tenant_and_campaign(&store, "acme").await;
    import(&store, tenant, campaign, 10, "n").await;
    let later = RecipientState::Deferred { until: at(100) };
    let outcomes = [
        outcome(2, RecipientState::Delivered, 0),
        outcome(3, later, 0),
        outcome(4, RecipientState::Deferred { until: at(10) }, 0),
    ];
    store
        .record_outcomes(tenant, campaign, &outcomes)
        .await
        .expect("record");

    let ids = |batch: &RecipientBatch| batch.rows().map(|r| r.id().0).collect::<Vec<_>>();
    let page = store
        .due_recipients(tenant, campaign, RecipientId(0), at(50), 4)
        .await
        .expect("due");
    assert_eq!(ids(&page), vec![1, 4, 5, 6]);
    assert_eq!(page.columns(), 2);
    assert_eq!(page.row(0).email(), "r1@example.com");
    assert_eq!(
        page.row(1).values().collect::<Vec<_>>(),
        vec!["n4", "city4"]
    );
    let page = store
        .due_recipients(tenant, campaign, RecipientId(6), at(50), 4)
        .await
        .expect("due");
    assert_eq!(ids(&page), vec![7, 8, 9, 10]);
    let page = store
        .due_recipients(tenant, campaign, RecipientId(10), at(50), 4)
        .await
        .expect("due");
    assert!(page.is_empty());
    assert_eq!(page.columns(), 2);
    let page = store
        .due_recipients(tenant, campaign, RecipientId(0), at(100), 3)
        .await
        .expect("due");
    assert_eq!(ids(&page), vec![1, 3, 4]);
}

#[tokio::test]
async fn outcomes_apply_allowed_transitions_move_counters_and_log_events() {
    let Some((_db, store)) = store(2).await else {
        return;
    };
    let (tenant, campaign) = tenant_and_campaign(&store, "acme").await;
    import(&store, tenant, campaign, 5, "n").await;
    let deferred = RecipientState::Deferred { until: at(60) };
    let outcomes = [
        outcome(1, deferred, 1),
        outcome(1, RecipientState::Delivered, 2),
        outcome(2, RecipientState::Bounced, 3),
        outcome(2, RecipientState::Delivered, 4), // final: ignored
        outcome(3, RecipientState::Suppressed, 5),
        outcome(4, RecipientState::Pending, 6), // pending -> pending: ignored
        outcome(99, RecipientState::Delivered, 7), // unknown: ignored
    ];
    let report = store
        .record_outcomes(tenant, campaign, &outcomes)
        .await
        .expect("record");
    assert_eq!((report.applied, report.ignored), (4, 3));
    let counters = store.counters(tenant, campaign).await.expect("counters");
    let expected = CampaignCounters {
        pending: 2,
        delivered: 1,
        bounced: 1,
        suppressed: 1,
        ..Default::default()
    };
    assert_eq!(counters, expected);

    let rows = store
        .recipients(tenant, campaign, RecipientId(0), 10)
        .await
        .expect("recipients");
    assert_eq!(rows[0].state, RecipientState::Delivered);
    assert_eq!(
        (rows[0].attempts, rows[0].last_reply.as_deref()),
        (2, Some("reply 1"))
    );
    assert_eq!(
        (rows[2].state, rows[2].attempts),
        (RecipientState::Suppressed, 0)
    );
    let events = store
        .events(tenant, campaign, RecipientId(1))
        .await
        .expect("events");
    let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.at)).collect();
    assert_eq!(
        kinds,
        vec![(StateCode::Deferred, at(1)), (StateCode::Delivered, at(2))]
    );

    // A replay after a restart changes nothing.
    let report = store
        .record_outcomes(tenant, campaign, &outcomes)
        .await
        .expect("replay");
    assert_eq!((report.applied, report.ignored), (0, 7));
    assert_eq!(store.counters(tenant, campaign).await.expect("c"), expected);
}

#[tokio::test]
async fn a_tenant_cannot_reach_another_tenants_campaign_by_id() {
    let Some((_db, store)) = store(2).await else {
        return;
    };
    let (a, campaign) = tenant_and_campaign(&store, "acme").await;
    import(&store, a, campaign, 3, "n").await;
    let b = store
        .create_tenant(&tenant_name("bolt"))
        .await
        .expect("b")
        .id;
    let b_campaign = store
        .create_campaign(b, &campaign_name("spring"))
        .await
        .expect("same name, other tenant");
    assert_ne!(
        b_campaign.id, campaign,
        "campaign ids are unique across tenants"
    );

    assert_eq!(store.campaign(b, campaign).await.expect("get"), None);
    let unknown = |e: &StoreError| matches!(e, StoreError::UnknownCampaign { .. });
    let err = store
        .recipients(b, campaign, RecipientId(0), 10)
        .await
        .expect_err("must fail");
    assert!(unknown(&err), "{err:?}");
    let err = store.counters(b, campaign).await.expect_err("must fail");
    assert!(unknown(&err), "{err:?}");
    let outcomes = [outcome(1, RecipientState::Delivered, 0)];
    let err = store
        .record_outcomes(b, campaign, &outcomes)
        .await
        .expect_err("must fail");
    assert!(unknown(&err), "{err:?}");
    let err = store
        .drop_campaign_data(b, campaign)
        .await
        .expect_err("must fail");
    assert!(unknown(&err), "{err:?}");
    assert_eq!(store.counters(a, campaign).await.expect("c").pending, 3);
}

#[tokio::test]
async fn dropping_campaign_data_keeps_the_campaign_and_its_counters() {
    let Some((_db, store)) = store(2).await else {
        return;
    };
    let (tenant, campaign) = tenant_and_campaign(&store, "acme").await;
    import(&store, tenant, campaign, 4, "n").await;
    let outcomes = [outcome(1, RecipientState::Delivered, 0)];
    store
        .record_outcomes(tenant, campaign, &outcomes)
        .await
        .expect("record");

    store
        .drop_campaign_data(tenant, campaign)
        .await
        .expect("drop");
    store
        .drop_campaign_data(tenant, campaign)
        .await
        .expect("drop twice");

    let info = store
        .campaign(tenant, campaign)
        .await
        .expect("get")
        .expect("kept");
    assert!(!info.imported, "the tables are gone");
    assert_eq!(info.columns, columns());
    let counters = store.counters(tenant, campaign).await.expect("counters");
    assert_eq!((counters.pending, counters.delivered), (3, 1));
    let err = store
        .recipients(tenant, campaign, RecipientId(0), 10)
        .await
        .expect_err("must fail");
    assert!(matches!(err, StoreError::NotImported(_)), "{err:?}");
}

/// The shared conformance suite, run against PostgreSQL.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_refuses_updates_deletes_and_truncation() {
    let Some((db, store)) = store(2).await else {
        return;
    };
    store
        .append_audit(&engine::store::AuditRecord::new(
            None,
            "cli",
            "tenant.create",
            at(0),
        ))
        .await
        .expect("append");
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    for statement in [
        "UPDATE broadside.audit_log SET actor = 'someone else'",
        "DELETE FROM broadside.audit_log",
        "TRUNCATE broadside.audit_log",
    ] {
        let err = client.batch_execute(statement).await.expect_err(statement);
        assert!(
            format!("{err:?}").contains("append-only"),
            "{statement}: {err:?}"
        );
    }
    let row = client
        .query_one(
            "SELECT count(*) FROM broadside.audit_log WHERE actor = 'cli'",
            &[],
        )
        .await
        .expect("count");
    assert_eq!(row.get::<_, i64>(0), 1);
}

mod conformance {
    use std::time::Duration;

    use engine::store::Store;
    use engine::store::pg::PgStore;

    use crate::support::pg::{TestDatabase, test_database};

    /// A migrated store on its own database; the store is declared first so its
    /// pool closes before the database is dropped.
    struct Harness {
        store: PgStore,
        _db: TestDatabase,
    }

    impl AsRef<dyn Store> for Harness {
        fn as_ref(&self) -> &(dyn Store + 'static) {
            &self.store
        }
    }

    async fn harness() -> Option<Harness> {
        let db = test_database().await?;
        let store = PgStore::connect(&db.url, 4, Duration::from_secs(5))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        Some(Harness { store, _db: db })
    }

    crate::conformance::conformance_tests!(harness());
}
