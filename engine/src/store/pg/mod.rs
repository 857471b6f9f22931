//! The PostgreSQL store (production): a bb8 pool; global tables in the schema
//! `broadside`; per tenant a schema `t_<tenant id>` with its catalogue; per campaign
//! a recipients and an events table, loaded by binary `COPY` and updated in batches
//! from arrays. See `ARCHITECTURE.md`, "Storage".

mod audit;
mod catalog;
mod copy;
mod exchange;
mod import;
mod keys;
mod manager;
mod migrate;
mod outcomes;
mod pgp;
mod recipients;
mod sql;
mod submit;
mod tables;
mod tracking;
mod users;
mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use self::manager::{PgManager, Pool};
use self::tables::TablesCache;
use crate::model::{CampaignId, CampaignName, EmailAddress, RecipientId, TenantId, TenantName};
use crate::store::{
    ApiKey, AuditEntry, AuditQuery, AuditRecord, BatchCreated, Campaign, CampaignCounters,
    CampaignEvent, CampaignStatus, Event, ExchangeAccount, ExportWatermark, IdempotencyClaim,
    IdempotencyRecord, ImportSource, ImportWriter, NewBatch, Outcome, PgpKeyRecord, PurgeReport,
    Recipient, RecipientBatch, RecordReport, SessionRecord, Store, StoreError, StoreResult,
    Suppression, SuppressionReason, Tenant, TrackingEvent, UserRecord,
};
use crate::tenant::TenantSettings;

/// A `Store` on PostgreSQL. Cloning shares the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    tables: std::sync::Arc<TablesCache>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password, so only the pool's state is shown.
        f.debug_struct("PgStore")
            .field("pool", &self.pool.state())
            .finish()
    }
}

impl PgStore {
    /// Opens a pool of up to `pool_size` connections to `url` (a libpq-style URL or
    /// key=value string) and checks that the server answers. Connections are opened
    /// on the calling runtime, which also drives them (bb8-postgres spawns each
    /// connection's task there).
    pub async fn connect(
        url: &str,
        pool_size: u32,
        connect_timeout: Duration,
    ) -> StoreResult<PgStore> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid database URL: {e}")))?;
        config.connect_timeout(connect_timeout);
        config.application_name("broadside");
        let pool = bb8::Pool::builder()
            .max_size(pool_size.max(1))
            .connection_timeout(connect_timeout)
            .build(PgManager::new(config))
            .await
            .map_err(|e| sql::pool_error(bb8::RunError::User(e)))?;
        // `build` opens nothing without `min_idle`; this makes a wrong URL or a
        // missing server an error here rather than at the first query.
        drop(pool.get().await.map_err(sql::pool_error)?);
        Ok(PgStore {
            pool,
            tables: std::sync::Arc::default(),
        })
    }

    async fn conn(&self) -> StoreResult<bb8::PooledConnection<'_, PgManager>> {
        self.pool.get().await.map_err(sql::pool_error)
    }
}

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> StoreResult<Vec<String>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(sql::db_error)?;
        let names = migrate::migrate_all(&tx).await.map_err(sql::db_error)?;
        tx.commit().await.map_err(sql::db_error)?;
        Ok(names)
    }

    async fn create_tenant(&self, name: &TenantName) -> StoreResult<Tenant> {
        let mut conn = self.conn().await?;
        catalog::create_tenant(&mut conn, name).await
    }

    async fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        catalog::tenants(&*self.conn().await?).await
    }

    async fn tenant(&self, name: &TenantName) -> StoreResult<Option<Tenant>> {
        catalog::tenant(&*self.conn().await?, name).await
    }

    async fn create_api_key(
        &self,
        tenant: TenantId,
        key_id: &str,
        sealed_secret: &[u8],
    ) -> StoreResult<ApiKey> {
        keys::create(&*self.conn().await?, tenant, key_id, sealed_secret).await
    }

    async fn api_keys(&self, tenant: TenantId) -> StoreResult<Vec<ApiKey>> {
        keys::list(&*self.conn().await?, tenant).await
    }

    async fn api_key(&self, key_id: &str) -> StoreResult<Option<(ApiKey, Vec<u8>)>> {
        keys::get(&*self.conn().await?, key_id).await
    }

    async fn revoke_api_key(&self, tenant: TenantId, key_id: &str) -> StoreResult<()> {
        keys::revoke(&*self.conn().await?, tenant, key_id).await
    }

    async fn create_exchange_account(&self, account: &ExchangeAccount) -> StoreResult<()> {
        keys::create_account(&*self.conn().await?, account).await
    }

    async fn exchange_account(&self, username: &str) -> StoreResult<Option<ExchangeAccount>> {
        keys::account(&*self.conn().await?, username).await
    }

    async fn exchange_accounts(&self, tenant: TenantId) -> StoreResult<Vec<ExchangeAccount>> {
        exchange::exchange_accounts(&*self.conn().await?, tenant).await
    }

    async fn remove_exchange_account(&self, tenant: TenantId, username: &str) -> StoreResult<bool> {
        exchange::remove_exchange_account(&*self.conn().await?, tenant, username).await
    }

    async fn idempotency_record(
        &self,
        tenant: TenantId,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        keys::idempotency_record(&*self.conn().await?, tenant, key).await
    }

    async fn remember_idempotency(
        &self,
        tenant: TenantId,
        key: &str,
        record: &IdempotencyRecord,
    ) -> StoreResult<IdempotencyRecord> {
        keys::remember_idempotency(&*self.conn().await?, tenant, key, record).await
    }

    async fn create_campaign(
        &self,
        tenant: TenantId,
        name: &CampaignName,
    ) -> StoreResult<Campaign> {
        catalog::create_campaign(&*self.conn().await?, tenant, name).await
    }

    async fn campaign(&self, tenant: TenantId, id: CampaignId) -> StoreResult<Option<Campaign>> {
        catalog::campaign(&*self.conn().await?, tenant, id).await
    }

    async fn campaign_by_name(
        &self,
        tenant: TenantId,
        name: &CampaignName,
    ) -> StoreResult<Option<Campaign>> {
        catalog::campaign_by_name(&*self.conn().await?, tenant, name).await
    }

    async fn campaigns(&self, tenant: TenantId) -> StoreResult<Vec<Campaign>> {
        catalog::campaigns(&*self.conn().await?, tenant).await
    }

    async fn active_campaigns(
        &self,
        tenant: TenantId,
        also: &[CampaignId],
    ) -> StoreResult<Vec<Campaign>> {
        catalog::active_campaigns(&*self.conn().await?, tenant, also).await
    }

    async fn set_campaign_status(
        &self,
        tenant: TenantId,
        id: CampaignId,
        status: CampaignStatus,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        catalog::set_campaign_status(&mut conn, tenant, id, status).await
    }

    async fn set_campaign_definition(
        &self,
        tenant: TenantId,
        id: CampaignId,
        definition: &str,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        catalog::set_campaign_definition(&mut conn, tenant, id, definition).await
    }

    async fn create_batch(
        &self,
        tenant: TenantId,
        batch: &NewBatch<'_>,
        claim: Option<&IdempotencyClaim<'_>>,
    ) -> StoreResult<BatchCreated> {
        submit::create_batch(&self.pool, tenant, batch, claim).await
    }

    async fn begin_import(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        columns: &[String],
    ) -> StoreResult<Box<dyn ImportWriter>> {
        let writer = import::begin(&self.pool, tenant, campaign, columns).await?;
        Ok(Box::new(writer))
    }

    async fn recipients(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        after: RecipientId,
        limit: u32,
    ) -> StoreResult<Vec<Recipient>> {
        let conn = self.conn().await?;
        let tables = self.tables.tables(&conn, tenant, campaign).await?;
        recipients::recipients(&conn, &tables, after, limit).await
    }

    async fn due_recipients(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        after: RecipientId,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<RecipientBatch> {
        let conn = self.conn().await?;
        let tables = self.tables.tables(&conn, tenant, campaign).await?;
        let which = recipients::DueRows::After(after, limit);
        recipients::due_recipients(&conn, &tables, which, now).await
    }

    async fn due_recipients_among(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        ids: &[RecipientId],
        now: DateTime<Utc>,
    ) -> StoreResult<RecipientBatch> {
        let conn = self.conn().await?;
        let tables = self.tables.tables(&conn, tenant, campaign).await?;
        let which = recipients::DueRows::Among(ids);
        recipients::due_recipients(&conn, &tables, which, now).await
    }

    async fn recipient_by_email(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        email: &EmailAddress,
    ) -> StoreResult<Option<Recipient>> {
        let conn = self.conn().await?;
        let tables = self.tables.tables(&conn, tenant, campaign).await?;
        recipients::recipient_by_email(&conn, &tables, email).await
    }

    async fn events(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        recipient: RecipientId,
    ) -> StoreResult<Vec<Event>> {
        let conn = self.conn().await?;
        let tables = self.tables.tables(&conn, tenant, campaign).await?;
        recipients::events(&conn, &tables, recipient).await
    }

    async fn record_outcomes(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        outcomes: &[Outcome],
    ) -> StoreResult<RecordReport> {
        let mut conn = self.conn().await?;
        let tables = self.tables.tables(&conn, tenant, campaign).await?;
        outcomes::record_outcomes(&mut conn, &tables, outcomes).await
    }

    async fn counters(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<CampaignCounters> {
        catalog::counters(&*self.conn().await?, tenant, campaign).await
    }

    async fn record_tracking_events(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        events: &[TrackingEvent],
    ) -> StoreResult<usize> {
        let conn = self.conn().await?;
        let tables = self.tables.tables(&conn, tenant, campaign).await?;
        tracking::record(&conn, &tables, events).await
    }

    async fn tracking_events(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        recipient: RecipientId,
    ) -> StoreResult<Vec<TrackingEvent>> {
        let conn = self.conn().await?;
        let tables = self.tables.tables(&conn, tenant, campaign).await?;
        tracking::list(&conn, &tables, recipient).await
    }

    async fn suppress(
        &self,
        tenant: TenantId,
        entries: &[(String, SuppressionReason)],
    ) -> StoreResult<usize> {
        tracking::suppress(&*self.conn().await?, tenant, entries).await
    }

    async fn unsuppress(&self, tenant: TenantId, email: &str) -> StoreResult<bool> {
        tracking::unsuppress(&*self.conn().await?, tenant, email).await
    }

    async fn suppressions(&self, tenant: TenantId) -> StoreResult<Vec<Suppression>> {
        tracking::suppressions(&*self.conn().await?, tenant).await
    }

    async fn suppressed_among(
        &self,
        tenant: TenantId,
        emails: &[String],
    ) -> StoreResult<std::collections::HashSet<String>> {
        tracking::suppressed_among(&*self.conn().await?, tenant, emails).await
    }

    async fn enqueue_webhooks(&self, tenant: TenantId, events: &[String]) -> StoreResult<()> {
        webhooks::enqueue(&*self.conn().await?, tenant, events).await
    }

    async fn due_webhooks(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<crate::store::WebhookDelivery>> {
        webhooks::due(&*self.conn().await?, tenant, now, limit).await
    }

    async fn ack_webhooks(&self, tenant: TenantId, ids: &[i64]) -> StoreResult<()> {
        webhooks::ack(&*self.conn().await?, tenant, ids).await
    }

    async fn retry_webhooks(
        &self,
        tenant: TenantId,
        ids: &[i64],
        next: DateTime<Utc>,
    ) -> StoreResult<()> {
        webhooks::retry(&*self.conn().await?, tenant, ids, next).await
    }

    async fn drop_campaign_data(&self, tenant: TenantId, campaign: CampaignId) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tables = self
            .tables
            .tables_to_remove(&conn, tenant, campaign)
            .await?;
        let dropped = catalog::drop_campaign_data(&mut conn, &tables).await;
        self.tables.forget(tenant, campaign);
        dropped
    }

    async fn committed_event_bound(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<i64> {
        let mut conn = self.conn().await?;
        let tables = self.tables.tables(&conn, tenant, campaign).await?;
        exchange::committed_event_bound(&mut conn, &tables).await
    }

    async fn campaign_events(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        after: i64,
        through: i64,
        limit: u32,
    ) -> StoreResult<Vec<CampaignEvent>> {
        let conn = self.conn().await?;
        let tables = self.tables.tables(&conn, tenant, campaign).await?;
        exchange::campaign_events(&conn, &tables, after, through, limit).await
    }

    async fn export_watermark(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<ExportWatermark> {
        exchange::export_watermark(&*self.conn().await?, tenant, campaign).await
    }

    async fn set_export_watermark(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        mark: ExportWatermark,
    ) -> StoreResult<()> {
        exchange::set_export_watermark(&*self.conn().await?, tenant, campaign, mark).await
    }

    async fn import_sources(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<Vec<ImportSource>> {
        exchange::import_sources(&*self.conn().await?, tenant, campaign).await
    }

    async fn purge_campaign(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<PurgeReport> {
        let mut conn = self.conn().await?;
        let tables = self
            .tables
            .tables_to_remove(&conn, tenant, campaign)
            .await?;
        let purged = exchange::purge_campaign(&mut conn, &tables).await;
        self.tables.forget(tenant, campaign);
        purged
    }

    async fn tenant_settings(&self, tenant: TenantId) -> StoreResult<TenantSettings> {
        audit::settings(&*self.conn().await?, tenant).await
    }

    async fn set_tenant_settings(
        &self,
        tenant: TenantId,
        settings: &TenantSettings,
    ) -> StoreResult<()> {
        audit::set_settings(&*self.conn().await?, tenant, settings).await
    }

    async fn pgp_keys(&self, tenant: TenantId) -> StoreResult<PgpKeyRecord> {
        pgp::keys(&*self.conn().await?, tenant).await
    }

    async fn init_pgp_key(
        &self,
        tenant: TenantId,
        sealed_secret: &[u8],
        public_key: &str,
    ) -> StoreResult<bool> {
        pgp::init_key(&*self.conn().await?, tenant, sealed_secret, public_key).await
    }

    async fn set_customer_pgp_key(&self, tenant: TenantId, key: Option<&str>) -> StoreResult<()> {
        pgp::set_customer_key(&*self.conn().await?, tenant, key).await
    }

    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<i64> {
        audit::append(&*self.conn().await?, record).await
    }

    async fn audit_log(&self, query: AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        audit::list(&*self.conn().await?, query).await
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<UserRecord> {
        users::create(&*self.conn().await?, user).await
    }

    async fn user(&self, name: &str) -> StoreResult<Option<UserRecord>> {
        users::get(&*self.conn().await?, name).await
    }

    async fn users(&self, tenant: Option<TenantId>) -> StoreResult<Vec<UserRecord>> {
        users::list(&*self.conn().await?, tenant).await
    }

    async fn update_user(&self, user: &UserRecord) -> StoreResult<UserRecord> {
        users::update(&*self.conn().await?, user).await
    }

    async fn put_session(&self, session: &SessionRecord) -> StoreResult<()> {
        users::put_session(&*self.conn().await?, session).await
    }

    async fn session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRecord>> {
        users::session(&*self.conn().await?, id_hash, now).await
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        users::delete_session(&*self.conn().await?, id_hash).await
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        users::delete_expired_sessions(&*self.conn().await?, now, limit).await
    }
}
