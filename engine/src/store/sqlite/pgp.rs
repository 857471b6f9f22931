//! Per-tenant OpenPGP keys, in the global database.

use rusqlite::{Connection, OptionalExtension, params};

use super::catalog::tenant_exists;
use super::convert::{db_error, now_ms, to_ms};
use crate::model::TenantId;
use crate::store::{PgpKeyRecord, StoreError, StoreResult};

pub(super) fn keys(conn: &Connection, tenant: TenantId) -> StoreResult<PgpKeyRecord> {
    if !tenant_exists(conn, tenant)? {
        return Err(StoreError::UnknownTenant(tenant));
    }
    let record = conn
        .prepare_cached(
            "SELECT sealed_secret, public_key, customer_key FROM tenant_pgp_keys
             WHERE tenant_id = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([tenant.0], |row| {
                Ok(PgpKeyRecord {
                    sealed_secret: row.get(0)?,
                    public_key: row.get(1)?,
                    customer_key: row.get(2)?,
                })
            })
            .optional()
        })
        .map_err(db_error)?;
    Ok(record.unwrap_or_default())
}

pub(super) fn init_key(
    conn: &Connection,
    tenant: TenantId,
    sealed_secret: &[u8],
    public_key: &str,
) -> StoreResult<bool> {
    // Foreign keys are off in the embedded store, so the tenant is checked here.
    if !tenant_exists(conn, tenant)? {
        return Err(StoreError::UnknownTenant(tenant));
    }
    let stored = conn
        .execute(
            "INSERT INTO tenant_pgp_keys (tenant_id, sealed_secret, public_key, updated_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant_id) DO UPDATE
                 SET sealed_secret = ?2, public_key = ?3, updated_at = ?4
                 WHERE tenant_pgp_keys.sealed_secret IS NULL",
            params![tenant.0, sealed_secret, public_key, to_ms(now_ms())],
        )
        .map_err(db_error)?;
    Ok(stored == 1)
}

pub(super) fn set_customer_key(
    conn: &Connection,
    tenant: TenantId,
    key: Option<&str>,
) -> StoreResult<()> {
    if !tenant_exists(conn, tenant)? {
        return Err(StoreError::UnknownTenant(tenant));
    }
    conn.execute(
        "INSERT INTO tenant_pgp_keys (tenant_id, customer_key, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant_id) DO UPDATE SET customer_key = ?2, updated_at = ?3",
        params![tenant.0, key, to_ms(now_ms())],
    )
    .map_err(db_error)?;
    Ok(())
}
