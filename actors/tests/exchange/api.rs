//! `POST /v1/campaigns/{id}/imports`: the API names a file in incoming.

use engine::exchange::{Folder, TenantFolders};

use crate::api::{TestApp, code, create_body};

#[actix_web::test]
async fn the_api_imports_a_file_from_incoming_by_name() {
    let app = TestApp::spawn().await;
    let acme = app.tenant_with_key("acme").await;
    let (_, created) = app
        .json(&acme, "POST", "/v1/campaigns", &create_body("by-api"))
        .await;
    let base = format!("/v1/campaigns/{}", created["id"]);
    let tenants = app.store.tenants().await.expect("tenants");
    let tenant = tenants
        .iter()
        .find(|t| t.id == acme.tenant)
        .expect("tenant");
    let folders = TenantFolders::new(&app.state.exchange_root, &tenant.name);
    folders.create().expect("folders");
    let csv = "email,first_name,city\nann@a.example,Ann,Oslo\nbob@b.example,Bob,Rome\n";
    std::fs::write(folders.folder(Folder::Incoming).join("api.csv"), csv).expect("file");

    let (status, body) = app
        .json(
            &acme,
            "POST",
            &format!("{base}/imports"),
            br#"{"file":"api.csv"}"#,
        )
        .await;
    let (again, again_body) = app
        .json(
            &acme,
            "POST",
            &format!("{base}/imports"),
            br#"{"file":"api.csv"}"#,
        )
        .await;
    std::fs::write(folders.folder(Folder::Incoming).join("busy.csv"), csv).expect("busy");
    let guard = app
        .state
        .exchange_writes
        .begin(&folders.folder(Folder::Incoming).join("busy.csv"));
    let (busy, busy_body) = app
        .json(
            &acme,
            "POST",
            &format!("{base}/imports"),
            br#"{"file":"busy.csv"}"#,
        )
        .await;
    drop(guard);
    let (escape, escape_body) = app
        .json(
            &acme,
            "POST",
            &format!("{base}/imports"),
            br#"{"file":"../x.csv"}"#,
        )
        .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["loaded"], 2, "{body}");
    assert_eq!(body["result"], "finished", "{body}");
    assert!(folders.folder(Folder::Finished).join("api.csv").exists());
    assert_eq!(
        (again, code(&again_body)),
        (404, "not_found"),
        "{again_body}"
    );
    assert_eq!((busy, code(&busy_body)), (409, "conflict"), "{busy_body}");
    assert_eq!(
        (escape, code(&escape_body)),
        (422, "invalid"),
        "{escape_body}"
    );
    app.stop().await;
}
