//! `broadside suppression list|add|remove --tenant T [EMAIL]`: the tenant's
//! suppression list, which every later campaign skips (state `suppressed`).

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use engine::config::Config;
use engine::model::{EmailAddress, TenantName};
use engine::store::SuppressionReason;

use crate::app;

#[derive(Debug, Subcommand)]
pub enum SuppressionCommand {
    /// List the suppressed addresses with their reason.
    List {
        #[arg(long)]
        tenant: TenantName,
    },
    /// Suppress an address (reason `manual`).
    Add {
        #[arg(long)]
        tenant: TenantName,
        email: String,
    },
    /// Remove an address: later campaigns mail it again.
    Remove {
        #[arg(long)]
        tenant: TenantName,
        email: String,
    },
}

pub async fn run(config: &Config, command: SuppressionCommand) -> anyhow::Result<ExitCode> {
    let store = app::open_store(config).await?;
    let store = store.as_ref();
    let tenant_id = |name: TenantName| async move {
        match store.tenant(&name).await? {
            Some(tenant) => Ok(tenant.id),
            None => bail!("tenant {name} does not exist"),
        }
    };
    match command {
        SuppressionCommand::List { tenant } => {
            for entry in store.suppressions(tenant_id(tenant).await?).await? {
                println!(
                    "{}\t{}\t{}",
                    entry.email,
                    entry.reason.as_str(),
                    entry.created_at.to_rfc3339()
                );
            }
        }
        SuppressionCommand::Add { tenant, email } => {
            let email = EmailAddress::parse(&email)?;
            let entry = (email.as_str().to_owned(), SuppressionReason::Manual);
            let added = store.suppress(tenant_id(tenant).await?, &[entry]).await?;
            println!(
                "{} {email}",
                if added > 0 {
                    "suppressed"
                } else {
                    "already suppressed:"
                }
            );
        }
        SuppressionCommand::Remove { tenant, email } => {
            let email = EmailAddress::parse(&email)?;
            if !store
                .unsuppress(tenant_id(tenant).await?, email.as_str())
                .await?
            {
                bail!("{email} is not on the suppression list");
            }
            println!("removed {email}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
