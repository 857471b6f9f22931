//! A tenant's own tracking and bounce domains (tenant settings `tracking.domain`,
//! `tracking.bounce_domain`) are used when its campaigns are rendered.

use engine::tenant::TenantSettings;

use super::{TRACKING_DOMAIN, TrackingApp};

#[actix_web::test]
async fn a_tenants_own_tracking_and_bounce_domains_are_used_at_render_time() {
    let app = TrackingApp::start().await;
    app.send("before", &["ann@a.example"]).await;
    let settings = TenantSettings::default()
        .with_value("tracking.domain", "links.acme-brand.example")
        .and_then(|s| s.with_value("tracking.bounce_domain", "rebound.acme-brand.example"))
        .expect("settings");
    app.store
        .set_tenant_settings(app.tenant, &settings)
        .await
        .expect("store settings");

    app.send("after", &["bob@b.example"]).await;

    let before = &app.sink.recorder.messages_for("ann@a.example")[0];
    let after = &app.sink.recorder.messages_for("bob@b.example")[0];
    let text = |m: &broadside_load_tests::sink::MessageRecord| {
        String::from_utf8_lossy(m.bytes.as_deref().expect("kept")).replace("=\r\n", "")
    };
    assert!(before.mail_from.ends_with("@bounces.acme.example"));
    assert!(text(before).contains(&format!("https://{TRACKING_DOMAIN}/t/")));
    assert!(
        after.mail_from.ends_with("@rebound.acme-brand.example"),
        "{}",
        after.mail_from
    );
    let body = text(after);
    assert!(body.contains("https://links.acme-brand.example/t/c/"));
    assert!(body.contains("https://links.acme-brand.example/t/o/"));
    assert!(body.contains("List-Unsubscribe: <https://links.acme-brand.example/t/u/"));
    assert!(!body.contains(TRACKING_DOMAIN));
    app.stop().await;
}
