//! Who reaches which page: members see no admin page (403), nobody reaches
//! another tenant's exports, users, keys, settings or log (404, and nothing is
//! changed), and every admin form without its CSRF token is refused.

use engine::auth::Role;

use super::super::exports::put_export;
use super::{add_user, audit, csrf_of, log_in, sms_path, web_app};

#[actix_web::test]
async fn a_member_reaches_no_admin_page() {
    let (_dir, sms) = sms_path();
    let app = web_app(&sms).await;
    let alpha = app.tenant_with_key("alpha").await;
    add_user(&app, "carol", Some((alpha.tenant, "alpha")), Role::Member).await;
    let mut carol = log_in(&app, "carol").await;
    let t = alpha.tenant.0;

    let (status, html, _) = carol.get("/web/").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("/web/exports/{t}")),
        "members get the exports page"
    );
    for admin in ["users", "keys", "security", "audit"] {
        assert!(
            !html.contains(&format!("/web/{admin}/{t}")),
            "no link to {admin}: {html}"
        );
    }
    let csrf = csrf_of(&html);
    let (status, _, _) = carol.get(&format!("/web/exports/{t}")).await;
    assert_eq!(status, 200);
    for path in ["users", "keys", "security", "audit", "audit/{t}/csv"] {
        let path = match path {
            "audit/{t}/csv" => format!("/web/audit/{t}/csv"),
            p => format!("/web/{p}/{t}"),
        };
        let (status, body, _) = carol.get(&path).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let posts = [
        format!("/web/users/{t}"),
        format!("/web/users/{t}/carol/reset-2fa"),
        format!("/web/keys/{t}"),
        format!("/web/keys/{t}/{}/revoke", alpha.key_id),
        format!("/web/security/{t}"),
    ];
    for path in &posts {
        let (status, body, _) = carol
            .post(
                path,
                &[
                    ("csrf", &csrf),
                    ("name", "mallory"),
                    ("role", "admin"),
                    ("password", "a sturdy long passphrase"),
                    ("security.require_second_factor", "true"),
                ],
            )
            .await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    assert!(app.store.user("mallory").await.expect("read").is_none());
    assert_eq!(
        app.store.api_keys(alpha.tenant).await.expect("keys").len(),
        1
    );
    assert!(
        app.store.api_keys(alpha.tenant).await.expect("keys")[0]
            .revoked_at
            .is_none()
    );
    let (status, _, _) = carol.get("/web/tenants").await;
    assert_eq!(status, 404, "the tenant list is for operators");
    app.stop().await;
}

#[actix_web::test]
async fn another_tenants_exports_users_keys_settings_and_log_are_not_found() {
    let (_dir, sms) = sms_path();
    let app = web_app(&sms).await;
    let alpha = app.tenant_with_key("alpha").await;
    let beta = app.tenant_with_key("beta").await;
    add_user(&app, "alice", Some((alpha.tenant, "alpha")), Role::Admin).await;
    add_user(&app, "bob", Some((beta.tenant, "beta")), Role::Admin).await;
    put_export(
        &app,
        "alpha",
        "secret-plan.1-3.csv",
        b"campaign,recipient\n",
    );
    let mut bob = log_in(&app, "bob").await;
    let (a, b) = (alpha.tenant.0, beta.tenant.0);

    for path in [
        format!("/web/exports/{a}"),
        format!("/web/exports/{a}/secret-plan.1-3.csv"),
        format!("/web/exports/{b}/secret-plan.1-3.csv"),
        format!("/web/users/{a}"),
        format!("/web/keys/{a}"),
        format!("/web/security/{a}"),
        format!("/web/audit/{a}"),
        format!("/web/audit/{a}/csv"),
        "/web/exports/999999".to_owned(),
        "/web/users/999999".to_owned(),
    ] {
        let (status, body, _) = bob.get_bytes(&path).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("secret-plan") && !body.contains("alice"));
    }
    let (_, html, _) = bob.get(&format!("/web/users/{b}")).await;
    let csrf = csrf_of(&html);
    // Through bob's own tenant's paths, alpha's user and key are not found either.
    for path in [
        format!("/web/users/{a}/alice/lock"),
        format!("/web/users/{b}/alice/lock"),
        format!("/web/users/{b}/alice/reset-2fa"),
        format!("/web/keys/{a}/{}/revoke", alpha.key_id),
        format!("/web/keys/{b}/{}/revoke", alpha.key_id),
        format!("/web/security/{a}"),
    ] {
        let (status, body, _) = bob
            .post(
                &path,
                &[("csrf", &csrf), ("security.require_second_factor", "true")],
            )
            .await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let alice = engine::auth::User::from_record(
        app.store.user("alice").await.expect("read").expect("alice"),
    )
    .expect("user");
    assert!(!alice.is_locked(chrono::Utc::now()), "alice untouched");
    let (status, _) = app.json(&alpha, "GET", "/v1/campaigns", b"").await;
    assert_eq!(status, 200, "alpha's key still works");
    assert!(
        !app.store
            .tenant_settings(alpha.tenant)
            .await
            .expect("settings")
            .security
            .require_second_factor
    );
    assert!(
        audit(&app, alpha.tenant)
            .await
            .iter()
            .all(|e| e.record.actor != "user:bob"),
        "bob left no trace in alpha's log: he did nothing there"
    );
    app.stop().await;
}

#[actix_web::test]
async fn admin_forms_without_their_csrf_token_change_nothing() {
    let (_dir, sms) = sms_path();
    let app = web_app(&sms).await;
    let alpha = app.tenant_with_key("alpha").await;
    add_user(&app, "alice", Some((alpha.tenant, "alpha")), Role::Admin).await;
    add_user(&app, "carol", Some((alpha.tenant, "alpha")), Role::Member).await;
    let mut alice = log_in(&app, "alice").await;
    let t = alpha.tenant.0;
    let posts = [
        format!("/web/users/{t}"),
        format!("/web/users/{t}/carol/lock"),
        format!("/web/users/{t}/carol/reset-2fa"),
        format!("/web/keys/{t}"),
        format!("/web/keys/{t}/{}/revoke", alpha.key_id),
        format!("/web/security/{t}"),
        "/web/totp".to_owned(),
    ];
    for csrf in ["", "forged"] {
        for path in &posts {
            let mut form = vec![
                ("name", "mallory"),
                ("role", "admin"),
                ("password", "a sturdy long passphrase"),
                ("security.require_second_factor", "true"),
                ("code", "123456"),
            ];
            if !csrf.is_empty() {
                form.push(("csrf", csrf));
            }
            let (status, body, _) = alice.post(path, &form).await;
            assert_eq!(status, 403, "{path} with {csrf:?}: {body}");
            assert!(body.contains("\"csrf\""), "{body}");
        }
    }
    assert!(app.store.user("mallory").await.expect("read").is_none());
    let carol = engine::auth::User::from_record(
        app.store.user("carol").await.expect("read").expect("carol"),
    )
    .expect("user");
    assert!(!carol.is_locked(chrono::Utc::now()));
    let keys = app.store.api_keys(alpha.tenant).await.expect("keys");
    assert_eq!(keys.len(), 1);
    assert!(keys[0].revoked_at.is_none());
    assert!(
        !app.store
            .tenant_settings(alpha.tenant)
            .await
            .expect("settings")
            .security
            .require_second_factor
    );
    let changes: Vec<String> = audit(&app, alpha.tenant)
        .await
        .into_iter()
        .filter(|e| e.record.actor == "user:alice" && !e.record.action.starts_with("login."))
        .map(|e| e.record.action)
        .collect();
    assert!(changes.is_empty(), "{changes:?}");
    app.stop().await;
}

#[actix_web::test]
async fn an_operator_manages_any_tenant_and_each_look_is_audited() {
    let (_dir, sms) = sms_path();
    let app = web_app(&sms).await;
    let alpha = app.tenant_with_key("alpha").await;
    app.tenant_with_key("beta").await;
    add_user(&app, "carol", Some((alpha.tenant, "alpha")), Role::Member).await;
    add_user(&app, "root", None, Role::Operator).await;
    let mut root = log_in(&app, "root").await;
    let t = alpha.tenant.0;

    let (status, html, _) = root.get("/web/tenants").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("alpha") && html.contains("beta"), "{html}");
    assert!(html.contains(&format!("/web/users/{t}")), "{html}");
    for page in ["users", "keys", "security", "audit"] {
        let (status, html, _) = root.get(&format!("/web/{page}/{t}")).await;
        assert_eq!(status, 200, "{page}: {html}");
        assert!(html.contains("Tenant: <strong>alpha</strong>"), "{html}");
    }
    let csrf = csrf_of(&html);
    let (status, _, _) = root
        .post(&format!("/web/users/{t}/carol/lock"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303);

    let entries = audit(&app, alpha.tenant).await;
    let views: Vec<&str> = entries
        .iter()
        .filter(|e| e.record.action == "operator.view" && e.record.actor == "operator:root")
        .filter_map(|e| e.record.target.as_deref())
        .collect();
    assert_eq!(
        views,
        ["audit", "security", "keys", "users"],
        "newest first"
    );
    let lock = entries
        .iter()
        .find(|e| e.record.action == "user.lock")
        .expect("audited");
    assert_eq!(lock.record.actor, "operator:root");
    assert_eq!(lock.record.target.as_deref(), Some("carol"));
    app.stop().await;
}
