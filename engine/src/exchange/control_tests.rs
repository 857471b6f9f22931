//! The watcher against a real SQLite store in a temporary directory.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::exchange::{Folder, TenantFolders};
use crate::model::{RecipientId, TenantName};
use crate::store::sqlite::SqliteStore;

struct Setup {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    tenant: Tenant,
    folders: TenantFolders,
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
    Setup {
        _dir: dir,
        store,
        tenant,
        folders,
    }
}

fn put(folders: &TenantFolders, name: &str, text: &str) {
    std::fs::write(folders.folder(Folder::Incoming).join(name), text).expect("write");
}

async fn scan_twice(watcher: &mut Watcher, s: &Setup) -> Vec<Result<FileImport, ExchangeError>> {
    let options = ImportOptions::default();
    let first = watcher
        .scan(&s.store, &s.tenant, &s.folders, &options)
        .await;
    assert!(first.is_empty(), "a file seen once is not yet stable");
    watcher
        .scan(&s.store, &s.tenant, &s.folders, &options)
        .await
}

async fn recipient_count(s: &Setup, name: &str) -> usize {
    let campaign = s
        .store
        .campaign_by_name(s.tenant.id, &CampaignName::parse(name).expect("name"))
        .await
        .expect("lookup")
        .expect("campaign");
    let rows = s
        .store
        .recipients(s.tenant.id, campaign.id, RecipientId(0), 1000);
    rows.await.expect("recipients").len()
}

fn exists(folders: &TenantFolders, folder: Folder, name: &str) -> bool {
    Path::new(&folders.folder(folder).join(name)).exists()
}

#[test]
fn campaign_names_are_derived_from_file_names() {
    assert_eq!(
        slug_for("Spring Sale.csv").map(String::from),
        Some("spring-sale".into())
    );
    assert_eq!(slug_for("a__b.csv").map(String::from), Some("a__b".into()));
    assert_eq!(slug_for("---.csv"), None);
}

#[tokio::test]
async fn a_file_with_a_control_file_is_imported_once_stable_and_moved() {
    let s = setup().await;
    let mut watcher = Watcher::default();
    put(
        &s.folders,
        "spring.csv",
        "email,name\na@x.example,A\nb@x.example,B\n",
    );
    put(&s.folders, "spring.csv.ctl", "");

    let results = scan_twice(&mut watcher, &s).await;

    assert_eq!(results.len(), 1);
    let done = results.into_iter().next().expect("one").expect("imported");
    assert_eq!(done.verdict, Verdict::Finished);
    assert!(exists(&s.folders, Folder::Finished, "spring.csv"));
    assert!(!exists(&s.folders, Folder::Incoming, "spring.csv.ctl"));
    assert_eq!(recipient_count(&s, "spring").await, 2);
}

#[tokio::test]
async fn files_without_control_or_open_for_writing_are_left_alone() {
    let s = setup().await;
    let writes = OpenWrites::default();
    let mut watcher = Watcher::new(writes.clone());
    put(&s.folders, "lonely.csv", "email\na@x.example\n");
    put(&s.folders, "busy.csv", "email\na@x.example\n");
    put(&s.folders, "busy.csv.ctl", "campaign=busy");
    let guard = writes.begin(&s.folders.folder(Folder::Incoming).join("busy.csv"));

    assert!(scan_twice(&mut watcher, &s).await.is_empty());
    drop(guard);
    let options = ImportOptions::default();
    let results = watcher
        .scan(&s.store, &s.tenant, &s.folders, &options)
        .await;

    assert_eq!(results.len(), 1, "released once the write handle closed");
    assert!(exists(&s.folders, Folder::Incoming, "lonely.csv"));
}

#[tokio::test]
async fn a_rejected_file_goes_to_invalids_with_its_report() {
    let s = setup().await;
    let mut watcher = Watcher::default();
    put(&s.folders, "bad.csv", "email\nnope\nalso-nope\n");
    put(&s.folders, "bad.csv.ctl", "campaign=bad-one\n");

    let results = scan_twice(&mut watcher, &s).await;

    let done = results.into_iter().next().expect("one").expect("settled");
    assert_eq!(done.verdict, Verdict::Invalid);
    assert!(exists(&s.folders, Folder::Invalids, "bad.csv"));
    assert!(exists(&s.folders, Folder::Invalids, "bad.errors.csv"));
    assert!(!exists(&s.folders, Folder::Incoming, "bad.csv.ctl"));
}

#[tokio::test]
async fn a_crash_between_commit_and_move_reimports_without_duplicates() {
    let s = setup().await;
    put(
        &s.folders,
        "again.csv",
        "email\na@x.example\nb@x.example\nc@x.example\n",
    );
    put(&s.folders, "again.csv.ctl", "");
    let target = ImportTarget::Name(CampaignName::parse("again").expect("name"));
    let options = ImportOptions::default();
    // The import commits, then the process "dies" before settling the file.
    let staged = import_step(
        &s.store,
        &s.tenant,
        &s.folders,
        "again.csv",
        target,
        &options,
        None,
    );
    assert!(matches!(staged.await, Ok(Staged::Done(..))));
    assert!(exists(&s.folders, Folder::Incoming, "again.csv.ctl"));

    let mut restarted = Watcher::default();
    let results = scan_twice(&mut restarted, &s).await;

    assert!(matches!(
        results.as_slice(),
        [Ok(FileImport {
            verdict: Verdict::Finished,
            ..
        })]
    ));
    assert_eq!(recipient_count(&s, "again").await, 3);
}
