//! The web application through a real HTTP client: login with password and SMS
//! code (read from the file gateway), CSRF refusals, security headers, live
//! progress, tenant isolation (404) and audited operator views. The admin
//! pages, exports, the authenticator app and session cleanup have modules of
//! their own.

mod access;
mod account;
mod admin;
mod exports;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::auth::{FileGateway, Role};
use engine::clock::SystemClock;
use engine::store::AuditQuery;

use super::{CSV, TestApp, create_body};

const PASSWORD: &str = "correct horse battery";

/// A browser stand-in: keeps cookies, does not follow redirects.
struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Browser {
            app,
            client,
            cookies: HashMap::new(),
        }
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().expect("ascii cookie");
            let pair = text.split(';').next().expect("pair");
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let response = self
            .client
            .get(self.app.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("get");
        self.keep(&response);
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, response.text().await.expect("body"), headers)
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, String, Option<String>) {
        let response = self
            .client
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(form))
            .send()
            .await
            .expect("post");
        self.keep(&response);
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().expect("ascii").to_owned());
        (status, response.text().await.expect("body"), location)
    }

    /// The CSRF token of the page at `path`.
    async fn csrf(&mut self, path: &str) -> String {
        let (status, html, _) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {html}");
        csrf_of(&html)
    }

    /// A download: status, bytes and headers.
    async fn get_bytes(&mut self, path: &str) -> (u16, Vec<u8>, reqwest::header::HeaderMap) {
        let response = self
            .client
            .get(self.app.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("get");
        self.keep(&response);
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (
            status,
            response.bytes().await.expect("body").to_vec(),
            headers,
        )
    }

    /// The session cookie's value.
    fn session_id(&self) -> String {
        self.cookies.get("bs_session").cloned().expect("a session")
    }
}

/// A page's text as a person reads it: handlebars escapes `=`, backticks and
/// quotes even in text, and `&` in links.
fn unescape(html: &str) -> String {
    html.replace("&#x3D;", "=")
        .replace("&#x60;", "`")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[start..start + 64].to_owned()
}

/// The tenant's audit entries, newest first (at most 200).
async fn audit(app: &TestApp, tenant: engine::model::TenantId) -> Vec<engine::store::AuditEntry> {
    app.store
        .audit_log(AuditQuery {
            tenant: Some(tenant),
            before: None,
            limit: 200,
        })
        .await
        .expect("audit")
}

fn encode(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn last_code(sms: &Path) -> String {
    let messages = FileGateway::read(sms).expect("sms file");
    messages
        .last()
        .expect("an SMS")
        .text
        .rsplit(' ')
        .next()
        .expect("code")
        .to_owned()
}

async fn web_app(sms: &Path) -> TestApp {
    let sms = sms.to_string_lossy().into_owned();
    TestApp::spawn_with(move |c| c.security.sms.file = sms).await
}

async fn add_user(
    app: &TestApp,
    name: &str,
    tenant: Option<(engine::model::TenantId, &str)>,
    role: Role,
) {
    let gateway = FileGateway::new(std::env::temp_dir().join("unused-sms.log"));
    let throttle = engine::auth::Throttle::default();
    let config = engine::config::SecurityConfig::default();
    let login = engine::auth::Login {
        store: app.store.as_ref(),
        clock: &SystemClock,
        sms: &gateway,
        throttle: &throttle,
        config: &config,
    };
    let tenant_name = tenant.map(|(_, n)| engine::model::TenantName::parse(n).expect("name"));
    let tenant = tenant.map(|(id, _)| id).zip(tenant_name.as_ref());
    login
        .create_user(name, tenant, role, PASSWORD, "cli")
        .await
        .expect("user");
}

/// Logs in with the password only (no second factor configured).
async fn log_in<'a>(app: &'a TestApp, name: &str) -> Browser<'a> {
    let mut browser = Browser::new(app);
    let csrf = browser.csrf("/web/login").await;
    let (status, body, location) = browser
        .post(
            "/web/login",
            &[("csrf", &csrf), ("user", name), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/web/")),
        "{body}"
    );
    browser
}

fn sms_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("sms.log");
    (dir, path)
}

#[actix_web::test]
async fn a_user_logs_in_with_password_and_sms_and_watches_progress_move() {
    let (_dir, sms) = sms_path();
    let app = web_app(&sms).await;
    let key = app.tenant_with_key("alpha").await;
    add_user(&app, "alice", Some((key.tenant, "alpha")), Role::Admin).await;
    let mut settings = app
        .store
        .tenant_settings(key.tenant)
        .await
        .expect("settings");
    settings.security.require_second_factor = true;
    app.store
        .set_tenant_settings(key.tenant, &settings)
        .await
        .expect("set");
    let (_, created) = app
        .json(&key, "POST", "/v1/campaigns", &create_body("spring"))
        .await;
    let id = created["id"].as_i64().expect("id");
    let (status, _) = app
        .json(
            &key,
            "PUT",
            &format!("/v1/campaigns/{id}/recipients"),
            CSV.as_bytes(),
        )
        .await;
    assert_eq!(status, 200);

    let mut browser = Browser::new(&app);
    let (_, _, headers) = browser.get("/web/login").await;
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let csrf = browser.csrf("/web/login").await;
    let (status, _, location) = browser
        .post(
            "/web/login",
            &[("csrf", &csrf), ("user", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/web/enrol-phone"))
    );
    let (status, _, _) = browser.get("/web/").await;
    assert_eq!(status, 303, "the campaigns wait for the second factor");

    let csrf = browser.csrf("/web/enrol-phone").await;
    let (status, _, location) = browser
        .post(
            "/web/enrol-phone",
            &[("csrf", &csrf), ("phone", "+3612345678")],
        )
        .await;
    assert_eq!((status, location.as_deref()), (303, Some("/web/factor")));
    let csrf = browser.csrf("/web/factor").await;
    let code = last_code(&sms);
    let (status, _, location) = browser
        .post("/web/factor", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!((status, location.as_deref()), (303, Some("/web/")));

    let (status, html, _) = browser.get("/web/").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("spring"), "{html}");
    let progress = format!("/web/campaigns/{}/{id}/progress", key.tenant.0);
    assert!(
        html.contains(&progress),
        "the list polls its progress endpoint: {html}"
    );
    let (status, body, _) = browser.get(&progress).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["counters"]["pending"], 3, "{json}");

    let (status, _) = app
        .json(&key, "POST", &format!("/v1/campaigns/{id}/launch"), b"")
        .await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body, _) = browser.get(&progress).await;
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        if json["counters"]["delivered"] == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "progress never reached 3 delivered: {json}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, js, headers) = browser.get("/web/static/app.js").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/javascript")
    );
    assert!(js.contains("data-progress"));

    let log = app
        .store
        .audit_log(AuditQuery {
            tenant: Some(key.tenant),
            before: None,
            limit: 50,
        })
        .await
        .expect("audit");
    let actions: Vec<&str> = log.iter().rev().map(|e| e.record.action.as_str()).collect();
    for step in ["login.password", "login.enrol_phone", "login.sms"] {
        assert!(actions.contains(&step), "{step} missing: {actions:?}");
    }
    for entry in log.iter().filter(|e| e.record.action.starts_with("login.")) {
        assert_eq!(entry.record.ip.as_deref(), Some("127.0.0.1"), "{entry:?}");
        assert_eq!(entry.record.actor, "user:alice");
    }
    app.stop().await;
}

#[actix_web::test]
async fn forms_without_the_csrf_token_are_refused() {
    let (_dir, sms) = sms_path();
    let app = web_app(&sms).await;
    let key = app.tenant_with_key("alpha").await;
    add_user(&app, "alice", Some((key.tenant, "alpha")), Role::Member).await;
    let mut browser = Browser::new(&app);
    let csrf = browser.csrf("/web/login").await;
    for bad in [
        "",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let (status, body, _) = browser
            .post(
                "/web/login",
                &[("csrf", bad), ("user", "alice"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(status, 403, "{body}");
    }
    let log = app
        .store
        .audit_log(AuditQuery {
            tenant: Some(key.tenant),
            before: None,
            limit: 50,
        })
        .await
        .expect("audit");
    assert!(
        log.iter().all(|e| e.record.action != "login.password"),
        "refused before any login attempt"
    );

    let (status, _, _) = browser
        .post(
            "/web/login",
            &[("csrf", &csrf), ("user", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(status, 303);
    let (status, _, _) = browser.post("/web/logout", &[("csrf", "forged")]).await;
    assert_eq!(status, 403);
    let (status, _, _) = browser.get("/web/").await;
    assert_eq!(status, 200, "the forged logout did nothing");
    let csrf = {
        let (_, html, _) = browser.get("/web/").await;
        let start = html.find("name=\"csrf\" value=\"").expect("csrf") + 19;
        html[start..start + 64].to_owned()
    };
    let (status, _, location) = browser.post("/web/logout", &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_deref()), (303, Some("/web/login")));
    let (status, _, _) = browser.get("/web/").await;
    assert_eq!(status, 303, "logged out");
    app.stop().await;
}

#[actix_web::test]
async fn another_tenants_campaigns_are_not_found_and_operator_views_are_audited() {
    let (_dir, sms) = sms_path();
    let app = web_app(&sms).await;
    let alpha = app.tenant_with_key("alpha").await;
    let beta = app.tenant_with_key("beta").await;
    add_user(&app, "bob", Some((beta.tenant, "beta")), Role::Admin).await;
    add_user(&app, "root", None, Role::Operator).await;
    let (_, created) = app
        .json(&alpha, "POST", "/v1/campaigns", &create_body("secret-plan"))
        .await;
    let id = created["id"].as_i64().expect("id");
    let page = format!("/web/campaigns/{}/{id}", alpha.tenant.0);

    let mut bob = log_in(&app, "bob").await;
    let (_, list, _) = bob.get("/web/").await;
    assert!(!list.contains("secret-plan"), "{list}");
    for path in [
        page.clone(),
        format!("{page}/progress"),
        format!("/web/campaigns/{}/{id}", beta.tenant.0),
        format!("/web/campaigns/999999/{id}"),
    ] {
        let (status, body, _) = bob.get(&path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("secret-plan"));
    }

    let mut root = log_in(&app, "root").await;
    let (status, html, _) = root.get(&page).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("secret-plan"));
    let log = app
        .store
        .audit_log(AuditQuery {
            tenant: Some(alpha.tenant),
            before: None,
            limit: 50,
        })
        .await
        .expect("audit");
    let view = log
        .iter()
        .find(|e| e.record.action == "operator.view")
        .expect("audited view");
    assert_eq!(view.record.actor, "operator:root");
    assert_eq!(
        view.record.target.as_deref(),
        Some(format!("campaign:{id}").as_str())
    );
    app.stop().await;
}
