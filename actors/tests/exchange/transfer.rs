//! Uploads, control-file imports, reports and downloads.

use engine::exchange::Folder;
use engine::import::{ImportOptions, import_csv};
use engine::model::CampaignName;

use super::{Env, have_openssh, text, wait_until};

const PEOPLE: &str =
    "email,first_name\nann@a.example,Ann\nbob@b.example,Bob\nnot-an-address,X\ncid@c.example,Cid\n";
const ALL_BAD: &str = "email,first_name\nnope,A\nalso-nope,B\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_with_a_control_file_is_imported_and_moved_to_finished_with_its_report() {
    if !have_openssh() {
        return;
    }
    let env = Env::start().await;
    let csv = env.local("people.csv", PEOPLE);
    let ctl = env.local("people.csv.ctl", "campaign=spring-sale\n");

    let out = env.sftp(
        "acme",
        &format!(
            "put {} /incoming/people.csv\nput {} /incoming/people.csv.ctl\n",
            csv.display(),
            ctl.display()
        ),
    );

    assert!(out.status.success(), "{}", text(&out));
    let finished = env.path(&env.acme, Folder::Finished, "people.csv");
    wait_until("the file in finished", || finished.exists()).await;
    let report = env.path(&env.acme, Folder::Finished, "people.errors.csv");
    let report = std::fs::read_to_string(report).expect("report beside the file");
    assert!(report.contains("not-an-address"), "{report}");
    assert!(
        !env.path(&env.acme, Folder::Incoming, "people.csv.ctl")
            .exists()
    );
    assert_eq!(env.recipients(&env.acme, "spring-sale").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_bad_rows_goes_to_invalids_with_its_report() {
    if !have_openssh() {
        return;
    }
    let env = Env::start().await;
    let csv = env.local("bad.csv", ALL_BAD);
    let ctl = env.local("bad.csv.ctl", "");

    let out = env.sftp(
        "acme",
        &format!(
            "put {} /incoming/\nput {} /incoming/\n",
            csv.display(),
            ctl.display()
        ),
    );

    assert!(out.status.success(), "{}", text(&out));
    let invalid = env.path(&env.acme, Folder::Invalids, "bad.csv");
    wait_until("the file in invalids", || invalid.exists()).await;
    assert!(
        env.path(&env.acme, Folder::Invalids, "bad.errors.csv")
            .exists()
    );
    assert_eq!(env.recipients(&env.acme, "bad").await, 0);
    let listing = env.sftp("acme", "ls /invalids\n");
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("bad.errors.csv"),
        "{}",
        text(&listing)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_downloaded_and_deleted_with_sftp_and_scp() {
    if !have_openssh() {
        return;
    }
    let env = Env::start().await;
    let export = env.path(&env.acme, Folder::Exports, "events.csv");
    std::fs::write(
        &export,
        "campaign,recipient,event\n1,ann@a.example,delivered\n",
    )
    .expect("export");
    let got = env.dir.path().join("got.csv");
    let scp_got = env.dir.path().join("scp.csv");

    let out = env.sftp(
        "acme",
        &format!("get /exports/events.csv {}\n", got.display()),
    );
    let scp = env.scp(
        &env.remote("acme", "/exports/events.csv"),
        &scp_got.display().to_string(),
    );
    let rm = env.sftp("acme", "rm /exports/events.csv\n");

    assert!(out.status.success(), "{}", text(&out));
    assert!(scp.status.success(), "{}", text(&scp));
    assert!(rm.status.success(), "{}", text(&rm));
    let expected = "campaign,recipient,event\n1,ann@a.example,delivered\n";
    assert_eq!(std::fs::read_to_string(got).expect("got"), expected);
    assert_eq!(std::fs::read_to_string(scp_got).expect("scp"), expected);
    assert!(!export.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_uploads_into_incoming_and_the_control_file_triggers_the_import() {
    if !have_openssh() {
        return;
    }
    let env = Env::start().await;
    let csv = env.local("scp-list.csv", PEOPLE);
    let ctl = env.local("scp-list.csv.ctl", "");

    let up = env.scp(
        &csv.display().to_string(),
        &env.remote("acme", "/incoming/scp-list.csv"),
    );
    let up_ctl = env.scp(
        &ctl.display().to_string(),
        &env.remote("acme", "/incoming/"),
    );

    assert!(up.status.success(), "{}", text(&up));
    assert!(up_ctl.status.success(), "{}", text(&up_ctl));
    let finished = env.path(&env.acme, Folder::Finished, "scp-list.csv");
    wait_until("the scp upload in finished", || finished.exists()).await;
    assert_eq!(env.recipients(&env.acme, "scp-list").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_commit_and_move_leaves_the_file_importable_without_duplicates() {
    if !have_openssh() {
        return;
    }
    let mut env = Env::prepare().await;
    let incoming = env.folders(&env.acme).folder(Folder::Incoming);
    std::fs::write(incoming.join("again.csv"), PEOPLE).expect("file");
    std::fs::write(incoming.join("again.csv.ctl"), "").expect("ctl");
    // The import commits, then the process dies before moving the file.
    let name = CampaignName::parse("again").expect("name");
    let campaign = env
        .store
        .create_campaign(env.acme.id, &name)
        .await
        .expect("campaign");
    let source = std::fs::File::open(incoming.join("again.csv")).expect("open");
    let report = env.dir.path().join("crash-report.csv");
    let options = ImportOptions {
        max_invalid_share: 0.5,
        ..ImportOptions::default()
    };
    let store = env.store.clone();
    let committed = import_csv(
        store.as_ref(),
        env.acme.id,
        campaign.id,
        source,
        "again.csv",
        &report,
        &options,
        &|_| {},
    );
    assert_eq!(committed.await.expect("import").loaded, 3);

    env.begin().await;

    let finished = env.path(&env.acme, Folder::Finished, "again.csv");
    wait_until("the re-import to settle", || finished.exists()).await;
    assert_eq!(env.recipients(&env.acme, "again").await, 3);
    assert!(
        !env.path(&env.acme, Folder::Incoming, "again.csv.ctl")
            .exists()
    );
}
