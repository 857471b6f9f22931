//! Conformance: delivery — the due-recipients query the dispatcher pages through
//! and the outcomes it records.

use chrono::{Duration, TimeZone, Utc};
use engine::model::{RecipientId, RecipientState, StateCode};
use engine::store::{Outcome, Store};

use super::{imported_campaign, outcome};

pub async fn due_recipients_page_in_id_order_and_skip_deferred_not_yet_due(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 2500).await;
    let now = Utc
        .with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("time");
    let later = RecipientState::Deferred {
        until: now + Duration::hours(1),
    };
    let earlier = RecipientState::Deferred {
        until: now - Duration::minutes(1),
    };
    let outcomes = [
        outcome(2, RecipientState::Delivered, "250"),
        outcome(3, later, "451 later"),
        outcome(4, earlier, "451 due"),
    ];
    store
        .record_outcomes(tenant, campaign, &outcomes)
        .await
        .expect("record");

    let mut seen = Vec::new();
    let mut after = RecipientId(0);
    loop {
        let batch = store
            .due_recipients(tenant, campaign, after, now, 1000)
            .await
            .expect("due");
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 1000);
        after = batch.row(batch.len() - 1).id();
        seen.extend(batch.rows().map(|r| r.id().0));
    }
    let expected: Vec<i64> = (1..=2500).filter(|i| *i != 2 && *i != 3).collect();
    assert_eq!(seen, expected);

    let first = store
        .due_recipients(tenant, campaign, RecipientId(0), now, 1)
        .await
        .expect("due");
    let row = first.row(0);
    assert_eq!(
        (row.email(), row.values().collect::<Vec<_>>()),
        ("r1@d1.example", vec!["first1", "city1"])
    );
}

/// Due retries are read by id (the engine's retry schedule): only the given
/// ids that are due come back, in id order, with their data; on a batch too.
pub async fn due_recipients_among_ids_are_those_due_in_id_order(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 6).await;
    let now = Utc
        .with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("time");
    let later = RecipientState::Deferred {
        until: now + Duration::hours(1),
    };
    let earlier = RecipientState::Deferred {
        until: now - Duration::minutes(1),
    };
    let outcomes = [
        outcome(2, RecipientState::Delivered, "250"),
        outcome(3, later, "451 later"),
        outcome(4, earlier, "451 due"),
        outcome(5, earlier, "451 due"),
    ];
    store
        .record_outcomes(tenant, campaign, &outcomes)
        .await
        .expect("record");

    let ids = [5, 3, 2, 4, 99].map(RecipientId);
    let due = store
        .due_recipients_among(tenant, campaign, &ids, now)
        .await
        .expect("due");

    let seen: Vec<i64> = due.rows().map(|r| r.id().0).collect();
    assert_eq!(seen, [4, 5], "due ones only, in id order");
    let row = due.row(1);
    assert_eq!(
        (
            row.email(),
            row.values().collect::<Vec<_>>(),
            row.attempts()
        ),
        ("r5@d2.example", vec!["first5", "city5"], 1)
    );
    let none = store
        .due_recipients_among(tenant, campaign, &[], now)
        .await
        .expect("empty");
    assert!(none.is_empty());
}

pub async fn outcomes_move_state_counters_and_events(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 10).await;
    let until = Utc
        .with_ymd_and_hms(2026, 11, 2, 0, 0, 0)
        .single()
        .expect("time");
    let report = store
        .record_outcomes(
            tenant,
            campaign,
            &[
                outcome(1, RecipientState::Delivered, "250 2.0.0 ok"),
                outcome(2, RecipientState::Deferred { until }, "451 4.7.1 try later"),
                outcome(3, RecipientState::Bounced, "550 5.1.1 no such user"),
                outcome(4, RecipientState::Failed, "gave up after 3 days"),
                Outcome {
                    attempted: false,
                    ..outcome(5, RecipientState::Suppressed, "unsubscribed")
                },
            ],
        )
        .await
        .expect("record");
    assert_eq!((report.applied, report.ignored), (5, 0));
    store
        .record_outcomes(
            tenant,
            campaign,
            &[outcome(2, RecipientState::Delivered, "250 retried")],
        )
        .await
        .expect("record");

    let c = store.counters(tenant, campaign).await.expect("counters");
    assert_eq!(
        (
            c.pending,
            c.deferred,
            c.delivered,
            c.bounced,
            c.failed,
            c.suppressed
        ),
        (5, 0, 2, 1, 1, 1)
    );
    let rows = store
        .recipients(tenant, campaign, RecipientId(0), 10)
        .await
        .expect("rows");
    assert_eq!(rows[1].state, RecipientState::Delivered);
    assert_eq!(rows[1].attempts, 2);
    assert_eq!(rows[1].last_reply.as_deref(), Some("250 retried"));
    assert_eq!(rows[2].state, RecipientState::Bounced);
    assert_eq!(rows[4].attempts, 0, "suppression is not an attempt");

    let events = store
        .events(tenant, campaign, RecipientId(2))
        .await
        .expect("events");
    let kinds: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.detail.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            (StateCode::Deferred, Some("451 4.7.1 try later")),
            (StateCode::Delivered, Some("250 retried")),
        ]
    );
}

pub async fn disallowed_transitions_and_unknown_ids_are_ignored(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 3).await;
    store
        .record_outcomes(
            tenant,
            campaign,
            &[outcome(1, RecipientState::Delivered, "250")],
        )
        .await
        .expect("record");
    let report = store
        .record_outcomes(
            tenant,
            campaign,
            &[
                outcome(1, RecipientState::Bounced, "replayed after a restart"),
                outcome(99, RecipientState::Delivered, "unknown id"),
                outcome(2, RecipientState::Pending, "pending to pending"),
                outcome(3, RecipientState::Delivered, "250"),
            ],
        )
        .await
        .expect("record");
    assert_eq!((report.applied, report.ignored), (1, 3));
    let c = store.counters(tenant, campaign).await.expect("counters");
    assert_eq!((c.pending, c.delivered, c.bounced), (1, 2, 0));
    let first = store
        .events(tenant, campaign, RecipientId(1))
        .await
        .expect("events");
    assert_eq!(first.len(), 1, "an ignored outcome writes no event");
}

pub async fn due_recipients_carry_attempts_and_the_first_attempt_time(store: &dyn Store) {
    let (tenant, campaign) = imported_campaign(store, "acme", 3).await;
    let first_at = outcome(1, RecipientState::Pending, "").at;
    let deferral = |at, detail: &str| Outcome {
        at,
        state: RecipientState::Deferred {
            until: at + Duration::minutes(10),
        },
        ..outcome(1, RecipientState::Pending, detail)
    };
    let second_at = first_at + Duration::minutes(30);
    store
        .record_outcomes(tenant, campaign, &[deferral(first_at, "451 busy")])
        .await
        .expect("first deferral");
    store
        .record_outcomes(tenant, campaign, &[deferral(second_at, "451 still busy")])
        .await
        .expect("second deferral");
    store
        .record_outcomes(
            tenant,
            campaign,
            &[Outcome {
                attempted: false,
                ..outcome(2, RecipientState::Suppressed, "unsubscribed")
            }],
        )
        .await
        .expect("suppression");

    let now = second_at + Duration::hours(1);
    let batch = store
        .due_recipients(tenant, campaign, RecipientId(0), now, 10)
        .await
        .expect("due");

    let rows: Vec<_> = batch
        .rows()
        .map(|r| (r.id().0, r.attempts(), r.first_attempt()))
        .collect();
    assert_eq!(rows, [(1, 2, Some(first_at)), (3, 0, None)]);
    let stored = store
        .recipients(tenant, campaign, RecipientId(0), 10)
        .await
        .expect("rows");
    assert_eq!(stored[0].first_attempt, Some(first_at));
    assert_eq!(
        stored[1].first_attempt, None,
        "suppression is not an attempt"
    );
}
