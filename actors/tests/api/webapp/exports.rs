//! The exports page: the tenant's export files listed with download links that
//! work for the logged-in session; every download audited, an operator's too,
//! with the operator's listing recorded as a view of the tenant's data.

use engine::auth::Role;
use engine::exchange::{Folder, TenantFolders};
use engine::model::TenantName;

use super::super::exports::put_export;
use super::{add_user, audit, log_in, sms_path, web_app};

/// ~200 KiB, so the download spans several chunks.
fn export_bytes() -> Vec<u8> {
    (0..8_000)
        .flat_map(|i| format!("spring,{i},delivered,2026-11-01T12:00:00Z,\n").into_bytes())
        .collect()
}

#[actix_web::test]
async fn a_member_downloads_an_export_and_every_download_is_audited() {
    let (_dir, sms) = sms_path();
    let app = web_app(&sms).await;
    let alpha = app.tenant_with_key("alpha").await;
    add_user(&app, "carol", Some((alpha.tenant, "alpha")), Role::Member).await;
    add_user(&app, "root", None, Role::Operator).await;
    let bytes = export_bytes();
    put_export(&app, "alpha", "spring results.1-9.csv", &bytes);
    let exports = TenantFolders::new(
        &app.state.exchange_root,
        &TenantName::parse("alpha").expect("name"),
    )
    .folder(Folder::Exports);
    let outside = app.state.exchange_root.join("outside.txt");
    std::fs::write(&outside, b"not an export").expect("outside");
    std::os::unix::fs::symlink(&outside, exports.join("link.csv")).expect("symlink");
    let page = format!("/web/exports/{}", alpha.tenant.0);

    let mut carol = log_in(&app, "carol").await;
    let (status, html, _) = carol.get(&page).await;
    assert_eq!(status, 200, "{html}");
    let link = format!("{page}/spring%20results.1-9.csv");
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
    assert!(
        !html.contains("link.csv"),
        "symlinks are not exports: {html}"
    );
    let (status, body, headers) = carol.get_bytes(&link).await;
    assert_eq!(status, 200);
    assert_eq!(body, bytes, "byte for byte");
    let disposition = headers["content-disposition"].to_str().expect("ascii");
    assert!(
        disposition.starts_with("attachment") && disposition.contains("spring results.1-9.csv"),
        "{disposition}"
    );
    for path in [
        format!("{page}/link.csv"),
        format!("{page}/..%2Foutside.txt"),
        format!("{page}/missing.csv"),
    ] {
        let (status, body, _) = carol.get_bytes(&path).await;
        assert_eq!(status, 404, "{path}");
        assert_ne!(body, b"not an export");
    }

    let mut root = log_in(&app, "root").await;
    let (status, html, _) = root.get(&page).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Tenant: <strong>alpha</strong>"), "{html}");
    let (status, body, _) = root.get_bytes(&link).await;
    assert_eq!((status, body.len()), (200, bytes.len()));

    let entries = audit(&app, alpha.tenant).await;
    let downloads: Vec<_> = entries
        .iter()
        .filter(|e| e.record.action == "export.download")
        .collect();
    assert_eq!(downloads.len(), 2, "one per download: {entries:?}");
    let (by_root, by_carol) = (&downloads[0].record, &downloads[1].record);
    assert_eq!(by_carol.actor, "user:carol");
    assert_eq!(by_root.actor, "operator:root");
    for d in [by_carol, by_root] {
        assert_eq!(d.target.as_deref(), Some("spring results.1-9.csv"));
        assert_eq!(d.ip.as_deref(), Some("127.0.0.1"));
    }
    assert!(
        by_root
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("\"operator\":true")),
        "{by_root:?}"
    );
    assert!(
        entries.iter().any(|e| e.record.action == "operator.view"
            && e.record.actor == "operator:root"
            && e.record.target.as_deref() == Some("exports")),
        "the operator's listing is a view of the tenant's data"
    );
    app.stop().await;
}

#[actix_web::test]
async fn an_empty_exports_folder_lists_nothing() {
    let (_dir, sms) = sms_path();
    let app = web_app(&sms).await;
    let alpha = app.tenant_with_key("alpha").await;
    add_user(&app, "carol", Some((alpha.tenant, "alpha")), Role::Member).await;
    let mut carol = log_in(&app, "carol").await;
    let (status, html, _) = carol.get(&format!("/web/exports/{}", alpha.tenant.0)).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("No exports yet."), "{html}");
    app.stop().await;
}
