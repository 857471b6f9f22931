//! The exchange's background jobs on SQLite: campaign events for exports,
//! export watermarks and import sources in the tenant's file; idempotency
//! records and exchange accounts in the global one.

use rusqlite::{Connection, OptionalExtension, params};

use super::catalog::{existing_campaign, imported_campaign};
use super::convert::{db_error, events_table, from_ms, ms_at, now_ms, recipients_table, to_ms};
use crate::model::{CampaignId, RecipientId, TenantId};
use crate::store::{
    CampaignEvent, EventKind, ExchangeAccount, ExportWatermark, ImportSource, StoreError,
    StoreResult,
};

/// One writer thread per file commits events in id order, so the largest id
/// is already a bound below which nothing can appear later.
pub(super) fn committed_event_bound(
    conn: &Connection,
    tenant: TenantId,
    campaign: CampaignId,
) -> StoreResult<i64> {
    imported_campaign(conn, tenant, campaign)?;
    conn.query_row(
        &format!(
            "SELECT coalesce(max(id), 0) FROM {}",
            events_table(campaign)
        ),
        [],
        |row| row.get(0),
    )
    .map_err(db_error)
}

pub(super) fn campaign_events(
    conn: &Connection,
    tenant: TenantId,
    campaign: CampaignId,
    after: i64,
    through: i64,
    limit: u32,
) -> StoreResult<Vec<CampaignEvent>> {
    imported_campaign(conn, tenant, campaign)?;
    let sql = format!(
        "SELECT e.id, e.recipient_id, r.email, e.kind, e.detail, e.at
         FROM {events} e LEFT JOIN {recipients} r ON r.id = e.recipient_id
         WHERE e.id > ?1 AND e.id <= ?2 ORDER BY e.id LIMIT ?3",
        events = events_table(campaign),
        recipients = recipients_table(campaign),
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
    let rows = stmt
        .query_map(params![after, through, limit], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, i16>(3)?,
                row.get::<_, Option<String>>(4)?,
                ms_at(row, 5)?,
            ))
        })
        .map_err(db_error)?;
    rows.map(|row| {
        let (id, recipient, email, code, detail, at) = row.map_err(db_error)?;
        Ok(CampaignEvent {
            id,
            recipient: RecipientId(recipient),
            email,
            kind: EventKind::from_i16(code)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind {code}")))?,
            detail,
            at,
        })
    })
    .collect()
}

pub(super) fn export_watermark(
    conn: &Connection,
    tenant: TenantId,
    campaign: CampaignId,
) -> StoreResult<ExportWatermark> {
    existing_campaign(conn, tenant, campaign)?;
    let row = conn
        .query_row(
            "SELECT exported_through, pending_through FROM export_watermarks
             WHERE campaign_id = ?1",
            [campaign.0],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(db_error)?;
    Ok(
        row.map_or_else(ExportWatermark::default, |(exported, pending)| {
            ExportWatermark { exported, pending }
        }),
    )
}

pub(super) fn set_export_watermark(
    conn: &Connection,
    tenant: TenantId,
    campaign: CampaignId,
    mark: ExportWatermark,
) -> StoreResult<()> {
    existing_campaign(conn, tenant, campaign)?;
    conn.execute(
        "INSERT INTO export_watermarks (campaign_id, exported_through, pending_through, updated_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (campaign_id) DO UPDATE SET exported_through = ?2,
             pending_through = ?3, updated_at = ?4",
        params![campaign.0, mark.exported, mark.pending, to_ms(now_ms())],
    )
    .map_err(db_error)?;
    Ok(())
}

pub(super) fn forget_export_watermark(conn: &Connection, campaign: CampaignId) -> StoreResult<()> {
    conn.execute(
        "DELETE FROM export_watermarks WHERE campaign_id = ?1",
        [campaign.0],
    )
    .map_err(db_error)?;
    Ok(())
}

pub(super) fn import_sources(
    conn: &Connection,
    tenant: TenantId,
    campaign: CampaignId,
) -> StoreResult<Vec<ImportSource>> {
    existing_campaign(conn, tenant, campaign)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT source, committed_at FROM imports WHERE campaign_id = ?1 ORDER BY id",
        )
        .map_err(db_error)?;
    let rows = stmt
        .query_map([campaign.0], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .map_err(db_error)?;
    rows.map(|row| {
        let (source, ms) = row.map_err(db_error)?;
        let committed_at = from_ms(ms)
            .ok_or_else(|| StoreError::Corrupt(format!("import of {source}: bad time")))?;
        Ok(ImportSource {
            source,
            committed_at,
        })
    })
    .collect()
}

/// The global half of a purge: the campaign's batch idempotency records.
pub(super) fn delete_idempotency(
    conn: &Connection,
    tenant: TenantId,
    campaign: CampaignId,
) -> StoreResult<u64> {
    // The global file does not zero freed pages in general (nothing personal
    // lives there otherwise); these rows are derived from addresses, so it does
    // for this statement.
    conn.execute_batch("PRAGMA secure_delete = ON")
        .map_err(db_error)?;
    // Webhook events still waiting for the receiver go too: their details
    // (an SMTP reply, a URL) may name the recipient.
    let deleted = conn
        .execute(
            "DELETE FROM idempotency_keys WHERE tenant_id = ?1 AND batch_id = ?2",
            params![tenant.0, campaign.0],
        )
        .and_then(|n| {
            conn.execute(
                "DELETE FROM webhook_outbox
                 WHERE tenant_id = ?1 AND json_extract(event, '$.campaign') = ?2",
                params![tenant.0, campaign.0],
            )
            .map(|m| n + m)
        });
    conn.execute_batch("PRAGMA secure_delete = OFF")
        .map_err(db_error)?;
    let deleted = deleted.map_err(db_error)?;
    if deleted > 0 {
        // Deleted rows linger in the WAL until a checkpoint copies the zeroed
        // pages (`secure_delete`) over them.
        super::recipients::checkpoint(conn)?;
    }
    Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
}

pub(super) fn exchange_accounts(
    conn: &Connection,
    tenant: TenantId,
) -> StoreResult<Vec<ExchangeAccount>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT username, tenant_id, password_hash, public_keys
             FROM exchange_accounts WHERE tenant_id = ?1 ORDER BY username",
        )
        .map_err(db_error)?;
    let rows = stmt
        .query_map([tenant.0], super::keys::account_row)
        .map_err(db_error)?;
    rows.map(|row| row.map_err(db_error)).collect()
}

pub(super) fn remove_exchange_account(
    conn: &Connection,
    tenant: TenantId,
    username: &str,
) -> StoreResult<bool> {
    let removed = conn
        .execute(
            "DELETE FROM exchange_accounts WHERE tenant_id = ?1 AND username = ?2",
            params![tenant.0, username],
        )
        .map_err(db_error)?;
    Ok(removed > 0)
}
