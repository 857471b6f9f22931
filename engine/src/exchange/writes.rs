//! Files an SFTP client still has open for writing: the watcher never imports
//! them, whatever their size and time say.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Shared between the SFTP server (which opens handles) and the watcher.
#[derive(Debug, Clone, Default)]
pub struct OpenWrites {
    /// Path → number of open write handles. A std mutex: held for a map
    /// operation only, never across an await.
    open: Arc<Mutex<HashMap<PathBuf, usize>>>,
}

impl OpenWrites {
    /// Marks `path` as being written until the guard drops.
    pub fn begin(&self, path: &Path) -> WriteGuard {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        *open.entry(path.to_path_buf()).or_default() += 1;
        WriteGuard {
            owner: self.clone(),
            path: path.to_path_buf(),
        }
    }

    pub fn is_open(&self, path: &Path) -> bool {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.contains_key(path)
    }
}

/// Ends one write handle on drop, so a client that disconnects mid-upload
/// releases its file too.
#[derive(Debug)]
pub struct WriteGuard {
    owner: OpenWrites,
    path: PathBuf,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let mut open = self
            .owner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.path) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.path);
            }
        }
    }
}
