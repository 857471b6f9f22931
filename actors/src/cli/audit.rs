//! `broadside audit list`: the audit log, newest first, for one tenant or all.

use std::process::ExitCode;

use clap::Subcommand;
use engine::config::Config;
use engine::model::TenantName;
use engine::store::AuditQuery;

use crate::app;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print audit entries, newest first.
    List {
        /// Only this tenant's entries (default: every entry).
        #[arg(long)]
        tenant: Option<TenantName>,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Entries older than this id (the next page).
        #[arg(long)]
        before: Option<i64>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let store = app::open_store(config).await?;
    let AuditCommand::List {
        tenant,
        limit,
        before,
        json,
    } = command;
    let tenant = match tenant {
        Some(name) => Some(app::tenant_id(store.as_ref(), &name).await?),
        None => None,
    };
    let entries = store
        .audit_log(AuditQuery {
            tenant,
            before,
            limit,
        })
        .await?;
    if !json {
        println!(
            "{:>8}  {:<20}  {:>6}  {:<18}  {:<22}  {:<16}  target",
            "id", "at", "tenant", "actor", "action", "outcome"
        );
    }
    for entry in entries {
        if json {
            println!("{}", serde_json::to_string(&entry)?);
            continue;
        }
        let r = &entry.record;
        println!(
            "{:>8}  {:<20}  {:>6}  {:<18}  {:<22}  {:<16}  {}",
            entry.id,
            r.at.format("%Y-%m-%d %H:%M:%SZ"),
            r.tenant
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
            r.actor,
            r.action,
            r.outcome,
            r.target.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}
