//! `broadside exchange user add --tenant T USER [--password-stdin] [--public-key FILE]`:
//! SFTP accounts of the file exchange.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use engine::config::Config;
use engine::exchange::{TenantFolders, hash_password, key_lines};
use engine::model::TenantName;
use engine::store::ExchangeAccount;

use crate::app;

#[derive(Debug, Subcommand)]
pub enum ExchangeCommand {
    /// Manage SFTP accounts.
    #[command(subcommand)]
    User(UserCommand),
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
}

pub async fn run(config: &Config, command: ExchangeCommand) -> anyhow::Result<ExitCode> {
    let ExchangeCommand::User(UserCommand::Add {
        tenant,
        user,
        password_stdin,
        public_key,
    }) = command;
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
    let Some(found) = store.tenant(&tenant).await? else {
        bail!("tenant {tenant} does not exist; create it with `broadside tenant create {tenant}`");
    };
    let account = ExchangeAccount {
        username: user.clone(),
        tenant: found.id,
        password_hash,
        public_keys,
    };
    store.create_exchange_account(&account).await?;
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
