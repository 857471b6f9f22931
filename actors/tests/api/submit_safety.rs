//! Batch submits that must not go wrong quietly: suppressed addresses are
//! refused per recipient, and a submit that fails midway (its database backend
//! terminated) leaves no batch, no draft and no table behind.

use std::time::Duration;

use engine::store::SuppressionReason;
use serde_json::{Value, json};
use tokio_postgres::NoTls;

use super::{Key, TestApp, code, definition};

fn body(recipients: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "template": definition(), "recipients": recipients }))
        .expect("json")
}

fn two_recipients() -> Vec<u8> {
    body(json!([
        { "email": "ann@a.example", "data": { "first_name": "Ann" } },
        { "email": "Bob@B.example", "data": { "first_name": "Bob" } },
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
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

#[actix_web::test]
async fn a_suppressed_address_is_rejected_and_never_sent() {
    let app = TestApp::spawn().await;
    let acme = app.tenant_with_key("acme").await;
    app.store
        .suppress(
            acme.tenant,
            &[("Bob@b.example".to_owned(), SuppressionReason::Unsubscribed)],
        )
        .await
        .expect("suppressed");

    let (status, answer) = submit(&app, &acme, &two_recipients(), None).await;

    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["accepted"][0]["email"], "ann@a.example", "{answer}");
    assert_eq!(answer["accepted"].as_array().map(Vec::len), Some(1));
    assert_eq!(answer["rejected"][0]["index"], 1, "{answer}");
    assert_eq!(answer["rejected"][0]["code"], "suppressed", "{answer}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    assert!(app.sink.recorder.wait_for_messages(1, deadline).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.sink.recorder.total_messages(), 1);
    assert!(app.sink.recorder.messages_for("Bob@b.example").is_empty());
    let id = answer["id"].as_i64().expect("id");
    let (_, shown) = app
        .json(&acme, "GET", &format!("/v1/messages/{id}"), b"")
        .await;
    assert_eq!(
        shown["total"], 1,
        "only accepted recipients are in the batch: {shown}"
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_batch_whose_only_recipients_are_suppressed_is_refused_whole() {
    let app = TestApp::spawn().await;
    let acme = app.tenant_with_key("acme").await;
    app.store
        .suppress(
            acme.tenant,
            &[("ann@a.example".to_owned(), SuppressionReason::Manual)],
        )
        .await
        .expect("suppressed");
    let only_ann = body(json!([{ "email": "ann@a.example", "data": { "first_name": "Ann" } }]));

    let (status, answer) = submit(&app, &acme, &only_ann, None).await;

    assert_eq!(
        (status, code(&answer)),
        (422, "nothing_accepted"),
        "{answer}"
    );
    assert_eq!(answer["rejected"][0]["code"], "suppressed", "{answer}");
    let (_, listed) = app.json(&acme, "GET", "/v1/campaigns", b"").await;
    assert_eq!(
        listed["campaigns"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    app.stop().await;
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

/// Polls `query` (one bigint/int column) until it returns a row, within 20 s.
async fn first_row(client: &tokio_postgres::Client, query: &str) -> i32 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(row) = client.query(query, &[]).await.expect("query").first() {
            return row.get(0);
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {query}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The failure is real: a second session holds the request's idempotency key
/// uncommitted, so the submit's transaction — campaign row, tables and rows
/// already written — waits on it; that backend is then terminated. The client
/// gets an error, and the store must show no trace of the batch.
#[actix_web::test]
async fn a_submit_whose_backend_dies_midway_leaves_nothing_behind() {
    let Some(app) = TestApp::spawn_pg().await else {
        return;
    };
    let acme = app.tenant_with_key("acme").await;
    let url = app.db_url().expect("a PostgreSQL app").to_owned();
    let holder = admin(&url).await;
    holder
        .batch_execute(&format!(
            "BEGIN; INSERT INTO broadside.idempotency_keys
                 (tenant_id, key, request_hash, batch_id, response)
             VALUES ({}, 'order-7', 'held', 0, '')",
            acme.tenant.0
        ))
        .await
        .expect("key held");
    let killer = admin(&url).await;

    let batch = two_recipients();
    let request = submit(&app, &acme, &batch, Some("order-7"));
    let kill = async {
        let waiting = "SELECT pid FROM pg_stat_activity
                       WHERE datname = current_database() AND wait_event_type = 'Lock'
                         AND query ILIKE '%idempotency_keys%'";
        let pid = first_row(&killer, waiting).await;
        let done: bool = killer
            .query_one("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .expect("terminate")
            .get(0);
        assert!(done, "backend {pid} terminated");
    };
    let ((status, answer), ()) = tokio::join!(request, kill);

    assert_eq!((status, code(&answer)), (503, "unavailable"), "{answer}");
    holder.batch_execute("ROLLBACK").await.expect("released");
    let schema = format!("t_{}", acme.tenant.0);
    let campaigns: i64 = killer
        .query_one(&format!("SELECT count(*) FROM {schema}.campaigns"), &[])
        .await
        .expect("campaigns")
        .get(0);
    let tables: i64 = killer
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename ~ '^c[0-9]+_'",
            &[&schema],
        )
        .await
        .expect("tables")
        .get(0);
    let rows: i64 = killer
        .query_one(
            &format!("SELECT count(*) FROM {schema}.batch_recipients"),
            &[],
        )
        .await
        .expect("batch rows")
        .get(0);
    assert_eq!(
        (campaigns, tables, rows),
        (0, 0, 0),
        "no campaign row, no per-batch table, no batch row"
    );
    let (status, retried) = submit(&app, &acme, &two_recipients(), Some("order-7")).await;
    assert_eq!(
        status, 201,
        "the retry goes through once the key is free: {retried}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    assert!(app.sink.recorder.wait_for_messages(2, deadline).await);
    app.stop().await;
}
