//! Numbered schema migrations for the global database and for every tenant file,
//! applied in order, each in its own transaction, each exactly once.

use rusqlite::{Connection, TransactionBehavior};

use super::convert::{db_error, now_ms, to_ms};
use crate::store::StoreResult;

/// A migration: a name that sorts in order, and its SQL.
pub(super) type Migration = (&'static str, &'static str);

pub(super) const GLOBAL: &[Migration] =
    &[("0001_init", include_str!("migrations/global/0001_init.sql"))];

pub(super) const TENANT: &[Migration] =
    &[("0001_init", include_str!("migrations/tenant/0001_init.sql"))];

/// Applies the migrations of `set` that `conn` has not seen; returns their names.
/// `BEGIN IMMEDIATE` and the re-check inside the transaction make two processes
/// migrating the same file at once harmless.
pub(super) fn apply(conn: &mut Connection, set: &[Migration]) -> StoreResult<Vec<String>> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             name       TEXT PRIMARY KEY,
             applied_at INTEGER NOT NULL
         )",
    )
    .map_err(db_error)?;
    let mut applied = Vec::new();
    for (name, sql) in set {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error)?;
        let done: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = ?1)",
                [name],
                |row| row.get(0),
            )
            .map_err(db_error)?;
        if done {
            continue;
        }
        tx.execute_batch(sql).map_err(db_error)?;
        tx.execute(
            "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, ?2)",
            rusqlite::params![name, to_ms(now_ms())],
        )
        .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        applied.push((*name).to_owned());
    }
    Ok(applied)
}
