//! The SMTP sink spoken to over real TCP on loopback: protocol behaviour here,
//! fault injection in `faults.rs`.

mod client;
mod faults;
mod session;

use std::time::Duration;

use broadside_load_tests::sink::{self, SinkConfig, SinkHandle};
use client::Client;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

pub async fn sink_with(config: SinkConfig) -> SinkHandle {
    sink::start(config).await.expect("sink starts")
}

pub async fn greeted(sink: &SinkHandle) -> Client {
    let mut client = Client::connect(sink.addr).await;
    client.ehlo().await;
    client
}

pub fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[tokio::test]
async fn a_plain_message_is_recorded_with_its_envelope_and_unstuffed_body() {
    let sink = sink_with(SinkConfig {
        keep_bytes: true,
        ..SinkConfig::default()
    })
    .await;
    let mut client = greeted(&sink).await;
    let body = b"Subject: hi\r\n\r\n.starts with a dot\r\n..two dots\r\nend\r\n";

    let reply = client
        .deliver(
            "bounce@sender.example",
            &["a@d1.example", "b@d2.example"],
            body,
        )
        .await;

    assert_eq!(reply.code, 250, "{reply:?}");
    assert!(reply.text().starts_with("2.0.0"));
    let messages = sink.recorder.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.mail_from, "bounce@sender.example");
    assert_eq!(m.rcpt_to, vec!["a@d1.example", "b@d2.example"]);
    assert_eq!(m.bytes.as_deref(), Some(&body[..]));
    assert_eq!(m.size, body.len() as u64);
    assert_eq!(m.sha256, <[u8; 32]>::from(Sha256::digest(body)));
    assert!(!m.tls);
    assert_eq!(sink.recorder.count_for("a@d1.example"), 1);
    assert!(sink.recorder.duplicates().is_empty());
    assert_eq!(client.cmd("QUIT").await.code, 221);
}

#[tokio::test]
async fn the_ehlo_reply_advertises_the_extensions_and_size() {
    let sink = sink_with(SinkConfig {
        max_message_size: 12345,
        ..SinkConfig::default()
    })
    .await;
    let mut client = Client::connect(sink.addr).await;
    assert_eq!(client.greeting.code, 220);

    let ehlo = client.ehlo().await;

    for extension in [
        "PIPELINING",
        "8BITMIME",
        "SIZE 12345",
        "STARTTLS",
        "ENHANCEDSTATUSCODES",
    ] {
        assert!(ehlo.lines.iter().any(|l| l == extension), "{ehlo:?}");
    }
}

#[tokio::test]
async fn pipelined_mail_rcpt_rcpt_data_in_one_write_get_their_replies_in_order() {
    let sink = sink_with(SinkConfig::default()).await;
    let mut client = greeted(&sink).await;

    let replies = client
        .send_pipelined("s@x.example", &["a@y.example", "b@y.example"], b"hello\r\n")
        .await;

    let codes: Vec<u16> = replies.iter().map(|r| r.code).collect();
    assert_eq!(codes, vec![250, 250, 250, 354, 250]);
    assert_eq!(sink.recorder.total_messages(), 1);
    // A second transaction on the same connection pipelines just as well.
    let again = client
        .send_pipelined("s@x.example", &["c@y.example"], b"x\r\n")
        .await;
    assert_eq!(again.last().map(|r| r.code), Some(250));
    assert_eq!(sink.recorder.total_messages(), 2);
}

#[tokio::test]
async fn a_message_after_starttls_is_marked_tls_and_ehlo_is_required_again() {
    let sink = sink_with(SinkConfig::default()).await;
    let client = greeted(&sink).await;
    let certificate = sink.certificate.clone().expect("STARTTLS is on");

    let mut client = client.starttls(certificate).await;

    assert_eq!(client.cmd("MAIL FROM:<s@x.example>").await.code, 503);
    let ehlo = client.ehlo().await;
    assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    let reply = client
        .deliver("s@x.example", &["t@y.example"], b"secret\r\n")
        .await;
    assert_eq!(reply.code, 250);
    assert!(sink.recorder.messages()[0].tls);
}

#[tokio::test]
async fn starttls_is_refused_when_the_sink_runs_without_tls() {
    let sink = sink_with(SinkConfig {
        starttls: false,
        ..SinkConfig::default()
    })
    .await;
    let mut client = Client::connect(sink.addr).await;

    let ehlo = client.ehlo().await;

    assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS"));
    assert_eq!(client.cmd("STARTTLS").await.code, 502);
}

#[tokio::test]
async fn messages_over_the_size_limit_are_refused_at_mail_and_after_the_body() {
    let sink = sink_with(SinkConfig {
        max_message_size: 100,
        ..SinkConfig::default()
    })
    .await;
    let mut client = greeted(&sink).await;

    let declared = client.cmd("MAIL FROM:<s@x.example> SIZE=101").await;
    let undeclared = client
        .deliver("s@x.example", &["t@y.example"], &[b'a'; 200])
        .await;
    let small = client
        .deliver("s@x.example", &["t@y.example"], b"ok\r\n")
        .await;

    assert_eq!(
        (declared.code, declared.text()),
        (552, "5.3.4 Message size exceeds fixed limit".into())
    );
    assert_eq!(undeclared.code, 552);
    assert!(undeclared.text().starts_with("5.3.4"));
    assert_eq!(small.code, 250);
    assert_eq!(sink.recorder.total_messages(), 1);
}

#[tokio::test]
async fn the_end_of_data_is_found_when_the_client_writes_one_byte_at_a_time() {
    let sink = sink_with(SinkConfig {
        keep_bytes: true,
        ..SinkConfig::default()
    })
    .await;
    let mut client = greeted(&sink).await;
    assert_eq!(client.cmd("MAIL FROM:<s@x.example>").await.code, 250);
    assert_eq!(client.cmd("RCPT TO:<t@y.example>").await.code, 250);
    assert_eq!(client.cmd("DATA").await.code, 354);

    for byte in b"line\r\n..dot\r\n.\r\n" {
        client.send(&[*byte]).await;
    }

    assert_eq!(client.reply().await.map(|r| r.code), Some(250));
    let messages = sink.recorder.messages();
    assert_eq!(messages[0].bytes.as_deref(), Some(&b"line\r\n.dot\r\n"[..]));
    assert_eq!(client.cmd("NOOP").await.code, 250);
}

#[tokio::test]
async fn commands_out_of_sequence_unknown_or_too_long_get_the_right_errors() {
    let sink = sink_with(SinkConfig::default()).await;
    let mut client = Client::connect(sink.addr).await;

    let before_ehlo = client.cmd("MAIL FROM:<s@x.example>").await;
    client.ehlo().await;
    let rcpt_first = client.cmd("RCPT TO:<t@y.example>").await;
    let data_first = client.cmd("DATA").await;
    let unknown = client.cmd("EXPN staff").await;
    let too_long = client.cmd(&format!("NOOP {}", "x".repeat(5000))).await;
    let vrfy = client.cmd("VRFY someone").await;
    let after_all = client.cmd("NOOP").await;

    assert_eq!(before_ehlo.code, 503);
    assert_eq!(rcpt_first.code, 503);
    assert_eq!(data_first.code, 503);
    assert_eq!(unknown.code, 500);
    assert_eq!(
        (too_long.code, too_long.text()),
        (500, "5.5.2 Line too long".into())
    );
    assert_eq!(vrfy.code, 252);
    assert_eq!(after_all.code, 250);
}

#[tokio::test]
async fn rset_abandons_the_transaction() {
    let sink = sink_with(SinkConfig::default()).await;
    let mut client = greeted(&sink).await;
    client.cmd("MAIL FROM:<s@x.example>").await;
    client.cmd("RCPT TO:<t@y.example>").await;

    assert_eq!(client.cmd("RSET").await.code, 250);

    assert_eq!(client.cmd("DATA").await.code, 503);
    assert_eq!(client.cmd("MAIL FROM:<s@x.example>").await.code, 250);
}

#[tokio::test]
async fn waiting_for_messages_returns_as_soon_as_enough_arrived() {
    let sink = sink_with(SinkConfig::default()).await;
    let addr = sink.addr;
    let sender = tokio::spawn(async move {
        let mut client = Client::connect(addr).await;
        client.ehlo().await;
        for i in 0..3 {
            let rcpt = format!("r{i}@y.example");
            client.deliver("s@x.example", &[&rcpt], b"x\r\n").await;
        }
    });

    let reached = sink.recorder.wait_for_messages(3, soon()).await;

    assert!(reached);
    assert_eq!(sink.recorder.total_messages(), 3);
    sender.await.expect("sender");
    let short = Instant::now() + Duration::from_millis(50);
    assert!(!sink.recorder.wait_for_messages(4, short).await);
}

#[tokio::test]
async fn shutdown_tells_idle_sessions_421_and_stops_accepting() {
    let sink = sink_with(SinkConfig::default()).await;
    let addr = sink.addr;
    let mut client = greeted(&sink).await;

    sink.shutdown().await;

    assert_eq!(client.reply().await.map(|r| r.code), Some(421));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn eml_files_are_written_up_to_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = sink_with(SinkConfig {
        eml_dir: Some(dir.path().to_owned()),
        eml_limit: 2,
        ..SinkConfig::default()
    })
    .await;
    let mut client = greeted(&sink).await;

    for _ in 0..3 {
        client
            .deliver(
                "s@x.example",
                &["t@y.example"],
                b"Subject: s\r\n\r\nbody\r\n",
            )
            .await;
    }

    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2);
    let first = std::fs::read_to_string(&files[0]).expect("eml");
    assert!(first.starts_with("Return-Path: <s@x.example>\r\nDelivered-To: t@y.example\r\n"));
    assert!(first.ends_with("\r\n\r\nbody\r\n"));
    // Bytes were kept only for the files, not in the records.
    assert!(sink.recorder.messages()[0].bytes.is_none());
}
