//! Fault injection, as the engine's retry and backoff tests will meet it.

use std::time::{Duration, Instant};

use broadside_load_tests::sink::{FaultAction, FaultRule, SinkConfig, Stage, share_point};

use crate::client::{Client, wire_body};
use crate::{greeted, sink_with};

fn rule(pattern: &str, at: Option<Stage>, action: FaultAction) -> FaultRule {
    FaultRule {
        pattern: Some(pattern.to_owned()),
        share: None,
        at,
        action,
    }
}

fn reply(code: u16, enhanced: &str) -> FaultAction {
    FaultAction::Reply {
        code,
        enhanced: Some(enhanced.to_owned()),
        text: None,
    }
}

#[tokio::test]
async fn reply_faults_hit_only_matching_addresses_at_their_stage() {
    let config = SinkConfig::from_toml(
        r#"
        [[faults]]
        match = "*@blocked.example"
        at = "mail"
        kind = "reply"
        code = 550
        enhanced = "5.7.1"
        [[faults]]
        match = "d3.example"
        kind = "reply"
        code = 451
        enhanced = "4.7.1"
        text = "Slow down"
        [[faults]]
        match = "*@nodata.example"
        at = "data"
        kind = "reply"
        code = 554
        [[faults]]
        match = "full.example"
        at = "end_of_data"
        kind = "reply"
        code = 552
        enhanced = "5.2.2"
        "#,
    )
    .expect("scenario parses");
    let sink = sink_with(config).await;
    let mut client = greeted(&sink).await;

    let at_mail = client
        .deliver("x@blocked.example", &["a@ok.example"], b"m")
        .await;
    let at_rcpt = client
        .deliver("s@ok.example", &["a@d3.example"], b"m")
        .await;
    let at_data = client
        .deliver("s@ok.example", &["a@nodata.example"], b"m")
        .await;
    let at_end = client
        .deliver("s@ok.example", &["a@full.example"], b"m")
        .await;
    let untouched = client
        .deliver("s@ok.example", &["a@d4.example"], b"m")
        .await;

    assert_eq!(
        (at_mail.code, at_mail.text()),
        (550, "5.7.1 Injected fault".into())
    );
    assert_eq!(
        (at_rcpt.code, at_rcpt.text()),
        (451, "4.7.1 Slow down".into())
    );
    assert_eq!(
        (at_data.code, at_data.text()),
        (554, "5.0.0 Injected fault".into())
    );
    assert_eq!(
        (at_end.code, at_end.text()),
        (552, "5.2.2 Injected fault".into())
    );
    assert_eq!(untouched.code, 250);
    assert_eq!(sink.recorder.total_messages(), 1);
    assert_eq!(sink.recorder.count_for("a@d4.example"), 1);
    let stats = sink.recorder.stats();
    assert_eq!((stats.replies_transient, stats.replies_permanent), (1, 3));
}

#[tokio::test]
async fn a_connection_gets_421_and_is_closed_after_n_messages() {
    let sink = sink_with(SinkConfig {
        faults: vec![FaultRule {
            pattern: None,
            share: None,
            at: None,
            action: FaultAction::CloseAfter { messages: 2 },
        }],
        ..SinkConfig::default()
    })
    .await;
    let mut client = greeted(&sink).await;

    let first = client.deliver("s@x.example", &["a@y.example"], b"1").await;
    let second = client.deliver("s@x.example", &["a@y.example"], b"2").await;
    let third = client.cmd("MAIL FROM:<s@x.example>").await;

    assert_eq!((first.code, second.code), (250, 250));
    assert_eq!(
        (third.code, third.text()),
        (
            421,
            "4.7.0 Too many messages on this connection, closing".into()
        )
    );
    assert!(
        client.reply().await.is_none(),
        "the sink closed the connection"
    );
    assert_eq!(sink.recorder.count_for("a@y.example"), 2);
    assert_eq!(
        sink.recorder.duplicates(),
        vec![("a@y.example".to_owned(), 2)]
    );
    // A new connection starts counting again.
    let mut again = greeted(&sink).await;
    assert_eq!(
        again
            .deliver("s@x.example", &["b@y.example"], b"3")
            .await
            .code,
        250
    );
}

#[tokio::test]
async fn a_delay_rule_slows_every_later_reply_batch_of_matching_connections() {
    let delay = Duration::from_millis(150);
    let sink = sink_with(SinkConfig {
        faults: vec![rule(
            "*@slow.example",
            None,
            FaultAction::Delay {
                millis: delay.as_millis() as u64,
            },
        )],
        ..SinkConfig::default()
    })
    .await;
    let mut client = greeted(&sink).await;
    client.cmd("MAIL FROM:<s@x.example>").await;

    let started = Instant::now();
    let rcpt = client.cmd("RCPT TO:<a@slow.example>").await;
    let noop = client.cmd("NOOP").await;

    assert_eq!((rcpt.code, noop.code), (250, 250));
    assert!(started.elapsed() >= 2 * delay, "{:?}", started.elapsed());
}

#[tokio::test]
async fn the_global_delay_costs_one_round_trip_per_pipelined_batch() {
    let delay = Duration::from_millis(100);
    let sink = sink_with(SinkConfig {
        reply_delay_ms: delay.as_millis() as u64,
        ..SinkConfig::default()
    })
    .await;
    let mut client = greeted(&sink).await;

    let started = Instant::now();
    let replies = client
        .send_pipelined("s@x.example", &["a@y.example", "b@y.example"], b"x")
        .await;
    let elapsed = started.elapsed();

    assert_eq!(replies.last().map(|r| r.code), Some(250));
    // Two round trips (envelope + DATA, then the body), not five replies.
    assert!(elapsed >= 2 * delay, "{elapsed:?}");
    assert!(elapsed < 5 * delay, "{elapsed:?}");
}

#[tokio::test]
async fn a_disconnect_in_the_middle_of_data_leaves_nothing_recorded() {
    let sink = sink_with(SinkConfig {
        faults: vec![rule(
            "cut.example",
            None,
            FaultAction::Disconnect {
                after_bytes: 100,
                first_attempt_only: false,
            },
        )],
        ..SinkConfig::default()
    })
    .await;
    let mut client = greeted(&sink).await;
    client.cmd("MAIL FROM:<s@x.example>").await;
    client.cmd("RCPT TO:<a@cut.example>").await;
    assert_eq!(client.cmd("DATA").await.code, 354);

    client.send(&wire_body(&[b'z'; 1000])).await;

    assert!(
        client.reply().await.is_none(),
        "no reply, just a closed socket"
    );
    assert_eq!(sink.recorder.total_messages(), 0);
    assert_eq!(sink.recorder.count_for("a@cut.example"), 0);
}

#[tokio::test]
async fn a_first_attempt_only_disconnect_cuts_each_recipient_once_and_accepts_the_retry() {
    let config = SinkConfig::from_toml(
        r#"
        [[faults]]
        match = "*@cut.example"
        kind = "disconnect"
        after_bytes = 10
        first_attempt_only = true
        "#,
    )
    .expect("scenario parses");
    let sink = sink_with(config).await;
    let body = [b'z'; 1000];

    for rcpt in ["a@cut.example", "b@cut.example"] {
        let mut first = greeted(&sink).await;
        first.cmd("MAIL FROM:<s@x.example>").await;
        first.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        assert_eq!(first.cmd("DATA").await.code, 354);
        first.send(&wire_body(&body)).await;
        assert!(first.reply().await.is_none(), "{rcpt}: cut off");
    }
    let retry = greeted(&sink)
        .await
        .deliver("s@x.example", &["a@cut.example"], &body)
        .await;

    assert_eq!(retry.code, 250);
    assert_eq!(sink.recorder.count_for("a@cut.example"), 1);
    assert_eq!(sink.recorder.count_for("b@cut.example"), 0);
}

#[tokio::test]
async fn greylisting_fails_the_first_attempt_of_a_pair_and_accepts_the_retry() {
    let sink = sink_with(SinkConfig {
        faults: vec![rule("grey.example", None, FaultAction::Greylist)],
        ..SinkConfig::default()
    })
    .await;

    let first = greeted(&sink)
        .await
        .deliver("s@x.example", &["a@grey.example"], b"m")
        .await;
    let retry = greeted(&sink)
        .await
        .deliver("s@x.example", &["a@grey.example"], b"m")
        .await;
    let other_sender = greeted(&sink)
        .await
        .deliver("t@x.example", &["a@grey.example"], b"m")
        .await;

    assert_eq!(
        (first.code, first.text()),
        (451, "4.7.1 Greylisted, try again later".into())
    );
    assert_eq!(retry.code, 250);
    assert_eq!(other_sender.code, 451);
    assert_eq!(sink.recorder.total_messages(), 1);
}

/// RCPT codes for each recipient, in one transaction that is then reset.
async fn rcpt_codes(client: &mut Client, rcpts: &[String]) -> Vec<u16> {
    assert_eq!(client.cmd("MAIL FROM:<s@x.example>").await.code, 250);
    let mut codes = Vec::new();
    for rcpt in rcpts {
        codes.push(client.cmd(&format!("RCPT TO:<{rcpt}>")).await.code);
    }
    client.cmd("RSET").await;
    codes
}

#[tokio::test]
async fn share_faults_fail_the_same_recipients_on_every_run_and_tempfails_only_once() {
    let config = SinkConfig {
        permfail_share: 0.1,
        tempfail_share: 0.2,
        ..SinkConfig::default()
    };
    let rcpts: Vec<String> = (0..300).map(|i| format!("user{i}@load.example")).collect();
    let expected: Vec<u16> = rcpts
        .iter()
        .map(|r| match share_point(r) {
            p if p < 0.1 => 550,
            p if p < 0.3 => 451,
            _ => 250,
        })
        .collect();
    let first_run = sink_with(config.clone()).await;
    let second_run = sink_with(config).await;

    let first = rcpt_codes(&mut greeted(&first_run).await, &rcpts).await;
    let retry = rcpt_codes(&mut greeted(&first_run).await, &rcpts).await;
    let other_run = rcpt_codes(&mut greeted(&second_run).await, &rcpts).await;

    assert_eq!(first, expected);
    assert_eq!(other_run, expected);
    let permanent = expected.iter().filter(|c| **c == 550).count();
    let temporary = expected.iter().filter(|c| **c == 451).count();
    assert!((15..=45).contains(&permanent), "{permanent}");
    assert!((35..=85).contains(&temporary), "{temporary}");
    let retry_expected: Vec<u16> = expected
        .iter()
        .map(|c| if *c == 451 { 250 } else { *c })
        .collect();
    assert_eq!(retry, retry_expected);
}

#[tokio::test]
async fn a_rule_with_a_share_picks_a_stable_subset_of_its_domain() {
    let config = SinkConfig {
        faults: vec![FaultRule {
            share: Some(0.5),
            ..rule("half.example", None, reply(550, "5.1.1"))
        }],
        ..SinkConfig::default()
    };
    let rcpts: Vec<String> = (0..100).map(|i| format!("u{i}@half.example")).collect();
    let one = sink_with(config.clone()).await;
    let two = sink_with(config).await;

    let a = rcpt_codes(&mut greeted(&one).await, &rcpts).await;
    let b = rcpt_codes(&mut greeted(&two).await, &rcpts).await;

    assert_eq!(a, b);
    let failed = a.iter().filter(|c| **c == 550).count();
    assert!((30..=70).contains(&failed), "{failed}");
}
