//! The webhook outbox in `broadside.webhook_outbox`.

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::sql;
use crate::model::TenantId;
use crate::store::{StoreResult, WebhookDelivery};

pub(crate) async fn enqueue(
    client: &Client,
    tenant: TenantId,
    events: &[String],
) -> StoreResult<()> {
    client
        .execute(
            "INSERT INTO broadside.webhook_outbox (tenant_id, event)
             SELECT $1, e FROM unnest($2::text[]) WITH ORDINALITY AS u(e, n) ORDER BY n",
            &[&tenant.0, &events],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(())
}

pub(crate) async fn due(
    client: &Client,
    tenant: TenantId,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<WebhookDelivery>> {
    let rows = client
        .query(
            "SELECT id, event, attempts FROM broadside.webhook_outbox
             WHERE tenant_id = $1 AND next_attempt_at <= $2 ORDER BY id LIMIT $3",
            &[&tenant.0, &now, &i64::from(limit)],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(rows
        .iter()
        .map(|row| WebhookDelivery {
            id: row.get(0),
            event: row.get(1),
            attempts: row.get(2),
        })
        .collect())
}

pub(crate) async fn ack(client: &Client, tenant: TenantId, ids: &[i64]) -> StoreResult<()> {
    client
        .execute(
            "DELETE FROM broadside.webhook_outbox WHERE tenant_id = $1 AND id = ANY($2)",
            &[&tenant.0, &ids],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(())
}

pub(crate) async fn retry(
    client: &Client,
    tenant: TenantId,
    ids: &[i64],
    next: DateTime<Utc>,
) -> StoreResult<()> {
    client
        .execute(
            "UPDATE broadside.webhook_outbox SET attempts = attempts + 1, next_attempt_at = $3
             WHERE tenant_id = $1 AND id = ANY($2)",
            &[&tenant.0, &ids, &next],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(())
}
