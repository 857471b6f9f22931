//! `broadside key create|list|revoke --tenant T`: the API keys upstream systems
//! sign requests with. The secret is printed once, at creation, and stored
//! sealed under the master key.

use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;
use clap::Subcommand;
use engine::auth::keys::MasterKey;
use engine::config::Config;
use engine::model::TenantName;
use engine::store::{AuditRecord, Store};

use crate::app;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key; prints its id and secret (the secret is shown only now).
    Create {
        #[arg(long)]
        tenant: TenantName,
    },
    /// List a tenant's keys (never their secrets).
    List {
        #[arg(long)]
        tenant: TenantName,
    },
    /// Revoke a key; a running server stops accepting it within api.key_cache_ttl.
    Revoke {
        #[arg(long)]
        tenant: TenantName,
        /// The key id, as `key list` shows it.
        key_id: String,
    },
}

pub async fn run(config: &Config, command: KeyCommand) -> anyhow::Result<ExitCode> {
    let store = app::open_store(config).await?;
    let store = store.as_ref();
    match command {
        KeyCommand::Create { tenant } => create(config, store, &tenant).await?,
        KeyCommand::List { tenant } => list(store, &tenant).await?,
        KeyCommand::Revoke { tenant, key_id } => {
            let id = app::tenant_id(store, &tenant).await?;
            store
                .revoke_api_key(id, &key_id)
                .await
                .with_context(|| format!("revoking {key_id}"))?;
            store
                .append_audit(
                    &AuditRecord::new(Some(id), "cli", "key.revoke", Utc::now()).target(&key_id),
                )
                .await?;
            println!("revoked {key_id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn create(config: &Config, store: &dyn Store, tenant: &TenantName) -> anyhow::Result<()> {
    let id = app::tenant_id(store, tenant).await?;
    let master = MasterKey::configured_or_file(config.api.master_key.expose(), &config.data_dir)
        .context("api.master_key")?;
    let key = crate::http::keys::create_key(store, &master, id, tenant).await?;
    store
        .append_audit(
            &AuditRecord::new(Some(id), "cli", "key.create", Utc::now()).target(&key.key_id),
        )
        .await?;
    println!("key_id = {}", key.key_id);
    println!("secret = {}", key.secret.expose());
    println!("Store the secret now: it is not shown again.");
    Ok(())
}

async fn list(store: &dyn Store, tenant: &TenantName) -> anyhow::Result<()> {
    let id = app::tenant_id(store, tenant).await?;
    println!("{:<40}  {:<25}  revoked", "key_id", "created");
    for key in store.api_keys(id).await? {
        let revoked = key
            .revoked_at
            .map_or_else(|| "-".to_owned(), |at| at.to_rfc3339());
        println!(
            "{:<40}  {:<25}  {revoked}",
            key.id,
            key.created_at.to_rfc3339()
        );
    }
    Ok(())
}
