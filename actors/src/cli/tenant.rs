//! `broadside tenant create|list|settings`.

use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;
use clap::Subcommand;
use engine::config::Config;
use engine::exchange::TenantFolders;
use engine::model::TenantName;
use engine::store::AuditRecord;

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
    /// Show the tenant's settings (every key with its value), or change some with
    /// `--set key=value`. Values are JSON where they parse as JSON (numbers,
    /// booleans, lists), text otherwise; units as in the configuration ("2d").
    Settings {
        name: TenantName,
        /// `section.key=value`; repeat to change several keys at once (all or none).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

pub async fn run(config: &Config, command: TenantCommand) -> anyhow::Result<ExitCode> {
    let store = app::open_store(config).await?;
    match command {
        TenantCommand::Create { name } => {
            let tenant = store.create_tenant(&name).await?;
            let folders = TenantFolders::new(&config.exchange_root(), &tenant.name);
            folders.create()?;
            store
                .append_audit(
                    &AuditRecord::new(Some(tenant.id), "cli", "tenant.create", Utc::now())
                        .target(tenant.name.as_str()),
                )
                .await?;
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
        TenantCommand::Settings { name, set } => {
            let id = app::tenant_id(store.as_ref(), &name).await?;
            let mut settings = store.tenant_settings(id).await?;
            if !set.is_empty() {
                for assignment in &set {
                    let (key, value) = assignment.split_once('=').with_context(|| {
                        format!("--set {assignment:?}: expected section.key=value")
                    })?;
                    settings = settings.with_value(key.trim(), value.trim())?;
                }
                store.set_tenant_settings(id, &settings).await?;
                store
                    .append_audit(
                        &AuditRecord::new(Some(id), "cli", "tenant.settings", Utc::now())
                            .detail(&serde_json::json!({ "set": redacted(&set) })),
                    )
                    .await?;
            }
            for (key, value) in settings.entries() {
                if is_secret(&key) && !value.is_null() {
                    println!("{key} = <set>");
                } else {
                    println!("{key} = {value}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Settings that hold secrets (`tracking.webhook_secret`): never printed or
/// written to the audit log.
fn is_secret(key: &str) -> bool {
    key.ends_with("secret")
}

/// The `--set` assignments with secret values replaced, for the audit log.
fn redacted(set: &[String]) -> Vec<String> {
    set.iter()
        .map(|a| match a.split_once('=') {
            Some((key, _)) if is_secret(key.trim()) => format!("{key}=<redacted>"),
            _ => a.clone(),
        })
        .collect()
}
