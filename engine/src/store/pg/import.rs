//! Imports: one transaction on one owned connection. The rows stream into a staging
//! table with binary `COPY ... FREEZE`; commit adds the primary key (faster after
//! loading than during), swaps the staging table in for the previous import, creates
//! the events table and updates the campaign, all before `COMMIT`. Until then nobody
//! sees anything, and a crash or an abort leaves the campaign as it was.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::SinkExt;
use tokio_postgres::CopyInSink;

use super::copy::CopyEncoder;
use super::manager::{Pool, Pooled};
use super::{catalog, sql};
use crate::model::{CampaignId, TenantId};
use crate::store::{CampaignStatus, ImportSummary, ImportWriter, StoreError, StoreResult};

pub(crate) struct PgImportWriter {
    tenant: TenantId,
    campaign: CampaignId,
    columns: Vec<String>,
    /// The connection holding the open transaction; `None` once committed or
    /// aborted, which is how `Drop` knows whether there is anything to undo.
    conn: Option<Pooled>,
    /// The COPY in progress; boxed because the sink is `!Unpin`.
    sink: Option<Pin<Box<CopyInSink<Bytes>>>>,
    encoder: CopyEncoder,
}

/// Starts the transaction, checks that the campaign is a draft (holding its row lock
/// until the end, so it cannot be launched mid-import and two imports of one
/// campaign run one after the other), creates the staging table and opens the COPY.
pub(crate) async fn begin(
    pool: &Pool,
    tenant: TenantId,
    campaign: CampaignId,
    columns: &[String],
) -> StoreResult<PgImportWriter> {
    let encoder = CopyEncoder::new(columns.len())?;
    let conn = pool.get_owned().await.map_err(sql::pool_error)?;
    let mut writer = PgImportWriter {
        tenant,
        campaign,
        columns: columns.to_vec(),
        conn: Some(conn),
        sink: None,
        encoder,
    };
    match writer.start().await {
        Ok(sink) => {
            writer.sink = Some(Box::pin(sink));
            Ok(writer)
        }
        Err(error) => {
            writer.rollback().await;
            Err(error)
        }
    }
}

impl PgImportWriter {
    fn conn(&self) -> StoreResult<&Pooled> {
        self.conn
            .as_ref()
            .ok_or_else(|| StoreError::Corrupt("the import is already finished".into()))
    }

    async fn start(&self) -> StoreResult<CopyInSink<Bytes>> {
        let conn = self.conn()?;
        // More memory makes the primary key build at commit sort in memory.
        conn.batch_execute("BEGIN; SET LOCAL maintenance_work_mem = '256MB'")
            .await
            .map_err(sql::db_error)?;
        let (status, _) = catalog::lock_campaign(&***conn, self.tenant, self.campaign).await?;
        if status != CampaignStatus::Draft {
            return Err(StoreError::WrongStatus {
                campaign: self.campaign,
                status: status.as_str(),
                action: "import recipients",
            });
        }
        let staging = sql::table(self.tenant, self.campaign, "recipients_new");
        let values: String = (1..=self.columns.len())
            .map(|i| format!("v{i} text NOT NULL, "))
            .collect();
        // The drop cannot find anything (the table only ever exists inside this
        // transaction), but costs nothing and keeps a re-run safe whatever happened.
        let ddl = format!(
            "DROP TABLE IF EXISTS {staging};
             CREATE TABLE {staging} (
                 id bigint NOT NULL, email text NOT NULL, {values}
                 state smallint NOT NULL DEFAULT 0, until timestamptz,
                 attempts int NOT NULL DEFAULT 0, first_attempt_at timestamptz,
                 last_reply text, updated_at timestamptz
             )"
        );
        conn.batch_execute(&ddl).await.map_err(sql::db_error)?;
        // FREEZE: the table is new in this transaction, so rows can be written
        // frozen, sparing the first reader from rewriting every page.
        let copy = format!(
            "COPY {staging} (id, email{}) FROM STDIN (FORMAT binary, FREEZE)",
            sql::value_columns(self.columns.len())
        );
        conn.copy_in(&copy).await.map_err(sql::db_error)
    }

    fn sink(&mut self) -> StoreResult<Pin<&mut CopyInSink<Bytes>>> {
        self.sink
            .as_mut()
            .map(Pin::as_mut)
            .ok_or_else(|| StoreError::Corrupt("the import is already finished".into()))
    }

    async fn finish(&mut self, summary: &ImportSummary) -> StoreResult<()> {
        let tail = self.encoder.finish();
        let mut sink = self.sink()?;
        sink.feed(tail).await.map_err(sql::db_error)?;
        let loaded = sink.finish().await.map_err(sql::db_error)?;
        self.sink = None;
        let (tenant, campaign) = (self.tenant, self.campaign);
        let recipients = sql::recipients(tenant, campaign);
        let events = sql::events(tenant, campaign);
        let ddl = format!(
            "DROP TABLE IF EXISTS {recipients}; DROP TABLE IF EXISTS {events};
             ALTER TABLE {staging} RENAME TO c{id}_recipients;
             ALTER TABLE {recipients} ADD PRIMARY KEY (id);
             CREATE TABLE {events} (
                 id bigserial PRIMARY KEY, recipient_id bigint NOT NULL,
                 kind smallint NOT NULL, detail text, at timestamptz NOT NULL
             );
             CREATE INDEX ON {events} (recipient_id);",
            staging = sql::table(tenant, campaign, "recipients_new"),
            id = campaign.0,
        );
        let conn = self.conn()?;
        conn.batch_execute(&ddl).await.map_err(sql::db_error)?;
        // `clock_timestamp()`, not the transaction's start (`now()`): retention
        // tells the files this import read and wrote (older than this) from a
        // later upload of the same name.
        let update = format!(
            "WITH c AS (
                 UPDATE {schema}.campaigns SET columns = $2, imported = true, pending = $3,
                     deferred = 0, delivered = 0, bounced = 0, failed = 0, suppressed = 0
                 WHERE id = $1 RETURNING id
             )
             INSERT INTO {schema}.imports
                 (campaign_id, source, rows_loaded, rows_rejected, created_at)
             SELECT id, $4, $5, $6, clock_timestamp() FROM c",
            schema = sql::schema(tenant)
        );
        let pending = i64::try_from(loaded)
            .map_err(|_| StoreError::Corrupt(format!("{loaded} rows loaded")))?;
        conn.execute(
            &update,
            &[
                &campaign.0,
                &self.columns,
                &pending,
                &summary.source,
                &summary.rows_loaded,
                &summary.rows_rejected,
            ],
        )
        .await
        .map_err(sql::db_error)?;
        conn.batch_execute("COMMIT").await.map_err(sql::db_error)
    }

    /// Ends the transaction without keeping anything and returns the connection to
    /// the pool clean; if even that fails, the pool closes the connection instead.
    async fn rollback(&mut self) {
        // Dropping an unfinished sink makes tokio-postgres send CopyFail, which ends
        // the COPY (and fails the transaction) before the ROLLBACK below is sent.
        self.sink = None;
        if let Some(mut conn) = self.conn.take()
            && let Err(error) = conn.batch_execute("ROLLBACK").await
        {
            tracing::warn!(%error, "rolling back an import failed; closing its connection");
            conn.mark_broken();
        }
    }
}

#[async_trait]
impl ImportWriter for PgImportWriter {
    async fn write(&mut self, batch: &crate::store::RecipientBatch) -> StoreResult<()> {
        let mut next = 0;
        loop {
            next = self.encoder.encode(batch, next)?;
            if let Some(chunk) = self.encoder.full_chunk() {
                self.sink()?.feed(chunk).await.map_err(sql::db_error)?;
            }
            if next >= batch.len() {
                return Ok(());
            }
        }
    }

    async fn commit(mut self: Box<Self>, summary: &ImportSummary) -> StoreResult<()> {
        match self.finish(summary).await {
            Ok(()) => {
                // Committed: the connection goes back to the pool as it is.
                self.conn = None;
                Ok(())
            }
            Err(error) => {
                self.rollback().await;
                Err(error)
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> StoreResult<()> {
        self.rollback().await;
        Ok(())
    }
}

impl Drop for PgImportWriter {
    /// Dropped without commit or abort: no `.await` is possible here, so the
    /// connection is marked broken and the pool closes it instead of handing a
    /// connection mid-COPY or mid-transaction to its next user; the server rolls the
    /// transaction back when the connection closes.
    fn drop(&mut self) {
        self.sink = None;
        if let Some(mut conn) = self.conn.take() {
            conn.mark_broken();
        }
    }
}
