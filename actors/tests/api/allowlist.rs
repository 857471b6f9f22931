//! A tenant's IP allowlist on the API: with `security.allowlist_api`, signed
//! requests from outside the list are refused (403), whatever the signature.

use super::{TestApp, code};

async fn set_allowlist(app: &TestApp, tenant: engine::model::TenantId, nets: &[&str], api: bool) {
    let mut settings = app.store.tenant_settings(tenant).await.expect("settings");
    settings.security.ip_allowlist = nets.iter().map(|n| n.parse().expect("cidr")).collect();
    settings.security.allowlist_api = api;
    app.store
        .set_tenant_settings(tenant, &settings)
        .await
        .expect("set");
}

#[actix_web::test]
async fn api_requests_from_outside_a_tenants_allowlist_are_refused() {
    // No caching of the settings, so each change applies to the next request.
    let app =
        TestApp::spawn_with(|c| c.api.key_cache_ttl = engine::config::Duration::from_millis(0))
            .await;
    let key = app.tenant_with_key("acme").await;
    let other = app.tenant_with_key("other").await;
    let (status, _) = app.json(&key, "GET", "/v1/campaigns", b"").await;
    assert_eq!(status, 200);

    set_allowlist(&app, key.tenant, &["192.0.2.0/24"], true).await;
    let (status, body) = app.json(&key, "GET", "/v1/campaigns", b"").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(code(&body), "ip_not_allowed");
    let (status, _) = app.json(&other, "GET", "/v1/campaigns", b"").await;
    assert_eq!(status, 200, "another tenant's list does not apply");

    set_allowlist(&app, key.tenant, &["192.0.2.0/24"], false).await;
    let (status, _) = app.json(&key, "GET", "/v1/campaigns", b"").await;
    assert_eq!(status, 200, "the list covers the web application only");

    set_allowlist(&app, key.tenant, &["192.0.2.0/24", "127.0.0.0/8"], true).await;
    let (status, _) = app.json(&key, "GET", "/v1/campaigns", b"").await;
    assert_eq!(status, 200, "loopback is on the list");
    app.stop().await;
}
