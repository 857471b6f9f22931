//! Streamed recipient uploads: memory stays flat for a 100 MB file (the peak
//! RSS of the server's process, sampled from /proc during the upload), and a
//! body that does not match its signature is never committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use chrono::Utc;
use engine::auth::escher::{EscherConfig, HashAlgo};

use super::{TestApp, code, create_body};

/// Rows of about 1 KiB: 100 MB in ~100,000 rows keeps the test quick while the
/// byte count is what memory would grow with if the body were buffered.
fn row(i: u64) -> String {
    format!("r{i}@d{}.example,{}\n", i % 50, "x".repeat(1000))
}

fn chunks(rows: u64) -> impl Iterator<Item = Bytes> {
    std::iter::once(Bytes::from_static(b"email,padding\n")).chain((0..rows).step_by(64).map(
        move |start| {
            let end = (start + 64).min(rows);
            Bytes::from((start..end).map(row).collect::<String>())
        },
    ))
}

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Set in the child process that runs the upload alone (see below).
const ALONE: &str = "BROADSIDE_TEST_UPLOAD_ALONE";

#[actix_web::test]
async fn a_100_mb_upload_streams_with_flat_memory() {
    // RSS belongs to the whole process, and the other tests of this binary run
    // in parallel in it: the measurement runs alone, in a child process of this
    // test binary filtered to this one test.
    if std::env::var_os(ALONE).is_none() {
        let name = "api::upload::a_100_mb_upload_streams_with_flat_memory";
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", name, "--test-threads=1", "--nocapture"])
            .env(ALONE, "1")
            .output()
            .expect("the test binary runs");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("1 passed"),
            "the child ran the test: {stdout}"
        );
        return;
    }
    let app = TestApp::spawn().await;
    let acme = app.tenant_with_key("acme").await;
    let (_, created) = app
        .json(&acme, "POST", "/v1/campaigns", &create_body("big"))
        .await;
    let path = format!("/v1/campaigns/{}/recipients", created["id"]);
    let rows = 100_000;
    let mut hasher = HashAlgo::Sha256.hasher();
    let mut size = 0usize;
    for chunk in chunks(rows) {
        size += chunk.len();
        hasher.update(&chunk);
    }
    assert!(size >= 100_000_000, "{size}");
    let headers = signed_for_digest(&app, &acme, &path, &hasher.finish());
    let before = vm_rss_kib();
    // The server runs in this process: sample its RSS while the upload runs, so
    // a peak that is freed again before the response still fails the test.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = Arc::clone(&sampling);
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(vm_rss_kib());
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            peak
        })
    };

    let stream = futures_util::stream::iter(chunks(rows).map(Ok::<_, std::io::Error>));
    let mut request = app
        .client
        .put(app.url(&path))
        .body(reqwest::Body::wrap_stream(stream));
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("upload");
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("json");
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.join().expect("sampler").max(vm_rss_kib());

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["loaded"], rows, "{body}");
    let growth_mib = peak.saturating_sub(before) / 1024;
    assert!(
        growth_mib < 40,
        "RSS peaked {growth_mib} MiB above the start ({before} -> {peak} KiB) for a {} MiB upload",
        size / (1024 * 1024)
    );
    app.stop().await;
}

/// Signs a request whose body the signer only knows by its digest, the way a
/// client streaming a file would (the signature covers the body's hash).
fn signed_for_digest(
    app: &TestApp,
    key: &super::Key,
    path: &str,
    digest: &[u8],
) -> Vec<(String, String)> {
    let headers = vec![("host".to_owned(), app.addr.to_string())];
    let request = engine::auth::escher::Request {
        method: "PUT",
        url: path,
        headers: &headers,
        body: b"",
    };
    engine::auth::escher::sign_request_prehashed(
        &EscherConfig::default(),
        &key.key_id,
        &key.secret,
        &request,
        digest,
        &["host"],
        Utc::now(),
    )
    .expect("signs")
}

#[actix_web::test]
async fn an_upload_whose_body_does_not_match_its_signature_is_not_committed() {
    let app = TestApp::spawn().await;
    let acme = app.tenant_with_key("acme").await;
    let (_, created) = app
        .json(&acme, "POST", "/v1/campaigns", &create_body("tampered"))
        .await;
    let path = format!("/v1/campaigns/{}/recipients", created["id"]);
    let signed = b"email\nann@a.example\n";
    let sent = b"email\nmallory@evil.example\n".to_vec();
    let headers = app.sign_at(&acme, "PUT", &path, signed, Utc::now());

    let response = app.send_with("PUT", &path, sent, &headers).await;
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("json");
    let (_, campaign) = app
        .json(
            &acme,
            "GET",
            &format!("/v1/campaigns/{}", created["id"]),
            b"",
        )
        .await;

    assert_eq!(
        (status.as_u16(), code(&body)),
        (401, "signature_mismatch"),
        "{body}"
    );
    assert_eq!(campaign["imported"], false, "{campaign}");
    app.stop().await;
}

#[actix_web::test]
async fn a_file_with_too_many_bad_rows_is_rejected_with_its_report() {
    let app = TestApp::spawn().await;
    let acme = app.tenant_with_key("acme").await;
    let (_, created) = app
        .json(&acme, "POST", "/v1/campaigns", &create_body("bad"))
        .await;
    let path = format!("/v1/campaigns/{}/recipients", created["id"]);
    let csv = "email,first_name\nnope,A\nalso-nope,B\nann@a.example,Ann\n";

    let (status, body) = app.json(&acme, "PUT", &path, csv.as_bytes()).await;

    assert_eq!((status, code(&body)), (422, "file_rejected"), "{body}");
    assert_eq!(body["loaded"], 0);
    assert_eq!(
        body["rejections"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    assert_eq!(body["rejections"][0]["line"], 2, "{body}");
    app.stop().await;
}
