//! API keys in `broadside.api_keys`: global, looked up by key id on every request;
//! and the idempotency keys of batch submits, also global and keyed by tenant.

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Row};

use super::sql;
use crate::model::{CampaignId, TenantId};
use crate::store::{
    ApiKey, ExchangeAccount, IdempotencyClaim, IdempotencyRecord, StoreError, StoreResult,
};

const KEY_COLUMNS: &str = "key_id, tenant_id, created_at, revoked_at";

fn key_row(row: &Row) -> ApiKey {
    ApiKey {
        id: row.get(0),
        tenant: TenantId(row.get(1)),
        created_at: row.get(2),
        revoked_at: row.get(3),
    }
}

pub(crate) async fn create(
    client: &Client,
    tenant: TenantId,
    key_id: &str,
    sealed: &[u8],
) -> StoreResult<ApiKey> {
    let query = format!(
        "INSERT INTO broadside.api_keys (key_id, tenant_id, sealed_secret)
         VALUES ($1, $2, $3) RETURNING {KEY_COLUMNS}"
    );
    let row = client
        .query_one(&query, &[&key_id, &tenant.0, &sealed])
        .await
        .map_err(|e| {
            if sql::is_unique_violation(&e) {
                StoreError::AlreadyExists {
                    what: "API key",
                    name: key_id.to_owned(),
                }
            } else if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
                StoreError::UnknownTenant(tenant)
            } else {
                sql::db_error(e)
            }
        })?;
    Ok(key_row(&row))
}

pub(crate) async fn list(client: &Client, tenant: TenantId) -> StoreResult<Vec<ApiKey>> {
    let query = format!(
        "SELECT {KEY_COLUMNS} FROM broadside.api_keys WHERE tenant_id = $1
         ORDER BY created_at, key_id"
    );
    let rows = client
        .query(&query, &[&tenant.0])
        .await
        .map_err(sql::db_error)?;
    Ok(rows.iter().map(key_row).collect())
}

pub(crate) async fn get(client: &Client, key_id: &str) -> StoreResult<Option<(ApiKey, Vec<u8>)>> {
    let query =
        format!("SELECT {KEY_COLUMNS}, sealed_secret FROM broadside.api_keys WHERE key_id = $1");
    let row = client
        .query_opt(&query, &[&key_id])
        .await
        .map_err(sql::db_error)?;
    Ok(row.map(|row| (key_row(&row), row.get(4))))
}

pub(crate) async fn revoke(client: &Client, tenant: TenantId, key_id: &str) -> StoreResult<()> {
    let changed = client
        .execute(
            "UPDATE broadside.api_keys SET revoked_at = coalesce(revoked_at, now())
             WHERE key_id = $1 AND tenant_id = $2",
            &[&key_id, &tenant.0],
        )
        .await
        .map_err(sql::db_error)?;
    if changed == 0 {
        return Err(StoreError::UnknownApiKey(key_id.to_owned()));
    }
    Ok(())
}

/// Adds an exchange (SFTP) account; like API keys, global and keyed by name.
pub(crate) async fn create_account(client: &Client, account: &ExchangeAccount) -> StoreResult<()> {
    client
        .execute(
            "INSERT INTO broadside.exchange_accounts (username, tenant_id, password_hash, public_keys)
             VALUES ($1, $2, $3, $4)",
            &[
                &account.username,
                &account.tenant.0,
                &account.password_hash,
                &account.public_keys.join("\n"),
            ],
        )
        .await
        .map_err(|e| {
            if sql::is_unique_violation(&e) {
                StoreError::AlreadyExists {
                    what: "exchange account",
                    name: account.username.clone(),
                }
            } else if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
                StoreError::UnknownTenant(account.tenant)
            } else {
                sql::db_error(e)
            }
        })?;
    Ok(())
}

pub(crate) async fn account(
    client: &Client,
    username: &str,
) -> StoreResult<Option<ExchangeAccount>> {
    let row = client
        .query_opt(
            "SELECT username, tenant_id, password_hash, public_keys
             FROM broadside.exchange_accounts WHERE username = $1",
            &[&username],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(row.as_ref().map(account_row))
}

/// An account from `username, tenant_id, password_hash, public_keys`.
pub(crate) fn account_row(row: &Row) -> ExchangeAccount {
    let keys: String = row.get(3);
    ExchangeAccount {
        username: row.get(0),
        tenant: TenantId(row.get(1)),
        password_hash: row.get(2),
        public_keys: keys
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect(),
    }
}

fn idempotency_row(row: &Row) -> IdempotencyRecord {
    IdempotencyRecord {
        request_hash: row.get(0),
        batch: CampaignId(row.get(1)),
        response: row.get(2),
    }
}

pub(crate) async fn idempotency_record(
    client: &Client,
    tenant: TenantId,
    key: &str,
) -> StoreResult<Option<IdempotencyRecord>> {
    let row = client
        .query_opt(
            "SELECT request_hash, batch_id, response FROM broadside.idempotency_keys
             WHERE tenant_id = $1 AND key = $2",
            &[&tenant.0, &key],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(row.as_ref().map(idempotency_row))
}

/// Insert-if-absent, then read back: two requests racing on one key both end
/// with the record of whichever committed first.
pub(crate) async fn remember_idempotency(
    client: &Client,
    tenant: TenantId,
    key: &str,
    record: &IdempotencyRecord,
) -> StoreResult<IdempotencyRecord> {
    client
        .execute(
            "INSERT INTO broadside.idempotency_keys
                 (tenant_id, key, request_hash, batch_id, response)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[
                &tenant.0,
                &key,
                &record.request_hash,
                &record.batch.0,
                &record.response,
            ],
        )
        .await
        .map_err(
            |e| match e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
                true => StoreError::UnknownTenant(tenant),
                false => sql::db_error(e),
            },
        )?;
    idempotency_record(client, tenant, key)
        .await?
        .ok_or_else(|| StoreError::Unavailable("the idempotency key vanished".into()))
}

/// Takes `claim.key` for batch `id` inside the batch's transaction; `false` when
/// the key is already taken. A racing transaction holding the same key makes
/// this insert wait for it, so of two racers exactly one commits a batch.
pub(crate) async fn claim_idempotency(
    tx: &tokio_postgres::Transaction<'_>,
    tenant: TenantId,
    claim: &IdempotencyClaim<'_>,
    id: CampaignId,
    response: &str,
) -> StoreResult<bool> {
    let inserted = tx
        .execute(
            "INSERT INTO broadside.idempotency_keys
                 (tenant_id, key, request_hash, batch_id, response)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[&tenant.0, &claim.key, &claim.request_hash, &id.0, &response],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(inserted == 1)
}
