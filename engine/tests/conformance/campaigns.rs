//! Conformance: a campaign's life — its status changes, its definition and its
//! launch time.

use chrono::{Duration, Utc};
use engine::model::{CampaignId, TenantId};
use engine::store::{CampaignStatus, Store, StoreError};

use super::{campaign_name, imported_campaign, tenant_name};

const DEFINITION: &str = r#"{"from": "news@acme.example", "subject": "Spring  sale"}"#;

async fn status(store: &dyn Store, tenant: TenantId, campaign: CampaignId) -> CampaignStatus {
    store
        .campaign(tenant, campaign)
        .await
        .expect("lookup")
        .expect("exists")
        .status
}

/// Asserts that moving to `next` is refused with `WrongStatus` and changes nothing.
async fn assert_refused(
    store: &dyn Store,
    tenant: TenantId,
    campaign: CampaignId,
    next: CampaignStatus,
) {
    let before = status(store, tenant, campaign).await;
    let result = store.set_campaign_status(tenant, campaign, next).await;
    let expected_action = format!("become {}", next.as_str());
    assert!(
        matches!(&result, Err(StoreError::WrongStatus { action, .. }) if *action == expected_action),
        "{before:?} -> {next:?}: {result:?}"
    );
    assert_eq!(status(store, tenant, campaign).await, before);
}

pub async fn status_changes_are_kept(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 1).await;
    for status in [
        CampaignStatus::Running,
        CampaignStatus::Paused,
        CampaignStatus::Cancelled,
    ] {
        store
            .set_campaign_status(tenant, campaign, status)
            .await
            .expect("set");
        let c = store
            .campaign(tenant, campaign)
            .await
            .expect("lookup")
            .expect("exists");
        assert_eq!(c.status, status);
    }
}

pub async fn disallowed_status_changes_are_refused(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 1).await;
    assert_refused(store, tenant, campaign, CampaignStatus::Paused).await;
    assert_refused(store, tenant, campaign, CampaignStatus::Completed).await;
    let set = |next| store.set_campaign_status(tenant, campaign, next);
    set(CampaignStatus::Draft)
        .await
        .expect("the same status is a no-op");
    set(CampaignStatus::Running).await.expect("launch");
    set(CampaignStatus::Running)
        .await
        .expect("the same status is a no-op");
    assert_refused(store, tenant, campaign, CampaignStatus::Draft).await;
    set(CampaignStatus::Completed).await.expect("complete");
    for next in [
        CampaignStatus::Draft,
        CampaignStatus::Running,
        CampaignStatus::Paused,
        CampaignStatus::Cancelled,
    ] {
        assert_refused(store, tenant, campaign, next).await;
    }

    let other = store
        .create_campaign(tenant, &campaign_name("autumn"))
        .await
        .expect("campaign")
        .id;
    let set = |next| store.set_campaign_status(tenant, other, next);
    set(CampaignStatus::Cancelled)
        .await
        .expect("cancel a draft");
    assert_refused(store, tenant, other, CampaignStatus::Running).await;
    assert_refused(store, tenant, other, CampaignStatus::Draft).await;

    let unknown = store
        .set_campaign_status(tenant, CampaignId(999_999), CampaignStatus::Running)
        .await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownCampaign { .. })),
        "{unknown:?}"
    );
}

pub async fn a_campaign_never_imported_cannot_be_launched(store: &dyn Store) {
    let tenant = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("tenant")
        .id;
    let campaign = store
        .create_campaign(tenant, &campaign_name("spring"))
        .await
        .expect("campaign")
        .id;

    let result = store
        .set_campaign_status(tenant, campaign, CampaignStatus::Running)
        .await;

    assert!(
        matches!(result, Err(StoreError::NotImported(id)) if id == campaign),
        "{result:?}"
    );
    let found = store
        .campaign(tenant, campaign)
        .await
        .expect("lookup")
        .expect("exists");
    assert_eq!(
        (found.status, found.launched_at),
        (CampaignStatus::Draft, None)
    );
}

pub async fn a_paused_campaign_whose_data_was_dropped_cannot_resume(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 2).await;
    let set = |next| store.set_campaign_status(tenant, campaign, next);
    set(CampaignStatus::Running).await.expect("launch");
    set(CampaignStatus::Paused).await.expect("pause");
    store
        .drop_campaign_data(tenant, campaign)
        .await
        .expect("drop");

    let result = set(CampaignStatus::Running).await;

    assert!(
        matches!(result, Err(StoreError::NotImported(_))),
        "{result:?}"
    );
    set(CampaignStatus::Cancelled).await.expect("cancel");
}

pub async fn launched_at_is_set_by_the_first_launch_only(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 1).await;
    let launched_at = || async {
        store
            .campaign(tenant, campaign)
            .await
            .expect("lookup")
            .expect("exists")
            .launched_at
    };
    assert_eq!(launched_at().await, None, "a draft was never launched");

    let before = Utc::now() - Duration::seconds(5);
    let set = |next| store.set_campaign_status(tenant, campaign, next);
    set(CampaignStatus::Running).await.expect("launch");
    let first = launched_at().await.expect("set by the launch");
    assert!(
        first >= before && first <= Utc::now() + Duration::seconds(5),
        "{first}"
    );

    set(CampaignStatus::Paused).await.expect("pause");
    assert_eq!(launched_at().await, Some(first));
    set(CampaignStatus::Running).await.expect("resume");
    assert_eq!(launched_at().await, Some(first), "a resume is not a launch");
}

pub async fn a_definition_round_trips_and_is_refused_while_running(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 1).await;
    let definition = || async {
        store
            .campaign(tenant, campaign)
            .await
            .expect("lookup")
            .expect("exists")
            .definition
    };
    assert_eq!(definition().await, None);

    store
        .set_campaign_definition(tenant, campaign, DEFINITION)
        .await
        .expect("set while draft");
    assert_eq!(definition().await.as_deref(), Some(DEFINITION));
    let listed = store.campaigns(tenant).await.expect("list");
    assert_eq!(listed[0].definition.as_deref(), Some(DEFINITION));

    let set = |next| store.set_campaign_status(tenant, campaign, next);
    set(CampaignStatus::Running).await.expect("launch");
    let refused = store.set_campaign_definition(tenant, campaign, "{}").await;
    assert!(
        matches!(
            refused,
            Err(StoreError::WrongStatus {
                action: "change its definition",
                status: "running",
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(definition().await.as_deref(), Some(DEFINITION));

    set(CampaignStatus::Paused).await.expect("pause");
    store
        .set_campaign_definition(tenant, campaign, "{}")
        .await
        .expect("set while paused");
    assert_eq!(definition().await.as_deref(), Some("{}"));
}

pub async fn a_definition_of_an_unknown_or_another_tenants_campaign_is_refused(store: &dyn Store) {
    let (owner, campaign) = imported_campaign(store, "owner", 1).await;
    let other = store
        .create_tenant(&tenant_name("other"))
        .await
        .expect("tenant")
        .id;

    let foreign = store
        .set_campaign_definition(other, campaign, DEFINITION)
        .await;
    let unknown = store
        .set_campaign_definition(owner, CampaignId(999_999), DEFINITION)
        .await;

    for result in [foreign, unknown] {
        assert!(
            matches!(result, Err(StoreError::UnknownCampaign { .. })),
            "{result:?}"
        );
    }
    let found = store.campaign(owner, campaign).await.expect("lookup");
    assert_eq!(found.and_then(|c| c.definition), None);
}
