//! Loading the configuration: defaults, then the TOML file, then `BROADSIDE_*`
//! environment variables, then validation. Tests inject the environment through
//! [`Config::load_from`] because they run in parallel and must not share process
//! state.

use std::path::Path;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::{Config, ConfigError};

/// The file [`Config::load`] reads when none is named, relative to the working
/// directory.
pub const DEFAULT_FILE: &str = "config/broadside.toml";

/// Every override starts with this; `__` separates nested keys after it, as in
/// `BROADSIDE_STORE__POSTGRES__URL` for `store.postgres.url`.
pub const ENV_PREFIX: &str = "BROADSIDE_";

/// Only variables under these keys are configuration. Others share the prefix for
/// their own purposes (`BROADSIDE_TEST_DATABASE_URL`, `BROADSIDE_REQUIRE_PG`) and
/// must not be mistaken for typos.
const TOP_LEVEL_KEYS: [&str; 10] = [
    "data_dir", "store", "import", "send", "metrics", "log", "api", "exchange", "tracking",
    "security",
];

impl Config {
    /// Loads the configuration from `file` (or [`DEFAULT_FILE`] if it exists) and
    /// the process environment. A named file that does not exist is an error,
    /// because silently running on defaults would hide a typo in the path.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let default_file = Path::new(DEFAULT_FILE);
        let file = file.or_else(|| default_file.is_file().then_some(default_file));
        Self::load_from(file, process_env()?)
    }

    /// Loads from `file`, if any, and the given environment variables; with no file,
    /// only defaults and the environment apply.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::FileNotFound {
                    path: path.to_owned(),
                });
            }
            // `file_exact`, because `file` would also search parent directories.
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(EnvOverrides::new(env));
        let config: Config = figment
            .extract()
            .map_err(|err| ConfigError::from_figment(err, &figment))?;
        config
            .validate()
            .map_err(|err| err.with_origin_from(&figment))?;
        Ok(config)
    }

    /// Checks what types alone cannot: ranges and non-empty values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key, value: String, reason| Err(ConfigError::invalid(key, value, reason));
        let share = self.import.max_invalid_share;
        if !(0.0..=1.0).contains(&share) {
            return fail(
                "import.max_invalid_share",
                format!("{share:?}"),
                "must be between 0 and 1",
            );
        }
        if self.data_dir.as_os_str().is_empty() {
            return fail("data_dir", "\"\"".into(), "must not be empty");
        }
        let postgres = &self.store.postgres;
        if postgres.pool_size == 0 {
            return fail("store.postgres.pool_size", "0".into(), "must be at least 1");
        }
        if postgres.connect_timeout.is_zero() {
            let value = format!("\"{}\"", postgres.connect_timeout);
            return fail("store.postgres.connect_timeout", value, "must be above 0s");
        }
        self.validate_import()?;
        self.validate_send()?;
        if self.log.level.trim().is_empty() {
            let value = format!("{:?}", self.log.level);
            return fail("log.level", value, r#"must name a level such as "info""#);
        }
        Ok(())
    }

    fn validate_send(&self) -> Result<(), ConfigError> {
        let fail =
            |key, value: String, reason: String| Err(ConfigError::invalid(key, value, &reason));
        let send = &self.send;
        if let Err(reason) = send.tls.parse::<crate::smtp::TlsMode>() {
            return fail("send.tls", format!("{:?}", send.tls), reason);
        }
        if !matches!(send.dns.as_str(), "system" | "disabled") {
            let reason = r#"expected "system" or "disabled""#.to_owned();
            return fail("send.dns", format!("{:?}", send.dns), reason);
        }
        let at_least_one = [
            ("send.max_in_flight", send.max_in_flight),
            ("send.batch_size", send.batch_size as usize),
            ("send.queue_capacity", send.queue_capacity),
            (
                "send.max_connections_per_domain",
                send.max_connections_per_domain as usize,
            ),
            (
                "send.max_messages_per_connection",
                send.max_messages_per_connection as usize,
            ),
            ("send.tracking_batch", send.tracking_batch),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return fail(key, "0".into(), "must be at least 1".into());
            }
        }
        if send.max_rate_per_domain.is_nan() || send.max_rate_per_domain < 0.0 {
            let value = format!("{:?}", send.max_rate_per_domain);
            return fail(
                "send.max_rate_per_domain",
                value,
                "must be 0 (none) or more".into(),
            );
        }
        let routes: Vec<_> = send.routes.iter().map(|r| r.to_route_config()).collect();
        if let Err(err) = crate::delivery::RouteTable::from_config(&routes) {
            return fail("send.routes", format!("{:?}", err.target), err.to_string());
        }
        Ok(())
    }

    fn validate_import(&self) -> Result<(), ConfigError> {
        let fail = |key, value: String, reason| Err(ConfigError::invalid(key, value, reason));
        let import = &self.import;
        if import.email_column.trim().is_empty() {
            let value = format!("{:?}", import.email_column);
            return fail("import.email_column", value, "must name a column");
        }
        if import.max_field_size.bytes() == 0 {
            let value = format!("\"{}\"", import.max_field_size);
            return fail("import.max_field_size", value, "must be at least 1 byte");
        }
        if import.max_columns == 0 {
            return fail("import.max_columns", "0".into(), "must be at least 1");
        }
        if import.batch_rows == 0 {
            return fail("import.batch_rows", "0".into(), "must be at least 1");
        }
        Ok(())
    }
}

/// The process environment as strings. A `BROADSIDE_*` variable that is not UTF-8
/// is an error rather than skipped, so an override is never silently lost.
fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Ok(name) = name.into_string() else {
            continue;
        };
        match value.into_string() {
            Ok(value) => vars.push((name, value)),
            Err(_) if name.starts_with(ENV_PREFIX) => {
                return Err(ConfigError::Other(format!("{name} is not valid UTF-8")));
            }
            Err(_) => {}
        }
    }
    Ok(vars)
}

/// The `BROADSIDE_*` overrides as a figment provider. Values are typed by the
/// default at the same key, so `"0.25"` becomes a float where a float is expected
/// and `"123"` stays a string for `email_column`.
struct EnvOverrides {
    dict: Dict,
}

impl EnvOverrides {
    fn new(env: impl IntoIterator<Item = (String, String)>) -> Self {
        // Cannot fail: the defaults are plain strings and numbers. If it ever did,
        // every value would stay a string and extraction would report the key.
        let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
        let mut vars: Vec<(Vec<String>, String)> = env
            .into_iter()
            .filter_map(|(name, value)| Some((key_path(&name)?, value)))
            .collect();
        // Sorted so that the result does not depend on the environment's order.
        vars.sort();
        let mut dict = Dict::new();
        for (path, raw) in vars {
            let value = typed_like_default(&defaults, &path, raw);
            insert(&mut dict, &path, value);
        }
        Self { dict }
    }
}

impl Provider for EnvOverrides {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable").interpolater(|_: &Profile, keys: &[&str]| {
            let keys: Vec<String> = keys.iter().map(|key| key.to_ascii_uppercase()).collect();
            format!("{ENV_PREFIX}{}", keys.join("__"))
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// `BROADSIDE_STORE__POSTGRES__URL` → `["store", "postgres", "url"]`, or `None` for
/// variables that are not configuration.
fn key_path(name: &str) -> Option<Vec<String>> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    let first = path.first()?;
    TOP_LEVEL_KEYS.contains(&first.as_str()).then_some(path)
}

fn typed_like_default(defaults: &toml::Table, path: &[String], raw: String) -> Value {
    let mut table = defaults;
    let mut default = None;
    for (depth, key) in path.iter().enumerate() {
        match table.get(key) {
            Some(toml::Value::Table(inner)) if depth + 1 < path.len() => table = inner,
            found if depth + 1 == path.len() => default = found,
            _ => break,
        }
    }
    let text = raw.trim();
    let typed = match default {
        Some(toml::Value::Integer(_)) => text
            .parse::<u64>()
            .map(Value::from)
            .or_else(|_| text.parse::<i64>().map(Value::from))
            .ok(),
        Some(toml::Value::Float(_)) => text.parse::<f64>().map(Value::from).ok(),
        Some(toml::Value::Boolean(_)) => text.parse::<bool>().map(Value::from).ok(),
        // Lists are written as TOML arrays: `["gmail.com", "web.de"]`.
        Some(toml::Value::Array(_)) if text.starts_with('[') => toml_array(text),
        _ => None,
    };
    // What does not parse stays a string, so the error shows it as written.
    typed.unwrap_or_else(|| Value::from(raw))
}

/// Parses a TOML array written in an environment variable.
fn toml_array(text: &str) -> Option<Value> {
    let table: toml::Table = toml::from_str(&format!("v = {text}")).ok()?;
    Value::serialize(table.get("v")?).ok()
}

fn insert(dict: &mut Dict, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = dict;
    for key in parents {
        let entry = current
            .entry(key.clone())
            .or_insert_with(|| Value::from(Dict::new()));
        if entry.as_dict().is_none() {
            *entry = Value::from(Dict::new());
        }
        match entry {
            Value::Dict(_, inner) => current = inner,
            _ => return,
        }
    }
    current.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use tempfile::NamedTempFile;

    use super::*;
    use crate::config::{Backend, ByteSize, Delimiter, Duration, LogFormat};

    fn toml_file(contents: &str) -> NamedTempFile {
        let mut file = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .expect("temp file");
        file.write_all(contents.as_bytes())
            .expect("write temp file");
        file
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn load_err(file: Option<&Path>, vars: &[(&str, &str)]) -> String {
        match Config::load_from(file, env(vars)) {
            Ok(config) => panic!("expected an error, loaded {config:?}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn no_file_and_no_environment_gives_the_defaults() {
        let config = Config::load_from(None, env(&[])).expect("loads");

        assert_eq!(config, Config::default());
    }

    #[test]
    fn a_file_overrides_the_defaults() {
        let file = toml_file(
            "data_dir = \"/srv/broadside\"\n\
             [store]\nbackend = \"postgres\"\n\
             [store.postgres]\npool_size = 8\nconnect_timeout = \"1m30s\"\n\
             [import]\ndelimiter = \";\"\nmax_field_size = \"1MiB\"\n\
             [log]\nformat = \"json\"\n",
        );

        let config = Config::load_from(Some(file.path()), env(&[])).expect("loads");

        assert_eq!(config.data_dir, Path::new("/srv/broadside"));
        assert_eq!(config.store.backend, Backend::Postgres);
        assert_eq!(config.store.postgres.pool_size, 8);
        assert_eq!(
            config.store.postgres.connect_timeout,
            Duration::from_secs(90)
        );
        assert_eq!(config.import.delimiter, Delimiter::Semicolon);
        assert_eq!(config.import.max_field_size, ByteSize(1 << 20));
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(
            config.import.batch_rows, 4096,
            "untouched keys keep defaults"
        );
    }

    #[test]
    fn environment_variables_override_the_file() {
        let file =
            toml_file("[store.postgres]\npool_size = 8\n[import]\nmax_invalid_share = 0.5\n");
        let vars = [
            ("BROADSIDE_STORE__POSTGRES__POOL_SIZE", "32"),
            (
                "BROADSIDE_STORE__POSTGRES__URL",
                "postgres://app:pw@db/prod",
            ),
            ("BROADSIDE_IMPORT__MAX_INVALID_SHARE", "0.25"),
            ("BROADSIDE_IMPORT__EMAIL_COLUMN", "123"),
            ("BROADSIDE_IMPORT__DELIMITER", "tab"),
            ("BROADSIDE_DATA_DIR", "/var/lib/broadside"),
            ("BROADSIDE_STORE__SQLITE__BUSY_TIMEOUT", "250ms"),
        ];

        let config = Config::load_from(Some(file.path()), env(&vars)).expect("loads");

        assert_eq!(config.store.postgres.pool_size, 32);
        assert_eq!(
            config.store.postgres.url.expose(),
            "postgres://app:pw@db/prod"
        );
        assert_eq!(config.import.max_invalid_share, 0.25);
        assert_eq!(config.import.email_column, "123");
        assert_eq!(config.import.delimiter, Delimiter::Tab);
        assert_eq!(config.data_dir, Path::new("/var/lib/broadside"));
        assert_eq!(config.store.sqlite.busy_timeout, Duration::from_millis(250));
    }

    #[test]
    fn unrelated_broadside_variables_are_ignored() {
        let vars = [
            ("BROADSIDE_TEST_DATABASE_URL", "postgres://localhost/test"),
            ("BROADSIDE_REQUIRE_PG", "1"),
            ("BROADSIDE_", "x"),
            ("broadside_store__backend", "mysql"),
            ("PATH", "/usr/bin"),
        ];

        let config = Config::load_from(None, env(&vars)).expect("loads");

        assert_eq!(config, Config::default());
    }

    #[test]
    fn every_delimiter_spelling_is_accepted() {
        let cases = [
            ("auto", Delimiter::Auto),
            (",", Delimiter::Comma),
            (";", Delimiter::Semicolon),
            ("tab", Delimiter::Tab),
            ("\t", Delimiter::Tab),
            ("|", Delimiter::Pipe),
        ];
        for (text, expected) in cases {
            let vars = [("BROADSIDE_IMPORT__DELIMITER", text)];

            let config = Config::load_from(None, env(&vars)).expect("loads");

            assert_eq!(config.import.delimiter, expected, "delimiter {text:?}");
        }
    }

    #[test]
    fn an_unknown_key_in_the_file_is_rejected_with_its_name() {
        let file = toml_file("[store.postgres]\nurll = \"postgres://db/x\"\n");

        let message = load_err(Some(file.path()), &[]);

        let expected = format!(
            "configuration error: unknown key `store.postgres.urll` (in {}); \
             expected one of `url`, `pool_size`, `connect_timeout`",
            file.path().display()
        );
        assert_eq!(message, expected);
    }

    #[test]
    fn an_unknown_key_under_a_known_variable_is_rejected_with_the_variable() {
        let vars = [("BROADSIDE_IMPORT__MAX_INVALID_SHAR", "0.2")];

        let message = load_err(None, &vars);

        assert!(
            message.starts_with(
                "configuration error: unknown key `import.max_invalid_shar` \
                 (from BROADSIDE_IMPORT__MAX_INVALID_SHAR)"
            ),
            "{message}"
        );
    }

    #[test]
    fn an_out_of_range_value_names_the_key_the_value_the_reason_and_the_file() {
        let file = toml_file("[import]\nmax_invalid_share = 1.5\n");

        let message = load_err(Some(file.path()), &[]);

        let expected = format!(
            "configuration error: import.max_invalid_share = 1.5: must be between 0 and 1 (in {})",
            file.path().display()
        );
        assert_eq!(message, expected);
    }

    #[test]
    fn a_malformed_duration_names_the_key_the_value_and_the_expected_form() {
        let file = toml_file("[store.postgres]\nconnect_timeout = \"5 parsecs\"\n");

        let message = load_err(Some(file.path()), &[]);

        let expected = format!(
            "configuration error: store.postgres.connect_timeout = \"5 parsecs\": \
             expected a duration like \"30s\", \"5m\", \"2h\" or \"7d\" (in {})",
            file.path().display()
        );
        assert_eq!(message, expected);
    }

    #[test]
    fn bad_values_give_the_key_the_value_and_the_reason() {
        let cases = [
            (
                "BROADSIDE_STORE__POSTGRES__POOL_SIZE",
                "lots",
                "store.postgres.pool_size = \"lots\": expected u32",
            ),
            (
                "BROADSIDE_STORE__POSTGRES__CONNECT_TIMEOUT",
                "30",
                "store.postgres.connect_timeout = \"30\": a bare number has no unit; add a unit, e.g. \"5s\"",
            ),
            (
                "BROADSIDE_STORE__BACKEND",
                "mysql",
                "store.backend = \"mysql\": expected one of `sqlite`, `postgres`",
            ),
            (
                "BROADSIDE_IMPORT__DELIMITER",
                ":",
                "import.delimiter = \":\": expected \"auto\", \",\", \";\", \"tab\" or \"|\"",
            ),
            (
                "BROADSIDE_IMPORT__MAX_FIELD_SIZE",
                "8 kilos",
                "import.max_field_size = \"8 kilos\": expected a size like",
            ),
            (
                "BROADSIDE_IMPORT__MAX_INVALID_SHARE",
                "-0.5",
                "import.max_invalid_share = -0.5: must be between 0 and 1",
            ),
            (
                "BROADSIDE_IMPORT__BATCH_ROWS",
                "0",
                "import.batch_rows = 0: must be at least 1",
            ),
            (
                "BROADSIDE_LOG__LEVEL",
                " ",
                "log.level = \" \": must name a level",
            ),
        ];
        for (name, value, expected) in cases {
            let message = load_err(None, &[(name, value)]);

            let prefix = format!("configuration error: {expected}");
            assert!(message.starts_with(&prefix), "{name}={value:?}: {message}");
            assert!(message.ends_with(&format!("(from {name})")), "{message}");
        }
    }

    #[test]
    fn an_explicit_file_that_does_not_exist_is_an_error() {
        let missing = Path::new("/nonexistent/broadside.toml");

        let err = Config::load_from(Some(missing), env(&[])).expect_err("must fail");

        assert_eq!(
            err.to_string(),
            "configuration error: /nonexistent/broadside.toml: file not found"
        );
    }

    #[test]
    fn a_toml_syntax_error_is_reported_with_the_file() {
        let file = toml_file("[store\nbackend = \"sqlite\"\n");

        let message = load_err(Some(file.path()), &[]);

        assert!(
            message.starts_with("configuration error: TOML parse error at line 1"),
            "{message}"
        );
        assert!(message.contains("invalid table header"), "{message}");
        assert!(
            message.contains(&file.path().display().to_string()),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn a_password_never_appears_in_an_error() {
        let file =
            toml_file("[store.postgres]\nurl = \"postgres://app:hunter2@db/x\"\npool_size = 0\n");
        let vars = [("BROADSIDE_STORE__POSTGRES__URL__X", "1")];

        let range = load_err(Some(file.path()), &[]);
        let shape = load_err(Some(file.path()), &vars);

        assert!(range.contains("store.postgres.pool_size = 0"), "{range}");
        assert!(!shape.contains("hunter2"), "{shape}");
    }

    #[test]
    fn loading_from_the_process_environment_tolerates_unrelated_variables() {
        // Whatever the CI sets (BROADSIDE_TEST_DATABASE_URL, …) must not break start-up.
        let loaded = Config::load(None);

        assert!(loaded.is_ok(), "{loaded:?}");
    }
}
