//! Web users and sessions in the global database.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::catalog::tenant_exists;
use super::convert::{db_error, is_unique_violation, ms_at, to_ms};
use crate::model::TenantId;
use crate::store::{SessionRecord, StoreError, StoreResult, UserRecord};

const USER_COLUMNS: &str = "name, tenant_id, version, data, created_at";

fn user_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        name: row.get(0)?,
        tenant: row.get::<_, Option<i64>>(1)?.map(TenantId),
        version: row.get(2)?,
        data: row.get(3)?,
        created_at: ms_at(row, 4)?,
    })
}

pub(super) fn create(conn: &Connection, user: &UserRecord) -> StoreResult<UserRecord> {
    // Foreign keys are off in the embedded store, so the tenant is checked here.
    if let Some(tenant) = user.tenant
        && !tenant_exists(conn, tenant)?
    {
        return Err(StoreError::UnknownTenant(tenant));
    }
    conn.execute(
        "INSERT INTO users (name, tenant_id, version, data, created_at)
         VALUES (?1, ?2, 1, ?3, ?4)",
        params![
            user.name,
            user.tenant.map(|t| t.0),
            user.data,
            to_ms(user.created_at)
        ],
    )
    .map_err(|err| match is_unique_violation(&err) {
        true => StoreError::AlreadyExists {
            what: "user",
            name: user.name.clone(),
        },
        false => db_error(err),
    })?;
    get(conn, &user.name)?.ok_or_else(|| StoreError::UnknownUser(user.name.clone()))
}

pub(super) fn get(conn: &Connection, name: &str) -> StoreResult<Option<UserRecord>> {
    conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"))
        .and_then(|mut stmt| stmt.query_row([name], user_row).optional())
        .map_err(db_error)
}

pub(super) fn list(conn: &Connection, tenant: Option<TenantId>) -> StoreResult<Vec<UserRecord>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id IS ?1 ORDER BY name"
        ))
        .map_err(db_error)?;
    let rows = stmt
        .query_map([tenant.map(|t| t.0)], user_row)
        .map_err(db_error)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error)
}

pub(super) fn update(conn: &Connection, user: &UserRecord) -> StoreResult<UserRecord> {
    let changed = conn
        .execute(
            "UPDATE users SET data = ?2, version = version + 1 WHERE name = ?1 AND version = ?3",
            params![user.name, user.data, user.version],
        )
        .map_err(db_error)?;
    let stored =
        get(conn, &user.name)?.ok_or_else(|| StoreError::UnknownUser(user.name.clone()))?;
    match changed {
        0 => Err(StoreError::Conflict(format!("user {:?}", user.name))),
        _ => Ok(stored),
    }
}

pub(super) fn put_session(conn: &Connection, session: &SessionRecord) -> StoreResult<()> {
    if get(conn, &session.user)?.is_none() {
        return Err(StoreError::UnknownUser(session.user.clone()));
    }
    conn.execute(
        "INSERT INTO sessions (id_hash, user_name, data, expires_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id_hash) DO UPDATE SET user_name = ?2, data = ?3, expires_at = ?4",
        params![
            session.id_hash,
            session.user,
            session.data,
            to_ms(session.expires_at)
        ],
    )
    .map_err(db_error)?;
    Ok(())
}

pub(super) fn session(
    conn: &Connection,
    id_hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<SessionRecord>> {
    conn.prepare_cached(
        "SELECT id_hash, user_name, data, expires_at FROM sessions
         WHERE id_hash = ?1 AND expires_at > ?2",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![id_hash, to_ms(now)], |row| {
            Ok(SessionRecord {
                id_hash: row.get(0)?,
                user: row.get(1)?,
                data: row.get(2)?,
                expires_at: ms_at(row, 3)?,
            })
        })
        .optional()
    })
    .map_err(db_error)
}

pub(super) fn delete_session(conn: &Connection, id_hash: &str) -> StoreResult<()> {
    conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])
        .map_err(db_error)?;
    Ok(())
}

pub(super) fn delete_expired_sessions(
    conn: &Connection,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<u64> {
    let deleted = conn
        .execute(
            "DELETE FROM sessions WHERE id_hash IN (
                 SELECT id_hash FROM sessions WHERE expires_at <= ?1 LIMIT ?2)",
            params![to_ms(now), limit],
        )
        .map_err(db_error)?;
    Ok(deleted as u64)
}
