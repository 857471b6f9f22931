//! The SMS webhook gateway against a real HTTP server on loopback, standing in
//! for the provider: the JSON body, the Authorization header, and how refusals
//! and outages are told apart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use broadside::sms::WebhookGateway;
use engine::auth::{SmsError, SmsGateway};

type Seen = Arc<Mutex<Vec<(Option<String>, serde_json::Value)>>>;

async fn provider(
    req: HttpRequest,
    body: web::Json<serde_json::Value>,
    seen: web::Data<Seen>,
) -> HttpResponse {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    seen.lock().expect("lock").push((auth, body.into_inner()));
    match req.path() {
        "/down" => HttpResponse::ServiceUnavailable().body("maintenance"),
        "/refuse" => HttpResponse::BadRequest().body("bad number"),
        _ => HttpResponse::Ok().json(serde_json::json!({"id": "m1"})),
    }
}

#[actix_web::test]
async fn the_webhook_posts_json_with_the_configured_authorization() {
    let seen: Seen = Arc::default();
    let data = web::Data::new(Arc::clone(&seen));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::post().to(provider))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind");
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let timeout = Duration::from_secs(10);
    let ok = WebhookGateway::new(&format!("http://{addr}/sms"), "Bearer t0ken", timeout)
        .expect("gateway");
    ok.send("+3612345678", "Broadside login code: 123456")
        .await
        .expect("sent");
    {
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0.as_deref(), Some("Bearer t0ken"));
        assert_eq!(
            seen[0].1,
            serde_json::json!({"to": "+3612345678", "text": "Broadside login code: 123456"})
        );
    }
    let down = WebhookGateway::new(&format!("http://{addr}/down"), "", timeout).expect("gateway");
    assert!(matches!(
        down.send("+3612345678", "x").await,
        Err(SmsError::Unavailable(_))
    ));
    let refuse =
        WebhookGateway::new(&format!("http://{addr}/refuse"), "", timeout).expect("gateway");
    assert!(matches!(
        refuse.send("+3612345678", "x").await,
        Err(SmsError::Refused(_))
    ));
    assert_eq!(
        seen.lock().expect("lock")[1].0,
        None,
        "no header when none is configured"
    );
    assert!(WebhookGateway::new("ftp://example.invalid/", "", timeout).is_err());
    handle.stop(true).await;
}
