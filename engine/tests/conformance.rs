//! The store conformance suite: one set of behaviours every `Store` must show. Each
//! backend instantiates it with `conformance_tests!(<async fn returning
//! Option<impl AsRef<dyn Store>>>)`; `None` means the backend is unavailable here and
//! the test is skipped (the factory says so loudly). The harness type must implement
//! `AsRef<dyn Store>` and clean up after itself on drop (temporary directory, test
//! database).
//!
//! Split by concept: tenants, imports and reads here; campaign life in `campaigns`;
//! due recipients and outcomes in `delivery`.

mod audit;
mod batches;
mod campaigns;
mod delivery;
mod exchange;
mod keys;
mod login;
mod pgp;
mod tracking;
mod users;
mod webhooks;

pub use audit::*;
pub use batches::*;
pub use campaigns::*;
pub use delivery::*;
pub use exchange::*;
pub use keys::*;
pub use login::*;
pub use pgp::*;
pub use tracking::*;
pub use users::*;
pub use webhooks::*;

use chrono::{TimeZone, Utc};
use engine::model::{
    CampaignId, CampaignName, EmailAddress, RecipientId, RecipientState, TenantId, TenantName,
};
use engine::store::{CampaignStatus, ImportSummary, Outcome, RecipientBatch, Store, StoreError};

/// Generates one `#[tokio::test]` per conformance check for a backend.
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance::conformance_tests!(@each $make;
            tenants_are_created_listed_and_found_by_name,
            tenant_names_are_unique,
            campaign_names_are_unique_per_tenant_and_ids_across_tenants,
            another_tenants_campaign_is_not_found,
            an_import_is_invisible_until_commit,
            an_aborted_import_leaves_nothing,
            a_dropped_import_writer_leaves_nothing_and_the_store_keeps_working,
            a_second_import_replaces_the_first,
            only_draft_campaigns_can_be_imported,
            values_round_trip_exactly,
            due_recipients_page_in_id_order_and_skip_deferred_not_yet_due,
            due_recipients_carry_attempts_and_the_first_attempt_time,
            due_recipients_among_ids_are_those_due_in_id_order,
            outcomes_move_state_counters_and_events,
            disallowed_transitions_and_unknown_ids_are_ignored,
            recipients_are_found_by_address,
            status_changes_are_kept,
            disallowed_status_changes_are_refused,
            a_campaign_never_imported_cannot_be_launched,
            a_paused_campaign_whose_data_was_dropped_cannot_resume,
            launched_at_is_set_by_the_first_launch_only,
            a_definition_round_trips_and_is_refused_while_running,
            a_definition_of_an_unknown_or_another_tenants_campaign_is_refused,
            dropping_campaign_data_removes_recipients_and_keeps_counters,
            migrate_twice_applies_nothing_the_second_time,
            api_keys_are_created_listed_and_found_by_id,
            api_key_ids_are_unique_and_need_an_existing_tenant,
            a_revoked_key_stays_revoked_with_its_first_revocation_time,
            another_tenants_key_cannot_be_revoked_or_listed,
            exchange_accounts_are_found_by_user_name_and_unique,
            an_idempotency_key_keeps_its_first_record_per_tenant,
            tracking_events_are_recorded_in_batches_apart_from_outcomes,
            suppressions_are_per_tenant_and_looked_up_in_bulk,
            webhook_events_wait_in_order_until_acknowledged_and_retry_later,
            the_audit_log_keeps_entries_per_tenant_newest_first_in_pages,
            audit_entries_need_an_existing_tenant,
            tenant_settings_default_and_round_trip_per_tenant,
            campaign_events_page_in_id_order_with_addresses_outcomes_and_clicks,
            an_empty_campaign_has_bound_zero_and_unimported_ones_are_refused,
            export_watermarks_start_at_zero_and_round_trip_per_campaign,
            import_sources_name_the_files_imported,
            purging_a_campaign_removes_its_personal_data_once_and_keeps_counters,
            exchange_accounts_are_listed_and_removed_per_tenant,
            a_batch_is_created_running_with_its_rows_and_events,
            a_claimed_key_creates_one_batch_and_replays_the_first,
            a_batch_with_a_taken_name_or_no_tenant_creates_nothing,
            batches_of_one_tenant_keep_their_rows_events_and_purges_apart,
            active_campaigns_are_the_running_and_paused_and_those_asked_for,
            a_tenant_pgp_key_is_stored_once_per_tenant,
            a_customer_pgp_key_is_set_replaced_and_removed_apart_from_the_own_key,
            users_are_unique_found_by_name_and_listed_per_tenant,
            a_user_update_from_a_stale_read_is_refused,
            sessions_are_found_until_they_expire_and_can_be_ended,
            expired_sessions_are_deleted_in_bounded_sweeps,
            wrong_passwords_lock_the_account_until_the_delay_or_an_admin,
            failures_outside_the_lockout_window_do_not_add_up,
            an_sms_code_works_once,
            an_sms_code_expires_after_its_ttl,
            three_wrong_codes_end_the_login,
            login_attempts_are_limited_per_user_and_per_address,
            sms_codes_sent_are_limited_per_user,
            a_totp_code_works_once_and_recovery_codes_once_each,
            a_password_cannot_repeat_the_last_ones,
            an_old_password_must_be_changed_at_login,
            the_ip_allowlist_refuses_or_demands_a_second_factor,
            every_login_step_is_audited,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(harness) = $make.await else { return };
                $crate::conformance::$name(harness.as_ref()).await;
            }
        )*
    };
}
pub(crate) use conformance_tests;

fn tenant_name(name: &str) -> TenantName {
    TenantName::parse(name).expect("valid tenant name")
}

fn campaign_name(name: &str) -> CampaignName {
    CampaignName::parse(name).expect("valid campaign name")
}

/// A batch of `n` rows `r<i>@d<i % 3>.example` with values `[first<i>, city<i>]`,
/// ids starting after `offset`.
fn sample_batch(offset: i64, n: i64) -> RecipientBatch {
    let mut batch = RecipientBatch::new(2);
    for i in offset + 1..=offset + n {
        let email = format!("r{i}@d{}.example", i % 3);
        let (first, city) = (format!("first{i}"), format!("city{i}"));
        batch.push(RecipientId(i), &email, [first.as_str(), city.as_str()]);
    }
    batch
}

fn columns() -> Vec<String> {
    vec!["first_name".to_owned(), "city".to_owned()]
}

fn summary(loaded: i64) -> ImportSummary {
    ImportSummary {
        source: "list.csv".to_owned(),
        rows_loaded: loaded,
        rows_rejected: 0,
    }
}

/// A tenant with one draft campaign holding `n` imported recipients.
async fn imported_campaign(store: &dyn Store, tenant: &str, n: i64) -> (TenantId, CampaignId) {
    let tenant = store
        .create_tenant(&tenant_name(tenant))
        .await
        .expect("tenant");
    let campaign = store
        .create_campaign(tenant.id, &campaign_name("spring"))
        .await
        .expect("campaign");
    let mut writer = store
        .begin_import(tenant.id, campaign.id, &columns())
        .await
        .expect("begin import");
    let mut written = 0;
    while written < n {
        let chunk = (n - written).min(1000);
        writer
            .write(&sample_batch(written, chunk))
            .await
            .expect("write");
        written += chunk;
    }
    writer.commit(&summary(n)).await.expect("commit");
    (tenant.id, campaign.id)
}

fn outcome(id: i64, state: RecipientState, detail: &str) -> Outcome {
    Outcome {
        recipient: RecipientId(id),
        state,
        attempted: true,
        detail: Some(detail.to_owned()),
        at: Utc
            .with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
            .single()
            .expect("valid time"),
    }
}

pub async fn tenants_are_created_listed_and_found_by_name(store: &dyn Store) {
    let acme = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("create");
    let globex = store
        .create_tenant(&tenant_name("globex"))
        .await
        .expect("create");
    assert_ne!(acme.id, globex.id);

    let names: Vec<_> = store
        .tenants()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, ["acme", "globex"]);

    let found = store.tenant(&tenant_name("acme")).await.expect("lookup");
    assert_eq!(found, Some(acme));
    assert_eq!(
        store.tenant(&tenant_name("nobody")).await.expect("lookup"),
        None
    );
}

pub async fn tenant_names_are_unique(store: &dyn Store) {
    store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("first");
    let second = store.create_tenant(&tenant_name("acme")).await;
    assert!(
        matches!(
            second,
            Err(StoreError::AlreadyExists { what: "tenant", .. })
        ),
        "{second:?}"
    );
}

pub async fn campaign_names_are_unique_per_tenant_and_ids_across_tenants(store: &dyn Store) {
    let a = store
        .create_tenant(&tenant_name("a"))
        .await
        .expect("tenant");
    let b = store
        .create_tenant(&tenant_name("b"))
        .await
        .expect("tenant");

    let in_a = store
        .create_campaign(a.id, &campaign_name("spring"))
        .await
        .expect("a");
    let in_b = store
        .create_campaign(b.id, &campaign_name("spring"))
        .await
        .expect("b");
    let again = store.create_campaign(a.id, &campaign_name("spring")).await;

    assert_ne!(in_a.id, in_b.id, "campaign ids are unique across tenants");
    assert!(
        matches!(
            again,
            Err(StoreError::AlreadyExists {
                what: "campaign",
                ..
            })
        ),
        "{again:?}"
    );
    assert_eq!(in_a.status, CampaignStatus::Draft);
    assert!(!in_a.imported && in_a.columns.is_empty());
    let listed = store.campaigns(a.id).await.expect("list");
    assert_eq!(listed, vec![in_a]);
}

pub async fn another_tenants_campaign_is_not_found(store: &dyn Store) {
    let (owner, campaign) = imported_campaign(store, "owner", 5).await;
    let other = store
        .create_tenant(&tenant_name("other"))
        .await
        .expect("tenant")
        .id;
    assert!(
        store
            .campaign(owner, campaign)
            .await
            .expect("own")
            .is_some()
    );

    assert_eq!(store.campaign(other, campaign).await.expect("lookup"), None);
    assert_eq!(
        store
            .campaign_by_name(other, &campaign_name("spring"))
            .await
            .expect("lookup"),
        None
    );
    let unknown = |r: &Result<_, StoreError>| {
        matches!(
            r,
            Err(StoreError::UnknownCampaign { .. }) | Err(StoreError::UnknownTenant(_))
        )
    };
    assert!(unknown(
        &store
            .recipients(other, campaign, RecipientId(0), 10)
            .await
            .map(|_| ())
    ));
    assert!(unknown(&store.counters(other, campaign).await.map(|_| ())));
    assert!(unknown(
        &store
            .begin_import(other, campaign, &columns())
            .await
            .map(|_| ())
    ));
    let result = store
        .record_outcomes(
            other,
            campaign,
            &[outcome(1, RecipientState::Delivered, "250 ok")],
        )
        .await;
    assert!(unknown(&result.map(|_| ())));
    assert!(unknown(&store.drop_campaign_data(other, campaign).await));
    // And the owner's data is untouched by all of that.
    assert_eq!(
        store
            .counters(owner, campaign)
            .await
            .expect("counters")
            .pending,
        5
    );
}

pub async fn an_import_is_invisible_until_commit(store: &dyn Store) {
    let tenant = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("tenant")
        .id;
    let campaign = store
        .create_campaign(tenant, &campaign_name("spring"))
        .await
        .expect("c")
        .id;
    let mut writer = store
        .begin_import(tenant, campaign, &columns())
        .await
        .expect("begin");
    writer.write(&sample_batch(0, 10)).await.expect("write");

    let before = store
        .campaign(tenant, campaign)
        .await
        .expect("lookup")
        .expect("exists");
    assert!(!before.imported);
    assert!(matches!(
        store
            .recipients(tenant, campaign, RecipientId(0), 100)
            .await,
        Err(StoreError::NotImported(_))
    ));

    writer.commit(&summary(10)).await.expect("commit");
    let after = store
        .campaign(tenant, campaign)
        .await
        .expect("lookup")
        .expect("exists");
    assert!(after.imported);
    assert_eq!(after.columns, columns());
    assert_eq!(
        store
            .recipients(tenant, campaign, RecipientId(0), 100)
            .await
            .expect("rows")
            .len(),
        10
    );
    let counters = store.counters(tenant, campaign).await.expect("counters");
    assert_eq!((counters.pending, counters.total()), (10, 10));
}

pub async fn an_aborted_import_leaves_nothing(store: &dyn Store) {
    let tenant = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("tenant")
        .id;
    let campaign = store
        .create_campaign(tenant, &campaign_name("spring"))
        .await
        .expect("c")
        .id;
    let mut writer = store
        .begin_import(tenant, campaign, &columns())
        .await
        .expect("begin");
    writer.write(&sample_batch(0, 50)).await.expect("write");
    writer.abort().await.expect("abort");

    let after = store
        .campaign(tenant, campaign)
        .await
        .expect("lookup")
        .expect("exists");
    assert!(!after.imported && after.columns.is_empty());
    assert_eq!(
        store
            .counters(tenant, campaign)
            .await
            .expect("counters")
            .total(),
        0
    );
}

pub async fn a_dropped_import_writer_leaves_nothing_and_the_store_keeps_working(store: &dyn Store) {
    let tenant = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("tenant")
        .id;
    let campaign = store
        .create_campaign(tenant, &campaign_name("spring"))
        .await
        .expect("c")
        .id;
    let mut writer = store
        .begin_import(tenant, campaign, &columns())
        .await
        .expect("begin");
    writer.write(&sample_batch(0, 50)).await.expect("write");
    drop(writer); // as if the importing task had been cancelled mid-way

    let later = store
        .create_campaign(tenant, &campaign_name("later"))
        .await
        .expect("c");
    let mut writer = store
        .begin_import(tenant, campaign, &columns())
        .await
        .expect("again");
    writer.write(&sample_batch(0, 3)).await.expect("write");
    writer.commit(&summary(3)).await.expect("commit");

    let names: Vec<_> = store
        .campaigns(tenant)
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.name.to_string())
        .collect();
    assert!(names.contains(&later.name.to_string()), "{names:?}");
    assert_eq!(
        store
            .counters(tenant, campaign)
            .await
            .expect("counters")
            .pending,
        3
    );
}

pub async fn a_second_import_replaces_the_first(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 20).await;
    let mut writer = store
        .begin_import(tenant, campaign, &["only".to_owned()])
        .await
        .expect("begin");
    let mut batch = RecipientBatch::new(1);
    batch.push(RecipientId(1), "new@example.com", ["x"]);
    writer.write(&batch).await.expect("write");
    writer.commit(&summary(1)).await.expect("commit");

    let rows = store
        .recipients(tenant, campaign, RecipientId(0), 100)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].email.as_str(), "new@example.com");
    assert_eq!(rows[0].values, ["x"]);
    let campaign = store
        .campaign(tenant, campaign)
        .await
        .expect("lookup")
        .expect("exists");
    assert_eq!(campaign.columns, ["only"]);
}

pub async fn only_draft_campaigns_can_be_imported(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 2).await;
    store
        .set_campaign_status(tenant, campaign, CampaignStatus::Running)
        .await
        .expect("status");
    let result = store.begin_import(tenant, campaign, &columns()).await;
    assert!(
        matches!(result, Err(StoreError::WrongStatus { .. })),
        "{:?}",
        result.err()
    );
}

pub async fn values_round_trip_exactly(store: &dyn Store) {
    let tenant = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("tenant")
        .id;
    let campaign = store
        .create_campaign(tenant, &campaign_name("spring"))
        .await
        .expect("c")
        .id;
    let tricky = [
        "",
        "Zoë \"the\" O'Brien; Müller, 東京 🚀",
        "\\N",
        "tab\tinside",
        "NULL",
    ];
    let long = "x".repeat(8000);
    let mut batch = RecipientBatch::new(2);
    for (i, value) in tricky.iter().enumerate() {
        let email = format!("v{i}@example.com");
        batch.push(RecipientId(i as i64 + 1), &email, [*value, long.as_str()]);
    }
    let mut writer = store
        .begin_import(tenant, campaign, &columns())
        .await
        .expect("begin");
    writer.write(&batch).await.expect("write");
    writer
        .commit(&summary(tricky.len() as i64))
        .await
        .expect("commit");

    let rows = store
        .recipients(tenant, campaign, RecipientId(0), 100)
        .await
        .expect("rows");
    let values: Vec<_> = rows.iter().map(|r| r.values[0].as_str()).collect();
    assert_eq!(values, tricky);
    assert!(
        rows.iter()
            .all(|r| r.values[1] == long && r.state == RecipientState::Pending)
    );
}

pub async fn recipients_are_found_by_address(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 10).await;
    let email = EmailAddress::parse("r7@D1.example").expect("valid");
    let found = store
        .recipient_by_email(tenant, campaign, &email)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.id, RecipientId(7));
    assert_eq!(found.values, ["first7", "city7"]);
    let missing = EmailAddress::parse("nobody@d1.example").expect("valid");
    assert_eq!(
        store
            .recipient_by_email(tenant, campaign, &missing)
            .await
            .expect("lookup"),
        None
    );
}

pub async fn dropping_campaign_data_removes_recipients_and_keeps_counters(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 4).await;
    store
        .record_outcomes(
            tenant,
            campaign,
            &[outcome(1, RecipientState::Delivered, "250")],
        )
        .await
        .expect("record");
    store
        .drop_campaign_data(tenant, campaign)
        .await
        .expect("drop");

    let c = store
        .counters(tenant, campaign)
        .await
        .expect("counters survive");
    assert_eq!((c.pending, c.delivered), (3, 1));
    let email = EmailAddress::parse("r1@d1.example").expect("valid");
    let lookup = store.recipient_by_email(tenant, campaign, &email).await;
    assert!(
        matches!(lookup, Err(StoreError::NotImported(_)) | Ok(None)),
        "{lookup:?}"
    );
    let rows = store.recipients(tenant, campaign, RecipientId(0), 10).await;
    assert!(matches!(rows, Err(StoreError::NotImported(_))), "{rows:?}");
}

pub async fn migrate_twice_applies_nothing_the_second_time(store: &dyn Store) {
    store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("tenant");
    store.migrate().await.expect("first");
    let second = store.migrate().await.expect("second");
    assert!(second.is_empty(), "{second:?}");
}
