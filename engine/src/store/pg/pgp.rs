//! Per-tenant OpenPGP keys in `broadside.tenant_pgp_keys`.

use tokio_postgres::Client;

use super::sql;
use crate::model::TenantId;
use crate::store::{PgpKeyRecord, StoreError, StoreResult};

pub(crate) async fn keys(client: &Client, tenant: TenantId) -> StoreResult<PgpKeyRecord> {
    let row = client
        .query_opt(
            "SELECT t.id, k.sealed_secret, k.public_key, k.customer_key
             FROM broadside.tenants t
             LEFT JOIN broadside.tenant_pgp_keys k ON k.tenant_id = t.id
             WHERE t.id = $1",
            &[&tenant.0],
        )
        .await
        .map_err(sql::db_error)?
        .ok_or(StoreError::UnknownTenant(tenant))?;
    Ok(PgpKeyRecord {
        sealed_secret: row.get(1),
        public_key: row.get(2),
        customer_key: row.get(3),
    })
}

pub(crate) async fn init_key(
    client: &Client,
    tenant: TenantId,
    sealed_secret: &[u8],
    public_key: &str,
) -> StoreResult<bool> {
    let stored = client
        .execute(
            "INSERT INTO broadside.tenant_pgp_keys (tenant_id, sealed_secret, public_key)
             VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id) DO UPDATE
                 SET sealed_secret = $2, public_key = $3, updated_at = now()
                 WHERE broadside.tenant_pgp_keys.sealed_secret IS NULL",
            &[&tenant.0, &sealed_secret, &public_key],
        )
        .await
        .map_err(|e| foreign_key(e, tenant))?;
    Ok(stored == 1)
}

pub(crate) async fn set_customer_key(
    client: &Client,
    tenant: TenantId,
    key: Option<&str>,
) -> StoreResult<()> {
    client
        .execute(
            "INSERT INTO broadside.tenant_pgp_keys (tenant_id, customer_key) VALUES ($1, $2)
             ON CONFLICT (tenant_id) DO UPDATE SET customer_key = $2, updated_at = now()",
            &[&tenant.0, &key],
        )
        .await
        .map_err(|e| foreign_key(e, tenant))?;
    Ok(())
}

fn foreign_key(e: tokio_postgres::Error, tenant: TenantId) -> StoreError {
    match sql::is_foreign_key_violation(&e) {
        true => StoreError::UnknownTenant(tenant),
        false => sql::db_error(e),
    }
}
