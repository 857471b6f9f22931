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
    /// How often each tenant's new events are written to its `exports` folder
    /// (one CSV per campaign per run); a tenant may set `exports.interval`.
    pub export_interval: Duration,
    /// How often retention runs: expired exchange files are deleted and
    /// campaigns past their lifetime lose their personal data.
    pub maintenance_interval: Duration,
    pub retention: RetentionConfig,
}

/// How long things are kept, for every tenant that does not set its own
/// (`retention.*` tenant settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Files in `incoming`, by last modification.
    pub incoming: Duration,
    /// Imported files and their reports in `finished`.
    pub finished: Duration,
    /// Refused files and their reports in `invalids`.
    pub invalids: Duration,
    /// Response-data files in `exports`.
    pub exports: Duration,
    /// From a campaign's launch (or creation, if never launched) until its
    /// recipients and events are deleted; only aggregate counters stay.
    pub campaign_lifetime: Duration,
}

const DAY: u64 = 24 * 3600;

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            incoming: Duration::from_secs(2 * DAY),
            finished: Duration::from_secs(DAY),
            invalids: Duration::from_secs(7 * DAY),
            exports: Duration::from_secs(14 * DAY),
            campaign_lifetime: Duration::from_secs(28 * DAY),
        }
    }
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        Self {
            root: None,
            scan_interval: Duration::from_secs(2),
            sftp_listen: "127.0.0.1:2222".to_owned(),
            host_key: None,
            export_interval: Duration::from_secs(3600),
            maintenance_interval: Duration::from_secs(300),
            retention: RetentionConfig::default(),
        }
    }
}
