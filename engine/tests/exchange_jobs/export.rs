//! Response-data exports: every event exactly once across runs, restarts and a
//! crash between writing a file and recording it; an event committed out of id
//! order on PostgreSQL is not skipped; a filter (encryption) slots in.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;

use engine::exchange::{ExportFilter, FinishWrite, Folder, TenantFolders, export_tenant};
use engine::model::{CampaignId, RecipientState};
use engine::store::{ExportWatermark, Store, Tenant, TrackingKind};

use super::{Fixture, hit, outcome};

fn emails(n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| format!("person{i}@mail{i}.example"))
        .collect()
}

/// Runs one export of the tenant; returns the files written, by name.
async fn export(store: &dyn Store, tenant: &Tenant, folders: &TenantFolders) -> Vec<String> {
    export_tenant(store, tenant, folders, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().file)
        .collect()
}

/// Data rows of every export file, each with how often it occurs.
fn exported_rows(folders: &TenantFolders) -> BTreeMap<Vec<String>, usize> {
    let mut rows = BTreeMap::new();
    for entry in std::fs::read_dir(folders.folder(Folder::Exports)).unwrap() {
        let mut reader = csv::Reader::from_path(entry.unwrap().path()).unwrap();
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, ["campaign", "recipient", "event", "time", "detail"]);
        for record in reader.records() {
            let record: Vec<String> = record.unwrap().iter().map(String::from).collect();
            *rows.entry(record).or_default() += 1;
        }
    }
    rows
}

async fn the_watermark_survives_a_restart_without_gaps_or_repeats(mut fx: Fixture) {
    let tenant = fx.tenant("acme").await;
    let campaign = fx.campaign(&tenant, "spring", &emails(4)).await;
    let folders = fx.folders(&tenant);
    let (t, c) = (tenant.id, campaign);
    fx.store
        .record_outcomes(
            t,
            c,
            &[
                outcome(
                    1,
                    RecipientState::Delivered,
                    "250 2.0.0 ok",
                    "2026-11-01T10:00:00Z",
                ),
                outcome(
                    2,
                    RecipientState::Bounced,
                    "550 5.1.1 no such user",
                    "2026-11-01T10:00:01Z",
                ),
            ],
        )
        .await
        .unwrap();
    let click = hit(
        1,
        TrackingKind::Clicked,
        Some("https://shop.example/a"),
        "2026-11-01T11:00:00Z",
    );
    fx.store
        .record_tracking_events(t, c, &[click])
        .await
        .unwrap();

    let first = export(fx.store.as_ref(), &tenant, &folders).await;
    assert_eq!(first, ["spring.1-3.csv"]);

    let more = [hit(1, TrackingKind::Opened, None, "2026-11-01T12:00:00Z")];
    fx.store.record_tracking_events(t, c, &more).await.unwrap();
    fx.store
        .record_outcomes(
            t,
            c,
            &[outcome(
                3,
                RecipientState::Delivered,
                "250 ok",
                "2026-11-01T12:00:01Z",
            )],
        )
        .await
        .unwrap();
    let before = fx.store.export_watermark(t, c).await.unwrap();
    let second = export(fx.store.as_ref(), &tenant, &folders).await;
    assert_eq!(second, ["spring.4-5.csv"]);
    let written = std::fs::read(folders.folder(Folder::Exports).join(&second[0])).unwrap();
    // A crash after the file was renamed into place, before the watermark moved.
    let after = fx.store.export_watermark(t, c).await.unwrap();
    let crashed = ExportWatermark {
        exported: before.exported,
        pending: Some(after.exported),
    };
    fx.store.set_export_watermark(t, c, crashed).await.unwrap();
    fx.restart().await;
    let more = [hit(
        2,
        TrackingKind::Unsubscribed,
        None,
        "2026-11-01T13:00:00Z",
    )];
    fx.store.record_tracking_events(t, c, &more).await.unwrap();

    let rerun = export(fx.store.as_ref(), &tenant, &folders).await;
    let rewritten = std::fs::read(folders.folder(Folder::Exports).join(&second[0])).unwrap();
    let next = export(fx.store.as_ref(), &tenant, &folders).await;
    let idle = export(fx.store.as_ref(), &tenant, &folders).await;

    assert_eq!(rerun, second, "the same range under the same name");
    assert_eq!(rewritten, written);
    assert_eq!(next, ["spring.6-6.csv"]);
    assert!(idle.is_empty(), "{idle:?}");
    let rows = exported_rows(&folders);
    assert!(rows.values().all(|n| *n == 1), "{rows:#?}");
    let row = |email: &str, event: &str, time: &str, detail: &str| {
        vec![
            "spring".into(),
            email.into(),
            event.into(),
            time.into(),
            detail.into(),
        ]
    };
    let expected: BTreeMap<Vec<String>, usize> = [
        row(
            "person1@mail1.example",
            "delivered",
            "2026-11-01T10:00:00.000Z",
            "250 2.0.0 ok",
        ),
        row(
            "person2@mail2.example",
            "bounced",
            "2026-11-01T10:00:01.000Z",
            "address; 550 5.1.1 no such user",
        ),
        row(
            "person1@mail1.example",
            "clicked",
            "2026-11-01T11:00:00.000Z",
            "https://shop.example/a",
        ),
        row(
            "person1@mail1.example",
            "opened",
            "2026-11-01T12:00:00.000Z",
            "",
        ),
        row(
            "person3@mail3.example",
            "delivered",
            "2026-11-01T12:00:01.000Z",
            "250 ok",
        ),
        row(
            "person2@mail2.example",
            "unsubscribed",
            "2026-11-01T13:00:00.000Z",
            "",
        ),
    ]
    .into_iter()
    .map(|r| (r, 1))
    .collect();
    assert_eq!(rows, expected);
    let files = std::fs::read_dir(folders.root().join(".work"))
        .unwrap()
        .count();
    assert_eq!(files, 0, "no temporary file is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_export_watermark_survives_a_restart_without_gaps_or_repeats() {
    let fx = Fixture::sqlite().await.unwrap();
    the_watermark_survives_a_restart_without_gaps_or_repeats(fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_export_watermark_survives_a_restart_without_gaps_or_repeats() {
    let Some(fx) = Fixture::pg().await else {
        return;
    };
    the_watermark_survives_a_restart_without_gaps_or_repeats(fx).await;
}

/// A sequence hands out ids before commit, so on PostgreSQL an event with a
/// smaller id can become visible after one with a larger id. An export taken
/// in between must wait for it rather than move the watermark past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_an_export_waits_for_an_event_committed_out_of_id_order() {
    let Some(fx) = Fixture::pg().await else {
        return;
    };
    let tenant = fx.tenant("acme").await;
    let campaign = fx.campaign(&tenant, "busy", &emails(2)).await;
    let folders = fx.folders(&tenant);
    let (mut slow, connection) = tokio_postgres::connect(fx.pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let tx = slow.transaction().await.unwrap();
    let insert = format!(
        "INSERT INTO t_{}.c{}_events (recipient_id, kind, detail, at) VALUES (1, 10, '{{}}', now())",
        tenant.id, campaign.0
    );
    tx.batch_execute(&insert).await.unwrap();
    let click = hit(
        2,
        TrackingKind::Clicked,
        Some("https://shop.example/x"),
        "2026-11-01T10:00:00Z",
    );
    write(fx.store.as_ref(), tenant.id, campaign, &[click]).await;

    let exporting = {
        let (store, tenant, folders) = (Arc::clone(&fx.store), tenant.clone(), folders.clone());
        tokio::spawn(async move { export(store.as_ref(), &tenant, &folders).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tx.commit().await.unwrap();
    let first = exporting.await.unwrap();
    let second = export(fx.store.as_ref(), &tenant, &folders).await;

    assert_eq!(first, ["busy.1-2.csv"], "the export covers the late commit");
    assert!(second.is_empty(), "{second:?}");
    let rows = exported_rows(&folders);
    let events: Vec<&str> = rows.keys().map(|r| r[2].as_str()).collect();
    assert_eq!(
        events,
        ["opened", "clicked"],
        "person1 opened, person2 clicked"
    );
}

async fn write(
    store: &dyn Store,
    tenant: engine::model::TenantId,
    campaign: CampaignId,
    events: &[engine::store::TrackingEvent],
) {
    store
        .record_tracking_events(tenant, campaign, events)
        .await
        .unwrap();
}

/// Stands in for encryption: prefixes every byte stream with a marker and
/// writes a trailer when finished, as an encrypting stage would.
#[derive(Debug)]
struct Armor;

struct Armored(Box<dyn FinishWrite>);

impl std::io::Write for Armored {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl FinishWrite for Armored {
    fn finish(mut self: Box<Self>) -> std::io::Result<()> {
        self.0.write_all(b"-----END-----\n")?;
        self.0.finish()
    }
}

impl ExportFilter for Armor {
    fn suffix(&self) -> &str {
        ".armored"
    }

    fn wrap(&self, mut out: Box<dyn FinishWrite>) -> std::io::Result<Box<dyn FinishWrite>> {
        out.write_all(b"-----BEGIN-----\n")?;
        Ok(Box::new(Armored(out)))
    }
}

#[tokio::test]
async fn an_export_filter_wraps_the_stream_and_names_the_file() {
    let fx = Fixture::sqlite().await.unwrap();
    let tenant = fx.tenant("acme").await;
    let campaign = fx.campaign(&tenant, "spring", &emails(1)).await;
    let folders = fx.folders(&tenant);
    let delivered = outcome(
        1,
        RecipientState::Delivered,
        "250 ok",
        "2026-11-01T10:00:00Z",
    );
    fx.store
        .record_outcomes(tenant.id, campaign, &[delivered])
        .await
        .unwrap();

    let written = export_tenant(fx.store.as_ref(), &tenant, &folders, Some(&Armor))
        .await
        .unwrap();

    assert_eq!(written[0].as_ref().unwrap().file, "spring.1-1.csv.armored");
    let path = folders
        .folder(Folder::Exports)
        .join("spring.1-1.csv.armored");
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        text,
        "-----BEGIN-----\ncampaign,recipient,event,time,detail\n\
         spring,person1@mail1.example,delivered,2026-11-01T10:00:00.000Z,250 ok\n-----END-----\n"
    );
}

#[tokio::test]
async fn an_export_to_a_customer_key_decrypts_to_the_plain_csv() {
    use engine::exchange::pgp::{
        CustomerKey, PgpExportFilter, decrypting_reader, generate_secret_key,
    };
    use std::io::Read as _;

    let fx = Fixture::sqlite().await.unwrap();
    let tenant = fx.tenant("acme").await;
    let campaign = fx.campaign(&tenant, "spring", &emails(2)).await;
    let folders = fx.folders(&tenant);
    let delivered = outcome(
        2,
        RecipientState::Delivered,
        "250 ok",
        "2026-11-01T10:00:00Z",
    );
    fx.store
        .record_outcomes(tenant.id, campaign, &[delivered])
        .await
        .unwrap();
    // The customer's key pair; Broadside only ever sees the public half.
    let customer = generate_secret_key(&tenant.name).unwrap();
    let public = pgp::composed::SignedPublicKey::from(customer.clone())
        .to_armored_string(Default::default())
        .unwrap();
    let filter = PgpExportFilter::new(CustomerKey::parse(public.as_bytes()).unwrap());

    let written = export_tenant(fx.store.as_ref(), &tenant, &folders, Some(&filter))
        .await
        .unwrap();

    assert_eq!(written[0].as_ref().unwrap().file, "spring.1-1.csv.gpg");
    let path = folders.folder(Folder::Exports).join("spring.1-1.csv.gpg");
    let sealed = std::fs::read(&path).unwrap();
    assert!(
        !sealed.windows(b"person2@".len()).any(|w| w == b"person2@"),
        "no address in clear in the encrypted file"
    );
    let mut plain = String::new();
    decrypting_reader(std::fs::File::open(&path).unwrap(), &customer)
        .unwrap()
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(
        plain,
        "campaign,recipient,event,time,detail\n\
         spring,person2@mail2.example,delivered,2026-11-01T10:00:00.000Z,250 ok\n"
    );
}
