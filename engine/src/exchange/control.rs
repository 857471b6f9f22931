//! Control-file imports: `name.csv` in `incoming` is imported once
//! `name.csv.ctl` is there and the file has stopped changing; then it moves to
//! `finished` or `invalids` (with `name.errors.csv`) and the control file goes.
//!
//! Files named `*.pgp`, `*.gpg` or `*.asc` are decrypted with the tenant's key
//! as they are parsed (see `exchange::pgp`); they keep their encrypted form in
//! `finished`, and one that cannot be decrypted goes to `invalids` with the reason.
//!
//! The moves happen only after the import committed, and an import replaces a
//! draft campaign's rows, so a crash anywhere leaves the file importable again
//! and a re-import adds no duplicate recipients.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::pgp::{self, PgpError, PlainReader, TenantKeys};
use super::{Folder, OpenWrites, TenantFolders, check_file_name};
use crate::import::{ImportError, ImportOptions, ImportOutcome, import_csv};
use crate::model::{CampaignId, CampaignName};
use crate::store::{Store, StoreError, Tenant};

/// The control file's suffix.
pub const CONTROL_SUFFIX: &str = ".ctl";
/// Largest control file read; it holds a line or two.
const MAX_CONTROL: u64 = 4096;

/// Which campaign a file goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportTarget {
    /// By name, created as a draft when missing (control files).
    Name(CampaignName),
    /// An existing campaign of the tenant (the API).
    Id(CampaignId),
}

/// Where the file went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Finished,
    Invalid,
}

/// A settled import: the file has moved and its control file is gone.
#[derive(Debug, Clone)]
pub struct FileImport {
    pub file: String,
    pub campaign: Option<CampaignId>,
    pub verdict: Verdict,
    /// The import's counts, when it ran to the end.
    pub outcome: Option<ImportOutcome>,
    /// Why the whole file was refused, when it was.
    pub reason: Option<String>,
    /// The errors report beside the moved file, if one was written.
    pub report: Option<PathBuf>,
}

/// Why a file could not be settled now; it stays in `incoming` for a retry.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("{0} is not in incoming")]
    NotFound(String),
    #[error("exchange folder i/o: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Import(ImportError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tenant's key cannot be used (a master key problem, not the file's).
    #[error(transparent)]
    Pgp(PgpError),
}

/// The campaign name a file name implies: `Spring Sale.csv` → `spring-sale`.
pub fn slug_for(file: &str) -> Option<CampaignName> {
    let file = pgp::plain_name(file);
    let stem = file.strip_suffix(".csv").unwrap_or(file);
    let mut slug = String::new();
    for c in stem.chars() {
        match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => slug.push(c),
            _ if !slug.ends_with('-') => slug.push('-'),
            _ => {}
        }
    }
    let slug = slug.trim_matches(|c| c == '-' || c == '_');
    let slug: String = slug.chars().take(63).collect();
    CampaignName::parse(slug.trim_end_matches('-')).ok()
}

/// What the import step produced, before any file moved.
enum Staged {
    Done(CampaignId, ImportOutcome),
    Refused(Option<CampaignId>, String),
}

/// Imports `incoming/<file>` into `target` and settles it. The API's entry
/// point; the watcher calls it once a control file and a stable file agree.
/// Without `keys`, encrypted files are refused.
pub async fn import_named(
    store: &dyn Store,
    tenant: &Tenant,
    folders: &TenantFolders,
    file: &str,
    target: ImportTarget,
    options: &ImportOptions,
    keys: Option<&TenantKeys>,
) -> Result<FileImport, ExchangeError> {
    let staged = import_step(store, tenant, folders, file, target, options, keys).await?;
    settle(folders, file, staged)
}

/// Runs the import (report into the work folder) and moves nothing: a crash
/// after this leaves the file and its control file where they were.
async fn import_step(
    store: &dyn Store,
    tenant: &Tenant,
    folders: &TenantFolders,
    file: &str,
    target: ImportTarget,
    options: &ImportOptions,
    keys: Option<&TenantKeys>,
) -> Result<Staged, ExchangeError> {
    let name = check_file_name(file).map_err(|_| ExchangeError::NotFound(file.to_owned()))?;
    let path = folders.folder(Folder::Incoming).join(name);
    let source = open_regular(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ExchangeError::NotFound(file.to_owned()),
        _ => ExchangeError::Io(e),
    })?;
    let source: Box<dyn Read + Send> = match pgp::is_encrypted_name(file) {
        false => Box::new(source),
        true => match decrypt(store, tenant, keys, source).await? {
            Ok(plain) => Box::new(plain),
            Err(reason) => return Ok(Staged::Refused(None, reason)),
        },
    };
    let campaign = match campaign_for(store, tenant, target).await {
        Ok(id) => id,
        Err(StoreError::UnknownCampaign { .. }) => {
            return Ok(Staged::Refused(None, "the campaign does not exist".into()));
        }
        Err(e) => return Err(e.into()),
    };
    let report = work_report(folders, file);
    let imported = import_csv(
        store,
        tenant.id,
        campaign,
        source,
        file,
        &report,
        options,
        &|_| {},
    );
    match imported.await {
        Ok(outcome) => Ok(Staged::Done(campaign, outcome)),
        Err(e @ (ImportError::Format { .. } | ImportError::Options(_))) => {
            Ok(Staged::Refused(Some(campaign), e.to_string()))
        }
        Err(ImportError::Store(
            e @ (StoreError::WrongStatus { .. } | StoreError::UnknownCampaign { .. }),
        )) => Ok(Staged::Refused(Some(campaign), e.to_string())),
        // A damaged or tampered encrypted file: no retry will read it.
        Err(e @ ImportError::Read { .. }) if is_decrypt_failure(&e) => {
            Ok(Staged::Refused(Some(campaign), e.to_string()))
        }
        Err(e) => Err(ExchangeError::Import(e)),
    }
}

fn is_decrypt_failure(error: &ImportError) -> bool {
    matches!(error, ImportError::Read { source, .. } if PlainReader::is_decrypt_error(source))
}

/// The plaintext of an encrypted upload, or why the file cannot be read (which
/// refuses it). Errors are what a retry may cure: the store, the master key.
async fn decrypt(
    store: &dyn Store,
    tenant: &Tenant,
    keys: Option<&TenantKeys>,
    source: std::fs::File,
) -> Result<Result<PlainReader, String>, ExchangeError> {
    let Some(keys) = keys else {
        return Ok(Err("encrypted files cannot be imported this way".into()));
    };
    let key = match keys.secret_key(store, tenant.id).await {
        Ok(key) => key,
        Err(PgpError::Store(e)) => return Err(e.into()),
        Err(e @ PgpError::Sealed(_)) => return Err(ExchangeError::Pgp(e)),
        Err(e) => return Ok(Err(e.to_string())),
    };
    // Reading the first packets and unwrapping the session key is file I/O and
    // public-key work: off the async threads.
    tokio::task::spawn_blocking(move || pgp::decrypting_reader(source, &key))
        .await
        .map_err(|e| ExchangeError::Io(io::Error::other(e)))
        .map(|opened| opened.map_err(|e| e.to_string()))
}

async fn campaign_for(
    store: &dyn Store,
    tenant: &Tenant,
    target: ImportTarget,
) -> Result<CampaignId, StoreError> {
    let unknown = |campaign| StoreError::UnknownCampaign {
        tenant: tenant.id,
        campaign,
    };
    match target {
        ImportTarget::Id(id) => match store.campaign(tenant.id, id).await? {
            Some(campaign) => Ok(campaign.id),
            None => Err(unknown(id)),
        },
        ImportTarget::Name(name) => match store.campaign_by_name(tenant.id, &name).await? {
            Some(campaign) => Ok(campaign.id),
            None => Ok(store.create_campaign(tenant.id, &name).await?.id),
        },
    }
}

/// Opens a regular file, never through a symlink.
fn open_regular(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// `list.csv` and `list.csv.gpg` both report in `list.errors.csv`.
fn report_name(file: &str) -> String {
    let file = pgp::plain_name(file);
    format!("{}.errors.csv", file.strip_suffix(".csv").unwrap_or(file))
}

fn work_report(folders: &TenantFolders, file: &str) -> PathBuf {
    folders.work().join(report_name(file))
}

/// Moves the report, then the file, then removes the control file: the file's
/// move is what marks it done, so the control file goes last.
fn settle(
    folders: &TenantFolders,
    file: &str,
    staged: Staged,
) -> Result<FileImport, ExchangeError> {
    let work = work_report(folders, file);
    let (campaign, verdict, outcome, reason) = match staged {
        Staged::Done(id, outcome) if outcome.accepted => {
            (Some(id), Verdict::Finished, Some(outcome), None)
        }
        Staged::Done(id, outcome) => {
            let reason = format!(
                "{} of {} rows refused",
                outcome.rejected, outcome.total_rows
            );
            (Some(id), Verdict::Invalid, Some(outcome), Some(reason))
        }
        Staged::Refused(id, reason) => {
            if !work.exists() {
                write_file_report(&work, &reason)?;
            }
            (id, Verdict::Invalid, None, Some(reason))
        }
    };
    let dest = folders.folder(match verdict {
        Verdict::Finished => Folder::Finished,
        Verdict::Invalid => Folder::Invalids,
    });
    let report = match work.exists() {
        true => {
            let to = dest.join(report_name(file));
            std::fs::rename(&work, &to)?;
            Some(to)
        }
        false => None,
    };
    let incoming = folders.folder(Folder::Incoming);
    // Another import (the API and the watcher at once) may have settled it.
    std::fs::rename(incoming.join(file), dest.join(file)).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ExchangeError::NotFound(file.to_owned()),
        _ => ExchangeError::Io(e),
    })?;
    remove_if_present(&incoming.join(format!("{file}{CONTROL_SUFFIX}")))?;
    Ok(FileImport {
        file: file.to_owned(),
        campaign,
        verdict,
        outcome,
        reason,
        report,
    })
}

/// A report for a file refused before any row was read (unknown campaign, a
/// campaign already running): the same columns as row reports.
fn write_file_report(path: &Path, reason: &str) -> io::Result<()> {
    let mut writer = csv::Writer::from_path(path)?;
    writer.write_record(["line", "column", "reason", "email"])?;
    writer.write_record(["0", "", reason, ""])?;
    writer.flush()
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Size and modification time, compared across scans.
type Stamp = (u64, Option<SystemTime>);

/// Scans `incoming` folders and imports what is ready. One per process; it
/// remembers what the last scan saw.
#[derive(Debug, Default)]
pub struct Watcher {
    /// Files seen by the last scan, with their stamp then.
    seen: HashMap<PathBuf, Stamp>,
    /// Files an SFTP client still has open for writing.
    writes: OpenWrites,
    /// Decrypts encrypted uploads; without it they are refused.
    keys: Option<TenantKeys>,
}

impl Watcher {
    pub fn new(writes: OpenWrites) -> Self {
        Self {
            seen: HashMap::new(),
            writes,
            keys: None,
        }
    }

    /// Imports encrypted uploads too, decrypting them with the tenants' keys.
    pub fn with_pgp(mut self, keys: TenantKeys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// One scan of one tenant: imports each file whose control file is present
    /// and whose stamp matches the previous scan. Errors leave the file for the
    /// next scan.
    pub async fn scan(
        &mut self,
        store: &dyn Store,
        tenant: &Tenant,
        folders: &TenantFolders,
        options: &ImportOptions,
    ) -> Vec<Result<FileImport, ExchangeError>> {
        let mut results = Vec::new();
        for (file, control) in self.ready(folders) {
            let target = match read_control(&control, &file) {
                Ok(target) => target,
                Err(reason) => {
                    results.push(settle(folders, &file, Staged::Refused(None, reason)));
                    continue;
                }
            };
            let keys = self.keys.as_ref();
            results.push(import_named(store, tenant, folders, &file, target, options, keys).await);
        }
        results
    }

    /// Files with a control file, unchanged since the last scan and not open.
    fn ready(&mut self, folders: &TenantFolders) -> Vec<(String, PathBuf)> {
        let incoming = folders.folder(Folder::Incoming);
        let Ok(entries) = std::fs::read_dir(&incoming) else {
            return Vec::new();
        };
        let mut ready = Vec::new();
        let mut present = Vec::new();
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue }; // no symlink follow
            if !meta.is_file() || name.ends_with(CONTROL_SUFFIX) || check_file_name(&name).is_err()
            {
                continue;
            }
            let path = entry.path();
            let stamp = (meta.len(), meta.modified().ok());
            let control = incoming.join(format!("{name}{CONTROL_SUFFIX}"));
            let stable = self.seen.get(&path) == Some(&stamp);
            let open = self.writes.is_open(&path) || self.writes.is_open(&control);
            if stable && !open && control.is_file() {
                ready.push((name, control));
            }
            present.push((path, stamp));
        }
        self.seen.retain(|path, _| !path.starts_with(&incoming));
        self.seen.extend(present);
        ready
    }
}

/// Reads `campaign=<name>` from a control file; an empty one means the name
/// derived from the file name.
fn read_control(control: &Path, file: &str) -> Result<ImportTarget, String> {
    use std::io::Read as _;
    let mut text = String::new();
    open_regular(control)
        .and_then(|f| f.take(MAX_CONTROL).read_to_string(&mut text))
        .map_err(|e| format!("cannot read the control file: {e}"))?;
    for line in text.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("campaign=") {
            return CampaignName::parse(value.trim())
                .map(ImportTarget::Name)
                .map_err(|e| format!("control file: {e}"));
        }
    }
    slug_for(file).map(ImportTarget::Name).ok_or_else(|| {
        format!("no campaign name can be derived from {file:?}; name it in the control file")
    })
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod tests;
