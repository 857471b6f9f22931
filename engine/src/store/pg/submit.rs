//! Message batches in one transaction: the campaign row (already `running`, its
//! counters set), the rows appended by binary `COPY` to the tenant's long-lived
//! `batch_recipients` table (no DDL: see `tables`), the import record and the
//! idempotency key. One commit, one fsync; any failure, a terminated backend
//! included, rolls all of it back.

use futures_util::SinkExt;
use tokio_postgres::Transaction;

use super::copy::CopyEncoder;
use super::manager::Pool;
use super::tables::Tables;
use super::{keys, sql};
use crate::model::{CampaignId, TenantId};
use crate::store::{BatchCreated, IdempotencyClaim, NewBatch, StoreError, StoreResult};

pub(crate) async fn create_batch(
    pool: &Pool,
    tenant: TenantId,
    batch: &NewBatch<'_>,
    claim: Option<&IdempotencyClaim<'_>>,
) -> StoreResult<BatchCreated> {
    let mut conn = pool.get().await.map_err(sql::pool_error)?;
    let tx = conn.transaction().await.map_err(sql::db_error)?;
    let id = insert_campaign(&tx, tenant, batch).await?;
    load_rows(&tx, tenant, id, batch).await?;
    let response = match claim {
        Some(claim) => {
            let response = (claim.response)(id);
            if !keys::claim_idempotency(&tx, tenant, claim, id, &response).await? {
                // Taken meanwhile: roll back, then read the winner's record.
                drop(tx);
                let record = keys::idempotency_record(&conn, tenant, claim.key)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Unavailable("the idempotency key vanished".into())
                    })?;
                return Ok(BatchCreated::Replayed(record));
            }
            Some(response)
        }
        None => None,
    };
    tx.commit().await.map_err(sql::db_error)?;
    Ok(BatchCreated::Created { id, response })
}

async fn insert_campaign(
    tx: &Transaction<'_>,
    tenant: TenantId,
    batch: &NewBatch<'_>,
) -> StoreResult<CampaignId> {
    let query = format!(
        "INSERT INTO {}.campaigns
             (name, status, definition, columns, imported, pending, launched_at,
              shared_tables)
         VALUES ($1, 'running', $2, $3, true, $4, now(), true)
         RETURNING id",
        sql::schema(tenant)
    );
    let pending = batch.rows.len() as i64;
    let row = tx
        .query_one(
            &query,
            &[
                &batch.name.as_str(),
                &batch.definition,
                &batch.columns,
                &pending,
            ],
        )
        .await
        .map_err(|e| {
            if sql::is_missing_relation(&e) {
                StoreError::UnknownTenant(tenant)
            } else if sql::is_unique_violation(&e) {
                StoreError::AlreadyExists {
                    what: "campaign",
                    name: batch.name.to_string(),
                }
            } else {
                sql::db_error(e)
            }
        })?;
    Ok(CampaignId(row.get(0)))
}

/// Appends the batch's rows to the tenant's batch table and records the import.
async fn load_rows(
    tx: &Transaction<'_>,
    tenant: TenantId,
    id: CampaignId,
    batch: &NewBatch<'_>,
) -> StoreResult<()> {
    let copy = format!(
        "COPY {} (batch_id, id, email, vals) FROM STDIN (FORMAT binary)",
        Tables::shared(tenant, id).recipients()
    );
    let sink = tx.copy_in(&copy).await.map_err(sql::db_error)?;
    futures_util::pin_mut!(sink);
    let mut encoder = CopyEncoder::for_batch(id.0, batch.columns.len())?;
    let mut next = 0;
    while next < batch.rows.len() {
        next = encoder.encode(batch.rows, next)?;
        if let Some(chunk) = encoder.full_chunk() {
            sink.feed(chunk).await.map_err(sql::db_error)?;
        }
    }
    sink.feed(encoder.finish()).await.map_err(sql::db_error)?;
    sink.as_mut().finish().await.map_err(sql::db_error)?;
    let record = format!(
        "INSERT INTO {}.imports (campaign_id, source, rows_loaded, rows_rejected)
         VALUES ($1, $2, $3, $4)",
        sql::schema(tenant)
    );
    tx.execute(
        &record,
        &[
            &id.0,
            &batch.summary.source,
            &batch.summary.rows_loaded,
            &batch.summary.rows_rejected,
        ],
    )
    .await
    .map_err(sql::db_error)?;
    Ok(())
}
