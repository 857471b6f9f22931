//! Web users and sessions in `broadside.users` and `broadside.sessions`.

use chrono::{DateTime, Utc};
use tokio_postgres::{Client, Row};

use super::sql;
use crate::model::TenantId;
use crate::store::{SessionRecord, StoreError, StoreResult, UserRecord};

const USER_COLUMNS: &str = "name, tenant_id, version, data, created_at";

fn user_row(row: &Row) -> UserRecord {
    UserRecord {
        name: row.get(0),
        tenant: row.get::<_, Option<i64>>(1).map(TenantId),
        version: row.get(2),
        data: row.get(3),
        created_at: row.get(4),
    }
}

pub(crate) async fn create(client: &Client, user: &UserRecord) -> StoreResult<UserRecord> {
    let query = format!(
        "INSERT INTO broadside.users (name, tenant_id, version, data, created_at)
         VALUES ($1, $2, 1, $3, $4) RETURNING {USER_COLUMNS}"
    );
    let tenant = user.tenant.map(|t| t.0);
    let row = client
        .query_one(&query, &[&user.name, &tenant, &user.data, &user.created_at])
        .await
        .map_err(|e| {
            if sql::is_unique_violation(&e) {
                StoreError::AlreadyExists {
                    what: "user",
                    name: user.name.clone(),
                }
            } else if sql::is_foreign_key_violation(&e) {
                StoreError::UnknownTenant(user.tenant.unwrap_or(TenantId(0)))
            } else {
                sql::db_error(e)
            }
        })?;
    Ok(user_row(&row))
}

pub(crate) async fn get(client: &Client, name: &str) -> StoreResult<Option<UserRecord>> {
    let query = format!("SELECT {USER_COLUMNS} FROM broadside.users WHERE name = $1");
    let row = client
        .query_opt(&query, &[&name])
        .await
        .map_err(sql::db_error)?;
    Ok(row.as_ref().map(user_row))
}

pub(crate) async fn list(
    client: &Client,
    tenant: Option<TenantId>,
) -> StoreResult<Vec<UserRecord>> {
    let query = format!(
        "SELECT {USER_COLUMNS} FROM broadside.users
         WHERE tenant_id IS NOT DISTINCT FROM $1 ORDER BY name"
    );
    let tenant = tenant.map(|t| t.0);
    let rows = client
        .query(&query, &[&tenant])
        .await
        .map_err(sql::db_error)?;
    Ok(rows.iter().map(user_row).collect())
}

pub(crate) async fn update(client: &Client, user: &UserRecord) -> StoreResult<UserRecord> {
    let query = format!(
        "UPDATE broadside.users SET data = $2, version = version + 1
         WHERE name = $1 AND version = $3 RETURNING {USER_COLUMNS}"
    );
    let row = client
        .query_opt(&query, &[&user.name, &user.data, &user.version])
        .await
        .map_err(sql::db_error)?;
    match row {
        Some(row) => Ok(user_row(&row)),
        None => Err(match get(client, &user.name).await? {
            Some(_) => StoreError::Conflict(format!("user {:?}", user.name)),
            None => StoreError::UnknownUser(user.name.clone()),
        }),
    }
}

pub(crate) async fn put_session(client: &Client, session: &SessionRecord) -> StoreResult<()> {
    client
        .execute(
            "INSERT INTO broadside.sessions (id_hash, user_name, data, expires_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (id_hash) DO UPDATE
                 SET user_name = $2, data = $3, expires_at = $4",
            &[
                &session.id_hash,
                &session.user,
                &session.data,
                &session.expires_at,
            ],
        )
        .await
        .map_err(|e| match sql::is_foreign_key_violation(&e) {
            true => StoreError::UnknownUser(session.user.clone()),
            false => sql::db_error(e),
        })?;
    Ok(())
}

pub(crate) async fn session(
    client: &Client,
    id_hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<SessionRecord>> {
    let row = client
        .query_opt(
            "SELECT id_hash, user_name, data, expires_at FROM broadside.sessions
             WHERE id_hash = $1 AND expires_at > $2",
            &[&id_hash, &now],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(row.map(|row| SessionRecord {
        id_hash: row.get(0),
        user: row.get(1),
        data: row.get(2),
        expires_at: row.get(3),
    }))
}

pub(crate) async fn delete_session(client: &Client, id_hash: &str) -> StoreResult<()> {
    client
        .execute(
            "DELETE FROM broadside.sessions WHERE id_hash = $1",
            &[&id_hash],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(())
}

pub(crate) async fn delete_expired_sessions(
    client: &Client,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<u64> {
    client
        .execute(
            "DELETE FROM broadside.sessions WHERE id_hash IN (
                 SELECT id_hash FROM broadside.sessions WHERE expires_at <= $1 LIMIT $2)",
            &[&now, &i64::from(limit)],
        )
        .await
        .map_err(sql::db_error)
}
