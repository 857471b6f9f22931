//! People who log in to the web application, and their sessions, as the store
//! keeps them: a few indexed columns and an opaque JSON document that the
//! authentication code (`auth::user`, `auth::session`) owns, so a new safeguard
//! needs no migration.

use chrono::{DateTime, Utc};

use crate::model::TenantId;

/// A user row. `version` makes updates compare-and-swap: the login state machine
/// reads a user, decides, and writes back; two logins racing on one user (parallel
/// wrong codes, say) cannot both count as the first try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Unique across the installation: the login name decides the tenant.
    pub name: String,
    /// The tenant the user belongs to; `None` for an operator of the installation.
    pub tenant: Option<TenantId>,
    /// Bumped by every update; an update carrying an older version is refused.
    pub version: i64,
    /// Password hashes, factors, counters: JSON owned by `auth::user`.
    pub data: String,
    pub created_at: DateTime<Utc>,
}

/// A web session: looked up by the SHA-256 of its cookie value, so a copy of the
/// table cannot be replayed as cookies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Hex SHA-256 of the random session id.
    pub id_hash: String,
    pub user: String,
    /// The stage of the login, CSRF token, …: JSON owned by the web application.
    pub data: String,
    /// After this the session is ignored, whatever its data says.
    pub expires_at: DateTime<Utc>,
}
