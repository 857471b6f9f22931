//! Store errors. Database errors keep their SQLSTATE or SQLite code, so callers and
//! logs can tell a constraint from an outage.

use crate::model::{CampaignId, TenantId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("tenant {0} does not exist")]
    UnknownTenant(TenantId),
    #[error("campaign {campaign} does not exist for tenant {tenant}")]
    UnknownCampaign {
        tenant: TenantId,
        campaign: CampaignId,
    },
    /// No such API key for this tenant (another tenant's key is not found either).
    #[error("API key {0} does not exist")]
    UnknownApiKey(String),
    #[error("user {0:?} does not exist")]
    UnknownUser(String),
    /// A compare-and-swap update lost to another writer; read again and retry.
    #[error("{0} was changed by someone else; read it again")]
    Conflict(String),
    #[error("{what} {name:?} already exists")]
    AlreadyExists { what: &'static str, name: String },
    #[error("campaign {campaign} is {status} and cannot {action}")]
    WrongStatus {
        campaign: CampaignId,
        status: &'static str,
        action: &'static str,
    },
    #[error("campaign {0} has no recipients imported")]
    NotImported(CampaignId),
    #[error("database error{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Database {
        /// SQLSTATE (PostgreSQL) or extended result code name (SQLite).
        code: Option<String>,
        message: String,
    },
    #[error("cannot reach the database: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// Whether retrying later could succeed (an outage, not a bad request).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
