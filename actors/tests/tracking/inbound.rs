//! Bounces and complaints delivered with the real `swaks` to the inbound SMTP
//! listener: realistic DSNs (Postfix, Exim, Gmail-style, Office 365) and an RFC
//! 5965 ARF report become events and suppressions; forged VERP addresses are
//! refused; the protocol's limits hold against a raw client.

use std::path::PathBuf;
use std::process::Command;

use engine::model::{CampaignId, RecipientId, StateCode};
use engine::store::{SuppressionReason, TrackingEvent, TrackingKind};
use engine::tracking::{Token, TokenKind};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{TrackingApp, eventually};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/tests/fixtures/bounces")
        .join(name)
}

/// The VERP return path the sink saw for `rcpt`.
pub(super) fn verp_of(app: &TrackingApp, rcpt: &str) -> String {
    app.sink.recorder.messages_for(rcpt)[0].mail_from.clone()
}

/// Runs swaks against the listener; returns (success, transcript).
pub(super) async fn swaks(app: &TrackingApp, to: &str, fixture_name: &str) -> (bool, String) {
    let (server, port) = (app.inbound.ip().to_string(), app.inbound.port().to_string());
    let data = format!("@{}", fixture(fixture_name).display());
    let to = to.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("swaks")
            .args(["--server", &server, "--port", &port])
            .args(["--from", "<>", "--to", &to, "--helo", "mx.remote.example"])
            .args(["--data", &data, "--timeout", "20"])
            .output()
    })
    .await
    .expect("join")
    .expect("swaks is installed (apt-get install swaks)");
    let transcript = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), transcript)
}

async fn events_of(app: &TrackingApp, campaign: CampaignId, id: i64) -> Vec<TrackingEvent> {
    app.store
        .tracking_events(app.tenant, campaign, RecipientId(id))
        .await
        .expect("events")
}

async fn suppression_of(app: &TrackingApp, email: &str) -> Option<SuppressionReason> {
    let list = app.store.suppressions(app.tenant).await.expect("list");
    list.into_iter()
        .find(|s| s.email == email)
        .map(|s| s.reason)
}

#[actix_web::test]
async fn realistic_dsns_sent_with_swaks_are_recorded_and_hard_bounces_suppressed() {
    let app = TrackingApp::start().await;
    // (recipient, fixture, status, class, suppressed)
    let cases = [
        (
            "ann@a.example",
            "postfix-user-unknown.eml",
            "5.1.1",
            "hard",
            true,
        ),
        (
            "bob@b.example",
            "exim-user-unknown.eml",
            "5.1.1",
            "hard",
            true,
        ),
        (
            "cy@c.example",
            "gmail-no-such-user.eml",
            "5.1.1",
            "hard",
            true,
        ),
        (
            "dee@d.example",
            "office365-recipient-not-found.eml",
            "5.1.10",
            "hard",
            true,
        ),
        (
            "eve@e.example",
            "exim-delayed-mailbox-full.eml",
            "4.2.2",
            "soft",
            false,
        ),
    ];
    let emails: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let campaign = app.send("spring", &emails).await;

    for (email, file, ..) in &cases {
        let (ok, transcript) = swaks(&app, &verp_of(&app, email), file).await;
        assert!(ok, "{file}: {transcript}");
        assert!(transcript.contains("<-  250 2.0.0 Ok"), "{transcript}");
    }

    for (i, (email, file, status, class, suppressed)) in cases.iter().enumerate() {
        let events = eventually("the bounce is recorded", || async {
            let events = events_of(&app, campaign, i as i64 + 1).await;
            (!events.is_empty()).then_some(events)
        })
        .await;
        assert_eq!(events.len(), 1, "{file}");
        assert_eq!(events[0].kind, TrackingKind::Bounced, "{file}");
        assert_eq!(events[0].detail.status.as_deref(), Some(*status), "{file}");
        assert_eq!(events[0].detail.class.as_deref(), Some(*class), "{file}");
        assert!(events[0].detail.diagnostic.is_some(), "{file}");
        let expected = suppressed.then_some(SuppressionReason::HardBounce);
        assert_eq!(suppression_of(&app, email).await, expected, "{file}");
    }
    // An asynchronous bounce is an event: the recipients stay delivered.
    let counters = app
        .store
        .counters(app.tenant, campaign)
        .await
        .expect("counters");
    assert_eq!((counters.delivered, counters.bounced), (5, 0));
    app.stop().await;
}

#[actix_web::test]
async fn an_arf_complaint_is_recorded_and_suppresses_the_address() {
    let app = TrackingApp::start().await;
    let campaign = app.send("spring", &["ann@a.example"]).await;

    let (ok, transcript) = swaks(&app, &verp_of(&app, "ann@a.example"), "arf-abuse.eml").await;

    assert!(ok, "{transcript}");
    let events = eventually("the complaint is recorded", || async {
        let events = events_of(&app, campaign, 1).await;
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(events[0].kind, TrackingKind::Complained);
    assert_eq!(events[0].detail.feedback_type.as_deref(), Some("abuse"));
    eventually("the address is suppressed", || async {
        (suppression_of(&app, "ann@a.example").await == Some(SuppressionReason::Complaint))
            .then_some(())
    })
    .await;
    app.stop().await;
}

#[actix_web::test]
async fn forged_and_unknown_verp_addresses_are_refused_with_550() {
    let app = TrackingApp::start().await;
    let campaign = app.send("spring", &["ann@a.example"]).await;
    let real = verp_of(&app, "ann@a.example");
    // One hex digit of the token changed: the tag no longer verifies.
    let at = real.find('@').expect("address") - 1;
    let flipped = if &real[at..=at] == "0" { "1" } else { "0" };
    let forged = format!("{}{flipped}{}", &real[..at], &real[at + 1..]);
    let unknown_campaign = format!(
        "b-{}@bounces.acme.example",
        app.key.encode_mail(&Token {
            kind: TokenKind::Bounce,
            tenant: app.tenant,
            campaign: CampaignId(9999),
            recipient: RecipientId(1),
            link: 0,
            issued: 0,
            url: None,
        })
    );

    for to in [
        forged.as_str(),
        unknown_campaign.as_str(),
        "postmaster@bounces.acme.example",
    ] {
        let (ok, transcript) = swaks(&app, to, "postfix-user-unknown.eml").await;
        assert!(!ok, "{to}: {transcript}");
        assert!(transcript.contains("<** 550 5.1.1"), "{transcript}");
    }

    // The real address still works, and nothing else was recorded.
    let (ok, transcript) = swaks(&app, &real, "postfix-user-unknown.eml").await;
    assert!(ok, "{transcript}");
    let events = eventually("the genuine bounce is recorded", || async {
        let events = events_of(&app, campaign, 1).await;
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(events.len(), 1);
    app.stop().await;
}

#[actix_web::test]
async fn an_address_that_bounced_asynchronously_is_not_mailed_in_a_later_campaign() {
    let app = TrackingApp::start().await;
    app.send("spring", &["ann@a.example", "bob@b.example"])
        .await;
    let (ok, transcript) = swaks(
        &app,
        &verp_of(&app, "ann@a.example"),
        "exim-user-unknown.eml",
    )
    .await;
    assert!(ok, "{transcript}");
    eventually("the bounce is suppressed", || async {
        suppression_of(&app, "ann@a.example").await
    })
    .await;

    let summer = app
        .send("summer", &["ann@a.example", "bob@b.example"])
        .await;

    let counters = app
        .store
        .counters(app.tenant, summer)
        .await
        .expect("counters");
    assert_eq!((counters.suppressed, counters.delivered), (1, 1));
    assert_eq!(app.sink.recorder.messages_for("ann@a.example").len(), 1);
    assert_eq!(app.sink.recorder.messages_for("bob@b.example").len(), 2);
    let ann = app
        .store
        .recipients(app.tenant, summer, RecipientId(0), 1)
        .await
        .expect("row");
    assert_eq!(ann[0].state.code(), StateCode::Suppressed);
    app.stop().await;
}

/// A raw client: reads one (possibly multi-line) reply, returns its last line.
async fn reply(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.expect("reply");
        assert!(!line.is_empty(), "the server closed the connection");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line.trim_end().to_owned();
        }
    }
}

#[actix_web::test]
async fn the_listener_enforces_order_and_size_and_keeps_the_session_in_sync() {
    let app = TrackingApp::start().await;
    app.send("spring", &["ann@a.example"]).await;
    let verp = verp_of(&app, "ann@a.example");
    let stream = TcpStream::connect(app.inbound).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    assert!(reply(&mut reader).await.starts_with("220 "));

    let mut step = async |command: &str| {
        write.write_all(command.as_bytes()).await.expect("write");
        reply(&mut reader).await
    };
    assert!(
        step("MAIL FROM:<>\r\n").await.starts_with("503"),
        "EHLO first"
    );
    assert!(step("EHLO mx.remote.example\r\n").await.starts_with("250 "));
    assert!(step("DATA\r\n").await.starts_with("503"), "RCPT first");
    assert!(
        step("MAIL FROM:<> SIZE=99999999999\r\n")
            .await
            .starts_with("552 5.3.4")
    );
    assert!(step("MAIL FROM:<>\r\n").await.starts_with("250"));
    assert!(
        step(&format!("RCPT TO:<{verp}>\r\n"))
            .await
            .starts_with("250")
    );
    assert!(step("DATA\r\n").await.starts_with("354"));
    // Over the 10 MiB limit, with a dot-stuffed line that must not end it early.
    let line = format!("{}\r\n", "x".repeat(998));
    let mut body = String::from("Subject: big\r\n\r\n..not the end\r\n");
    while body.len() < 11 * 1024 * 1024 {
        body.push_str(&line);
    }
    body.push_str(".\r\n");
    assert!(step(&body).await.starts_with("552 5.3.4"));
    assert!(step("NOOP\r\n").await.starts_with("250"), "still in sync");
    assert!(step("RSET\r\n").await.starts_with("250"));
    assert!(
        step(&format!("RCPT TO:<{verp}>\r\n"))
            .await
            .starts_with("503"),
        "MAIL first"
    );
    assert!(step("QUIT\r\n").await.starts_with("221"));
    app.stop().await;
}

/// A listener of its own with `configure`d limits, beside the app's.
async fn listener_with(
    app: &TrackingApp,
    configure: impl FnOnce(&mut engine::config::TrackingConfig),
) -> broadside::inbound::InboundServer {
    let mut config = engine::config::Config::default();
    config.tracking.inbound_listen = "127.0.0.1:0".into();
    configure(&mut config.tracking);
    broadside::inbound::start(
        &config,
        std::sync::Arc::clone(&app.store),
        app.state.tracking.key(),
        app.state.tracking.events(),
    )
    .await
    .expect("listener")
    .expect("on")
}

/// Connects and reads the first line; the stream halves keep the session open.
async fn greeting(
    addr: std::net::SocketAddr,
) -> (
    String,
    BufReader<tokio::net::tcp::OwnedReadHalf>,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let (read, write) = TcpStream::connect(addr)
        .await
        .expect("connect")
        .into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    reader.read_line(&mut line).await.expect("greeting");
    (line, reader, write)
}

#[actix_web::test]
async fn connections_over_the_limit_are_answered_421_and_silent_ones_are_closed() {
    let app = TrackingApp::start().await;
    let limited = listener_with(&app, |t| t.inbound_max_connections = 1).await;
    let (first, _held, _open) = greeting(limited.addr).await;
    assert!(first.starts_with("220 "), "{first}");
    let (second, ..) = greeting(limited.addr).await;
    assert!(second.starts_with("421 4.3.2"), "{second}");
    limited.stop();

    let impatient = listener_with(&app, |t| {
        t.inbound_timeout = engine::config::Duration::from_millis(200)
    })
    .await;
    let (hello, mut reader, _open) = greeting(impatient.addr).await;
    assert!(hello.starts_with("220 "), "{hello}");
    let mut rest = String::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reader.read_line(&mut rest),
    )
    .await
    .expect("the server closes a silent session");
    assert_eq!(closed.expect("read"), 0, "closed without a reply: {rest}");
    impatient.stop();
    app.stop().await;
}
