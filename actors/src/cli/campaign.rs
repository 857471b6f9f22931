//! `broadside campaign create|launch|pause|resume|cancel|status|list`. Commands change
//! the stored status; a running `broadside serve` picks changes up within its
//! reconcile interval (a second by default).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use engine::config::Config;
use engine::model::{CampaignName, TenantId, TenantName};
use engine::render::{CampaignDefinition, CompiledCampaign, Mailbox, TemplateError};
use engine::store::{Campaign, CampaignStatus, Store, StoreError};
use serde::Deserialize;

use crate::app;

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Create a campaign (or update a draft's definition) from a definition file.
    Create {
        #[command(flatten)]
        target: Target,
        /// TOML file: from, reply_to, envelope_domain, subject, html_file, text_file,
        /// headers (see templates/sample/campaign.toml).
        #[arg(long, value_name = "FILE")]
        definition: PathBuf,
    },
    /// Check the templates against the imported columns and start sending.
    Launch(Target),
    /// Stop dispatching; messages already in flight finish.
    Pause(Target),
    /// Continue a paused campaign.
    Resume(Target),
    /// Stop for good; recipients not yet sent stay pending.
    Cancel(Target),
    /// Show a campaign's status and counters.
    Status {
        #[command(flatten)]
        target: Target,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's campaigns.
    List {
        #[arg(long)]
        tenant: TenantName,
    },
}

#[derive(Debug, Args)]
pub struct Target {
    /// The tenant that owns the campaign.
    #[arg(long)]
    tenant: TenantName,
    /// The campaign's name.
    name: CampaignName,
}

pub async fn run(config: &Config, command: CampaignCommand) -> anyhow::Result<ExitCode> {
    let store = app::open_store(config).await?;
    let store = store.as_ref();
    match command {
        CampaignCommand::Create { target, definition } => {
            create(store, &target, &definition).await?
        }
        CampaignCommand::Launch(target) => launch(store, &target).await?,
        CampaignCommand::Pause(target) => change(store, &target, CampaignStatus::Paused).await?,
        CampaignCommand::Resume(target) => change(store, &target, CampaignStatus::Running).await?,
        CampaignCommand::Cancel(target) => {
            change(store, &target, CampaignStatus::Cancelled).await?
        }
        CampaignCommand::Status { target, json } => status(store, &target, json).await?,
        CampaignCommand::List { tenant } => list(store, &tenant).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn campaign(store: &dyn Store, target: &Target) -> anyhow::Result<Campaign> {
    let tenant = app::tenant_id(store, &target.tenant).await?;
    store
        .campaign_by_name(tenant, &target.name)
        .await?
        .with_context(|| {
            format!(
                "campaign {:?} does not exist for tenant {}",
                target.name.as_str(),
                target.tenant
            )
        })
}

/// The definition file: the definition with bodies given as file paths.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefinitionFile {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    envelope_domain: String,
    subject: String,
    html_file: Option<PathBuf>,
    text_file: Option<PathBuf>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default = "yes")]
    track_clicks: bool,
    #[serde(default = "yes")]
    track_opens: bool,
}

fn yes() -> bool {
    true
}

/// Reads a definition file; body paths are relative to the file.
pub fn read_definition(path: &Path) -> anyhow::Result<CampaignDefinition> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new(".")).to_owned();
    definition_from_parts(&text, |name| std::fs::read_to_string(base.join(name)).ok())
        .with_context(|| format!("{} is not a valid definition", path.display()))
}

/// Builds a definition from the TOML text, reading bodies through `body`.
pub fn definition_from_parts(
    text: &str,
    body: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<CampaignDefinition> {
    let file: DefinitionFile = toml::from_str(text)?;
    let read = |p: &Option<PathBuf>| -> anyhow::Result<Option<String>> {
        p.as_ref()
            .map(|p| {
                body(&p.to_string_lossy()).with_context(|| format!("cannot read {}", p.display()))
            })
            .transpose()
    };
    let definition = CampaignDefinition {
        html: read(&file.html_file)?,
        text: read(&file.text_file)?,
        from: file.from,
        reply_to: file.reply_to,
        envelope_domain: file.envelope_domain,
        subject: file.subject,
        headers: file.headers,
        track_clicks: file.track_clicks,
        track_opens: file.track_opens,
    };
    definition.validate()?;
    Ok(definition)
}

async fn create(store: &dyn Store, target: &Target, path: &Path) -> anyhow::Result<()> {
    let definition = read_definition(path)?;
    let tenant = app::tenant_id(store, &target.tenant).await?;
    let campaign = match store.campaign_by_name(tenant, &target.name).await? {
        Some(campaign) => campaign,
        None => store.create_campaign(tenant, &target.name).await?,
    };
    let json = serde_json::to_string(&definition)?;
    store
        .set_campaign_definition(tenant, campaign.id, &json)
        .await?;
    println!(
        "campaign {} (id {}) defined; import recipients, then launch it",
        campaign.name, campaign.id
    );
    Ok(())
}

/// Why a campaign cannot be launched; the HTTP API maps each to a status code.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "campaign {0} has no definition; set one with `broadside campaign create --definition FILE`"
    )]
    NoDefinition(CampaignName),
    #[error("campaign {0} has no recipients; import a file first")]
    NotImported(CampaignName),
    #[error("the stored definition of campaign {0} is unreadable: {1}")]
    Unreadable(CampaignName, serde_json::Error),
    #[error("campaign {0} cannot be launched: {1}")]
    Template(CampaignName, TemplateError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Compiles the templates against the imported columns first, so a template error
/// stops the launch before anything is sent.
pub async fn launch_checked(
    store: &dyn Store,
    tenant: TenantId,
    campaign: &Campaign,
) -> Result<(), LaunchError> {
    let name = || campaign.name.clone();
    let Some(json) = campaign.definition.as_deref() else {
        return Err(LaunchError::NoDefinition(name()));
    };
    if !campaign.imported {
        return Err(LaunchError::NotImported(name()));
    }
    let definition: CampaignDefinition =
        serde_json::from_str(json).map_err(|e| LaunchError::Unreadable(name(), e))?;
    CompiledCampaign::compile(&definition, &campaign.columns)
        .map_err(|e| LaunchError::Template(name(), e))?;
    store
        .set_campaign_status(tenant, campaign.id, CampaignStatus::Running)
        .await?;
    Ok(())
}

async fn launch(store: &dyn Store, target: &Target) -> anyhow::Result<()> {
    let campaign = campaign(store, target).await?;
    launch_checked(store, campaign.tenant, &campaign).await?;
    println!(
        "campaign {} launched; `broadside serve` sends it",
        campaign.name
    );
    Ok(())
}

async fn change(store: &dyn Store, target: &Target, status: CampaignStatus) -> anyhow::Result<()> {
    let campaign = campaign(store, target).await?;
    store
        .set_campaign_status(campaign.tenant, campaign.id, status)
        .await?;
    println!("campaign {} is now {}", campaign.name, status.as_str());
    Ok(())
}

async fn status(store: &dyn Store, target: &Target, json: bool) -> anyhow::Result<()> {
    let campaign = campaign(store, target).await?;
    let counters = store.counters(campaign.tenant, campaign.id).await?;
    if json {
        let value = serde_json::json!({
            "campaign": campaign.name, "id": campaign.id, "status": campaign.status,
            "launched_at": campaign.launched_at, "counters": counters,
        });
        println!("{value}");
        return Ok(());
    }
    println!("campaign   {} (id {})", campaign.name, campaign.id);
    println!("status     {}", campaign.status.as_str());
    for (label, value) in [
        ("pending", counters.pending),
        ("deferred", counters.deferred),
        ("delivered", counters.delivered),
        ("bounced", counters.bounced),
        ("failed", counters.failed),
        ("suppressed", counters.suppressed),
    ] {
        println!("{label:<10} {value}");
    }
    Ok(())
}

async fn list(store: &dyn Store, tenant: &TenantName) -> anyhow::Result<()> {
    let tenant = app::tenant_id(store, tenant).await?;
    println!("{:>6}  {:<32}  {:<10}  recipients", "id", "name", "status");
    for campaign in store.campaigns(tenant).await? {
        let total = if campaign.imported {
            store
                .counters(tenant, campaign.id)
                .await
                .map(|c| c.total())
                .unwrap_or(0)
        } else {
            0
        };
        println!(
            "{:>6}  {:<32}  {:<10}  {total}",
            campaign.id,
            campaign.name,
            campaign.status.as_str()
        );
    }
    Ok(())
}
