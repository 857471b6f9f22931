//! What receiving servers do to a campaign, scripted in the sink: greylisting,
//! hard bounces, 421 throttling and a connection lost in the middle of DATA.

use std::sync::Arc;
use std::time::Duration;

use engine::clock::ManualClock;
use engine::config;
use engine::model::{RecipientState, StateCode};

use super::harness::{Harness, Setup, people, run, sink_config};

const FROM: &str = "news@acme.example";

fn kinds(events: &[engine::store::Event]) -> Vec<StateCode> {
    events.iter().map(|e| e.kind).collect()
}

#[test]
fn a_greylisted_domain_is_deferred_until_the_clock_passes_the_retry_time_then_delivered_once() {
    run(async {
        // Arrange
        let clock = ManualClock::new(chrono::Utc::now());
        let setup = Setup {
            sink: sink_config(
                r#"
                [[faults]]
                match = "grey.example"
                kind = "greylist"
                "#,
            ),
            clock: Arc::clone(&clock) as Arc<dyn engine::clock::Clock>,
            ..Setup::default()
        };
        let h = Harness::start(setup, |c| {
            c.send.retry.first_delay = config::Duration::from_secs(600);
        })
        .await
        .expect("SQLite needs no server");
        let grey = people("g", 10, &["grey.example"]);
        let others = people("o", 30, &["d0.example", "d1.example"]);
        let campaign = h
            .campaign("grey", FROM, &[grey.clone(), others].concat())
            .await;

        // Act: the first pass
        h.launch(&campaign).await;
        let first = h
            .wait_for_counters(campaign.id, Duration::from_secs(20), |c| {
                c.pending == 0 && c.delivered == 30
            })
            .await;

        // Assert: deferred, and nothing retried while the clock stands still
        assert_eq!(first.deferred, 10, "{first:?}");
        for p in &grey {
            assert_eq!(h.sink.recorder.count_for(&p.email), 0, "{}", p.email);
        }
        let attempts = h.sink.recorder.stats().replies_transient;
        // Several dispatcher polls (50 ms) pass in this window.
        let quiet = h
            .sink_quiet(Duration::from_millis(400), Duration::from_secs(5))
            .await;
        assert_eq!(quiet, 30);
        assert_eq!(h.sink.recorder.stats().replies_transient, attempts);
        assert_eq!(h.counters(campaign.id).await.deferred, 10);

        // Act: past the retry time (10 minutes ± 20 % jitter)
        clock.advance(chrono::Duration::minutes(13));
        let done = h.settle(campaign.id, Duration::from_secs(20)).await;

        // Assert
        assert_eq!(done.delivered, 40, "{done:?}");
        for p in &grey {
            assert_eq!(h.sink.recorder.count_for(&p.email), 1, "{}", p.email);
            let events = h.events(campaign.id, &p.email).await;
            assert_eq!(
                kinds(&events),
                [StateCode::Deferred, StateCode::Delivered],
                "{}",
                p.email
            );
            let detail = events[0].detail.as_deref().unwrap_or_default();
            assert!(detail.contains("451"), "{detail}");
        }
        assert!(h.sink.recorder.duplicates().is_empty());
        h.shutdown().await;
    });
}

#[test]
fn a_550_at_rcpt_bounces_that_domains_recipients_and_the_session_carries_on() {
    run(async {
        // Arrange
        let setup = Setup {
            sink: sink_config(
                r#"
                [[faults]]
                match = "gone.example"
                kind = "reply"
                code = 550
                enhanced = "5.1.1"
                text = "No such user here"
                "#,
            ),
            ..Setup::default()
        };
        let h = Harness::start(setup, |c| c.send.max_connections_per_domain = 2)
            .await
            .expect("SQLite needs no server");
        let gone = people("x", 10, &["gone.example"]);
        let others = people("o", 40, &["d0.example", "d1.example"]);
        let campaign = h
            .campaign("bounce", FROM, &[gone.clone(), others].concat())
            .await;

        // Act
        h.launch(&campaign).await;
        let counters = h.settle(campaign.id, Duration::from_secs(20)).await;

        // Assert
        assert_eq!(
            (counters.bounced, counters.delivered),
            (10, 40),
            "{counters:?}"
        );
        for p in &gone {
            let recipient = h.recipient(campaign.id, &p.email).await;
            assert_eq!(recipient.state, RecipientState::Bounced);
            let reply = recipient.last_reply.unwrap_or_default();
            for part in ["550", "5.1.1", "No such user here"] {
                assert!(reply.contains(part), "{part:?} missing in {reply:?}");
            }
            let events = h.events(campaign.id, &p.email).await;
            assert_eq!(kinds(&events), [StateCode::Bounced]);
            assert!(
                events[0]
                    .detail
                    .as_deref()
                    .unwrap_or_default()
                    .contains("5.1.1")
            );
            assert_eq!(h.sink.recorder.count_for(&p.email), 0);
        }
        // At most 2 sessions per domain, each reused after the refused RCPT.
        let stats = h.sink.recorder.stats();
        assert!(stats.connections <= 6, "one session per message? {stats:?}");
        h.shutdown().await;
    });
}

#[test]
fn a_421_after_n_messages_lowers_the_domains_limits_and_the_campaign_still_completes() {
    run(async {
        // Arrange
        let setup = Setup {
            sink: sink_config(
                r#"
                [[faults]]
                match = "busy.example"
                at = "rcpt"
                kind = "close_after"
                messages = 5
                "#,
            ),
            ..Setup::default()
        };
        let h = Harness::start(setup, |c| {
            c.send.max_connections_per_domain = 4;
            // On the system clock: deferred recipients are due again at once.
            c.send.retry.first_delay = config::Duration::from_millis(100);
        })
        .await
        .expect("SQLite needs no server");
        let busy = people("b", 40, &["busy.example"]);
        let others = people("o", 20, &["d0.example"]);
        let campaign = h
            .campaign("throttle", FROM, &[busy.clone(), others].concat())
            .await;

        // Act
        h.launch(&campaign).await;
        let counters = h.settle(campaign.id, Duration::from_secs(30)).await;

        // Assert
        assert_eq!(counters.delivered, 60, "{counters:?}");
        assert!(h.sink.recorder.stats().replies_transient > 0);
        assert!(h.sink.recorder.duplicates().is_empty());
        let limiter = h.runtime.delivery.limits.for_domain("busy.example");
        assert!(
            limiter.connection_limit() < 4,
            "{}",
            limiter.connection_limit()
        );
        assert!(limiter.current_rate().is_finite());
        let calm = h.runtime.delivery.limits.for_domain("d0.example");
        assert_eq!(
            calm.connection_limit(),
            4,
            "other domains keep their limits"
        );
        assert!(calm.current_rate().is_infinite());
        let deferred_once = h.events(campaign.id, &busy[5].email).await;
        assert_eq!(
            deferred_once.last().map(|e| e.kind),
            Some(StateCode::Delivered)
        );
        h.shutdown().await;
    });
}

#[test]
fn a_connection_lost_in_the_middle_of_data_is_retried_and_delivered_exactly_once() {
    run(async {
        // Arrange
        let setup = Setup {
            sink: sink_config(
                r#"
                [[faults]]
                match = "*@flaky.example"
                kind = "disconnect"
                after_bytes = 200
                first_attempt_only = true
                "#,
            ),
            ..Setup::default()
        };
        let h = Harness::start(setup, |c| {
            c.send.retry.first_delay = config::Duration::from_millis(100);
        })
        .await
        .expect("SQLite needs no server");
        let flaky = people("f", 5, &["flaky.example"]);
        let others = people("o", 10, &["d0.example"]);
        let campaign = h
            .campaign("cut", FROM, &[flaky.clone(), others].concat())
            .await;

        // Act
        h.launch(&campaign).await;
        let counters = h.settle(campaign.id, Duration::from_secs(20)).await;

        // Assert
        assert_eq!(counters.delivered, 15, "{counters:?}");
        for p in &flaky {
            assert_eq!(h.sink.recorder.count_for(&p.email), 1, "{}", p.email);
            let events = h.events(campaign.id, &p.email).await;
            assert_eq!(
                kinds(&events),
                [StateCode::Deferred, StateCode::Delivered],
                "{}",
                p.email
            );
        }
        assert!(h.sink.recorder.duplicates().is_empty());
        h.shutdown().await;
    });
}
