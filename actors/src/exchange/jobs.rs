//! The exchange's timed jobs, as tokio tasks beside the watcher: response-data
//! exports per tenant at the tenant's interval, and retention maintenance
//! every `exchange.maintenance_interval`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use engine::clock::Clock;
use engine::config::{Config, RetentionConfig};
use engine::exchange::export::ExportFilter;
use engine::exchange::pgp::{PgpExportFilter, TenantKeys};
use engine::exchange::{OpenWrites, RetentionPolicy, TenantFolders, export_tenant, run_retention};
use engine::model::TenantId;
use engine::store::{Store, StoreError, Tenant};
use tokio::task::JoinHandle;

/// The longest the export loop sleeps, so new tenants and changed intervals
/// are picked up within a minute.
const MAX_EXPORT_SLEEP: Duration = Duration::from_secs(60);

/// What the jobs need, cloned into each task.
#[derive(Clone)]
pub struct Jobs {
    pub store: Arc<dyn Store>,
    /// `exchange.root`: one folder per tenant.
    pub root: PathBuf,
    /// Retention's "now"; the system clock in `serve`, injectable for tests.
    pub clock: Arc<dyn Clock>,
    /// Files SFTP clients are writing, which retention leaves alone.
    pub writes: OpenWrites,
    /// Where HTTP imports write errors reports, which name their campaign.
    pub api_reports: PathBuf,
    /// `exchange.export_interval`, for tenants that set none.
    pub export_interval: Duration,
    /// `exchange.maintenance_interval`: how often retention runs.
    pub maintenance_interval: Duration,
    /// `exchange.retention`: the limits of tenants that set none.
    pub retention: RetentionConfig,
    /// Opens tenants' PGP records: exports of a tenant with a customer key are
    /// encrypted to it.
    pub keys: Option<TenantKeys>,
}

impl Jobs {
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        writes: OpenWrites,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            root: config.exchange_root(),
            clock,
            writes,
            api_reports: config.reports_dir(),
            export_interval: not_spinning(config.exchange.export_interval),
            maintenance_interval: not_spinning(config.exchange.maintenance_interval),
            retention: config.exchange.retention.clone(),
            keys: None,
        }
    }

    /// Encrypts exports of tenants that set a customer PGP key.
    pub fn with_pgp(mut self, keys: TenantKeys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Starts both loops; aborting the handles stops them. An export or
    /// retention run cut short is safe: files are renamed into place only when
    /// complete and watermarks advance after that.
    pub fn spawn(self) -> Vec<JoinHandle<()>> {
        vec![
            tokio::spawn(self.clone().export_loop()),
            tokio::spawn(self.maintenance_loop()),
        ]
    }

    /// Every tenant is exported once at start (catching up on a restart), then
    /// whenever its own interval has passed since its last run.
    async fn export_loop(self) {
        let mut next: HashMap<TenantId, DateTime<Utc>> = HashMap::new();
        loop {
            let mut sleep = MAX_EXPORT_SLEEP;
            match self.store.tenants().await {
                Ok(tenants) => {
                    for tenant in tenants {
                        let now = self.clock.now();
                        let due = *next.entry(tenant.id).or_insert(now);
                        let wait = if due <= now {
                            let interval = self.export_interval_of(&tenant).await;
                            export_one(
                                self.store.as_ref(),
                                &self.root,
                                &tenant,
                                self.keys.as_ref(),
                            )
                            .await;
                            next.insert(tenant.id, now + chrono_of(interval));
                            interval
                        } else {
                            (due - now).to_std().unwrap_or_default()
                        };
                        sleep = sleep.min(wait);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "exports: cannot list tenants"),
            }
            tokio::time::sleep(sleep.max(Duration::from_millis(10))).await;
        }
    }

    async fn export_interval_of(&self, tenant: &Tenant) -> Duration {
        match self.store.tenant_settings(tenant.id).await {
            Ok(settings) => settings
                .exports
                .interval
                .map_or(self.export_interval, not_spinning),
            Err(e) => {
                tracing::warn!(tenant = %tenant.name, error = %e, "exports: settings unreadable; using the default interval");
                self.export_interval
            }
        }
    }

    async fn maintenance_loop(self) {
        let mut ticks = tokio::time::interval(self.maintenance_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let tenants = match self.store.tenants().await {
                Ok(tenants) => tenants,
                Err(e) => {
                    tracing::warn!(error = %e, "retention: cannot list tenants");
                    continue;
                }
            };
            for tenant in tenants {
                if let Err(e) = self.retain(&tenant).await {
                    tracing::warn!(tenant = %tenant.name, error = %e, "retention run failed; retrying next time");
                }
            }
        }
    }

    /// One retention run over one tenant, with its own overrides.
    pub async fn retain(&self, tenant: &Tenant) -> anyhow::Result<()> {
        let settings = self.store.tenant_settings(tenant.id).await?;
        let policy = RetentionPolicy::new(&self.retention, &settings.retention);
        let folders = TenantFolders::new(&self.root, &tenant.name);
        let now = self.clock.now();
        let store = self.store.as_ref();
        let reports = Some(self.api_reports.as_path());
        let writes = &self.writes;
        let report = run_retention(store, tenant, &folders, &policy, writes, reports, now).await?;
        if !report.files.is_empty() || !report.campaigns.is_empty() {
            tracing::info!(
                tenant = %tenant.name,
                files = report.files.len(),
                campaigns = report.campaigns.len(),
                "retention deleted expired data"
            );
        }
        Ok(())
    }
}

/// A zero interval would spin (and `tokio::time::interval` refuses it).
fn not_spinning(interval: engine::config::Duration) -> Duration {
    interval.as_std().max(Duration::from_millis(100))
}

fn chrono_of(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// Exports one tenant, logging what happened.
async fn export_one(
    store: &dyn Store,
    root: &Path,
    tenant: &Tenant,
    keys: Option<&TenantKeys>,
) -> Vec<String> {
    let folders = TenantFolders::new(root, &tenant.name);
    if let Err(e) = folders.create() {
        tracing::warn!(tenant = %tenant.name, error = %e, "exports: tenant folders");
        return Vec::new();
    }
    let filter = match keys {
        Some(keys) => match PgpExportFilter::for_tenant(keys, store, tenant.id).await {
            Ok(filter) => filter,
            Err(e) => {
                // Never fall back to plaintext for a tenant that asked for encryption.
                tracing::warn!(tenant = %tenant.name, error = %e, "exports: customer PGP key unusable; export skipped");
                return Vec::new();
            }
        },
        None => None,
    };
    let filter = filter.as_ref().map(|f| f as &dyn ExportFilter);
    let results = match export_tenant(store, tenant, &folders, filter).await {
        Ok(results) => results,
        Err(StoreError::UnknownTenant(_)) => return Vec::new(),
        Err(e) => {
            tracing::warn!(tenant = %tenant.name, error = %e, "exports: cannot list campaigns");
            return Vec::new();
        }
    };
    let mut files = Vec::new();
    for result in results {
        match result {
            Ok(file) => {
                tracing::info!(tenant = %tenant.name, file = %file.file, events = file.events, "exported events");
                files.push(file.file);
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant.name, error = %e, "export failed; retrying next run")
            }
        }
    }
    files
}
