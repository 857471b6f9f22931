//! The web application in real headless Chromium, driven over WebDriver
//! (chromedriver on loopback): log in with password and the SMS code from the
//! file gateway, watch a campaign's counts change without a reload, download the
//! campaign's export (Chromium saves it to a folder set in its preferences, and
//! the bytes must equal the file's), create an API key, download the audit log,
//! and save screenshots of the pages. Skips loudly without chromedriver unless
//! BROADSIDE_REQUIRE_CHROMIUM=1 (CI sets it).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use engine::auth::{FileGateway, Login, Role, Throttle};
use engine::clock::SystemClock;
use engine::exchange::{Folder, TenantFolders, export_tenant};
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

/// Chromium with its downloads going to `downloads`, without asking.
async fn start_browser(downloads: &Path) -> Option<(Driver, Client)> {
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
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"],
            "prefs": {
                "download.default_directory": downloads.to_string_lossy(),
                "download.prompt_for_download": false,
                "download.directory_upgrade": true,
                "safebrowsing.enabled": false
            }
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

/// The file Chromium finished downloading into `dir` whose name starts with
/// `prefix` (a download in progress is a `.crdownload` beside it).
async fn downloaded(dir: &Path, prefix: &str) -> (String, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let names: Vec<String> = std::fs::read_dir(dir)
            .expect("download dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        let busy = names.iter().any(|n| n.ends_with(".crdownload"));
        if let Some(name) = names
            .iter()
            .find(|n| n.starts_with(prefix))
            .filter(|_| !busy)
        {
            return (
                name.clone(),
                std::fs::read(dir.join(name)).expect("downloaded file"),
            );
        }
        assert!(
            Instant::now() < deadline,
            "Chromium never finished a download {prefix}*: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn click(client: &Client, locator: Locator<'_>) {
    client
        .find(locator)
        .await
        .expect("element")
        .click()
        .await
        .expect("click");
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
    let downloads = tempfile::tempdir().expect("download dir");
    let Some((_driver, client)) = start_browser(downloads.path()).await else {
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

    // The export job's real output for the delivered campaign.
    let tenant = app
        .store
        .tenants()
        .await
        .expect("tenants")
        .into_iter()
        .find(|t| t.id == key.tenant)
        .expect("alpha");
    let folders = TenantFolders::new(&app.state.exchange_root, &tenant.name);
    folders.create().expect("folders");
    let exported = export_tenant(app.store.as_ref(), &tenant, &folders, None)
        .await
        .expect("export")
        .pop()
        .expect("one campaign exported")
        .expect("written");
    let expected =
        std::fs::read(folders.folder(Folder::Exports).join(&exported.file)).expect("export");
    click(&client, Locator::LinkText("Exports")).await;
    client
        .wait()
        .for_element(Locator::Id("exports"))
        .await
        .expect("the exports page");
    screenshot(&client, &shots, "6-exports").await;
    click(&client, Locator::LinkText(&exported.file)).await;
    let (name, bytes) = downloaded(downloads.path(), "spring.").await;
    assert_eq!(name, exported.file);
    assert_eq!(bytes, expected, "the download is the export, byte for byte");

    click(&client, Locator::LinkText("Users")).await;
    client
        .wait()
        .for_element(Locator::Id("users"))
        .await
        .expect("the users page");
    screenshot(&client, &shots, "7-users").await;
    click(&client, Locator::LinkText("API keys")).await;
    client
        .wait()
        .for_element(Locator::Id("create-key"))
        .await
        .expect("the keys page");
    click(&client, Locator::Id("create-key")).await;
    client
        .wait()
        .for_element(Locator::Id("new-secret"))
        .await
        .expect("the new key's secret");
    screenshot(&client, &shots, "8-api-key-created").await;
    click(&client, Locator::LinkText("Security")).await;
    client
        .wait()
        .for_element(Locator::Id("security"))
        .await
        .expect("the security page");
    screenshot(&client, &shots, "9-security").await;
    click(&client, Locator::LinkText("Authenticator app")).await;
    client
        .wait()
        .for_element(Locator::Id("totp-secret"))
        .await
        .expect("the authenticator page");
    screenshot(&client, &shots, "10-authenticator").await;
    click(&client, Locator::LinkText("Audit log")).await;
    client
        .wait()
        .for_element(Locator::Id("audit"))
        .await
        .expect("the audit page");
    screenshot(&client, &shots, "11-audit-log").await;
    click(&client, Locator::Id("audit-csv")).await;
    let (_, csv) = downloaded(downloads.path(), "audit-alpha-").await;
    let csv = String::from_utf8(csv).expect("utf-8");
    assert!(
        csv.starts_with("id,at,actor,action,") && csv.contains("export.download"),
        "{csv}"
    );
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
        [
            "audit.export",
            "key.create",
            "export.download",
            "login.sms",
            "login.password"
        ],
        "newest first"
    );
    let download = log
        .iter()
        .find(|e| e.record.action == "export.download")
        .expect("audited");
    assert_eq!(download.record.actor, "user:alice");
    assert_eq!(
        download.record.target.as_deref(),
        Some(exported.file.as_str())
    );
    app.stop().await;
}
