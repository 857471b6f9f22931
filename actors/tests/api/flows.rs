//! Authentication, the whole campaign flow, and every error class.

use std::time::Duration;

use chrono::Utc;

use super::{CSV, TestApp, code, create_body, message};

#[actix_web::test]
async fn health_checks_need_no_signature_and_a_signed_request_is_accepted() {
    let app = TestApp::spawn().await;
    let acme = app.tenant_with_key("acme").await;

    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let (status, body) = app.json(&acme, "GET", "/v1/campaigns", b"").await;

    assert_eq!(health.status(), 200);
    assert_eq!(ready.status(), 200);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["campaigns"], serde_json::json!([]));
    app.stop().await;
}

#[actix_web::test]
async fn bad_credentials_get_401_with_the_escher_error_text() {
    let app = TestApp::spawn().await;
    let acme = app.tenant_with_key("acme").await;
    let path = "/v1/campaigns";
    let mut wrong = acme.clone();
    wrong.secret = engine::auth::escher::Secret::new("not-the-secret");
    let mut unknown = acme.clone();
    unknown.key_id = "acme_0000000000000000".into();
    let stale = app.sign_at(
        &acme,
        "GET",
        path,
        b"",
        Utc::now() - chrono::Duration::minutes(10),
    );

    let unsigned = app.send_with("GET", path, Vec::new(), &[]).await;
    let expired = app.send_with("GET", path, Vec::new(), &stale).await;
    let forged = app.send(&wrong, "GET", path, b"").await;
    let nobody = app.send(&unknown, "GET", path, b"").await;
    let tampered = {
        let headers = app.sign_at(&acme, "POST", path, b"{}", Utc::now());
        app.send_with("POST", path, b"{ }".to_vec(), &headers).await
    };
    app.state
        .keys
        .revoke(acme.tenant, &acme.key_id)
        .await
        .expect("revoke");
    let revoked = app.send(&acme, "GET", path, b"").await;

    for (response, text) in [
        (unsigned, "The x-ems-auth header is missing"),
        (
            expired,
            "The request date is not within the accepted time range",
        ),
        (forged, "The signatures do not match"),
        (nobody, "Invalid Escher key"),
        (tampered, "The signatures do not match"),
        (revoked, "Invalid Escher key"),
    ] {
        assert_eq!(response.status(), 401, "{text}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert!(
            message(&body).eq_ignore_ascii_case(text),
            "{body} vs {text}"
        );
        assert!(!code(&body).is_empty(), "{body}");
    }
    app.stop().await;
}

async fn campaign_flow(app: &TestApp) {
    let acme = app.tenant_with_key("acme").await;

    let (status, created) = app
        .json(&acme, "POST", "/v1/campaigns", &create_body("spring"))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().expect("id");
    let base = format!("/v1/campaigns/{id}");
    let (status, uploaded) = app
        .json(&acme, "PUT", &format!("{base}/recipients"), CSV.as_bytes())
        .await;
    assert_eq!(status, 200, "{uploaded}");
    assert_eq!(
        (uploaded["loaded"].as_u64(), uploaded["rejected"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(uploaded["rejections"][0]["line"], 4, "{uploaded}");
    let (status, launched) = app
        .json(&acme, "POST", &format!("{base}/launch"), b"")
        .await;
    assert_eq!(status, 200, "{launched}");
    assert_eq!(launched["status"], "running");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let stats = loop {
        let (status, stats) = app.json(&acme, "GET", &format!("{base}/stats"), b"").await;
        assert_eq!(status, 200, "{stats}");
        if stats["counters"]["delivered"] == 3 || tokio::time::Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stats["counters"]["delivered"], 3, "{stats}");
    assert_eq!(app.sink.recorder.total_messages(), 3);

    let (status, shown) = app.json(&acme, "GET", &base, b"").await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["columns"], serde_json::json!(["first_name"]));
    assert!(shown["launched_at"].is_string(), "{shown}");
    let (status, ann) = app
        .json(
            &acme,
            "GET",
            &format!("{base}/recipients/ann@a.example"),
            b"",
        )
        .await;
    assert_eq!(status, 200, "{ann}");
    assert_eq!(ann["values"]["first_name"], "Ann");
    assert_eq!(ann["attempts"], 1);
    assert!(
        !ann["events"].as_array().expect("events").is_empty(),
        "{ann}"
    );
    let (status, listed) = app.json(&acme, "GET", "/v1/campaigns", b"").await;
    assert_eq!(
        (status, listed["campaigns"][0]["id"].as_i64()),
        (200, Some(id))
    );
}

#[actix_web::test]
async fn a_campaign_goes_from_creation_to_delivery_over_the_api() {
    let app = TestApp::spawn().await;
    campaign_flow(&app).await;
    app.stop().await;
}

#[actix_web::test]
async fn a_campaign_goes_from_creation_to_delivery_over_the_api_on_postgres() {
    let Some(app) = TestApp::spawn_pg().await else {
        return;
    };
    campaign_flow(&app).await;
    app.stop().await;
}

#[actix_web::test]
async fn pause_resume_and_cancel_move_a_running_campaign() {
    let app = TestApp::spawn_with(|c| c.send.max_rate_per_domain = 0.5).await;
    let acme = app.tenant_with_key("acme").await;
    let (_, created) = app
        .json(&acme, "POST", "/v1/campaigns", &create_body("slow"))
        .await;
    let base = format!("/v1/campaigns/{}", created["id"]);
    let csv: String = std::iter::once("email,first_name\n".to_owned())
        .chain((0..20).map(|i| format!("r{i}@a.example,R{i}\n")))
        .collect();
    app.json(&acme, "PUT", &format!("{base}/recipients"), csv.as_bytes())
        .await;
    app.json(&acme, "POST", &format!("{base}/launch"), b"")
        .await;

    let (_, paused) = app.json(&acme, "POST", &format!("{base}/pause"), b"").await;
    let (_, resumed) = app
        .json(&acme, "POST", &format!("{base}/resume"), b"")
        .await;
    let (_, cancelled) = app
        .json(&acme, "POST", &format!("{base}/cancel"), b"")
        .await;
    let (status, again) = app
        .json(&acme, "POST", &format!("{base}/resume"), b"")
        .await;

    assert_eq!(paused["status"], "paused", "{paused}");
    assert_eq!(resumed["status"], "running", "{resumed}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!((status, code(&again)), (409, "conflict"), "{again}");
    app.stop().await;
}

#[actix_web::test]
async fn each_error_class_has_its_status_and_the_json_error_shape() {
    let app = TestApp::spawn_with(|c| c.api.max_body = engine::config::ByteSize(4096)).await;
    let acme = app.tenant_with_key("acme").await;

    let (malformed, m_body) = app
        .json(&acme, "POST", "/v1/campaigns", b"{\n  \"name\": ,\n}")
        .await;
    let huge = vec![b' '; 5000];
    let (too_large, l_body) = app.json(&acme, "POST", "/v1/campaigns", &huge).await;
    let mut bad = super::definition();
    bad["html"] = "<p>\n{{#if first_name}}unclosed</p>".into();
    let body = serde_json::json!({"name": "broken", "definition": bad});
    let (syntax, s_body) = app
        .json(&acme, "POST", "/v1/campaigns", body.to_string().as_bytes())
        .await;
    let mut bad = super::definition();
    bad["from"]["address"] = "not an address".into();
    let body = serde_json::json!({"name": "badfrom", "definition": bad});
    let (address, a_body) = app
        .json(&acme, "POST", "/v1/campaigns", body.to_string().as_bytes())
        .await;
    let (_, created) = app
        .json(&acme, "POST", "/v1/campaigns", &create_body("vars"))
        .await;
    let base = format!("/v1/campaigns/{}", created["id"]);
    let (duplicate, d_body) = app
        .json(&acme, "POST", "/v1/campaigns", &create_body("vars"))
        .await;
    app.json(
        &acme,
        "PUT",
        &format!("{base}/recipients"),
        b"email,city\nann@a.example,Oslo\n",
    )
    .await;
    let (unknown_var, u_body) = app
        .json(&acme, "POST", &format!("{base}/launch"), b"")
        .await;
    let (missing, n_body) = app.json(&acme, "GET", "/v1/campaigns/999999", b"").await;
    let (no_file, i_body) = app
        .json(&acme, "POST", &format!("{base}/imports"), b"{}")
        .await;

    assert_eq!(
        (malformed, code(&m_body)),
        (400, "malformed_json"),
        "{m_body}"
    );
    assert!(message(&m_body).contains("line 2 column"), "{m_body}");
    assert_eq!((too_large, code(&l_body)), (413, "too_large"), "{l_body}");
    assert_eq!((syntax, code(&s_body)), (422, "template_error"), "{s_body}");
    assert!(message(&s_body).contains("line"), "{s_body}");
    assert!(message(&s_body).contains("column"), "{s_body}");
    assert_eq!(address, 422, "{a_body}");
    assert_eq!((duplicate, code(&d_body)), (409, "conflict"), "{d_body}");
    assert_eq!(
        (unknown_var, code(&u_body)),
        (422, "template_error"),
        "{u_body}"
    );
    assert!(message(&u_body).contains("first_name"), "{u_body}");
    assert!(message(&u_body).contains("line 1, column"), "{u_body}");
    assert_eq!((missing, code(&n_body)), (404, "not_found"), "{n_body}");
    assert_eq!((no_file, code(&i_body)), (422, "invalid"), "{i_body}");
    app.stop().await;
}
