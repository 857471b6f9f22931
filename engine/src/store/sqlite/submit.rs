//! Message batches on SQLite: the campaign row, its tables, rows and import
//! record in one immediate transaction of the tenant's file. Idempotency keys
//! live in the global file, which no transaction spans: a batch with a key is
//! created as a draft, launched once the key is won, and deleted whole if the
//! key was taken meanwhile.

use rusqlite::{Connection, TransactionBehavior, params};

use super::convert::{
    db_error, events_table, is_unique_violation, now_ms, recipients_table, to_ms, value_column,
};
use super::{SqliteStore, catalog, keys};
use crate::model::{CampaignId, TenantId};
use crate::store::{
    BatchCreated, CampaignStatus, IdempotencyClaim, IdempotencyRecord, NewBatch, RecipientBatch,
    StoreError, StoreResult,
};

impl SqliteStore {
    pub(super) async fn submit_batch(
        &self,
        tenant: TenantId,
        batch: &NewBatch<'_>,
        claim: Option<&IdempotencyClaim<'_>>,
    ) -> StoreResult<BatchCreated> {
        let worker = self.tenant(tenant).await?;
        let id = self
            .inner
            .global
            .call(move |conn| catalog::allocate_campaign_id(conn, tenant))
            .await?;
        let status = match claim {
            Some(_) => CampaignStatus::Draft,
            None => CampaignStatus::Running,
        };
        let job = BatchJob::new(id, batch, status);
        worker.call(move |conn| create(conn, job)).await?;
        let Some(claim) = claim else {
            return Ok(BatchCreated::Created { id, response: None });
        };
        let record = IdempotencyRecord {
            request_hash: claim.request_hash.to_owned(),
            batch: id,
            response: (claim.response)(id),
        };
        let (key, mine) = (claim.key.to_owned(), record.clone());
        let kept = self
            .inner
            .global
            .call(move |conn| keys::remember_idempotency(conn, tenant, &key, &mine))
            .await;
        let won = matches!(&kept, Ok(kept) if kept.batch == id);
        if !won {
            // Lost the key, or could not store it: the draft must not stay.
            worker.call(move |conn| delete(conn, id)).await?;
            return kept.map(BatchCreated::Replayed);
        }
        worker
            .call(move |conn| catalog::set_status(conn, tenant, id, CampaignStatus::Running))
            .await?;
        Ok(BatchCreated::Created {
            id,
            response: Some(record.response),
        })
    }
}

/// A batch moved onto the tenant's worker thread.
pub(super) struct BatchJob {
    pub id: CampaignId,
    pub name: String,
    pub definition: String,
    pub columns: Vec<String>,
    pub rows: RecipientBatch,
    pub source: String,
    pub rows_loaded: i64,
    pub rows_rejected: i64,
    /// `Running` at once, or `Draft` until an idempotency key is won.
    pub status: CampaignStatus,
}

impl BatchJob {
    pub(super) fn new(id: CampaignId, batch: &NewBatch<'_>, status: CampaignStatus) -> Self {
        BatchJob {
            id,
            name: batch.name.as_str().to_owned(),
            definition: batch.definition.to_owned(),
            columns: batch.columns.to_vec(),
            rows: batch.rows.clone(),
            source: batch.summary.source.clone(),
            rows_loaded: batch.summary.rows_loaded,
            rows_rejected: batch.summary.rows_rejected,
            status,
        }
    }
}

pub(super) fn create(conn: &mut Connection, job: BatchJob) -> StoreResult<()> {
    let columns_json =
        serde_json::to_string(&job.columns).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let now = to_ms(now_ms());
    let launched_at = (job.status == CampaignStatus::Running).then_some(now);
    tx.execute(
        "INSERT INTO campaigns (id, name, status, columns, imported, created_at, pending,
             definition, launched_at)
         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?8)",
        params![
            job.id.0,
            job.name,
            job.status.as_str(),
            columns_json,
            now,
            job.rows.len() as i64,
            job.definition,
            launched_at
        ],
    )
    .map_err(|err| match is_unique_violation(&err) {
        true => StoreError::AlreadyExists {
            what: "campaign",
            name: job.name.clone(),
        },
        false => db_error(err),
    })?;
    let (recipients, events) = (recipients_table(job.id), events_table(job.id));
    let mut create =
        format!("CREATE TABLE {recipients} (id INTEGER PRIMARY KEY, email TEXT NOT NULL");
    let mut insert = format!("INSERT INTO {recipients} (id, email");
    let mut placeholders = String::from("?1, ?2");
    for index in 0..job.columns.len() {
        create.push_str(&format!(", {} TEXT NOT NULL", value_column(index)));
        insert.push_str(&format!(", {}", value_column(index)));
        placeholders.push_str(&format!(", ?{}", index + 3));
    }
    tx.execute_batch(&format!(
        "{create}, state INTEGER NOT NULL DEFAULT 0, until INTEGER,
             attempts INTEGER NOT NULL DEFAULT 0, first_attempt_at INTEGER,
             last_reply TEXT, updated_at INTEGER);
         CREATE TABLE {events} (
             id           INTEGER PRIMARY KEY,
             recipient_id INTEGER NOT NULL,
             kind         INTEGER NOT NULL,
             detail       TEXT,
             at           INTEGER NOT NULL
         );
         CREATE INDEX {events}_recipient ON {events} (recipient_id);"
    ))
    .map_err(db_error)?;
    {
        let mut stmt = tx
            .prepare(&format!("{insert}) VALUES ({placeholders})"))
            .map_err(db_error)?;
        for row in job.rows.rows() {
            stmt.raw_bind_parameter(1, row.id().0).map_err(db_error)?;
            stmt.raw_bind_parameter(2, row.email()).map_err(db_error)?;
            for (index, value) in row.values().enumerate() {
                stmt.raw_bind_parameter(index + 3, value)
                    .map_err(db_error)?;
            }
            stmt.raw_execute().map_err(db_error)?;
        }
    }
    tx.execute_batch(&format!(
        "CREATE INDEX {recipients}_email ON {recipients} (email);"
    ))
    .map_err(db_error)?;
    tx.execute(
        "INSERT INTO imports (campaign_id, source, columns, rows_loaded, rows_rejected,
             committed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            job.id.0,
            job.source,
            columns_json,
            job.rows_loaded,
            job.rows_rejected,
            now
        ],
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)
}

/// Removes a draft batch whose idempotency key another request won: its tables,
/// its import record and its row, as if it had never been.
pub(super) fn delete(conn: &mut Connection, id: CampaignId) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
        recipients_table(id),
        events_table(id)
    ))
    .map_err(db_error)?;
    tx.execute("DELETE FROM imports WHERE campaign_id = ?1", [id.0])
        .map_err(db_error)?;
    tx.execute(
        "DELETE FROM campaigns WHERE id = ?1 AND status = 'draft'",
        [id.0],
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)
}
