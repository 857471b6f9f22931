//! The webhook outbox: per tenant, oldest first, gone once acknowledged, due
//! again after a failed post only when its backoff has passed.

use chrono::{Duration, Utc};
use engine::store::Store;

use super::tenant_name;

pub async fn webhook_events_wait_in_order_until_acknowledged_and_retry_later(store: &dyn Store) {
    let a = store.create_tenant(&tenant_name("a")).await.expect("a").id;
    let b = store.create_tenant(&tenant_name("b")).await.expect("b").id;
    let events: Vec<String> = (1..=3).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
    store.enqueue_webhooks(a, &events).await.expect("enqueue a");
    store
        .enqueue_webhooks(b, &[r#"{"n":9}"#.to_owned()])
        .await
        .expect("enqueue b");
    let now = Utc::now() + Duration::seconds(1);

    let due = store.due_webhooks(a, now, 10).await.expect("due");
    assert_eq!(
        due.iter().map(|d| d.event.as_str()).collect::<Vec<_>>(),
        events.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(due.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    assert!(due.iter().all(|d| d.attempts == 0));
    assert_eq!(store.due_webhooks(a, now, 2).await.expect("limit").len(), 2);

    let later = now + Duration::minutes(5);
    store
        .retry_webhooks(a, &[due[0].id, due[1].id], later)
        .await
        .expect("retry");
    store.ack_webhooks(a, &[due[2].id]).await.expect("ack");
    // Another tenant cannot acknowledge or delay these.
    store
        .ack_webhooks(b, &[due[0].id])
        .await
        .expect("foreign ack");

    assert!(
        store
            .due_webhooks(a, now, 10)
            .await
            .expect("none due")
            .is_empty()
    );
    let retried = store.due_webhooks(a, later, 10).await.expect("due later");
    assert_eq!(retried.len(), 2);
    assert!(retried.iter().all(|d| d.attempts == 1));
    let other = store.due_webhooks(b, now, 10).await.expect("b");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].event, r#"{"n":9}"#);
}
