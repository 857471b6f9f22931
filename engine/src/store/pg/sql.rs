//! Identifiers and error mapping. Every schema and table name is built here from
//! numeric ids only, never from text a person typed, so names cannot inject SQL.

use tokio_postgres::error::SqlState;

use crate::model::{CampaignId, TenantId};
use crate::store::StoreError;

/// The schema holding one tenant's tables.
pub(crate) fn schema(tenant: TenantId) -> String {
    format!("t_{}", tenant.0)
}

/// `t_<tenant>.c<campaign>_<suffix>`; ids are integers, so no quoting is needed.
pub(crate) fn table(tenant: TenantId, campaign: CampaignId, suffix: &str) -> String {
    format!("t_{}.c{}_{suffix}", tenant.0, campaign.0)
}

pub(crate) fn recipients(tenant: TenantId, campaign: CampaignId) -> String {
    table(tenant, campaign, "recipients")
}

pub(crate) fn events(tenant: TenantId, campaign: CampaignId) -> String {
    table(tenant, campaign, "events")
}

/// The personalization columns of the recipients table: `v1..vN`. The names people
/// gave them live in `campaigns.columns`.
pub(crate) fn value_columns(count: usize) -> String {
    (1..=count).map(|i| format!(", v{i}")).collect()
}

/// Whether an error says a schema or table is missing, which the stores turn into
/// "unknown tenant", "unknown campaign" or "not imported" after a look-up.
pub(crate) fn is_missing_relation(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(&SqlState::UNDEFINED_TABLE) | Some(&SqlState::INVALID_SCHEMA_NAME)
    )
}

pub(crate) fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

pub(crate) fn is_foreign_key_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
}

/// Keeps the SQLSTATE; an outage (no server, a dropped socket, a server shutting
/// down or out of connections) becomes `Unavailable`, which callers may retry.
pub(crate) fn db_error(error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        let outage = code.starts_with("08") || code.starts_with("57P") || code == "53300";
        if outage {
            return StoreError::Unavailable(db.message().to_owned());
        }
        return StoreError::Database {
            code: Some(code.to_owned()),
            message: db.message().to_owned(),
        };
    }
    let io = std::error::Error::source(&error).is_some_and(|s| s.is::<std::io::Error>());
    if error.is_closed() || io {
        return StoreError::Unavailable(error.to_string());
    }
    StoreError::Database {
        code: None,
        message: error.to_string(),
    }
}

pub(crate) fn pool_error(error: bb8::RunError<tokio_postgres::Error>) -> StoreError {
    match error {
        bb8::RunError::User(e) => match db_error(e) {
            StoreError::Database { message, .. } => StoreError::Unavailable(message),
            other => other,
        },
        bb8::RunError::TimedOut => {
            StoreError::Unavailable("timed out waiting for a database connection".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_built_from_ids_only() {
        assert_eq!(
            recipients(TenantId(7), CampaignId(42)),
            "t_7.c42_recipients"
        );
        assert_eq!(events(TenantId(7), CampaignId(42)), "t_7.c42_events");
        assert_eq!(value_columns(3), ", v1, v2, v3");
        assert_eq!(value_columns(0), "");
    }
}
