//! Broadside's configuration: one TOML file with documented defaults
//! (`config/broadside.toml`), every key overridable by a `BROADSIDE_*` environment
//! variable, parsed once at start-up into the typed [`Config`] and passed down.
//! Nothing reads the file or the environment after [`Config::load`].

mod api;
mod error;
mod exchange;
mod load;
mod secret;
mod security;
mod send;
mod tracking;
mod units;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

pub use api::ApiConfig;
pub use error::{ConfigError, Origin};
pub use exchange::{ExchangeConfig, RetentionConfig};
pub use load::{DEFAULT_FILE, ENV_PREFIX};
pub use secret::{REDACTED, Secret, redact_url};
pub use security::{SecurityConfig, SmsConfig, SmsGatewayKind};
pub use send::{
    DkimEntry, DomainLimitEntry, MetricsConfig, RetryConfig, RouteEntry, SendConfig, TimeoutConfig,
    parse_route_list,
};
pub use tracking::TrackingConfig;
pub use units::{ByteSize, Duration, UnitError};

/// The whole configuration. Every section has defaults, so an empty file (or none)
/// gives a working embedded setup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Root of everything Broadside keeps on local disk (SQLite files, reports), so
    /// one directory is all a backup or a container volume has to cover.
    #[serde(serialize_with = "serialize_path")]
    pub data_dir: PathBuf,
    pub store: StoreConfig,
    pub import: ImportConfig,
    pub send: SendConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub api: ApiConfig,
    pub exchange: ExchangeConfig,
    pub tracking: TrackingConfig,
    pub security: SecurityConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            store: StoreConfig::default(),
            import: ImportConfig::default(),
            send: SendConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            api: ApiConfig::default(),
            exchange: ExchangeConfig::default(),
            tracking: TrackingConfig::default(),
            security: SecurityConfig::default(),
        }
    }
}

/// Where campaigns, recipients and outcomes are stored.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite needs no setup, so it is the default; PostgreSQL is for production.
    pub backend: Backend,
    pub postgres: PostgresConfig,
    pub sqlite: SqliteConfig,
}

/// Which `Store` implementation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One database file per tenant under `data_dir`.
    #[default]
    Sqlite,
    /// A schema per tenant in one PostgreSQL database.
    Postgres,
}

/// The PostgreSQL connection pool; used only when `backend = "postgres"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// A secret because it usually carries the password; serialized with only the
    /// password hidden so operators can still check user, host and database.
    #[serde(serialize_with = "secret::serialize_url")]
    pub url: Secret<String>,
    /// Upper bound on open connections; each costs the server a process.
    pub pool_size: u32,
    /// How long start-up and checkouts wait for a connection before failing, so an
    /// unreachable database is reported instead of hanging.
    pub connect_timeout: Duration,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("postgres://postgres@127.0.0.1:5432/broadside".to_owned()),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// The embedded SQLite store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteConfig {
    /// How long a statement waits on a locked database file (readers during a
    /// checkpoint) before failing with SQLITE_BUSY.
    pub busy_timeout: Duration,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Recipient file import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportConfig {
    /// Header of the column holding the address, matched case-insensitively because
    /// spreadsheets export "Email", "EMAIL" and "email" alike.
    pub email_column: String,
    /// Field separator; `Auto` sniffs it from the header line.
    pub delimiter: Delimiter,
    /// Share of invalid rows (0 to 1) above which the whole file is rejected: a file
    /// that bad is more likely the wrong file than a few typos.
    pub max_invalid_share: f64,
    /// Longest accepted field, so a missing quote cannot swallow the rest of the
    /// file into one field and exhaust memory.
    pub max_field_size: ByteSize,
    /// Most columns a row may have; personalisation data rarely needs more.
    pub max_columns: usize,
    /// Rows written to the store per batch: larger batches load faster, smaller
    /// ones hold less memory and shorter transactions.
    pub batch_rows: usize,
    /// Where error reports go; `None` (written `""`) means `<data_dir>/reports`,
    /// so moving `data_dir` moves the reports with it. Read it through
    /// [`Config::reports_dir`].
    #[serde(with = "empty_path_is_none")]
    pub reports_dir: Option<PathBuf>,
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self {
            email_column: "email".to_owned(),
            delimiter: Delimiter::Auto,
            max_invalid_share: 0.10,
            max_field_size: ByteSize::kib(8),
            max_columns: 256,
            batch_rows: 4096,
            reports_dir: None,
        }
    }
}

impl ImportConfig {
    /// Whether a header cell names the address column; surrounding spaces and case
    /// are ignored, as spreadsheets vary in both.
    pub fn is_email_column(&self, header: &str) -> bool {
        header.trim().eq_ignore_ascii_case(self.email_column.trim())
    }
}

/// The field separator of recipient files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delimiter {
    /// Sniffed from the header line, since customers export with whatever their
    /// spreadsheet's locale prefers.
    #[default]
    Auto,
    Comma,
    Semicolon,
    Tab,
    Pipe,
}

const DELIMITER_EXPECTED: &str = r#"expected "auto", ",", ";", "tab" or "|""#;

impl Delimiter {
    /// The separator byte, or `None` when it is to be sniffed.
    pub fn byte(self) -> Option<u8> {
        match self {
            Self::Auto => None,
            Self::Comma => Some(b','),
            Self::Semicolon => Some(b';'),
            Self::Tab => Some(b'\t'),
            Self::Pipe => Some(b'|'),
        }
    }

    /// The canonical spelling in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Comma => ",",
            Self::Semicolon => ";",
            Self::Tab => "tab",
            Self::Pipe => "|",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "auto" => Some(Self::Auto),
            "," => Some(Self::Comma),
            ";" => Some(Self::Semicolon),
            "tab" | "\t" => Some(Self::Tab),
            "|" => Some(Self::Pipe),
            _ => None,
        }
    }
}

impl fmt::Display for Delimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Delimiter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Delimiter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::parse(&value).ok_or_else(|| de::Error::custom(DELIMITER_EXPECTED))
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A level (`trace` … `error`) or a full env-filter directive such as
    /// `info,engine::store=debug`; the subscriber parses it, so here it only has to
    /// be present.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Human,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

impl Config {
    /// Where import error reports are written.
    pub fn reports_dir(&self) -> PathBuf {
        match &self.import.reports_dir {
            Some(dir) => dir.clone(),
            None => self.data_dir.join("reports"),
        }
    }

    /// The root of the tenants' exchange folders.
    pub fn exchange_root(&self) -> PathBuf {
        match &self.exchange.root {
            Some(dir) => dir.clone(),
            None => self.data_dir.join("exchange"),
        }
    }

    /// The SFTP server's host key file.
    pub fn host_key_path(&self) -> PathBuf {
        match &self.exchange.host_key {
            Some(path) => path.clone(),
            None => self.data_dir.join("ssh_host_ed25519_key"),
        }
    }

    /// The effective configuration as TOML, every key present and secrets redacted;
    /// what `broadside config check` prints. `reports_dir` shows the directory in
    /// use rather than the "" that stands for it.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.import.reports_dir = Some(self.reports_dir());
        // Cannot fail in practice: paths serialize lossily and every other value is
        // a plain string or number, but a dump must never abort start-up.
        toml::to_string(&shown)
            .unwrap_or_else(|err| format!("# cannot render the configuration: {err}\n"))
    }
}

/// Paths serialize lossily so that rendering the configuration cannot fail.
fn serialize_path<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

/// `Option<PathBuf>` as a string where `""` is `None`, because TOML has no null and
/// the documented file must still show the key.
pub(crate) mod empty_path_is_none {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        path: &Option<PathBuf>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match path {
            Some(path) => super::serialize_path(path, serializer),
            None => serializer.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<PathBuf>, D::Error> {
        let path = String::deserialize(deserializer)?;
        Ok((!path.is_empty()).then(|| PathBuf::from(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/broadside.toml");

    /// Every leaf key as a dotted path (`store.postgres.url`) with its value.
    fn leaves(table: &toml::Table, prefix: &str, out: &mut Vec<(String, toml::Value)>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => leaves(inner, &path, out),
                _ => out.push((path, value.clone())),
            }
        }
    }

    fn leaf_keys(table: &toml::Table) -> Vec<String> {
        let mut out = Vec::new();
        leaves(table, "", &mut out);
        out.into_iter().map(|(key, _)| key).collect()
    }

    fn default_leaves() -> Vec<(String, toml::Value)> {
        let table = toml::Table::try_from(Config::default()).expect("defaults serialize");
        let mut out = Vec::new();
        leaves(&table, "", &mut out);
        out
    }

    fn default_keys() -> Vec<String> {
        default_leaves().into_iter().map(|(key, _)| key).collect()
    }

    fn env_var(key: &str) -> String {
        format!("{ENV_PREFIX}{}", key.to_uppercase().replace('.', "__"))
    }

    #[test]
    fn the_shipped_file_loads_to_exactly_the_defaults() {
        let path = Path::new(SHIPPED_FILE);

        let config = Config::load_from(Some(path), Vec::new()).expect("shipped file loads");

        assert_eq!(config, Config::default());
    }

    #[test]
    fn every_default_key_appears_in_the_shipped_file() {
        let text = std::fs::read_to_string(SHIPPED_FILE).expect("shipped file is readable");
        let shipped: toml::Table = text.parse().expect("shipped file is TOML");
        let shipped_keys = leaf_keys(&shipped);

        let missing: Vec<String> = default_keys()
            .into_iter()
            .filter(|key| !shipped_keys.contains(key))
            .collect();

        assert!(
            missing.is_empty(),
            "keys missing from the file: {missing:?}"
        );
    }

    #[test]
    fn the_shipped_file_names_the_environment_variable_of_every_key() {
        let text = std::fs::read_to_string(SHIPPED_FILE).expect("shipped file is readable");

        let undocumented: Vec<String> = default_keys()
            .into_iter()
            .map(|key| env_var(&key))
            .filter(|var| !text.contains(var.as_str()))
            .collect();

        assert!(undocumented.is_empty(), "not documented: {undocumented:?}");
    }

    #[test]
    fn the_redacted_toml_hides_the_password_but_keeps_user_host_and_database() {
        let mut config = Config::default();
        config.store.postgres.url = Secret::new("postgres://app:hunter2@db.internal/prod".into());

        let shown = config.to_redacted_toml();

        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains(r#"url = "postgres://app:<redacted>@db.internal/prod""#),
            "{shown}"
        );
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn the_redacted_toml_has_every_key_in_human_units_and_reads_back() {
        let config = Config::default();

        let shown = config.to_redacted_toml();
        let reread: Config = toml::from_str(&shown).expect("output is valid configuration");

        let shown_keys = leaf_keys(&shown.parse().expect("TOML"));
        assert_eq!(shown_keys.len(), default_keys().len(), "{shown}");
        assert!(shown.contains(r#"connect_timeout = "5s""#), "{shown}");
        assert!(shown.contains(r#"max_field_size = "8KiB""#), "{shown}");
        assert!(
            shown.contains(r#"reports_dir = "./data/reports""#),
            "{shown}"
        );
        assert_eq!(reread.store, config.store);
        assert_eq!(reread.import.max_field_size, config.import.max_field_size);
    }

    #[test]
    fn every_key_can_be_set_through_its_environment_variable() {
        let vars: Vec<(String, String)> = default_leaves()
            .into_iter()
            .map(|(key, value)| {
                let text = match value {
                    toml::Value::String(text) => text,
                    other => other.to_string(),
                };
                (env_var(&key), text)
            })
            .collect();

        let config = Config::load_from(None, vars).expect("every variable is accepted");

        assert_eq!(config, Config::default());
    }

    #[test]
    fn the_email_column_matches_ignoring_case_and_spaces() {
        let import = ImportConfig::default();

        assert!(import.is_email_column(" Email "));
        assert!(import.is_email_column("EMAIL"));
        assert!(!import.is_email_column("email2"));
    }

    #[test]
    fn reports_go_under_the_data_dir_unless_configured() {
        let mut config = Config {
            data_dir: PathBuf::from("/srv/broadside"),
            ..Config::default()
        };
        let under_data_dir = config.reports_dir();
        config.import.reports_dir = Some(PathBuf::from("/var/reports"));

        assert_eq!(under_data_dir, Path::new("/srv/broadside/reports"));
        assert_eq!(config.reports_dir(), Path::new("/var/reports"));
    }
}
