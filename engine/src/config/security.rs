//! The `[security]` section: the installation's login safeguards (password policy,
//! lockout, rate limits, one-time codes, sessions) and the SMS gateway. Tenants
//! tighten some of them in their `security` settings (`auth::SecuritySettings`).

use serde::{Deserialize, Serialize};

use super::secret::Secret;
use super::units::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Shortest password accepted; length beats composition rules (NIST 800-63B).
    pub password_min_length: usize,
    /// How many earlier passwords a new one may not repeat.
    pub password_history: usize,
    /// A password older than this must be changed at the next login; 0 never.
    pub password_max_age: Duration,
    /// Wrong passwords within `lockout_window` that lock the account.
    pub lockout_failures: usize,
    pub lockout_window: Duration,
    /// How long a locked account stays locked (an admin can unlock it sooner).
    pub lockout_duration: Duration,
    /// How long an SMS code is valid.
    pub sms_code_ttl: Duration,
    /// Wrong second-factor codes after which the login fails and starts over.
    pub code_max_wrong: u32,
    /// The window of the rate limits below.
    pub rate_window: Duration,
    /// Login attempts (passwords and codes) per user name per window.
    pub attempts_per_user: usize,
    /// Login attempts per client address per window, whatever the user name.
    pub attempts_per_ip: usize,
    /// SMS codes sent per user per window: stops SMS flooding and toll fraud.
    pub codes_per_user: usize,
    /// A web session ends after this long without a request.
    pub session_idle: Duration,
    /// How often the server deletes the rows of expired sessions (a session is
    /// also deleted when a request brings its expired cookie).
    pub session_sweep_interval: Duration,
    pub sms: SmsConfig,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            password_min_length: 12,
            password_history: 5,
            password_max_age: Duration::from_secs(90 * 86_400),
            lockout_failures: 5,
            lockout_window: Duration::from_secs(15 * 60),
            lockout_duration: Duration::from_secs(15 * 60),
            sms_code_ttl: Duration::from_secs(5 * 60),
            code_max_wrong: 3,
            rate_window: Duration::from_secs(15 * 60),
            attempts_per_user: 10,
            attempts_per_ip: 50,
            codes_per_user: 5,
            session_idle: Duration::from_secs(30 * 60),
            session_sweep_interval: Duration::from_secs(5 * 60),
            sms: SmsConfig::default(),
        }
    }
}

/// Where SMS codes go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// "file" appends each message to `file` (development, tests); "webhook"
    /// POSTs JSON to `webhook_url`.
    pub gateway: SmsGatewayKind,
    /// The file of the "file" gateway; empty: `<data_dir>/sms.log`.
    pub file: String,
    /// The "webhook" gateway's URL; it receives `{"to": "+…", "text": "…"}`.
    /// Hidden when the configuration is shown: URLs often carry a token.
    #[serde(serialize_with = "super::api::serialize_optional_secret")]
    pub webhook_url: Secret<String>,
    /// Value of the `Authorization` header sent to the webhook (e.g. `Bearer …`).
    #[serde(serialize_with = "super::api::serialize_optional_secret")]
    pub webhook_auth: Secret<String>,
    /// How long one webhook call may take.
    pub webhook_timeout: Duration,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            gateway: SmsGatewayKind::File,
            file: String::new(),
            webhook_url: Secret::new(String::new()),
            webhook_auth: Secret::new(String::new()),
            webhook_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsGatewayKind {
    File,
    Webhook,
}
