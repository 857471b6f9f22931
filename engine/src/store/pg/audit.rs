//! The audit log and per-tenant settings, in `broadside.audit_log` and
//! `broadside.tenant_settings`.

use tokio_postgres::Client;

use super::sql;
use crate::model::TenantId;
use crate::store::{AuditEntry, AuditQuery, AuditRecord, StoreError, StoreResult};
use crate::tenant::TenantSettings;

pub(crate) async fn append(client: &Client, record: &AuditRecord) -> StoreResult<i64> {
    let tenant = record.tenant.map(|t| t.0);
    let row = client
        .query_one(
            "INSERT INTO broadside.audit_log
                 (tenant_id, actor, action, target, outcome, ip, detail, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &tenant,
                &record.actor,
                &record.action,
                &record.target,
                &record.outcome,
                &record.ip,
                &record.detail,
                &record.at,
            ],
        )
        .await
        .map_err(|e| match sql::is_foreign_key_violation(&e) {
            true => StoreError::UnknownTenant(record.tenant.unwrap_or(TenantId(0))),
            false => sql::db_error(e),
        })?;
    Ok(row.get(0))
}

pub(crate) async fn list(client: &Client, query: AuditQuery) -> StoreResult<Vec<AuditEntry>> {
    let tenant = query.tenant.map(|t| t.0);
    let before = query.before.unwrap_or(i64::MAX);
    let limit = i64::from(query.limit);
    let rows = client
        .query(
            "SELECT id, tenant_id, actor, action, target, outcome, ip, detail, at
             FROM broadside.audit_log
             WHERE ($1::bigint IS NULL OR tenant_id = $1) AND id < $2
             ORDER BY id DESC LIMIT $3",
            &[&tenant, &before, &limit],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(rows
        .iter()
        .map(|row| AuditEntry {
            id: row.get(0),
            record: AuditRecord {
                tenant: row.get::<_, Option<i64>>(1).map(TenantId),
                actor: row.get(2),
                action: row.get(3),
                target: row.get(4),
                outcome: row.get(5),
                ip: row.get(6),
                detail: row.get(7),
                at: row.get(8),
            },
        })
        .collect())
}

pub(crate) async fn settings(client: &Client, tenant: TenantId) -> StoreResult<TenantSettings> {
    let row = client
        .query_opt(
            "SELECT t.id, s.settings FROM broadside.tenants t
             LEFT JOIN broadside.tenant_settings s ON s.tenant_id = t.id
             WHERE t.id = $1",
            &[&tenant.0],
        )
        .await
        .map_err(sql::db_error)?
        .ok_or(StoreError::UnknownTenant(tenant))?;
    let text: Option<String> = row.get(1);
    TenantSettings::from_json(text.as_deref().unwrap_or_default())
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) async fn set_settings(
    client: &Client,
    tenant: TenantId,
    settings: &TenantSettings,
) -> StoreResult<()> {
    client
        .execute(
            "INSERT INTO broadside.tenant_settings (tenant_id, settings) VALUES ($1, $2)
             ON CONFLICT (tenant_id) DO UPDATE SET settings = $2, updated_at = now()",
            &[&tenant.0, &settings.to_json()],
        )
        .await
        .map_err(|e| match sql::is_foreign_key_violation(&e) {
            true => StoreError::UnknownTenant(tenant),
            false => sql::db_error(e),
        })?;
    Ok(())
}
