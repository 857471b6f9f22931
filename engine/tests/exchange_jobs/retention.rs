//! Retention with an injected manual clock: exactly the files past their limit
//! go (those just inside stay), tenants' own limits win, every deletion is
//! audited, and after a campaign's lifetime none of its recipients' addresses
//! is left in any table or exchange folder.

use std::path::Path;
use std::time::SystemTime;

use chrono::{DateTime, Duration, Utc};
use engine::clock::{Clock, ManualClock};
use engine::config::RetentionConfig;
use engine::exchange::{
    Folder, ImportTarget, OpenWrites, RetentionPolicy, TenantFolders, export_tenant, import_named,
    run_retention,
};
use engine::import::ImportOptions;
use engine::model::{CampaignName, RecipientId, RecipientState};
use engine::store::{
    AuditQuery, CampaignStatus, IdempotencyRecord, Store, SuppressionReason, Tenant, TrackingKind,
};

use super::{Fixture, all_files, hit, outcome};

/// Writes `folder/name` last modified `age` before `now`.
fn put_aged(
    folders: &TenantFolders,
    folder: Folder,
    name: &str,
    now: DateTime<Utc>,
    age: Duration,
) {
    let path = folders.folder(folder).join(name);
    std::fs::write(&path, "email\nx@y.example\n").unwrap();
    set_modified(&path, now - age);
}

fn set_modified(path: &Path, at: DateTime<Utc>) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_modified(SystemTime::from(at)).unwrap();
}

fn names(folders: &TenantFolders, folder: Folder) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folders.folder(folder))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

async fn audited(store: &dyn Store, tenant: &Tenant, action: &str) -> Vec<String> {
    let query = AuditQuery {
        tenant: Some(tenant.id),
        before: None,
        limit: 1000,
    };
    let mut targets: Vec<String> = store
        .audit_log(query)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.record.action == action)
        .inspect(|e| assert_eq!(e.record.actor, "system:retention"))
        .filter_map(|e| e.record.target)
        .collect();
    targets.sort();
    targets
}

async fn policy_of(store: &dyn Store, tenant: &Tenant) -> RetentionPolicy {
    let settings = store.tenant_settings(tenant.id).await.unwrap();
    RetentionPolicy::new(&RetentionConfig::default(), &settings.retention)
}

#[tokio::test]
async fn retention_deletes_exactly_the_files_past_their_limit_and_audits_each() {
    let fx = Fixture::sqlite().await.unwrap();
    let tenant = fx.tenant("acme").await;
    let folders = fx.folders(&tenant);
    let clock = ManualClock::new(Utc::now());
    let policy = policy_of(fx.store.as_ref(), &tenant).await;
    let minute = Duration::minutes(1);
    for folder in Folder::ALL {
        let limit = policy.for_folder(folder);
        put_aged(&folders, folder, "due.csv", clock.now(), limit + minute);
        put_aged(&folders, folder, "kept.csv", clock.now(), limit - minute);
    }
    let work = folders.root().join(".work");
    let stale = work.join("crashed.errors.csv");
    std::fs::write(&stale, "line,column,reason,email\n").unwrap();
    set_modified(&stale, clock.now() - policy.incoming - minute);
    std::fs::write(work.join("fresh.errors.csv"), "").unwrap();
    let writes = OpenWrites::default();
    put_aged(
        &folders,
        Folder::Incoming,
        "uploading.csv",
        clock.now(),
        Duration::days(30),
    );
    let _open = writes.begin(&folders.folder(Folder::Incoming).join("uploading.csv"));

    let store = fx.store.as_ref();
    let first = run_retention(
        store,
        &tenant,
        &folders,
        &policy,
        &writes,
        None,
        clock.now(),
    )
    .await;
    let first = first.unwrap();

    let due = [
        ".work/crashed.errors.csv",
        "exports/due.csv",
        "finished/due.csv",
        "incoming/due.csv",
        "invalids/due.csv",
    ];
    let mut deleted = first.files.clone();
    deleted.sort();
    assert_eq!(deleted, due);
    assert_eq!(
        names(&folders, Folder::Incoming),
        ["kept.csv", "uploading.csv"]
    );
    for folder in [Folder::Finished, Folder::Invalids, Folder::Exports] {
        assert_eq!(names(&folders, folder), ["kept.csv"], "{folder:?}");
    }
    assert_eq!(audited(store, &tenant, "file.delete").await, due);
    assert!(work.join("fresh.errors.csv").exists());

    clock.advance(Duration::minutes(2));
    let second = run_retention(
        store,
        &tenant,
        &folders,
        &policy,
        &writes,
        None,
        clock.now(),
    )
    .await;

    assert_eq!(
        second.unwrap().files.len(),
        4,
        "the rest is due two minutes later"
    );
    assert_eq!(
        names(&folders, Folder::Incoming),
        ["uploading.csv"],
        "still open"
    );
    assert_eq!(audited(store, &tenant, "file.delete").await.len(), 9);
}

#[tokio::test]
async fn a_tenants_own_retention_overrides_the_installation_default() {
    let fx = Fixture::sqlite().await.unwrap();
    let acme = fx.tenant("acme").await;
    let beta = fx.tenant("beta").await;
    let store = fx.store.as_ref();
    let settings = store.tenant_settings(beta.id).await.unwrap();
    let settings = settings.with_value("retention.finished", "3d").unwrap();
    store.set_tenant_settings(beta.id, &settings).await.unwrap();
    let clock = ManualClock::new(Utc::now());
    let writes = OpenWrites::default();
    for tenant in [&acme, &beta] {
        put_aged(
            &fx.folders(tenant),
            Folder::Finished,
            "list.csv",
            clock.now(),
            Duration::days(2),
        );
    }

    for tenant in [&acme, &beta] {
        let (folders, policy) = (fx.folders(tenant), policy_of(store, tenant).await);
        run_retention(store, tenant, &folders, &policy, &writes, None, clock.now())
            .await
            .unwrap();
    }

    assert!(
        names(&fx.folders(&acme), Folder::Finished).is_empty(),
        "default: 1 day"
    );
    assert_eq!(names(&fx.folders(&beta), Folder::Finished), ["list.csv"]);
    assert!(audited(store, &beta, "file.delete").await.is_empty());
}

const PEOPLE: [&str; 5] = [
    "ann.lee@north.example",
    "bo.chan@south.example",
    "cy.diaz@east.example",
    "di.egan@west.example",
    "ed.fox@hard.example",
];

/// Sets `keys` of the tenant's settings to `value`.
async fn set_all(store: &dyn Store, tenant: &Tenant, keys: &[&str], value: &str) {
    let mut settings = store.tenant_settings(tenant.id).await.unwrap();
    for key in keys {
        settings = settings.with_value(key, value).unwrap();
    }
    store
        .set_tenant_settings(tenant.id, &settings)
        .await
        .unwrap();
}

async fn import(
    store: &dyn Store,
    tenant: &Tenant,
    folders: &TenantFolders,
    file: &str,
    text: &str,
    campaign: &str,
) {
    std::fs::write(folders.folder(Folder::Incoming).join(file), text).unwrap();
    let options = ImportOptions {
        max_invalid_share: 0.5,
        ..ImportOptions::default()
    };
    let target = ImportTarget::Name(CampaignName::parse(campaign).unwrap());
    import_named(store, tenant, folders, file, target, &options, None)
        .await
        .unwrap();
}

async fn after_a_campaigns_lifetime_no_address_remains(fx: Fixture) {
    let tenant = fx.tenant("acme").await;
    let beta = fx.tenant("beta").await;
    let store = fx.store.as_ref();
    // Exchange files older than the lifetime would go by folder retention
    // anyway; here only the lifetime rule can remove them.
    let folder_keys = [
        "retention.incoming",
        "retention.finished",
        "retention.exports",
        "retention.invalids",
    ];
    set_all(store, &tenant, &folder_keys, "60d").await;
    set_all(store, &beta, &["retention.campaign_lifetime"], "60d").await;
    let folders = fx.folders(&tenant);
    let people = PEOPLE.map(|p| format!("{p},x")).join("\n");
    let csv = format!("email,first_name\n{people}\n{},again\n", PEOPLE[1]);
    import(store, &tenant, &folders, "people.csv", &csv, "spring").await;
    import(
        store,
        &beta,
        &fx.folders(&beta),
        "other.csv",
        "email\nkeep.me@stay.example\n",
        "other",
    )
    .await;
    assert_eq!(
        names(&folders, Folder::Finished),
        ["people.csv", "people.errors.csv"]
    );
    // The customer reuses the name for a later upload: not the campaign's file.
    let reused = folders.folder(Folder::Incoming).join("people.csv");
    std::fs::write(&reused, "email\nnew.person@later.example\n").unwrap();
    set_modified(&reused, Utc::now() + Duration::hours(1));
    let campaign = store
        .campaign_by_name(tenant.id, &CampaignName::parse("spring").unwrap())
        .await
        .unwrap()
        .unwrap();
    let (t, c) = (tenant.id, campaign.id);
    store
        .set_campaign_status(t, c, CampaignStatus::Running)
        .await
        .unwrap();
    let outcomes = [
        outcome(
            1,
            RecipientState::Delivered,
            "250 ok",
            "2026-11-01T10:00:00Z",
        ),
        outcome(
            5,
            RecipientState::Bounced,
            "550 5.1.1 <ed.fox@hard.example> unknown",
            "2026-11-01T10:00:01Z",
        ),
    ];
    store.record_outcomes(t, c, &outcomes).await.unwrap();
    let open = hit(2, TrackingKind::Opened, None, "2026-11-01T11:00:00Z");
    store.record_tracking_events(t, c, &[open]).await.unwrap();
    let exported = export_tenant(store, &tenant, &folders, None).await.unwrap();
    let export_file = exported[0].as_ref().unwrap().file.clone();
    let record = IdempotencyRecord {
        request_hash: "cd".repeat(32),
        batch: c,
        response: format!("{{\"rejected\":[\"{}\"]}}", PEOPLE[2]),
    };
    store
        .remember_idempotency(t, "batch-1", &record)
        .await
        .unwrap();
    store
        .suppress(t, &[(PEOPLE[4].to_owned(), SuppressionReason::HardBounce)])
        .await
        .unwrap();
    let reports = fx.dir.path().join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let api_report = format!("api-c{}-0f0f.errors.csv", c.0);
    std::fs::write(
        reports.join(&api_report),
        format!("2,1,bad,{}\n", PEOPLE[3]),
    )
    .unwrap();
    std::fs::write(reports.join("api-c999999-0f0f.errors.csv"), "").unwrap();
    let launched = store
        .campaign(t, c)
        .await
        .unwrap()
        .unwrap()
        .launched_at
        .unwrap();
    let clock = ManualClock::new(launched + Duration::days(28) - Duration::minutes(1));
    let writes = OpenWrites::default();
    let policy = policy_of(store, &tenant).await;

    let inside = run_retention(
        store,
        &tenant,
        &folders,
        &policy,
        &writes,
        Some(&reports),
        clock.now(),
    )
    .await
    .unwrap();
    assert!(
        inside.campaigns.is_empty() && inside.files.is_empty(),
        "{inside:?}"
    );
    assert_eq!(
        store
            .recipients(t, c, RecipientId(0), 10)
            .await
            .unwrap()
            .len(),
        5
    );

    clock.advance(Duration::minutes(2));
    let after = run_retention(
        store,
        &tenant,
        &folders,
        &policy,
        &writes,
        Some(&reports),
        clock.now(),
    )
    .await
    .unwrap();
    let beta_policy = policy_of(store, &beta).await;
    let beta_run = run_retention(
        store,
        &beta,
        &fx.folders(&beta),
        &beta_policy,
        &writes,
        None,
        clock.now(),
    )
    .await;

    assert_eq!(after.campaigns, [c]);
    assert!(
        beta_run.unwrap().campaigns.is_empty(),
        "beta keeps campaigns 60 days"
    );
    let mut files = after.files.clone();
    files.sort();
    let export_path = format!("exports/{export_file}");
    let api_path = format!("reports/{api_report}");
    let mut expected = vec![
        export_path.as_str(),
        "finished/people.csv",
        "finished/people.errors.csv",
        api_path.as_str(),
    ];
    expected.sort();
    assert_eq!(files, expected);
    assert_eq!(audited(store, &tenant, "file.delete").await, expected);
    assert_eq!(
        audited(store, &tenant, "campaign.purge").await,
        [c.to_string()]
    );
    assert_eq!(
        names(&folders, Folder::Incoming),
        ["people.csv"],
        "the later upload stays"
    );
    std::fs::remove_file(&reused).unwrap();
    let purged = store.campaign(t, c).await.unwrap().unwrap();
    assert_eq!(purged.status, CampaignStatus::Cancelled);
    let counters = store.counters(t, c).await.unwrap();
    assert_eq!(
        (counters.delivered, counters.bounced, counters.pending),
        (1, 1, 3)
    );
    for (table, cell) in fx.all_cells().await {
        for person in &PEOPLE[..4] {
            assert!(!cell.contains(person), "{person} left in {table}: {cell}");
        }
        if cell.contains(PEOPLE[4]) {
            assert!(
                table.ends_with("suppressions"),
                "{} left in {table}: {cell}",
                PEOPLE[4]
            );
        }
    }
    let other_report = reports.join("api-c999999-0f0f.errors.csv");
    assert!(other_report.exists(), "another campaign's report stays");
    for (path, text) in all_files(&fx.root()).into_iter().chain(all_files(&reports)) {
        for person in PEOPLE {
            assert!(
                !text.contains(person),
                "{person} left in {}",
                path.display()
            );
        }
    }
    let kept = store
        .campaign_by_name(beta.id, &CampaignName::parse("other").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .recipients(beta.id, kept.id, RecipientId(0), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let again = run_retention(
        store,
        &tenant,
        &folders,
        &policy,
        &writes,
        Some(&reports),
        clock.now(),
    )
    .await
    .unwrap();
    assert!(
        again.campaigns.is_empty() && again.files.is_empty(),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_after_a_campaigns_lifetime_no_address_remains_in_tables_or_folders() {
    let fx = Fixture::sqlite().await.unwrap();
    after_a_campaigns_lifetime_no_address_remains(fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_after_a_campaigns_lifetime_no_address_remains_in_tables_or_folders() {
    let Some(fx) = Fixture::pg().await else {
        return;
    };
    after_a_campaigns_lifetime_no_address_remains(fx).await;
}
