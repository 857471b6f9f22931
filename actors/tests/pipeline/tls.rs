//! STARTTLS policy per destination: opportunistic by default, and required for the
//! domains configured so, where a certificate that does not verify defers the mail
//! instead of sending it in the clear or to an unauthenticated server.

use std::time::Duration;

use broadside_load_tests::sink::SinkConfig;

use super::harness::{Harness, Setup, people, run};

#[test]
fn a_domain_that_requires_tls_is_deferred_when_the_certificate_does_not_verify() {
    run(async {
        // Arrange: the sink offers STARTTLS with a self-signed certificate.
        let setup = Setup {
            sink: SinkConfig {
                starttls: true,
                ..SinkConfig::default()
            },
            ..Setup::default()
        };
        let h = Harness::start(setup, |c| {
            c.send.tls = "opportunistic".into();
            c.send.tls_required_domains = vec!["secure.example".into()];
        })
        .await
        .expect("SQLite needs no server");
        let secure = people("s", 5, &["secure.example"]);
        let others = people("o", 10, &["d0.example"]);
        let campaign = h
            .campaign(
                "tls",
                "news@acme.example",
                &[secure.clone(), others.clone()].concat(),
            )
            .await;

        // Act
        h.launch(&campaign).await;
        let counters = h
            .wait_for_counters(campaign.id, Duration::from_secs(20), |c| {
                c.pending == 0 && c.delivered == 10
            })
            .await;

        // Assert: opportunistic TLS delivered the others, encrypted; the required
        // domain got nothing and waits for a retry.
        assert_eq!(counters.deferred, 5, "{counters:?}");
        for p in &secure {
            assert_eq!(h.sink.recorder.count_for(&p.email), 0, "{}", p.email);
            let recipient = h.recipient(campaign.id, &p.email).await;
            let reply = recipient.last_reply.unwrap_or_default();
            assert!(
                reply.to_lowercase().contains("tls") || reply.contains("certificate"),
                "{reply}"
            );
        }
        assert!(
            h.sink.recorder.messages().iter().all(|m| m.tls),
            "every delivered message went encrypted"
        );
        h.shutdown().await;
    });
}
