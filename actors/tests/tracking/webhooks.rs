//! Event webhooks against a real HTTP receiver on loopback (a tokio TcpListener
//! speaking HTTP/1.1) that fails its first posts: retries deliver every event,
//! every post's signature verifies (deliveries, opens and an inbound complaint
//! alike), and a receiver that is down never stalls
//! sending.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use engine::tenant::TenantSettings;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::inbound::{swaks, verp_of};
use super::{TrackingApp, eventually};

const SECRET: &str = "webhook-secret-0123456789";

/// One post as the receiver saw it.
#[derive(Debug, Clone)]
struct Post {
    timestamp: String,
    signature: String,
    body: String,
    acknowledged: bool,
}

/// A minimal HTTP/1.1 receiver: answers 500 to the first `fail_first` posts,
/// 200 afterwards, and keeps every post.
async fn receiver(fail_first: usize) -> (SocketAddr, Arc<Mutex<Vec<Post>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let posts = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&posts);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let posts = Arc::clone(&kept);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                let head_end = loop {
                    let n = stream.read(&mut buf).await.expect("read");
                    assert!(n > 0, "request cut short");
                    request.extend_from_slice(&buf[..n]);
                    if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                };
                let head = String::from_utf8_lossy(&request[..head_end]).to_string();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            let (n, v) = l.split_once(':')?;
                            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                        })
                        .unwrap_or_default()
                };
                let length: usize = header("content-length").parse().expect("length");
                while request.len() < head_end + length {
                    let n = stream.read(&mut buf).await.expect("read body");
                    assert!(n > 0, "body cut short");
                    request.extend_from_slice(&buf[..n]);
                }
                let body =
                    String::from_utf8_lossy(&request[head_end..head_end + length]).to_string();
                let acknowledged = {
                    let mut posts = posts.lock().expect("lock");
                    let acknowledged = posts.len() >= fail_first;
                    posts.push(Post {
                        timestamp: header("x-broadside-timestamp"),
                        signature: header("x-broadside-signature"),
                        body,
                        acknowledged,
                    });
                    acknowledged
                };
                let status = if acknowledged {
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                let response =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, posts)
}

async fn set_webhook(app: &TrackingApp, url: &str) {
    let settings = TenantSettings::default()
        .with_value("tracking.webhook_url", url)
        .and_then(|s| s.with_value("tracking.webhook_secret", SECRET))
        .expect("settings");
    app.store
        .set_tenant_settings(app.tenant, &settings)
        .await
        .expect("store settings");
}

/// The events (id, event name) of the acknowledged posts.
fn acknowledged_events(posts: &[Post]) -> Vec<(i64, String)> {
    posts
        .iter()
        .filter(|p| p.acknowledged)
        .flat_map(|p| {
            let events: Vec<serde_json::Value> = serde_json::from_str(&p.body).expect("JSON array");
            events
        })
        .map(|e| {
            (
                e["id"].as_i64().expect("id"),
                e["event"].as_str().expect("event").to_owned(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn webhook_retries_after_receiver_failures_deliver_every_event_signed() {
    let app = TrackingApp::start().await;
    let (addr, posts) = receiver(3).await;
    set_webhook(&app, &format!("http://{addr}/hooks/broadside")).await;
    let people = [
        "a1@a.example",
        "a2@a.example",
        "a3@a.example",
        "a4@a.example",
        "a5@a.example",
    ];

    let campaign = app.send("spring", &people).await;
    let body = String::from_utf8_lossy(
        app.sink.recorder.messages_for("a1@a.example")[0]
            .bytes
            .as_deref()
            .expect("kept"),
    )
    .replace("=\r\n", "")
    .replace("=3D", "=");
    let pixel = body
        .split("https://t.acme.example")
        .find_map(|rest| {
            rest.starts_with("/t/o/")
                .then(|| rest.split('"').next().unwrap_or_default().to_owned())
        })
        .expect("pixel");
    let open = app.client.get(app.url(&pixel)).send().await.expect("open");
    assert!(open.status().is_success());
    let (ok, transcript) = swaks(&app, &verp_of(&app, "a2@a.example"), "arf-abuse.eml").await;
    assert!(ok, "{transcript}");

    let events = eventually("every event is acknowledged", || async {
        let events = acknowledged_events(&posts.lock().expect("lock"));
        (events.len() >= 7).then_some(events)
    })
    .await;
    let names: Vec<&str> = events.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(
        names.iter().filter(|n| **n == "delivered").count(),
        5,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| **n == "opened").count(),
        1,
        "{names:?}"
    );
    let posts = posts.lock().expect("lock").clone();
    assert!(posts.iter().filter(|p| !p.acknowledged).count() >= 3);
    // No loss: every event ever posted (failed posts included) was acknowledged.
    let acknowledged: BTreeSet<i64> = events.iter().map(|(id, _)| *id).collect();
    let offered: BTreeSet<i64> = posts
        .iter()
        .flat_map(|p| serde_json::from_str::<Vec<serde_json::Value>>(&p.body).expect("JSON"))
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(acknowledged, offered);
    assert!(posts.iter().all(|p| {
        let body: Vec<serde_json::Value> = serde_json::from_str(&p.body).expect("JSON");
        body.len() <= 3 && body.iter().all(|e| e["campaign"] == campaign.0)
    }));
    for post in &posts {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(format!("{}.{}", post.timestamp, post.body).as_bytes());
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(post.signature, format!("v1={expected}"));
    }
    let far = chrono::Utc::now() + chrono::Duration::days(1);
    let left = app
        .store
        .due_webhooks(app.tenant, far, 100)
        .await
        .expect("outbox");
    assert!(
        left.is_empty(),
        "acknowledged events leave the outbox: {left:?}"
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_webhook_receiver_that_is_down_never_stalls_sending() {
    let app = TrackingApp::start().await;
    // A port nobody listens on: every post fails at connect.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    set_webhook(&app, &format!("http://{closed}/hooks")).await;
    let people: Vec<String> = (0..40)
        .map(|i| format!("p{i}@d{}.example", i % 4))
        .collect();
    let people: Vec<&str> = people.iter().map(String::as_str).collect();

    // `send` asserts the campaign finishes (within 15 s).
    let campaign = app.send("spring", &people).await;

    let counters = app
        .store
        .counters(app.tenant, campaign)
        .await
        .expect("counters");
    assert_eq!(counters.delivered, 40);
    let far = chrono::Utc::now() + chrono::Duration::days(1);
    eventually("the events wait in the outbox", || async {
        let queued = app
            .store
            .due_webhooks(app.tenant, far, 100)
            .await
            .expect("outbox");
        (queued.len() == 40).then_some(())
    })
    .await;
    eventually("failed posts are scheduled for a retry", || async {
        let queued = app
            .store
            .due_webhooks(app.tenant, far, 100)
            .await
            .expect("outbox");
        queued.iter().any(|d| d.attempts > 0).then_some(())
    })
    .await;
    app.stop().await;
}
