//! Tenant isolation: tenant B's key with tenant A's campaign id or export file
//! name gets 404 on every endpoint (never 403, so existence does not leak) and
//! no byte of A's data.

use super::{CSV, TestApp, code, create_body, exports::put_export};

#[actix_web::test]
async fn another_tenants_ids_are_not_found_on_every_endpoint() {
    let app = TestApp::spawn().await;
    let alpha = app.tenant_with_key("alpha").await;
    let beta = app.tenant_with_key("beta").await;
    let (_, created) = app
        .json(&alpha, "POST", "/v1/campaigns", &create_body("secret-plan"))
        .await;
    let id = created["id"].as_i64().expect("id");
    let base = format!("/v1/campaigns/{id}");
    let (status, _) = app
        .json(&alpha, "PUT", &format!("{base}/recipients"), CSV.as_bytes())
        .await;
    assert_eq!(status, 200);
    put_export(
        &app,
        "alpha",
        "alpha-results.csv",
        b"email\nsecret-export@acme.example\n",
    );
    let batch = serde_json::json!({
        "template": super::definition(),
        "recipients": [{ "email": "ann@a.example", "data": { "first_name": "Ann" } }],
    });
    let (status, submitted) = app
        .json(&alpha, "POST", "/v1/messages", batch.to_string().as_bytes())
        .await;
    assert_eq!(status, 201, "{submitted}");
    let batch = format!("/v1/messages/{}", submitted["id"]);
    let endpoints: Vec<(&str, String, &[u8])> = vec![
        ("GET", batch.clone(), b""),
        ("GET", format!("{batch}/recipients/ann@a.example"), b""),
        ("GET", base.clone(), b""),
        ("PUT", format!("{base}/recipients"), CSV.as_bytes()),
        ("POST", format!("{base}/imports"), b"{}"),
        ("POST", format!("{base}/launch"), b""),
        ("POST", format!("{base}/pause"), b""),
        ("POST", format!("{base}/resume"), b""),
        ("POST", format!("{base}/cancel"), b""),
        ("GET", format!("{base}/stats"), b""),
        ("GET", format!("{base}/recipients/ann@a.example"), b""),
        ("GET", "/v1/exports/alpha-results.csv".to_owned(), b""),
        (
            "POST",
            "/v1/exports/alpha-results.csv/url?expires=600".to_owned(),
            b"",
        ),
    ];

    for (method, path, body) in &endpoints {
        let response = app.send(&beta, method, path, body).await;
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");

        assert_eq!(status, 404, "{method} {path}: {text}");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json error");
        assert_eq!(code(&json), "not_found", "{text}");
        for secret in [
            "secret-plan",
            "ann@a.example",
            "Ann",
            "first_name",
            "acme.example",
            "secret-export",
        ] {
            // The recipient path names the address itself; the body must not.
            let echoed = path.contains(secret) && secret == "ann@a.example";
            assert!(
                echoed || !text.contains(secret),
                "{method} {path} leaks {secret}: {text}"
            );
        }
    }
    let (_, listed) = app.json(&beta, "GET", "/v1/campaigns", b"").await;
    assert_eq!(listed["campaigns"], serde_json::json!([]));
    let (_, exports) = app.json(&beta, "GET", "/v1/exports", b"").await;
    assert_eq!(exports["files"], serde_json::json!([]), "{exports}");
    let (_, mine) = app.json(&alpha, "GET", &base, b"").await;
    assert_eq!(
        mine["status"], "draft",
        "nothing B did changed A's campaign: {mine}"
    );
    assert_eq!(mine["counters"]["pending"], 3);
    app.stop().await;
}
