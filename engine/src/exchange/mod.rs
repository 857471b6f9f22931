//! The file exchange: per-tenant folders (`incoming`, `invalids`, `finished`,
//! `exports`), path handling that cannot leave a tenant's root, and the
//! control-file import that moves files once their import committed.

mod account;
mod control;
pub mod export;
mod path;
pub mod pgp;
pub mod retention;
mod writes;

pub use account::{hash_password, key_lines, verify_password};
pub use control::{
    CONTROL_SUFFIX, ExchangeError, FileImport, ImportTarget, Verdict, Watcher, import_named,
    slug_for,
};
pub use export::{ExportFilter, ExportSettings, ExportedFile, FinishWrite, export_tenant};
pub use path::{Location, PathError, check_file_name, resolve};
pub use retention::{RetentionPolicy, RetentionReport, RetentionSettings, run_retention};
pub use writes::{OpenWrites, WriteGuard};

use std::io;
use std::path::{Path, PathBuf};

use crate::model::TenantName;

/// One of the four folders every tenant has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Folder {
    /// Uploads; the only folder customers may write to.
    Incoming,
    /// Files refused as a whole, with their errors report.
    Invalids,
    /// Files imported, with a report when some rows were refused.
    Finished,
    /// Response data for the customer to fetch and delete.
    Exports,
}

impl Folder {
    pub const ALL: [Folder; 4] = [
        Folder::Incoming,
        Folder::Invalids,
        Folder::Finished,
        Folder::Exports,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Folder::Incoming => "incoming",
            Folder::Invalids => "invalids",
            Folder::Finished => "finished",
            Folder::Exports => "exports",
        }
    }

    pub fn parse(name: &str) -> Option<Folder> {
        Folder::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// A tenant's exchange root, `<exchange root>/<tenant name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantFolders {
    root: PathBuf,
}

/// Where imports write their report before the file's fate is known; not part
/// of the view customers get.
const WORK: &str = ".work";

impl TenantFolders {
    pub fn new(exchange_root: &Path, tenant: &TenantName) -> Self {
        // A tenant name is a slug (no '/', no '..'), so this stays under the root.
        Self {
            root: exchange_root.join(tenant.as_str()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn folder(&self, folder: Folder) -> PathBuf {
        self.root.join(folder.as_str())
    }

    pub(crate) fn work(&self) -> PathBuf {
        self.root.join(WORK)
    }

    /// Creates the folders that are missing; refuses a tenant root or folder
    /// that is a symlink, which could point anywhere.
    pub fn create(&self) -> io::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        refuse_symlink(&self.root)?;
        let names = Folder::ALL.iter().map(|f| f.as_str()).chain([WORK]);
        for name in names {
            let dir = self.root.join(name);
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            refuse_symlink(&dir)?;
        }
        Ok(())
    }
}

/// Fails when `path` is a symlink (a missing path is fine).
pub fn refuse_symlink(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is a symlink", path.display()),
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_created_once_and_symlinked_roots_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let acme = TenantName::parse("acme").expect("name");
        let folders = TenantFolders::new(dir.path(), &acme);

        folders.create().expect("create");
        folders.create().expect("create again");

        for folder in Folder::ALL {
            assert!(folders.folder(folder).is_dir());
        }
        let evil = TenantName::parse("evil").expect("name");
        std::os::unix::fs::symlink("/tmp", dir.path().join("evil")).expect("symlink");
        assert!(TenantFolders::new(dir.path(), &evil).create().is_err());
    }
}
