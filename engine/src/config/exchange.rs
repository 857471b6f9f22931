//! The `[exchange]` section: the per-tenant exchange folders, the control-file
//! watcher and the embedded SFTP server.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::units::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExchangeConfig {
    /// Holds one folder per tenant; empty means `<data_dir>/exchange`, so the
    /// default install keeps everything under one directory.
    #[serde(with = "super::empty_path_is_none")]
    pub root: Option<PathBuf>,
    /// How often `incoming` folders are scanned for control files. A file is
    /// imported only once two scans saw the same size and time, so this also
    /// sets how long a finished upload waits.
    pub scan_interval: Duration,
    /// Address of the embedded SFTP server; empty turns it off (for example
    /// when OpenSSH serves the same folders).
    pub sftp_listen: String,
    /// The server's Ed25519 host key (OpenSSH format); generated on first start
    /// and kept, so clients' known_hosts stay valid. Empty means
    /// `<data_dir>/ssh_host_ed25519_key`.
    #[serde(with = "super::empty_path_is_none")]
    pub host_key: Option<PathBuf>,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        Self {
            root: None,
            scan_interval: Duration::from_secs(2),
            sftp_listen: "127.0.0.1:2222".to_owned(),
            host_key: None,
        }
    }
}
