//! A user's own account: registering an authenticator app (secret and URI,
//! confirmation with a code, recovery codes shown once, then used to log in),
//! and the end of sessions: an expired session's row is deleted by the server's
//! periodic sweep, or at once when its cookie comes back.

use std::path::Path;
use std::time::{Duration, Instant};

use broadside::http::webapp::session::hash_id;
use chrono::Utc;
use engine::auth::{Role, otp};

use super::super::TestApp;
use super::{Browser, PASSWORD, add_user, audit, csrf_of, log_in, sms_path, unescape, web_app};

fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {html}"))
        + start.len();
    let to = html[from..].find(end).expect("end") + from;
    &html[from..to]
}

#[actix_web::test]
async fn a_user_registers_an_authenticator_app_and_logs_in_with_a_recovery_code() {
    let (_dir, sms) = sms_path();
    let app = web_app(&sms).await;
    let alpha = app.tenant_with_key("alpha").await;
    add_user(&app, "carol", Some((alpha.tenant, "alpha")), Role::Member).await;
    let mut carol = log_in(&app, "carol").await;

    let (status, html, _) = carol.get("/web/totp").await;
    assert_eq!(status, 200, "{html}");
    let secret = between(&html, "id=\"totp-secret\">", "<").to_owned();
    let uri = unescape(between(&html, "id=\"totp-uri\" class=\"secret\">", "<"));
    assert!(
        uri.starts_with("otpauth://totp/Broadside:carol?secret=") && uri.contains(&secret),
        "{uri}"
    );
    assert!(
        html.contains("id=\"totp-qr\"><svg") && !html.contains("<?xml"),
        "the URI as an inline QR code: {html}"
    );
    let (_, again, _) = carol.get("/web/totp").await;
    assert!(
        again.contains(&secret),
        "a reload keeps the secret being scanned"
    );
    let csrf = csrf_of(&html);

    let (status, body, _) = carol
        .post("/web/totp", &[("csrf", &csrf), ("code", "000000x")])
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains(&secret), "the same secret to try again");
    let now = u64::try_from(Utc::now().timestamp()).expect("after 1970");
    let code = otp::totp_code(&secret, now).expect("code");
    let (status, html, _) = carol
        .post("/web/totp", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(status, 200, "{html}");
    let list = between(&html, "id=\"recovery-codes\">", "</ul>");
    let codes: Vec<&str> = list
        .split("<code>")
        .skip(1)
        .map(|c| c.split('<').next().expect("code"))
        .collect();
    assert_eq!(codes.len(), 10, "{list}");
    let (_, html, _) = carol.get("/web/totp").await;
    assert!(html.contains("id=\"registered\""), "{html}");
    assert!(!html.contains(codes[0]), "recovery codes are shown once");

    // The next login asks for the app's code; a recovery code works instead.
    let mut again = Browser::new(&app);
    let csrf = again.csrf("/web/login").await;
    let (status, _, location) = again
        .post(
            "/web/login",
            &[("csrf", &csrf), ("user", "carol"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!((status, location.as_deref()), (303, Some("/web/factor")));
    let csrf = again.csrf("/web/factor").await;
    let (status, _, location) = again
        .post("/web/factor", &[("csrf", &csrf), ("code", codes[3])])
        .await;
    assert_eq!((status, location.as_deref()), (303, Some("/web/")));

    let actions: Vec<String> = audit(&app, alpha.tenant)
        .await
        .into_iter()
        .map(|e| format!("{} {}", e.record.action, e.record.outcome))
        .collect();
    for step in [
        "user.totp_enrol wrong_code",
        "user.totp_enrol ok",
        "login.totp ok",
    ] {
        assert!(actions.iter().any(|a| a == step), "{step}: {actions:?}");
    }
    app.stop().await;
}

/// An app whose sessions end after a second without requests.
async fn short_sessions(sms: &Path, sweep: Duration) -> TestApp {
    let sms = sms.to_string_lossy().into_owned();
    TestApp::spawn_with(move |c| {
        c.security.sms.file = sms;
        c.security.session_idle = engine::config::Duration::from_secs(1);
        c.security.session_sweep_interval =
            engine::config::Duration::from_millis(sweep.as_millis() as u64);
    })
    .await
}

/// Whether the session's row is still stored, expired or not.
async fn row_exists(app: &TestApp, id_hash: &str) -> bool {
    let long_ago = Utc::now() - chrono::Duration::days(1);
    app.store
        .session(id_hash, long_ago)
        .await
        .expect("read")
        .is_some()
}

#[actix_web::test]
async fn the_server_sweeps_expired_sessions_away() {
    let (_dir, sms) = sms_path();
    let app = short_sessions(&sms, Duration::from_millis(200)).await;
    let alpha = app.tenant_with_key("alpha").await;
    add_user(&app, "carol", Some((alpha.tenant, "alpha")), Role::Member).await;
    let carol = log_in(&app, "carol").await;
    let id_hash = hash_id(&carol.session_id());
    assert!(row_exists(&app, &id_hash).await);

    // No request comes back: only the sweep can delete the row.
    let deadline = Instant::now() + Duration::from_secs(20);
    while row_exists(&app, &id_hash).await {
        assert!(
            Instant::now() < deadline,
            "the expired session's row was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[actix_web::test]
async fn an_expired_sessions_row_goes_when_its_cookie_comes_back() {
    let (_dir, sms) = sms_path();
    let app = short_sessions(&sms, Duration::from_secs(3600)).await;
    let alpha = app.tenant_with_key("alpha").await;
    add_user(&app, "carol", Some((alpha.tenant, "alpha")), Role::Member).await;
    let mut carol = log_in(&app, "carol").await;
    let id_hash = hash_id(&carol.session_id());
    let deadline = Instant::now() + Duration::from_secs(20);
    while app
        .store
        .session(&id_hash, Utc::now())
        .await
        .expect("read")
        .is_some()
    {
        assert!(Instant::now() < deadline, "the session never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(row_exists(&app, &id_hash).await, "expired, still stored");

    let (status, _, headers) = carol.get("/web/").await;
    assert_eq!(
        (
            status,
            headers.get("location").map(|v| v.to_str().expect("ascii"))
        ),
        (303, Some("/web/login"))
    );
    assert!(!row_exists(&app, &id_hash).await, "deleted on lookup");
    app.stop().await;
}
