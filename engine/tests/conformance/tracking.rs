//! Conformance: tracking events beside outcomes, and the tenant's suppression list.

use chrono::{TimeZone, Utc};
use engine::model::{RecipientId, RecipientState, StateCode};
use engine::store::{Store, SuppressionReason, TrackingDetail, TrackingEvent, TrackingKind};

use super::{imported_campaign, outcome};

pub async fn tracking_events_are_recorded_in_batches_apart_from_outcomes(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 3).await;
    let at = Utc
        .with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("time");
    store
        .record_outcomes(
            tenant,
            campaign,
            &[outcome(1, RecipientState::Delivered, "250")],
        )
        .await
        .expect("outcome");
    let click = TrackingDetail {
        user_agent: Some("Mozilla/5.0 (X11)".into()),
        ip: Some("203.0.113.0".into()),
        link: Some(2),
        url: Some("https://shop.example/a".into()),
        machine: false,
        ..TrackingDetail::default()
    };
    let events = [
        TrackingEvent {
            recipient: RecipientId(1),
            kind: TrackingKind::Opened,
            detail: TrackingDetail {
                machine: true,
                ..TrackingDetail::default()
            },
            at,
        },
        TrackingEvent {
            recipient: RecipientId(1),
            kind: TrackingKind::Clicked,
            detail: click.clone(),
            at,
        },
        TrackingEvent {
            recipient: RecipientId(1),
            kind: TrackingKind::Bounced,
            detail: TrackingDetail {
                status: Some("5.1.1".into()),
                class: Some("hard".into()),
                diagnostic: Some("550 5.1.1 user unknown".into()),
                ..TrackingDetail::default()
            },
            at,
        },
        TrackingEvent {
            recipient: RecipientId(2),
            kind: TrackingKind::Unsubscribed,
            detail: TrackingDetail::default(),
            at,
        },
    ];
    let written = store
        .record_tracking_events(tenant, campaign, &events)
        .await
        .expect("record");

    assert_eq!(written, 4);
    let first = store
        .tracking_events(tenant, campaign, RecipientId(1))
        .await
        .expect("read");
    assert_eq!(first, events[..3].to_vec(), "an async bounce is an event");
    let outcomes = store
        .events(tenant, campaign, RecipientId(1))
        .await
        .expect("outcomes");
    assert_eq!(
        outcomes.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [StateCode::Delivered]
    );
}

pub async fn suppressions_are_per_tenant_and_looked_up_in_bulk(store: &dyn Store) {
    let (acme, _) = imported_campaign(store, "acme", 1).await;
    let (other, _) = imported_campaign(store, "other", 1).await;
    let entries = [
        ("a@x.example".to_owned(), SuppressionReason::Unsubscribed),
        ("b@x.example".to_owned(), SuppressionReason::Manual),
    ];
    assert_eq!(store.suppress(acme, &entries).await.expect("add"), 2);
    assert_eq!(store.suppress(acme, &entries[..1]).await.expect("again"), 0);

    let asked = ["a@x.example", "c@x.example", "b@x.example"].map(String::from);
    let found = store.suppressed_among(acme, &asked).await.expect("lookup");
    assert_eq!(found.len(), 2);
    assert!(found.contains("a@x.example") && found.contains("b@x.example"));
    assert!(
        store
            .suppressed_among(other, &asked)
            .await
            .expect("other")
            .is_empty()
    );
    let listed = store.suppressions(acme).await.expect("list");
    assert_eq!(listed[0].reason, SuppressionReason::Unsubscribed);

    assert!(store.unsuppress(acme, "a@x.example").await.expect("remove"));
    assert!(!store.unsuppress(acme, "a@x.example").await.expect("gone"));
    assert_eq!(store.suppressions(acme).await.expect("list").len(), 1);
}
