//! The SQLite `ImportWriter`.
//!
//! Design: rows go into a staging table `c<campaign>_import<n>`, one short
//! transaction per batch, on the tenant's worker thread like every other access;
//! `commit` swaps the staging table in and resets the campaign in one transaction.
//!
//! Why not one transaction held open from `begin_import` to `commit` (the obvious
//! design)? Because the worker is shared by the whole tenant: jobs of other callers
//! would run inside the import's transaction (and vanish with its rollback), and a
//! second connection with `BEGIN IMMEDIATE` would lock every other writer of the
//! tenant, such as the outcome writes of a running campaign, out for the minutes a
//! large import takes. Here no transaction outlives a job, so a forgotten writer
//! cannot leave one open, and imports interleave fairly with the tenant's other work.
//!
//! Invisibility comes from naming instead: readers only ever read `c<id>_recipients`,
//! which the commit swaps in atomically. An aborted or dropped writer drops its
//! staging table; after a crash, the worker drops leftovers when it opens the file
//! (`drop_leftover_staging`), before any other job. Re-running an import is safe:
//! each run stages into its own table, and whichever commits last wins.

use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior, params};

use super::catalog::existing_campaign;
use super::convert::{
    db_error, events_table, now_ms, recipients_table, staging_table, to_ms, value_column,
};
use super::worker::{Pending, Worker};
use crate::model::{CampaignId, TenantId};
use crate::store::{
    CampaignStatus, ImportSummary, ImportWriter, RecipientBatch, StoreError, StoreResult,
};

pub(super) struct SqliteImport {
    /// The tenant's worker: all writes go through it, as every other access does.
    worker: Worker,
    tenant: TenantId,
    campaign: CampaignId,
    columns: Vec<String>,
    /// The staging table's name, unique to this import.
    staging: String,
    /// Built once: the statement is then found in the connection's cache by its text.
    insert_sql: String,
    /// Rows written so far, which become the campaign's pending counter.
    rows: i64,
    /// The batch being inserted while the caller prepares the next one; its result
    /// is collected by the next call, so at most one batch is in flight.
    in_flight: Option<Pending<()>>,
    /// Set by `commit` and `abort`; otherwise `Drop` cleans up.
    finished: bool,
}

/// Checks that the campaign can be imported into, and creates the staging table.
pub(super) async fn begin(
    worker: Worker,
    tenant: TenantId,
    campaign: CampaignId,
    columns: &[String],
    import: u64,
) -> StoreResult<SqliteImport> {
    let staging = staging_table(campaign, import);
    let mut create = format!("CREATE TABLE {staging} (id INTEGER PRIMARY KEY, email TEXT NOT NULL");
    let mut insert = format!("INSERT INTO {staging} (id, email");
    for index in 0..columns.len() {
        create.push_str(&format!(", {} TEXT NOT NULL", value_column(index)));
        insert.push_str(&format!(", {}", value_column(index)));
    }
    create.push_str(
        ", state INTEGER NOT NULL DEFAULT 0, until INTEGER,
           attempts INTEGER NOT NULL DEFAULT 0, first_attempt_at INTEGER,
           last_reply TEXT, updated_at INTEGER)",
    );
    insert.push_str(") VALUES (?1, ?2");
    for index in 0..columns.len() {
        insert.push_str(&format!(", ?{}", index + 3));
    }
    insert.push(')');
    let drop_old = format!("DROP TABLE IF EXISTS {staging}");
    worker
        .call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let found = existing_campaign(&tx, tenant, campaign)?;
            if found.status != CampaignStatus::Draft {
                return Err(StoreError::WrongStatus {
                    campaign,
                    status: found.status.as_str(),
                    action: "be imported into",
                });
            }
            tx.execute_batch(&format!("{drop_old}; {create}"))
                .map_err(db_error)?;
            tx.commit().map_err(db_error)
        })
        .await?;
    Ok(SqliteImport {
        worker,
        tenant,
        campaign,
        columns: columns.to_vec(),
        staging,
        insert_sql: insert,
        rows: 0,
        in_flight: None,
        finished: false,
    })
}

/// Inserts one batch in one transaction, binding by index with a cached statement.
fn insert_batch(conn: &mut Connection, sql: &str, batch: &RecipientBatch) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    {
        let mut stmt = tx.prepare_cached(sql).map_err(db_error)?;
        for row in batch.rows() {
            stmt.raw_bind_parameter(1, row.id().0).map_err(db_error)?;
            stmt.raw_bind_parameter(2, row.email()).map_err(db_error)?;
            for (index, value) in row.values().enumerate() {
                stmt.raw_bind_parameter(index + 3, value)
                    .map_err(db_error)?;
            }
            stmt.raw_execute().map_err(db_error)?;
        }
    }
    tx.commit().map_err(db_error)
}

/// What the commit job needs, moved onto the worker thread.
struct Swap {
    tenant: TenantId,
    campaign: CampaignId,
    staging: String,
    columns_json: String,
    rows: i64,
    source: String,
    rows_loaded: i64,
    rows_rejected: i64,
}

/// Swaps the staging table in: one transaction, so readers see the old rows or the
/// new ones, never a mix. The campaign must still be a draft (it may have been
/// launched while the rows were loading).
fn swap_in(conn: &mut Connection, swap: Swap) -> StoreResult<()> {
    let Swap {
        tenant,
        campaign,
        staging,
        ..
    } = &swap;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let found = existing_campaign(&tx, *tenant, *campaign)?;
    if found.status != CampaignStatus::Draft {
        return Err(StoreError::WrongStatus {
            campaign: *campaign,
            status: found.status.as_str(),
            action: "be imported into",
        });
    }
    let (recipients, events) = (recipients_table(*campaign), events_table(*campaign));
    // The index is built after the load (faster than maintaining it row by row) and
    // keeps its staging name through the rename; names stay unique per import.
    tx.execute_batch(&format!(
        "CREATE INDEX {staging}_email ON {staging} (email);
         DROP TABLE IF EXISTS {recipients};
         DROP TABLE IF EXISTS {events};
         ALTER TABLE {staging} RENAME TO {recipients};
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
    tx.execute(
        "UPDATE campaigns SET columns = ?2, imported = 1, pending = ?3, deferred = 0,
             delivered = 0, bounced = 0, failed = 0, suppressed = 0
         WHERE id = ?1",
        params![campaign.0, swap.columns_json, swap.rows],
    )
    .map_err(db_error)?;
    tx.execute(
        "INSERT INTO imports (campaign_id, source, columns, rows_loaded, rows_rejected,
             committed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            campaign.0,
            swap.source,
            swap.columns_json,
            swap.rows_loaded,
            swap.rows_rejected,
            to_ms(now_ms())
        ],
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)
}

/// Drops staging tables that a crashed process left behind. Runs when a worker opens
/// a tenant file, before any import of this process can have started.
pub(super) fn drop_leftover_staging(conn: &Connection) -> StoreResult<()> {
    let leftovers = conn
        .prepare(
            "SELECT name FROM sqlite_master
             WHERE type = 'table' AND name GLOB 'c[0-9]*_import[0-9]*'",
        )
        .and_then(|mut stmt| {
            stmt.query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db_error)?;
    for table in leftovers {
        tracing::info!(%table, "dropping the staging table of an unfinished import");
        conn.execute_batch(&format!("DROP TABLE IF EXISTS \"{table}\""))
            .map_err(db_error)?;
    }
    Ok(())
}

impl SqliteImport {
    /// Waits for the batch in flight. Inserting one batch while the caller parses
    /// the next keeps both the parser and SQLite busy; a failed insert is reported
    /// by the call after the `write` that queued it (at the latest by `commit`).
    async fn settle(&mut self) -> StoreResult<()> {
        match self.in_flight.take() {
            Some(pending) => pending.wait().await,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl ImportWriter for SqliteImport {
    async fn write(&mut self, batch: &RecipientBatch) -> StoreResult<()> {
        if batch.columns() != self.columns.len() {
            return Err(StoreError::Database {
                code: None,
                message: format!(
                    "a batch of {} columns for an import of {}",
                    batch.columns(),
                    self.columns.len()
                ),
            });
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.settle().await?;
        // The job must own its data; a batch is three buffers, so the copy is a few
        // memcpys, small next to the inserts.
        let owned = batch.clone();
        let sql = self.insert_sql.clone();
        let pending = self
            .worker
            .submit(move |conn| insert_batch(conn, &sql, &owned))
            .await?;
        self.in_flight = Some(pending);
        self.rows += batch.len() as i64;
        Ok(())
    }

    async fn commit(mut self: Box<Self>, summary: &ImportSummary) -> StoreResult<()> {
        self.settle().await?;
        let swap = Swap {
            tenant: self.tenant,
            campaign: self.campaign,
            staging: self.staging.clone(),
            columns_json: serde_json::to_string(&self.columns)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            rows: self.rows,
            source: summary.source.clone(),
            rows_loaded: summary.rows_loaded,
            rows_rejected: summary.rows_rejected,
        };
        // On failure `finished` stays false and `Drop` removes the staging table.
        self.worker.call(move |conn| swap_in(conn, swap)).await?;
        self.finished = true;
        Ok(())
    }

    async fn abort(mut self: Box<Self>) -> StoreResult<()> {
        // Whatever the last batch did, its table is dropped next.
        let _ = self.settle().await;
        let sql = format!("DROP TABLE IF EXISTS {}", self.staging);
        self.finished = true;
        self.worker
            .call(move |conn| conn.execute_batch(&sql).map_err(db_error))
            .await
    }
}

impl Drop for SqliteImport {
    /// A writer dropped without `commit` or `abort` (an error path, a cancelled
    /// task) queues the drop of its staging table on the tenant's worker.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let sql = format!("DROP TABLE IF EXISTS {}", self.staging);
        self.worker.spawn_detached(move |conn| {
            if let Err(err) = conn.execute_batch(&sql) {
                tracing::warn!(%err, "could not drop the staging table of an abandoned import");
            }
        });
    }
}
