//! The engine's outbound `SmtpSession` against the sink: one session carries many
//! messages, a refused recipient does not cost the session, and replies keep their
//! class, code and text.

use broadside_load_tests::sink::SinkConfig;
use engine::smtp::{DeliveryError, SessionOptions, SmtpSession, Timeouts, TlsMode};

use super::{sink_with, soon};

fn options(tls: TlsMode) -> SessionOptions {
    SessionOptions::new("sender.test", "sink.test", tls, Timeouts::default()).expect("options")
}

fn message(to: &str) -> Vec<u8> {
    format!("From: a@sender.example\r\nTo: {to}\r\nSubject: t\r\n\r\nHello {to}\r\n.line\r\n.\r\n..two\r\n")
        .into_bytes()
}

#[tokio::test]
async fn one_session_delivers_many_messages_and_survives_a_refused_recipient() {
    many_messages_and_a_refused_recipient(true).await;
}

/// The same without PIPELINING: the client waits for each reply.
#[tokio::test]
async fn without_pipelining_one_session_also_survives_a_refused_recipient() {
    many_messages_and_a_refused_recipient(false).await;
}

async fn many_messages_and_a_refused_recipient(pipelining: bool) {
    let config = SinkConfig::from_toml(&format!(
        "keep_bytes = true\npipelining = {pipelining}\n[[faults]]\nmatch = \"*@gone.example\"\nkind = \"reply\"\ncode = 550\nenhanced = \"5.1.1\"\ntext = \"no such user\"\n",
    ))
    .expect("config");
    let sink = sink_with(config).await;
    let timeouts = Timeouts::default();
    let mut session = SmtpSession::connect(sink.addr, &options(TlsMode::Disabled))
        .await
        .expect("connects");

    let first = session
        .deliver(
            "b@sender.example",
            "ann@ok.example",
            &message("ann@ok.example"),
            &timeouts,
        )
        .await;
    let refused = session
        .deliver(
            "b@sender.example",
            "bob@gone.example",
            &message("bob@gone.example"),
            &timeouts,
        )
        .await;
    let third = session
        .deliver(
            "b@sender.example",
            "cy@ok.example",
            &message("cy@ok.example"),
            &timeouts,
        )
        .await;

    assert_eq!(first.expect("delivered").code, 250);
    match refused {
        Err(DeliveryError::Permanent {
            reply: Some(reply), ..
        }) => {
            assert_eq!(reply.code, 550);
            assert_eq!(
                reply.enhanced.map(|e| e.to_string()).as_deref(),
                Some("5.1.1")
            );
            assert!(reply.text.contains("no such user"), "{}", reply.text);
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert!(third.is_ok(), "{third:?}");
    assert!(session.is_usable());
    assert_eq!(session.delivered(), 2);
    assert!(sink.recorder.wait_for_messages(2, soon()).await);
    let stats = sink.recorder.stats();
    assert_eq!(stats.connections, 1, "one session carried everything");
    let body = &sink.recorder.messages_for("cy@ok.example")[0];
    let bytes = body.bytes.as_deref().expect("kept");
    assert!(
        bytes.ends_with(b"Hello cy@ok.example\r\n.line\r\n.\r\n..two\r\n"),
        "dot-stuffing round trip: {:?}",
        String::from_utf8_lossy(bytes)
    );
}

#[tokio::test]
async fn a_temporary_failure_is_transient_and_421_ends_the_session_as_a_throttle() {
    let config = SinkConfig::from_toml(
        "[[faults]]\nmatch = \"later.example\"\nkind = \"reply\"\ncode = 451\nenhanced = \"4.3.0\"\n\n[[faults]]\nkind = \"close_after\"\nmessages = 1\n",
    )
    .expect("config");
    let sink = sink_with(config).await;
    let timeouts = Timeouts::default();
    let mut session = SmtpSession::connect(sink.addr, &options(TlsMode::Disabled))
        .await
        .expect("connects");

    let deferred = session
        .deliver(
            "b@s.example",
            "x@later.example",
            &message("x@later.example"),
            &timeouts,
        )
        .await;
    assert!(
        matches!(
            deferred,
            Err(DeliveryError::Transient {
                throttle: false,
                ..
            })
        ),
        "{deferred:?}"
    );
    assert!(session.is_usable());

    session
        .deliver(
            "b@s.example",
            "y@ok.example",
            &message("y@ok.example"),
            &timeouts,
        )
        .await
        .expect("first message");
    let closed = session
        .deliver(
            "b@s.example",
            "z@ok.example",
            &message("z@ok.example"),
            &timeouts,
        )
        .await;
    let err = closed.expect_err("421 after one message");
    assert!(err.is_throttle(), "{err:?}");
    assert!(!session.is_usable(), "a 421 closes the session");
}

#[tokio::test]
async fn opportunistic_tls_upgrades_when_offered_and_required_tls_refuses_an_untrusted_certificate()
{
    let sink = sink_with(SinkConfig {
        starttls: true,
        ..SinkConfig::default()
    })
    .await;
    let timeouts = Timeouts::default();

    let mut session = SmtpSession::connect(sink.addr, &options(TlsMode::Opportunistic))
        .await
        .expect("connects");
    assert!(session.is_encrypted());
    session
        .deliver(
            "b@s.example",
            "t@ok.example",
            &message("t@ok.example"),
            &timeouts,
        )
        .await
        .expect("delivered");
    assert!(sink.recorder.wait_for_messages(1, soon()).await);
    assert!(
        sink.recorder.messages()[0].tls,
        "the message travelled encrypted"
    );

    let required = SmtpSession::connect(sink.addr, &options(TlsMode::Required)).await;
    assert!(
        matches!(required, Err(DeliveryError::Transient { .. })),
        "self-signed must not pass: {required:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_transient_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let result = SmtpSession::connect(addr, &options(TlsMode::Disabled)).await;
    assert!(
        matches!(result, Err(DeliveryError::Transient { .. })),
        "{result:?}"
    );
}
