//! `POST /v1/messages`, `GET /v1/messages/{id}` and its recipients:
//! per-recipient verdicts, delivery with each recipient's own data (on SQLite
//! and on PostgreSQL, where batches share the tenant's batch tables),
//! idempotent retries, also racing ones, the submit rate limit and tenant
//! isolation.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Key, TestApp, code, definition};

fn submit_body(recipients: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "template": definition(), "recipients": recipients }))
        .expect("json")
}

fn three_good_two_bad() -> Vec<u8> {
    submit_body(json!([
        { "email": "ann@a.example", "data": { "first_name": "Ann" } },
        { "email": "not-an-address", "data": { "first_name": "Eve" } },
        { "email": "bob@b.example", "data": { "first_name": "Bob" } },
        { "email": "cid@c.example", "data": { "first_name": "Cid", "town": "X" } },
        { "email": "dan@d.example", "data": {} },
        { "email": "eva@e.example", "data": { "first_name": "Eva" } },
    ]))
}

async fn submit(app: &TestApp, key: &Key, body: &[u8], idempotency: Option<&str>) -> (u16, Value) {
    let mut headers = app.sign_at(key, "POST", "/v1/messages", body, chrono::Utc::now());
    if let Some(k) = idempotency {
        headers.push(("idempotency-key".to_owned(), k.to_owned()));
    }
    let response = app
        .send_with("POST", "/v1/messages", body.to_vec(), &headers)
        .await;
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn wait_delivered(app: &TestApp, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    assert!(
        app.sink.recorder.wait_for_messages(n, deadline).await,
        "{n} messages within the deadline; got {}",
        app.sink.recorder.total_messages()
    );
}

#[actix_web::test]
async fn a_batch_lists_accepted_and_rejected_recipients_with_reasons() {
    let app = TestApp::spawn().await;
    let acme = app.tenant_with_key("acme").await;

    let (status, body) = submit(&app, &acme, &three_good_two_bad(), None).await;

    assert_eq!(status, 201, "{body}");
    let accepted: Vec<&str> = body["accepted"]
        .as_array()
        .expect("accepted")
        .iter()
        .filter_map(|a| a["email"].as_str())
        .collect();
    assert_eq!(
        accepted,
        ["ann@a.example", "bob@b.example", "eva@e.example"]
    );
    let rejected: Vec<(u64, &str)> = body["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap_or(99),
                r["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "invalid_address"),
            (3, "unknown_variable"),
            (4, "missing_data")
        ]
    );
    assert!(body["id"].is_i64(), "{body}");
    app.stop().await;
}

#[actix_web::test]
async fn a_batch_is_delivered_with_each_recipients_own_data() {
    let app = TestApp::spawn().await;
    let acme = app.tenant_with_key("acme").await;

    let (status, body) = submit(&app, &acme, &three_good_two_bad(), None).await;
    assert_eq!(status, 201, "{body}");
    wait_delivered(&app, 3).await;

    for (address, name) in [
        ("ann@a.example", "Ann"),
        ("bob@b.example", "Bob"),
        ("eva@e.example", "Eva"),
    ] {
        let messages = app.sink.recorder.messages_for(address);
        assert_eq!(messages.len(), 1, "{address}");
        let bytes = messages[0].bytes.clone().expect("kept");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.contains(&format!("Hi {name}, spring is here.")),
            "{address}: {text}"
        );
    }
    let id = body["id"].as_i64().expect("id");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let (status, shown) = app
            .json(&acme, "GET", &format!("/v1/messages/{id}"), b"")
            .await;
        assert_eq!(status, 200, "{shown}");
        if shown["counters"]["delivered"] == 3 || tokio::time::Instant::now() > deadline {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(shown["counters"]["delivered"], 3, "{shown}");
    let (_, listed) = app
        .json(&acme, "GET", "/v1/campaigns?kind=message", b"")
        .await;
    assert_eq!(listed["campaigns"][0]["kind"], "message", "{listed}");
    app.stop().await;
}

#[actix_web::test]
async fn an_idempotent_retry_returns_the_first_response_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let acme = app.tenant_with_key("acme").await;
    let body = three_good_two_bad();

    let (status, first) = submit(&app, &acme, &body, Some("order-42")).await;
    assert_eq!(status, 201, "{first}");
    wait_delivered(&app, 3).await;
    let (status, again) = submit(&app, &acme, &body, Some("order-42")).await;
    let (reused, refused) = submit(
        &app,
        &acme,
        &submit_body(json!([
            { "email": "zed@z.example", "data": { "first_name": "Zed" } }
        ])),
        Some("order-42"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(status, 201, "{again}");
    assert_eq!(again, first);
    assert_eq!(reused, 422, "{refused}");
    assert_eq!(code(&refused), "idempotency_key_reused");
    let (_, listed) = app.json(&acme, "GET", "/v1/campaigns", b"").await;
    assert_eq!(
        listed["campaigns"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(app.sink.recorder.total_messages(), 3);
    app.stop().await;
}

#[actix_web::test]
async fn past_the_submit_rate_a_tenant_gets_429_with_retry_after() {
    let app = TestApp::spawn_with(|config| {
        config.api.submit_rate = 1;
        config.api.submit_burst = 3;
    })
    .await;
    let acme = app.tenant_with_key("acme").await;
    let beta = app.tenant_with_key("beta").await;

    let (first, _) = submit(&app, &acme, &three_good_two_bad(), None).await;
    let body = three_good_two_bad();
    let headers = app.sign_at(&acme, "POST", "/v1/messages", &body, chrono::Utc::now());
    let limited = app
        .send_with("POST", "/v1/messages", body.clone(), &headers)
        .await;
    let (other, _) = submit(&app, &beta, &body, None).await;

    assert_eq!(first, 201);
    assert_eq!(limited.status().as_u16(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=3).contains(&retry), "Retry-After: {retry}");
    let error: Value = limited.json().await.expect("json");
    assert_eq!(code(&error), "rate_limited");
    assert_eq!(other, 201, "another tenant has its own bucket");
    app.stop().await;
}

#[actix_web::test]
async fn another_tenants_batch_and_template_are_not_found() {
    let app = TestApp::spawn().await;
    let alpha = app.tenant_with_key("alpha").await;
    let beta = app.tenant_with_key("beta").await;
    let (_, batch) = submit(&app, &alpha, &three_good_two_bad(), None).await;
    let id = batch["id"].as_i64().expect("id");
    let (_, campaign) = app
        .json(
            &alpha,
            "POST",
            "/v1/campaigns",
            &super::create_body("secret-plan"),
        )
        .await;
    let template_id = campaign["id"].as_i64().expect("id");
    let reuse = serde_json::to_vec(&json!({
        "template_id": template_id,
        "recipients": [{ "email": "x@x.example", "data": { "first_name": "X" } }],
    }))
    .expect("json");

    let (status, shown) = app
        .json(&beta, "GET", &format!("/v1/messages/{id}"), b"")
        .await;
    let (reused, refused) = submit(&app, &beta, &reuse, None).await;
    let (own, mine) = app
        .json(&alpha, "GET", &format!("/v1/messages/{template_id}"), b"")
        .await;

    assert_eq!((status, code(&shown)), (404, "not_found"), "{shown}");
    assert!(!shown.to_string().contains("ann@a.example"));
    assert_eq!((reused, code(&refused)), (404, "not_found"), "{refused}");
    assert_eq!(own, 404, "a campaign is not a message batch: {mine}");
    let (status, ok) = submit(&app, &alpha, &reuse, None).await;
    assert_eq!(status, 201, "the owner can reuse it: {ok}");
    app.stop().await;
}

/// On PostgreSQL batches append to the tenant's long-lived batch tables: two
/// batches sent at once each reach exactly their own recipients with their own
/// data, and each recipient is shown with its state and events.
#[actix_web::test]
async fn batches_on_postgres_are_delivered_and_each_recipient_is_shown() {
    let Some(app) = TestApp::spawn_pg().await else {
        return;
    };
    let acme = app.tenant_with_key("acme").await;
    let second = submit_body(json!([
        { "email": "ann@a.example", "data": { "first_name": "Annie" } },
        { "email": "zoe@z.example", "data": { "first_name": "Zoe" } },
    ]));

    let first_body = three_good_two_bad();
    let ((s1, first), (s2, other)) = tokio::join!(
        submit(&app, &acme, &first_body, None),
        submit(&app, &acme, &second, None)
    );
    assert_eq!((s1, s2), (201, 201), "{first} {other}");
    wait_delivered(&app, 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(app.sink.recorder.total_messages(), 5);
    let ann = app.sink.recorder.messages_for("ann@a.example");
    let mut greetings: Vec<String> = ann
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(m.bytes.as_deref().expect("kept")).into_owned();
            ["Hi Ann,", "Hi Annie,"]
                .into_iter()
                .find(|g| text.contains(g))
                .unwrap_or("neither")
                .to_owned()
        })
        .collect();
    greetings.sort();
    assert_eq!(greetings, ["Hi Ann,", "Hi Annie,"], "one message per batch");
    for (body, email, name) in [
        (&first, "bob@b.example", "Bob"),
        (&other, "zoe@z.example", "Zoe"),
    ] {
        let path = format!("/v1/messages/{}/recipients/{email}", body["id"]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let shown = loop {
            let (status, shown) = app.json(&acme, "GET", &path, b"").await;
            assert_eq!(status, 200, "{path}: {shown}");
            if shown["state"]["state"] == "delivered" || tokio::time::Instant::now() > deadline {
                break shown;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(shown["email"], email, "{shown}");
        assert_eq!(shown["values"]["first_name"], name, "{shown}");
        assert_eq!(shown["state"]["state"], "delivered", "{shown}");
        assert_eq!(shown["events"].as_array().map(Vec::len), Some(1), "{shown}");
    }
    let missing = format!("/v1/messages/{}/recipients/zoe@z.example", first["id"]);
    let (status, body) = app.json(&acme, "GET", &missing, b"").await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    app.stop().await;
}

/// Two requests racing with one `Idempotency-Key` (a client retrying before
/// the first answer): one batch is created, both get its answer, and each
/// recipient gets one message.
#[actix_web::test]
async fn racing_retries_with_one_key_create_one_batch() {
    let Some(app) = TestApp::spawn_pg().await else {
        return;
    };
    let acme = app.tenant_with_key("acme").await;
    let body = three_good_two_bad();

    let answers = futures_util::future::join_all(
        (0..4).map(|_| submit(&app, &acme, &body, Some("order-race"))),
    )
    .await;

    for (status, answer) in &answers {
        assert_eq!(*status, 201, "{answer}");
        assert_eq!(answer, &answers[0].1, "every racer gets the first answer");
    }
    wait_delivered(&app, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.sink.recorder.total_messages(), 3);
    let (_, listed) = app.json(&acme, "GET", "/v1/campaigns", b"").await;
    assert_eq!(
        listed["campaigns"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    app.stop().await;
}
