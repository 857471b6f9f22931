//! Tenants (global database) and campaigns (tenant files): the catalog rows, as
//! synchronous functions that run on a `Worker`'s connection.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::convert::{db_error, from_ms, is_unique_violation, ms_at, now_ms, to_ms};
use crate::model::{CampaignId, CampaignName, TenantId, TenantName};
use crate::store::{Campaign, CampaignCounters, CampaignStatus, StoreError, StoreResult, Tenant};

pub(super) fn insert_tenant(conn: &Connection, name: &TenantName) -> StoreResult<Tenant> {
    let created_at = now_ms();
    conn.execute(
        "INSERT INTO tenants (name, created_at) VALUES (?1, ?2)",
        params![name.as_str(), to_ms(created_at)],
    )
    .map_err(|err| match is_unique_violation(&err) {
        true => StoreError::AlreadyExists {
            what: "tenant",
            name: name.to_string(),
        },
        false => db_error(err),
    })?;
    Ok(Tenant {
        id: TenantId(conn.last_insert_rowid()),
        name: name.clone(),
        created_at,
    })
}

const TENANT_COLUMNS: &str = "SELECT id, name, created_at FROM tenants";

fn tenant_row(row: &Row<'_>) -> rusqlite::Result<(i64, String, DateTime<Utc>)> {
    Ok((row.get(0)?, row.get(1)?, ms_at(row, 2)?))
}

fn into_tenant((id, name, created_at): (i64, String, DateTime<Utc>)) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: TenantId(id),
        name: TenantName::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at,
    })
}

pub(super) fn tenants(conn: &Connection) -> StoreResult<Vec<Tenant>> {
    let mut stmt = conn
        .prepare_cached(&format!("{TENANT_COLUMNS} ORDER BY id"))
        .map_err(db_error)?;
    let rows = stmt.query_map([], tenant_row).map_err(db_error)?;
    rows.map(|row| into_tenant(row.map_err(db_error)?))
        .collect()
}

pub(super) fn tenant_by_name(conn: &Connection, name: &TenantName) -> StoreResult<Option<Tenant>> {
    let mut stmt = conn
        .prepare_cached(&format!("{TENANT_COLUMNS} WHERE name = ?1"))
        .map_err(db_error)?;
    let row = stmt
        .query_row([name.as_str()], tenant_row)
        .optional()
        .map_err(db_error)?;
    row.map(into_tenant).transpose()
}

pub(super) fn tenant_exists(conn: &Connection, id: TenantId) -> StoreResult<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = ?1)")
        .and_then(|mut stmt| stmt.query_row([id.0], |row| row.get(0)))
        .map_err(db_error)
}

/// Hands out the next campaign id. Ids come from the global database so that an id
/// names one campaign of one tenant; another tenant's file simply lacks it.
pub(super) fn allocate_campaign_id(conn: &Connection, tenant: TenantId) -> StoreResult<CampaignId> {
    conn.execute(
        "INSERT INTO campaign_ids (tenant_id, created_at) VALUES (?1, ?2)",
        params![tenant.0, to_ms(now_ms())],
    )
    .map_err(db_error)?;
    Ok(CampaignId(conn.last_insert_rowid()))
}

pub(super) fn insert_campaign(
    conn: &Connection,
    tenant: TenantId,
    id: CampaignId,
    name: &CampaignName,
) -> StoreResult<Campaign> {
    let created_at = now_ms();
    conn.execute(
        "INSERT INTO campaigns (id, name, status, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            id.0,
            name.as_str(),
            CampaignStatus::Draft.as_str(),
            to_ms(created_at)
        ],
    )
    .map_err(|err| match is_unique_violation(&err) {
        true => StoreError::AlreadyExists {
            what: "campaign",
            name: name.to_string(),
        },
        false => db_error(err),
    })?;
    Ok(Campaign {
        id,
        tenant,
        name: name.clone(),
        status: CampaignStatus::Draft,
        columns: Vec::new(),
        imported: false,
        created_at,
        definition: None,
        launched_at: None,
    })
}

const CAMPAIGN_COLUMNS: &str = "SELECT id, name, status, columns, imported, created_at,
         definition, launched_at FROM campaigns";

/// A campaign row as stored, before validation.
struct CampaignRow {
    id: i64,
    name: String,
    status: String,
    columns: String,
    imported: bool,
    created_at: DateTime<Utc>,
    definition: Option<String>,
    launched_at: Option<i64>,
}

fn campaign_row(row: &Row<'_>) -> rusqlite::Result<CampaignRow> {
    Ok(CampaignRow {
        id: row.get(0)?,
        name: row.get(1)?,
        status: row.get(2)?,
        columns: row.get(3)?,
        imported: row.get(4)?,
        created_at: ms_at(row, 5)?,
        definition: row.get(6)?,
        launched_at: row.get(7)?,
    })
}

fn into_campaign(tenant: TenantId, row: CampaignRow) -> StoreResult<Campaign> {
    let id = row.id;
    let corrupt = |what: &str| StoreError::Corrupt(format!("campaign {id}: bad {what}"));
    let launched_at = match row.launched_at {
        Some(ms) => Some(from_ms(ms).ok_or_else(|| corrupt("launch time"))?),
        None => None,
    };
    Ok(Campaign {
        id: CampaignId(id),
        tenant,
        name: CampaignName::parse(&row.name).map_err(|_| corrupt("name"))?,
        status: CampaignStatus::parse(&row.status).ok_or_else(|| corrupt("status"))?,
        columns: serde_json::from_str(&row.columns).map_err(|_| corrupt("columns"))?,
        imported: row.imported,
        created_at: row.created_at,
        definition: row.definition,
        launched_at,
    })
}

pub(super) fn campaign(
    conn: &Connection,
    tenant: TenantId,
    id: CampaignId,
) -> StoreResult<Option<Campaign>> {
    let mut stmt = conn
        .prepare_cached(&format!("{CAMPAIGN_COLUMNS} WHERE id = ?1"))
        .map_err(db_error)?;
    let row = stmt
        .query_row([id.0], campaign_row)
        .optional()
        .map_err(db_error)?;
    row.map(|row| into_campaign(tenant, row)).transpose()
}

/// The campaign, or `UnknownCampaign`.
pub(super) fn existing_campaign(
    conn: &Connection,
    tenant: TenantId,
    id: CampaignId,
) -> StoreResult<Campaign> {
    campaign(conn, tenant, id)?.ok_or(StoreError::UnknownCampaign {
        tenant,
        campaign: id,
    })
}

/// The campaign if its recipient tables exist, else `UnknownCampaign` or `NotImported`.
pub(super) fn imported_campaign(
    conn: &Connection,
    tenant: TenantId,
    id: CampaignId,
) -> StoreResult<Campaign> {
    let campaign = existing_campaign(conn, tenant, id)?;
    match campaign.imported {
        true => Ok(campaign),
        false => Err(StoreError::NotImported(id)),
    }
}

pub(super) fn campaign_by_name(
    conn: &Connection,
    tenant: TenantId,
    name: &CampaignName,
) -> StoreResult<Option<Campaign>> {
    let mut stmt = conn
        .prepare_cached(&format!("{CAMPAIGN_COLUMNS} WHERE name = ?1"))
        .map_err(db_error)?;
    let row = stmt
        .query_row([name.as_str()], campaign_row)
        .optional()
        .map_err(db_error)?;
    row.map(|row| into_campaign(tenant, row)).transpose()
}

pub(super) fn campaigns(conn: &Connection, tenant: TenantId) -> StoreResult<Vec<Campaign>> {
    let mut stmt = conn
        .prepare_cached(&format!("{CAMPAIGN_COLUMNS} ORDER BY id"))
        .map_err(db_error)?;
    let rows = stmt.query_map([], campaign_row).map_err(db_error)?;
    rows.map(|row| into_campaign(tenant, row.map_err(db_error)?))
        .collect()
}

pub(super) fn active_campaigns(
    conn: &Connection,
    tenant: TenantId,
    also: &[CampaignId],
) -> StoreResult<Vec<Campaign>> {
    // Ids are integers, so listing them inline is safe; the statement varies
    // with them, so it is not cached.
    let also: Vec<String> = also.iter().map(|id| id.0.to_string()).collect();
    let mut stmt = conn
        .prepare(&format!(
            "{CAMPAIGN_COLUMNS} WHERE status IN ('running', 'paused') OR id IN ({})
             ORDER BY id",
            also.join(", ")
        ))
        .map_err(db_error)?;
    let rows = stmt.query_map([], campaign_row).map_err(db_error)?;
    rows.map(|row| into_campaign(tenant, row.map_err(db_error)?))
        .collect()
}

/// Checks and changes the status in one immediate transaction, so a concurrent
/// change from another process is judged after this one, not against stale data.
pub(super) fn set_status(
    conn: &mut Connection,
    tenant: TenantId,
    id: CampaignId,
    status: CampaignStatus,
) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let current = existing_campaign(&tx, tenant, id)?;
    if !current.status.check_change(status, current.imported, id)? {
        return Ok(());
    }
    // `launched_at` keeps the first launch: resuming a paused campaign is not one.
    let launched_at = match status {
        CampaignStatus::Running => current.launched_at.or_else(|| Some(now_ms())),
        _ => current.launched_at,
    };
    tx.execute(
        "UPDATE campaigns SET status = ?2, launched_at = ?3 WHERE id = ?1",
        params![id.0, status.as_str(), launched_at.map(to_ms)],
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)
}

pub(super) fn set_definition(
    conn: &mut Connection,
    tenant: TenantId,
    id: CampaignId,
    definition: &str,
) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let status = existing_campaign(&tx, tenant, id)?.status;
    if !status.definition_editable() {
        return Err(StoreError::WrongStatus {
            campaign: id,
            status: status.as_str(),
            action: "change its definition",
        });
    }
    tx.execute(
        "UPDATE campaigns SET definition = ?2 WHERE id = ?1",
        params![id.0, definition],
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)
}

pub(super) fn counters(
    conn: &Connection,
    tenant: TenantId,
    id: CampaignId,
) -> StoreResult<CampaignCounters> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT pending, deferred, delivered, bounced, failed, suppressed
             FROM campaigns WHERE id = ?1",
        )
        .map_err(db_error)?;
    let counters = stmt
        .query_row([id.0], |row| {
            Ok(CampaignCounters {
                pending: row.get(0)?,
                deferred: row.get(1)?,
                delivered: row.get(2)?,
                bounced: row.get(3)?,
                failed: row.get(4)?,
                suppressed: row.get(5)?,
            })
        })
        .optional()
        .map_err(db_error)?;
    counters.ok_or(StoreError::UnknownCampaign {
        tenant,
        campaign: id,
    })
}

/// Moves the counters by `delta` (negative entries decrease).
pub(super) fn add_counters(
    conn: &Connection,
    id: CampaignId,
    delta: &CampaignCounters,
) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE campaigns SET pending = pending + ?2, deferred = deferred + ?3,
             delivered = delivered + ?4, bounced = bounced + ?5, failed = failed + ?6,
             suppressed = suppressed + ?7
         WHERE id = ?1",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            id.0,
            delta.pending,
            delta.deferred,
            delta.delivered,
            delta.bounced,
            delta.failed,
            delta.suppressed
        ])
    })
    .map_err(db_error)?;
    Ok(())
}
