//! The SFTP view of one tenant's exchange root: `/` holds the four folders and
//! each folder plain files. Every path goes through `exchange::resolve`, so
//! `..`, absolute paths outside the view and sub-folders name nothing; files
//! are opened with `O_NOFOLLOW`, and links are never created or listed.
//! Writes go to `incoming` only; `exports` and `incoming` allow deletion.

use std::collections::HashMap;
use std::io::SeekFrom;

use engine::exchange::{
    Folder, Location, OpenWrites, PathError, TenantFolders, WriteGuard, check_file_name, resolve,
};
use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

/// Largest read answered at once; OpenSSH asks for 32 KiB.
const MAX_READ: u32 = 256 * 1024;

enum Open {
    Read(tokio::fs::File),
    /// The guard keeps the watcher off the file until the handle closes.
    Write(tokio::fs::File, WriteGuard),
    /// A listing, handed out whole on the first `readdir`.
    Dir(Option<Vec<File>>),
}

pub(crate) struct SftpSession {
    folders: TenantFolders,
    writes: OpenWrites,
    handles: HashMap<String, Open>,
    next_handle: u64,
}

fn denied(message: &str) -> StatusReply {
    StatusReply::new(StatusCode::PermissionDenied).with_message(message)
}

fn no_such() -> StatusReply {
    StatusCode::NoSuchFile.into()
}

fn io_reply(e: std::io::Error) -> StatusReply {
    match e.kind() {
        std::io::ErrorKind::NotFound => no_such(),
        std::io::ErrorKind::PermissionDenied => denied("permission denied"),
        _ => StatusReply::new(StatusCode::Failure).with_message(e.to_string()),
    }
}

fn located(path: &str) -> Result<Location, StatusReply> {
    resolve(path).map_err(|e| match e {
        PathError::Escape => denied("outside the exchange root"),
        PathError::BadName => denied("invalid file name"),
        PathError::NotFound => no_such(),
    })
}

fn file_in(path: &str) -> Result<(Folder, String), StatusReply> {
    match located(path)? {
        Location::File(folder, name) => Ok((folder, name)),
        _ => Err(StatusReply::new(StatusCode::Failure).with_message("not a file")),
    }
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".to_owned(),
        language_tag: "en-US".to_owned(),
    }
}

fn dir_attrs() -> FileAttributes {
    let mut attrs = FileAttributes {
        permissions: Some(0o755),
        ..Default::default()
    };
    attrs.set_dir(true);
    attrs
}

/// Attributes of a regular file, never of a link.
async fn file_attrs(path: &std::path::Path) -> Result<FileAttributes, StatusReply> {
    let meta = tokio::fs::symlink_metadata(path).await.map_err(io_reply)?;
    match meta.is_file() {
        true => Ok(FileAttributes::from(&meta)),
        false => Err(no_such()),
    }
}

impl SftpSession {
    pub(crate) fn new(folders: TenantFolders, writes: OpenWrites) -> Self {
        Self {
            folders,
            writes,
            handles: HashMap::new(),
            next_handle: 0,
        }
    }

    fn insert(&mut self, open: Open) -> String {
        self.next_handle += 1;
        let handle = self.next_handle.to_string();
        self.handles.insert(handle.clone(), open);
        handle
    }

    async fn attrs(&self, path: &str) -> Result<FileAttributes, StatusReply> {
        match located(path)? {
            Location::Root | Location::Folder(_) => Ok(dir_attrs()),
            file => file_attrs(&file.on_disk(&self.folders)).await,
        }
    }

    async fn listing(&self, location: &Location) -> Result<Vec<File>, StatusReply> {
        let folder = match location {
            Location::Root => {
                let names = Folder::ALL.map(|f| File::new(f.as_str(), dir_attrs()));
                return Ok(names.into());
            }
            Location::Folder(folder) => *folder,
            Location::File(..) => return Err(StatusReply::new(StatusCode::Failure)),
        };
        let mut entries = tokio::fs::read_dir(self.folders.folder(folder))
            .await
            .map_err(io_reply)?;
        let mut files = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(io_reply)? {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // DirEntry::metadata does not follow links: links are not listed.
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            if meta.is_file() && check_file_name(&name).is_ok() {
                files.push(File::new(name, FileAttributes::from(&meta)));
            }
        }
        Ok(files)
    }

    async fn open_write(&mut self, path: &str, flags: OpenFlags) -> Result<String, StatusReply> {
        let (folder, name) = file_in(path)?;
        if folder != Folder::Incoming {
            return Err(denied("uploads go to /incoming only"));
        }
        let disk = self.folders.folder(folder).join(&name);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .read(flags.contains(OpenFlags::READ))
            .append(flags.contains(OpenFlags::APPEND))
            .create(flags.contains(OpenFlags::CREATE))
            .truncate(flags.contains(OpenFlags::TRUNCATE))
            .create_new(flags.contains(OpenFlags::CREATE | OpenFlags::EXCLUDE))
            .custom_flags(libc::O_NOFOLLOW)
            .open(&disk)
            .await
            .map_err(io_reply)?;
        let guard = self.writes.begin(&disk);
        Ok(self.insert(Open::Write(file, guard)))
    }

    async fn open_read(&mut self, path: &str) -> Result<String, StatusReply> {
        let (folder, name) = file_in(path)?;
        let disk = self.folders.folder(folder).join(name);
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&disk)
            .await
            .map_err(io_reply)?;
        let meta = file.metadata().await.map_err(io_reply)?;
        if !meta.is_file() {
            return Err(no_such());
        }
        Ok(self.insert(Open::Read(file)))
    }
}

impl russh_sftp::server::Handler for SftpSession {
    type Error = StatusReply;

    fn unimplemented(&self) -> StatusReply {
        StatusCode::OpUnsupported.into()
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, StatusReply> {
        Ok(Version::new())
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, StatusReply> {
        let location = located(&path)?;
        Ok(Name {
            id,
            files: vec![File::dummy(location.display())],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, StatusReply> {
        let attrs = self.attrs(&path).await?;
        Ok(Attrs { id, attrs })
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, StatusReply> {
        let attrs = self.attrs(&path).await?;
        Ok(Attrs { id, attrs })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, StatusReply> {
        let file = match self.handles.get(&handle) {
            Some(Open::Read(file) | Open::Write(file, _)) => file,
            _ => return Err(StatusCode::Failure.into()),
        };
        let meta = file.metadata().await.map_err(io_reply)?;
        Ok(Attrs {
            id,
            attrs: FileAttributes::from(&meta),
        })
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, StatusReply> {
        let files = self.listing(&located(&path)?).await?;
        let handle = self.insert(Open::Dir(Some(files)));
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, StatusReply> {
        match self.handles.get_mut(&handle) {
            Some(Open::Dir(files)) => match files.take() {
                Some(files) => Ok(Name { id, files }),
                None => Err(StatusCode::Eof.into()),
            },
            _ => Err(StatusCode::Failure.into()),
        }
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, StatusReply> {
        let writing =
            OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let handle = match pflags.intersects(writing) {
            true => self.open_write(&filename, pflags).await?,
            false => self.open_read(&filename).await?,
        };
        Ok(Handle { id, handle })
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, StatusReply> {
        let Some(Open::Read(file) | Open::Write(file, _)) = self.handles.get_mut(&handle) else {
            return Err(StatusCode::Failure.into());
        };
        file.seek(SeekFrom::Start(offset)).await.map_err(io_reply)?;
        let mut data = vec![0; len.min(MAX_READ) as usize];
        let read = file.read(&mut data).await.map_err(io_reply)?;
        if read == 0 {
            return Err(StatusCode::Eof.into());
        }
        data.truncate(read);
        Ok(Data { id, data })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, StatusReply> {
        let Some(Open::Write(file, _)) = self.handles.get_mut(&handle) else {
            return Err(denied("not open for writing"));
        };
        file.seek(SeekFrom::Start(offset)).await.map_err(io_reply)?;
        file.write_all(&data).await.map_err(io_reply)?;
        Ok(ok(id))
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, StatusReply> {
        if let Some(Open::Write(mut file, guard)) = self.handles.remove(&handle) {
            file.flush().await.map_err(io_reply)?;
            drop(guard);
        }
        Ok(ok(id))
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, StatusReply> {
        // Modes and times are the server's business; accepted and ignored so
        // that `put -p` and scp do not fail.
        self.attrs(&path).await?;
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        _handle: String,
        _attrs: FileAttributes,
    ) -> Result<Status, StatusReply> {
        Ok(ok(id))
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, StatusReply> {
        let (folder, name) = file_in(&filename)?;
        if !matches!(folder, Folder::Exports | Folder::Incoming) {
            return Err(denied("files here are kept by the server"));
        }
        let disk = self.folders.folder(folder).join(name);
        file_attrs(&disk).await?;
        tokio::fs::remove_file(&disk).await.map_err(io_reply)?;
        Ok(ok(id))
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, StatusReply> {
        // Within incoming only: upload under a temporary name, then rename.
        let (from_folder, from) = file_in(&oldpath)?;
        let (to_folder, to) = file_in(&newpath)?;
        if from_folder != Folder::Incoming || to_folder != Folder::Incoming {
            return Err(denied("renames stay within /incoming"));
        }
        let dir = self.folders.folder(Folder::Incoming);
        file_attrs(&dir.join(&from)).await?;
        tokio::fs::rename(dir.join(from), dir.join(to))
            .await
            .map_err(io_reply)?;
        Ok(ok(id))
    }

    async fn mkdir(
        &mut self,
        _id: u32,
        _path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, StatusReply> {
        Err(denied("the folder layout is fixed"))
    }

    async fn rmdir(&mut self, _id: u32, _path: String) -> Result<Status, StatusReply> {
        Err(denied("the folder layout is fixed"))
    }

    async fn symlink(
        &mut self,
        _id: u32,
        _linkpath: String,
        _targetpath: String,
    ) -> Result<Status, StatusReply> {
        Err(denied("links are not allowed"))
    }

    async fn readlink(&mut self, _id: u32, _path: String) -> Result<Name, StatusReply> {
        Err(no_such())
    }
}
