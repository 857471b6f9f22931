//! The command line: one subcommand per operator task, each with `--help`.

mod audit;
pub mod campaign;
mod demo;
mod exchange;
mod import;
mod key;
mod pgp;
mod serve;
mod suppression;
mod tenant;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use engine::config::Config;

use crate::app;

/// Broadside: a multi-tenant email campaign send engine.
#[derive(Debug, Parser)]
#[command(name = "broadside", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: config/broadside.toml when it exists). Every key
    /// can be overridden by a BROADSIDE_<SECTION>__<KEY> environment variable.
    #[arg(long, global = true, value_name = "FILE", env = "BROADSIDE_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Apply pending database migrations (they also run at start-up).
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Import a recipient CSV file into a campaign (created as a draft if needed).
    Import(import::ImportArgs),
    /// Manage API keys: create (prints the secret once), list, revoke.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Manage campaigns: define, launch, pause, resume, cancel, status.
    #[command(subcommand)]
    Campaign(campaign::CampaignCommand),
    /// The file exchange: SFTP accounts, response-data exports.
    #[command(subcommand)]
    Exchange(exchange::ExchangeCommand),
    /// A tenant's PGP keys: its own (for encrypted imports) and the customer's
    /// (for encrypted exports); encrypt a file.
    #[command(subcommand)]
    Pgp(pgp::PgpCommand),
    /// Manage the tenant's suppression list: list, add, remove.
    #[command(subcommand)]
    Suppression(suppression::SuppressionCommand),
    /// Manage web users: add, list, lock, unlock, reset-2fa.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Read the audit log: logins, changes to users, keys and settings, deletions.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Run the engine and the HTTP API until stopped (SIGINT/SIGTERM).
    Serve,
    /// Send the sample campaign to generated recipients through a loopback sink,
    /// on a fresh embedded store: the whole path, nothing to install.
    Demo(demo::DemoArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (file, then environment), secrets redacted.
    Check,
}

/// Runs one command to completion on a fresh tokio runtime.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    if let Command::Config(ConfigCommand::Check) = cli.command {
        print!("{}", config.to_redacted_toml());
        return Ok(ExitCode::SUCCESS);
    }
    app::init_logging(&config);
    match cli.command {
        Command::Serve => return serve::run(config),
        Command::Demo(args) => return demo::run(config, args),
        _ => {}
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Config(_) | Command::Serve | Command::Demo(_) => unreachable!("handled above"),
            Command::Migrate => migrate(&config).await,
            Command::Tenant(command) => tenant::run(&config, command).await,
            Command::Import(args) => import::run(&config, args).await,
            Command::Campaign(command) => campaign::run(&config, command).await,
            Command::Key(command) => key::run(&config, command).await,
            Command::Exchange(command) => exchange::run(&config, command).await,
            Command::Pgp(command) => pgp::run(&config, command).await,
            Command::Suppression(command) => suppression::run(&config, command).await,
            Command::Audit(command) => audit::run(&config, command).await,
            Command::User(command) => user::run(&config, command).await,
        }
    })
}

async fn migrate(config: &Config) -> anyhow::Result<ExitCode> {
    // open_store migrates; report what it did by migrating once more here would
    // print nothing, so migrate explicitly and show the names.
    let store = app::open_store(config).await?;
    let applied = store.migrate().await?;
    if applied.is_empty() {
        println!("schema is up to date");
    }
    for name in applied {
        println!("applied {name}");
    }
    Ok(ExitCode::SUCCESS)
}
