//! The audit log and per-tenant settings, in the global database.

use rusqlite::{Connection, OptionalExtension, params};

use super::catalog::tenant_exists;
use super::convert::{db_error, ms_at, now_ms, to_ms};
use crate::model::TenantId;
use crate::store::{AuditEntry, AuditQuery, AuditRecord, StoreError, StoreResult};
use crate::tenant::TenantSettings;

pub(super) fn append(conn: &Connection, record: &AuditRecord) -> StoreResult<i64> {
    // Foreign keys are off in the embedded store, so the tenant is checked here.
    if let Some(tenant) = record.tenant
        && !tenant_exists(conn, tenant)?
    {
        return Err(StoreError::UnknownTenant(tenant));
    }
    conn.prepare_cached(
        "INSERT INTO audit_log (tenant_id, actor, action, target, outcome, ip, detail, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            record.tenant.map(|t| t.0),
            record.actor,
            record.action,
            record.target,
            record.outcome,
            record.ip,
            record.detail,
            to_ms(record.at),
        ])
    })
    .map_err(db_error)?;
    Ok(conn.last_insert_rowid())
}

pub(super) fn list(conn: &Connection, query: AuditQuery) -> StoreResult<Vec<AuditEntry>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, tenant_id, actor, action, target, outcome, ip, detail, at
             FROM audit_log
             WHERE (?1 IS NULL OR tenant_id = ?1) AND id < ?2
             ORDER BY id DESC LIMIT ?3",
        )
        .map_err(db_error)?;
    let rows = stmt
        .query_map(
            params![
                query.tenant.map(|t| t.0),
                query.before.unwrap_or(i64::MAX),
                query.limit
            ],
            |row| {
                Ok(AuditEntry {
                    id: row.get(0)?,
                    record: AuditRecord {
                        tenant: row.get::<_, Option<i64>>(1)?.map(TenantId),
                        actor: row.get(2)?,
                        action: row.get(3)?,
                        target: row.get(4)?,
                        outcome: row.get(5)?,
                        ip: row.get(6)?,
                        detail: row.get(7)?,
                        at: ms_at(row, 8)?,
                    },
                })
            },
        )
        .map_err(db_error)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error)
}

pub(super) fn settings(conn: &Connection, tenant: TenantId) -> StoreResult<TenantSettings> {
    if !tenant_exists(conn, tenant)? {
        return Err(StoreError::UnknownTenant(tenant));
    }
    let text: Option<String> = conn
        .prepare_cached("SELECT settings FROM tenant_settings WHERE tenant_id = ?1")
        .and_then(|mut stmt| stmt.query_row([tenant.0], |row| row.get(0)).optional())
        .map_err(db_error)?;
    TenantSettings::from_json(text.as_deref().unwrap_or_default())
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn set_settings(
    conn: &Connection,
    tenant: TenantId,
    settings: &TenantSettings,
) -> StoreResult<()> {
    if !tenant_exists(conn, tenant)? {
        return Err(StoreError::UnknownTenant(tenant));
    }
    conn.execute(
        "INSERT INTO tenant_settings (tenant_id, settings, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant_id) DO UPDATE SET settings = ?2, updated_at = ?3",
        params![tenant.0, settings.to_json(), to_ms(now_ms())],
    )
    .map_err(db_error)?;
    Ok(())
}
