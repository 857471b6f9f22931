//! Conversions at the SQLite boundary: errors with their extended result code names,
//! timestamps as unix milliseconds, and the names of per-campaign tables.

use chrono::{DateTime, Utc};
use rusqlite::ffi;

use crate::model::CampaignId;
use crate::store::StoreError;

/// Keeps the extended result code, so a unique violation can be told from a full disk.
pub(super) fn db_error(err: rusqlite::Error) -> StoreError {
    match err {
        rusqlite::Error::SqliteFailure(failure, message) => StoreError::Database {
            code: Some(code_name(failure.extended_code)),
            message: message.unwrap_or_else(|| failure.to_string()),
        },
        other => StoreError::Database {
            code: None,
            message: other.to_string(),
        },
    }
}

/// Whether `err` is a UNIQUE or PRIMARY KEY violation.
pub(super) fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error().map(|e| e.extended_code),
        Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    )
}

/// SQLite has no API for the symbolic name of a code; these are the ones worth
/// telling apart in logs, the rest keep their primary name and the number.
fn code_name(extended: i32) -> String {
    let known = match extended {
        ffi::SQLITE_CONSTRAINT_UNIQUE => "SQLITE_CONSTRAINT_UNIQUE",
        ffi::SQLITE_CONSTRAINT_PRIMARYKEY => "SQLITE_CONSTRAINT_PRIMARYKEY",
        ffi::SQLITE_CONSTRAINT_NOTNULL => "SQLITE_CONSTRAINT_NOTNULL",
        ffi::SQLITE_CONSTRAINT_CHECK => "SQLITE_CONSTRAINT_CHECK",
        ffi::SQLITE_BUSY_SNAPSHOT => "SQLITE_BUSY_SNAPSHOT",
        ffi::SQLITE_BUSY_TIMEOUT => "SQLITE_BUSY_TIMEOUT",
        ffi::SQLITE_IOERR_FSYNC => "SQLITE_IOERR_FSYNC",
        ffi::SQLITE_IOERR_WRITE => "SQLITE_IOERR_WRITE",
        ffi::SQLITE_READONLY_DBMOVED => "SQLITE_READONLY_DBMOVED",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    let primary = match extended & 0xff {
        ffi::SQLITE_ERROR => "SQLITE_ERROR",
        ffi::SQLITE_INTERNAL => "SQLITE_INTERNAL",
        ffi::SQLITE_PERM => "SQLITE_PERM",
        ffi::SQLITE_ABORT => "SQLITE_ABORT",
        ffi::SQLITE_BUSY => "SQLITE_BUSY",
        ffi::SQLITE_LOCKED => "SQLITE_LOCKED",
        ffi::SQLITE_NOMEM => "SQLITE_NOMEM",
        ffi::SQLITE_READONLY => "SQLITE_READONLY",
        ffi::SQLITE_INTERRUPT => "SQLITE_INTERRUPT",
        ffi::SQLITE_IOERR => "SQLITE_IOERR",
        ffi::SQLITE_CORRUPT => "SQLITE_CORRUPT",
        ffi::SQLITE_FULL => "SQLITE_FULL",
        ffi::SQLITE_CANTOPEN => "SQLITE_CANTOPEN",
        ffi::SQLITE_PROTOCOL => "SQLITE_PROTOCOL",
        ffi::SQLITE_SCHEMA => "SQLITE_SCHEMA",
        ffi::SQLITE_TOOBIG => "SQLITE_TOOBIG",
        ffi::SQLITE_CONSTRAINT => "SQLITE_CONSTRAINT",
        ffi::SQLITE_MISMATCH => "SQLITE_MISMATCH",
        ffi::SQLITE_MISUSE => "SQLITE_MISUSE",
        ffi::SQLITE_NOTADB => "SQLITE_NOTADB",
        _ => "SQLITE",
    };
    if extended <= 0xff && primary != "SQLITE" {
        primary.to_owned()
    } else {
        format!("{primary}({extended})")
    }
}

/// Timestamps are stored as INTEGER unix milliseconds: compact, sortable, and exact
/// for everything the engine records.
pub(super) fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// Reads a timestamp from result column `column`.
pub(super) fn ms_at(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<DateTime<Utc>> {
    let ms: i64 = row.get(column)?;
    from_ms(ms).ok_or(rusqlite::Error::IntegralValueOutOfRange(column, ms))
}

pub(super) fn from_ms(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// The current time at the precision it is stored with, so that what a call returns
/// equals what a later read returns.
pub(super) fn now_ms() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// Table names are built only from numeric ids: nothing a person typed ever reaches
/// an SQL identifier (human column names live in `campaigns.columns`).
pub(super) fn recipients_table(campaign: CampaignId) -> String {
    format!("c{}_recipients", campaign.0)
}

pub(super) fn events_table(campaign: CampaignId) -> String {
    format!("c{}_events", campaign.0)
}

/// The staging table of one import; `import` is unique within the process, so two
/// imports of the same campaign never share one.
pub(super) fn staging_table(campaign: CampaignId, import: u64) -> String {
    format!("c{}_import{}", campaign.0, import)
}

/// The SQL column of personalization value `index` (0-based).
pub(super) fn value_column(index: usize) -> String {
    format!("v{}", index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_their_extended_name_or_their_primary_name_and_number() {
        assert_eq!(
            code_name(ffi::SQLITE_CONSTRAINT_UNIQUE),
            "SQLITE_CONSTRAINT_UNIQUE"
        );
        assert_eq!(code_name(ffi::SQLITE_FULL), "SQLITE_FULL");
        assert_eq!(
            code_name(ffi::SQLITE_IOERR_READ),
            format!("SQLITE_IOERR({})", ffi::SQLITE_IOERR_READ)
        );
    }

    #[test]
    fn timestamps_round_trip_at_millisecond_precision() {
        let now = now_ms();
        assert_eq!(from_ms(to_ms(now)), Some(now));
        let min = DateTime::<Utc>::MIN_UTC;
        assert_eq!(from_ms(to_ms(min)).map(to_ms), Some(to_ms(min)));
    }
}
