//! Web users: who they are (`Role`, tenant) and their authentication state, kept
//! as the JSON `data` of a `UserRecord`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::TenantId;
use crate::store::{StoreError, UserRecord};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages the tenant's users, keys and security settings.
    Admin,
    /// Watches campaigns and downloads exports.
    #[default]
    Member,
    /// Runs the installation; sees every tenant, each view of personal data audited.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Operator => "operator",
        }
    }
}

/// A pending SMS code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCode {
    /// `otp::code_hash` of the code.
    pub hash: String,
    /// The number it was sent to; confirming a code sent to a new number verifies it.
    pub phone: String,
    pub expires_at: DateTime<Utc>,
}

/// An authenticator app registered for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpFactor {
    /// Base32. Kept in the clear because checking a code needs it; the database
    /// is the boundary that protects it, as for the sealed API secrets' store.
    pub secret: String,
    /// Set once the user proved the app works by entering a code.
    pub confirmed: bool,
    /// The last time step whose code was accepted: no code works twice.
    pub last_step: Option<u64>,
}

/// The authentication state of a user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserData {
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    pub password_changed_at: Option<DateTime<Utc>>,
    /// Set by an admin reset: the next login must choose a new password.
    pub must_change_password: bool,
    /// Earlier hashes, newest first, at most `password_history`.
    pub password_history: Vec<String>,
    /// Wrong passwords inside the lockout window, oldest first.
    pub failures: Vec<DateTime<Utc>>,
    pub locked_until: Option<DateTime<Utc>>,
    /// The verified phone number for SMS codes.
    pub phone: Option<String>,
    pub code: Option<PendingCode>,
    pub totp: Option<TotpFactor>,
    /// `otp::code_hash` of each unused recovery code.
    pub recovery_codes: Vec<String>,
    /// When the password was last accepted in a login still in progress; the
    /// second factor is only accepted while this is recent.
    pub password_ok_at: Option<DateTime<Utc>>,
    /// Wrong second-factor codes in the login in progress.
    pub wrong_codes: u32,
}

/// A user with their state parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub tenant: Option<TenantId>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub data: UserData,
}

impl User {
    pub fn new(name: &str, tenant: Option<TenantId>, data: UserData, now: DateTime<Utc>) -> Self {
        User {
            name: name.to_owned(),
            tenant,
            version: 1,
            created_at: now,
            data,
        }
    }

    pub fn from_record(record: UserRecord) -> Result<Self, StoreError> {
        let data = serde_json::from_str(&record.data)
            .map_err(|e| StoreError::Corrupt(format!("user {:?}: {e}", record.name)))?;
        Ok(User {
            name: record.name,
            tenant: record.tenant,
            version: record.version,
            created_at: record.created_at,
            data,
        })
    }

    pub fn to_record(&self) -> UserRecord {
        UserRecord {
            name: self.name.clone(),
            tenant: self.tenant,
            version: self.version,
            data: serde_json::to_string(&self.data).expect("user data serializes"),
            created_at: self.created_at,
        }
    }

    /// The audit log's name for this person.
    pub fn actor(&self) -> String {
        actor(&self.name, self.data.role)
    }

    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.data.locked_until.is_some_and(|until| until > now)
    }

    /// Whether the user has a second factor to log in with.
    pub fn has_second_factor(&self) -> bool {
        self.data.phone.is_some() || self.data.totp.as_ref().is_some_and(|t| t.confirmed)
    }
}

pub fn actor(name: &str, role: Role) -> String {
    match role {
        Role::Operator => format!("operator:{name}"),
        _ => format!("user:{name}"),
    }
}

/// Whether `name` is usable as a login name: 1–64 of letters, digits, `.`, `_`,
/// `-`, `@` (e-mail addresses work as names).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}
