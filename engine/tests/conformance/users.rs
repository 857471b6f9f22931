//! Web users and sessions in the store.

use chrono::{Duration, TimeZone, Utc};
use engine::model::TenantId;
use engine::store::{SessionRecord, Store, StoreError, UserRecord};

use super::tenant_name;

fn user(name: &str, tenant: Option<TenantId>) -> UserRecord {
    UserRecord {
        name: name.to_owned(),
        tenant,
        version: 0,
        data: format!(r#"{{"name":"{name}"}}"#),
        created_at: Utc
            .with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
            .single()
            .expect("time"),
    }
}

pub async fn users_are_unique_found_by_name_and_listed_per_tenant(store: &dyn Store) {
    let a = store.create_tenant(&tenant_name("a")).await.expect("a").id;
    let b = store.create_tenant(&tenant_name("b")).await.expect("b").id;
    let alice = store
        .create_user(&user("alice", Some(a)))
        .await
        .expect("alice");
    assert_eq!(alice.version, 1);
    assert_eq!(
        alice,
        UserRecord {
            version: 1,
            ..user("alice", Some(a))
        }
    );
    store.create_user(&user("bob", Some(b))).await.expect("bob");
    store
        .create_user(&user("root", None))
        .await
        .expect("operator");
    assert!(matches!(
        store.create_user(&user("alice", Some(b))).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(matches!(
        store
            .create_user(&user("carol", Some(TenantId(999_999))))
            .await,
        Err(StoreError::UnknownTenant(_))
    ));
    assert_eq!(store.user("alice").await.expect("get"), Some(alice));
    assert_eq!(store.user("nobody").await.expect("get"), None);
    let names = |users: Vec<UserRecord>| users.into_iter().map(|u| u.name).collect::<Vec<_>>();
    assert_eq!(names(store.users(Some(a)).await.expect("list")), ["alice"]);
    assert_eq!(names(store.users(None).await.expect("list")), ["root"]);
}

pub async fn a_user_update_from_a_stale_read_is_refused(store: &dyn Store) {
    let a = store.create_tenant(&tenant_name("a")).await.expect("a").id;
    let read = store
        .create_user(&user("alice", Some(a)))
        .await
        .expect("alice");
    let first = store
        .update_user(&UserRecord {
            data: "{\"n\":1}".into(),
            ..read.clone()
        })
        .await
        .expect("first update");
    assert_eq!(first.version, 2);
    let stale = store
        .update_user(&UserRecord {
            data: "{\"n\":2}".into(),
            ..read
        })
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let stored = store.user("alice").await.expect("get").expect("exists");
    assert_eq!(stored.data, "{\"n\":1}", "the stale write changed nothing");
    assert!(matches!(
        store.update_user(&user("ghost", Some(a))).await,
        Err(StoreError::UnknownUser(_))
    ));
}

pub async fn sessions_are_found_until_they_expire_and_can_be_ended(store: &dyn Store) {
    let a = store.create_tenant(&tenant_name("a")).await.expect("a").id;
    store
        .create_user(&user("alice", Some(a)))
        .await
        .expect("alice");
    let now = Utc
        .with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("time");
    let session = SessionRecord {
        id_hash: "ab".repeat(32),
        user: "alice".into(),
        data: "{}".into(),
        expires_at: now + Duration::minutes(30),
    };
    store.put_session(&session).await.expect("put");
    assert_eq!(
        store.session(&session.id_hash, now).await.expect("get"),
        Some(session.clone())
    );
    let later = now + Duration::minutes(30);
    assert_eq!(
        store.session(&session.id_hash, later).await.expect("get"),
        None,
        "expired"
    );
    let renewed = SessionRecord {
        expires_at: later + Duration::minutes(30),
        ..session.clone()
    };
    store.put_session(&renewed).await.expect("renew");
    assert_eq!(
        store.session(&session.id_hash, later).await.expect("get"),
        Some(renewed)
    );
    store
        .delete_session(&session.id_hash)
        .await
        .expect("delete");
    assert_eq!(
        store.session(&session.id_hash, now).await.expect("get"),
        None
    );
    store
        .delete_session(&session.id_hash)
        .await
        .expect("deleting twice is fine");
    assert!(
        store
            .put_session(&SessionRecord {
                user: "ghost".into(),
                ..session
            })
            .await
            .is_err()
    );
}

pub async fn expired_sessions_are_deleted_in_bounded_sweeps(store: &dyn Store) {
    let a = store.create_tenant(&tenant_name("a")).await.expect("a").id;
    store
        .create_user(&user("alice", Some(a)))
        .await
        .expect("alice");
    let now = Utc
        .with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("time");
    let session = |n: u8, expires_at| SessionRecord {
        id_hash: format!("{n:02x}").repeat(32),
        user: "alice".into(),
        data: "{}".into(),
        expires_at,
    };
    for n in 0..3 {
        store
            .put_session(&session(n, now - Duration::minutes(1)))
            .await
            .expect("expired");
    }
    store
        .put_session(&session(9, now))
        .await
        .expect("expires now");
    let live = session(10, now + Duration::minutes(30));
    store.put_session(&live).await.expect("live");

    assert_eq!(
        store.delete_expired_sessions(now, 2).await.expect("sweep"),
        2,
        "at most the limit"
    );
    assert_eq!(
        store.delete_expired_sessions(now, 10).await.expect("sweep"),
        2,
        "the rest, the one expiring at `now` included"
    );
    assert_eq!(
        store.delete_expired_sessions(now, 10).await.expect("sweep"),
        0
    );
    let earlier = now - Duration::hours(1);
    for n in [0, 1, 2, 9] {
        assert_eq!(
            store
                .session(&session(n, now).id_hash, earlier)
                .await
                .expect("get"),
            None,
            "the row of session {n} is gone, not just expired"
        );
    }
    assert_eq!(
        store.session(&live.id_hash, now).await.expect("get"),
        Some(live),
        "a live session stays"
    );
}
