//! Encrypted uploads through the control-file watcher, against a real SQLite
//! store and real folders (the `gpg` interoperability tests are in
//! `actors/tests`).

use std::io::Write as _;
use std::time::Duration;

use super::{CustomerKey, TenantKeys, encrypting_writer, generate_secret_key};
use crate::auth::keys::MasterKey;
use crate::exchange::{Folder, TenantFolders, Verdict, Watcher};
use crate::import::ImportOptions;
use crate::model::{CampaignName, RecipientId, TenantName};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, Tenant};

struct Setup {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    tenant: Tenant,
    folders: TenantFolders,
    keys: TenantKeys,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("db"), Duration::from_secs(5)).expect("store");
    store.migrate().await.expect("migrate");
    let tenant = store
        .create_tenant(&TenantName::parse("acme").expect("name"))
        .await
        .expect("tenant");
    let folders = TenantFolders::new(&dir.path().join("exchange"), &tenant.name);
    folders.create().expect("folders");
    let keys = TenantKeys::new(MasterKey::generate().expect("master key"));
    Setup {
        _dir: dir,
        store,
        tenant,
        folders,
        keys,
    }
}

/// The tenant's public key, as the customer imports it.
async fn tenant_public_key(s: &Setup) -> CustomerKey {
    let public = s
        .keys
        .public_key(&s.store, s.tenant.id, &s.tenant.name)
        .await
        .expect("public key");
    assert!(public.created);
    CustomerKey::parse(public.armored.as_bytes()).expect("parses")
}

fn encrypt(plain: &[u8], to: &CustomerKey, armored: bool) -> Vec<u8> {
    let mut writer = encrypting_writer(Vec::new(), to, armored).expect("writer");
    writer.write_all(plain).expect("write");
    writer.finish().expect("finish")
}

fn rows(count: usize) -> Vec<u8> {
    let mut text = String::from("email\n");
    for i in 0..count {
        text.push_str(&format!("r{i}@x.example\n"));
    }
    text.into_bytes()
}

fn put(s: &Setup, name: &str, bytes: &[u8]) {
    let incoming = s.folders.folder(Folder::Incoming);
    std::fs::write(incoming.join(name), bytes).expect("write");
    std::fs::write(incoming.join(format!("{name}.ctl")), "").expect("control");
}

async fn scan_twice(s: &Setup) -> Verdict {
    let mut watcher = Watcher::default().with_pgp(s.keys.clone());
    let options = ImportOptions::default();
    assert!(
        watcher
            .scan(&s.store, &s.tenant, &s.folders, &options)
            .await
            .is_empty()
    );
    let results = watcher
        .scan(&s.store, &s.tenant, &s.folders, &options)
        .await;
    assert_eq!(results.len(), 1, "{results:?}");
    results
        .into_iter()
        .next()
        .expect("one")
        .expect("settled")
        .verdict
}

fn folder_file(s: &Setup, folder: Folder, name: &str) -> Option<Vec<u8>> {
    std::fs::read(s.folders.folder(folder).join(name)).ok()
}

#[tokio::test]
async fn encrypted_uploads_are_imported_and_finished_still_encrypted() {
    let s = setup().await;
    let key = tenant_public_key(&s).await;
    let plain = b"email,name\na@x.example,A\nb@x.example,B\n";
    let message = encrypt(plain, &key, false);
    put(&s, "spring.csv.gpg", &message);

    assert_eq!(scan_twice(&s).await, Verdict::Finished);

    assert_eq!(
        folder_file(&s, Folder::Finished, "spring.csv.gpg"),
        Some(message)
    );
    let campaign = s
        .store
        .campaign_by_name(s.tenant.id, &CampaignName::parse("spring").expect("name"))
        .await
        .expect("lookup")
        .expect("the campaign is named after the plain name");
    let rows = s
        .store
        .recipients(s.tenant.id, campaign.id, RecipientId(0), 10)
        .await
        .expect("recipients");
    assert_eq!(rows.len(), 2);
}

#[tokio::test]
async fn files_that_cannot_be_decrypted_go_to_invalids_with_the_reason() {
    let s = setup().await;
    let own = tenant_public_key(&s).await;
    let mut cut = encrypt(&rows(5000), &own, false);
    cut.truncate(cut.len() * 2 / 3);
    let stranger = generate_secret_key(&TenantName::parse("other").expect("name")).expect("key");
    let stranger = CustomerKey::parse(
        pgp::composed::SignedPublicKey::from(stranger)
            .to_armored_string(Default::default())
            .expect("armor")
            .as_bytes(),
    )
    .expect("key");
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("cut.csv.gpg", cut, "cannot decrypt"),
        (
            "wrong.csv.asc",
            encrypt(b"email\na@x.example\n", &stranger, true),
            "not encrypted to this tenant's key",
        ),
        (
            "plain.csv.pgp",
            b"email\na@x.example\n".to_vec(),
            "not an OpenPGP message",
        ),
    ];

    for (name, bytes, reason) in cases {
        put(&s, name, &bytes);
        assert_eq!(scan_twice(&s).await, Verdict::Invalid, "{name}");

        assert_eq!(folder_file(&s, Folder::Invalids, name), Some(bytes));
        let stem = name.split('.').next().expect("stem");
        let report =
            folder_file(&s, Folder::Invalids, &format!("{stem}.errors.csv")).expect("report");
        let report = String::from_utf8(report).expect("utf-8");
        assert!(report.contains(reason), "{name}: {report}");
    }
}

#[tokio::test]
async fn an_encrypted_upload_for_a_tenant_without_a_key_is_refused() {
    let s = setup().await;
    put(&s, "early.csv.gpg", b"anything");

    assert_eq!(scan_twice(&s).await, Verdict::Invalid);

    let report = folder_file(&s, Folder::Invalids, "early.errors.csv").expect("report");
    assert!(String::from_utf8_lossy(&report).contains("no PGP key"));
}
