//! Per-tenant settings: what a tenant overrides of the installation's defaults
//! (retention, export interval, tracking domains, security policy, …).
//!
//! Each feature owns one section, a struct of its own with `#[serde(default)]`, so
//! a tenant stores only what it changed and a new section needs no migration. The
//! store keeps the whole document as JSON; `broadside tenant settings` reads it
//! and changes one key at a time by its dotted path.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Everything a tenant can set. Unknown keys are refused, so a typo in
/// `broadside tenant settings --set` is an error instead of a silent no-op.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    /// How long exchange files and campaigns' personal data are kept.
    pub retention: crate::exchange::RetentionSettings,
    /// Response-data exports to the exchange.
    pub exports: crate::exchange::ExportSettings,
    /// Tracking and bounce domains.
    pub tracking: crate::tracking::TenantTracking,
    pub security: crate::auth::SecuritySettings,
}

/// Why a settings change was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("unknown setting `{0}`; `broadside tenant settings <tenant>` lists them")]
    UnknownKey(String),
    #[error("invalid value for `{key}`: {reason}")]
    InvalidValue { key: String, reason: String },
    #[error("stored tenant settings are not valid JSON for this version: {0}")]
    Corrupt(String),
}

impl TenantSettings {
    /// Parses the stored document; empty text is the defaults.
    pub fn from_json(text: &str) -> Result<Self, SettingsError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_str(text).map_err(|e| SettingsError::Corrupt(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("settings serialize to JSON")
    }

    /// Every key with its current value, as `(dotted.path, value)` in document order.
    pub fn entries(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        flatten(
            "",
            &serde_json::to_value(self).expect("settings serialize"),
            &mut out,
        );
        out
    }

    /// A copy with the key at `path` (for example `retention.incoming`) set to
    /// `value`: JSON when it parses as JSON (numbers, booleans, arrays), a string
    /// otherwise. The result is checked by the sections' own deserializers, so a
    /// bad unit or type is refused with the reason, and nothing changes.
    pub fn with_value(&self, path: &str, value: &str) -> Result<Self, SettingsError> {
        let mut doc = serde_json::to_value(self).expect("settings serialize");
        let mut slot = &mut doc;
        for part in path.split('.') {
            slot = slot
                .as_object_mut()
                .and_then(|o| o.get_mut(part))
                .ok_or_else(|| SettingsError::UnknownKey(path.to_owned()))?;
        }
        if slot.is_object() {
            return Err(SettingsError::InvalidValue {
                key: path.to_owned(),
                reason: "this is a section; set one of its keys".to_owned(),
            });
        }
        *slot = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        serde_json::from_value(doc).map_err(|e| SettingsError::InvalidValue {
            key: path.to_owned(),
            reason: e.to_string(),
        })
    }
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let path = match prefix {
                    "" => key.clone(),
                    _ => format!("{prefix}.{key}"),
                };
                flatten(&path, value, out);
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_is_the_defaults_and_round_trips() {
        let settings = TenantSettings::from_json("").expect("empty is valid");
        assert_eq!(settings, TenantSettings::default());
        assert_eq!(
            TenantSettings::from_json(&settings.to_json()).expect("round trip"),
            settings
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let settings = TenantSettings::default();
        assert_eq!(
            settings.with_value("nope.key", "1"),
            Err(SettingsError::UnknownKey("nope.key".to_owned()))
        );
        assert!(matches!(
            TenantSettings::from_json(r#"{"nope": 1}"#),
            Err(SettingsError::Corrupt(_))
        ));
    }
}
