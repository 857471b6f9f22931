//! Configuration errors, each one line that names the key, the value, the reason and
//! where the value came from, because the person reading it is fixing a file or an
//! environment variable and needs to know which one.

use std::fmt;
use std::path::PathBuf;

use figment::error::Kind;
use figment::value::Value;
use figment::{Figment, Metadata, Profile, Source};

use super::secret::redact_url;

/// Keys whose values are secrets; an error shows them through [`redact_url`].
const SECRET_KEYS: [&str; 1] = ["store.postgres.url"];

/// Why the configuration could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration error: {}: file not found", path.display())]
    FileNotFound { path: PathBuf },
    #[error("configuration error: unknown key `{key}`{origin}; expected one of {expected}")]
    UnknownKey {
        key: String,
        expected: String,
        origin: Origin,
    },
    #[error("configuration error: {key} = {value}: {reason}{origin}")]
    InvalidValue {
        key: String,
        /// As written in TOML (strings quoted), secrets redacted.
        value: String,
        reason: String,
        origin: Origin,
    },
    /// Anything without a key, such as a TOML syntax error or an unreadable file.
    #[error("configuration error: {0}")]
    Other(String),
}

/// Where a value came from: a file, an environment variable, or nowhere known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin(Option<String>);

impl Origin {
    /// Names the provider of `key` in `figment`: the file path for a file, the
    /// variable name for the environment.
    pub(crate) fn of(figment: &Figment, key: &[String]) -> Self {
        Self(
            figment
                .find_metadata(&key.join("."))
                .map(|md| describe(md, key)),
        )
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(origin) => write!(f, " ({origin})"),
            None => Ok(()),
        }
    }
}

fn describe(md: &Metadata, key: &[String]) -> String {
    match &md.source {
        Some(Source::File(path)) => format!("in {}", path.display()),
        // The environment provider's interpolater turns the key into its variable.
        _ => format!("from {}", md.interpolate(&Profile::Default, key)),
    }
}

impl ConfigError {
    /// A value that parsed but is not allowed; `load` fills in the origin.
    pub(crate) fn invalid(key: &str, value: impl Into<String>, reason: &str) -> Self {
        Self::InvalidValue {
            key: key.to_owned(),
            value: value.into(),
            reason: reason.to_owned(),
            origin: Origin::default(),
        }
    }

    /// Adds where the offending value came from, when the error names a key.
    pub(crate) fn with_origin_from(mut self, figment: &Figment) -> Self {
        if let Self::InvalidValue { key, origin, .. } = &mut self {
            let path: Vec<String> = key.split('.').map(str::to_owned).collect();
            *origin = Origin::of(figment, &path);
        }
        self
    }

    /// Translates figment's error into one line about the first problem found.
    pub(crate) fn from_figment(err: figment::Error, figment: &Figment) -> Self {
        let mut path = err.path.clone();
        match &err.kind {
            Kind::UnknownField(field, expected) => {
                // figment usually includes the field in the path already.
                if path.last() != Some(field) {
                    path.push(field.clone());
                }
                Self::UnknownKey {
                    key: path.join("."),
                    expected: one_of(expected),
                    origin: Origin::of(figment, &path),
                }
            }
            _ if path.is_empty() => Self::Other(first_line(&err)),
            kind => {
                let key = path.join(".");
                Self::InvalidValue {
                    value: render_value(figment, &key),
                    reason: reason(kind),
                    origin: Origin::of(figment, &path),
                    key,
                }
            }
        }
    }
}

/// One line for an error without a key (TOML syntax, I/O): the parser's summary
/// and where. figment chains further errors and TOML adds a source excerpt; both
/// are left out to keep to one line.
fn first_line(err: &figment::Error) -> String {
    let kind = err.kind.to_string();
    let mut lines = kind.lines();
    let mut summary = lines.next().unwrap_or_default().to_owned();
    // TOML's excerpt lines carry a '|' gutter; the lines after it say what is wrong.
    let detail: Vec<&str> = lines
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.contains('|'))
        .collect();
    if !detail.is_empty() {
        summary = format!("{summary}: {}", detail.join(", "));
    }
    match err.metadata.as_ref().and_then(|md| md.source.as_ref()) {
        Some(source) => format!("{summary} (in {source})"),
        None => summary,
    }
}

fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    quoted.join(", ")
}

/// Serde's wording, reshaped where it reads badly on a configuration key.
fn reason(kind: &Kind) -> String {
    match kind {
        Kind::UnknownVariant(_, expected) => format!("expected one of {}", one_of(expected)),
        Kind::InvalidType(_, expected) => format!("expected {expected}"),
        other => other.to_string(),
    }
}

/// The offending value as it would be written in TOML, secrets redacted.
fn render_value(figment: &Figment, key: &str) -> String {
    let Ok(value) = figment.find_value(key) else {
        return "?".to_owned();
    };
    if SECRET_KEYS.contains(&key) {
        return match value.as_str() {
            Some(url) => format!("{:?}", redact_url(url)),
            None => super::REDACTED.to_owned(),
        };
    }
    render(&value)
}

fn render(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{:?}", c.to_string()),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, num) => num
            .to_f64()
            .map(|f| format!("{f:?}"))
            .or_else(|| num.to_u128().map(|u| u.to_string()))
            .or_else(|| num.to_i128().map(|i| i.to_string()))
            .unwrap_or_else(|| "?".to_owned()),
        Value::Empty(..) => "nothing".to_owned(),
        Value::Dict(..) => "a table".to_owned(),
        Value::Array(..) => "an array".to_owned(),
    }
}
