//! Conformance: what the exchange's jobs read and write — campaign events in id
//! order with addresses, export watermarks, import sources, the lifetime purge,
//! and listing and removing exchange accounts.

use chrono::{TimeZone, Utc};
use engine::model::{RecipientId, RecipientState, StateCode, TenantId};
use engine::store::{
    EventKind, ExchangeAccount, ExportWatermark, IdempotencyRecord, Store, StoreError,
    SuppressionReason, TrackingDetail, TrackingEvent, TrackingKind,
};

use super::{campaign_name, imported_campaign, outcome, tenant_name};

fn click(recipient: i64, url: &str) -> TrackingEvent {
    TrackingEvent {
        recipient: RecipientId(recipient),
        kind: TrackingKind::Clicked,
        detail: TrackingDetail {
            url: Some(url.to_owned()),
            ..TrackingDetail::default()
        },
        at: Utc
            .with_ymd_and_hms(2026, 11, 2, 9, 0, 0)
            .single()
            .expect("time"),
    }
}

pub async fn campaign_events_page_in_id_order_with_addresses_outcomes_and_clicks(
    store: &dyn Store,
) {
    let (tenant, campaign) = imported_campaign(store, "acme", 3).await;
    let outcomes = [
        outcome(1, RecipientState::Delivered, "250 ok"),
        outcome(2, RecipientState::Bounced, "550 5.1.1 unknown"),
    ];
    store
        .record_outcomes(tenant, campaign, &outcomes)
        .await
        .expect("outcomes");
    store
        .record_tracking_events(tenant, campaign, &[click(1, "https://shop.example/a")])
        .await
        .expect("click");

    let bound = store
        .committed_event_bound(tenant, campaign)
        .await
        .expect("bound");
    let first = store
        .campaign_events(tenant, campaign, 0, bound, 2)
        .await
        .expect("page 1");
    let rest = store
        .campaign_events(tenant, campaign, first[1].id, bound, 2)
        .await
        .expect("page 2");

    assert_eq!(first.len(), 2);
    assert_eq!(rest.len(), 1);
    let all: Vec<_> = first.iter().chain(&rest).collect();
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "{all:?}");
    assert_eq!(all[2].id, bound);
    let kinds: Vec<_> = all.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Outcome(StateCode::Delivered),
            EventKind::Outcome(StateCode::Bounced),
            EventKind::Tracking(TrackingKind::Clicked),
        ]
    );
    assert_eq!(all[0].email.as_deref(), Some("r1@d1.example"));
    assert_eq!(all[1].email.as_deref(), Some("r2@d2.example"));
    assert_eq!(all[1].detail.as_deref(), Some("550 5.1.1 unknown"));
    assert_eq!(
        all[2].tracking_detail().url.as_deref(),
        Some("https://shop.example/a")
    );
    let none_past = store
        .campaign_events(tenant, campaign, bound, bound, 10)
        .await
        .expect("empty");
    assert!(none_past.is_empty());
    let capped = store
        .campaign_events(tenant, campaign, 0, first[0].id, 10)
        .await
        .expect("capped");
    assert_eq!(capped.len(), 1, "`through` is an upper bound");
}

pub async fn an_empty_campaign_has_bound_zero_and_unimported_ones_are_refused(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 2).await;
    let draft = store
        .create_campaign(tenant, &campaign_name("draft"))
        .await
        .expect("draft");

    assert_eq!(
        store
            .committed_event_bound(tenant, campaign)
            .await
            .expect("bound"),
        0
    );
    let refused = store.committed_event_bound(tenant, draft.id).await;
    assert!(
        matches!(refused, Err(StoreError::NotImported(_))),
        "{refused:?}"
    );
    let refused = store.campaign_events(tenant, draft.id, 0, 10, 10).await;
    assert!(
        matches!(refused, Err(StoreError::NotImported(_))),
        "{refused:?}"
    );
}

pub async fn export_watermarks_start_at_zero_and_round_trip_per_campaign(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 2).await;
    let other = store
        .create_campaign(tenant, &campaign_name("other"))
        .await
        .expect("other");
    assert_eq!(
        store
            .export_watermark(tenant, campaign)
            .await
            .expect("read"),
        ExportWatermark::default()
    );

    let pending = ExportWatermark {
        exported: 0,
        pending: Some(7),
    };
    store
        .set_export_watermark(tenant, campaign, pending)
        .await
        .expect("pending");
    assert_eq!(
        store
            .export_watermark(tenant, campaign)
            .await
            .expect("read"),
        pending
    );
    let done = ExportWatermark {
        exported: 7,
        pending: None,
    };
    store
        .set_export_watermark(tenant, campaign, done)
        .await
        .expect("done");

    assert_eq!(
        store
            .export_watermark(tenant, campaign)
            .await
            .expect("read"),
        done
    );
    assert_eq!(
        store
            .export_watermark(tenant, other.id)
            .await
            .expect("other"),
        ExportWatermark::default()
    );
    let unknown = store
        .set_export_watermark(tenant, engine::model::CampaignId(987_654), done)
        .await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownCampaign { .. })),
        "{unknown:?}"
    );
}

pub async fn import_sources_name_the_files_imported(store: &dyn Store) {
    let before = Utc::now() - chrono::Duration::seconds(1);
    let (tenant, campaign) = imported_campaign(store, "acme", 2).await;

    let sources = store
        .import_sources(tenant, campaign)
        .await
        .expect("sources");

    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].source, "list.csv");
    assert!(sources[0].committed_at >= before);
    assert!(sources[0].committed_at <= Utc::now() + chrono::Duration::seconds(1));
}

pub async fn purging_a_campaign_removes_its_personal_data_once_and_keeps_counters(
    store: &dyn Store,
) {
    let (tenant, campaign) = imported_campaign(store, "acme", 3).await;
    store
        .record_outcomes(
            tenant,
            campaign,
            &[outcome(1, RecipientState::Delivered, "250 ok")],
        )
        .await
        .expect("outcome");
    let record = IdempotencyRecord {
        request_hash: "ab".repeat(32),
        batch: campaign,
        response: r#"{"accepted":["r1@d1.example"]}"#.to_owned(),
    };
    store
        .remember_idempotency(tenant, "key-1", &record)
        .await
        .expect("remember");
    store
        .suppress(
            tenant,
            &[("r2@d2.example".into(), SuppressionReason::HardBounce)],
        )
        .await
        .expect("suppress");

    let mark = ExportWatermark {
        exported: 1,
        pending: None,
    };
    store
        .set_export_watermark(tenant, campaign, mark)
        .await
        .expect("watermark");

    let queued = format!(
        r#"{{"event":"bounced","campaign":{},"recipient":2,"detail":"550 <r2@d2.example> unknown"}}"#,
        campaign.0
    );
    let other = r#"{"event":"opened","campaign":999999,"recipient":1}"#.to_owned();
    store
        .enqueue_webhooks(tenant, &[queued, other.clone()])
        .await
        .expect("enqueue");

    let first = store.purge_campaign(tenant, campaign).await.expect("purge");
    let again = store.purge_campaign(tenant, campaign).await.expect("again");

    assert!(first.tables_dropped);
    assert_eq!(first.idempotency_records, 2, "the key and the queued event");
    assert!(!again.removed_anything(), "{again:?}");
    let later = Utc::now() + chrono::Duration::days(1);
    let waiting: Vec<String> = store
        .due_webhooks(tenant, later, 10)
        .await
        .expect("due")
        .into_iter()
        .map(|d| d.event)
        .collect();
    assert_eq!(
        waiting,
        [other],
        "only another campaign's event stays queued"
    );
    assert!(
        store
            .idempotency_record(tenant, "key-1")
            .await
            .expect("lookup")
            .is_none()
    );
    let counters = store.counters(tenant, campaign).await.expect("counters");
    assert_eq!((counters.delivered, counters.pending), (1, 2));
    assert_eq!(
        store
            .export_watermark(tenant, campaign)
            .await
            .expect("mark"),
        ExportWatermark::default(),
        "a new import starts event ids again"
    );
    let gone = store.campaign_events(tenant, campaign, 0, 100, 10).await;
    assert!(matches!(gone, Err(StoreError::NotImported(_))), "{gone:?}");
    assert_eq!(
        store
            .suppressions(tenant)
            .await
            .expect("suppressions")
            .len(),
        1,
        "the suppression list is the tenant's and stays"
    );
    let unknown = store
        .purge_campaign(tenant, engine::model::CampaignId(987_654))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownCampaign { .. })),
        "{unknown:?}"
    );
}

pub async fn exchange_accounts_are_listed_and_removed_per_tenant(store: &dyn Store) {
    let acme = store.create_tenant(&tenant_name("acme")).await.expect("a");
    let beta = store.create_tenant(&tenant_name("beta")).await.expect("b");
    for (tenant, user) in [
        (acme.id, "acme-2"),
        (acme.id, "acme-1"),
        (beta.id, "beta-1"),
    ] {
        let account = ExchangeAccount {
            username: user.to_owned(),
            tenant,
            password_hash: None,
            public_keys: vec![format!("ssh-ed25519 AAAAC3 {user}")],
        };
        store.create_exchange_account(&account).await.expect("add");
    }

    let listed = store.exchange_accounts(acme.id).await.expect("list");
    let names: Vec<_> = listed.iter().map(|a| a.username.as_str()).collect();
    assert_eq!(names, ["acme-1", "acme-2"]);
    assert_eq!(listed[0].public_keys, ["ssh-ed25519 AAAAC3 acme-1"]);

    assert!(
        !store
            .remove_exchange_account(acme.id, "beta-1")
            .await
            .expect("another tenant's")
    );
    assert!(
        store
            .remove_exchange_account(acme.id, "acme-1")
            .await
            .expect("remove")
    );
    assert!(
        store
            .exchange_account("acme-1")
            .await
            .expect("gone")
            .is_none()
    );
    assert!(
        store
            .exchange_account("beta-1")
            .await
            .expect("kept")
            .is_some()
    );
    assert_eq!(
        store.exchange_accounts(acme.id).await.expect("list").len(),
        1
    );
    assert!(
        store
            .exchange_accounts(TenantId(987_654))
            .await
            .expect("no tenant, no accounts")
            .is_empty()
    );
}
