//! Numbered schema migrations for the global database and for every tenant file,
//! applied in order, each in its own transaction, each exactly once.

use rusqlite::{Connection, TransactionBehavior};

use super::convert::{db_error, now_ms, to_ms};
use crate::store::StoreResult;

/// A migration: a name that sorts in order, its SQL, and optionally a step SQL
/// cannot express, run in the same transaction after the SQL.
pub(super) struct Migration {
    name: &'static str,
    sql: &'static str,
    step: Option<fn(&Connection) -> StoreResult<()>>,
}

pub(super) const GLOBAL: &[Migration] = &[
    Migration {
        name: "0001_init",
        sql: include_str!("migrations/global/0001_init.sql"),
        step: None,
    },
    Migration {
        name: "0002_api_keys",
        sql: include_str!("migrations/global/0002_api_keys.sql"),
        step: None,
    },
    Migration {
        name: "0003_exchange_accounts",
        sql: include_str!("migrations/global/0003_exchange_accounts.sql"),
        step: None,
    },
    Migration {
        name: "0004_idempotency",
        sql: include_str!("migrations/global/0004_idempotency.sql"),
        step: None,
    },
    Migration {
        name: "0005_suppressions",
        sql: include_str!("migrations/global/0005_suppressions.sql"),
        step: None,
    },
    Migration {
        name: "0006_audit_settings",
        sql: include_str!("migrations/global/0006_audit_settings.sql"),
        step: None,
    },
    Migration {
        name: "0007_retention",
        sql: include_str!("migrations/global/0007_retention.sql"),
        step: None,
    },
    Migration {
        name: "0008_pgp_keys",
        sql: include_str!("migrations/global/0008_pgp_keys.sql"),
        step: None,
    },
    Migration {
        name: "0009_webhook_outbox",
        sql: include_str!("migrations/global/0009_webhook_outbox.sql"),
        step: None,
    },
    Migration {
        name: "0010_users_sessions",
        sql: include_str!("migrations/global/0010_users_sessions.sql"),
        step: None,
    },
];

pub(super) const TENANT: &[Migration] = &[
    Migration {
        name: "0001_init",
        sql: include_str!("migrations/tenant/0001_init.sql"),
        step: None,
    },
    Migration {
        name: "0002_send_pipeline",
        sql: include_str!("migrations/tenant/0002_send_pipeline.sql"),
        step: Some(add_first_attempt),
    },
    Migration {
        name: "0003_exports",
        sql: include_str!("migrations/tenant/0003_exports.sql"),
        step: None,
    },
    Migration {
        name: "0004_active_campaigns",
        sql: include_str!("migrations/tenant/0004_active_campaigns.sql"),
        step: None,
    },
];

/// Adds `first_attempt_at` to the recipients tables imported before it existed
/// (imports since create it). Rows attempted before keep NULL: their first attempt
/// time was never recorded.
fn add_first_attempt(conn: &Connection) -> StoreResult<()> {
    let tables = conn
        .prepare(
            "SELECT name FROM sqlite_master
             WHERE type = 'table' AND name GLOB 'c[0-9]*_recipients'",
        )
        .and_then(|mut stmt| {
            stmt.query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db_error)?;
    for table in tables {
        conn.execute_batch(&format!(
            "ALTER TABLE \"{table}\" ADD COLUMN first_attempt_at INTEGER"
        ))
        .map_err(db_error)?;
    }
    Ok(())
}

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
    for Migration { name, sql, step } in set {
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
        if let Some(step) = step {
            step(&tx)?;
        }
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
