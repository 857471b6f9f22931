//! Retention: exchange files older than their folder's limit are deleted, and a
//! campaign past its lifetime loses its personal data (recipient and event
//! tables, batch idempotency records, the exchange files that name it), keeping
//! only its aggregate counters. Every deletion is written to the audit log as
//! `system:retention`, naming files by their path in the tenant's view and
//! campaigns by id, never a recipient's address.
//!
//! The tenant's suppression list is its do-not-mail list, not campaign data, and
//! stays.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Folder, OpenWrites, TenantFolders, check_file_name, export};
use crate::config::{Duration, RetentionConfig};
use crate::model::CampaignId;
use crate::store::{AuditRecord, Campaign, CampaignStatus, Store, StoreError, Tenant};

/// Who retention's audit entries name as the actor.
pub const ACTOR: &str = "system:retention";

/// The tenant's `retention` settings section; `None` is the installation's
/// default from `exchange.retention`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    pub incoming: Option<Duration>,
    pub finished: Option<Duration>,
    pub invalids: Option<Duration>,
    pub exports: Option<Duration>,
    pub campaign_lifetime: Option<Duration>,
}

/// The limits in force for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub incoming: chrono::Duration,
    pub finished: chrono::Duration,
    pub invalids: chrono::Duration,
    pub exports: chrono::Duration,
    pub campaign_lifetime: chrono::Duration,
}

fn chrono_of(duration: Duration) -> chrono::Duration {
    chrono::Duration::milliseconds(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

impl RetentionPolicy {
    /// The installation's defaults with the tenant's overrides applied.
    pub fn new(defaults: &RetentionConfig, tenant: &RetentionSettings) -> Self {
        let pick = |own: Option<Duration>, default: Duration| chrono_of(own.unwrap_or(default));
        Self {
            incoming: pick(tenant.incoming, defaults.incoming),
            finished: pick(tenant.finished, defaults.finished),
            invalids: pick(tenant.invalids, defaults.invalids),
            exports: pick(tenant.exports, defaults.exports),
            campaign_lifetime: pick(tenant.campaign_lifetime, defaults.campaign_lifetime),
        }
    }

    pub fn for_folder(&self, folder: Folder) -> chrono::Duration {
        match folder {
            Folder::Incoming => self.incoming,
            Folder::Finished => self.finished,
            Folder::Invalids => self.invalids,
            Folder::Exports => self.exports,
        }
    }
}

/// What one run deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Paths in the tenant's view (`finished/people.csv`).
    pub files: Vec<String>,
    pub campaigns: Vec<CampaignId>,
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("retention in {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One retention run over one tenant at `now`. Stops at the first error (a
/// deletion that could not be audited must not be followed by more); the next
/// run starts over and finds what is still due. `api_reports` is where HTTP
/// imports write their errors reports (`api-c<campaign>-….errors.csv`), which
/// go with their campaign's lifetime.
pub async fn run_retention(
    store: &dyn Store,
    tenant: &Tenant,
    folders: &TenantFolders,
    policy: &RetentionPolicy,
    writes: &OpenWrites,
    api_reports: Option<&Path>,
    now: DateTime<Utc>,
) -> Result<RetentionReport, RetentionError> {
    let mut report = RetentionReport::default();
    for folder in Folder::ALL {
        let cutoff = now - policy.for_folder(folder);
        for name in expired_files(folders, folder, cutoff, writes)? {
            let why = json!({ "reason": "retention", "folder": folder.as_str() });
            delete_file(store, tenant, folders, folder, &name, now, &why).await?;
            report.files.push(format!("{}/{name}", folder.as_str()));
        }
    }
    // Work files (an import's report, an export being written) left by a
    // crash are never offered to the customer; they go with `incoming`'s limit.
    let cutoff = now - policy.incoming;
    for name in stale_work_files(folders, cutoff)? {
        if let Some(deleted) = delete_work_file(store, tenant, folders, &name, now).await? {
            report.files.push(deleted);
        }
    }
    for campaign in store.campaigns(tenant.id).await? {
        let start = campaign.launched_at.unwrap_or(campaign.created_at);
        if now - start <= policy.campaign_lifetime {
            continue;
        }
        if end_campaign(store, tenant, folders, &campaign, now, &mut report.files).await? {
            report.campaigns.push(campaign.id);
        }
        if let Some(dir) = api_reports {
            let deleted = delete_api_reports(store, tenant, dir, campaign.id, now).await?;
            report.files.extend(deleted);
        }
    }
    Ok(report)
}

/// Regular files of `folder` last modified before `cutoff` (a file exactly at
/// its limit stays), except those an SFTP client is writing.
fn expired_files(
    folders: &TenantFolders,
    folder: Folder,
    cutoff: DateTime<Utc>,
    writes: &OpenWrites,
) -> Result<Vec<String>, RetentionError> {
    let dir = folders.folder(folder);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RetentionError::Io {
                path: folder.as_str().to_owned(),
                source,
            });
        }
    };
    let mut due = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || writes.is_open(&entry.path()) {
            continue;
        }
        if modified(&meta).is_some_and(|at| at < cutoff) {
            due.push(name);
        }
    }
    due.sort();
    Ok(due)
}

async fn delete_work_file(
    store: &dyn Store,
    tenant: &Tenant,
    folders: &TenantFolders,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, RetentionError> {
    let target = format!("{WORK_VIEW}/{name}");
    match std::fs::remove_file(folders.work().join(name)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RetentionError::Io {
                path: target,
                source,
            });
        }
    }
    let why = json!({ "reason": "retention", "folder": WORK_VIEW });
    let record = AuditRecord::new(Some(tenant.id), ACTOR, "file.delete", now)
        .target(target.clone())
        .detail(&why);
    store.append_audit(&record).await?;
    Ok(Some(target))
}

/// How audit entries name the folder of HTTP imports' reports.
const REPORTS_VIEW: &str = "reports";

/// Deletes the errors reports HTTP imports wrote for `campaign`; they list
/// refused rows with their addresses.
async fn delete_api_reports(
    store: &dyn Store,
    tenant: &Tenant,
    dir: &Path,
    campaign: CampaignId,
    now: DateTime<Utc>,
) -> Result<Vec<String>, RetentionError> {
    let prefix = format!("api-c{}-", campaign.0);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            let path = REPORTS_VIEW.to_owned();
            return Err(RetentionError::Io { path, source });
        }
    };
    let mut deleted = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !name.starts_with(&prefix) || !name.ends_with(".errors.csv") {
            continue;
        }
        let target = format!("{REPORTS_VIEW}/{name}");
        match std::fs::remove_file(entry.path()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(RetentionError::Io {
                    path: target,
                    source,
                });
            }
        }
        let why = json!({ "reason": "campaign_lifetime", "campaign": campaign.0 });
        let record = AuditRecord::new(Some(tenant.id), ACTOR, "file.delete", now)
            .target(target.clone())
            .detail(&why);
        store.append_audit(&record).await?;
        deleted.push(target);
    }
    Ok(deleted)
}

/// How audit entries name the work folder.
const WORK_VIEW: &str = ".work";

fn stale_work_files(
    folders: &TenantFolders,
    cutoff: DateTime<Utc>,
) -> Result<Vec<String>, RetentionError> {
    let entries = match std::fs::read_dir(folders.work()) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RetentionError::Io {
                path: WORK_VIEW.to_owned(),
                source,
            });
        }
    };
    let mut due: Vec<String> = entries
        .flatten()
        .filter(|e| {
            e.metadata()
                .ok()
                .filter(std::fs::Metadata::is_file)
                .and_then(|meta| modified(&meta))
                .is_some_and(|at| at < cutoff)
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    due.sort();
    Ok(due)
}

fn modified(meta: &std::fs::Metadata) -> Option<DateTime<Utc>> {
    meta.modified().ok().map(DateTime::<Utc>::from)
}

/// Deletes `folder/name` and audits it; a file already gone is no error and
/// no entry.
async fn delete_file(
    store: &dyn Store,
    tenant: &Tenant,
    folders: &TenantFolders,
    folder: Folder,
    name: &str,
    now: DateTime<Utc>,
    why: &serde_json::Value,
) -> Result<bool, RetentionError> {
    let target = format!("{}/{name}", folder.as_str());
    match std::fs::remove_file(folders.folder(folder).join(name)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(RetentionError::Io {
                path: target,
                source,
            });
        }
    }
    let record = AuditRecord::new(Some(tenant.id), ACTOR, "file.delete", now)
        .target(target)
        .detail(why);
    store.append_audit(&record).await?;
    Ok(true)
}

/// Ends a campaign's lifetime: a campaign still sending is cancelled first, its
/// personal data is purged, and the files that name it go. Returns whether the
/// store removed anything (then a `campaign.purge` entry is written).
async fn end_campaign(
    store: &dyn Store,
    tenant: &Tenant,
    folders: &TenantFolders,
    campaign: &Campaign,
    now: DateTime<Utc>,
    files: &mut Vec<String>,
) -> Result<bool, RetentionError> {
    if matches!(
        campaign.status,
        CampaignStatus::Running | CampaignStatus::Paused
    ) {
        match store
            .set_campaign_status(tenant.id, campaign.id, CampaignStatus::Cancelled)
            .await
        {
            Ok(()) | Err(StoreError::WrongStatus { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let purged = store.purge_campaign(tenant.id, campaign.id).await?;
    if purged.removed_anything() {
        let detail = json!({
            "campaign": campaign.name.as_str(),
            "tables_dropped": purged.tables_dropped,
            "idempotency_records": purged.idempotency_records,
        });
        let record = AuditRecord::new(Some(tenant.id), ACTOR, "campaign.purge", now)
            .target(campaign.id.to_string())
            .detail(&detail);
        store.append_audit(&record).await?;
    }
    let why = json!({ "reason": "campaign_lifetime", "campaign": campaign.id.0 });
    for (folder, name) in campaign_files(store, folders, campaign).await? {
        if delete_file(store, tenant, folders, folder, &name, now, &why).await? {
            files.push(format!("{}/{name}", folder.as_str()));
        }
    }
    Ok(purged.removed_anything())
}

/// The exchange files that belong to the campaign: its exports (by name
/// prefix), and the files its imports read with their reports and control files
/// in any folder — only when not modified after that import committed, so a
/// later upload that reuses the name (for another campaign) is left alone.
async fn campaign_files(
    store: &dyn Store,
    folders: &TenantFolders,
    campaign: &Campaign,
) -> Result<Vec<(Folder, String)>, RetentionError> {
    let mut found = Vec::new();
    let prefix = export::file_prefix(campaign);
    for name in file_names(folders, Folder::Exports)? {
        if name.starts_with(&prefix) {
            found.push((Folder::Exports, name));
        }
    }
    for import in store.import_sources(campaign.tenant, campaign.id).await? {
        let Ok(source) = check_file_name(&import.source) else {
            continue; // a path given to `broadside import`, not an exchange file
        };
        let stem = source.strip_suffix(".csv").unwrap_or(source);
        let names = [
            source.to_owned(),
            format!("{source}{}", super::CONTROL_SUFFIX),
            format!("{stem}.errors.csv"),
        ];
        for folder in [Folder::Incoming, Folder::Finished, Folder::Invalids] {
            for name in &names {
                let path = folders.folder(folder).join(name);
                if written_by(&path, import.committed_at) {
                    found.push((folder, name.clone()));
                }
            }
        }
    }
    Ok(found)
}

/// Whether `path` is a regular file last modified no later than `at`. A second
/// of slack: stores keep commit times in milliseconds, file systems finer.
fn written_by(path: &Path, at: DateTime<Utc>) -> bool {
    let at = at + chrono::Duration::seconds(1);
    std::fs::symlink_metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .and_then(|meta| modified(&meta))
        .is_some_and(|modified| modified <= at)
}

fn file_names(folders: &TenantFolders, folder: Folder) -> Result<Vec<String>, RetentionError> {
    match std::fs::read_dir(folders.folder(folder)) {
        Ok(entries) => Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(RetentionError::Io {
            path: folder.as_str().to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::{SettingsError, TenantSettings};

    #[test]
    fn tenant_settings_override_the_defaults_and_bad_values_are_refused() {
        let settings = TenantSettings::default()
            .with_value("retention.finished", "3d")
            .expect("a duration");
        let policy = RetentionPolicy::new(&RetentionConfig::default(), &settings.retention);

        assert_eq!(policy.finished, chrono::Duration::days(3));
        assert_eq!(policy.incoming, chrono::Duration::days(2), "the default");
        assert_eq!(policy.campaign_lifetime, chrono::Duration::days(28));
        let back = settings
            .with_value("retention.finished", "null")
            .expect("reset");
        assert_eq!(back, TenantSettings::default());
        assert!(matches!(
            settings.with_value("retention.finished", "3 parsecs"),
            Err(SettingsError::InvalidValue { .. })
        ));
        assert!(matches!(
            settings.with_value("exports.interval", "15m"),
            Ok(s) if s.exports.interval == Some(Duration::from_secs(900))
        ));
    }
}
