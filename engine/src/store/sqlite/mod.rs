//! `SqliteStore`: the embedded, zero-setup `Store`. A global database
//! `<data dir>/broadside.db` (tenants, the campaign-id allocator) and one file per
//! tenant `<data dir>/tenants/<tenant id>.db` (campaigns, imports, and per campaign a
//! recipients and an events table), all in WAL mode.
//!
//! Every file is owned by one `Worker` thread that runs all access to it, so async
//! callers never block the runtime and SQLite sees a single writer per file. Tenant
//! workers start on first use and stay for the life of the store.

mod audit;
mod catalog;
mod convert;
mod exchange;
mod import;
mod keys;
mod migrations;
mod pgp;
mod recipients;
mod submit;
mod tracking;
mod users;
mod webhooks;
mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::Connection;

use self::convert::db_error;
use self::worker::Worker;
use crate::model::{CampaignId, CampaignName, EmailAddress, RecipientId, TenantId, TenantName};
use crate::store::{
    ApiKey, AuditEntry, AuditQuery, AuditRecord, BatchCreated, Campaign, CampaignCounters,
    CampaignEvent, CampaignStatus, Event, ExchangeAccount, ExportWatermark, IdempotencyClaim,
    IdempotencyRecord, ImportSource, ImportWriter, NewBatch, Outcome, PgpKeyRecord, PurgeReport,
    Recipient, RecipientBatch, RecordReport, SessionRecord, Store, StoreError, StoreResult,
    Suppression, SuppressionReason, Tenant, TrackingEvent, UserRecord,
};
use crate::tenant::TenantSettings;

/// Pages of cache per connection (negative: KiB), enough to keep an import's hot
/// pages in memory without making a thousand open tenants expensive.
const CACHE_KIB: i64 = 8 * 1024;

pub struct SqliteStore {
    /// Shared with nothing else; an `Arc` so the store is cheap to clone into tasks.
    inner: Arc<Inner>,
}

struct Inner {
    /// Where `broadside.db` and `tenants/` live.
    data_dir: PathBuf,
    /// How long a statement waits for a lock held by another process (e.g. a backup
    /// tool or a second process opened by mistake) before failing with SQLITE_BUSY.
    busy_timeout: Duration,
    /// The worker of the global database.
    global: Worker,
    /// Workers of the tenant files opened so far. A std mutex: it is held only to
    /// look up or insert, never across an `.await`.
    tenants: Mutex<HashMap<TenantId, Worker>>,
    /// Held while a tenant file is opened, so only one caller opens it.
    opening: tokio::sync::Mutex<()>,
    /// Numbers imports so that each has its own staging table.
    next_import: AtomicU64,
}

impl SqliteStore {
    /// Opens (creating if needed) the data directory and the global database. Call
    /// `migrate` before use, as with every store.
    ///
    /// Synchronous because it runs once at start-up: it opens the global file on the
    /// calling thread (milliseconds) and then hands the connection to its worker.
    pub fn open(data_dir: &Path, busy_timeout: Duration) -> StoreResult<SqliteStore> {
        std::fs::create_dir_all(data_dir.join("tenants"))?;
        let mut conn = Connection::open(data_dir.join("broadside.db")).map_err(db_error)?;
        configure(&mut conn, busy_timeout, false)?;
        let global = Worker::spawn("sqlite-global".into(), conn)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_owned(),
                busy_timeout,
                global,
                tenants: Mutex::new(HashMap::new()),
                opening: tokio::sync::Mutex::new(()),
                next_import: AtomicU64::new(1),
            }),
        })
    }

    /// The worker of `tenant`'s file, started on first use. Fails with `UnknownTenant`
    /// for an id that is not in the global table, so no stray file is ever created.
    async fn tenant(&self, tenant: TenantId) -> StoreResult<Worker> {
        Ok(self.open_tenant(tenant).await?.0)
    }

    /// Like `tenant`, also returning the migrations applied if this call opened it.
    async fn open_tenant(&self, tenant: TenantId) -> StoreResult<(Worker, Vec<String>)> {
        if let Some(worker) = self.lock_tenants().get(&tenant) {
            return Ok((worker.clone(), Vec::new()));
        }
        // One opener at a time: two connections setting WAL mode and migrating a
        // new file at once make the loser fail with SQLITE_BUSY.
        let _opening = self.inner.opening.lock().await;
        if let Some(worker) = self.lock_tenants().get(&tenant) {
            return Ok((worker.clone(), Vec::new()));
        }
        let known = self
            .inner
            .global
            .call(move |conn| catalog::tenant_exists(conn, tenant))
            .await?;
        if !known {
            return Err(StoreError::UnknownTenant(tenant));
        }
        let path = self
            .inner
            .data_dir
            .join("tenants")
            .join(format!("{}.db", tenant.0));
        let busy_timeout = self.inner.busy_timeout;
        let (worker, applied) = Worker::start(format!("sqlite-t{}", tenant.0), path, move |conn| {
            configure(conn, busy_timeout, true)?;
            let applied = migrations::apply(conn, migrations::TENANT)?;
            import::drop_leftover_staging(conn)?;
            Ok(applied)
        })
        .await?;
        let worker = self.lock_tenants().entry(tenant).or_insert(worker).clone();
        let applied = applied
            .into_iter()
            .map(|name| format!("tenant/{}/{name}", tenant.0))
            .collect();
        Ok((worker, applied))
    }

    fn lock_tenants(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Worker>> {
        // A panic while holding this lock cannot leave the map half-updated (each
        // use is one lookup or one insert), so a poisoned lock is still usable.
        self.inner
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Connection settings. WAL lets reads proceed during writes and makes a commit one
/// append; `synchronous=NORMAL` is durable across process crashes (a power loss may
/// lose the last commits, never corrupt). `secure_delete` zeroes freed pages in
/// tenant files, so dropped personal data does not linger in free pages.
fn configure(conn: &mut Connection, busy_timeout: Duration, tenant: bool) -> StoreResult<()> {
    conn.busy_timeout(busy_timeout).map_err(db_error)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(db_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Database {
            code: None,
            message: format!("could not switch to WAL (journal mode is {mode})"),
        });
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = OFF;
         PRAGMA cache_size = -{CACHE_KIB};
         PRAGMA secure_delete = {};",
        if tenant { "ON" } else { "OFF" }
    ))
    .map_err(db_error)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<Vec<String>> {
        let mut applied: Vec<String> = self
            .inner
            .global
            .call(|conn| migrations::apply(conn, migrations::GLOBAL))
            .await?
            .into_iter()
            .map(|name| format!("global/{name}"))
            .collect();
        for tenant in self.tenants().await? {
            let (worker, opened) = self.open_tenant(tenant.id).await?;
            applied.extend(opened);
            let more = worker
                .call(|conn| migrations::apply(conn, migrations::TENANT))
                .await?;
            applied.extend(
                more.into_iter()
                    .map(|name| format!("tenant/{}/{name}", tenant.id)),
            );
        }
        Ok(applied)
    }

    async fn create_tenant(&self, name: &TenantName) -> StoreResult<Tenant> {
        let name = name.clone();
        let tenant = self
            .inner
            .global
            .call(move |conn| catalog::insert_tenant(conn, &name))
            .await?;
        // Creates the file and applies the tenant migrations. Should this fail, the
        // next use of the tenant tries again.
        self.tenant(tenant.id).await?;
        Ok(tenant)
    }

    async fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.inner.global.call(|conn| catalog::tenants(conn)).await
    }

    async fn tenant(&self, name: &TenantName) -> StoreResult<Option<Tenant>> {
        let name = name.clone();
        self.inner
            .global
            .call(move |conn| catalog::tenant_by_name(conn, &name))
            .await
    }

    async fn create_api_key(
        &self,
        tenant: TenantId,
        key_id: &str,
        sealed_secret: &[u8],
    ) -> StoreResult<ApiKey> {
        let (key_id, sealed) = (key_id.to_owned(), sealed_secret.to_vec());
        self.inner
            .global
            .call(move |conn| keys::create(conn, tenant, &key_id, &sealed))
            .await
    }

    async fn api_keys(&self, tenant: TenantId) -> StoreResult<Vec<ApiKey>> {
        self.inner
            .global
            .call(move |conn| keys::list(conn, tenant))
            .await
    }

    async fn api_key(&self, key_id: &str) -> StoreResult<Option<(ApiKey, Vec<u8>)>> {
        let key_id = key_id.to_owned();
        self.inner
            .global
            .call(move |conn| keys::get(conn, &key_id))
            .await
    }

    async fn revoke_api_key(&self, tenant: TenantId, key_id: &str) -> StoreResult<()> {
        let key_id = key_id.to_owned();
        self.inner
            .global
            .call(move |conn| keys::revoke(conn, tenant, &key_id))
            .await
    }

    async fn create_exchange_account(&self, account: &ExchangeAccount) -> StoreResult<()> {
        let account = account.clone();
        self.inner
            .global
            .call(move |conn| keys::create_account(conn, &account))
            .await
    }

    async fn exchange_account(&self, username: &str) -> StoreResult<Option<ExchangeAccount>> {
        let username = username.to_owned();
        self.inner
            .global
            .call(move |conn| keys::account(conn, &username))
            .await
    }

    async fn exchange_accounts(&self, tenant: TenantId) -> StoreResult<Vec<ExchangeAccount>> {
        self.inner
            .global
            .call(move |conn| exchange::exchange_accounts(conn, tenant))
            .await
    }

    async fn remove_exchange_account(&self, tenant: TenantId, username: &str) -> StoreResult<bool> {
        let username = username.to_owned();
        self.inner
            .global
            .call(move |conn| exchange::remove_exchange_account(conn, tenant, &username))
            .await
    }

    async fn idempotency_record(
        &self,
        tenant: TenantId,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let key = key.to_owned();
        self.inner
            .global
            .call(move |conn| keys::idempotency_record(conn, tenant, &key))
            .await
    }

    async fn remember_idempotency(
        &self,
        tenant: TenantId,
        key: &str,
        record: &IdempotencyRecord,
    ) -> StoreResult<IdempotencyRecord> {
        let (key, record) = (key.to_owned(), record.clone());
        self.inner
            .global
            .call(move |conn| keys::remember_idempotency(conn, tenant, &key, &record))
            .await
    }

    async fn create_campaign(
        &self,
        tenant: TenantId,
        name: &CampaignName,
    ) -> StoreResult<Campaign> {
        let worker = self.tenant(tenant).await?;
        let id = self
            .inner
            .global
            .call(move |conn| catalog::allocate_campaign_id(conn, tenant))
            .await?;
        let name = name.clone();
        worker
            .call(move |conn| catalog::insert_campaign(conn, tenant, id, &name))
            .await
    }

    async fn campaign(&self, tenant: TenantId, id: CampaignId) -> StoreResult<Option<Campaign>> {
        let worker = self.tenant(tenant).await?;
        worker
            .call(move |conn| catalog::campaign(conn, tenant, id))
            .await
    }

    async fn campaign_by_name(
        &self,
        tenant: TenantId,
        name: &CampaignName,
    ) -> StoreResult<Option<Campaign>> {
        let worker = self.tenant(tenant).await?;
        let name = name.clone();
        worker
            .call(move |conn| catalog::campaign_by_name(conn, tenant, &name))
            .await
    }

    async fn campaigns(&self, tenant: TenantId) -> StoreResult<Vec<Campaign>> {
        let worker = self.tenant(tenant).await?;
        worker
            .call(move |conn| catalog::campaigns(conn, tenant))
            .await
    }

    async fn active_campaigns(
        &self,
        tenant: TenantId,
        also: &[CampaignId],
    ) -> StoreResult<Vec<Campaign>> {
        let worker = self.tenant(tenant).await?;
        let also = also.to_vec();
        worker
            .call(move |conn| catalog::active_campaigns(conn, tenant, &also))
            .await
    }

    async fn set_campaign_status(
        &self,
        tenant: TenantId,
        id: CampaignId,
        status: CampaignStatus,
    ) -> StoreResult<()> {
        let worker = self.tenant(tenant).await?;
        worker
            .call(move |conn| catalog::set_status(conn, tenant, id, status))
            .await
    }

    async fn set_campaign_definition(
        &self,
        tenant: TenantId,
        id: CampaignId,
        definition: &str,
    ) -> StoreResult<()> {
        let worker = self.tenant(tenant).await?;
        let definition = definition.to_owned();
        worker
            .call(move |conn| catalog::set_definition(conn, tenant, id, &definition))
            .await
    }

    async fn create_batch(
        &self,
        tenant: TenantId,
        batch: &NewBatch<'_>,
        claim: Option<&IdempotencyClaim<'_>>,
    ) -> StoreResult<BatchCreated> {
        self.submit_batch(tenant, batch, claim).await
    }

    async fn begin_import(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        columns: &[String],
    ) -> StoreResult<Box<dyn ImportWriter>> {
        let worker = self.tenant(tenant).await?;
        let number = self.inner.next_import.fetch_add(1, Ordering::Relaxed);
        let writer = import::begin(worker, tenant, campaign, columns, number).await?;
        Ok(Box::new(writer))
    }

    async fn recipients(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        after: RecipientId,
        limit: u32,
    ) -> StoreResult<Vec<Recipient>> {
        let worker = self.tenant(tenant).await?;
        worker
            .call(move |conn| recipients::recipients(conn, tenant, campaign, after, limit))
            .await
    }

    async fn due_recipients(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        after: RecipientId,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<RecipientBatch> {
        let worker = self.tenant(tenant).await?;
        worker
            .call(move |conn| {
                let which = recipients::DueRows::After(after, limit);
                recipients::due_recipients(conn, tenant, campaign, which, now)
            })
            .await
    }

    async fn due_recipients_among(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        ids: &[RecipientId],
        now: DateTime<Utc>,
    ) -> StoreResult<RecipientBatch> {
        let worker = self.tenant(tenant).await?;
        let ids = ids.to_vec();
        worker
            .call(move |conn| {
                let which = recipients::DueRows::Among(&ids);
                recipients::due_recipients(conn, tenant, campaign, which, now)
            })
            .await
    }

    async fn recipient_by_email(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        email: &EmailAddress,
    ) -> StoreResult<Option<Recipient>> {
        let worker = self.tenant(tenant).await?;
        let email = email.clone();
        worker
            .call(move |conn| recipients::recipient_by_email(conn, tenant, campaign, &email))
            .await
    }

    async fn events(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        recipient: RecipientId,
    ) -> StoreResult<Vec<Event>> {
        let worker = self.tenant(tenant).await?;
        worker
            .call(move |conn| recipients::events(conn, tenant, campaign, recipient))
            .await
    }

    async fn record_outcomes(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        outcomes: &[Outcome],
    ) -> StoreResult<RecordReport> {
        let worker = self.tenant(tenant).await?;
        let outcomes = outcomes.to_vec();
        worker
            .call(move |conn| recipients::record_outcomes(conn, tenant, campaign, &outcomes))
            .await
    }

    async fn counters(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<CampaignCounters> {
        let worker = self.tenant(tenant).await?;
        worker
            .call(move |conn| catalog::counters(conn, tenant, campaign))
            .await
    }

    async fn record_tracking_events(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        events: &[TrackingEvent],
    ) -> StoreResult<usize> {
        let events = events.to_vec();
        self.tenant(tenant)
            .await?
            .call(move |conn| tracking::record(conn, tenant, campaign, &events))
            .await
    }

    async fn tracking_events(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        recipient: RecipientId,
    ) -> StoreResult<Vec<TrackingEvent>> {
        self.tenant(tenant)
            .await?
            .call(move |conn| tracking::list(conn, tenant, campaign, recipient))
            .await
    }

    async fn suppress(
        &self,
        tenant: TenantId,
        entries: &[(String, SuppressionReason)],
    ) -> StoreResult<usize> {
        let entries = entries.to_vec();
        self.inner
            .global
            .call(move |conn| tracking::suppress(conn, tenant, &entries))
            .await
    }

    async fn unsuppress(&self, tenant: TenantId, email: &str) -> StoreResult<bool> {
        let email = email.to_owned();
        self.inner
            .global
            .call(move |conn| tracking::unsuppress(conn, tenant, &email))
            .await
    }

    async fn suppressions(&self, tenant: TenantId) -> StoreResult<Vec<Suppression>> {
        self.inner
            .global
            .call(move |conn| tracking::suppressions(conn, tenant))
            .await
    }

    async fn suppressed_among(
        &self,
        tenant: TenantId,
        emails: &[String],
    ) -> StoreResult<std::collections::HashSet<String>> {
        let emails = emails.to_vec();
        self.inner
            .global
            .call(move |conn| tracking::suppressed_among(conn, tenant, &emails))
            .await
    }

    async fn enqueue_webhooks(&self, tenant: TenantId, events: &[String]) -> StoreResult<()> {
        let events = events.to_vec();
        self.inner
            .global
            .call(move |conn| webhooks::enqueue(conn, tenant, &events))
            .await
    }

    async fn due_webhooks(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<crate::store::WebhookDelivery>> {
        self.inner
            .global
            .call(move |conn| webhooks::due(conn, tenant, now, limit))
            .await
    }

    async fn ack_webhooks(&self, tenant: TenantId, ids: &[i64]) -> StoreResult<()> {
        let ids = ids.to_vec();
        self.inner
            .global
            .call(move |conn| webhooks::ack(conn, tenant, &ids))
            .await
    }

    async fn retry_webhooks(
        &self,
        tenant: TenantId,
        ids: &[i64],
        next: DateTime<Utc>,
    ) -> StoreResult<()> {
        let ids = ids.to_vec();
        self.inner
            .global
            .call(move |conn| webhooks::retry(conn, tenant, &ids, next))
            .await
    }

    async fn drop_campaign_data(&self, tenant: TenantId, campaign: CampaignId) -> StoreResult<()> {
        let worker = self.tenant(tenant).await?;
        worker
            .call(move |conn| recipients::drop_campaign_data(conn, tenant, campaign))
            .await
    }

    async fn committed_event_bound(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<i64> {
        self.tenant(tenant)
            .await?
            .call(move |conn| exchange::committed_event_bound(conn, tenant, campaign))
            .await
    }

    async fn campaign_events(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        after: i64,
        through: i64,
        limit: u32,
    ) -> StoreResult<Vec<CampaignEvent>> {
        self.tenant(tenant)
            .await?
            .call(move |conn| {
                exchange::campaign_events(conn, tenant, campaign, after, through, limit)
            })
            .await
    }

    async fn export_watermark(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<ExportWatermark> {
        self.tenant(tenant)
            .await?
            .call(move |conn| exchange::export_watermark(conn, tenant, campaign))
            .await
    }

    async fn set_export_watermark(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        mark: ExportWatermark,
    ) -> StoreResult<()> {
        self.tenant(tenant)
            .await?
            .call(move |conn| exchange::set_export_watermark(conn, tenant, campaign, mark))
            .await
    }

    async fn import_sources(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<Vec<ImportSource>> {
        self.tenant(tenant)
            .await?
            .call(move |conn| exchange::import_sources(conn, tenant, campaign))
            .await
    }

    /// Two files, two transactions: the tenant's tables first, then the global
    /// idempotency records. Each step is idempotent, so a crash between them is
    /// finished by the next purge.
    async fn purge_campaign(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<PurgeReport> {
        let worker = self.tenant(tenant).await?;
        let tables_dropped = worker
            .call(move |conn| {
                let imported = catalog::existing_campaign(conn, tenant, campaign)?.imported;
                // Not imported: no tables, and no WAL checkpoint needed.
                if imported {
                    recipients::drop_campaign_data(conn, tenant, campaign)?;
                }
                // Event ids start again if the draft is ever imported anew.
                exchange::forget_export_watermark(conn, campaign)?;
                Ok(imported)
            })
            .await?;
        let idempotency_records = self
            .inner
            .global
            .call(move |conn| exchange::delete_idempotency(conn, tenant, campaign))
            .await?;
        Ok(PurgeReport {
            tables_dropped,
            idempotency_records,
        })
    }

    async fn tenant_settings(&self, tenant: TenantId) -> StoreResult<TenantSettings> {
        self.inner
            .global
            .call(move |conn| audit::settings(conn, tenant))
            .await
    }

    async fn set_tenant_settings(
        &self,
        tenant: TenantId,
        settings: &TenantSettings,
    ) -> StoreResult<()> {
        let settings = settings.clone();
        self.inner
            .global
            .call(move |conn| audit::set_settings(conn, tenant, &settings))
            .await
    }

    async fn pgp_keys(&self, tenant: TenantId) -> StoreResult<PgpKeyRecord> {
        self.inner
            .global
            .call(move |conn| pgp::keys(conn, tenant))
            .await
    }

    async fn init_pgp_key(
        &self,
        tenant: TenantId,
        sealed_secret: &[u8],
        public_key: &str,
    ) -> StoreResult<bool> {
        let (sealed, public) = (sealed_secret.to_vec(), public_key.to_owned());
        self.inner
            .global
            .call(move |conn| pgp::init_key(conn, tenant, &sealed, &public))
            .await
    }

    async fn set_customer_pgp_key(&self, tenant: TenantId, key: Option<&str>) -> StoreResult<()> {
        let key = key.map(str::to_owned);
        self.inner
            .global
            .call(move |conn| pgp::set_customer_key(conn, tenant, key.as_deref()))
            .await
    }

    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<i64> {
        let record = record.clone();
        self.inner
            .global
            .call(move |conn| audit::append(conn, &record))
            .await
    }

    async fn audit_log(&self, query: AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        self.inner
            .global
            .call(move |conn| audit::list(conn, query))
            .await
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<UserRecord> {
        let user = user.clone();
        self.inner
            .global
            .call(move |conn| users::create(conn, &user))
            .await
    }

    async fn user(&self, name: &str) -> StoreResult<Option<UserRecord>> {
        let name = name.to_owned();
        self.inner
            .global
            .call(move |conn| users::get(conn, &name))
            .await
    }

    async fn users(&self, tenant: Option<TenantId>) -> StoreResult<Vec<UserRecord>> {
        self.inner
            .global
            .call(move |conn| users::list(conn, tenant))
            .await
    }

    async fn update_user(&self, user: &UserRecord) -> StoreResult<UserRecord> {
        let user = user.clone();
        self.inner
            .global
            .call(move |conn| users::update(conn, &user))
            .await
    }

    async fn put_session(&self, session: &SessionRecord) -> StoreResult<()> {
        let session = session.clone();
        self.inner
            .global
            .call(move |conn| users::put_session(conn, &session))
            .await
    }

    async fn session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRecord>> {
        let id_hash = id_hash.to_owned();
        self.inner
            .global
            .call(move |conn| users::session(conn, &id_hash, now))
            .await
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        let id_hash = id_hash.to_owned();
        self.inner
            .global
            .call(move |conn| users::delete_session(conn, &id_hash))
            .await
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        self.inner
            .global
            .call(move |conn| users::delete_expired_sessions(conn, now, limit))
            .await
    }
}
