//! The audit log and per-tenant settings.

use chrono::{Duration, TimeZone, Utc};
use engine::model::TenantId;
use engine::store::{AuditQuery, AuditRecord, Store, StoreError};
use engine::tenant::TenantSettings;

use super::tenant_name;

fn record(tenant: Option<TenantId>, action: &str, minute: i64) -> AuditRecord {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
        + Duration::minutes(minute);
    AuditRecord::new(tenant, "user:alice", action, at)
}

pub async fn the_audit_log_keeps_entries_per_tenant_newest_first_in_pages(store: &dyn Store) {
    let a = store.create_tenant(&tenant_name("a")).await.expect("a").id;
    let b = store.create_tenant(&tenant_name("b")).await.expect("b").id;
    let first = record(Some(a), "login.password", 0)
        .target("alice")
        .outcome("wrong_password")
        .ip("192.0.2.7")
        .detail(&serde_json::json!({"tries": 1}));
    let first_id = store.append_audit(&first).await.expect("append");
    store
        .append_audit(&record(Some(b), "key.create", 1))
        .await
        .expect("append");
    store
        .append_audit(&record(None, "tenant.create", 2))
        .await
        .expect("append");
    let last_id = store
        .append_audit(&record(Some(a), "login.password", 3))
        .await
        .expect("append");
    assert!(last_id > first_id);

    let of_a = store
        .audit_log(AuditQuery {
            tenant: Some(a),
            before: None,
            limit: 10,
        })
        .await
        .expect("list");
    assert_eq!(
        of_a.iter().map(|e| e.id).collect::<Vec<_>>(),
        [last_id, first_id]
    );
    assert_eq!(of_a[1].record, first, "every field round trips");

    let all = store
        .audit_log(AuditQuery {
            tenant: None,
            before: None,
            limit: 10,
        })
        .await
        .expect("list");
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");

    let page = store
        .audit_log(AuditQuery {
            tenant: None,
            before: Some(all[1].id),
            limit: 2,
        })
        .await
        .expect("page");
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        [all[2].id, all[3].id]
    );
}

pub async fn audit_entries_need_an_existing_tenant(store: &dyn Store) {
    let result = store
        .append_audit(&record(Some(TenantId(4242)), "login.password", 0))
        .await;
    assert!(
        matches!(result, Err(StoreError::UnknownTenant(TenantId(4242)))),
        "{result:?}"
    );
}

pub async fn tenant_settings_default_and_round_trip_per_tenant(store: &dyn Store) {
    let a = store.create_tenant(&tenant_name("a")).await.expect("a").id;
    let b = store.create_tenant(&tenant_name("b")).await.expect("b").id;
    assert_eq!(
        store.tenant_settings(a).await.expect("defaults"),
        TenantSettings::default()
    );
    let changed = TenantSettings::default()
        .with_value("retention.incoming", "3d")
        .expect("a valid override")
        .with_value("tracking.domain", "t.acme.example")
        .expect("a valid domain");
    assert_ne!(changed, TenantSettings::default());
    store.set_tenant_settings(a, &changed).await.expect("set");
    store
        .set_tenant_settings(a, &changed)
        .await
        .expect("set again");
    assert_eq!(store.tenant_settings(a).await.expect("read"), changed);
    assert_eq!(
        store.tenant_settings(b).await.expect("b untouched"),
        TenantSettings::default()
    );
    for result in [
        store.tenant_settings(TenantId(4242)).await.map(|_| ()),
        store
            .set_tenant_settings(TenantId(4242), &TenantSettings::default())
            .await,
    ] {
        assert!(
            matches!(result, Err(StoreError::UnknownTenant(TenantId(4242)))),
            "{result:?}"
        );
    }
}
