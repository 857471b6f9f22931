//! The file exchange at run time: the control-file watcher (a tokio task that
//! scans every `exchange.scan_interval`), the export and retention jobs, and
//! the embedded SFTP server.

mod jobs;
mod sftp;
mod ssh;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use engine::auth::keys::MasterKey;
use engine::config::Config;
use engine::exchange::pgp::TenantKeys;
use engine::exchange::{OpenWrites, TenantFolders, Verdict, Watcher};
use engine::import::ImportOptions;
use engine::store::{Store, Tenant};
use tokio::task::JoinHandle;

pub use jobs::Jobs;
pub use ssh::load_or_create_host_key;

/// What `start` runs; dropping it stops nothing, `stop` does.
#[derive(Debug)]
pub struct ExchangeHandle {
    /// Where the SFTP server listens (the real port when configured with 0).
    pub sftp_addr: Option<SocketAddr>,
    /// Shared with the watcher: files SFTP clients still write.
    pub writes: OpenWrites,
    tasks: Vec<JoinHandle<()>>,
}

impl ExchangeHandle {
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Creates every tenant's folders, starts the watcher, the export and
/// retention jobs (on the system clock) and, unless
/// `exchange.sftp_listen` is empty, the SFTP server.
/// `writes` is shared with whoever else imports by name (the API), so that
/// nobody imports a file a client is still uploading.
pub async fn start(
    config: &Config,
    store: Arc<dyn Store>,
    writes: OpenWrites,
) -> anyhow::Result<ExchangeHandle> {
    let root = config.exchange_root();
    for tenant in store.tenants().await? {
        let folders = TenantFolders::new(&root, &tenant.name);
        folders
            .create()
            .with_context(|| format!("creating {}", folders.root().display()))?;
    }
    let master = MasterKey::configured_or_file(config.api.master_key.expose(), &config.data_dir)
        .context("api.master_key")?;
    let keys = TenantKeys::new(master);
    let watcher = Watcher::new(writes.clone()).with_pgp(keys.clone());
    let options = ImportOptions::from(&config.import);
    let interval = config.exchange.scan_interval.as_std();
    let mut tasks = vec![tokio::spawn(watch(
        store.clone(),
        root.clone(),
        watcher,
        options,
        interval,
    ))];
    let clock = Arc::new(engine::clock::SystemClock);
    tasks.extend(
        Jobs::new(config, store.clone(), writes.clone(), clock)
            .with_pgp(keys)
            .spawn(),
    );
    let mut sftp_addr = None;
    if !config.exchange.sftp_listen.is_empty() {
        let key = load_or_create_host_key(&config.host_key_path())?;
        let server = ssh::SshServer::new(store, root, writes.clone());
        let (addr, task) = server.listen(&config.exchange.sftp_listen, key).await?;
        sftp_addr = Some(addr);
        tasks.push(task);
    }
    Ok(ExchangeHandle {
        sftp_addr,
        writes,
        tasks,
    })
}

async fn watch(
    store: Arc<dyn Store>,
    root: PathBuf,
    mut watcher: Watcher,
    options: ImportOptions,
    interval: std::time::Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let tenants = match store.tenants().await {
            Ok(tenants) => tenants,
            Err(e) => {
                tracing::warn!(error = %e, "exchange scan: cannot list tenants");
                continue;
            }
        };
        for tenant in tenants {
            scan_tenant(store.as_ref(), &root, &mut watcher, &tenant, &options).await;
        }
    }
}

async fn scan_tenant(
    store: &dyn Store,
    root: &std::path::Path,
    watcher: &mut Watcher,
    tenant: &Tenant,
    options: &ImportOptions,
) {
    // New tenants get their folders on the next scan.
    let folders = TenantFolders::new(root, &tenant.name);
    if let Err(e) = folders.create() {
        tracing::warn!(tenant = %tenant.name, error = %e, "exchange folders");
        return;
    }
    for result in watcher.scan(store, tenant, &folders, options).await {
        match result {
            Ok(done) if done.verdict == Verdict::Finished => tracing::info!(
                tenant = %tenant.name, file = %done.file,
                loaded = done.outcome.as_ref().map_or(0, |o| o.loaded),
                rejected = done.outcome.as_ref().map_or(0, |o| o.rejected),
                "exchange import finished"
            ),
            Ok(done) => tracing::warn!(
                tenant = %tenant.name, file = %done.file,
                reason = done.reason.as_deref().unwrap_or(""),
                "exchange import refused; file moved to invalids"
            ),
            Err(e) => {
                tracing::warn!(tenant = %tenant.name, error = %e, "exchange import failed; will retry")
            }
        }
    }
}
