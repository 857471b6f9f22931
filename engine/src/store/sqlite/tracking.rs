//! Tracking events in a campaign's events table and the tenant's suppression list
//! in the global database.

use std::collections::HashSet;

use rusqlite::{Connection, TransactionBehavior, params};

use super::catalog::imported_campaign;
use super::convert::{db_error, events_table, ms_at, now_ms, to_ms};
use crate::model::{CampaignId, RecipientId, TenantId};
use crate::store::tracking::FIRST_TRACKING_KIND;
use crate::store::{StoreResult, Suppression, SuppressionReason, TrackingEvent, TrackingKind};

/// One transaction per batch (group commit), whatever the number of hits.
pub(super) fn record(
    conn: &mut Connection,
    tenant: TenantId,
    campaign: CampaignId,
    events: &[TrackingEvent],
) -> StoreResult<usize> {
    imported_campaign(conn, tenant, campaign)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    {
        let sql = format!(
            "INSERT INTO {} (recipient_id, kind, detail, at) VALUES (?1, ?2, ?3, ?4)",
            events_table(campaign)
        );
        let mut stmt = tx.prepare_cached(&sql).map_err(db_error)?;
        for event in events {
            stmt.execute(params![
                event.recipient.0,
                event.kind.as_i16(),
                event.detail_json(),
                to_ms(event.at)
            ])
            .map_err(db_error)?;
        }
    }
    tx.commit().map_err(db_error)?;
    Ok(events.len())
}

pub(super) fn list(
    conn: &Connection,
    tenant: TenantId,
    campaign: CampaignId,
    recipient: RecipientId,
) -> StoreResult<Vec<TrackingEvent>> {
    imported_campaign(conn, tenant, campaign)?;
    let sql = format!(
        "SELECT kind, detail, at FROM {} WHERE recipient_id = ?1 AND kind >= ?2 ORDER BY id",
        events_table(campaign)
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
    let mut rows = stmt
        .query(params![recipient.0, FIRST_TRACKING_KIND])
        .map_err(db_error)?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        let Some(kind) = TrackingKind::from_i16(row.get(0).map_err(db_error)?) else {
            continue;
        };
        let detail: Option<String> = row.get(1).map_err(db_error)?;
        found.push(TrackingEvent {
            recipient,
            kind,
            detail: TrackingEvent::parse_detail(detail.as_deref()),
            at: ms_at(row, 2).map_err(db_error)?,
        });
    }
    Ok(found)
}

/// Adds addresses; one already listed keeps its first reason and time.
pub(super) fn suppress(
    conn: &mut Connection,
    tenant: TenantId,
    entries: &[(String, SuppressionReason)],
) -> StoreResult<usize> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let mut added = 0;
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO suppressions (tenant_id, email, reason, created_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )
            .map_err(db_error)?;
        let now = to_ms(now_ms());
        for (email, reason) in entries {
            added += stmt
                .execute(params![tenant.0, email, reason.as_str(), now])
                .map_err(db_error)?;
        }
    }
    tx.commit().map_err(db_error)?;
    Ok(added)
}

pub(super) fn unsuppress(conn: &Connection, tenant: TenantId, email: &str) -> StoreResult<bool> {
    let removed = conn
        .execute(
            "DELETE FROM suppressions WHERE tenant_id = ?1 AND email = ?2",
            params![tenant.0, email],
        )
        .map_err(db_error)?;
    Ok(removed > 0)
}

pub(super) fn suppressions(conn: &Connection, tenant: TenantId) -> StoreResult<Vec<Suppression>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT email, reason, created_at FROM suppressions WHERE tenant_id = ?1
             ORDER BY email",
        )
        .map_err(db_error)?;
    let rows = stmt
        .query_map([tenant.0], |row| {
            let reason: String = row.get(1)?;
            Ok(Suppression {
                email: row.get(0)?,
                reason: SuppressionReason::parse(&reason).unwrap_or(SuppressionReason::Manual),
                created_at: ms_at(row, 2)?,
            })
        })
        .map_err(db_error)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error)
}

/// Which of `emails` are suppressed: one query per dispatch batch.
pub(super) fn suppressed_among(
    conn: &Connection,
    tenant: TenantId,
    emails: &[String],
) -> StoreResult<HashSet<String>> {
    let mut found = HashSet::new();
    // SQLite's default limit of bound parameters is 32766; chunks stay far below.
    for chunk in emails.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!(
            "SELECT email FROM suppressions WHERE tenant_id = {} AND email IN ({marks})",
            tenant.0
        );
        let mut stmt = conn.prepare(&sql).map_err(db_error)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(chunk), |row| {
                row.get::<_, String>(0)
            })
            .map_err(db_error)?;
        for row in rows {
            found.insert(row.map_err(db_error)?);
        }
    }
    Ok(found)
}
