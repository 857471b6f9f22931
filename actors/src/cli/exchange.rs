//! `broadside exchange account add|list|remove` (alias `user`): SFTP accounts of
//! the file exchange; `broadside exchange export --tenant T`: a response-data
//! export now.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use chrono::Utc;
use clap::Subcommand;
use engine::auth::keys::MasterKey;
use engine::config::Config;
use engine::exchange::export::ExportFilter;
use engine::exchange::pgp::{PgpExportFilter, TenantKeys};
use engine::exchange::{Folder, TenantFolders, export_tenant, hash_password, key_lines};
use engine::model::TenantName;
use engine::store::{AuditRecord, ExchangeAccount, Store, Tenant};

use crate::app;

#[derive(Debug, Subcommand)]
pub enum ExchangeCommand {
    /// Manage SFTP accounts: add, list, remove.
    #[command(subcommand, alias = "user")]
    Account(UserCommand),
    /// Write every campaign's events since the last export to the tenant's
    /// exports folder now (`serve` does it every `exchange.export_interval`).
    Export {
        #[arg(long)]
        tenant: TenantName,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account that sees only the tenant's exchange folders.
    Add {
        #[arg(long)]
        tenant: TenantName,
        /// The SSH user name, unique across tenants.
        user: String,
        /// Read the password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
        /// An authorized_keys-style file of OpenSSH public keys.
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
    },
    /// List the tenant's accounts and how each logs in.
    List {
        #[arg(long)]
        tenant: TenantName,
    },
    /// Remove one of the tenant's accounts; it cannot log in any more.
    Remove {
        #[arg(long)]
        tenant: TenantName,
        user: String,
    },
}

pub async fn run(config: &Config, command: ExchangeCommand) -> anyhow::Result<ExitCode> {
    match command {
        ExchangeCommand::Account(UserCommand::Add {
            tenant,
            user,
            password_stdin,
            public_key,
        }) => add(config, tenant, user, password_stdin, public_key).await,
        ExchangeCommand::Account(UserCommand::List { tenant }) => list(config, &tenant).await,
        ExchangeCommand::Account(UserCommand::Remove { tenant, user }) => {
            remove(config, &tenant, &user).await
        }
        ExchangeCommand::Export { tenant } => export(config, &tenant).await,
    }
}

async fn tenant_of(store: &dyn Store, tenant: &TenantName) -> anyhow::Result<Tenant> {
    match store.tenant(tenant).await? {
        Some(found) => Ok(found),
        None => bail!(
            "tenant {tenant} does not exist; create it with `broadside tenant create {tenant}`"
        ),
    }
}

async fn list(config: &Config, tenant: &TenantName) -> anyhow::Result<ExitCode> {
    let store = app::open_store(config).await?;
    let found = tenant_of(store.as_ref(), tenant).await?;
    let accounts = store.exchange_accounts(found.id).await?;
    if accounts.is_empty() {
        println!("tenant {tenant} has no exchange accounts");
    }
    for account in accounts {
        let mut how = Vec::new();
        if account.password_hash.is_some() {
            how.push("password".to_owned());
        }
        if !account.public_keys.is_empty() {
            how.push(format!("{} public key(s)", account.public_keys.len()));
        }
        println!("{}\t{}", account.username, how.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

async fn remove(config: &Config, tenant: &TenantName, user: &str) -> anyhow::Result<ExitCode> {
    let store = app::open_store(config).await?;
    let found = tenant_of(store.as_ref(), tenant).await?;
    if !store.remove_exchange_account(found.id, user).await? {
        bail!("tenant {tenant} has no exchange account {user:?}");
    }
    let record =
        AuditRecord::new(Some(found.id), "cli", "exchange_account.remove", Utc::now()).target(user);
    store.append_audit(&record).await?;
    println!("removed exchange user {user} of tenant {tenant}");
    Ok(ExitCode::SUCCESS)
}

async fn export(config: &Config, tenant: &TenantName) -> anyhow::Result<ExitCode> {
    let store = app::open_store(config).await?;
    let found = tenant_of(store.as_ref(), tenant).await?;
    let folders = TenantFolders::new(&config.exchange_root(), tenant);
    folders
        .create()
        .with_context(|| format!("creating {}", folders.root().display()))?;
    let master = MasterKey::configured_or_file(config.api.master_key.expose(), &config.data_dir)
        .context("api.master_key")?;
    let filter = PgpExportFilter::for_tenant(&TenantKeys::new(master), store.as_ref(), found.id)
        .await
        .context("the customer's PGP key")?;
    let filter = filter.as_ref().map(|f| f as &dyn ExportFilter);
    let results = export_tenant(store.as_ref(), &found, &folders, filter).await?;
    let mut failed = false;
    for result in &results {
        match result {
            Ok(file) => println!(
                "{}\t{} events",
                folders.folder(Folder::Exports).join(&file.file).display(),
                file.events
            ),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if results.is_empty() {
        println!("no new events to export for tenant {tenant}");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn add(
    config: &Config,
    tenant: TenantName,
    user: String,
    password_stdin: bool,
    public_key: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    if user.is_empty() || user.len() > 64 || !user.chars().all(|c| c.is_ascii_graphic()) {
        bail!("the user name must be 1 to 64 printable ASCII characters");
    }
    let password_hash = match password_stdin {
        true => Some(read_password()?),
        false => None,
    };
    let public_keys = match &public_key {
        Some(path) => key_lines(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        ),
        None => Vec::new(),
    };
    if password_hash.is_none() && public_keys.is_empty() {
        bail!("give --password-stdin or --public-key FILE (or both)");
    }
    let store = app::open_store(config).await?;
    let found = tenant_of(store.as_ref(), &tenant).await?;
    let account = ExchangeAccount {
        username: user.clone(),
        tenant: found.id,
        password_hash,
        public_keys,
    };
    store.create_exchange_account(&account).await?;
    let record =
        AuditRecord::new(Some(found.id), "cli", "exchange_account.add", Utc::now()).target(&user);
    store.append_audit(&record).await?;
    let folders = TenantFolders::new(&config.exchange_root(), &tenant);
    folders.create()?;
    println!(
        "added exchange user {user} for tenant {tenant} ({})",
        folders.root().display()
    );
    Ok(ExitCode::SUCCESS)
}

fn read_password() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut text)
        .context("reading the password from standard input")?;
    let password = text.lines().next().unwrap_or("");
    if password.is_empty() {
        bail!("the password on standard input is empty");
    }
    hash_password(password).map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}
