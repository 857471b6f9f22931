//! Per-tenant OpenPGP keys.

use engine::model::TenantId;
use engine::store::{PgpKeyRecord, Store, StoreError};

use super::tenant_name;

pub async fn a_tenant_pgp_key_is_stored_once_per_tenant(store: &dyn Store) {
    let a = store.create_tenant(&tenant_name("a")).await.expect("a").id;
    let b = store.create_tenant(&tenant_name("b")).await.expect("b").id;
    assert_eq!(
        store.pgp_keys(a).await.expect("none yet"),
        PgpKeyRecord::default()
    );

    let first = store.init_pgp_key(a, b"sealed-1", "public-1").await;
    let second = store.init_pgp_key(a, b"sealed-2", "public-2").await;

    assert!(first.expect("stored"), "the first key is stored");
    assert!(!second.expect("kept"), "a second key does not replace it");
    let stored = store.pgp_keys(a).await.expect("read");
    assert_eq!(stored.sealed_secret.as_deref(), Some(&b"sealed-1"[..]));
    assert_eq!(stored.public_key.as_deref(), Some("public-1"));
    assert_eq!(
        store.pgp_keys(b).await.expect("b untouched"),
        PgpKeyRecord::default()
    );
}

pub async fn a_customer_pgp_key_is_set_replaced_and_removed_apart_from_the_own_key(
    store: &dyn Store,
) {
    let a = store.create_tenant(&tenant_name("a")).await.expect("a").id;

    store
        .set_customer_pgp_key(a, Some("customer-1"))
        .await
        .expect("set before the own key exists");
    assert!(
        store
            .init_pgp_key(a, b"sealed", "public")
            .await
            .expect("own key")
    );
    store
        .set_customer_pgp_key(a, Some("customer-2"))
        .await
        .expect("replace");
    let with_customer = store.pgp_keys(a).await.expect("read");
    store.set_customer_pgp_key(a, None).await.expect("remove");
    let removed = store.pgp_keys(a).await.expect("read");

    assert_eq!(with_customer.customer_key.as_deref(), Some("customer-2"));
    assert_eq!(with_customer.public_key.as_deref(), Some("public"));
    assert_eq!(removed.customer_key, None);
    assert_eq!(removed.sealed_secret.as_deref(), Some(&b"sealed"[..]));
    for result in [
        store.pgp_keys(TenantId(4242)).await.map(|_| ()),
        store
            .init_pgp_key(TenantId(4242), b"x", "y")
            .await
            .map(|_| ()),
        store.set_customer_pgp_key(TenantId(4242), Some("k")).await,
    ] {
        assert!(
            matches!(result, Err(StoreError::UnknownTenant(TenantId(4242)))),
            "{result:?}"
        );
    }
}
