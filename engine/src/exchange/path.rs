//! Paths as exchange clients name them (`/incoming/x.csv`, `exports`), resolved
//! lexically inside a tenant's root: the view is exactly the root, its four
//! folders and the plain files in them, so nothing can name a path outside it.

use std::path::PathBuf;

use super::{Folder, TenantFolders};

/// What a client path names in the tenant's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `/`: lists the four folders.
    Root,
    Folder(Folder),
    File(Folder, String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path leaves the exchange root")]
    Escape,
    #[error("no such file or folder")]
    NotFound,
    #[error("invalid file name")]
    BadName,
}

/// Resolves `path`, absolute or relative to the root. `..` may go up to the root
/// and no further; only the fixed layout exists (no sub-folders).
pub fn resolve(path: &str) -> Result<Location, PathError> {
    if path.contains('\0') {
        return Err(PathError::BadName);
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or(PathError::Escape)?;
            }
            name => parts.push(name),
        }
    }
    match parts.as_slice() {
        [] => Ok(Location::Root),
        [folder] => Folder::parse(folder)
            .map(Location::Folder)
            .ok_or(PathError::NotFound),
        [folder, file] => {
            let folder = Folder::parse(folder).ok_or(PathError::NotFound)?;
            Ok(Location::File(folder, check_file_name(file)?.to_owned()))
        }
        _ => Err(PathError::NotFound),
    }
}

/// A single file name: no separators, not `.`/`..`, not hidden (leading `.`,
/// which also keeps the import's work files out of reach), no control characters.
pub fn check_file_name(name: &str) -> Result<&str, PathError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    ok.then_some(name).ok_or(PathError::BadName)
}

impl Location {
    /// The path on disk of this location under `folders`.
    pub fn on_disk(&self, folders: &TenantFolders) -> PathBuf {
        match self {
            Location::Root => folders.root().to_path_buf(),
            Location::Folder(folder) => folders.folder(*folder),
            Location::File(folder, name) => folders.folder(*folder).join(name),
        }
    }

    /// The canonical client path (`/incoming/x.csv`).
    pub fn display(&self) -> String {
        match self {
            Location::Root => "/".to_owned(),
            Location::Folder(folder) => format!("/{}", folder.as_str()),
            Location::File(folder, name) => format!("/{}/{name}", folder.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_the_root_only() {
        assert_eq!(resolve("/"), Ok(Location::Root));
        assert_eq!(resolve("."), Ok(Location::Root));
        assert_eq!(resolve("/incoming/.."), Ok(Location::Root));
        assert_eq!(resolve("exports"), Ok(Location::Folder(Folder::Exports)));
        assert_eq!(
            resolve("/incoming/./a.csv"),
            Ok(Location::File(Folder::Incoming, "a.csv".into()))
        );
        assert_eq!(resolve(".."), Err(PathError::Escape));
        assert_eq!(resolve("/incoming/../../etc"), Err(PathError::Escape));
        assert_eq!(resolve("/etc/passwd"), Err(PathError::NotFound));
        assert_eq!(resolve("/incoming/a/b"), Err(PathError::NotFound));
        assert_eq!(resolve("/incoming/.work"), Err(PathError::BadName));
        assert_eq!(resolve("/incoming/a\0b"), Err(PathError::BadName));
    }

    proptest::proptest! {
        #[test]
        fn any_resolved_path_stays_under_the_tenant_root(path in "[a-z./]{0,40}") {
            let folders = TenantFolders::new(std::path::Path::new("/x"), &crate::model::TenantName::parse("t").expect("name"));
            if let Ok(location) = resolve(&path) {
                let disk = location.on_disk(&folders);
                proptest::prop_assert!(disk.starts_with("/x/t"));
                proptest::prop_assert!(!disk.components().any(|c| c == std::path::Component::ParentDir));
            }
        }
    }
}
