//! The webhook outbox in the global database.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};

use super::convert::{db_error, now_ms, to_ms};
use crate::model::TenantId;
use crate::store::{StoreResult, WebhookDelivery};

pub(super) fn enqueue(
    conn: &mut Connection,
    tenant: TenantId,
    events: &[String],
) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO webhook_outbox (tenant_id, event, next_attempt_at, created_at)
                 VALUES (?1, ?2, ?3, ?3)",
            )
            .map_err(db_error)?;
        let now = to_ms(now_ms());
        for event in events {
            stmt.execute(params![tenant.0, event, now])
                .map_err(db_error)?;
        }
    }
    tx.commit().map_err(db_error)
}

pub(super) fn due(
    conn: &Connection,
    tenant: TenantId,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<WebhookDelivery>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, event, attempts FROM webhook_outbox
             WHERE tenant_id = ?1 AND next_attempt_at <= ?2 ORDER BY id LIMIT ?3",
        )
        .map_err(db_error)?;
    let rows = stmt
        .query_map(params![tenant.0, to_ms(now), limit], |row| {
            Ok(WebhookDelivery {
                id: row.get(0)?,
                event: row.get(1)?,
                attempts: row.get(2)?,
            })
        })
        .map_err(db_error)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error)
}

pub(super) fn ack(conn: &mut Connection, tenant: TenantId, ids: &[i64]) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    {
        let mut stmt = tx
            .prepare_cached("DELETE FROM webhook_outbox WHERE tenant_id = ?1 AND id = ?2")
            .map_err(db_error)?;
        for id in ids {
            stmt.execute(params![tenant.0, id]).map_err(db_error)?;
        }
    }
    tx.commit().map_err(db_error)
}

pub(super) fn retry(
    conn: &mut Connection,
    tenant: TenantId,
    ids: &[i64],
    next: DateTime<Utc>,
) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    {
        let mut stmt = tx
            .prepare_cached(
                "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = ?3
                 WHERE tenant_id = ?1 AND id = ?2",
            )
            .map_err(db_error)?;
        for id in ids {
            stmt.execute(params![tenant.0, id, to_ms(next)])
                .map_err(db_error)?;
        }
    }
    tx.commit().map_err(db_error)
}
