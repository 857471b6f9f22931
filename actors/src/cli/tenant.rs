//! `broadside tenant create|list`.

use std::process::ExitCode;

use clap::Subcommand;
use engine::config::Config;
use engine::exchange::TenantFolders;
use engine::model::TenantName;

use crate::app;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant: its own schema (PostgreSQL) or database file (SQLite).
    Create {
        /// Lower-case letters, digits, '-' and '_', e.g. "acme".
        name: TenantName,
    },
    /// List tenants.
    List,
}

pub async fn run(config: &Config, command: TenantCommand) -> anyhow::Result<ExitCode> {
    let store = app::open_store(config).await?;
    match command {
        TenantCommand::Create { name } => {
            let tenant = store.create_tenant(&name).await?;
            let folders = TenantFolders::new(&config.exchange_root(), &tenant.name);
            folders.create()?;
            println!("created tenant {} (id {})", tenant.name, tenant.id);
        }
        TenantCommand::List => {
            let tenants = store.tenants().await?;
            println!("{:>6}  {:<32}  created", "id", "name");
            for t in tenants {
                println!(
                    "{:>6}  {:<32}  {}",
                    t.id,
                    t.name,
                    t.created_at.format("%Y-%m-%d %H:%M:%SZ")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
