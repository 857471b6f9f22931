//! Conformance: API keys — global rows found by key id, listed and revoked per
//! tenant, with the sealed secret kept byte for byte.

use engine::model::{CampaignId, TenantId};
use engine::store::{IdempotencyRecord, Store, StoreError};

use super::tenant_name;

pub async fn api_keys_are_created_listed_and_found_by_id(store: &dyn Store) {
    let acme = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("tenant");
    let sealed = [0u8, 1, 2, 255, 254];

    let first = store
        .create_api_key(acme.id, "acme_1", &sealed)
        .await
        .expect("create");
    let second = store
        .create_api_key(acme.id, "acme_2", b"other")
        .await
        .expect("create");

    assert_eq!(first.tenant, acme.id);
    assert_eq!(first.revoked_at, None);
    let listed = store.api_keys(acme.id).await.expect("list");
    assert_eq!(listed, vec![first.clone(), second]);
    let (found, found_sealed) = store
        .api_key("acme_1")
        .await
        .expect("lookup")
        .expect("exists");
    assert_eq!(found, first);
    assert_eq!(found_sealed, sealed);
    assert!(store.api_key("acme_3").await.expect("lookup").is_none());
}

pub async fn api_key_ids_are_unique_and_need_an_existing_tenant(store: &dyn Store) {
    let acme = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("tenant");
    let beta = store
        .create_tenant(&tenant_name("beta"))
        .await
        .expect("tenant");
    store
        .create_api_key(acme.id, "shared", b"a")
        .await
        .expect("create");

    let again = store.create_api_key(beta.id, "shared", b"b").await;
    let orphan = store.create_api_key(TenantId(9_999), "orphan", b"c").await;

    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "{again:?}"
    );
    assert!(
        matches!(orphan, Err(StoreError::UnknownTenant(_))),
        "{orphan:?}"
    );
    let (key, sealed) = store
        .api_key("shared")
        .await
        .expect("lookup")
        .expect("kept");
    assert_eq!((key.tenant, sealed), (acme.id, b"a".to_vec()));
}

pub async fn a_revoked_key_stays_revoked_with_its_first_revocation_time(store: &dyn Store) {
    let acme = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("tenant");
    store
        .create_api_key(acme.id, "acme_1", b"s")
        .await
        .expect("create");

    store
        .revoke_api_key(acme.id, "acme_1")
        .await
        .expect("revoke");
    let first = store
        .api_key("acme_1")
        .await
        .expect("lookup")
        .expect("kept");
    store
        .revoke_api_key(acme.id, "acme_1")
        .await
        .expect("revoking again is no error");
    let second = store
        .api_key("acme_1")
        .await
        .expect("lookup")
        .expect("kept");

    assert!(first.0.revoked_at.is_some());
    assert_eq!(first.0.revoked_at, second.0.revoked_at);
    let unknown = store.revoke_api_key(acme.id, "acme_9").await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownApiKey(_))),
        "{unknown:?}"
    );
}

pub async fn another_tenants_key_cannot_be_revoked_or_listed(store: &dyn Store) {
    let acme = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("tenant");
    let beta = store
        .create_tenant(&tenant_name("beta"))
        .await
        .expect("tenant");
    store
        .create_api_key(acme.id, "acme_1", b"s")
        .await
        .expect("create");

    let revoked = store.revoke_api_key(beta.id, "acme_1").await;

    assert!(
        matches!(revoked, Err(StoreError::UnknownApiKey(_))),
        "{revoked:?}"
    );
    assert!(store.api_keys(beta.id).await.expect("list").is_empty());
    let (key, _) = store
        .api_key("acme_1")
        .await
        .expect("lookup")
        .expect("kept");
    assert_eq!(key.revoked_at, None);
}

pub async fn exchange_accounts_are_found_by_user_name_and_unique(store: &dyn Store) {
    let acme = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("tenant");
    let account = engine::store::ExchangeAccount {
        username: "acme-upload".to_owned(),
        tenant: acme.id,
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        public_keys: vec![
            "ssh-ed25519 AAAAC3 one".to_owned(),
            "ssh-ed25519 AAAAC3 two".to_owned(),
        ],
    };

    store
        .create_exchange_account(&account)
        .await
        .expect("create");

    let found = store.exchange_account("acme-upload").await.expect("lookup");
    assert_eq!(found, Some(account.clone()));
    assert!(
        store
            .exchange_account("nobody")
            .await
            .expect("lookup")
            .is_none()
    );
    let again = store.create_exchange_account(&account).await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "{again:?}"
    );
    let orphan = engine::store::ExchangeAccount {
        username: "ghost".to_owned(),
        tenant: TenantId(999_999),
        ..account
    };
    let orphan = store.create_exchange_account(&orphan).await;
    assert!(
        matches!(orphan, Err(StoreError::UnknownTenant(_))),
        "{orphan:?}"
    );
}

pub async fn an_idempotency_key_keeps_its_first_record_per_tenant(store: &dyn Store) {
    let acme = store
        .create_tenant(&tenant_name("acme"))
        .await
        .expect("acme");
    let beta = store
        .create_tenant(&tenant_name("beta"))
        .await
        .expect("beta");
    let first = IdempotencyRecord {
        request_hash: "aa".repeat(32),
        batch: CampaignId(7),
        response: r#"{"id":7}"#.to_owned(),
    };
    let second = IdempotencyRecord {
        request_hash: "bb".repeat(32),
        batch: CampaignId(8),
        response: r#"{"id":8}"#.to_owned(),
    };

    assert_eq!(
        store.idempotency_record(acme.id, "k1").await.expect("read"),
        None
    );
    let kept = store
        .remember_idempotency(acme.id, "k1", &first)
        .await
        .expect("first");
    let again = store
        .remember_idempotency(acme.id, "k1", &second)
        .await
        .expect("second");
    let other = store
        .remember_idempotency(beta.id, "k1", &second)
        .await
        .expect("beta");

    assert_eq!(kept, first);
    assert_eq!(again, first, "the first record stays");
    assert_eq!(other, second, "keys are per tenant");
    assert_eq!(
        store.idempotency_record(acme.id, "k1").await.expect("read"),
        Some(first)
    );
    assert_eq!(
        store.idempotency_record(acme.id, "k2").await.expect("read"),
        None
    );
}
