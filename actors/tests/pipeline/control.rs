//! Operators pausing, resuming and cancelling a campaign while it sends, through
//! the stored status the command line and the API change.

use std::time::Duration;

use engine::store::CampaignStatus;
use tokio::time::Instant;

use super::harness::{Harness, Setup, people, run, sink_config};

const FROM: &str = "news@acme.example";
/// Small, so that what is already under way when a pause lands drains quickly.
const IN_FLIGHT: usize = 100;
/// Messages that may still go out after a pause or cancel is stored: the in-flight
/// window, plus what is sent while the tree reads the new status (two store reads).
const AFTER_STOP: u64 = 2 * IN_FLIGHT as u64;

/// A sink slow enough (2 ms per reply, several replies per message) that a
/// campaign of a few thousand takes seconds, and a runtime with a small window.
async fn slow_harness() -> Harness {
    let setup = Setup {
        sink: sink_config("reply_delay_ms = 2"),
        ..Setup::default()
    };
    Harness::start(setup, |c| {
        c.send.max_in_flight = IN_FLIGHT;
        c.send.max_connections_per_domain = 2;
    })
    .await
    .expect("SQLite needs no server")
}

async fn wait_for_sink(h: &Harness, messages: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    assert!(
        h.sink.recorder.wait_for_messages(messages, deadline).await,
        "the sink never reached {messages} messages: {:?}",
        h.sink.recorder.stats()
    );
}

#[test]
fn a_paused_campaign_stops_sending_and_completes_after_it_is_resumed() {
    run(async {
        // Arrange
        let h = slow_harness().await;
        let people = people("p", 2000, &["d0.example", "d1.example"]);
        let campaign = h.campaign("paused", FROM, &people).await;
        h.launch(&campaign).await;
        wait_for_sink(&h, 200).await;

        // Act
        h.set_status(campaign.id, CampaignStatus::Paused).await;
        let at_pause = h.sink.recorder.total_messages();

        // Assert: what was in flight drains, then nothing more goes out
        let paused = h
            .sink_quiet(Duration::from_millis(300), Duration::from_secs(10))
            .await;
        assert!(
            paused <= at_pause + AFTER_STOP,
            "{paused} sent, {at_pause} when paused"
        );
        let counters = h
            .wait_for_counters(campaign.id, Duration::from_secs(5), |c| {
                c.delivered == paused as i64
            })
            .await;
        assert_eq!(counters.pending, 2000 - paused as i64, "{counters:?}");
        let still = h
            .sink_quiet(Duration::from_millis(300), Duration::from_secs(10))
            .await;
        assert_eq!(still, paused, "sending went on while paused");
        assert_eq!(h.load(campaign.id).await.status, CampaignStatus::Paused);

        // Act
        h.set_status(campaign.id, CampaignStatus::Running).await;
        // Generous: a deadline, not a sleep; a starved CI machine needs it.
        let counters = h.settle(campaign.id, Duration::from_secs(120)).await;

        // Assert
        assert_eq!(counters.delivered, 2000, "{counters:?}");
        assert_eq!(h.sink.recorder.total_messages(), 2000);
        assert!(h.sink.recorder.duplicates().is_empty());
        h.wait_for_status(campaign.id, CampaignStatus::Completed)
            .await;
        h.shutdown().await;
    });
}

#[test]
fn a_cancelled_campaign_stops_sending_and_keeps_its_unsent_recipients_pending() {
    run(async {
        // Arrange
        let h = slow_harness().await;
        let people = people("c", 1000, &["d0.example", "d1.example"]);
        let campaign = h.campaign("cancelled", FROM, &people).await;
        h.launch(&campaign).await;
        wait_for_sink(&h, 100).await;

        // Act
        h.set_status(campaign.id, CampaignStatus::Cancelled).await;
        let at_cancel = h.sink.recorder.total_messages();

        // Assert
        let stopped = h
            .sink_quiet(Duration::from_millis(300), Duration::from_secs(10))
            .await;
        assert!(
            stopped <= at_cancel + AFTER_STOP,
            "{stopped} sent, {at_cancel} when cancelled"
        );
        let counters = h.counters(campaign.id).await;
        assert!(counters.pending > 0, "{counters:?}");
        // Another look at the store must not bring the campaign back.
        h.runtime.reconcile();
        let still = h
            .sink_quiet(Duration::from_millis(300), Duration::from_secs(10))
            .await;
        assert_eq!(still, stopped, "sending went on after the cancel");
        let later = h.counters(campaign.id).await;
        assert_eq!(later.pending, counters.pending, "{later:?}");
        assert_eq!(h.load(campaign.id).await.status, CampaignStatus::Cancelled);
        assert!(h.sink.recorder.duplicates().is_empty());
        h.shutdown().await;
    });
}
