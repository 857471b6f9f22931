//! Message batches created whole (`Store::create_batch`): launched with their
//! rows in one step, idempotency keys claimed with them, nothing left behind by
//! a lost key.

use chrono::Utc;
use engine::model::{CampaignId, EmailAddress, RecipientId, RecipientState, TenantId};
use engine::store::{
    BatchCreated, CampaignStatus, IdempotencyClaim, NewBatch, Store, StoreError, TrackingDetail,
    TrackingEvent, TrackingKind,
};

use super::{campaign_name, columns, outcome, sample_batch, summary, tenant_name};

const DEFINITION: &str = r#"{"subject":"Hi {{first_name}}"}"#;

fn response(id: CampaignId) -> String {
    format!(r#"{{"id":{}}}"#, id.0)
}

pub async fn a_batch_is_created_running_with_its_rows_and_events(store: &dyn Store) {
    let acme = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("acme");
    let (name, rows, summary) = (campaign_name("msg-1"), sample_batch(0, 5), summary(5));
    let batch = NewBatch {
        name: &name,
        definition: DEFINITION,
        columns: &columns(),
        rows: &rows,
        summary: &summary,
    };

    let created = store
        .create_batch(acme.id, &batch, None)
        .await
        .expect("batch");

    let BatchCreated::Created { id, response } = created else {
        panic!("created expected, got {created:?}")
    };
    assert_eq!(response, None, "no key, no kept response");
    let campaign = store
        .campaign(acme.id, id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(campaign.status, CampaignStatus::Running);
    assert!(campaign.imported);
    assert!(campaign.launched_at.is_some());
    assert_eq!(campaign.columns, columns());
    assert_eq!(campaign.definition.as_deref(), Some(DEFINITION));
    assert_eq!(
        store.counters(acme.id, id).await.expect("counters").pending,
        5
    );
    let due = store
        .due_recipients(acme.id, id, RecipientId(0), Utc::now(), 100)
        .await
        .expect("due");
    assert_eq!(due.len(), 5);
    let third = EmailAddress::parse("r3@d0.example").expect("address");
    let found = store
        .recipient_by_email(acme.id, id, &third)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.values, ["first3", "city3"]);
    let report = store
        .record_outcomes(
            acme.id,
            id,
            &[outcome(3, RecipientState::Delivered, "250 ok")],
        )
        .await
        .expect("outcome");
    assert_eq!(report.applied, 1);
    let events = store
        .events(acme.id, id, RecipientId(3))
        .await
        .expect("events");
    assert_eq!(events.len(), 1);
    store.drop_campaign_data(acme.id, id).await.expect("drop");
    let gone = store.recipient_by_email(acme.id, id, &third).await;
    assert!(matches!(gone, Err(StoreError::NotImported(_))), "{gone:?}");
}

pub async fn a_claimed_key_creates_one_batch_and_replays_the_first(store: &dyn Store) {
    let acme = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("acme");
    let (rows, summary, columns) = (sample_batch(0, 3), summary(3), columns());
    let (first_name, second_name) = (campaign_name("msg-a"), campaign_name("msg-b"));
    let first = NewBatch {
        name: &first_name,
        definition: DEFINITION,
        columns: &columns,
        rows: &rows,
        summary: &summary,
    };
    let second = NewBatch {
        name: &second_name,
        ..first
    };
    let claim = IdempotencyClaim {
        key: "k1",
        request_hash: "hash",
        response: &response,
    };

    let created = store
        .create_batch(acme.id, &first, Some(&claim))
        .await
        .expect("first");
    let replayed = store
        .create_batch(acme.id, &second, Some(&claim))
        .await
        .expect("second");

    let BatchCreated::Created { id, response: kept } = created else {
        panic!("created expected, got {created:?}")
    };
    assert_eq!(kept, Some(response(id)));
    let BatchCreated::Replayed(record) = replayed else {
        panic!("replay expected, got {replayed:?}")
    };
    assert_eq!(record.batch, id);
    assert_eq!(record.request_hash, "hash");
    assert_eq!(record.response, response(id));
    let campaign = store
        .campaign(acme.id, id)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(campaign.status, CampaignStatus::Running);
    let names: Vec<_> = store
        .campaigns(acme.id)
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.name.to_string())
        .collect();
    assert_eq!(
        names,
        ["msg-a"],
        "the replayed request leaves nothing behind"
    );
}

pub async fn a_batch_with_a_taken_name_or_no_tenant_creates_nothing(store: &dyn Store) {
    let acme = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("acme");
    let name = campaign_name("msg-x");
    store.create_campaign(acme.id, &name).await.expect("taken");
    let (rows, summary, columns) = (sample_batch(0, 2), summary(2), columns());
    let batch = NewBatch {
        name: &name,
        definition: DEFINITION,
        columns: &columns,
        rows: &rows,
        summary: &summary,
    };

    let taken = store.create_batch(acme.id, &batch, None).await;
    let orphan = store
        .create_batch(engine::model::TenantId(999_999), &batch, None)
        .await;

    assert!(
        matches!(taken, Err(StoreError::AlreadyExists { .. })),
        "{taken:?}"
    );
    assert!(
        matches!(orphan, Err(StoreError::UnknownTenant(_))),
        "{orphan:?}"
    );
    assert_eq!(store.campaigns(acme.id).await.expect("list").len(), 1);
}

/// Creates a batch of `n` rows named `name` and returns its id.
async fn create(store: &dyn Store, tenant: TenantId, name: &str, n: i64) -> CampaignId {
    let (name, rows, summary, columns) = (
        campaign_name(name),
        sample_batch(0, n),
        summary(n),
        columns(),
    );
    let batch = NewBatch {
        name: &name,
        definition: DEFINITION,
        columns: &columns,
        rows: &rows,
        summary: &summary,
    };
    match store
        .create_batch(tenant, &batch, None)
        .await
        .expect("batch")
    {
        BatchCreated::Created { id, .. } => id,
        other => panic!("created expected, got {other:?}"),
    }
}

/// Batches of one tenant may share storage (PostgreSQL appends them to one
/// table); whatever the layout, each sees only its own rows, outcomes, events
/// and export range, and purging one leaves the other whole.
pub async fn batches_of_one_tenant_keep_their_rows_events_and_purges_apart(store: &dyn Store) {
    let acme = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("acme");
    let (first, second) = (
        create(store, acme.id, "msg-1", 3).await,
        create(store, acme.id, "msg-2", 4).await,
    );
    let now = Utc::now();

    let due = |id| store.due_recipients(acme.id, id, RecipientId(0), now, 100);
    assert_eq!(due(first).await.expect("due").len(), 3);
    assert_eq!(due(second).await.expect("due").len(), 4);
    let delivered = [outcome(2, RecipientState::Delivered, "250 first")];
    let report = store
        .record_outcomes(acme.id, first, &delivered)
        .await
        .expect("outcome");
    assert_eq!(report.applied, 1);
    let open = TrackingEvent {
        recipient: RecipientId(2),
        kind: TrackingKind::Opened,
        detail: TrackingDetail::default(),
        at: now,
    };
    store
        .record_tracking_events(acme.id, second, &[open])
        .await
        .expect("open");

    // Outcomes and events stay with their batch.
    let among = store
        .due_recipients_among(
            acme.id,
            first,
            &[RecipientId(1), RecipientId(2), RecipientId(4)],
            now,
        )
        .await
        .expect("due among");
    let among: Vec<i64> = among.rows().map(|r| r.id().0).collect();
    assert_eq!(among, [1], "2 is delivered, 4 is the other batch's");
    assert_eq!(due(first).await.expect("due").len(), 2);
    assert_eq!(due(second).await.expect("due").len(), 4);
    let counters = store.counters(acme.id, second).await.expect("counters");
    assert_eq!((counters.pending, counters.delivered), (4, 0));
    assert_eq!(
        store
            .events(acme.id, second, RecipientId(2))
            .await
            .expect("events")
            .len(),
        0
    );
    assert_eq!(
        store
            .events(acme.id, first, RecipientId(2))
            .await
            .expect("events")
            .len(),
        1
    );
    let opens = store
        .tracking_events(acme.id, first, RecipientId(2))
        .await
        .expect("tracking");
    assert!(opens.is_empty(), "{opens:?}");
    let bound_first = store
        .committed_event_bound(acme.id, first)
        .await
        .expect("bound");
    let bound_second = store
        .committed_event_bound(acme.id, second)
        .await
        .expect("bound");
    let events_first = store
        .campaign_events(acme.id, first, 0, bound_first.max(bound_second), 100)
        .await
        .expect("events");
    assert_eq!(events_first.len(), 1);
    assert_eq!(events_first[0].detail.as_deref(), Some("250 first"));
    assert_eq!(events_first[0].email.as_deref(), Some("r2@d2.example"));
    let events_second = store
        .campaign_events(acme.id, second, 0, bound_first.max(bound_second), 100)
        .await
        .expect("events");
    assert_eq!(events_second.len(), 1, "{events_second:?}");
    assert_eq!(events_second[0].email.as_deref(), Some("r2@d2.example"));

    // Purging the first leaves the second whole; purging again is a no-op.
    store.purge_campaign(acme.id, first).await.expect("purge");
    store
        .purge_campaign(acme.id, first)
        .await
        .expect("purge again");
    let gone = store
        .due_recipients(acme.id, first, RecipientId(0), now, 100)
        .await;
    assert!(matches!(gone, Err(StoreError::NotImported(_))), "{gone:?}");
    assert_eq!(due(second).await.expect("due").len(), 4);
    let kept = store
        .recipients(acme.id, second, RecipientId(0), 100)
        .await
        .expect("rows");
    assert_eq!(kept.len(), 4);
    assert_eq!(kept[3].values, ["first4", "city4"]);
    assert_eq!(
        store
            .tracking_events(acme.id, second, RecipientId(2))
            .await
            .expect("tracking")
            .len(),
        1
    );
}

pub async fn active_campaigns_are_the_running_and_paused_and_those_asked_for(store: &dyn Store) {
    let acme = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("acme");
    let running = create(store, acme.id, "msg-run", 1).await;
    let paused = create(store, acme.id, "msg-paused", 1).await;
    let done = create(store, acme.id, "msg-done", 1).await;
    let cancelled = create(store, acme.id, "msg-cancelled", 1).await;
    let draft = store
        .create_campaign(acme.id, &campaign_name("spring"))
        .await
        .expect("draft")
        .id;
    store
        .set_campaign_status(acme.id, paused, CampaignStatus::Paused)
        .await
        .expect("pause");
    store
        .set_campaign_status(acme.id, done, CampaignStatus::Completed)
        .await
        .expect("complete");
    store
        .set_campaign_status(acme.id, cancelled, CampaignStatus::Cancelled)
        .await
        .expect("cancel");

    let ids = |campaigns: Vec<engine::store::Campaign>| -> Vec<CampaignId> {
        campaigns.into_iter().map(|c| c.id).collect()
    };
    let active = store.active_campaigns(acme.id, &[]).await.expect("active");
    assert_eq!(ids(active), [running, paused]);
    let asked = store
        .active_campaigns(acme.id, &[done, CampaignId(987_654)])
        .await
        .expect("active and asked");
    assert_eq!(ids(asked), [running, paused, done]);
    let all = store.campaigns(acme.id).await.expect("all");
    assert_eq!(ids(all), [running, paused, done, cancelled, draft]);
    let unknown = store
        .active_campaigns(engine::model::TenantId(999_999), &[])
        .await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownTenant(_))),
        "{unknown:?}"
    );
}
