//! Message batches created whole (`Store::create_batch`): launched with their
//! rows in one step, idempotency keys claimed with them, nothing left behind by
//! a lost key.

use chrono::Utc;
use engine::model::{CampaignId, EmailAddress, RecipientId, RecipientState};
use engine::store::{BatchCreated, CampaignStatus, IdempotencyClaim, NewBatch, Store, StoreError};

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
