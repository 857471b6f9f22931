//! API keys in the global database: looked up by key id on every request; and
//! the idempotency keys of batch submits, also global and keyed by tenant.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::catalog::tenant_exists;
use super::convert::{db_error, from_ms, is_unique_violation, ms_at, now_ms, to_ms};
use crate::model::{CampaignId, TenantId};
use crate::store::{ApiKey, ExchangeAccount, IdempotencyRecord, StoreError, StoreResult};

const KEY_COLUMNS: &str = "key_id, tenant_id, created_at, revoked_at";

fn key_row(row: &Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: row.get(0)?,
        tenant: TenantId(row.get(1)?),
        created_at: ms_at(row, 2)?,
        revoked_at: row.get::<_, Option<i64>>(3)?.and_then(from_ms),
    })
}

pub(super) fn create(
    conn: &Connection,
    tenant: TenantId,
    key_id: &str,
    sealed: &[u8],
) -> StoreResult<ApiKey> {
    // SQLite runs with foreign keys off (see `configure`), so the tenant is
    // checked here.
    if !tenant_exists(conn, tenant)? {
        return Err(StoreError::UnknownTenant(tenant));
    }
    let created_at = now_ms();
    conn.execute(
        "INSERT INTO api_keys (key_id, tenant_id, sealed_secret, created_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![key_id, tenant.0, sealed, to_ms(created_at)],
    )
    .map_err(|err| match is_unique_violation(&err) {
        true => StoreError::AlreadyExists {
            what: "API key",
            name: key_id.to_owned(),
        },
        false => db_error(err),
    })?;
    Ok(ApiKey {
        id: key_id.to_owned(),
        tenant,
        created_at,
        revoked_at: None,
    })
}

pub(super) fn list(conn: &Connection, tenant: TenantId) -> StoreResult<Vec<ApiKey>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = ?1 ORDER BY created_at, key_id"
        ))
        .map_err(db_error)?;
    let rows = stmt.query_map([tenant.0], key_row).map_err(db_error)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error)
}

pub(super) fn get(conn: &Connection, key_id: &str) -> StoreResult<Option<(ApiKey, Vec<u8>)>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {KEY_COLUMNS}, sealed_secret FROM api_keys WHERE key_id = ?1"
        ))
        .map_err(db_error)?;
    stmt.query_row([key_id], |row| Ok((key_row(row)?, row.get(4)?)))
        .optional()
        .map_err(db_error)
}

pub(super) fn revoke(conn: &Connection, tenant: TenantId, key_id: &str) -> StoreResult<()> {
    let changed = conn
        .execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?3)
             WHERE key_id = ?1 AND tenant_id = ?2",
            params![key_id, tenant.0, to_ms(now_ms())],
        )
        .map_err(db_error)?;
    if changed == 0 {
        return Err(StoreError::UnknownApiKey(key_id.to_owned()));
    }
    Ok(())
}

/// Adds an exchange (SFTP) account; like API keys, global and keyed by name.
pub(super) fn create_account(conn: &Connection, account: &ExchangeAccount) -> StoreResult<()> {
    if !tenant_exists(conn, account.tenant)? {
        return Err(StoreError::UnknownTenant(account.tenant));
    }
    conn.execute(
        "INSERT INTO exchange_accounts (username, tenant_id, password_hash, public_keys, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            account.username,
            account.tenant.0,
            account.password_hash,
            account.public_keys.join("\n"),
            to_ms(now_ms())
        ],
    )
    .map_err(|err| match is_unique_violation(&err) {
        true => StoreError::AlreadyExists {
            what: "exchange account",
            name: account.username.clone(),
        },
        false => db_error(err),
    })?;
    Ok(())
}

pub(super) fn account(conn: &Connection, username: &str) -> StoreResult<Option<ExchangeAccount>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT username, tenant_id, password_hash, public_keys
             FROM exchange_accounts WHERE username = ?1",
        )
        .map_err(db_error)?;
    stmt.query_row([username], account_row)
        .optional()
        .map_err(db_error)
}

/// An account from `username, tenant_id, password_hash, public_keys`.
pub(super) fn account_row(row: &Row<'_>) -> rusqlite::Result<ExchangeAccount> {
    let keys: String = row.get(3)?;
    Ok(ExchangeAccount {
        username: row.get(0)?,
        tenant: TenantId(row.get(1)?),
        password_hash: row.get(2)?,
        public_keys: split_keys(&keys),
    })
}

fn split_keys(keys: &str) -> Vec<String> {
    keys.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) fn idempotency_record(
    conn: &Connection,
    tenant: TenantId,
    key: &str,
) -> StoreResult<Option<IdempotencyRecord>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT request_hash, batch_id, response FROM idempotency_keys
             WHERE tenant_id = ?1 AND key = ?2",
        )
        .map_err(db_error)?;
    stmt.query_row(params![tenant.0, key], |row| {
        Ok(IdempotencyRecord {
            request_hash: row.get(0)?,
            batch: CampaignId(row.get(1)?),
            response: row.get(2)?,
        })
    })
    .optional()
    .map_err(db_error)
}

/// Insert-if-absent, then read back; the global writer runs one call at a time,
/// so the first of two racing requests wins.
pub(super) fn remember_idempotency(
    conn: &Connection,
    tenant: TenantId,
    key: &str,
    record: &IdempotencyRecord,
) -> StoreResult<IdempotencyRecord> {
    if !tenant_exists(conn, tenant)? {
        return Err(StoreError::UnknownTenant(tenant));
    }
    conn.execute(
        "INSERT INTO idempotency_keys
             (tenant_id, key, request_hash, batch_id, response, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        params![
            tenant.0,
            key,
            record.request_hash,
            record.batch.0,
            record.response,
            to_ms(now_ms())
        ],
    )
    .map_err(db_error)?;
    idempotency_record(conn, tenant, key)?
        .ok_or_else(|| StoreError::Unavailable("the idempotency key vanished".into()))
}
