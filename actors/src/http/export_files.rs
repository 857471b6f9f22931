//! A tenant's exchange `exports` folder as HTTP sees it, shared by the API
//! (`/v1/exports`) and the web application: listing the files, and opening and
//! streaming one. Only plain names of regular files are served; the tenant's
//! folder and the file itself must not be symlinks, which could point anywhere
//! (another tenant's folder, the master key). Anything else is "not found",
//! the same answer whether or not another tenant has a file of that name.

use std::path::{Path, PathBuf};

use actix_web::HttpResponse;
use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use engine::exchange::{Folder, TenantFolders, check_file_name, refuse_symlink};
use engine::model::TenantName;
use serde::Serialize;
use tokio::io::AsyncReadExt as _;

/// Bytes read from the file per chunk of the response.
const CHUNK: usize = 64 * 1024;

/// Files listed at most: a folder flooded with files (a retention setting that
/// keeps everything) cannot make one listing unbounded.
pub const MAX_LISTED: usize = 10_000;

/// One file of the folder.
#[derive(Debug, Clone, Serialize)]
pub struct ExportFile {
    pub name: String,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
}

/// Why the folder could not be read (not found is an empty list, not this).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct FolderError {
    path: String,
    source: std::io::Error,
}

/// The tenant's `exports` folder, after checking that neither it nor the
/// tenant's root is a symlink.
fn folder(exchange_root: &Path, tenant: &TenantName) -> Result<PathBuf, FolderError> {
    let folders = TenantFolders::new(exchange_root, tenant);
    let exports = folders.folder(Folder::Exports);
    let fail = |path: &Path, source| FolderError {
        path: path.display().to_string(),
        source,
    };
    refuse_symlink(folders.root()).map_err(|e| fail(folders.root(), e))?;
    refuse_symlink(&exports).map_err(|e| fail(&exports, e))?;
    Ok(exports)
}

/// The regular files of the tenant's exports folder with valid names, by name
/// (at most `MAX_LISTED`); empty when nothing was exported yet.
pub async fn list(
    exchange_root: &Path,
    tenant: &TenantName,
) -> Result<Vec<ExportFile>, FolderError> {
    let folder = folder(exchange_root, tenant)?;
    let fail = |source| FolderError {
        path: folder.display().to_string(),
        source,
    };
    let mut entries = match tokio::fs::read_dir(&folder).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(fail(e)),
    };
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(fail)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        // `DirEntry::metadata` does not follow symlinks: a link is never a file.
        let Ok(meta) = entry.metadata().await else {
            continue;
        };
        if !meta.is_file() || check_file_name(&name).is_err() {
            continue;
        }
        files.push(ExportFile {
            name,
            size: meta.len(),
            modified: meta.modified().ok().map(DateTime::<Utc>::from),
        });
        if files.len() >= MAX_LISTED {
            break;
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// An export file opened for reading.
#[derive(Debug)]
pub struct OpenExport {
    pub name: String,
    pub size: u64,
    file: tokio::fs::File,
}

/// Opens `name` in the tenant's exports folder: a plain name of a regular file,
/// opened with `O_NOFOLLOW`; `None` for anything else.
pub async fn open(exchange_root: &Path, tenant: &TenantName, name: &str) -> Option<OpenExport> {
    check_file_name(name).ok()?;
    let path = folder(exchange_root, tenant).ok()?.join(name);
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .await
        .ok()?;
    // The metadata of the opened file, so a swap between a check and the open
    // cannot serve something else.
    let meta = file.metadata().await.ok()?;
    meta.is_file().then(|| OpenExport {
        name: name.to_owned(),
        size: meta.len(),
        file,
    })
}

impl OpenExport {
    /// The file as an attachment, streamed in chunks (never whole in memory).
    pub fn response(self) -> HttpResponse {
        let stream = futures_util::stream::unfold(Some(self.file), |file| async move {
            let mut file = file?;
            let mut buf = vec![0u8; CHUNK];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(Bytes::from(buf)), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        let disposition = ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(self.name)],
        };
        HttpResponse::Ok()
            .content_type("application/octet-stream")
            .insert_header(disposition)
            .no_chunking(self.size)
            .streaming(stream)
    }
}

/// Percent-encodes a file name for a URL path segment (all but unreserved).
pub fn path_segment(name: &str) -> String {
    use std::fmt::Write as _;
    name.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_keep_only_unreserved_bytes() {
        assert_eq!(path_segment("a b/é.csv"), "a%20b%2F%C3%A9.csv");
        assert_eq!(path_segment("spring.1-9.csv"), "spring.1-9.csv");
    }

    #[tokio::test]
    async fn symlinks_are_neither_listed_nor_opened() {
        let root = tempfile::tempdir().expect("dir");
        let tenant = TenantName::parse("acme").expect("name");
        let folders = TenantFolders::new(root.path(), &tenant);
        folders.create().expect("folders");
        let exports = folders.folder(Folder::Exports);
        std::fs::write(exports.join("real.csv"), b"a,b\n").expect("file");
        let secret = root.path().join("secret.txt");
        std::fs::write(&secret, b"secret").expect("secret");
        std::os::unix::fs::symlink(&secret, exports.join("link.csv")).expect("link");

        let names: Vec<String> = list(root.path(), &tenant)
            .await
            .expect("list")
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["real.csv"]);
        assert!(open(root.path(), &tenant, "link.csv").await.is_none());
        assert!(open(root.path(), &tenant, "../secret.txt").await.is_none());
        assert_eq!(
            open(root.path(), &tenant, "real.csv")
                .await
                .expect("opens")
                .size,
            4
        );
    }

    #[tokio::test]
    async fn a_symlinked_exports_folder_is_refused() {
        let root = tempfile::tempdir().expect("dir");
        let elsewhere = tempfile::tempdir().expect("dir");
        std::fs::write(elsewhere.path().join("other.csv"), b"x").expect("file");
        let tenant = TenantName::parse("acme").expect("name");
        let folders = TenantFolders::new(root.path(), &tenant);
        std::fs::create_dir_all(folders.root()).expect("root");
        std::os::unix::fs::symlink(elsewhere.path(), folders.folder(Folder::Exports))
            .expect("link");

        assert!(list(root.path(), &tenant).await.is_err());
        assert!(open(root.path(), &tenant, "other.csv").await.is_none());
    }
}
