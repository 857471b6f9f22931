//! A large campaign end to end: every recipient gets exactly one message, built
//! from that recipient's own values.

use std::time::{Duration, Instant};

use engine::store::CampaignStatus;

use super::harness::{Backend, Harness, Person, Setup, numbered_domains, people, run, sink_config};

const RECIPIENTS: usize = 10_000;

#[test]
fn a_10000_recipient_campaign_on_postgresql_is_delivered_exactly_once_with_each_recipients_values()
{
    run(delivered_exactly_once(Backend::Postgres));
}

#[test]
fn a_10000_recipient_campaign_on_sqlite_is_delivered_exactly_once_with_each_recipients_values() {
    run(delivered_exactly_once(Backend::Sqlite));
}

async fn delivered_exactly_once(backend: Backend) {
    // Arrange
    let setup = Setup {
        backend,
        sink: sink_config("keep_bytes = true"),
        ..Setup::default()
    };
    let Some(h) = Harness::start(setup, |c| c.send.max_connections_per_domain = 4).await else {
        return;
    };
    let domains = numbered_domains(20);
    let domains: Vec<&str> = domains.iter().map(String::as_str).collect();
    let people = people("u", RECIPIENTS, &domains);
    let campaign = h.campaign("big", "news@acme.example", &people).await;

    // Act
    let started = Instant::now();
    h.launch(&campaign).await;
    let counters = h.settle(campaign.id, Duration::from_secs(120)).await;
    eprintln!(
        "{backend:?}: {RECIPIENTS} messages in {:?}",
        started.elapsed()
    );

    // Assert
    assert_eq!(counters.delivered, RECIPIENTS as i64, "{counters:?}");
    assert_eq!(counters.total(), RECIPIENTS as i64, "{counters:?}");
    let recorder = &h.sink.recorder;
    assert_eq!(recorder.duplicates(), Vec::<(String, u32)>::new());
    let missing: Vec<&str> = people
        .iter()
        .filter(|p| recorder.count_for(&p.email) != 1)
        .map(|p| p.email.as_str())
        .collect();
    assert!(missing.is_empty(), "not exactly one message: {missing:?}");
    assert_eq!(recorder.total_messages(), RECIPIENTS as u64);
    for person in people.iter().step_by(97) {
        assert_personalized(&h, person);
    }
    h.wait_for_status(campaign.id, CampaignStatus::Completed)
        .await;
    h.shutdown().await;
}

/// The message to `person` carries their values: raw in the subject and the text
/// part, HTML-escaped in the HTML part.
fn assert_personalized(h: &Harness, person: &Person) {
    let messages = h.sink.recorder.messages_for(&person.email);
    assert_eq!(messages.len(), 1, "{}", person.email);
    let text = super::harness::text_of(&messages[0]);
    let subject = format!("Subject: Hello {} from {}", person.first_name, person.city);
    assert!(text.contains(&subject), "{}: {text}", person.email);
    let (plain, html) = text
        .split_once("Content-Type: text/html")
        .expect("an HTML part after the text part");
    let line = format!(
        "Hi {}, {} in {}.",
        person.first_name, person.tag, person.city
    );
    assert!(plain.contains(&line), "{}: {plain}", person.email);
    let escaped = person.tag.replace('<', "&lt;").replace('>', "&gt;");
    assert!(html.contains(&escaped), "{}: {html}", person.email);
    assert!(
        !html.contains(&person.tag),
        "{}: unescaped in {html}",
        person.email
    );
    assert!(html.contains(&format!("To {}", person.email)));
}
