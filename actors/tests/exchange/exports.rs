//! Response-data exports written by the running exchange and by the CLI,
//! downloaded with OpenSSH's `sftp`; listing and removing exchange accounts.

use std::process::{Command, Output};

use engine::exchange::Folder;
use engine::model::{CampaignId, CampaignName, RecipientId, RecipientState};
use engine::store::{
    AuditQuery, ImportSummary, Outcome, RecipientBatch, TrackingDetail, TrackingEvent, TrackingKind,
};

use super::{Env, have_openssh, text, wait_until};

/// `spring` with two recipients, one delivered, one bounced, and a click.
async fn campaign_with_events(env: &Env) -> CampaignId {
    let store = env.store.as_ref();
    let tenant = env.acme.id;
    let name = CampaignName::parse("spring").expect("name");
    let campaign = store
        .create_campaign(tenant, &name)
        .await
        .expect("campaign");
    let mut batch = RecipientBatch::new(1);
    batch.push(RecipientId(1), "ann@a.example", ["Ann"]);
    batch.push(RecipientId(2), "bob@b.example", ["Bob"]);
    let mut writer = store
        .begin_import(tenant, campaign.id, &["name".to_owned()])
        .await
        .expect("import");
    writer.write(&batch).await.expect("write");
    let summary = ImportSummary {
        source: "list.csv".into(),
        rows_loaded: 2,
        rows_rejected: 0,
    };
    writer.commit(&summary).await.expect("commit");
    let at = chrono::Utc::now();
    let outcome = |id, state, detail: &str| Outcome {
        recipient: RecipientId(id),
        state,
        attempted: true,
        detail: Some(detail.to_owned()),
        at,
    };
    let outcomes = [
        outcome(1, RecipientState::Delivered, "250 ok"),
        outcome(2, RecipientState::Bounced, "550 5.1.1 unknown"),
    ];
    store
        .record_outcomes(tenant, campaign.id, &outcomes)
        .await
        .expect("outcomes");
    let click = TrackingEvent {
        recipient: RecipientId(1),
        kind: TrackingKind::Clicked,
        detail: TrackingDetail {
            url: Some("https://shop.example/a".into()),
            ..TrackingDetail::default()
        },
        at,
    };
    store
        .record_tracking_events(tenant, campaign.id, &[click])
        .await
        .expect("click");
    campaign.id
}

fn cli(env: &Env, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_broadside"))
        .arg("--config")
        .arg(env.dir.path().join("broadside.toml"))
        .args(args)
        .output()
        .expect("broadside")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_exchange_exports_events_which_download_over_sftp() {
    if !have_openssh() {
        return;
    }
    let mut env = Env::prepare().await;
    env.config.exchange.export_interval = engine::config::Duration::from_millis(200);
    campaign_with_events(&env).await;

    env.begin().await;

    let export = env.path(&env.acme, Folder::Exports, "spring.1-3.csv");
    wait_until("the export file", || export.exists()).await;
    let local = env.dir.path().join("downloaded.csv");
    let out = env.sftp(
        "acme",
        &format!("get /exports/spring.1-3.csv {}\n", local.display()),
    );
    assert!(out.status.success(), "{}", text(&out));
    let downloaded = std::fs::read_to_string(&local).expect("downloaded");
    assert_eq!(
        downloaded,
        std::fs::read_to_string(&export).expect("export")
    );
    let lines: Vec<&str> = downloaded.lines().collect();
    assert_eq!(lines[0], "campaign,recipient,event,time,detail");
    assert!(
        lines[1].starts_with("spring,ann@a.example,delivered,"),
        "{downloaded}"
    );
    assert!(
        lines[2].ends_with(",address; 550 5.1.1 unknown"),
        "{downloaded}"
    );
    assert!(
        lines[3].ends_with(",https://shop.example/a"),
        "{downloaded}"
    );
    assert_eq!(lines.len(), 4);
    let out = env.sftp("acme", "rm /exports/spring.1-3.csv\n");
    assert!(
        out.status.success(),
        "exports may be deleted: {}",
        text(&out)
    );
    // Later runs find nothing new and write nothing.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let left = std::fs::read_dir(env.folders(&env.acme).folder(Folder::Exports))
        .expect("exports")
        .count();
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_exports_now_and_manages_exchange_accounts() {
    if !have_openssh() {
        return;
    }
    let mut env = Env::prepare().await;
    campaign_with_events(&env).await;

    let first = cli(&env, &["exchange", "export", "--tenant", "acme"]);
    let second = cli(&env, &["exchange", "export", "--tenant", "acme"]);
    let listed = cli(&env, &["exchange", "account", "list", "--tenant", "acme"]);
    let removed = cli(
        &env,
        &["exchange", "account", "remove", "--tenant", "acme", "acme"],
    );
    let again = cli(
        &env,
        &["exchange", "account", "remove", "--tenant", "acme", "acme"],
    );
    let after = cli(&env, &["exchange", "account", "list", "--tenant", "acme"]);

    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("spring.1-3.csv\t3 events"),
        "{}",
        text(&first)
    );
    assert!(
        env.path(&env.acme, Folder::Exports, "spring.1-3.csv")
            .exists()
    );
    assert!(text(&second).contains("no new events"), "{}", text(&second));
    assert!(listed.status.success(), "{}", text(&listed));
    assert!(
        text(&listed).contains("acme\t1 public key(s)"),
        "{}",
        text(&listed)
    );
    assert!(removed.status.success(), "{}", text(&removed));
    assert!(!again.status.success(), "{}", text(&again));
    assert!(
        text(&after).contains("no exchange accounts"),
        "{}",
        text(&after)
    );
    let audit = env
        .store
        .audit_log(AuditQuery {
            tenant: Some(env.acme.id),
            before: None,
            limit: 100,
        })
        .await
        .expect("audit");
    let actions: Vec<&str> = audit.iter().map(|e| e.record.action.as_str()).collect();
    assert!(actions.contains(&"exchange_account.remove"), "{actions:?}");
    assert!(actions.contains(&"exchange_account.add"), "{actions:?}");
    env.begin().await;
    let out = env.sftp("acme", "ls /exports\n");
    assert!(
        !out.status.success(),
        "a removed account cannot log in: {}",
        text(&out)
    );
}
