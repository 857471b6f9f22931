//! Opens, clicks and unsubscribes through the real endpoints; forged tokens; the
//! suppression list keeping an unsubscribed address out of the next campaign.

use engine::model::{CampaignId, RecipientId, StateCode};
use engine::store::{TrackingEvent, TrackingKind};
use engine::tracking::{Token, TokenKind};

use super::{TRACKING_DOMAIN, TrackingApp, eventually};

const ANN: &str = "ann@a.example";
const BOB: &str = "bob@b.example";

/// The message body as sent, with quoted-printable soft breaks undone.
fn body_for(app: &TrackingApp, rcpt: &str) -> String {
    let messages = app.sink.recorder.messages_for(rcpt);
    let bytes = messages[0].bytes.as_deref().expect("kept");
    String::from_utf8_lossy(bytes)
        .replace("=\r\n", "")
        .replace("=3D", "=")
}

/// The tracking paths (`/t/c/...`) found in a message, in order.
fn paths(body: &str, kind: &str) -> Vec<String> {
    let marker = format!("https://{TRACKING_DOMAIN}/t/{kind}/");
    body.match_indices(&marker)
        .map(|(at, _)| {
            let rest = &body[at + marker.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .unwrap_or(rest.len());
            format!("/t/{kind}/{}", &rest[..end])
        })
        .collect()
}

async fn tracking_events(app: &TrackingApp, campaign: CampaignId) -> Vec<TrackingEvent> {
    app.store
        .tracking_events(app.tenant, campaign, RecipientId(1))
        .await
        .expect("events")
}

#[actix_web::test]
async fn a_sent_message_has_tracked_links_a_pixel_list_unsubscribe_and_a_verp_return_path() {
    let app = TrackingApp::start().await;

    app.send("spring", &[ANN]).await;

    let body = body_for(&app, ANN);
    let message = &app.sink.recorder.messages_for(ANN)[0];
    assert!(message.mail_from.starts_with("b-"), "{}", message.mail_from);
    assert!(message.mail_from.ends_with("@bounces.acme.example"));
    assert!(!body.contains("https://shop.example/"), "links rewritten");
    assert_eq!(paths(&body, "c").len(), 2);
    assert_eq!(paths(&body, "o").len(), 1);
    assert!(body.contains("List-Unsubscribe: <https://t.acme.example/t/u/"));
    assert!(body.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    app.stop().await;
}

#[actix_web::test]
async fn opens_and_clicks_are_recorded_with_user_agent_and_anonymized_ip() {
    let app = TrackingApp::start().await;
    let campaign = app.send("spring", &[ANN]).await;
    let body = body_for(&app, ANN);

    let open = app
        .client
        .get(app.url(&paths(&body, "o")[0]))
        .header(
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
        )
        .send()
        .await
        .expect("open");
    let click = app
        .client
        .get(app.url(&paths(&body, "c")[0]))
        .header(
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
        )
        .send()
        .await
        .expect("click");

    assert_eq!(open.status(), 200);
    assert_eq!(open.headers()["content-type"], "image/gif");
    assert!(
        open.headers()["cache-control"]
            .to_str()
            .expect("ascii")
            .contains("no-store")
    );
    assert_eq!(click.status(), 302);
    // The text part comes first: its link is the campaign's second (HTML first).
    assert_eq!(click.headers()["location"], "https://shop.example/text");
    let events = eventually("both events stored", || async {
        let events = tracking_events(&app, campaign).await;
        (events.len() == 2).then_some(events)
    })
    .await;
    assert_eq!(events[0].kind, TrackingKind::Opened);
    assert_eq!(events[0].detail.ip.as_deref(), Some("127.0.0.0"));
    assert!(
        events[0]
            .detail
            .user_agent
            .as_deref()
            .is_some_and(|ua| ua.contains("Firefox"))
    );
    assert_eq!(events[1].kind, TrackingKind::Clicked);
    assert_eq!(events[1].detail.link, Some(1));
    assert!(
        events[1].detail.machine,
        "a click right after sending is a scanner's"
    );
    app.stop().await;
}

#[actix_web::test]
async fn forged_or_repointed_tokens_get_a_plain_404() {
    let app = TrackingApp::start().await;
    let campaign = app.send("spring", &[ANN]).await;
    let click = paths(&body_for(&app, ANN), "c")[0].clone();
    let mut flipped = click.clone().into_bytes();
    let last = flipped.len() - 3;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let signed = |campaign: CampaignId, link: u32, kind: TokenKind| {
        app.key.encode(&Token {
            kind,
            tenant: app.tenant,
            campaign,
            recipient: RecipientId(1),
            link,
            issued: 0,
            url: None,
        })
    };
    let forged = [
        String::from_utf8(flipped).expect("ascii"),
        format!("/t/c/{}", signed(campaign, 7, TokenKind::Click)),
        format!(
            "/t/c/{}",
            signed(CampaignId(campaign.0 + 1), 0, TokenKind::Click)
        ),
        format!("/t/c/{}", signed(campaign, 0, TokenKind::Open)),
        "/t/c/not-a-token".to_owned(),
        "/t/u/AAAA".to_owned(),
    ];

    for path in forged {
        let response = app.client.get(app.url(&path)).send().await.expect("get");
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.text().await.expect("body").is_empty());
    }
    app.stop().await;
}

#[actix_web::test]
async fn a_get_on_the_unsubscribe_link_changes_nothing_and_one_click_suppresses() {
    let app = TrackingApp::start().await;
    let campaign = app.send("spring", &[ANN]).await;
    let unsubscribe = paths(&body_for(&app, ANN), "u")[0].clone();

    let page = app
        .client
        .get(app.url(&unsubscribe))
        .send()
        .await
        .expect("get");
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .expect("html")
            .contains("<form method=\"post\">")
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(tracking_events(&app, campaign).await.is_empty());
    assert!(
        app.store
            .suppressions(app.tenant)
            .await
            .expect("list")
            .is_empty()
    );

    let post = app
        .client
        .post(app.url(&unsubscribe))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("post");

    assert_eq!(post.status(), 200);
    let listed = eventually("the address is suppressed", || async {
        let list = app.store.suppressions(app.tenant).await.expect("list");
        (!list.is_empty()).then_some(list)
    })
    .await;
    assert_eq!(listed[0].email, ANN);
    app.stop().await;
}

#[actix_web::test]
async fn a_suppressed_address_is_not_mailed_again_in_a_later_campaign() {
    let app = TrackingApp::start().await;
    app.send("spring", &[ANN]).await;
    let unsubscribe = paths(&body_for(&app, ANN), "u")[0].clone();
    app.client
        .post(app.url(&unsubscribe))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("post");
    eventually("the address is suppressed", || async {
        let list = app.store.suppressions(app.tenant).await.expect("list");
        (!list.is_empty()).then_some(())
    })
    .await;

    let summer = app.send("summer", &[ANN, BOB]).await;

    let counters = app
        .store
        .counters(app.tenant, summer)
        .await
        .expect("counters");
    assert_eq!((counters.suppressed, counters.delivered), (1, 1));
    let ann = app
        .store
        .recipients(app.tenant, summer, RecipientId(0), 10)
        .await
        .expect("rows");
    assert_eq!(ann[0].state.code(), StateCode::Suppressed);
    assert_eq!(
        app.sink.recorder.count_for(ANN),
        1,
        "only the first campaign"
    );
    assert_eq!(app.sink.recorder.count_for(BOB), 1);
    app.stop().await;
}

#[actix_web::test]
async fn a_hard_bounce_at_rcpt_is_suppressed_and_not_mailed_again() {
    let app = TrackingApp::start_with_faults(
        "[[faults]]\nmatch = \"gone.example\"\nkind = \"reply\"\ncode = 550\nenhanced = \"5.1.1\"\ntext = \"No such user\"\n",
    )
    .await;
    let gone = "x@gone.example";

    app.send("spring", &[gone]).await;
    eventually("the bounce is suppressed", || async {
        let list = app.store.suppressions(app.tenant).await.expect("list");
        (list.len() == 1).then_some(())
    })
    .await;
    let summer = app.send("summer", &[gone, BOB]).await;

    let counters = app
        .store
        .counters(app.tenant, summer)
        .await
        .expect("counters");
    assert_eq!((counters.suppressed, counters.delivered), (1, 1));
    app.stop().await;
}
