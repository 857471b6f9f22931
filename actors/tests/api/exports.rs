//! Export downloads: `GET /v1/exports` lists the tenant's exchange `exports`
//! folder; `POST /v1/exports/{name}/url` hands out an Escher pre-signed URL that
//! downloads the file without an Authorization header until it expires; expired,
//! forged and other tenants' URLs get 401 or 404.

use chrono::Utc;
use engine::auth::escher::{self, EscherConfig};
use engine::exchange::{Folder, TenantFolders};
use engine::model::TenantName;

use super::{Key, TestApp, code};

/// Writes `bytes` as `name` into `tenant`'s exports folder, as the export job would.
pub fn put_export(app: &TestApp, tenant: &str, name: &str, bytes: &[u8]) {
    let folders = TenantFolders::new(
        &app.state.exchange_root,
        &TenantName::parse(tenant).expect("name"),
    );
    folders.create().expect("folders");
    std::fs::write(folders.folder(Folder::Exports).join(name), bytes).expect("written");
}

/// A URL the way a client would sign it itself, at `at`.
fn presigned(
    app: &TestApp,
    key: &Key,
    path: &str,
    expires: u64,
    at: chrono::DateTime<Utc>,
) -> String {
    escher::presign_url(
        &EscherConfig::default(),
        &key.key_id,
        &key.secret,
        &app.url(path),
        std::time::Duration::from_secs(expires),
        at,
    )
    .expect("presigned")
}

async fn get(app: &TestApp, url: &str) -> (u16, Vec<u8>) {
    let response = app.client.get(url).send().await.expect("sent");
    let status = response.status().as_u16();
    (status, response.bytes().await.expect("body").to_vec())
}

/// ~300 KiB, so the download spans several chunks.
fn report() -> Vec<u8> {
    (0..10_000)
        .flat_map(|i| format!("r{i}@d.example,delivered,2026-11-01\n").into_bytes())
        .collect()
}

#[actix_web::test]
async fn an_export_is_listed_and_downloaded_through_a_presigned_url() {
    let app = TestApp::spawn().await;
    let acme = app.tenant_with_key("acme").await;
    let bytes = report();
    put_export(&app, "acme", "spring results.csv", &bytes);

    let (status, listed) = app.json(&acme, "GET", "/v1/exports", b"").await;
    let (made, answer) = app
        .json(
            &acme,
            "POST",
            "/v1/exports/spring%20results.csv/url?expires=600",
            b"",
        )
        .await;
    let url = answer["url"].as_str().expect("url").to_owned();
    let (fetched, body) = get(&app, &url).await;

    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["files"][0]["name"], "spring results.csv", "{listed}");
    assert_eq!(listed["files"][0]["size"], bytes.len() as u64);
    assert_eq!(made, 200, "{answer}");
    assert!(url.contains("X-EMS-Expires=600"), "{url}");
    assert!(answer["expires_at"].is_string(), "{answer}");
    assert_eq!(fetched, 200);
    assert!(body == bytes, "the file comes back byte for byte");
    let (unsigned, _) = get(&app, &app.url("/v1/exports/spring%20results.csv")).await;
    assert_eq!(unsigned, 401, "no signature, no file");
    let (bad, refused) = app
        .json(
            &acme,
            "POST",
            "/v1/exports/spring%20results.csv/url?expires=0",
            b"",
        )
        .await;
    assert_eq!((bad, code(&refused)), (422, "invalid"), "{refused}");
    app.stop().await;
}

#[actix_web::test]
async fn expired_forged_and_other_tenants_urls_are_refused() {
    let app = TestApp::spawn().await;
    let acme = app.tenant_with_key("acme").await;
    let beta = app.tenant_with_key("beta").await;
    put_export(&app, "acme", "results.csv", b"secret-export@acme.example\n");
    let path = "/v1/exports/results.csv";

    // Signed two hours ago for ten minutes: past even the clock skew allowance.
    let expired = presigned(
        &app,
        &acme,
        path,
        600,
        Utc::now() - chrono::Duration::hours(2),
    );
    let fresh = presigned(&app, &acme, path, 600, Utc::now());
    let forged = format!(
        "{}{}",
        &fresh[..fresh.len() - 1],
        if fresh.ends_with('0') { '1' } else { '0' }
    );
    let other_name = presigned(&app, &acme, "/v1/exports/other.csv", 600, Utc::now());
    let betas = presigned(&app, &beta, path, 600, Utc::now());

    let (ok, _) = get(&app, &fresh).await;
    let (expired_status, expired_body) = get(&app, &expired).await;
    let (forged_status, forged_body) = get(&app, &forged).await;
    let (missing, _) = get(&app, &other_name).await;
    let (other_tenant, other_body) = get(&app, &betas).await;
    let (presign_other, _) = app
        .json(&beta, "POST", "/v1/exports/results.csv/url", b"")
        .await;

    assert_eq!(ok, 200, "the fresh URL works");
    assert_eq!(
        expired_status,
        401,
        "{}",
        String::from_utf8_lossy(&expired_body)
    );
    assert_eq!(
        forged_status,
        401,
        "{}",
        String::from_utf8_lossy(&forged_body)
    );
    assert_eq!(missing, 404);
    assert_eq!(
        other_tenant, 404,
        "beta's key only ever reaches beta's folder"
    );
    assert!(!String::from_utf8_lossy(&other_body).contains("secret-export"));
    assert_eq!(presign_other, 404);
    app.stop().await;
}
