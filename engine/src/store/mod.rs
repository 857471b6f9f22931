//! Storage: one async `Store` interface with two implementations, PostgreSQL
//! (production) and SQLite (the embedded default), held to one conformance suite.
//!
//! Layout, the same in both: global tables (tenants, migrations) and per tenant a
//! namespace (a PostgreSQL schema `t_<tenant id>`, or a SQLite file
//! `<data dir>/tenants/<tenant id>.db`) holding the tenant's `campaigns` and
//! `imports`, plus per campaign a recipients table `c<campaign id>_recipients` and an
//! events table `c<campaign id>_events`, created by the import and dropped as a unit.

mod audit;
mod batch;
mod error;
mod exchange;
pub mod pg;
pub mod sqlite;
mod submit;
pub mod tracking;
mod users;
mod webhooks;

pub use audit::{AuditEntry, AuditQuery, AuditRecord};
pub use batch::{RecipientBatch, RowRef};
pub use error::StoreError;
pub use exchange::{CampaignEvent, EventKind, ExportWatermark, ImportSource, PurgeReport};
pub use submit::{BatchCreated, IdempotencyClaim, NewBatch};
pub use tracking::{Suppression, SuppressionReason, TrackingDetail, TrackingEvent, TrackingKind};
pub use users::{SessionRecord, UserRecord};
pub use webhooks::WebhookDelivery;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{
    CampaignId, CampaignName, EmailAddress, RecipientId, RecipientState, StateCode, TenantId,
    TenantName,
};
use crate::tenant::TenantSettings;

pub type StoreResult<T> = Result<T, StoreError>;

/// A tenant's OpenPGP material as stored (see `exchange::pgp`, which makes and
/// checks it); every part is absent until first set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgpKeyRecord {
    /// The tenant's secret key (armored), sealed with the master key: a copy of
    /// the database alone decrypts no customer file.
    pub sealed_secret: Option<Vec<u8>>,
    /// The tenant's public key (armored), which customers encrypt imports to.
    pub public_key: Option<String>,
    /// The customer's public key (armored), which exports are encrypted to.
    pub customer_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: TenantName,
    pub created_at: DateTime<Utc>,
}

/// An API key as listed: never its secret, which is stored sealed (see
/// `auth::keys`) and only handed to the authentication path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Unique across the installation; the Escher credential names it.
    pub id: String,
    /// The tenant every request signed with this key acts for.
    pub tenant: TenantId,
    pub created_at: DateTime<Utc>,
    /// Set once; a revoked key never authenticates again.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A file-exchange (SFTP) login. It acts for exactly one tenant and sees only
/// that tenant's exchange folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeAccount {
    /// Unique across the installation: the SSH user name decides the tenant.
    pub username: String,
    pub tenant: TenantId,
    /// An argon2 PHC string; `None` allows public-key logins only.
    pub password_hash: Option<String>,
    /// Authorized keys as OpenSSH lines (`ssh-ed25519 AAAA… comment`).
    pub public_keys: Vec<String>,
}

/// Where a campaign is in its life. `Draft` until launched; `Completed` once every
/// recipient is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    Running,
    Paused,
    Cancelled,
    Completed,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Running => "running",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Cancelled => "cancelled",
            CampaignStatus::Completed => "completed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "draft" => CampaignStatus::Draft,
            "running" => CampaignStatus::Running,
            "paused" => CampaignStatus::Paused,
            "cancelled" => CampaignStatus::Cancelled,
            "completed" => CampaignStatus::Completed,
            _ => return None,
        })
    }

    /// Checks a status change of a campaign currently in `self`. `Ok(false)` means
    /// the campaign already has `next` (a repeated request, e.g. a retried HTTP
    /// call, is not an error); `Ok(true)` means the change is allowed. Launching or
    /// resuming needs recipients to send to, so `Running` requires an import.
    pub fn check_change(
        self,
        next: CampaignStatus,
        imported: bool,
        campaign: CampaignId,
    ) -> Result<bool, StoreError> {
        use CampaignStatus::*;
        if self == next {
            return Ok(false);
        }
        let allowed = matches!(
            (self, next),
            (Draft | Paused, Running)
                | (Running, Paused)
                | (Draft | Running | Paused, Cancelled)
                | (Running, Completed)
        );
        if !allowed {
            return Err(StoreError::WrongStatus {
                campaign,
                status: self.as_str(),
                action: next.become_action(),
            });
        }
        if next == Running && !imported {
            return Err(StoreError::NotImported(campaign));
        }
        Ok(true)
    }

    /// The `action` of a refused change to this status (`WrongStatus` wants a
    /// `&'static str`, hence one literal per status).
    fn become_action(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "become draft",
            CampaignStatus::Running => "become running",
            CampaignStatus::Paused => "become paused",
            CampaignStatus::Cancelled => "become cancelled",
            CampaignStatus::Completed => "become completed",
        }
    }

    /// Whether the campaign's definition may change: not while messages built from
    /// it are going out, nor once the campaign is over.
    pub fn definition_editable(self) -> bool {
        matches!(self, CampaignStatus::Draft | CampaignStatus::Paused)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Campaign {
    pub id: CampaignId,
    pub tenant: TenantId,
    pub name: CampaignName,
    pub status: CampaignStatus,
    /// The personalization columns of the import, in file order; empty before an import.
    pub columns: Vec<String>,
    /// Whether an import has created the campaign's tables.
    pub imported: bool,
    pub created_at: DateTime<Utc>,
    /// The campaign's sender, subject and templates as JSON text. The store keeps it
    /// byte for byte and never parses it, so the send pipeline owns its format.
    pub definition: Option<String>,
    /// When the campaign first became `Running`; resuming after a pause keeps it.
    pub launched_at: Option<DateTime<Utc>>,
}

/// Per-campaign counts, kept up to date as recipients change state so that reading
/// them never counts rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CampaignCounters {
    pub pending: i64,
    pub deferred: i64,
    pub delivered: i64,
    pub bounced: i64,
    pub failed: i64,
    pub suppressed: i64,
}

impl CampaignCounters {
    pub fn get(&self, code: StateCode) -> i64 {
        match code {
            StateCode::Pending => self.pending,
            StateCode::Deferred => self.deferred,
            StateCode::Delivered => self.delivered,
            StateCode::Bounced => self.bounced,
            StateCode::Failed => self.failed,
            StateCode::Suppressed => self.suppressed,
        }
    }

    pub fn get_mut(&mut self, code: StateCode) -> &mut i64 {
        match code {
            StateCode::Pending => &mut self.pending,
            StateCode::Deferred => &mut self.deferred,
            StateCode::Delivered => &mut self.delivered,
            StateCode::Bounced => &mut self.bounced,
            StateCode::Failed => &mut self.failed,
            StateCode::Suppressed => &mut self.suppressed,
        }
    }

    pub fn total(&self) -> i64 {
        StateCode::ALL.iter().map(|c| self.get(*c)).sum()
    }
}

/// A recipient as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    pub id: RecipientId,
    pub email: EmailAddress,
    /// Personalization values, in the campaign's column order.
    pub values: Vec<String>,
    pub state: RecipientState,
    /// Delivery attempts made so far.
    pub attempts: i32,
    /// When the first attempt was made; the retry age limit counts from here.
    pub first_attempt: Option<DateTime<Utc>>,
    /// The last SMTP reply or reason, if any.
    pub last_reply: Option<String>,
}

/// A state change of one recipient, as reported by delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub recipient: RecipientId,
    pub state: RecipientState,
    /// Counts this outcome as one more attempt (false for, e.g., suppression).
    pub attempted: bool,
    /// SMTP reply text or reason, kept with the event.
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// What `record_outcomes` did with a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordReport {
    /// Outcomes applied.
    pub applied: usize,
    /// Outcomes ignored because the transition is not allowed (the recipient was
    /// already final, e.g. an outcome replayed after a restart) or the id is unknown.
    pub ignored: usize,
}

/// One entry in a recipient's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub recipient: RecipientId,
    pub kind: StateCode,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// What an import reports when it commits, kept with the campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// The file or upload name, as the customer knows it.
    pub source: String,
    pub rows_loaded: i64,
    pub rows_rejected: i64,
}

/// A batch submit remembered under its `Idempotency-Key`, so that a retry gets
/// the first answer instead of a second batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// SHA-256 of the request body, hex: the same key with another body is an error.
    pub request_hash: String,
    /// The batch (campaign) the first request created.
    pub batch: CampaignId,
    /// The response body as first sent.
    pub response: String,
}

/// Writes one import's rows. Nothing is visible to readers until `commit`; dropping
/// the writer or calling `abort` (or a crash) leaves the campaign as it was.
#[async_trait]
pub trait ImportWriter: Send {
    /// Appends rows; ids must be increasing across calls.
    async fn write(&mut self, batch: &RecipientBatch) -> StoreResult<()>;
    /// Makes the rows visible, atomically, and records the summary.
    async fn commit(self: Box<Self>, summary: &ImportSummary) -> StoreResult<()>;
    /// Discards everything written.
    async fn abort(self: Box<Self>) -> StoreResult<()>;
}

/// The storage interface. Every call that touches tenant data takes the `TenantId`
/// of the authenticated caller; a campaign id from another tenant is not found.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies pending migrations to the global tables and every tenant; returns
    /// the names of the migrations applied (empty when up to date).
    async fn migrate(&self) -> StoreResult<Vec<String>>;

    async fn create_tenant(&self, name: &TenantName) -> StoreResult<Tenant>;
    async fn tenants(&self) -> StoreResult<Vec<Tenant>>;
    async fn tenant(&self, name: &TenantName) -> StoreResult<Option<Tenant>>;

    /// Stores a new key of `tenant` with its sealed secret.
    async fn create_api_key(
        &self,
        tenant: TenantId,
        key_id: &str,
        sealed_secret: &[u8],
    ) -> StoreResult<ApiKey>;
    /// The tenant's keys, revoked ones included, oldest first.
    async fn api_keys(&self, tenant: TenantId) -> StoreResult<Vec<ApiKey>>;
    /// A key of any tenant by id, with its sealed secret: the authentication path.
    async fn api_key(&self, key_id: &str) -> StoreResult<Option<(ApiKey, Vec<u8>)>>;
    /// Revokes one of the tenant's keys (`UnknownApiKey` for another tenant's);
    /// revoking again keeps the first revocation time.
    async fn revoke_api_key(&self, tenant: TenantId, key_id: &str) -> StoreResult<()>;

    /// Adds an SFTP account (`AlreadyExists` for a taken user name,
    /// `UnknownTenant` for a missing tenant).
    async fn create_exchange_account(&self, account: &ExchangeAccount) -> StoreResult<()>;
    /// An account by user name: the SSH authentication path.
    async fn exchange_account(&self, username: &str) -> StoreResult<Option<ExchangeAccount>>;
    /// The tenant's accounts, by user name.
    async fn exchange_accounts(&self, tenant: TenantId) -> StoreResult<Vec<ExchangeAccount>>;
    /// Removes one of the tenant's accounts; `false` when the tenant has no
    /// account of that name (another tenant's account is left alone).
    async fn remove_exchange_account(&self, tenant: TenantId, username: &str) -> StoreResult<bool>;
    /// The record kept under the tenant's idempotency `key`, if any.
    async fn idempotency_record(
        &self,
        tenant: TenantId,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>>;
    /// Keeps `record` under `key` unless the key is already taken; returns the
    /// record the key holds afterwards (`record`, or the one that was first).
    async fn remember_idempotency(
        &self,
        tenant: TenantId,
        key: &str,
        record: &IdempotencyRecord,
    ) -> StoreResult<IdempotencyRecord>;

    async fn create_campaign(&self, tenant: TenantId, name: &CampaignName)
    -> StoreResult<Campaign>;
    async fn campaign(&self, tenant: TenantId, id: CampaignId) -> StoreResult<Option<Campaign>>;
    async fn campaign_by_name(
        &self,
        tenant: TenantId,
        name: &CampaignName,
    ) -> StoreResult<Option<Campaign>>;
    async fn campaigns(&self, tenant: TenantId) -> StoreResult<Vec<Campaign>>;
    /// The campaigns the engine acts on: those running or paused, and those in
    /// `also` whatever their status (a supervisor passes the ones it runs, to
    /// see them end). An indexed read, however many campaigns ended before.
    async fn active_campaigns(
        &self,
        tenant: TenantId,
        also: &[CampaignId],
    ) -> StoreResult<Vec<Campaign>>;
    /// Moves the campaign to `status` if `CampaignStatus::check_change` allows it;
    /// the first move to `Running` also sets `launched_at`.
    async fn set_campaign_status(
        &self,
        tenant: TenantId,
        id: CampaignId,
        status: CampaignStatus,
    ) -> StoreResult<()>;
    /// Replaces the campaign's definition (opaque JSON text); only while the
    /// campaign is `Draft` or `Paused`.
    async fn set_campaign_definition(
        &self,
        tenant: TenantId,
        id: CampaignId,
        definition: &str,
    ) -> StoreResult<()>;

    /// Creates a message batch whole and launches it: campaign, definition, rows
    /// and `Running` status in one transaction, with `claim`'s key if given (on
    /// PostgreSQL in the same transaction; on SQLite, whose keys live in the
    /// global file, the batch stays a draft until the key is won and is deleted
    /// if it is lost). A key already taken creates nothing: `Replayed`.
    async fn create_batch(
        &self,
        tenant: TenantId,
        batch: &NewBatch<'_>,
        claim: Option<&IdempotencyClaim<'_>>,
    ) -> StoreResult<BatchCreated>;

    /// Starts an import of rows with these personalization `columns`. Only a draft
    /// campaign can be imported into; an earlier import of it is replaced on commit.
    async fn begin_import(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        columns: &[String],
    ) -> StoreResult<Box<dyn ImportWriter>>;

    /// Recipients with `id > after` in id order, at most `limit`, any state.
    async fn recipients(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        after: RecipientId,
        limit: u32,
    ) -> StoreResult<Vec<Recipient>>;
    /// Recipients due for an attempt at `now` (pending, or deferred until `now` or
    /// earlier) with `id > after`, in id order, as a batch, at most `limit`. Each row
    /// carries its attempts and first attempt time, for the retry limits.
    async fn due_recipients(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        after: RecipientId,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<RecipientBatch>;
    /// Those of `ids` that are due at `now`, in id order, as a batch like
    /// `due_recipients`: the engine serves retries as they fall due instead of
    /// when its pass over the campaign comes back to them.
    async fn due_recipients_among(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        ids: &[RecipientId],
        now: DateTime<Utc>,
    ) -> StoreResult<RecipientBatch>;
    async fn recipient_by_email(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        email: &EmailAddress,
    ) -> StoreResult<Option<Recipient>>;
    async fn events(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        recipient: RecipientId,
    ) -> StoreResult<Vec<Event>>;

    /// Applies a batch of outcomes in one transaction (group commit): each allowed
    /// transition updates the row, appends an event and moves the counters. The
    /// first attempted outcome of a recipient sets its first attempt time.
    async fn record_outcomes(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        outcomes: &[Outcome],
    ) -> StoreResult<RecordReport>;
    async fn counters(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<CampaignCounters>;

    /// Appends opens, clicks and unsubscribes to the campaign's events, in one
    /// transaction for the whole batch.
    async fn record_tracking_events(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        events: &[TrackingEvent],
    ) -> StoreResult<usize>;
    /// One recipient's opens, clicks and unsubscribes, oldest first.
    async fn tracking_events(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        recipient: RecipientId,
    ) -> StoreResult<Vec<TrackingEvent>>;

    /// Adds normalized addresses to the tenant's suppression list; an address
    /// already listed keeps its first entry. Returns how many were new.
    async fn suppress(
        &self,
        tenant: TenantId,
        entries: &[(String, SuppressionReason)],
    ) -> StoreResult<usize>;
    /// Removes an address; `false` when it was not listed.
    async fn unsuppress(&self, tenant: TenantId, email: &str) -> StoreResult<bool>;
    async fn suppressions(&self, tenant: TenantId) -> StoreResult<Vec<Suppression>>;
    /// Which of `emails` (normalized) are suppressed; one call per dispatch batch.
    async fn suppressed_among(
        &self,
        tenant: TenantId,
        emails: &[String],
    ) -> StoreResult<std::collections::HashSet<String>>;

    /// Queues events (JSON objects) for the tenant's webhook, in order, due now.
    async fn enqueue_webhooks(&self, tenant: TenantId, events: &[String]) -> StoreResult<()>;
    /// Up to `limit` queued events of the tenant due at `now`, oldest first.
    async fn due_webhooks(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Removes events the receiver acknowledged.
    async fn ack_webhooks(&self, tenant: TenantId, ids: &[i64]) -> StoreResult<()>;
    /// Counts a failed post of these events and makes them due again at `next`.
    async fn retry_webhooks(
        &self,
        tenant: TenantId,
        ids: &[i64],
        next: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Drops the campaign's recipient and event tables (its personal data); the
    /// campaign row and its counters stay.
    async fn drop_campaign_data(&self, tenant: TenantId, campaign: CampaignId) -> StoreResult<()>;

    /// The highest event id of the campaign below which every event is committed
    /// and visible (0 for none): an exporter that reads up to it can never skip
    /// an event whose transaction commits later with a smaller id.
    async fn committed_event_bound(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<i64>;
    /// Events with `after < id <= through`, in id order, at most `limit`, each
    /// with its recipient's address.
    async fn campaign_events(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        after: i64,
        through: i64,
        limit: u32,
    ) -> StoreResult<Vec<CampaignEvent>>;
    /// How far the campaign's events were exported (zero for never).
    async fn export_watermark(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<ExportWatermark>;
    async fn set_export_watermark(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        mark: ExportWatermark,
    ) -> StoreResult<()>;
    /// The files imports of the campaign read, oldest first.
    async fn import_sources(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<Vec<ImportSource>>;
    /// The end of a campaign's lifetime: drops its recipient and event tables
    /// and deletes everything else that holds its recipients' addresses (batch
    /// idempotency records). The campaign row, its counters and the tenant's
    /// suppression list stay. Repeating it removes nothing more.
    async fn purge_campaign(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<PurgeReport>;

    /// The tenant's settings; the defaults for a tenant that never changed any
    /// (`UnknownTenant` for a missing tenant).
    async fn tenant_settings(&self, tenant: TenantId) -> StoreResult<TenantSettings>;
    /// Replaces the tenant's settings document.
    async fn set_tenant_settings(
        &self,
        tenant: TenantId,
        settings: &TenantSettings,
    ) -> StoreResult<()>;

    /// The tenant's OpenPGP keys; all absent until first use (`UnknownTenant`
    /// for a missing tenant).
    async fn pgp_keys(&self, tenant: TenantId) -> StoreResult<PgpKeyRecord>;
    /// Stores the tenant's key pair unless it has one; returns whether it did, so
    /// two processes generating one at once both end up using the first.
    async fn init_pgp_key(
        &self,
        tenant: TenantId,
        sealed_secret: &[u8],
        public_key: &str,
    ) -> StoreResult<bool>;
    /// Sets, or with `None` removes, the customer's public key.
    async fn set_customer_pgp_key(&self, tenant: TenantId, key: Option<&str>) -> StoreResult<()>;

    /// Appends to the audit log; returns the entry's id. The log cannot be
    /// changed or shortened afterwards.
    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<i64>;
    /// Audit entries, newest first.
    async fn audit_log(&self, query: AuditQuery) -> StoreResult<Vec<AuditEntry>>;

    /// Adds a user (`AlreadyExists` for a taken name, `UnknownTenant` for a
    /// missing tenant); the stored version is 1.
    async fn create_user(&self, user: &UserRecord) -> StoreResult<UserRecord>;
    /// A user of any tenant by name: the login path.
    async fn user(&self, name: &str) -> StoreResult<Option<UserRecord>>;
    /// The tenant's users, or with `None` the operators, by name.
    async fn users(&self, tenant: Option<TenantId>) -> StoreResult<Vec<UserRecord>>;
    /// Replaces the user's data if the stored version is still `user.version`;
    /// returns the record with its new version, or `Conflict` when another
    /// update came first (`UnknownUser` when there is no such user).
    async fn update_user(&self, user: &UserRecord) -> StoreResult<UserRecord>;

    /// Creates or replaces a session.
    async fn put_session(&self, session: &SessionRecord) -> StoreResult<()>;
    /// A session by the hash of its id, unless it expired before `now`.
    async fn session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRecord>>;
    /// Ends a session; ending one that does not exist is not an error.
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Deletes the sessions that expired before `now`, at most `limit` of
    /// them; returns how many it deleted (a sweep repeats until fewer).
    async fn delete_expired_sessions(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<u64>;
}
