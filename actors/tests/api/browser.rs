//! The web application in real headless Chromium, driven over WebDriver
//! (chromedriver on loopback): log in with password and the SMS code from the
//! file gateway, watch a campaign's counts change without a reload, and save
//! screenshots of the pages. Skips loudly without chromedriver unless
//! BROADSIDE_REQUIRE_CHROMIUM=1 (CI sets it).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use engine::auth::{FileGateway, Login, Role, Throttle};
use engine::clock::SystemClock;
use engine::store::AuditQuery;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use super::{CSV, TestApp, create_body};

const PASSWORD: &str = "correct horse battery";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn start_browser() -> Option<(Driver, Client)> {
    let driver = Path::new("/usr/bin/chromedriver");
    if !driver.exists() {
        assert!(
            std::env::var_os("BROADSIDE_REQUIRE_CHROMIUM").is_none(),
            "BROADSIDE_REQUIRE_CHROMIUM is set but /usr/bin/chromedriver is missing"
        );
        eprintln!(
            "SKIPPED: the browser test needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
        );
        return None;
    }
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let guard = Driver(child);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"]
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return Some((guard, client)),
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "chromedriver never answered: {error}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn screenshot(client: &Client, dir: &Path, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn wait_for_text(client: &Client, css: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.trim() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css} shows {text:?}, never {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[actix_web::test]
async fn in_chromium_a_user_logs_in_with_an_sms_code_and_sees_progress_move() {
    let sms_dir = tempfile::tempdir().expect("dir");
    let sms = sms_dir.path().join("sms.log");
    let sms_text = sms.to_string_lossy().into_owned();
    let Some((_driver, client)) = start_browser().await else {
        return;
    };
    let app = TestApp::spawn_with(move |c| c.security.sms.file = sms_text).await;
    let key = app.tenant_with_key("alpha").await;
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
    // Alice registered her phone at an earlier login.
    let gateway = FileGateway::new(&sms);
    let (throttle, config) = (
        Throttle::default(),
        engine::config::SecurityConfig::default(),
    );
    let login = Login {
        store: app.store.as_ref(),
        clock: &SystemClock,
        sms: &gateway,
        throttle: &throttle,
        config: &config,
    };
    let alpha = engine::model::TenantName::parse("alpha").expect("name");
    login
        .create_user(
            "alice",
            Some((key.tenant, &alpha)),
            Role::Admin,
            PASSWORD,
            "cli",
        )
        .await
        .expect("user");
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
    login.password("alice", PASSWORD, None).await.expect("pw");
    login
        .enrol_phone("alice", "+3612345678", None)
        .await
        .expect("enrol");
    let code = FileGateway::read(&sms)
        .expect("sms")
        .pop()
        .expect("code")
        .text;
    login
        .sms_code("alice", code.rsplit(' ').next().expect("code"), None)
        .await
        .expect("verified");

    let shots: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    client
        .goto(&app.url("/web/login"))
        .await
        .expect("login page");
    screenshot(&client, &shots, "1-login").await;
    client
        .find(Locator::Css("input[name=user]"))
        .await
        .expect("user")
        .send_keys("alice")
        .await
        .expect("type");
    client
        .find(Locator::Css("input[name=password]"))
        .await
        .expect("pw")
        .send_keys(PASSWORD)
        .await
        .expect("type");
    client
        .find(Locator::Id("login"))
        .await
        .expect("button")
        .click()
        .await
        .expect("submit");
    client
        .wait()
        .for_element(Locator::Id("verify"))
        .await
        .expect("the code prompt");
    screenshot(&client, &shots, "2-sms-code").await;
    let code = FileGateway::read(&sms)
        .expect("sms")
        .pop()
        .expect("code")
        .text;
    let code = code.rsplit(' ').next().expect("code").to_owned();
    client
        .find(Locator::Css("input[name=code]"))
        .await
        .expect("code")
        .send_keys(&code)
        .await
        .expect("type");
    client
        .find(Locator::Id("verify"))
        .await
        .expect("button")
        .click()
        .await
        .expect("submit");
    client
        .wait()
        .for_element(Locator::Id("campaigns"))
        .await
        .expect("the campaign list");
    wait_for_text(&client, "#campaigns [data-field=pending]", "3").await;
    screenshot(&client, &shots, "3-campaigns-before").await;

    let (status, _) = app
        .json(&key, "POST", &format!("/v1/campaigns/{id}/launch"), b"")
        .await;
    assert_eq!(status, 200);
    // No navigation from here: the script's polling must move the numbers.
    wait_for_text(&client, "#campaigns [data-field=delivered]", "3").await;
    screenshot(&client, &shots, "4-campaigns-after").await;
    client
        .find(Locator::LinkText("spring"))
        .await
        .expect("link")
        .click()
        .await
        .expect("open");
    client
        .wait()
        .for_element(Locator::Id("campaign"))
        .await
        .expect("the campaign page");
    screenshot(&client, &shots, "5-campaign").await;
    println!("screenshots: {}", shots.display());
    client.close().await.expect("close");

    let log = app
        .store
        .audit_log(AuditQuery {
            tenant: Some(key.tenant),
            before: None,
            limit: 50,
        })
        .await
        .expect("audit");
    let browser_steps: Vec<&str> = log
        .iter()
        .filter(|e| e.record.ip.as_deref() == Some("127.0.0.1"))
        .map(|e| e.record.action.as_str())
        .collect();
    assert_eq!(
        browser_steps,
        ["login.sms", "login.password"],
        "newest first"
    );
    app.stop().await;
}
