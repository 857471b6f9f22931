//! Response-data exports: each campaign's events since the last export, as one
//! CSV file per campaign per run in the tenant's `exports` folder.
//!
//! No event is skipped or written twice, across restarts too:
//! 1. the run's range `(exported, through]` is fixed and stored as `pending`
//!    before anything is written (`through` is the store's committed bound, so
//!    no event with a smaller id can appear later);
//! 2. the file, named after that range, is written under a temporary name,
//!    fsynced and renamed into `exports` (readers see all of it or nothing);
//! 3. only then does the watermark move to `through`.
//!
//! A crash before 3 repeats the same range under the same name, so the rerun
//! replaces the file with identical content instead of adding a second one.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Folder, TenantFolders};
use crate::config::Duration;
use crate::model::{CampaignId, StateCode};
use crate::store::{
    Campaign, CampaignEvent, EventKind, ExportWatermark, Store, StoreError, Tenant, TrackingKind,
};

/// The header of every export file.
pub const EXPORT_COLUMNS: [&str; 5] = ["campaign", "recipient", "event", "time", "detail"];

/// Events read from the store per query: bounds memory whatever the campaign size.
const PAGE: u32 = 2_000;

/// The tenant's `exports` settings section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportSettings {
    /// How often this tenant's events are exported; `None` is
    /// `exchange.export_interval`.
    pub interval: Option<Duration>,
}

/// The end of an export stream: flushes everything it buffered (and, for an
/// encrypting stage, writes its trailer) when the file is complete.
pub trait FinishWrite: Write + Send {
    fn finish(self: Box<Self>) -> io::Result<()>;
}

impl FinishWrite for BufWriter<File> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.flush()
    }
}

/// A stage between the CSV writer and the file, for example encryption to the
/// customer's public key: it wraps the file's stream and names the result.
pub trait ExportFilter: Send + Sync + std::fmt::Debug {
    /// Appended to the file name (`.pgp`); the customer sees what to expect.
    fn suffix(&self) -> &str;
    fn wrap(&self, out: Box<dyn FinishWrite>) -> io::Result<Box<dyn FinishWrite>>;
}

/// One export file written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    pub campaign: CampaignId,
    /// The file name in `exports`.
    pub file: String,
    pub events: u64,
    /// The event id range covered, both ends included.
    pub first_id: i64,
    pub last_id: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing the export of campaign {campaign}: {source}")]
    Io {
        campaign: CampaignId,
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Exports every imported campaign of the tenant that has new events. A
/// campaign that fails is reported and the others still run.
pub async fn export_tenant(
    store: &dyn Store,
    tenant: &Tenant,
    folders: &TenantFolders,
    filter: Option<&dyn ExportFilter>,
) -> Result<Vec<Result<ExportedFile, ExportError>>, StoreError> {
    let mut results = Vec::new();
    for campaign in store.campaigns(tenant.id).await? {
        if !campaign.imported {
            continue;
        }
        match export_campaign(store, tenant, &campaign, folders, filter).await {
            Ok(Some(file)) => results.push(Ok(file)),
            Ok(None) => {}
            // Purged between the listing and now: nothing left to export.
            Err(ExportError::Store(StoreError::NotImported(_))) => {}
            Err(e) => results.push(Err(e)),
        }
    }
    Ok(results)
}

/// Exports the campaign's events past its watermark; `None` when there are none.
pub async fn export_campaign(
    store: &dyn Store,
    tenant: &Tenant,
    campaign: &Campaign,
    folders: &TenantFolders,
    filter: Option<&dyn ExportFilter>,
) -> Result<Option<ExportedFile>, ExportError> {
    let (t, c) = (tenant.id, campaign.id);
    let mark = store.export_watermark(t, c).await?;
    let through = match mark.pending {
        Some(pending) => pending,
        None => {
            let bound = store.committed_event_bound(t, c).await?;
            if bound <= mark.exported {
                return Ok(None);
            }
            let pending = ExportWatermark {
                exported: mark.exported,
                pending: Some(bound),
            };
            store.set_export_watermark(t, c, pending).await?;
            bound
        }
    };
    let suffix = filter.map_or("", |f| f.suffix());
    let file = file_name(campaign, mark.exported + 1, through, suffix);
    let io = |source| ExportError::Io {
        campaign: c,
        source,
    };
    let temp = folders.work().join(format!("export-{file}.tmp"));
    let events = write_range(store, campaign, &temp, mark.exported, through, filter).await?;
    let target = folders.folder(Folder::Exports).join(&file);
    tokio::task::spawn_blocking(move || publish(&temp, &target))
        .await
        .map_err(|e| io(io::Error::other(e)))?
        .map_err(io)?;
    let done = ExportWatermark {
        exported: through,
        pending: None,
    };
    store.set_export_watermark(t, c, done).await?;
    Ok(Some(ExportedFile {
        campaign: c,
        file,
        events,
        first_id: mark.exported + 1,
        last_id: through,
    }))
}

/// `<campaign>.<first id>-<last id>.csv`: campaign names cannot hold a dot, so
/// the prefix `<campaign>.` names exactly one campaign's exports.
pub fn file_name(campaign: &Campaign, first: i64, last: i64, suffix: &str) -> String {
    format!("{}.{first}-{last}.csv{suffix}", campaign.name)
}

/// The prefix every export file of `campaign` starts with.
pub fn file_prefix(campaign: &Campaign) -> String {
    format!("{}.", campaign.name)
}

/// Streams `(after, through]` page by page into `temp`; returns the number of
/// events written.
async fn write_range(
    store: &dyn Store,
    campaign: &Campaign,
    temp: &Path,
    after: i64,
    through: i64,
    filter: Option<&dyn ExportFilter>,
) -> Result<u64, ExportError> {
    let io = |source| ExportError::Io {
        campaign: campaign.id,
        source,
    };
    let file = File::create(temp).map_err(io)?;
    let mut out: Box<dyn FinishWrite> = Box::new(BufWriter::with_capacity(64 * 1024, file));
    if let Some(filter) = filter {
        out = filter.wrap(out).map_err(io)?;
    }
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(EXPORT_COLUMNS).map_err(|e| io(e.into()))?;
    let (mut cursor, mut written) = (after, 0u64);
    loop {
        let page = store
            .campaign_events(campaign.tenant, campaign.id, cursor, through, PAGE)
            .await?;
        for event in &page {
            let time = event
                .at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let record = [
                campaign.name.as_str(),
                event.email.as_deref().unwrap_or(""),
                event.kind.as_str(),
                time.as_str(),
                &detail(event),
            ];
            csv.write_record(record).map_err(|e| io(e.into()))?;
        }
        written += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == PAGE as usize => cursor = last.id,
            _ => break,
        }
    }
    let out = csv.into_inner().map_err(|e| io(e.into_error()))?;
    out.finish().map_err(io)?;
    Ok(written)
}

/// Makes the finished temporary file durable, then visible under its name, and
/// makes the rename durable too.
fn publish(temp: &Path, target: &Path) -> io::Result<()> {
    File::open(temp)?.sync_all()?;
    std::fs::rename(temp, target)?;
    let dir: PathBuf = target.parent().map(Path::to_path_buf).unwrap_or_default();
    File::open(dir)?.sync_all()
}

/// The detail column: the SMTP reply or reason of an outcome (bounces prefixed
/// with their class), the URL of a click, `machine` for hits an image proxy or
/// link scanner made.
pub fn detail(event: &CampaignEvent) -> String {
    match event.kind {
        EventKind::Outcome(StateCode::Bounced) => {
            let reply = event.detail.as_deref().unwrap_or("");
            format!("{}; {reply}", bounce_class(reply))
        }
        EventKind::Outcome(_) => event.detail.clone().unwrap_or_default(),
        EventKind::Tracking(kind) => {
            let detail = event.tracking_detail();
            let mut parts = Vec::new();
            if kind == TrackingKind::Clicked
                && let Some(url) = &detail.url
            {
                parts.push(url.clone());
            }
            if detail.machine {
                parts.push("machine".to_owned());
            }
            parts.join("; ")
        }
    }
}

/// The bounce class from the reply's enhanced status code (RFC 3463 subjects),
/// `other` when it has none.
pub fn bounce_class(reply: &str) -> &'static str {
    let enhanced = reply
        .split_whitespace()
        .find(|word| word.starts_with("5.") || word.starts_with("4."));
    let subject = enhanced.and_then(|code| code.split('.').nth(1));
    match subject {
        Some("1") => "address",
        Some("2") => "mailbox",
        Some("3") => "mail-system",
        Some("4") => "routing",
        Some("5") => "protocol",
        Some("6") => "content",
        Some("7") => "policy",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecipientId;

    fn event(kind: EventKind, detail: Option<&str>) -> CampaignEvent {
        CampaignEvent {
            id: 1,
            recipient: RecipientId(1),
            email: Some("a@x.example".into()),
            kind,
            detail: detail.map(str::to_owned),
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn details_carry_the_reply_the_bounce_class_and_the_clicked_url() {
        let bounced = event(
            EventKind::Outcome(StateCode::Bounced),
            Some("550 5.1.1 no such user"),
        );
        let delivered = event(EventKind::Outcome(StateCode::Delivered), Some("250 ok"));
        let click = event(
            EventKind::Tracking(TrackingKind::Clicked),
            Some(r#"{"url":"https://shop.example/a","machine":true}"#),
        );

        assert_eq!(detail(&bounced), "address; 550 5.1.1 no such user");
        assert_eq!(detail(&delivered), "250 ok");
        assert_eq!(detail(&click), "https://shop.example/a; machine");
        assert_eq!(bounce_class("550 rejected"), "other");
        assert_eq!(bounce_class("554 5.7.1 spam"), "policy");
    }
}
