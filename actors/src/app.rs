//! Application wiring shared by every command: the configuration, logging and the
//! store chosen by it.

use std::sync::Arc;

use anyhow::Context as _;
use engine::config::{Backend, Config, LogFormat};
use engine::model::{TenantId, TenantName};
use engine::store::Store;
use engine::store::pg::PgStore;
use engine::store::sqlite::SqliteStore;

/// Opens the configured store and brings its schema up to date, so every command
/// works on a current schema (migrations also run at `serve` start-up).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match config.store.backend {
        Backend::Sqlite => {
            let store =
                SqliteStore::open(&config.data_dir, config.store.sqlite.busy_timeout.into())
                    .with_context(|| {
                        format!("opening the SQLite store in {}", config.data_dir.display())
                    })?;
            Arc::new(store)
        }
        Backend::Postgres => {
            let pg = &config.store.postgres;
            let store = PgStore::connect(pg.url.expose(), pg.pool_size, pg.connect_timeout.into())
                .await
                .context("connecting to PostgreSQL (store.postgres.url)")?;
            Arc::new(store)
        }
    };
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// Logs go to stderr so that command output on stdout stays machine-readable.
/// The id of the tenant named `name`, or an error that says how to create it.
pub async fn tenant_id(store: &dyn Store, name: &TenantName) -> anyhow::Result<TenantId> {
    match store.tenant(name).await? {
        Some(tenant) => Ok(tenant.id),
        None => anyhow::bail!(
            "tenant {name:?} does not exist; create it with `broadside tenant create {name}`",
            name = name.as_str()
        ),
    }
}

pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BROADSIDE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}
