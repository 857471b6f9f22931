//! Sending SMS codes: the `SmsGateway` trait, and the file gateway used in
//! development and tests (the HTTP webhook gateway lives with the runtime, which
//! owns the HTTP client).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("the SMS gateway refused the message: {0}")]
    Refused(String),
    #[error("the SMS gateway cannot be reached: {0}")]
    Unavailable(String),
}

/// Delivers a text message to a phone number (E.164, `+` and digits).
#[async_trait]
pub trait SmsGateway: Send + Sync + std::fmt::Debug {
    async fn send(&self, to: &str, text: &str) -> Result<(), SmsError>;
}

/// One message as the file gateway writes it: a JSON object per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsMessage {
    pub at: DateTime<Utc>,
    pub to: String,
    pub text: String,
}

/// Appends each message to a file, one JSON line each; nothing leaves the host.
#[derive(Debug)]
pub struct FileGateway {
    path: PathBuf,
    /// Serializes appends so lines never interleave.
    lock: tokio::sync::Mutex<()>,
}

impl FileGateway {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileGateway {
            path: path.into(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Every message written so far (for tests and the development console).
    pub fn read(path: &Path) -> std::io::Result<Vec<SmsMessage>> {
        let text = match std::fs::read_to_string(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other?,
        };
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }
}

#[async_trait]
impl SmsGateway for FileGateway {
    async fn send(&self, to: &str, text: &str) -> Result<(), SmsError> {
        let line = serde_json::to_string(&SmsMessage {
            at: Utc::now(),
            to: to.to_owned(),
            text: text.to_owned(),
        })
        .map_err(|e| SmsError::Refused(e.to_string()))?;
        let _guard = self.lock.lock().await;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            writeln!(file, "{line}")
        })
        .await
        .map_err(|e| SmsError::Unavailable(e.to_string()))?
        .map_err(|e| SmsError::Unavailable(format!("{}: {e}", self.path.display())))
    }
}

/// Whether `phone` is an E.164 number: `+`, then 8 to 15 digits.
pub fn valid_phone(phone: &str) -> bool {
    phone
        .strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_file_gateway_appends_one_json_line_per_message() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sms.log");
        let gateway = FileGateway::new(&path);
        gateway.send("+3612345678", "code 1").await.expect("send");
        gateway.send("+3612345679", "code 2").await.expect("send");
        let messages = FileGateway::read(&path).expect("read");
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[1].to, "+3612345679");
        assert_eq!(messages[1].text, "code 2");
    }

    #[test]
    fn phones_must_be_e164() {
        assert!(valid_phone("+3612345678"));
        assert!(!valid_phone("3612345678"));
        assert!(!valid_phone("+36 1234 5678"));
        assert!(!valid_phone("+1234"));
    }
}
