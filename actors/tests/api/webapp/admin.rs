//! The admin pages used by a tenant admin: users (add, lock, unlock, reset the
//! second factor), API keys (create with the secret shown once, revoke),
//! security settings (all or nothing, precise errors) and the audit log (pages
//! and CSV); each change lands in the audit log under the admin.

use engine::auth::{Role, User};
use engine::model::TenantId;
use engine::store::AuditQuery;

use super::super::TestApp;
use super::{add_user, audit, csrf_of, log_in, sms_path, unescape, web_app};

/// The actions the admin's own entries record, newest first.
async fn actions_by(app: &TestApp, tenant: TenantId, actor: &str) -> Vec<String> {
    audit(app, tenant)
        .await
        .into_iter()
        .filter(|e| e.record.actor == actor)
        .map(|e| e.record.action)
        .collect()
}

#[actix_web::test]
async fn an_admin_adds_locks_unlocks_and_resets_users_and_each_change_is_audited() {
    let (_dir, sms) = sms_path();
    let app = web_app(&sms).await;
    let alpha = app.tenant_with_key("alpha").await;
    add_user(&app, "alice", Some((alpha.tenant, "alpha")), Role::Admin).await;
    add_user(&app, "carol", Some((alpha.tenant, "alpha")), Role::Member).await;
    let mut alice = log_in(&app, "alice").await;
    let mut carol = log_in(&app, "carol").await;
    let users = format!("/web/users/{}", alpha.tenant.0);

    let (status, html, _) = alice.get(&users).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("carol") && html.contains("alice"), "{html}");
    let csrf = csrf_of(&html);
    let (status, body, _) = alice
        .post(
            &users,
            &[
                ("csrf", &csrf),
                ("name", "dave"),
                ("role", "member"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("at least 12 characters"), "{body}");
    let (status, body, _) = alice
        .post(
            &users,
            &[
                ("csrf", &csrf),
                ("name", "dave"),
                ("role", "operator"),
                ("password", "a sturdy long passphrase"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("member or admin"), "{body}");
    assert!(app.store.user("dave").await.expect("read").is_none());

    let add = [
        ("csrf", csrf.as_str()),
        ("name", "dave"),
        ("role", "member"),
        ("password", "a sturdy long passphrase"),
    ];
    let (status, _, location) = alice.post(&users, &add).await;
    assert_eq!((status, location.as_deref()), (303, Some(users.as_str())));
    let dave = app.store.user("dave").await.expect("read").expect("added");
    assert_eq!(dave.tenant, Some(alpha.tenant));
    let (status, body, _) = alice.post(&users, &add).await;
    assert_eq!(status, 409, "a taken name: {body}");

    let (status, _, _) = alice
        .post(&format!("{users}/carol/lock"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303);
    let stored =
        User::from_record(app.store.user("carol").await.expect("r").expect("u")).expect("user");
    assert!(stored.is_locked(chrono::Utc::now()));
    let (status, _, headers) = carol.get("/web/").await;
    assert_eq!(
        (
            status,
            headers.get("location").map(|v| v.to_str().expect("ascii"))
        ),
        (303, Some("/web/login")),
        "the lock ended carol's open session"
    );
    let (status, body, _) = alice
        .post(&format!("{users}/alice/lock"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("cannot lock your own account"), "{body}");
    for action in ["unlock", "reset-2fa"] {
        let (status, _, _) = alice
            .post(&format!("{users}/carol/{action}"), &[("csrf", &csrf)])
            .await;
        assert_eq!(status, 303, "{action}");
    }
    let stored =
        User::from_record(app.store.user("carol").await.expect("r").expect("u")).expect("user");
    assert!(!stored.is_locked(chrono::Utc::now()));

    let actions = actions_by(&app, alpha.tenant, "user:alice").await;
    for action in ["user.create", "user.lock", "user.unlock", "user.reset_2fa"] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
    let entries = app
        .store
        .audit_log(AuditQuery {
            tenant: Some(alpha.tenant),
            before: None,
            limit: 1000,
        })
        .await
        .expect("audit");
    let changes: Vec<_> = entries
        .iter()
        .filter(|e| e.record.actor == "user:alice" && e.record.action.starts_with("user."))
        .collect();
    assert!(changes.len() >= 4, "{changes:?}");
    for entry in changes {
        assert_eq!(
            entry.record.ip.as_deref(),
            Some("127.0.0.1"),
            "{} carries the admin's address",
            entry.record.action
        );
    }
    app.stop().await;
}

#[actix_web::test]
async fn an_admin_creates_a_key_whose_secret_is_shown_once_and_revokes_it() {
    let (_dir, sms) = sms_path();
    let app = web_app(&sms).await;
    let alpha = app.tenant_with_key("alpha").await;
    add_user(&app, "alice", Some((alpha.tenant, "alpha")), Role::Admin).await;
    let mut alice = log_in(&app, "alice").await;
    let keys = format!("/web/keys/{}", alpha.tenant.0);

    let (status, html, _) = alice.get(&keys).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(&alpha.key_id), "the existing key is listed");
    let csrf = csrf_of(&html);
    let (status, html, _) = alice.post(&keys, &[("csrf", &csrf)]).await;
    assert_eq!(status, 200, "{html}");
    let grab = |marker: &str| {
        let start = html.find(marker).expect(marker) + marker.len();
        html[start..].split('<').next().expect("text").to_owned()
    };
    let secret = grab("id=\"new-secret\">");
    let key_id = grab("New key <code>");
    let stored = app.store.api_keys(alpha.tenant).await.expect("keys");
    assert!(stored.iter().any(|k| k.id == key_id), "{key_id} stored");

    // The new key signs requests as any key made by the CLI.
    let new_key = super::super::Key {
        tenant: alpha.tenant,
        key_id: key_id.clone(),
        secret: engine::auth::escher::Secret::new(secret.clone()),
    };
    let (status, _) = app.json(&new_key, "GET", "/v1/campaigns", b"").await;
    assert_eq!(status, 200);
    let (_, again, _) = alice.get(&keys).await;
    assert!(again.contains(&key_id), "listed");
    assert!(!again.contains(&secret), "the secret is never shown again");

    let (status, _, location) = alice
        .post(&format!("{keys}/{key_id}/revoke"), &[("csrf", &csrf)])
        .await;
    assert_eq!((status, location.as_deref()), (303, Some(keys.as_str())));
    let (status, _) = app.json(&new_key, "GET", "/v1/campaigns", b"").await;
    assert_eq!(status, 401, "revoked at once");

    let entries = audit(&app, alpha.tenant).await;
    for action in ["key.create", "key.revoke"] {
        let entry = entries
            .iter()
            .find(|e| e.record.action == action)
            .unwrap_or_else(|| panic!("{action} audited"));
        assert_eq!(entry.record.actor, "user:alice");
        assert_eq!(entry.record.target.as_deref(), Some(key_id.as_str()));
        assert_eq!(entry.record.ip.as_deref(), Some("127.0.0.1"));
    }
    app.stop().await;
}

#[actix_web::test]
async fn security_settings_change_all_or_nothing_with_precise_errors() {
    let (_dir, sms) = sms_path();
    let app = web_app(&sms).await;
    let alpha = app.tenant_with_key("alpha").await;
    add_user(&app, "alice", Some((alpha.tenant, "alpha")), Role::Admin).await;
    let mut alice = log_in(&app, "alice").await;
    let page = format!("/web/security/{}", alpha.tenant.0);
    let csrf = alice.csrf(&page).await;

    let (status, body, _) = alice
        .post(
            &page,
            &[
                ("csrf", &csrf),
                ("security.require_second_factor", "true"),
                ("security.sms_code_ttl", "soon"),
                ("security.ip_allowlist", "127.0.0.0/8"),
                ("security.outside_allowlist", "refuse"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let body = unescape(&body);
    assert!(
        body.contains(
            "invalid value for `security.sms_code_ttl`: expected a duration like \"30s\""
        ),
        "{body}"
    );
    assert!(body.contains("Nothing was changed"), "{body}");
    assert_eq!(
        app.store
            .tenant_settings(alpha.tenant)
            .await
            .expect("settings")
            .security,
        Default::default(),
        "the valid fields were not stored either"
    );

    let (status, body, _) = alice
        .post(
            &page,
            &[
                ("csrf", &csrf),
                ("security.ip_allowlist", "192.0.2.0/24"),
                ("security.outside_allowlist", "refuse"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("would refuse your own address 127.0.0.1"),
        "{body}"
    );

    let (status, _, location) = alice
        .post(
            &page,
            &[
                ("csrf", &csrf),
                ("security.require_second_factor", "true"),
                ("security.sms_code_ttl", "3m"),
                ("security.ip_allowlist", "127.0.0.0/8\n192.0.2.0/24"),
                ("security.outside_allowlist", "refuse"),
            ],
        )
        .await;
    assert_eq!((status, location.as_deref()), (303, Some(page.as_str())));
    let stored = app
        .store
        .tenant_settings(alpha.tenant)
        .await
        .expect("settings")
        .security;
    assert!(stored.require_second_factor);
    assert_eq!(stored.ip_allowlist.len(), 2);
    assert!(!stored.allowlist_api, "an unchecked box is off");
    let (_, html, _) = alice.get(&page).await;
    assert!(
        html.contains("192.0.2.0/24") && html.contains("3m"),
        "{html}"
    );

    let entries = audit(&app, alpha.tenant).await;
    let change = entries
        .iter()
        .find(|e| e.record.action == "settings.change")
        .expect("audited");
    assert_eq!(change.record.actor, "user:alice");
    let detail = change.record.detail.as_deref().expect("detail");
    assert!(
        detail.contains("security.ip_allowlist") && detail.contains("security.sms_code_ttl"),
        "{detail}"
    );
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.record.action == "settings.change")
            .count(),
        1,
        "refused changes are not recorded as changes"
    );
    app.stop().await;
}

#[actix_web::test]
async fn the_audit_log_pages_back_and_downloads_whole_as_csv() {
    let (_dir, sms) = sms_path();
    let app = web_app(&sms).await;
    let alpha = app.tenant_with_key("alpha").await;
    let beta = app.tenant_with_key("beta").await;
    add_user(&app, "alice", Some((alpha.tenant, "alpha")), Role::Admin).await;
    add_user(&app, "bob", Some((beta.tenant, "beta")), Role::Admin).await;
    for n in 0..60 {
        let record = engine::store::AuditRecord::new(
            Some(alpha.tenant),
            "cli",
            "test.step",
            chrono::Utc::now(),
        )
        .target(format!("step-{n}"));
        app.store.append_audit(&record).await.expect("append");
    }
    let mut bob = log_in(&app, "bob").await;
    let mut alice = log_in(&app, "alice").await;
    let page = format!("/web/audit/{}", alpha.tenant.0);

    let (status, html, _) = alice.get(&page).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("login.password"), "newest first: {html}");
    assert!(!html.contains("step-0<"), "the oldest is on a later page");
    assert!(!html.contains("user:bob"), "only this tenant's entries");
    let html = unescape(&html);
    let end = html.find("\" id=\"older\"").expect("older link");
    let older = html[..end].rsplit('"').next().expect("href").to_owned();
    assert!(older.contains("?before="), "{older}");
    let (status, html, _) = alice.get(&older).await;
    assert_eq!(status, 200);
    assert!(html.contains("step-0<"), "{html}");

    let (status, bytes, headers) = alice.get_bytes(&format!("{page}/csv")).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-disposition"]
            .to_str()
            .expect("ascii")
            .contains("attachment"),
    );
    let text = String::from_utf8(bytes).expect("utf-8");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("id,at,actor,action,target,outcome,ip,detail")
    );
    let rows: Vec<&str> = lines.collect();
    assert!(rows[0].contains("audit.export"), "it lists itself first");
    assert!(rows.iter().any(|r| r.contains("step-0")));
    assert!(!text.contains("user:bob"));
    assert_eq!(
        rows.len(),
        audit(&app, alpha.tenant).await.len(),
        "every entry"
    );

    let (status, _, _) = bob.get(&page).await;
    assert_eq!(status, 404, "another tenant's log");
    let (status, _, _) = bob.get_bytes(&format!("{page}/csv")).await;
    assert_eq!(status, 404);
    app.stop().await;
}
